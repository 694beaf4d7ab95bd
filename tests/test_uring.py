"""The uring backend: against this machine's kernel (in a namespace) for what
io_uring really does, and against a scripted stand-in for io_uring for the
faults a real kernel will not produce on demand (an -ENOBUFS completion at a
chosen point, a dry buffer ring, short and failed sends, truncation).

The behaviour shared with the other backends is in test_backend_parity.py,
which runs on this backend too."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import socket
import struct
from collections import deque
from typing import Any

import pytest
from conftest import run

import aionlmmap
from aionlmmap import BackendUnavailableError, Message, OverrunError, RingConfig, _extensions, _open
from aionlmmap.backends import _uring_sys
from aionlmmap.backends.uring import _PREFIX, _RECV, UringBackend
from aionlmmap.constants import NLM_F_REQUEST, NLMSG_ERROR, RTNLGRP_LINK, RTM_NEWLINK
from aionlmmap.message import encode_message
from aionlmmap.ring import Ring

IFINFOMSG = struct.Struct("=BxHiII")


def newlink_event(seq: int = 0) -> bytes:
    return encode_message(RTM_NEWLINK, 0, seq, 0, IFINFOMSG.pack(0, 0, seq, 0, 0))


# -- the real kernel -----------------------------------------------------------------------------
async def test_the_group_and_the_sender_survive_the_receive(netns: str) -> None:
    async with aionlmmap.open(netns=netns, backend="uring", groups=[RTNLGRP_LINK]) as ring:
        await asyncio.to_thread(run, "ip", "-n", netns, "link", "add", "ur0", "type", "veth", "peer", "name", "ur0p")
        async with asyncio.timeout(10):
            event = await ring.receive()
        assert event.type == RTM_NEWLINK and event.group == RTNLGRP_LINK and event.sender_pid == 0


@pytest.mark.parametrize("accept_foreign", [False, True])
async def test_a_datagram_from_another_socket_is_dropped_unless_accepted(netns: str, accept_foreign: bool) -> None:
    async with aionlmmap.open(netns=netns, backend="uring", accept_foreign=accept_foreign) as ring:
        other = aionlmmap._sys.open_socket(0, netns)  # a socket of the same namespace
        try:
            other.bind((0, 0))
            other.sendto(newlink_event(), (ring.portid, 0))
            if accept_foreign:
                async with asyncio.timeout(5):
                    msg = await ring.receive()
                assert msg.sender_pid == other.getsockname()[0]
            else:
                async with asyncio.timeout(5):
                    while not ring.stats.foreign:
                        await asyncio.sleep(0.01)
                assert ring.stats.foreign == 1 and ring.stats.unsolicited == 0
        finally:
            other.close()


async def test_a_burst_larger_than_the_ring_runs_it_dry_and_every_event_arrives(netns: str) -> None:
    names = [f"ud{i}" for i in range(40)]
    async with aionlmmap.open(netns=netns, backend="uring", groups=[RTNLGRP_LINK], rx=RingConfig.for_frames(4096, 4)) as ring:
        batch = "".join(f"link add {name} type veth peer name {name}p\n" for name in names)
        await asyncio.to_thread(run, "ip", "-n", netns, "-batch", "-", input=batch)  # nobody reads meanwhile
        seen: set[str] = set()
        async with asyncio.timeout(20):
            async for msg in ring:
                name = aionlmmap.Attributes(msg.payload, IFINFOMSG.size).get_str(3)
                if msg.type == RTM_NEWLINK and name in names:
                    seen.add(name)
                    if len(seen) == len(names):
                        break
        backend: Any = ring._backend
        assert backend.dry_rings >= 1 and backend.rearms >= 2  # the ring ran dry and was armed again
        assert ring.stats.overruns == 0


async def test_uring_where_it_cannot_work_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_uring_sys, "_probe_result", (False, "io_uring_setup answered EPERM: io_uring is disabled (test)"))
    with pytest.raises(BackendUnavailableError) as info:
        aionlmmap.open(backend="uring")
    assert "EPERM" in str(info.value) and "io_uring is disabled" in str(info.value)
    async with aionlmmap.open(backend="auto") as ring:  # auto goes on with another backend
        assert ring.backend in ("emulated", "kernel")


def test_the_probe_here_finds_multishot_receive() -> None:
    available, reason = _uring_sys.probe()
    assert available, reason  # Linux 6.x on x86-64, io_uring_disabled = 0
    assert "multishot" in reason


def test_info_reports_the_uring_probe() -> None:
    from aionlmmap.info import collect_info, format_info

    info = collect_info()
    assert info["uring_available"] is True and "multishot" in info["uring_reason"]
    assert "uring" in format_info(info)


def test_info_lists_each_probe_step_and_its_answer() -> None:
    from aionlmmap.info import collect_info, format_info

    info = collect_info()
    steps = {step["step"]: step["answer"] for step in info["uring_probe"]}
    assert steps["io_uring_setup (COOP_TASKRUN)"] == "ok"
    assert steps["IORING_REGISTER_PBUF_RING"].startswith("ok")
    assert steps["multishot IORING_OP_RECVMSG"].startswith("ok") and "IORING_CQE_F_MORE" in steps["multishot IORING_OP_RECVMSG"]
    text = format_info(info)
    assert "  multishot IORING_OP_RECVMSG: ok" in text and "kernel mmap ring: no (" in text


def test_auto_prefers_uring() -> None:
    assert _open.AUTO_PREFERS_URING


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pure"])
@pytest.mark.parametrize("prefers, works", [(True, True), (True, False), (False, True)])
async def test_auto_follows_the_probe_the_core_and_the_switch(monkeypatch: pytest.MonkeyPatch, prefers: bool, works: bool, compiled: bool) -> None:
    monkeypatch.setattr(_open, "AUTO_PREFERS_URING", prefers)
    # auto asks only whether the compiled core is in use (it takes uring's
    # completions in C; in pure Python uring costs more per datagram)
    monkeypatch.setattr(_extensions, "speedups", _extensions.speedups or object() if compiled else None)
    if not works:
        monkeypatch.setattr(_uring_sys, "_probe_result", (False, "io_uring_setup answered ENOSYS (test)"))
    expected = "uring" if prefers and works and compiled else "emulated"
    chosen, reason = _open.auto_backend()
    assert chosen == expected and ("ENOSYS" in reason) == (not works)
    assert ("pure-Python core" in reason) == (prefers and works and not compiled)
    async with aionlmmap.open(backend="auto") as ring:
        assert ring.backend == expected


# -- a scripted io_uring -------------------------------------------------------------------------
class ScriptedUring:
    """Stands in for :class:`aionlmmap.backends._uring_sys.Uring`: datagrams
    are written into the provided buffers as the kernel does (recvmsg_out,
    sockaddr_nl, PKTINFO, payload), in the order provided; completions are
    posted with the eventfd signalled. Faults are scripted."""

    def __init__(self) -> None:
        self.buffers: deque[tuple[int, int, int]] = deque()
        self.staged: list[tuple[int, int, int]] = []
        self.cqes: list[tuple[int, int, int]] = []
        self.armed = False
        self.queue: deque[tuple[bytes, int, int]] = deque()  # the socket's receive queue
        self.send_result: Any = None  #: None: full length; an int: that; a callable(length)
        self.sent: list[bytes] = []
        self.pending_sqes: list[tuple[int, int, int, int]] = []
        #: stands for the ring fd: readable while completions wait
        self.eventfd = self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.enters = 0
        self.sk_err = False  #: netlink_overrun() happened: the next receive fails with it
        #: datagrams sent once a receive has left the queue empty (the socket
        #: accepts datagrams again after an overrun); they arrive when the
        #: io_uring_enter that emptied it returns
        self.after_empty: list[bytes] = []
        self.congested = False
        self.dropped = 0
        self._due: list[bytes] = []
        self.sq_entries = 8

    def register_eventfd(self) -> int:
        return self.eventfd

    def provide(self, address: int, length: int, bid: int) -> None:
        self.staged.append((address, length, bid))

    def publish_buffers(self) -> None:
        self.buffers.extend(self.staged)
        self.staged.clear()

    def provide_many(self, buffers: list[tuple[int, int, int]]) -> None:
        self.buffers.extend(buffers)

    def prepare(self, opcode: int, fd: int, address: int, length: int, user_data: int, *, op_flags: int = 0, **_: Any) -> bool:
        self.pending_sqes.append((opcode, address, length, user_data, op_flags))
        return True

    def submit(self, wait: int = 0) -> int:
        self.enters += 1
        sqes, self.pending_sqes = self.pending_sqes, []
        for opcode, address, length, user_data, op_flags in sqes:
            if opcode == _uring_sys.IORING_OP_RECVMSG and op_flags & socket.MSG_PEEK:
                self._peek(user_data)
            elif opcode == _uring_sys.IORING_OP_RECVMSG and op_flags & socket.MSG_DONTWAIT:
                self._receive_once(user_data)
            elif opcode == _uring_sys.IORING_OP_NOP:
                self._post(user_data, 0, 0)
            elif opcode == _uring_sys.IORING_OP_RECVMSG:
                self.armed = True
                if self.sk_err and self.buffers:
                    self.sk_err = False
                    self.overrun()
                self._run()
                if self.armed and not self.queue:
                    self._emptied()  # its first receive found the queue empty
            elif opcode == _uring_sys.IORING_OP_SENDMSG:
                _name, _namelen, iov, iovlen = struct.unpack("=QI4xQQ", ctypes.string_at(address, 32))
                pieces = [struct.unpack("=QQ", ctypes.string_at(iov + 16 * i, 16)) for i in range(iovlen)]
                data = b"".join(ctypes.string_at(base, size) for base, size in pieces)
                length = len(data)
                self.sent.append(data)
                result = self.send_result
                res = length if result is None else result(length) if callable(result) else result
                self._post(user_data, res, 0)
            else:  # cancel
                if self.armed:
                    self.armed = False
                    self._post(_RECV, -errno.ECANCELED, 0)
                self._post(user_data, 0, 0)
        due, self._due = self._due, []
        for data in due:
            self.deliver(data)
        return len(sqes)

    def _post(self, user_data: int, res: int, flags: int) -> None:
        self.cqes.append((user_data, res, flags))
        os.eventfd_write(self.eventfd, 1)

    def _peek(self, user_data: int) -> None:
        """A single-shot RECVMSG with MSG_PEEK | MSG_DONTWAIT, no buffer."""
        if self.sk_err:
            self.sk_err = False
            self._post(user_data, -errno.ENOBUFS, 0)
        elif not self.queue:
            self._emptied()  # netlink_recvmsg found it empty: netlink_rcv_wake
            self._post(user_data, -errno.EAGAIN, 0)
        else:
            self._post(user_data, 1, 0)

    def _receive_once(self, user_data: int) -> None:
        """A single-shot RECVMSG with MSG_DONTWAIT."""
        if self.sk_err:
            self.sk_err = False
            self._post(user_data, -errno.ENOBUFS, 0)
        elif not self.queue:
            self._emptied()
            self._post(user_data, -errno.EAGAIN, 0)
        elif not self.buffers:
            self._post(user_data, -errno.ENOBUFS, 0)
        else:
            self._write_datagram(user_data, _uring_sys.IORING_CQE_F_BUFFER)

    def _write_datagram(self, user_data: int, flags: int) -> None:
        data, group, pid = self.queue.popleft()
        address, length, bid = self.buffers.popleft()
        room = length - _PREFIX
        truncated = socket.MSG_TRUNC if len(data) > room else 0
        copied = data[:room]
        cmsg = struct.pack("=QiII", 20, 270, 3, group) + bytes(4)  # NETLINK_PKTINFO
        prefix = struct.pack("=IIII", 12, len(cmsg), len(data), truncated) + struct.pack("=HHII", socket.AF_NETLINK, 0, pid, 0) + cmsg
        ctypes.memmove(address, prefix, len(prefix))
        ctypes.memmove(address + _PREFIX, copied, len(copied))
        self._post(user_data, _PREFIX + len(copied), flags | (bid << 16))
        if not self.queue:
            self._emptied()

    def _emptied(self) -> None:
        """A receive left the queue empty: the socket accepts datagrams again."""
        self.congested = False
        self._due += self.after_empty
        self.after_empty = []

    def _run(self) -> None:
        while self.armed and self.queue:
            if not self.buffers:
                self.armed = False
                self._post(_RECV, -errno.ENOBUFS, 0)  # dry: the datagram stays queued
                return
            self._write_datagram(_RECV, _uring_sys.IORING_CQE_F_BUFFER | _uring_sys.IORING_CQE_F_MORE)

    def reset_buffers(self) -> None:
        assert not self.armed
        self.buffers.clear()

    def recvmsg_into(self, data: memoryview) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        """recvmsg(MSG_DONTWAIT) on the scripted socket (the backend's catch-up after an overrun)."""
        if self.sk_err:
            self.sk_err = False
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
        if not self.queue:
            self._emptied()
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        datagram, group, pid = self.queue.popleft()
        size = min(len(datagram), len(data))
        data[:size] = datagram[:size]
        if not self.queue:
            self._emptied()
        return size, [(270, 3, struct.pack("=I", group))], socket.MSG_TRUNC if len(datagram) > len(data) else 0, (pid, 0)

    def peek_queue(self) -> None:
        if self.sk_err:
            self.sk_err = False
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
        if not self.queue:
            self._emptied()
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    # -- what the test scripts --------------------------------------------------------------
    def deliver(self, data: bytes, group: int = 0, pid: int = 0) -> None:
        if self.congested or self.sk_err:
            # NETLINK_S_CONGESTED since the overrun: dropped until a receive
            # has left the queue empty (netlink_rcv_wake)
            self.dropped += 1
            return
        self.queue.append((data, group, pid))
        self._run()

    def overrun(self) -> None:
        """netlink_overrun(): the armed receive meets sk_err = ENOBUFS; with
        no buffer left it fails picking one first (a dry ring), and sk_err
        waits for the next receive."""
        assert self.armed
        self.armed = False
        self.congested = True
        if not self.buffers:
            self.sk_err = True
        self._post(_RECV, -errno.ENOBUFS, 0)

    def completions(self) -> list[tuple[int, int, int]]:
        out = self.peek()
        self.consume(len(out))
        return out

    def peek(self) -> list[tuple[int, int, int]]:
        return list(self.cqes)

    def consume(self, count: int) -> None:
        had = bool(self.cqes)
        del self.cqes[:count]
        if had and not self.cqes:
            os.eventfd_read(self.eventfd)  # the CQ ring is empty: not readable any more

    def close(self) -> None:
        if self.eventfd >= 0:
            os.close(self.eventfd)
            self.eventfd = -1


def scripted_ring(frames: int = 4) -> tuple[Ring, ScriptedUring]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
    sock.bind((0, 0))
    uring = ScriptedUring()
    backend = UringBackend(sock, RingConfig.for_frames(4096, frames), RingConfig.for_frames(4096, 4), uring=uring)  # type: ignore[arg-type]
    # the scripted socket, for the reads the backend makes itself after an overrun
    backend._recvmsg_into = uring.recvmsg_into  # type: ignore[method-assign]
    backend._peek_queue = uring.peek_queue  # type: ignore[method-assign]
    return Ring(backend, sock, protocol=0), uring


async def receive_all(ring: Ring, count: int) -> list[Any]:
    """Sequence numbers of events, and "overrun" where one was raised."""
    out: list[Any] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            try:
                async for msg in ring:
                    out.append(msg.seq)
                    if len(out) == count:
                        break
            except OverrunError:
                out.append("overrun")
    return out


async def test_an_enobufs_completion_with_buffers_left_is_an_overrun_in_its_place() -> None:
    ring, uring = scripted_ring()
    async with ring:
        for seq in (1, 2):
            uring.deliver(newlink_event(seq))
        uring.overrun()
        await asyncio.sleep(0.01)  # the backend re-arms
        uring.deliver(newlink_event(3))
        assert await receive_all(ring, 4) == [1, 2, "overrun", 3]
        assert ring.stats.overruns == 1


async def test_an_overrun_while_dry_is_reported_after_the_datagrams_queued_before_it() -> None:
    ring, uring = scripted_ring(frames=4)
    async with ring:
        for seq in range(1, 7):
            uring.deliver(newlink_event(seq))  # 1-4 in frames, 5-6 queued: dry
        uring.sk_err = True  # then the socket queue overflowed: 5 and 6 are older than the loss
        got = await receive_all(ring, 7)
        uring.deliver(newlink_event(7))
        got += await receive_all(ring, 1)
        assert got[:7] == [1, 2, 3, 4, 5, 6, "overrun"] and got[7:] == [7]
        assert ring.stats.overruns == 1


@pytest.mark.parametrize("frames", [4, 2])
async def test_an_overrun_caught_up_across_refills_is_placed_before_what_came_after_the_queue_ran_empty(frames: int) -> None:
    """The loss lies where the socket's queue ran empty: 1-4 (or 1-2) in
    frames, the rest queued, then the overrun (sk_err, the socket congested: nothing new
    gets in). The queue is read over several refills; 11 is sent once it
    has run empty. Re-arming the multishot receive to catch up put 11
    before the overrun (it ran on until the next fill)."""
    ring, uring = scripted_ring(frames=frames)
    async with ring:
        for seq in range(1, 11):
            uring.deliver(newlink_event(seq))
        assert len(uring.queue) == 10 - frames and not uring.armed
        uring.sk_err = True
        uring.after_empty = [newlink_event(11)]
        assert await receive_all(ring, 12) == [*range(1, 11), "overrun", 11]
        assert ring.stats.overruns == 1


async def test_a_second_overrun_while_catching_up_places_the_first_before_it() -> None:
    ring, uring = scripted_ring(frames=4)
    async with ring:
        for seq in (1, 2):
            uring.deliver(newlink_event(seq))
        uring.overrun()  # the first loss, after 2
        await asyncio.sleep(0.01)  # the backend catches up: the queue is empty, then re-arms
        for seq in (3, 4):
            uring.deliver(newlink_event(seq))
        uring.overrun()  # the second, after 4
        uring.deliver(newlink_event(5))  # lost too: the socket is congested
        uring.after_empty = [newlink_event(6)]
        assert await receive_all(ring, 7) == [1, 2, "overrun", 3, 4, "overrun", 6]
        assert ring.stats.overruns == 2 and uring.dropped == 1


async def test_a_dry_buffer_ring_is_no_overrun_and_the_queue_waits_for_frames() -> None:
    ring, uring = scripted_ring(frames=4)
    async with ring:
        for seq in range(1, 11):
            uring.deliver(newlink_event(seq))  # 4 frames: the ring runs dry, 6 wait in the socket queue
        assert len(uring.queue) == 6 and not uring.armed
        assert await receive_all(ring, 10) == list(range(1, 11))
        backend: Any = ring._backend
        assert ring.stats.overruns == 0 and backend.dry_rings >= 1 and backend.rearms >= 3


async def test_a_held_frame_stays_out_of_the_buffer_ring_while_later_ones_flow() -> None:
    ring, uring = scripted_ring(frames=4)
    async with ring:
        uring.deliver(newlink_event(1))
        held = None
        got = []
        async with asyncio.timeout(5):
            async for msg in ring:
                if held is None:
                    held = msg.hold()
                got.append(msg.seq)
                if msg.seq == 1:
                    for seq in range(2, 9):
                        uring.deliver(newlink_event(seq))
                if msg.seq == 8:
                    break
        assert got == list(range(1, 9))
        assert held is not None and held.seq == 1 and bytes(held.payload) == IFINFOMSG.pack(0, 0, 1, 0, 0)
        index = held.frame.frame_index
        assert all(address != ring._backend._base + ring._backend._buffer_at[index] for address, _l, _b in uring.buffers)  # type: ignore[attr-defined]
        held.release()


async def test_a_datagram_larger_than_a_frame_is_a_loss_reported_in_its_place_never_cut_short() -> None:
    # The multishot receive already consumed it (the kernel cut it to the
    # buffer and set MSG_TRUNC): unlike emulated there is nothing left to
    # read it whole from, so it is reported where it was, like an overrun.
    ring, uring = scripted_ring()
    async with ring:
        uring.deliver(newlink_event(1))
        uring.deliver(encode_message(RTM_NEWLINK, 0, 2, 0, bytes(6000)))
        uring.deliver(newlink_event(3))
        assert await receive_all(ring, 3) == [1, "overrun", 3]
        assert ring.stats.truncated == 1


async def test_auto_takes_uring_only_for_frames_that_hold_a_whole_dump_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _uring_sys.probe()[0]:
        pytest.fail("io_uring does not work here: this host cannot test the uring backend")
    monkeypatch.setattr(_open, "AUTO_PREFERS_URING", True)
    monkeypatch.setattr(_extensions, "speedups", _extensions.speedups or object())  # the compiled core's choice
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE) as ring:
        assert ring.backend == "uring"
    small = RingConfig.for_frames(frame_size=2048, frame_nr=8)
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, rx=small) as ring:
        # a 2 KiB frame cannot hold a dump chunk (up to 32 KiB): emulated
        # delivers those as COPY frames, uring could only report them lost
        assert ring.backend == "emulated"


def test_auto_here_is_uring_on_the_compiled_core_and_emulated_on_the_pure_one() -> None:
    # what makes the suite's two runs (compiled, pure) cover both backends
    if not _uring_sys.probe()[0]:
        pytest.fail("io_uring does not work here: this host cannot test the uring backend")
    assert _open.auto_backend()[0] == ("uring" if _extensions.speedups is not None else "emulated")


def test_the_default_ring_holds_a_dump_chunk_and_nfqueues_default_does_not() -> None:
    from aionlmmap.backends.uring import holds_a_dump_chunk
    from aionlmmap.families.netfilter.nfqueue import DEFAULT_QUEUE_RX
    from aionlmmap.ring import DEFAULT_RX

    # so auto gives aionlmmap.open() uring where it takes uring at all, and
    # nfqueue.open() (16 KiB frames: a 64 KiB packet needs a COPY frame) emulated
    assert holds_a_dump_chunk(DEFAULT_RX) and not holds_a_dump_chunk(DEFAULT_QUEUE_RX)
    # 32 KiB behind the 84-byte receive prefix and the 24-byte frame header
    assert holds_a_dump_chunk(RingConfig.for_frames(32876, 8)) and not holds_a_dump_chunk(RingConfig.for_frames(32872, 8))


async def test_nfqueue_on_auto_keeps_the_emulated_ring(monkeypatch: pytest.MonkeyPatch, netns: str) -> None:
    from aionlmmap.families.netfilter import nfqueue

    monkeypatch.setattr(_extensions, "speedups", _extensions.speedups or object())  # the compiled core's choice
    async with nfqueue.open(7, netns=netns) as queue:
        assert queue.ring.backend == "emulated"


@pytest.mark.parametrize("result", [-errno.EPERM, 10], ids=["failed", "short"])
async def test_a_failed_or_short_send_fails_its_request_and_the_ring_goes_on(result: int) -> None:
    ring, uring = scripted_ring()
    async with ring:
        uring.send_result = result
        with pytest.raises(OSError) as info:
            async with asyncio.timeout(5):
                await ring.request(Message(RTM_NEWLINK, NLM_F_REQUEST, payload=bytes(16)))
        assert info.value.errno == (errno.EPERM if result < 0 else errno.EMSGSIZE)
        uring.send_result = None
        task = asyncio.ensure_future(ring.request(Message(RTM_NEWLINK, NLM_F_REQUEST, payload=bytes(16))))
        for _ in range(100):
            await asyncio.sleep(0.001)
            if len(uring.sent) == 2:
                break
        seq = struct.unpack_from("=IHHII", uring.sent[-1])[3]
        uring.deliver(encode_message(NLMSG_ERROR, 0, seq, ring.portid, struct.pack("=i", 0) + uring.sent[-1][:16]))
        async with asyncio.timeout(5):
            assert await task == []


async def test_many_sends_go_out_in_one_enter() -> None:
    ring, uring = scripted_ring()
    async with ring:
        before = uring.enters
        for i in range(3):
            # atomic: a TX frame (a datagram) each
            ring.send_nowait(Message(RTM_NEWLINK, 0, payload=bytes(16 + i)), atomic=True)
        await ring.drain()
        assert len(uring.sent) == 3 and uring.enters - before == 1


async def test_a_flush_of_many_frames_goes_out_as_one_datagram_in_one_enter() -> None:
    ring, uring = scripted_ring()
    async with ring:
        before = uring.enters
        messages = [Message(RTM_NEWLINK, 0, seq=i + 1, payload=bytes(3000)) for i in range(3)]
        for message in messages:
            ring.send_nowait(message)  # 3 KiB each: a TX frame of 4 KiB each
        await ring.drain()
        backend: Any = ring._backend
        assert backend.tx_datagrams == 1 and uring.enters - before == 1
        assert uring.sent == [b"".join(m.encode() for m in messages)]  # one datagram, in order


async def test_a_failed_send_of_a_coalesced_datagram_fails_every_request_in_it() -> None:
    ring, uring = scripted_ring()
    async with ring:
        uring.send_result = -errno.EPERM
        requests = [asyncio.ensure_future(ring.request(Message(RTM_NEWLINK, NLM_F_REQUEST, payload=bytes(3000)))) for _ in range(3)]
        async with asyncio.timeout(5):
            results = await asyncio.gather(*requests, return_exceptions=True)
        assert [getattr(r, "errno", None) for r in results] == [errno.EPERM] * 3
        assert len(uring.sent) == 1  # the three frames were one datagram


@pytest.mark.parametrize("count", [3, 40])
async def test_uring_sends_a_flush_as_few_datagrams_as_emulated(netns: str, count: int) -> None:
    """The real kernel: requests spanning many 4 KiB TX frames leave in as
    many datagrams on uring as on emulated (netlink_sendmsg takes many
    messages per datagram), and every one of them is answered."""
    from aionlmmap.constants import NLM_F_ACK, NLMSG_NOOP

    datagrams = {}
    for backend in ("emulated", "uring"):
        tx = RingConfig.for_frames(4096, 64)
        async with aionlmmap.open(netns=netns, backend=backend, tx=tx, rcvbuf=4 << 20) as ring:  # type: ignore[arg-type]
            before = ring.stats.tx_syscalls
            # NLMSG_NOOP with an ACK asked for, padded to 1 KiB: four to a frame
            requests = [ring.request(Message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, payload=bytes(1000))) for _ in range(count)]
            async with asyncio.timeout(20):
                answers = await asyncio.gather(*requests)
            assert answers == [[]] * count
            datagrams[backend] = ring.stats.tx_syscalls - before
            if backend == "uring":
                assert ring._backend.tx_datagrams <= datagrams["emulated"]  # type: ignore[attr-defined]
    assert datagrams["uring"] == datagrams["emulated"] == 1


# -- what the kernel does: a socket overrun in a multishot receive -------------------------------
def test_a_socket_overrun_ends_the_multishot_receive_with_enobufs_and_no_buffer() -> None:
    """Found out here (Linux 6.x): netlink_overrun() sets sk_err; the armed
    multishot RECVMSG meets it in skb_recv_datagram and completes with
    -ENOBUFS, without IORING_CQE_F_MORE and without a buffer (the buffer it
    picked goes back). Armed again, it delivers what was queued before."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
    uring = _uring_sys.Uring(8, 64, 4)
    memory = mmap.mmap(-1, 4 * 4096)
    address, anchor = _uring_sys.address_of(memory)
    header = bytearray(56)
    header_buffer = (ctypes.c_char * 56).from_buffer(header)
    try:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        noop_ack = struct.pack("=IHHII", 16, 1, NLM_F_REQUEST | 0x4, 7, 0)
        for _ in range(200):  # ACKs pile up unread until the receive buffer overflows
            sock.send(noop_ack)
        for bid in range(4):
            uring.provide(address + bid * 4096, 4096, bid)
        uring.publish_buffers()

        def arm() -> list[tuple[int, int, int]]:
            uring.prepare(_uring_sys.IORING_OP_RECVMSG, sock.fileno(), ctypes.addressof(header_buffer), 0, 1,
                          flags=_uring_sys.IOSQE_BUFFER_SELECT, ioprio=_uring_sys.IORING_RECV_MULTISHOT)
            uring.submit(wait=1)
            return uring.completions()

        first = arm()
        assert first[0][1] == -errno.ENOBUFS
        assert not first[0][2] & (_uring_sys.IORING_CQE_F_MORE | _uring_sys.IORING_CQE_F_BUFFER)
        again = arm()  # sk_err was cleared by the receive: the queued ACKs come now
        assert again and again[0][1] > 0 and again[0][2] & _uring_sys.IORING_CQE_F_BUFFER
        assert (again[0][2] >> 16) == 0  # the first buffer, which the failed receive gave back
    finally:
        del header_buffer, anchor
        uring.close()
        memory.close()
        sock.close()


# -- nfqueue on uring: packets arrive as frames, verdicts leave as sends -------------------------
def queued_by_kernel(netns: str, queue: int) -> int:
    """How many packets the kernel has put on ``queue`` so far: its last
    packet id (nfqnl_show: id_sequence, the 8th field; ids count from 1)."""
    listing = run("ip", "netns", "exec", netns, "cat", "/proc/net/netfilter/nfnetlink_queue").stdout
    for line in listing.splitlines():
        fields = line.split()
        if int(fields[0]) == queue:
            return int(fields[7])
    return 0


async def test_nfqueue_on_uring_sees_every_packet_once_and_its_verdicts_hold(netns_pair: tuple[str, str]) -> None:
    from test_nfqueue import QUEUE, Sink, queue_rule, send_udp, seq_of

    from aionlmmap.families import nfqueue

    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 300
    # 16 small frames: the buffer ring runs dry many times over
    geometry = RingConfig.for_frames(4096, 16)
    # The sink stops at the accepted packets' count, not at a short pause: a
    # loaded machine can leave the sender's start (a fresh python under `ip
    # netns exec`) or this consumer idle for longer than that, which ended
    # the sink early. A dropped packet let through still shows: it takes
    # an accepted one's place.
    async with nfqueue.open(QUEUE, netns=receiver, backend="uring", rx=geometry) as queue, Sink(receiver, 2 * count // 3, idle=10) as sink:
        assert queue.ring.backend == "uring"
        seen: list[int] = []
        ids: list[int] = []

        async def consume() -> None:
            async for packet in queue:
                seq = seq_of(packet)
                seen.append(seq)
                ids.append(packet.id)
                packet.drop() if seq % 3 == 0 else packet.accept()
                if len(seen) == count:
                    break

        consumer = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(60):
                await send_udp(sender, count)
                # A packet the kernel drops before the queue never reaches
                # us: veth hands packets to netif_rx, which drops past
                # net.core.netdev_max_backlog on a per-CPU backlog that every
                # namespace on the host shares (a loaded host's other traffic
                # fills it). What must hold is that every packet the kernel
                # queued comes out once: wait for all it says it queued.
                while not consumer.done():
                    queued = queued_by_kernel(receiver, QUEUE)
                    await asyncio.wait([consumer], timeout=1.0)
                    if not consumer.done() and len(seen) == queued == queued_by_kernel(receiver, QUEUE):
                        break  # all of them, and no more came in a second
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        queued = queued_by_kernel(receiver, QUEUE)
        result = await sink.result()
        backend: Any = queue.ring._backend
        assert backend.dry_rings >= 1 and queue.ring.stats.overruns == 0
    assert sorted(ids) == list(range(1, queued + 1)), f"{queued} queued by the kernel, {len(ids)} seen"
    assert len(set(seen)) == len(seen) and set(seen) <= set(range(count))
    assert sorted(result["seqs"]) == sorted(seq for seq in seen if seq % 3), f"{count - len(seen)} packets never reached the queue"


async def test_a_dump_behind_a_dry_ring_of_unread_notifications_gets_its_answer(netns: str) -> None:
    # Found by the overrun parity test under load: every frame held by a
    # notification nobody reads yet, the buffer ring dry, the multishot
    # receive ended: nothing armed, so no completion came to wake the
    # reader, and a dump waiting behind those notifications hung forever.
    from rtnl_raw import getlink_dump

    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns, backend="uring", rx=RingConfig.for_frames(4096, 4)) as ring:
        batch = "".join(f"link add du{i} type veth peer name dv{i}\n" for i in range(10))
        await asyncio.to_thread(run, "ip", "-n", netns, "-batch", "-", input=batch)
        async with asyncio.timeout(20):
            links = await ring.dump_all(getlink_dump())
        assert len(links) == 21
        # the notifications were kept for the iterator, in order, none lost
        assert ring.stats.overruns == 0
        names = []
        async with asyncio.timeout(20):
            async for msg in ring:
                if msg.type == RTM_NEWLINK:
                    names.append(msg)
                if len(names) == 20:
                    break


@pytest.mark.parametrize("backend", ["emulated", "uring"])
async def test_fileno_is_the_netlink_socket_on_every_backend(netns: str, backend: str) -> None:
    # On uring the loop watches the io_uring fd; Ring.fileno() used to return
    # it, so DropWatch (families/_drops.py, the conntrack monitor's check for
    # silent congestion drops) dup'ed it as a socket and failed with ENOTSOCK.
    from aionlmmap.families._drops import DropWatch

    async with aionlmmap.open(netns=netns, backend=backend) as ring:
        sock = socket.socket(fileno=os.dup(ring.fileno()))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == 0  # NETLINK_ROUTE
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_RAW
        finally:
            sock.close()
        watch = DropWatch(ring.fileno())
        try:
            assert watch.available
        finally:
            watch.close()
