"""Atomic nfnetlink batches through the core Ring (request_many(atomic=True))."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct

import pytest

import aionlmmap
from aionlmmap import AttributeBuilder, Message, NetlinkError
from aionlmmap.ring import Ring
from aionlmmap.constants import NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST

from conftest import run

pytestmark = pytest.mark.integration

NFT_MSG_NEWTABLE = 0
NFTA_TABLE_NAME = 1


def nfgen(family: int, res_id: int = 0) -> bytes:
    return struct.pack("=BBH", family, 0, socket.htons(res_id))


def begin() -> Message:
    return Message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, payload=nfgen(socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES))


def end() -> Message:
    return Message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, payload=nfgen(socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES))


def new_table(name: str | None, family: int = socket.AF_INET) -> Message:
    attrs = AttributeBuilder()
    if name is not None:
        attrs.add_str(NFTA_TABLE_NAME, name)
    return Message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, payload=nfgen(family) + attrs.build())


def tables(netns: str) -> str:
    return run("ip", "netns", "exec", netns, "nft", "list", "tables").stdout


def datagrams_sent(ring: Ring) -> int:
    """Datagrams the ring sent: a syscall each on emulated; uring submits
    several SENDMSGs with one io_uring_enter (what tx_syscalls counts)."""
    if ring.backend == "uring":
        return ring._backend.tx_datagrams  # type: ignore[attr-defined, no-any-return]
    return ring.stats.tx_syscalls


async def test_a_good_batch_is_applied_in_one_datagram(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_NETFILTER, netns=netns) as ring:
        before = datagrams_sent(ring)
        await asyncio.wait_for(ring.request_many([begin(), new_table("t1"), new_table("t2"), end()], atomic=True), 10)
        assert datagrams_sent(ring) - before == 2  # the batch, then the barrier
    listed = tables(netns)
    assert "table ip t1" in listed and "table ip t2" in listed


async def test_a_failing_batch_raises_changes_nothing_and_never_hangs(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_NETFILTER, netns=netns) as ring:
        await ring.request_many([begin(), new_table("kept"), end()], atomic=True)
        with pytest.raises(NetlinkError) as caught:
            await asyncio.wait_for(ring.request_many([begin(), new_table("fresh"), new_table("kept"), end()], atomic=True), 10)
        assert caught.value.errno == errno.EEXIST
        # the ring still works afterwards
        await asyncio.wait_for(ring.request_many([begin(), new_table("later"), end()], atomic=True), 10)
    listed = tables(netns)
    assert "fresh" not in listed
    assert "kept" in listed and "later" in listed


async def test_an_atomic_batch_never_shares_a_datagram_with_earlier_messages(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_NETFILTER, netns=netns) as ring:
        # A plain request queued in the same loop iteration must not end up in
        # front of BATCH_BEGIN (the kernel would not see a batch then).
        plain = ring.request_many([new_table("plain")])
        batch = ring.request_many([begin(), new_table("batched"), end()], atomic=True)
        results = await asyncio.wait_for(asyncio.gather(plain, batch, return_exceptions=True), 10)
        # outside a batch nf_tables refuses table creation with EOPNOTSUPP or similar;
        # what matters is that the batch itself went through
        assert not isinstance(results[1], BaseException)
    assert "batched" in tables(netns)


# -- non-atomic request_many: many requests, one datagram per chunk --------------------------
RTM_NEWROUTE = 24
RTMSG = struct.Struct("=BBBBBBBBI")
RTA_DST, RTA_OIF = 1, 4


def route_add(index: int) -> Message:
    """RTM_NEWROUTE 10.77.x.y/32 dev lo, NLM_F_EXCL: a second add of the same index fails with EEXIST."""
    payload = RTMSG.pack(socket.AF_INET, 32, 0, 0, 254, 4, 253, 1, 0) + (
        AttributeBuilder().add(RTA_DST, bytes([10, 77, index >> 8, index & 0xFF])).add_u32(RTA_OIF, 1).build()
    )
    return Message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, payload=payload)


def routes_added(netns: str) -> set[str]:
    return {line.split()[0] for line in run("ip", "-n", netns, "route", "show", "proto", "static").stdout.splitlines() if line.startswith("10.77.")}


async def test_request_many_answers_every_request_across_chunks(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        count = 2 * ring.max_in_flight + 5  # three datagrams
        replies = await asyncio.wait_for(ring.request_many([route_add(index) for index in range(count)]), 30)
        assert replies == [[]] * count  # ACKed, no data
        assert ring.stats.tx_syscalls <= 4
    assert len(routes_added(netns)) == count


async def test_request_many_raises_the_first_error_and_the_others_still_apply(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        await ring.request(route_add(1))
        with pytest.raises(NetlinkError) as caught:
            await asyncio.wait_for(ring.request_many([route_add(0), route_add(1), route_add(2), route_add(0)]), 10)
        assert caught.value.errno == errno.EEXIST
        assert await asyncio.wait_for(ring.request(route_add(3)), 10) == []
    assert routes_added(netns) == {"10.77.0.0", "10.77.0.1", "10.77.0.2", "10.77.0.3"}


async def test_a_cancelled_request_many_leaves_the_ring_usable(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        task = asyncio.create_task(ring.request_many([route_add(index) for index in range(50)]))
        await asyncio.sleep(0)  # it queued its datagram and waits for the answers
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The late answers are dropped as stale; the next request gets its own.
        assert await asyncio.wait_for(ring.request(route_add(100)), 10) == []
        with pytest.raises(NetlinkError):
            await asyncio.wait_for(ring.request(route_add(100)), 10)


async def test_request_many_on_a_ring_closed_under_it_raises_instead_of_hanging(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        task = asyncio.create_task(ring.request_many([route_add(index) for index in range(50)]))
        await asyncio.sleep(0)
        ring.close()
        with pytest.raises(aionlmmap.ClosedResourceError):
            await asyncio.wait_for(task, 10)
