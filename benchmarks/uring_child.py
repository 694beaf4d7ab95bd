"""A receiver for benchmarks/uring_syscalls.py, run inside its namespace:
``python -m benchmarks.uring_child dump|storm BACKEND``.

It opens a ring with BACKEND, prints ``ready``, waits for ``go`` on stdin
(so that strace can attach to exactly the measured part), then either dumps
the IPv4 routes once or counts route notifications until the sentinel
route (table 242) or 3 s of quiet. Prints ``{"count", "elapsed",
"overruns", "rx_syscalls", "tx_syscalls"}``.
"""

from __future__ import annotations

import asyncio
import json
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


async def main(mode: str, backend: str) -> None:
    groups = [RTNLGRP_IPV4_ROUTE] if mode == "storm" else []
    async with aionlmmap.open(backend=backend, groups=groups, rcvbuf=8 << 20 if groups else None) as ring:  # type: ignore[arg-type]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        tally = {"first": 0.0, "last": 0.0, "overruns": 0.0}
        started = time.perf_counter()
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
        print(json.dumps({
            "count": count,
            "elapsed": elapsed,
            "overruns": int(tally["overruns"]),
            "rx_syscalls": ring.stats.rx_syscalls,
            "tx_syscalls": ring.stats.tx_syscalls,
        }), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
