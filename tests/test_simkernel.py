"""The simulated kernel at the syscall level: every fact of DESIGN.md
section 1 (probe ids of spec/ring-on-linux-4.4.1.md in the comments)."""

from __future__ import annotations

import errno
import select
import struct

import pytest

from aionlmmap import Message
from aionlmmap.constants import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_ROUTE,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    RTM_GETLINK,
    RTNLGRP_LINK,
    SOL_NETLINK,
)
from aionlmmap.frames import COPY, RESERVED, SKIP, UNUSED, VALID, FrameRing, RingConfig
from aionlmmap.message import NLMSGHDR, ReceivedFrame, encode_message, parse_frame
from aionlmmap.testing import SimulatedKernel, SimulatedSocket

REQ = struct.Struct("=IIII")
SMALL = RingConfig(4096, 8, 4096, 8)


def bound(kernel: SimulatedKernel, groups: tuple[int, ...] = ()) -> SimulatedSocket:
    sock = kernel.socket(NETLINK_ROUTE)
    sock.bind()
    for group in groups:
        sock.groups.add(group)
    return sock


def with_rings(kernel: SimulatedKernel, rx: RingConfig = SMALL, tx: RingConfig = SMALL, groups: tuple[int, ...] = ()) -> tuple[SimulatedSocket, memoryview, FrameRing, FrameRing]:
    sock = bound(kernel, groups)
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, rx.pack())
    sock.ring_syscalls.set_ring(NETLINK_TX_RING, tx.pack())
    view, _unmap = sock.ring_syscalls.map_rings(rx.ring_size + tx.ring_size)
    return sock, view, FrameRing(view, rx, 0), FrameRing(view, tx, rx.ring_size)


def send(sock: SimulatedSocket, tx: FrameRing, *messages: bytes) -> int:
    """Write one message per TX frame, VALID, then sendto(NULL)."""
    for data in messages:
        index = tx.reserve()
        assert index is not None
        start = tx.data_offset(index)
        tx.buffer[start : start + len(data)] = data
        tx.commit(index, len(data))
    return sock.ring_syscalls.send_frames()


def messages_in(rx: FrameRing, index: int, offset: int = 24) -> list[Message]:
    header = rx.header(index)
    start = rx.offset(index) + offset
    frame = ReceivedFrame(bytes(rx.buffer[start : start + header.len]))
    return parse_frame(frame, header.len)[0]


def getlink_dump(seq: int = 1) -> bytes:
    return encode_message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, bytes(16))


def noop_ack(seq: int) -> bytes:
    return encode_message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq, 0)


# -- a. setsockopt -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "block_size, block_nr, frame_size, frame_nr, why",
    [
        (4096, 4, 4098, 4, "frame_size not a multiple of 4 (and > block)"),
        (4096, 4, 2050, 8, "frame_size not a multiple of 4"),
        (4096, 4, 20, 816, "frame_size < 24"),
        (4096, 4, 0, 4, "frame_size 0"),
        (4000, 4, 2000, 8, "block_size not a page multiple"),
        (0, 4, 2048, 8, "block_size 0"),
        (2**31, 1, 4096, 2**19, "block_size >= 2^31"),
        (4096, 4, 8192, 4, "frame_size > block_size"),
        (4096, 4, 2048, 7, "frame_nr != per_block * block_nr"),
        (4096, 0, 2048, 2, "block_nr 0 with frame_nr != 0"),
    ],
)
def test_setsockopt_rejects_each_invalid_geometry_with_einval(block_size: int, block_nr: int, frame_size: int, frame_nr: int, why: str) -> None:
    sock = bound(SimulatedKernel())
    with pytest.raises(OSError) as info:
        sock.ring_syscalls.set_ring(NETLINK_RX_RING, REQ.pack(block_size, block_nr, frame_size, frame_nr))
    assert info.value.errno == errno.EINVAL, why
    assert sock.rx_ring is None


@pytest.mark.parametrize("config", [RingConfig(16384, 4, 4096, 16), RingConfig(65536, 64, 16384, 256), RingConfig(4096, 1, 24, 170), RingConfig(4096, 2, 3000, 2), RingConfig(8 << 20, 1, 8 << 20, 1)])
def test_setsockopt_accepts_the_probed_geometries(config: RingConfig) -> None:
    sock = bound(SimulatedKernel())
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, config.pack())
    sock.ring_syscalls.set_ring(NETLINK_TX_RING, config.pack())


def test_optlen_below_16_is_einval_and_above_is_accepted() -> None:
    sock = bound(SimulatedKernel())
    with pytest.raises(OSError) as info:
        sock.ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack()[:12])
    assert info.value.errno == errno.EINVAL
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack() + bytes(8))


def test_teardown_ignores_sizes_and_works_on_a_ring_never_set() -> None:
    sock = bound(SimulatedKernel())
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, REQ.pack(12345, 0, 7, 0))
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack())
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, REQ.pack(999, 0, 3, 0))
    assert sock.rx_ring is None


def test_ebusy_cases_and_their_end_after_munmap() -> None:
    sock = bound(SimulatedKernel())
    calls = sock.ring_syscalls
    calls.set_ring(NETLINK_RX_RING, SMALL.pack())
    with pytest.raises(OSError) as info:
        calls.set_ring(NETLINK_RX_RING, SMALL.pack())  # already set, not mapped (a.2.3)
    assert info.value.errno == errno.EBUSY
    _view, unmap = calls.map_rings(SMALL.ring_size)
    with pytest.raises(OSError) as info:
        calls.set_ring(NETLINK_RX_RING, RingConfig.teardown().pack())  # teardown while mapped (a.2.8)
    assert info.value.errno == errno.EBUSY
    with pytest.raises(OSError) as info:
        calls.set_ring(NETLINK_TX_RING, SMALL.pack())  # the other ring while mapped (a.2.9)
    assert info.value.errno == errno.EBUSY
    unmap()
    calls.set_ring(NETLINK_TX_RING, SMALL.pack())  # a.2.10
    calls.set_ring(NETLINK_RX_RING, RingConfig.teardown().pack())  # a.2.11


def test_rings_need_cap_net_admin_and_a_kernel_that_has_them() -> None:
    with pytest.raises(PermissionError):
        bound(SimulatedKernel(cap_net_admin=False)).ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack())
    with pytest.raises(OSError) as info:
        bound(SimulatedKernel(has_ring=False)).ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack())
    assert info.value.errno == errno.ENOPROTOOPT
    with pytest.raises(OSError) as info:
        bound(SimulatedKernel()).getsockopt(270, NETLINK_RX_RING, 16)
    assert info.value.errno == errno.ENOPROTOOPT


# -- b. mmap -------------------------------------------------------------------------------
def test_mmap_length_and_offset_rules() -> None:
    sock = bound(SimulatedKernel())
    calls = sock.ring_syscalls
    with pytest.raises(OSError):
        calls.map_rings(4096)  # no ring set
    calls.set_ring(NETLINK_RX_RING, SMALL.pack())
    calls.set_ring(NETLINK_TX_RING, SMALL.pack())
    total = 2 * SMALL.ring_size
    for length, offset in ((SMALL.ring_size, 0), (total + 4096, 0), (total, 4096)):
        with pytest.raises(OSError) as info:
            calls.map_rings(length, offset=offset)
        assert info.value.errno == errno.EINVAL
    view, unmap = calls.map_rings(total - 1)  # rounded up to pages (b.1.3)
    assert bytes(view) == bytes(total)  # a fresh ring is all UNUSED (b.2)
    second, unmap_second = calls.map_rings(total)
    second[100] = 7
    assert view[100] == 7  # several mappings share the pages
    unmap()
    unmap_second()


def test_a_tx_only_ring_maps_at_offset_zero() -> None:
    sock = bound(SimulatedKernel())
    sock.ring_syscalls.set_ring(NETLINK_TX_RING, SMALL.pack())
    view, _ = sock.ring_syscalls.map_rings(SMALL.ring_size)
    tx = FrameRing(view, SMALL, 0)
    assert send(sock, tx, noop_ack(1)) == 16


def test_map_private_is_accepted_but_writes_never_reach_the_kernel() -> None:
    kernel = SimulatedKernel()
    sock = bound(kernel)
    sock.ring_syscalls.set_ring(NETLINK_RX_RING, SMALL.pack())
    sock.ring_syscalls.set_ring(NETLINK_TX_RING, SMALL.pack())
    private, _ = sock.ring_syscalls.map_rings(2 * SMALL.ring_size, shared=False)
    FrameRing(private, SMALL, SMALL.ring_size).commit(0, 16)  # a VALID TX frame, privately
    assert sock.ring_syscalls.send_frames() == 0  # the kernel never sees it (b.3)


# -- c. RX ring: which messages take frames -----------------------------------------------------
def test_acks_take_a_frame_and_notifications_take_the_copy_path() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel, groups=(RTNLGRP_LINK,))
    assert send(sock, tx, noop_ack(7)) == 16
    assert rx.statuses()[0] == "V"
    ack = messages_in(rx, 0)[0]
    assert (ack.type, ack.seq, ack.pid) == (NLMSG_ERROR, 7, sock.portid)
    kernel.rtnl.add_link("c0")
    header = rx.header(1)
    assert (header.status, header.group, header.pid) == (COPY, RTNLGRP_LINK, 0)
    data, flags = sock.ring_syscalls.receive(header.len)
    assert len(data) == header.len and not flags  # exactly nm_len bytes


def test_a_dump_chunk_holds_several_messages_and_done_comes_alone() -> None:
    kernel = SimulatedKernel()
    for i in range(40):
        kernel.rtnl.add_link(f"l{i}")
    sock, _view, rx, tx = with_rings(kernel)
    send(sock, tx, getlink_dump())
    for _ in range(10):
        sock.ring_syscalls.poll()
        for index in range(rx.frame_nr):
            if rx.status(index) == VALID:
                messages = messages_in(rx, index)
                rx.release(index)
                if messages[-1].type == NLMSG_DONE:
                    assert len(messages) == 1
                    return
                assert len(messages) > 1
    raise AssertionError("no NLMSG_DONE")


def test_a_dump_continues_only_on_poll_with_head_and_half_ring_unused() -> None:
    kernel = SimulatedKernel()
    for i in range(200):
        kernel.rtnl.add_link(f"l{i}")
    sock, _view, rx, tx = with_rings(kernel)
    send(sock, tx, getlink_dump())
    assert rx.statuses() == "VUUUUUUU"  # only the first chunk (c.2.1)
    with pytest.raises(BlockingIOError):
        sock.ring_syscalls.receive(16384)  # EAGAIN, and no continuation (c.2.2)
    assert rx.statuses() == "VUUUUUUU"
    assert sock.ring_syscalls.poll() & select.POLLIN
    assert rx.statuses() == "VVVVVUUU"  # (c.2.5)


def test_a_skip_head_stalls_a_dump_until_released() -> None:
    kernel = SimulatedKernel()
    for i in range(200):
        kernel.rtnl.add_link(f"l{i}")
    sock, _view, rx, tx = with_rings(kernel)
    send(sock, tx, getlink_dump())
    sock.ring_syscalls.poll()
    head = sock.rx.head
    for index in range(rx.frame_nr):
        rx.release(index)
    rx.hold(head)  # everything free except a SKIP frame at the kernel head
    sock.ring_syscalls.poll()
    assert rx.statuses() == "".join("S" if i == head else "U" for i in range(8))  # (c.10)
    rx.release(head)
    assert sock.ring_syscalls.poll() & select.POLLIN
    assert rx.status(head) == VALID


def test_the_ring_path_steps_past_skip_but_the_copy_path_drops() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel, groups=(RTNLGRP_LINK,))
    rx.hold(0)
    send(sock, tx, noop_ack(1))
    assert rx.statuses()[:2] == "SV"  # the ACK lands in the next UNUSED frame (c.7.2)
    rx.hold(2)
    kernel.rtnl.add_link("x")
    assert rx.status(2) == SKIP and sock.ring_syscalls.take_error() == errno.ENOBUFS  # (c.7.4)
    assert sock.drops == 1


def test_a_full_ring_loses_an_ack_silently_and_reports_enobufs() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    for seq in range(8):
        send(sock, tx, noop_ack(seq))
    assert rx.statuses() == "VVVVVVVV"
    assert send(sock, tx, noop_ack(99)) == 16  # sendto succeeds (c.8)
    assert sock.ring_syscalls.poll() & select.POLLERR
    assert sock.ring_syscalls.take_error() == errno.ENOBUFS
    rx.release(0)
    send(sock, tx, noop_ack(100))
    assert messages_in(rx, 0)[0].seq == 100  # the head did not move: same frame


def test_after_an_overrun_copy_messages_drop_until_the_queue_is_drained() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, _tx = with_rings(kernel, rx=RingConfig(4096, 4, 4096, 4), groups=(RTNLGRP_LINK,))
    for i in range(30):
        kernel.rtnl.add_link(f"f{i}")
    assert rx.statuses() == "CCCC" and sock.drops == 26  # (e.2.1)
    with pytest.raises(OSError) as info:
        sock.ring_syscalls.receive(16384)
    assert info.value.errno == errno.ENOBUFS  # reported once
    sock.ring_syscalls.receive(16384)
    rx.release(0)
    kernel.rtnl.add_link("late")  # a free frame, but still congested (e.2.5)
    assert rx.status(0) == UNUSED and sock.drops == 27
    for _ in range(3):
        sock.ring_syscalls.receive(16384)
    for index in range(1, 4):
        rx.release(index)
    sock.ring_syscalls.poll()  # netlink_rcv_wake: queue empty, congestion over
    kernel.rtnl.add_link("later")
    assert rx.status(0) == COPY  # (e.2.7)


def test_copy_messages_count_against_the_receive_buffer() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, _tx = with_rings(kernel, rx=RingConfig(4096, 64, 4096, 64), groups=(RTNLGRP_LINK,))
    sock.setsockopt(1, 8, 2048)  # SO_RCVBUF 2 KiB (doubled to 4 KiB)
    for i in range(20):
        kernel.rtnl.add_link(f"r{i}")
    assert 1 <= rx.statuses().count("C") < 20
    assert sock.drops > 0


def test_reserved_frames_are_visible_and_a_dropped_skb_leaves_len_zero() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, _tx = with_rings(kernel)
    reserved = kernel.reserve(sock)
    assert reserved is not None and rx.status(0) == RESERVED
    assert not sock.ring_syscalls.poll() & select.POLLIN  # RESERVED is not readable
    reserved.drop()
    header = rx.header(0)
    assert (header.status, header.len) == (VALID, 0)  # (c.6)


def test_the_4_4_1_dump_data_offset_quirk() -> None:
    kernel = SimulatedKernel(trimmed_dump_offset=True)
    sock, _view, rx, tx = with_rings(kernel)
    send(sock, tx, getlink_dump())
    assert bytes(rx.buffer[24:40]) == bytes(16)  # the bytes at +24 are not the data
    assert [m.type for m in messages_in(rx, 0, offset=320)] == [16]  # RTM_NEWLINK of lo at +320 (c.1)
    # non-dump ring messages stay at +24
    send(sock, tx, noop_ack(3))
    assert messages_in(rx, 1)[0].type == NLMSG_ERROR


def test_dump_chunks_go_copy_when_a_frame_cannot_hold_the_allocation() -> None:
    kernel = SimulatedKernel()
    for i in range(30):
        kernel.rtnl.add_link(f"k{i}")
    sock, _view, rx, tx = with_rings(kernel, rx=RingConfig(4096, 4, 2048, 8))
    send(sock, tx, getlink_dump())
    assert rx.status(0) == COPY  # frame 2048 < 24 + 3776 (c.1.d)
    sock2, _v2, rx2, tx2 = with_rings(kernel, groups=(RTNLGRP_LINK,))
    kernel.rtnl.add_link("k-big")  # a COPY notification in frame 0
    sock2.ring_syscalls.receive(32768)  # one big recv raises max_recvmsg_len to 16 KiB (c.5)
    send(sock2, tx2, getlink_dump())
    assert rx2.status(1) == COPY
    assert rx2.header(1).len > 3776  # the chunk is 16 KiB-sized now


# -- poll ---------------------------------------------------------------------------------
def test_poll_reports_any_valid_frame_pollerr_and_always_pollout() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    assert sock.ring_syscalls.poll() == select.POLLOUT
    for seq in range(8):
        tx.commit(tx.reserve(), 0)  # every TX frame VALID: still POLLOUT (d.10.1)
    assert sock.ring_syscalls.poll() & select.POLLOUT
    sock.ring_syscalls.send_frames()
    send(sock, tx, noop_ack(1), noop_ack(2))
    rx.release(0)
    assert sock.ring_syscalls.poll() & select.POLLIN  # frame 1 VALID, not at our head (c.3.7)
    rx.hold(1)
    assert not sock.ring_syscalls.poll() & select.POLLIN  # SKIP is not readable (c.3.4)


# -- d. TX ring ---------------------------------------------------------------------------
def test_tx_consumes_consecutive_valid_frames_and_returns_their_bytes() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    assert send(sock, tx, noop_ack(1), noop_ack(2), noop_ack(3)) == 48  # (d.2)
    assert tx.statuses() == "UUUUUUUU"
    assert [messages_in(rx, i)[0].seq for i in range(3)] == [1, 2, 3]
    assert sock.ring_syscalls.send_frames() == 0  # nothing VALID (d.6.1)


def test_tx_stops_at_a_gap() -> None:
    kernel = SimulatedKernel()
    sock, _view, _rx, tx = with_rings(kernel)
    data = noop_ack(1)
    tx.buffer[tx.data_offset(1) : tx.data_offset(1) + 16] = data
    tx.commit(1, 16)  # frame 1 VALID, frame 0 (the head) UNUSED
    assert sock.ring_syscalls.send_frames() == 0 and tx.status(1) == VALID  # (d.3)


def test_tx_einval_for_an_oversized_frame_keeps_it_valid() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    send_first = noop_ack(1)
    tx.buffer[tx.data_offset(0) : tx.data_offset(0) + 16] = send_first
    tx.commit(0, 16)
    struct.pack_into("=II", tx.buffer, tx.offset(1), VALID, 4096 - 24 + 1)
    with pytest.raises(OSError) as info:
        sock.ring_syscalls.send_frames()
    assert info.value.errno == errno.EINVAL  # (d.4.1)
    assert tx.status(0) == UNUSED and tx.status(1) == VALID and rx.status(0) == VALID
    struct.pack_into("=I", tx.buffer, tx.offset(1) + 4, 0)  # nm_len 0 is consumed silently (d.5)
    assert sock.ring_syscalls.send_frames() == 0 and tx.status(1) == UNUSED


def test_tx_nm_len_shorter_than_nlmsg_len_is_consumed_and_ignored() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    data = noop_ack(5)
    tx.buffer[tx.data_offset(0) : tx.data_offset(0) + 16] = data
    tx.commit(0, 12)
    assert sock.ring_syscalls.send_frames() == 12 and rx.statuses() == "UUUUUUUU"  # (d.7)


def test_requests_in_one_frame_are_answered_each_in_order() -> None:
    kernel = SimulatedKernel()
    sock, _view, rx, tx = with_rings(kernel)
    send(sock, tx, noop_ack(1) + noop_ack(2) + noop_ack(3))
    assert [messages_in(rx, i)[0].seq for i in range(3)] == [1, 2, 3]
    assert NLMSGHDR.unpack_from(rx.buffer, rx.data_offset(0))[1] == NLMSG_ERROR


def test_list_memberships_tells_whether_a_change_will_be_notified_here() -> None:
    # The ring counts a frame more per change request on a subscribed socket
    # (the notification comes before the ACK); getsockopt(NETLINK_LIST_MEMBERSHIPS).
    kernel = SimulatedKernel()
    sock, _view, _rx, _tx = with_rings(kernel)
    assert sock.ring_syscalls.subscribed() is False
    sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 1)
    assert sock.ring_syscalls.subscribed() is True
