"""The conntrack monitor: events from real traffic, and a bounded flood of
short flows read by a slow consumer: every loss is reported (overruns
counted) and the resynced view equals ``conntrack -L``."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import aionlmmap
from aionlmmap import NETLINK_NETFILTER

from aionlmmap import OverrunError
from aionlmmap.families import conntrack
from aionlmmap.families.conntrack import TupleSpec
from tests.conftest import run
from tests.test_conntrack import _enable_conntrack, conntrack_xml

pytestmark = pytest.mark.integration

_FLOOD = """
import socket, sys
first, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(first, first + count):
    s.sendto(b"x", ("127.0.0.1", port))
"""


async def flood(ns: str, first_port: int, count: int) -> None:
    process = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, sys.executable, "-c", _FLOOD, str(first_port), str(count))
    assert await asyncio.wait_for(process.wait(), 60) == 0


async def settle(view: dict[Any, Any], ns: str, limit: float = 20.0) -> tuple[int, int] | None:
    """Wait (bounded) until the view matches ``conntrack -L``; None when it
    did, else (view size, tool size) at the last look.

    The comparison is made at one instant (the tool runs while the loop is
    blocked, so the view cannot move meanwhile) and its result is what the
    test asserts. Comparing again afterwards would race the flows' 2 s UDP
    timeout: an entry that expires in between drops out of ``conntrack -L``
    at once (ctnetlink_dump_table skips expired entries) while its DESTROY
    event is still on its way to the monitor."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        tool = conntrack_xml(ns)
        held = {flow.id for flow in view.values()}
        if held == set(tool):
            return None
        if loop.time() >= deadline:
            return len(held), len(tool)
        await asyncio.sleep(0.3)


async def test_events_for_create_update_delete(netns: str) -> None:
    _enable_conntrack(netns)
    spec = TupleSpec("192.0.2.7", "198.51.100.7", "udp", sport=5353, dport=53)
    async with conntrack.open(netns=netns) as ct:
        events = ct.monitor(resync=False)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)  # the monitor's ring joins its groups
        await ct.create(spec, timeout=60, mark=1)
        new = await asyncio.wait_for(first, 5)
        assert (new.action, new.obj.original.dport, new.obj.mark) == ("new", 53, 1)
        await ct.update(spec, mark=2)
        update = await asyncio.wait_for(events.__anext__(), 5)
        assert (update.action, update.obj.mark) == ("new", 2)
        await ct.delete(spec)
        gone = await asyncio.wait_for(events.__anext__(), 5)
        assert (gone.action, gone.obj.original.sport) == ("del", 5353)
        await events.aclose()


async def test_slow_consumer_flood_reports_every_loss_and_resyncs_exactly(netns: str) -> None:
    _enable_conntrack(netns)
    # Short UDP timeouts make entries expire during the run, so the flood
    # brings NEW and DESTROY events both.
    run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=2")
    ring = aionlmmap.open(NETLINK_NETFILTER, netns=netns, rcvbuf=65536)
    async with conntrack.open(netns=netns) as ct:
        view: dict[Any, Any] = {}

        async def consume() -> None:
            async for event in ct.monitor(ring=ring):
                if event.action == "new":
                    view[event.obj.key] = event.obj
                else:
                    view.pop(event.obj.key, None)
                await asyncio.sleep(0)  # a slow consumer: one loop turn per event

        consumer = asyncio.ensure_future(consume())
        try:
            await asyncio.sleep(0.3)
            for round_number in range(3):
                await flood(netns, 10000 + round_number * 3000, 3000)
            assert await settle(view, netns) is None, "the view never matched conntrack -L after the flood (view, tool sizes)"
            # Every overrun the ring read reaches the monitor, in order: wait
            # (bounded) for the consumer to get past the last one.
            for _ in range(100):
                if ring.stats.overruns == ct.monitor_stats.overruns:
                    break
                await asyncio.sleep(0.1)
            assert ct.monitor_stats.overruns >= 1, "a 64 KiB buffer must overrun under 9,000 events"
            assert ring.stats.overruns == ct.monitor_stats.overruns, "every overrun is reported to the monitor"
            assert ct.monitor_stats.resyncs == ct.monitor_stats.overruns + ct.monitor_stats.silent_drops + 1
            assert await settle(view, netns) is None, "the view drifted from conntrack -L (view, tool sizes)"
            # Everything expires: the view must empty too (a DESTROY event
            # or a resync for each of the 9,000 flows).
            for _ in range(100):
                if not conntrack_xml(netns):
                    break
                await asyncio.sleep(0.3)
            assert await settle(view, netns, limit=30.0) is None, "expired flows stayed in the view (view, tool sizes)"
            assert not view
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


async def test_without_resync_an_overrun_raises_and_iteration_goes_on(netns: str) -> None:
    _enable_conntrack(netns)
    async with conntrack.open(netns=netns) as ct:
        events = ct.monitor(resync=False, rcvbuf=16384)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)
        # Synchronously: the loop does not read while the flood runs, so the
        # 16 KiB receive buffer must overflow.
        run("ip", "netns", "exec", netns, sys.executable, "-c", _FLOOD, "20000", "3000")
        await first
        seen_overrun = False
        for _ in range(10000):
            try:
                await asyncio.wait_for(events.__anext__(), 2)
            except OverrunError:
                seen_overrun = True
                break
            except asyncio.TimeoutError:
                break
        assert seen_overrun
        assert ct.monitor_stats.overruns == 1
        await events.aclose()
