"""A receiver for benchmarks/uring_syscalls.py, run inside its namespace:
``python -m benchmarks.uring_child dump|storm|nfqueue BACKEND [COUNT]``.

It opens a ring with BACKEND, prints ``ready``, waits for ``go`` on stdin
(so that strace can attach to exactly the measured part), then dumps the
IPv4 routes once, counts route notifications until the sentinel route
(table 242) or 3 s of quiet, or accepts COUNT packets of nfqueue 0 (queued
before ``go``: timed on the backlog alone). Prints ``{"count", "elapsed",
"cpu", "overruns", "rx_syscalls", "tx_syscalls"}``; ``cpu`` is the
process's user + system seconds over the measured part (io_uring's receive
work runs in this thread, so it is counted).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import struct
import sys
import time

import aionlmmap
from aionlmmap import Message, OverrunError
from aionlmmap.constants import NLM_F_DUMP, NLM_F_REQUEST, RTM_GETROUTE, RTM_NEWROUTE

RTNLGRP_IPV4_ROUTE = 7
SENTINEL_TABLE = 242
RTMSG = struct.Struct("=BBBBBBBBI")


async def dump(ring: aionlmmap.Ring) -> int:
    count = 0
    request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, payload=RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))
    async for _msg in ring.dump(request):
        count += 1
    return count


async def storm(ring: aionlmmap.Ring, tally: dict[str, float]) -> int:
    count = 0
    for _attempt in range(1000):  # bounded: one round per overrun
        try:
            async for msg in ring:
                if not tally["first"]:
                    tally["first"] = time.perf_counter()
                tally["last"] = time.perf_counter()
                if msg.type == RTM_NEWROUTE and msg.payload[4] == SENTINEL_TABLE:
                    return count
                count += 1
        except OverrunError:
            tally["overruns"] += 1
    return count


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def nfqueue_main(backend: str, count: int) -> None:
    from aionlmmap.families.netfilter import nfqueue

    async with nfqueue.open(0, fail_open=False, maxlen=count + 1024, rcvbuf=256 << 20, backend=backend) as queue:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu = cpu_seconds()
        system = system_seconds()
        elapsed = await nfqueue.accept_packets(queue, count, timeout=120)
        ring = queue.ring
        await ring.drain()  # the last verdicts are out
        cpu = cpu_seconds() - cpu
        system = system_seconds() - system
        print(json.dumps({
            "count": count,
            "elapsed": elapsed,
            "cpu": cpu,
            "system": system,
            "overruns": 0,
            "rx_syscalls": ring.stats.rx_syscalls,
            "tx_syscalls": ring.stats.tx_syscalls,
        }), flush=True)


async def main(mode: str, backend: str) -> None:
    if mode == "nfqueue":
        await nfqueue_main(backend, int(sys.argv[3]))
        return
    groups = [RTNLGRP_IPV4_ROUTE] if mode == "storm" else []
    async with aionlmmap.open(backend=backend, groups=groups, rcvbuf=8 << 20 if groups else None) as ring:  # type: ignore[arg-type]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        tally = {"first": 0.0, "last": 0.0, "overruns": 0.0}
        started = time.perf_counter()
        cpu = cpu_seconds()
        system = system_seconds()
        if mode == "dump":
            count = await dump(ring)
            elapsed = time.perf_counter() - started
        else:
            task = asyncio.ensure_future(storm(ring, tally))
            for _ in range(1200):  # 120 s at most; 3 s of quiet ends it
                await asyncio.sleep(0.1)
                if task.done() or (tally["last"] and time.perf_counter() - tally["last"] > 3):
                    break
            task.cancel()
            try:
                count = await task
            except asyncio.CancelledError:
                count = int(ring.stats.unsolicited)
            elapsed = (tally["last"] - tally["first"]) or 1e-9
        cpu = cpu_seconds() - cpu
        system = system_seconds() - system
        print(json.dumps({
            "count": count,
            "elapsed": elapsed,
            "cpu": cpu,
            "system": system,
            "overruns": int(tally["overruns"]),
            "rx_syscalls": ring.stats.rx_syscalls,
            "tx_syscalls": ring.stats.tx_syscalls,
        }), flush=True)


if __name__ == "__main__":
    profile_path = os.environ.get("AIONLMMAP_BENCH_PROFILE")
    if profile_path:
        # benchmarks/uring_profile.py: where the receiver's Python time goes
        import cProfile

        cProfile.run("asyncio.run(main(sys.argv[1], sys.argv[2]))", profile_path)
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
