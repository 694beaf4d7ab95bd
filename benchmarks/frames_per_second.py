"""Frames per second through each ring backend.

    python3 benchmarks/frames_per_second.py [--acks 20000] [--links 2000] [--repeat 5]

Contestants, measured in the same run with interleaved repetitions (so a
noisy neighbour slows all alike), one JSON line each with the median:

- ``emulated/real-kernel``: the emulated backend on this machine's kernel,
  in a throwaway network namespace (deleted afterwards).
- ``kernel/simulated-kernel``: the kernel ring backend against
  ``aionlmmap.testing.SimulatedKernel``. The simulated kernel runs in Python
  in the same process, so this figure includes the kernel's work too: it is
  a lower bound for the kernel backend on a real pre-4.6 kernel.

Workloads:
- ``acks``: NLMSG_NOOP requests with NLM_F_ACK sent in batches of 64 with
  ``send_nowait`` and their ACKs read with ``async for``: one message per RX
  frame on both backends, so frames/s is the per-frame cost of the path
  (TX flush, readiness, frame walk, parse, release).
- ``dump``: a link dump (``dump_all``) of ``--links`` links: many messages
  per frame; messages/s and frames/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aionlmmap
from aionlmmap import Message
from aionlmmap.constants import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_ERROR, NLMSG_NOOP, RTM_GETLINK
from aionlmmap.testing import SimulatedKernel
from benchmarks.netns import netns_name

BATCH = 64


async def acks_workload(ring: aionlmmap.Ring, count: int) -> tuple[float, int, int]:
    """Seconds, frames walked, messages for ``count`` ACKs."""
    frames_before = ring.stats.frames
    received = 0
    started = time.perf_counter()
    iterator = ring.__aiter__()
    seq = 1_000_000
    while received < count:
        burst = min(BATCH, count - received)
        for _ in range(burst):
            seq += 1
            ring.send_nowait(Message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq))
        for _ in range(burst):
            msg = await iterator.__anext__()
            assert msg.type == NLMSG_ERROR
            received += 1
    elapsed = time.perf_counter() - started
    await iterator.aclose()  # type: ignore[attr-defined]
    return elapsed, ring.stats.frames - frames_before, received


async def dump_workload(ring: aionlmmap.Ring, links: int) -> tuple[float, int, int]:
    frames_before = ring.stats.frames
    started = time.perf_counter()
    count = 0
    async for _msg in ring.dump(Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16))):
        count += 1
    elapsed = time.perf_counter() - started
    assert count >= links, (count, links)
    return elapsed, ring.stats.frames - frames_before, count


def run(*args: str, input: str | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, input=input, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acks", type=int, default=20000)
    parser.add_argument("--links", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    netns = netns_name()
    run("ip", "netns", "add", netns)
    try:
        run("ip", "-n", netns, "link", "set", "lo", "up")
        # veth pairs: links for the dump (this kernel may lack the dummy module)
        pairs = args.links // 2
        batch = "".join(f"link add fa{i} type veth peer name fb{i}\n" for i in range(pairs))
        run("ip", "-n", netns, "-batch", "-", input=batch)
        kernel = SimulatedKernel()
        for i in range(pairs * 2):
            kernel.rtnl.add_link(f"s{i}")

        contestants: dict[str, Callable[[], Any]] = {
            "emulated/real-kernel": lambda: aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, backend="emulated"),
            "kernel/simulated-kernel": lambda: kernel.open(aionlmmap.NETLINK_ROUTE),
        }
        workloads: dict[str, Callable[[aionlmmap.Ring], Awaitable[tuple[float, int, int]]]] = {
            "acks": lambda ring: acks_workload(ring, args.acks),
            "dump": lambda ring: dump_workload(ring, pairs * 2),
        }
        samples: dict[tuple[str, str], list[tuple[float, int, int]]] = {}

        async def measure() -> None:
            for _ in range(args.repeat):
                for workload, job in workloads.items():
                    for name, opener in contestants.items():
                        async with opener() as ring:
                            samples.setdefault((workload, name), []).append(await job(ring))

        asyncio.run(measure())
        for (workload, name), runs in samples.items():
            seconds = statistics.median(r[0] for r in runs)
            frames = runs[0][1]
            messages = runs[0][2]
            print(
                json.dumps(
                    {
                        "benchmark": "frames_per_second",
                        "workload": workload,
                        "contestant": name,
                        "median_seconds": round(seconds, 4),
                        "frames": frames,
                        "messages": messages,
                        "frames_per_second": round(frames / seconds),
                        "messages_per_second": round(messages / seconds),
                        "us_per_frame": round(seconds / frames * 1e6, 2),
                        "repeat": len(runs),
                    }
                )
            )
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


if __name__ == "__main__":
    main()
