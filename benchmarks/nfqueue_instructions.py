"""Instructions per packet of the whole nfqueue consumer, event loop included.

``benchmarks.per_item`` counts the library's per-packet work without a
socket or an event loop; this counts what the ``nfqueue`` scenario's
prequeued consumer runs per packet (asyncio, the ring's reader and its
``recvmmsg``, the drainer, the iterator, ``accept()``, the verdict flush):
the aionlmmap contestant of ``benchmarks.contestants.nfqueue`` runs under
``valgrind --tool=callgrind`` on a backlog of N and of 2N packets queued by
the C flood sender in a throwaway namespace pair, and the difference in
instructions is divided by N (start-up and imports cancel out). User-space
instructions only: the kernel's share (one ``recvmmsg`` per 64 packets,
one ``sendmsg`` per verdict batch) is not in it.

    sudo python3 -m benchmarks.nfqueue_instructions --packets 4000

Needs root, valgrind and a C compiler (the flood sender).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from typing import Any

from .netns import Namespace
from .scenarios.nfqueue import measure_queue

STYLES = {"batches": [], "per-packet": ["--per-packet"]}


def _instructions(count: int, core: str, style: str, keep: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="aionlmmap-nfq-callgrind-") as scratch:
        if keep:
            scratch = keep
        seen: dict[str, Any] = {}

        def argv(receiver: Namespace) -> list[str]:
            import sys

            return [*receiver.exec_prefix(), "valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out", sys.executable, "-m",
                    "benchmarks.contestants.nfqueue", "aionlmmap", "--count", str(count), "--prequeued", *STYLES[style]]

        sample = measure_queue(count, argv, f"aionlmmap-{core}-{style}", prequeued=True, core=core, ready_timeout=300)
        if sample.fields.get("verdicts") != count:
            raise RuntimeError(f"{core}/{style}: {sample.fields.get('verdicts')} verdicts for {count} packets")
        with open(f"{scratch}/out") as out:
            for line in out:
                found = re.match(r"(?:summary|totals): (\d+)", line)
                if found:
                    seen["ir"] = int(found.group(1))
        return int(seen["ir"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.nfqueue_instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=4000, help="N: backlogs of N and 2N packets (default 4000)")
    parser.add_argument("--core", action="append", choices=["compiled", "pure"], help="cores (default both)")
    parser.add_argument("--style", action="append", choices=sorted(STYLES), help="consumer loops (default both)")
    parser.add_argument("--keep", help="profile one run of --packets into this directory (callgrind_annotate DIR/out)")
    args = parser.parse_args(argv)
    if args.keep:
        print(_instructions(args.packets, (args.core or ["compiled"])[0], (args.style or ["batches"])[0], args.keep))
        return 0
    print(f"{'core':10} {'loop':12} {'instructions/packet':>20}")
    for core in args.core or ["compiled", "pure"]:
        for style in args.style or ["batches", "per-packet"]:
            small = _instructions(args.packets, core, style)
            large = _instructions(2 * args.packets, core, style)
            per_packet = (large - small) / args.packets
            print(f"{core:10} {style:12} {per_packet:20.0f}", flush=True)
            print(json.dumps({"core": core, "style": style, "packets": args.packets, "instructions_per_packet": round(per_packet)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
