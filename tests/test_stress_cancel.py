"""Cancellation at any await leaves the ring usable: random cancellation of
every public awaitable under concurrent traffic.

On a ring joined to RTNLGRP_LINK, with link notifications arriving (MTU
changes made through a second ring) and several workers running requests,
``request_many`` (plain and atomic), link and 20,000-route dumps (streamed
and ``dump_all``), ``drain``, the iterator's ``__anext__`` and whole
iteration loops, each call is cancelled at a random point
(``asyncio.wait_for`` with a 0-2 ms timeout, or ``task.cancel()`` after a
random sleep). After each round a fresh dump must answer correctly, and
once it has, nothing of the cancelled calls may be left: no pending
request, no active dump, no queued dump waiter, no stale sequence number.

The seed is printed; rerun one with STRESS_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from typing import Any

import pytest

import aionlmmap
from aionlmmap import AttributeBuilder, Message, OverrunError
from aionlmmap.constants import NLM_F_REQUEST, NLMSG_NOOP, RTM_GETLINK, RTM_NEWLINK, RTM_NEWROUTE, RTNLGRP_LINK

from conftest import ip, run
from rtnl_raw import getlink_dump, getroute_dump, ifindex

pytestmark = pytest.mark.integration

IFLA_MTU = 4
ROUTES = 20000
LINKS = 3  # lo, cx0, cx1
GET_LO = Message(RTM_GETLINK, NLM_F_REQUEST, payload=struct.pack("=BxHiII", 0, 0, 1, 0, 0))
#: a message the kernel takes without answering (no NLM_F_ACK): traffic for drain()
QUIET = Message(NLMSG_NOOP, NLM_F_REQUEST)
#: the time one test may spend cancelling, per loop, and the most cancellations
BUDGET = 20.0
MAX_CANCELS = 400
#: the fewest cancellations a run must make: a loaded machine gets through
#: fewer rounds in BUDGET, so the run goes on past it (up to HARD_BUDGET)
#: until it has made them
MIN_CANCELS = 50
HARD_BUDGET = 120.0


def set_mtu(index: int, mtu: int) -> Message:
    payload = struct.pack("=BxHiII", 0, 0, index, 0, 0) + AttributeBuilder().add(IFLA_MTU, struct.pack("=I", mtu)).build()
    return Message(RTM_NEWLINK, NLM_F_REQUEST, payload=payload)


async def operation(ring: aionlmmap.Ring, kind: str, rng: random.Random) -> Any:
    """One call of the public API, of ``kind``."""
    if kind == "request":
        return await ring.request(GET_LO)
    if kind == "request_many":
        return await ring.request_many([GET_LO] * rng.randrange(1, 3 * ring.max_in_flight))
    if kind == "request_many_atomic":
        return await ring.request_many([GET_LO] * rng.randrange(1, 20), atomic=True)
    if kind in ("dump_link", "dump_route"):
        count = 0
        async for _msg in ring.dump(getlink_dump() if kind == "dump_link" else getroute_dump()):
            count += 1
            if rng.random() < 0.01:
                await asyncio.sleep(0)
        return count
    if kind == "dump_all_link":
        return await ring.dump_all(getlink_dump())
    if kind == "dump_all_route":
        return await ring.dump_all(getroute_dump())
    if kind == "drain":
        ring.send_nowait(*[QUIET] * rng.randrange(1, 50))
        return await ring.drain()
    if kind == "anext":
        try:
            return await anext(aiter(ring))
        except OverrunError:
            return None
    if kind == "iterate":
        while True:
            try:
                async for _msg in ring:
                    if rng.random() < 0.2:
                        await asyncio.sleep(rng.uniform(0, 0.0005))
            except OverrunError:
                pass
    raise AssertionError(kind)


KINDS = ["request", "request_many", "request_many_atomic", "dump_link", "dump_route", "dump_all_link", "dump_all_route", "drain", "anext", "iterate"]


async def cancelled(ring: aionlmmap.Ring, kind: str, rng: random.Random) -> bool:
    """Run one operation and cancel it at a random point; True if it was
    cancelled before it finished."""
    if rng.random() < 0.5:
        try:
            await asyncio.wait_for(operation(ring, kind, rng), rng.uniform(0, 0.002))
        except TimeoutError:
            return True
        except OverrunError:
            pass  # a request whose answer was lost: allowed, it says so
        return False
    task = asyncio.create_task(operation(ring, kind, rng))
    await asyncio.sleep(rng.choice([0, rng.uniform(0, 0.002), rng.uniform(0, 0.05)]))
    was_done = task.done()
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    if isinstance(results[0], BaseException) and not isinstance(results[0], (asyncio.CancelledError, OverrunError)):
        raise results[0]
    return not was_done


def leftovers(ring: aionlmmap.Ring) -> dict[str, Any]:
    """The state a cancelled call could leave behind (empty when clean)."""
    state: dict[str, Any] = {}
    if ring._proto.pending:
        pending = list(ring._proto.pending.values())
        state["pending"] = f"{len(pending)}: {pending[:3]}"
    if ring._active_dump is not None:
        state["active_dump"] = ring._active_dump
    waiters = [w for w in ring._dump_slot_waiters if not w.done()]
    if waiters:
        state["dump_waiters"] = len(waiters)
    if ring._stale_seqs:
        state["stale_seqs"] = sorted(ring._stale_seqs)
    if ring._drain_waiters:
        state["drain_waiters"] = len(ring._drain_waiters)
    return state


async def check_answers(ring: aionlmmap.Ring, routes: bool) -> None:
    """A fresh dump answers correctly, then nothing is left behind."""
    async with asyncio.timeout(15):
        links = await ring.dump_all(getlink_dump())
        assert len(links) == LINKS, [m.type for m in links]
        if routes:
            count = 0
            async for msg in ring.dump(getroute_dump()):
                count += msg.type == RTM_NEWROUTE
            assert count >= ROUTES
        assert len(await ring.request(GET_LO)) == 1
    await asyncio.sleep(0)
    assert leftovers(ring) == {}


@pytest.fixture
def route_netns(netns: str) -> str:
    ip(netns, "link", "add", "cx0", "type", "veth", "peer", "name", "cx1")
    ip(netns, "link", "set", "cx0", "up")
    batch = "".join(f"route add 10.{i // 256}.{i % 256}.1/32 dev cx0\n" for i in range(ROUTES))
    run("ip", "-n", netns, "-batch", "-", input=batch)
    return netns


# uring replays the seed that hung a dump there: refills that found the
# producer's head frame still pinned left the ring starved with no drain to
# pause it or copy that frame out (backends/uring.py, UringBackend._refill).
@pytest.mark.parametrize(("backend", "fixed_seed"), [("auto", None), ("uring", 910674784)])
async def test_random_cancellation_of_every_call_leaves_the_ring_answering(route_netns: str, backend: str, fixed_seed: int | None) -> None:
    netns = route_netns
    seed = int(os.environ.get("STRESS_SEED", fixed_seed if fixed_seed is not None else random.randrange(1 << 30)))
    print(f"cancellation stress: seed {seed} (rerun with STRESS_SEED={seed})")
    rng = random.Random(seed)
    index = ifindex(netns, "cx1")
    cancels = calls = rounds = 0
    by_kind: dict[str, int] = {}
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as churn, aionlmmap.open(
        aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns, backend=backend
    ) as ring:

        async def notify() -> None:
            mtu = 1500
            while True:
                mtu = 1280 + (mtu - 1279) % 4000
                await churn.request(set_mtu(index, mtu))
                await asyncio.sleep(0.001)

        notifier = asyncio.create_task(notify())
        try:
            start = time.monotonic()
            while cancels < MAX_CANCELS and time.monotonic() - start < (BUDGET if cancels >= MIN_CANCELS else HARD_BUDGET):
                rounds += 1
                kinds = [rng.choice(KINDS) for _ in range(rng.randrange(1, 4))]
                iterators = [kind for kind in kinds if kind in ("anext", "iterate")]
                for extra in iterators[1:]:  # one consumer per ring (a second one gets BusyResourceError)
                    kinds.remove(extra)
                # several calls at once on the same ring, each cancelled on its own
                results = await asyncio.gather(*(cancelled(ring, kind, random.Random(rng.random())) for kind in kinds))
                calls += len(kinds)
                for kind, was_cancelled in zip(kinds, results):
                    if was_cancelled:
                        cancels += 1
                        by_kind[kind] = by_kind.get(kind, 0) + 1
                try:
                    await check_answers(ring, routes=rounds % 10 == 0)
                except BaseException:
                    print(f"round {rounds} ({kinds}) left {leftovers(ring)}; stats {ring.stats}")
                    raise
        finally:
            notifier.cancel()
            await asyncio.gather(notifier, return_exceptions=True)
    print(f"{rounds} rounds, {calls} calls, {cancels} cancelled mid-way: {dict(sorted(by_kind.items()))}; stats {ring.stats}")
    assert cancels >= MIN_CANCELS


async def test_a_dump_behind_an_abandoned_one_reads_past_unread_notifications(route_netns: str) -> None:
    # Found by the stress above (issue 14, defect 2): a route dump cancelled
    # mid-way keeps the dump slot until its NLMSG_DONE is read; the kernel
    # sends the rest only as the ring reads, and notifications nobody reads
    # held the producer at its head, while a task waiting for the slot did
    # not count as starving, so nothing copied them out: every later dump hung.
    netns = route_netns
    index = ifindex(netns, "cx1")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as churn, aionlmmap.open(
        aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns
    ) as ring:
        for attempt in range(3):
            seen = 0
            async for _msg in ring.dump(getroute_dump()):
                seen += 1
                if seen == 1000:
                    # notifications arrive while the dump is abandoned and nobody iterates
                    await churn.request_many([set_mtu(index, 1300 + attempt * 100 + i) for i in range(80)])
                    await asyncio.sleep(0.01)
                    break
            async with asyncio.timeout(10):
                links = await ring.dump_all(getlink_dump())
            assert len(links) == LINKS
            assert leftovers(ring) == {}


async def test_a_request_many_cancelled_between_chunks_leaves_nothing_waiting(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        task = asyncio.create_task(ring.request_many([GET_LO] * (5 * ring.max_in_flight)))
        while ring.stats.tx_messages < ring.max_in_flight:  # the first chunk is out
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with asyncio.timeout(10):
            assert len(await ring.request(GET_LO)) == 1
        # Before the fix, the unsent chunks stayed admitted forever.
        assert leftovers(ring) == {}


async def test_a_dump_that_cannot_be_sent_holds_no_slot(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        huge = Message(RTM_GETLINK, getlink_dump().flags, payload=bytes(ring.tx_config.frame_size))
        with pytest.raises(ValueError):
            async for _msg in ring.dump(huge):
                pass
        assert leftovers(ring) == {}
        async with asyncio.timeout(10):
            assert len(await ring.dump_all(getlink_dump())) == 1


async def test_a_suspended_dump_iterator_holds_the_slot_until_closed(netns: str) -> None:
    # What docs/ring.md says a kept, never-resumed dump iterator does.
    ip(netns, "link", "add", "sx0", "type", "veth", "peer", "name", "sx1")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        kept = ring.dump(getlink_dump())
        await anext(kept)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ring.dump_all(getlink_dump()), 0.3)
        await kept.aclose()
        async with asyncio.timeout(10):
            assert len(await ring.dump_all(getlink_dump())) == 3
        assert leftovers(ring) == {}
