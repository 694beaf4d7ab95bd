"""A slow consumer under a notification storm: the kernel drops what the
socket cannot hold, the ring reports it (OverrunError inside the monitor),
and the resyncing monitor ends exact anyway."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aionlmmap
from aionlmmap import rtnl
from conftest import ip
from rtnl_helpers import quiet_ipv6

from benchmarks.monitor_differential import View, difference, fresh, normalized

ROUTES = 10_000
PER_MESSAGE = 0.0002  # seconds the consumer spends on each event


async def test_a_consumer_at_0_2_ms_per_event_ends_exact_after_a_10000_route_storm(netns: str, tmp_path: Any) -> None:
    quiet_ipv6(netns)
    ip(netns, "link", "add", "st0", "type", "veth", "peer", "name", "st1")
    ip(netns, "link", "set", "st0", "up")
    ip(netns, "link", "set", "st1", "up")
    ring = aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns)
    view = View()
    async with rtnl.open(netns=netns) as nl:

        async def consume() -> None:
            async for event in nl.monitor(links=False, addresses=False, routes=True, ring=ring):
                view.apply(event)
                time.sleep(PER_MESSAGE)  # a consumer that blocks the loop, as slow code does

        task = asyncio.create_task(consume())
        try:
            await asyncio.sleep(0.5)
            batch = tmp_path / "storm.batch"
            batch.write_text("".join(f"route add 10.{index // 250}.{index % 250}.0/24 dev st0\n" for index in range(ROUTES)))
            process = await asyncio.create_subprocess_exec("ip", "-n", netns, "-batch", str(batch))
            assert await process.wait() == 0
            deadline = time.monotonic() + 60
            while True:
                assert not task.done(), task
                kernel = await fresh(netns, ["route"])
                mine = {key: normalized(key[0], obj) for key, obj in view.state.items()}
                if mine == kernel:
                    break
                assert time.monotonic() < deadline, f"{len(mine)} in view, {len(kernel)} in kernel, stats {ring.stats}, events {view.events}\n" + "\n".join(difference(mine, kernel)[:3])
                await asyncio.sleep(0.5)
            assert len(kernel) > ROUTES
            stats = ring.stats
            lost = stats.overruns + stats.dropped_unsolicited
            print(f"events {view.events}, overruns {stats.overruns}, dropped {stats.dropped_unsolicited}")
            # Either every notification arrived, or the loss was reported
            # (and the monitor dumped again): never a silent gap.
            assert view.events >= ROUTES or lost
            assert view.redundant == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
