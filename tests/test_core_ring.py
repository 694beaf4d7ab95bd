"""The asyncio Ring against the real kernel, inside throwaway namespaces.

Every test here runs on asyncio's default loop and on uvloop (conftest).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time

import pytest

import aionlmmap
from aionlmmap import ClosedResourceError, Message, NetlinkError, OverrunError, RingConfig
from aionlmmap._open import auto_backend
from aionlmmap._sys import open_socket
from aionlmmap.constants import (
    NETLINK_USERSOCK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWLINK,
    RTNLGRP_LINK,
)

from conftest import ip, run
from rtnl_raw import getlink_dump, getroute_dump, ifindex, link_name, newaddr

pytestmark = pytest.mark.integration


async def collect_links(ring: aionlmmap.Ring) -> list[str]:
    names = []
    async for msg in ring.dump(getlink_dump()):
        assert msg.type == RTM_NEWLINK
        names.append(link_name(msg))
    return names


async def test_dump_links_sees_every_link(netns: str) -> None:
    ip(netns, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        assert ring.backend == auto_backend()[0]  # whichever auto picks here
        names = await collect_links(ring)
    assert sorted(names) == ["lo", "veth-a", "veth-b"]


async def test_notifications_show_a_veth_appear_and_disappear(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns) as ring:
        await asyncio.to_thread(ip, netns, "link", "add", "veth-n", "type", "veth", "peer", "name", "veth-m")
        seen_new: set[str] = set()
        async with asyncio.timeout(10):
            async for msg in ring:
                if msg.type == RTM_NEWLINK:
                    assert msg.group == RTNLGRP_LINK
                    assert msg.sender_pid == 0
                    seen_new.add(link_name(msg) or "")
                if {"veth-n", "veth-m"} <= seen_new:
                    break
        await asyncio.to_thread(ip, netns, "link", "del", "veth-n")
        async with asyncio.timeout(10):
            async for msg in ring:
                if msg.type == RTM_DELLINK and link_name(msg) in ("veth-n", "veth-m"):
                    break


async def test_eexist_carries_the_kernels_extack_text(netns: str) -> None:
    ip(netns, "link", "add", "veth-e", "type", "veth", "peer", "name", "veth-f")
    index = ifindex(netns, "veth-e")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        assert ring.options["ext_ack"] is True
        await ring.request(newaddr(index, "192.0.2.1/24"))
        with pytest.raises(FileExistsError) as caught:
            await ring.request(newaddr(index, "192.0.2.1/24"))
    error = caught.value
    assert isinstance(error, NetlinkError)
    assert error.errno == errno.EEXIST
    assert error.extack_message == "ipv4: Address already assigned"
    assert "Address already assigned" in str(error)


async def test_unknown_device_raises_enodev_and_the_ring_keeps_working(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        request = Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (4242).to_bytes(4, "little") + bytes(8))
        with pytest.raises(NetlinkError) as caught:
            await ring.request(request)
        assert caught.value.errno == errno.ENODEV
        replies = await ring.request(Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (1).to_bytes(4, "little") + bytes(8)))
        assert [link_name(m) for m in replies] == ["lo"]


async def test_concurrent_requests_and_dumps_share_one_socket(netns: str) -> None:
    for i in range(5):
        ip(netns, "link", "add", f"vc{i}", "type", "veth", "peer", "name", f"vd{i}")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        get_lo = Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (1).to_bytes(4, "little") + bytes(8))
        results = await asyncio.gather(
            collect_links(ring),
            collect_links(ring),
            *(ring.request(get_lo) for _ in range(20)),
            collect_links(ring),
        )
    dumps = [results[0], results[1], results[-1]]
    for names in dumps:
        assert len(names) == 11
    for replies in results[2:-1]:
        assert [link_name(m) for m in replies] == ["lo"]


async def test_many_sends_in_one_iteration_take_one_syscall(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        get_lo = Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (1).to_bytes(4, "little") + bytes(8))
        await ring.request(get_lo)  # settle
        before = ring.stats.tx_syscalls
        replies = await asyncio.gather(*(ring.request(get_lo) for _ in range(50)))
        assert ring.stats.tx_syscalls - before == 1
        assert all(len(r) == 1 for r in replies)


async def test_copy_frames_deliver_datagrams_larger_than_a_frame(netns: str) -> None:
    for i in range(30):
        ip(netns, "link", "add", f"vk{i}", "type", "veth", "peer", "name", f"vl{i}")
    small = RingConfig.for_frames(frame_size=2048, frame_nr=8)
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, rx=small) as ring:
        names = await collect_links(ring)
        assert ring.stats.copy_frames > 0
    assert len(names) == 61


async def test_a_message_never_shows_another_messages_bytes(netns: str) -> None:
    ip(netns, "link", "add", "veth-r", "type", "veth", "peer", "name", "veth-s")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        kept = []
        async for msg in ring.dump(getlink_dump()):
            kept.append(msg)
        # every frame went back to the ring: reading a payload now must raise
        with pytest.raises(aionlmmap.ReleasedMessageError):
            bytes(kept[0].payload)
        copies = [m.copy() for m in await ring.dump_all(getlink_dump())]
        assert sorted(link_name(m) for m in copies) == ["lo", "veth-r", "veth-s"]


async def test_hold_keeps_a_frame_while_later_frames_keep_flowing(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns, rx=RingConfig.for_frames(4096, 4)) as ring:
        held = None
        seen = 0

        async def churn() -> None:
            for i in range(12):
                await asyncio.to_thread(ip, netns, "link", "add", f"vh{i}", "type", "veth", "peer", "name", f"vi{i}")

        task = asyncio.create_task(churn())
        async with asyncio.timeout(20):
            async for msg in ring:
                if held is None:
                    held = msg.hold()
                    held_bytes = bytes(msg.payload)
                seen += 1
                if seen >= 24:
                    break
        await task
        # the held frame still shows its own bytes after 20+ later frames went through a 4-frame ring
        assert bytes(held.payload) == held_bytes
        held.release()
        with pytest.raises(aionlmmap.ReleasedMessageError):
            bytes(held.payload)


async def test_overrun_raises_once_then_the_ring_recovers(netns: str) -> None:
    async with aionlmmap.open(
        aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns, rcvbuf=4096, rx=RingConfig.for_frames(4096, 4)
    ) as ring:
        # nobody reads while 40 links appear: the 4-frame ring fills, the reader pauses, the tiny socket buffer overruns.
        # It may overrun more than once: if the loop's reader gets a turn
        # mid-batch (it read nothing yet, or the first overrun came before
        # the ring was full), its read empties the socket queue, which clears
        # NETLINK_S_CONGESTED (netlink_rcv_wake), and the rest of the batch
        # overruns the socket again (netlink_overrun reports ENOBUFS anew).
        # What must hold: each overrun raises exactly once, then the ring goes on.
        batch = "".join(f"link add vo{i} type veth peer name vp{i}\n" for i in range(20))
        await asyncio.to_thread(run, "ip", "-n", netns, "-batch", "-", input=batch)
        raised = 0
        async with asyncio.timeout(10):
            while not raised:
                try:
                    async for _msg in ring:
                        pass
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    raised += 1
        assert ring.stats.overruns >= 1
        # recovery: requests work, and new notifications arrive
        names = await collect_links(ring)
        assert len(names) == 41
        # The dump's answer queued behind every notification of the batch,
        # so every overrun of the batch is counted by now: the rest of them
        # raise, once each, before the new link shows.
        overruns = ring.stats.overruns
        await asyncio.to_thread(ip, netns, "link", "add", "vafter", "type", "veth", "peer", "name", "vafter2")
        async with asyncio.timeout(10):
            seen_after = False
            while not seen_after:
                try:
                    async for msg in ring:
                        if msg.type == RTM_NEWLINK and link_name(msg) == "vafter":
                            seen_after = True
                            break
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    raised += 1
        assert raised == overruns == ring.stats.overruns


async def test_a_paused_reader_does_not_spin_on_an_overrun_socket(netns: str) -> None:
    # The ring fills (nobody iterates), the reader pauses, then the socket
    # overruns: it reports POLLERR until it is read. A paused reader must
    # stay quiet (epoll reports EPOLLERR whatever the event mask).
    async with aionlmmap.open(
        aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns, rcvbuf=4096, rx=RingConfig.for_frames(4096, 4)
    ) as ring:
        await collect_links(ring)  # the reader is running
        batch = "".join(f"link add vs{i} type veth peer name vt{i}\n" for i in range(20))
        await asyncio.to_thread(run, "ip", "-n", netns, "-batch", "-", input=batch)
        await asyncio.sleep(0.05)
        assert ring._paused
        before = time.process_time()
        await asyncio.sleep(0.5)
        spent = time.process_time() - before
        assert spent < 0.2, f"a paused reader burnt {spent:.2f} s of CPU in 0.5 s"
        # and it still recovers: the overrun is reported, then events flow
        with pytest.raises(OverrunError):
            async with asyncio.timeout(10):
                async for _msg in ring:
                    pass


async def test_close_wakes_every_waiter_with_closed_resource_error(netns: str) -> None:
    ring = aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns)
    async with ring:
        async def iterate() -> None:
            async for _ in ring:
                pass

        iterator = asyncio.create_task(iterate())
        drain = asyncio.create_task(ring.drain())
        await asyncio.sleep(0.05)
        ring.close()
        with pytest.raises(ClosedResourceError):
            await iterator
        await drain  # nothing was queued: drain returns
        with pytest.raises(ClosedResourceError):
            await ring.request(getlink_dump())


async def test_cancelled_request_leaves_the_ring_consistent(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        get_lo = Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (1).to_bytes(4, "little") + bytes(8))
        task = asyncio.create_task(ring.request(get_lo))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the late reply is dropped, not shown to the iterator, and later requests still match
        replies = await ring.request(get_lo)
        assert len(replies) == 1
        names = await collect_links(ring)
        assert names == ["lo"]
        assert ring.stats.unsolicited == 0


async def test_abandoned_dump_does_not_block_the_next_dump(netns: str) -> None:
    for i in range(20):
        ip(netns, "link", "add", f"va{i}", "type", "veth", "peer", "name", f"vb{i}")
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, rx=RingConfig.for_frames(4096, 4)) as ring:
        async for _msg in ring.dump(getlink_dump()):
            break
        async with asyncio.timeout(10):
            names = await collect_links(ring)
        assert len(names) == 41


async def test_netns_by_name_path_and_fd_never_moves_the_process(netns: str) -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        ip(netns, "link", "add", "veth-p", "type", "veth", "peer", "name", "veth-q")
        for spec in (netns, f"/run/netns/{netns}", fd):
            async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=spec) as ring:
                assert sorted(await collect_links(ring)) == ["lo", "veth-p", "veth-q"]
            assert os.stat("/proc/self/ns/net").st_ino == own
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError, match="ip netns add"):
        aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns="aionlmmap-no-such-namespace")


async def test_messages_from_other_sockets_are_dropped_by_default(netns: str) -> None:
    async with aionlmmap.open(NETLINK_USERSOCK, netns=netns) as ring:
        sender = open_socket(NETLINK_USERSOCK, netns)
        try:
            sender.bind((0, 0))
            sender.sendto(Message(0x20, 0, 1, 0, b"spoof").encode(), (ring.portid, 0))
            for _ in range(50):
                await asyncio.sleep(0.01)
                if ring.stats.foreign:
                    break
            assert ring.stats.foreign == 1
            assert ring.stats.unsolicited == 0
        finally:
            sender.close()


async def test_malformed_datagrams_are_counted_and_skipped(netns: str) -> None:
    async with aionlmmap.open(NETLINK_USERSOCK, netns=netns, accept_foreign=True) as ring:
        sender = open_socket(NETLINK_USERSOCK, netns)
        try:
            sender.bind((0, 0))
            good = Message(0x20, 0, 7, 0, b"ok").encode()
            truncated_header = good[:10]
            length_past_end = (500).to_bytes(4, "little") + good[4:]
            length_below_header = (8).to_bytes(4, "little") + good[4:]
            for datagram in (truncated_header, length_past_end, length_below_header, good):
                sender.sendto(datagram, (ring.portid, 0))
            async with asyncio.timeout(5):
                async for msg in ring:
                    assert msg.seq == 7 and bytes(msg.payload) == b"ok"
                    assert msg.sender_pid == sender.getsockname()[0]
                    break
            assert ring.stats.decode_errors == 3
        finally:
            sender.close()


async def test_open_and_close_leak_no_fds(netns: str) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns) as ring:
            await collect_links(ring)
    assert len(os.listdir("/proc/self/fd")) == before


def add_routes(netns: str, device: str, count: int, last_octet: int) -> None:
    """An up veth ``device`` with ``count`` /32 routes 10.x.y.<last_octet> on it."""
    ip(netns, "link", "add", device, "type", "veth", "peer", "name", device[:-1] + "1")
    ip(netns, "link", "set", device, "up")
    batch = "".join(f"route add 10.{i // 256}.{i % 256}.{last_octet}/32 dev {device}\n" for i in range(count))
    run("ip", "-n", netns, "-batch", "-", input=batch)


async def test_route_dump_streams_through_a_small_ring(netns: str) -> None:
    add_routes(netns, "vr0", 3000, 1)
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, rx=RingConfig.for_frames(36864, 4)) as ring:
        count = 0
        async for msg in ring.dump(getroute_dump()):
            count += 1
            assert msg.type != NLMSG_DONE
        assert count >= 3000
        assert ring.stats.ring_full >= 1  # it had to pause: the dump streamed instead of buffering


async def test_dump_chunks_hand_out_the_same_messages_a_datagram_at_a_time(netns: str) -> None:
    add_routes(netns, "vc0", 2000, 2)
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, rx=RingConfig.for_frames(36864, 4)) as ring:
        by_message = [(msg.type, bytes(msg.payload)) async for msg in ring.dump(getroute_dump())]
        by_chunk: list[tuple[int, bytes]] = []
        chunks = 0
        async for frame, body in ring.dump_chunks(getroute_dump()):
            chunks += 1
            if isinstance(body, list):
                by_chunk += [(msg.type, bytes(msg.payload)) for msg in body]
                continue
            offset = 0
            while offset < body:
                length, kind = struct.unpack_from("=IH", frame.buffer, offset)
                if kind >= 16:  # NLMSG_DONE is in the last chunk, already handled
                    by_chunk.append((kind, bytes(frame.buffer[offset + 16 : offset + length])))
                offset = (offset + length + 3) & ~3
        assert len(by_message) >= 2000
        assert by_chunk == by_message
        assert chunks < len(by_message) // 10  # many routes per datagram
        # leaving after the first chunk does not block the next dump
        async for _frame, _body in ring.dump_chunks(getroute_dump()):
            break
        async with asyncio.timeout(10):
            assert len([msg async for msg in ring.dump(getroute_dump())]) == len(by_message)


async def test_dump_chunks_raise_the_kernel_error(netns: str) -> None:
    from aionlmmap.families.rtnl_codec import route_dump_request

    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:  # strict checking is on by default
        # An IPv4 dump of a table that does not exist: ip_valid_fib_dump_req answers ENOENT.
        request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, payload=route_dump_request(socket.AF_INET, 4242))
        with pytest.raises(FileNotFoundError):
            async for _frame, _body in ring.dump_chunks(request):
                pass
        assert len(await collect_links(ring)) == 1  # and the ring goes on


async def test_thousands_of_concurrent_requests_never_overrun_the_socket(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        get_lo = Message(RTM_GETLINK, NLM_F_REQUEST, payload=bytes(4) + (1).to_bytes(4, "little") + bytes(8))
        replies = await asyncio.wait_for(asyncio.gather(*(ring.request(get_lo) for _ in range(3000))), 60)
        assert all(len(r) == 1 for r in replies)
        assert ring.stats.overruns == 0
        # they were still batched: each flush carries the requests whose
        # slots the last drain freed, so far fewer syscalls than requests
        assert ring.stats.tx_syscalls < 3000 // 4


async def test_a_loop_left_with_break_resumes_where_it_stopped(netns: str) -> None:
    # One datagram holding several messages (sent by a user socket), so the
    # break happens in the middle of a frame.
    async with aionlmmap.open(NETLINK_USERSOCK, netns=netns, accept_foreign=True) as ring:
        sender = open_socket(NETLINK_USERSOCK, netns)
        try:
            sender.bind((0, 0))
            datagram = b"".join(Message(0x20, 0, seq, 0, b"m").encode() for seq in range(1, 7))
            sender.sendto(datagram, (ring.portid, 0))
            seen = []
            async with asyncio.timeout(5):
                async for msg in ring:
                    seen.append(msg.seq)
                    if len(seen) == 2:
                        break
                # no await in between: the first generator is still suspended
                async for msg in ring:
                    seen.append(msg.seq)
                    if len(seen) == 4:
                        break
                first = await ring.receive()
                second = await ring.receive()
            assert seen + [first.seq, second.seq] == [1, 2, 3, 4, 5, 6]
        finally:
            sender.close()


async def test_a_second_task_iterating_the_same_ring_is_refused(netns: str) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns) as ring:
        async def iterate() -> None:
            async for _ in ring:
                pass

        first = asyncio.create_task(iterate())
        await asyncio.sleep(0.05)
        with pytest.raises(aionlmmap.BusyResourceError, match="one consumer"):
            await iterate()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
