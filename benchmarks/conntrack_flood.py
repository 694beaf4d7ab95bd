"""``python3 -m benchmarks.conntrack_flood [--flows 50000] [--rcvbuf BYTES] [--slow] [--udp-timeout 30]``

A flood of short UDP flows in a throwaway namespace (one datagram each to
distinct ports on 127.0.0.1: a NEW and, after the UDP timeout, a DESTROY
event per flow) followed by ``conntrack.monitor(resync=True)``. Prints one
JSON line: events, overruns (each one reported), silent drops caught by the
drop watch, resyncs, and whether the consumer's view was equal to
``conntrack -L`` (entry ids) after the flood, while the flows are still in
the table (``view_after_flood`` entries compared), and again once every
entry has expired (the DESTROY half of the flood).

The timeout outlasts the flood and the settling, so the first comparison
is of a full table: with a 3 s timeout the view and the table were both
empty by the time the consumer had caught up, and "equal" said nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aionlmmap.families.netfilter import conntrack

from .netns import namespace, require_root

_FLOOD = """
import socket, sys
count = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for index in range(count):
    s.sendto(b"x", ("127.0.0.1", 1024 + index % 64000))
"""


def tool_ids(ns: Any) -> set[int]:
    out = ns.run("conntrack", "-L", "-o", "id").stdout
    return {int(part.split("id=")[1].split()[0]) for part in out.splitlines() if "id=" in part}


async def flood_run(ns: Any, flows: int, rcvbuf: int | None, slow: bool, udp_timeout: int) -> dict[str, Any]:
    view: dict[Any, Any] = {}
    options = {} if rcvbuf is None else {"rcvbuf": rcvbuf}
    async with conntrack.open(netns=ns.name) as ct:

        async def consume() -> None:
            async for event in ct.monitor(**options):
                if event.action == "new":
                    view[event.obj.key] = event.obj
                else:
                    view.pop(event.obj.key, None)
                if slow:
                    await asyncio.sleep(0)

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*ns.exec_prefix(), sys.executable, "-c", _FLOOD, str(flows))
        await process.wait()
        flood_seconds = time.perf_counter() - started

        async def settled(limit: float) -> bool:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                if {flow.id for flow in view.values()} == tool_ids(ns):
                    return True
                await asyncio.sleep(0.5)
            return False

        equal_after_flood = await settled(udp_timeout / 2)
        view_after_flood = len(view)
        settle_seconds = time.perf_counter() - started - flood_seconds
        await asyncio.sleep(max(0.0, udp_timeout + 1 - (time.perf_counter() - started)))
        equal_after_expiry = await settled(60)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        stats = ct.monitor_stats
        return {
            "contestant": "aionlmmap conntrack.monitor(resync=True)" + (" slow consumer" if slow else ""),
            "flows": flows,
            "rcvbuf": rcvbuf or "default (1 MiB)",
            "flood_seconds": round(flood_seconds, 2),
            "events": stats.events,
            "overruns": stats.overruns,
            "silent_drops": stats.silent_drops,
            "resyncs": stats.resyncs,
            "udp_timeout": udp_timeout,
            "view_after_flood": view_after_flood,
            "settle_seconds": round(settle_seconds, 2),
            "equal_to_conntrack_L_after_flood": equal_after_flood,
            "equal_to_conntrack_L_after_expiry": equal_after_expiry,
            "view_after_expiry": len(view),
            "decode_errors": ct.counts.malformed,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=50_000)
    parser.add_argument("--rcvbuf", type=int, default=None)
    parser.add_argument("--slow", action="store_true", help="one loop turn per event")
    parser.add_argument("--udp-timeout", type=int, default=30, help="nf_conntrack_udp_timeout in the namespace: longer than the flood and its settling")
    args = parser.parse_args(argv)
    require_root()
    with namespace("ct") as ns:
        ns.run("nft", "add", "table", "inet", "bench")
        ns.run("nft", "add chain inet bench out { type filter hook output priority 0; }")
        ns.run("nft", "add", "rule", "inet", "bench", "out", "ct", "state", "new", "counter")
        ns.run("sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={args.udp_timeout}")
        record = asyncio.run(flood_run(ns, args.flows, args.rcvbuf, args.slow, args.udp_timeout))
    print(json.dumps(record))
    exact = record["equal_to_conntrack_L_after_flood"] and record["equal_to_conntrack_L_after_expiry"]
    return 0 if exact and record["view_after_flood"] == args.flows else 1


if __name__ == "__main__":
    sys.exit(main())
