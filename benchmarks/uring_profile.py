"""Where the receiver's Python time goes, per backend, in one scenario of
benchmarks/uring_syscalls.py: ``python -m benchmarks.uring_profile
[--scenario nfqueue|dump|storm] [--backends emulated,uring] [--top 25]``
(root; its own namespaces). The child runs under cProfile (slower than
the timed runs: compare the shapes, not the rates).

``--instructions``: user-space instructions per message instead, for
nfqueue or dump (callgrind, two backlog or table sizes, the difference
over the difference: the setup cancels out), immune to a shared machine's
load; the kernel's side (the receive and send work) is not counted."""

from __future__ import annotations

import argparse
import os
import pstats
import re
import subprocess
import sys
import tempfile
from typing import Any

from . import cbuild, uring_syscalls
from .netns import namespace, namespace_pair
from .runner import REPO, child_env, run_child
from .scenarios.nfqueue import PAYLOAD, PORT, RECEIVER_ADDRESS, install_queue_rule


def _callgrind_child(space: Any, mode: str, backend: str, count: int, keep: str | None, before_go: Any = None) -> int:
    """Instructions (callgrind's Ir) of one uring_child run, setup included."""
    with tempfile.TemporaryDirectory(prefix="aionlmmap-callgrind-") as scratch:
        argv = [*space.exec_prefix(), "valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out",
                sys.executable, "-m", "benchmarks.uring_child", mode, backend, str(count)]
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                 env=dict(child_env(), PYTHONHASHSEED="0"))
        assert child.stdin is not None and child.stdout is not None
        try:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{backend}: the child did not get ready: {child.stderr.read()[-500:] if child.stderr else ''}")
            if before_go is not None:
                before_go()
            child.stdin.write("go\n")
            child.stdin.flush()
            _out, err = child.communicate(timeout=1200)
            if keep:
                os.replace(f"{scratch}/out", keep)
        finally:
            if child.poll() is None:
                child.kill()
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output: {err[-500:]}")
    return int(found.group(1))


def nfqueue_instructions(backend: str, packets: int, keep: str | None = None) -> int:
    """Instructions of the nfqueue receiver accepting a backlog of ``packets``."""
    flood_binary = str(cbuild.build("udp_flood"))
    with namespace_pair("uring-ir") as (sender, receiver):
        install_queue_rule(receiver)

        def flood() -> None:
            result = run_child([*sender.exec_prefix(), flood_binary, RECEIVER_ADDRESS, str(PORT), str(packets), str(PAYLOAD)], timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"the flood sender failed: {result.stderr.strip()[-300:]}")

        return _callgrind_child(receiver, "nfqueue", backend, packets, keep, flood)


def dump_instructions(backend: str, routes: int, keep: str | None = None) -> int:
    """Instructions of the receiver dumping a table of ``routes`` routes."""
    with namespace("uring-ir") as space:
        space.add_route_device()
        space.add_routes(routes)
        return _callgrind_child(space, "dump", backend, 0, keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="nfqueue", choices=("nfqueue", "dump", "storm"))
    parser.add_argument("--backends", default="emulated,uring")
    parser.add_argument("--count", type=int, default=50_000, help="packets, routes or events")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--instructions", action="store_true", help="user-space instructions per message (callgrind; nfqueue, dump)")
    parser.add_argument("--keep", help="with --instructions: keep the larger run's callgrind output in this directory")
    options = parser.parse_args()
    if options.instructions:
        if options.scenario == "storm":
            raise SystemExit("--instructions: nfqueue or dump (a storm under valgrind overruns)")
        measure = nfqueue_instructions if options.scenario == "nfqueue" else dump_instructions
        small, large = options.count // 5, options.count
        for backend in options.backends.split(","):
            keep = f"{options.keep}/callgrind.{options.scenario}.{backend}.{large}" if options.keep else None
            counts = [measure(backend, small), measure(backend, large, keep)]
            per_item = (counts[1] - counts[0]) / (large - small)
            core = "pure" if os.environ.get("AIONLMMAP_NO_EXTENSIONS") else "compiled"
            print(f"{options.scenario} {backend:8} ({core} core): {per_item:8.0f} instructions per message (Ir {counts[0]} at {small}, {counts[1]} at {large})",
                  flush=True)
        return
    for backend in options.backends.split(","):
        handle, path = tempfile.mkstemp(prefix=f"aionlmmap-profile-{backend}-")
        os.close(handle)
        os.environ["AIONLMMAP_BENCH_PROFILE"] = path
        try:
            if options.scenario == "nfqueue":
                result, _ = uring_syscalls._nfqueue_once(backend, False, options.count)
            elif options.scenario == "storm":
                result, _ = uring_syscalls._storm_once(backend, False, options.count // 2)
            else:
                from .netns import namespace

                with namespace("uring-prof") as space:
                    space.add_route_device()
                    space.add_routes(options.count)
                    result, _ = uring_syscalls._python_child(space, "dump", backend, False, 0)
            print(f"== {backend}: {result}")
            pstats.Stats(path).sort_stats("tottime").print_stats(options.top)
        finally:
            del os.environ["AIONLMMAP_BENCH_PROFILE"]
            os.unlink(path)


if __name__ == "__main__":
    main()
