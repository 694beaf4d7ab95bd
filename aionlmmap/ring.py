"""``Ring``: the asyncio object over a netlink socket and its frame rings.

Shape (DESIGN.md section 3):

- reader: ``loop.add_reader(fd)`` (works on the default loop and uvloop);
  on wake the *drainer* walks RX frames in ring order, parses the messages
  in place and routes them: replies to their request or dump (by seq and
  portid, through the sans-IO :class:`NetlinkProtocol`), everything else to
  the iterator.
- frames go back to the kernel (UNUSED) when every message in them has been
  consumed; ``msg.hold()`` keeps a frame (SKIP) without stopping later ones.
- TX: messages are written into TX frames; one flush per loop iteration
  (``call_soon``) sends every VALID frame with one syscall.
- a full RX ring pauses the reader, so the kernel's socket buffer absorbs
  and then overruns (ENOBUFS) exactly as with the kernel's own ring.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import select
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from . import _sys
from .backends import Backend
from .constants import (
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
)
from .errors import (
    BusyResourceError,
    ClosedResourceError,
    OverrunError,
)
from .frames import COPY, NL_MMAP_HDR, SKIP, UNUSED, VALID, RingConfig
from .message import COPIED, NLMSGHDR, Message, ReceivedFrame, parse_frame
from ._frame_keeping import FrameKeeper, socket_drops
from ._requests import Requester
from ._transmit import Transmitter
from .protocol import FOREIGN, NetlinkProtocol, PendingRequest

__all__ = ["Ring", "RingStats", "DEFAULT_RX", "DEFAULT_TX"]

log = logging.getLogger("aionlmmap")

#: RX frames hold the largest dump chunk the kernel builds (32 KiB, once a
#: recvmsg buffer of 32 KiB or more was seen: netlink_recvmsg caps
#: max_recvmsg_len at 32768) plus the 24-byte frame header; 9 pages each.
DEFAULT_RX = RingConfig(block_size=36864, block_nr=64, frame_size=36864, frame_nr=64)
#: TX frames: many small messages share a frame; an nfnetlink batch must fit one.
DEFAULT_TX = RingConfig(block_size=65536, block_nr=16, frame_size=65536, frame_nr=16)

_MAX_DRAIN_FAILURES = 3
_unpack_header = NLMSGHDR.unpack_from
_seq_of = operator.itemgetter(2)
_new_message = tuple.__new__
_unpack_frame_header = NL_MMAP_HDR.unpack_from
_unpack_frame_and_message = struct.Struct("=IIIIII" + "IHHII").unpack_from


@attrs.define
class RingStats:
    """Counters of one ring; read ``ring.stats`` at any time."""

    frames: int = 0  #: RX frames walked (VALID and COPY)
    copy_frames: int = 0  #: RX frames that took the COPY path
    empty_frames: int = 0  #: VALID frames with nm_len 0, released unread
    messages: int = 0  #: messages parsed
    unsolicited: int = 0  #: messages handed to the iterator
    decode_errors: int = 0  #: malformed datagrams (counted, rest skipped)
    foreign: int = 0  #: messages from non-kernel senders, dropped
    truncated: int = 0  #: datagrams larger than frame + spill, dropped
    overruns: int = 0  #: overrun reports (ENOBUFS, or drops past the backlog limit)
    lost: int = 0  #: messages lost, as counted by the overrun reports so far
    stale_replies: int = 0  #: replies to cancelled requests, dropped
    detached_frames: int = 0  #: frames copied out to let a waiter progress
    dropped_unsolicited: int = 0  #: notifications dropped past the backlog limit
    tx_messages: int = 0
    tx_frames: int = 0
    tx_syscalls: int = 0
    rx_syscalls: int = 0
    ring_full: int = 0  #: times the reader paused on a full RX ring


class Ring(FrameKeeper, Requester, Transmitter):
    """An asyncio netlink socket with RX and TX frame rings.

    Use :func:`aionlmmap.open`::

        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:
            async for msg in ring.dump(Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16))):
                ...
            async for msg in ring:          # notifications
                ...
    """

    def __init__(
        self,
        backend: Backend,
        sock: Any,
        *,
        protocol: int,
        accept_foreign: bool = False,
        backlog_limit: int = 16 * 1024 * 1024,
        options: dict[str, bool] | None = None,
    ) -> None:
        self._backend = backend
        self._sock = sock
        self._fd = backend.fileno()
        # The loop watches the socket through an epoll instance of our own.
        # A netlink socket reports POLLERR on every overrun (sk_err =
        # ENOBUFS, netlink_overrun), and libuv stops a poll handle for good
        # on POLLERR (uv__poll_io), so under uvloop a direct add_reader
        # would go deaf after the first overrun. An epoll fd only ever
        # turns readable; the overrun itself is read by recvmsg (ENOBUFS).
        # Level-triggered, and polling it still runs netlink_poll(), which
        # the kernel ring needs to continue dumps.
        self._epoll = select.epoll()
        self._epoll.register(self._fd, select.EPOLLIN)
        self._watch_fd = self._epoll.fileno()
        self.protocol = protocol
        self.portid = _sys.portid_of(sock)
        self.options = options or {}
        self._proto = NetlinkProtocol(self.portid, accept_foreign)
        self.stats = RingStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False  #: the socket is in our epoll's interest set
        self._watching = False  #: the loop watches our epoll fd
        self._paused = False
        self._closed = False
        self._failure: BaseException | None = None
        self._hold_callback = self._on_hold_change  # one bound method, not one per frame
        self._drain_failures = 0
        rx = backend.rx
        self._rx = rx
        self._rx_next = 0
        self._walked = 0  #: VALID/COPY frames walked (matches backend.frames_produced)
        self._slots: list[ReceivedFrame | None] = [None] * rx.frame_nr
        self._lap_scan_budget = 0
        self._backlog_limit = backlog_limit
        #: bytes of COPY-path datagrams read off the socket and not released
        self._copied_bytes = 0
        self._drops_seen = socket_drops(sock)
        # iterator
        self._unsolicited: deque[Any] = deque()
        self._iter_waiter: asyncio.Future[None] | None = None
        self._iter_owner: asyncio.Task[Any] | None = None
        self._iter_token: object = None
        #: the entry the iterator is in: a Message, or (frame, iterator over the rest)
        self._iter_current: Any = None
        # requests and dumps
        self._active_dump: PendingRequest | None = None
        self._dump_slot_waiters: list[asyncio.Future[None]] = []
        self._stale_seqs: set[int] = set()
        # An answer costs its skb's truesize in receive buffer: about 1 KiB
        # for an ACK, 2-4 KiB for a reply and its ACK (an RTM_GETLINK reply
        # is allocated at if_nlmsg_size()). Budget 4 KiB per request;
        # getsockopt(SO_RCVBUF) reports the doubled value the kernel charges
        # against.
        self.max_in_flight = max(8, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4096)
        self._barrier: PendingRequest | None = None
        # TX
        self._tx = backend.tx
        self._tx_open: int | None = None
        self._tx_fill = 0
        self._tx_owners: dict[int, list[PendingRequest]] = {}
        self._tx_backlog: deque[tuple[list[Message], bool, list[PendingRequest]]] = deque()
        self._flush_scheduled = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._tx_data_size = backend.tx_config.data_size

    # -- properties ------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"kernel"``, ``"uring"`` or ``"emulated"``: the backend that fills the frames."""
        return self._backend.name

    @property
    def rx_config(self) -> RingConfig:
        return self._backend.rx_config

    @property
    def tx_config(self) -> RingConfig:
        return self._backend.tx_config

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._fd

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Ring {state} protocol={self.protocol} portid={self.portid} backend={self.backend}>"

    # -- lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Ring:
        self._attach()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _attach(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise ClosedResourceError("the ring is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._start_reading()
        return loop

    def _start_reading(self) -> None:
        if not self._reading and not self._closed and self._loop is not None:
            if self._watching:
                self._epoll.register(self._fd, select.EPOLLIN)
            else:
                self._loop.add_reader(self._watch_fd, self._on_watch_readable)
                self._watching = True
            self._reading = True

    def _stop_reading(self) -> None:
        # Pausing (a full RX ring) happens once per ring's worth of frames:
        # rather than leave and rejoin the loop's selector, take the socket
        # out of our own epoll (one epoll_ctl). Our epoll fd then stops
        # being readable, and adding the socket back polls it and wakes the
        # loop's watch. Out, not masked: epoll reports EPOLLERR whatever the
        # mask, and an overrun leaves the socket in error until it is read.
        if self._reading and self._loop is not None:
            self._epoll.unregister(self._fd)
            self._reading = False

    def close(self) -> None:
        """Close the socket and the rings. Every waiter (iterator, request,
        dump, drain) is woken with :class:`ClosedResourceError`."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._watching and self._loop is not None:
            self._loop.remove_reader(self._watch_fd)
            self._watching = False
        failure = self._failure
        error = ClosedResourceError("the ring was closed" + (f" after its reader failed: {failure!r}" if failure else ""))
        error.__cause__ = failure
        for pending in self._proto.fail_all(error):
            self._wake(pending)
        self._wake_dump_slot()
        if self._iter_waiter is not None and not self._iter_waiter.done():
            self._iter_waiter.set_exception(error)
        self._iter_waiter = None
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ClosedResourceError("the ring was closed before its TX frames were sent"))
        self._drain_waiters.clear()
        for slot in self._slots:
            if slot is not None:
                slot.retire()
        self._slots = [None] * len(self._slots)
        self._unsolicited.clear()
        self._tx_backlog.clear()
        try:
            self._backend.close()
        finally:
            self._epoll.close()
            self._sock.close()

    async def aclose(self) -> None:
        self.close()

    # -- the reader and the drainer ---------------------------------------------
    def _on_watch_readable(self) -> None:
        # The loop may run a wakeup it collected before we paused; leaving
        # the selector would have cancelled it, so drop it here.
        if self._reading:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            self._drain()
            self._drain_failures = 0
        except Exception as exc:
            # One bad wake must not kill the reader; but an error that comes
            # back on every wake would spin the loop (the fd stays readable),
            # so after a few in a row the ring closes and every waiter learns
            # why (ClosedResourceError from the cause).
            self._drain_failures += 1
            log.exception("aionlmmap: unexpected error while draining the ring")
            if self._drain_failures >= _MAX_DRAIN_FAILURES:
                self._failure = exc
                self.close()

    def _drain(self) -> None:
        """Bring frames in and route every new message. Runs on each wake."""
        if self._closed:
            return
        backend = self._backend
        touched: list[Any] = []
        relieved = False
        for _round in range(4):  # bounded: refill after freeing space, a few times
            full = backend.fill()
            self.stats.rx_syscalls = backend.rx_syscalls
            if backend.take_overrun():
                self._on_overrun(touched)
            progressed = self._walk(touched)
            marks = backend.overrun_marks
            while marks and self._walked >= marks[0]:
                # Lost after every frame walked so far: report it now, even
                # if the walk stopped at a frame still pinned (a full ring).
                marks.popleft()
                self._on_overrun(touched)
            if not full:
                break
            if not progressed:
                relieved = self._relieve(touched)
                if not relieved:
                    break
        self.stats.truncated = backend.truncated
        if self._rx_blocked(progressed):
            if self._reading:
                self.stats.ring_full += 1
            self._paused = True
            self._stop_reading()
            if relieved and self._loop is not None and self._someone_waits():
                # A request or dump waits behind notifications nobody reads
                # yet (e.g. a monitor's resync dump): keep copying them out
                # on the next loop iteration, or nothing would wake it again.
                self._loop.call_soon(self._on_readable)
        for target in touched:
            self._wake(target)

    def _rx_blocked(self, progressed: bool = False) -> bool:
        # The producer cannot write (its head frame is not UNUSED) and the
        # consumer has nothing new: reading the fd would spin (it stays
        # readable, level-triggered), so pause until a frame is released.
        rx = self._rx
        if self._backend.name == "emulated":
            rx.forward_past_skip()
            return rx.status(rx.head) != UNUSED and self._slots[self._rx_next] is not None
        if getattr(rx, "starved", False):
            # uring: the buffer ring ran dry and every frame is pinned by a
            # consumer, so nothing is armed and no completion will wake the
            # reader (a dry ring ends the multishot recvmsg: io_recv_finish
            # posts its last CQE without IORING_CQE_F_MORE). Pause as above:
            # a release resumes it, and a request or dump that waits behind
            # unread notifications gets them copied out (_relieve, and the
            # drains _until_finished and _dump make while paused); without
            # this a dump behind a full ring waited forever.
            return self._slots[self._rx_next] is not None
        if progressed or not getattr(self._backend, "readable", False):
            return False
        return self._kernel_stalled()

    def _kernel_stalled(self) -> bool:
        """The kernel ring is readable but there is nothing new to walk.

        netlink_poll() reports POLLIN while ANY frame is VALID, including
        frames whose messages still wait for a consumer, so a
        level-triggered reader would wake on every loop iteration. Take
        those frames out of the kernel's sight: SKIP where that is safe (all
        traffic takes the ring path); else copy them out if some task waits
        for new data; else pause until a consumer releases a frame. True
        means: pause the reader."""
        pinned = [frame for frame in self._slots if frame is not None and frame.frame_index >= 0]
        if not pinned:
            # Nothing of ours is VALID: we wait at a RESERVED frame (nflog
            # keeps one until its flush timer) with VALID frames behind it.
            # The kernel wakes nobody when it turns VALID: look again soon.
            if self._loop is not None:
                self._loop.call_later(0.005, self._resume)
            return True
        rx = self._rx
        if self._backend.skip_is_safe:
            hidden = False
            for frame in pinned:
                if rx.status(frame.frame_index) == VALID:
                    rx.hold(frame.frame_index)
                    hidden = True
            # Already all SKIP: what is readable lies behind a frame we
            # still hold a lap later; pause until a frame is released.
            return not hidden
        someone_waits = any(p.waiter is not None and not p.waiter.done() for p in self._proto.pending.values())
        if someone_waits or (self._iter_waiter is not None and not self._iter_waiter.done()):
            for frame in pinned:
                self._detach(frame)
            return False
        return True

    def _walk(self, touched: list[Any]) -> bool:
        progressed = False
        if self._backend.rx_views is not None and self._active_dump is None and not self._lap_scan_budget:
            progressed = self._walk_unsolicited()
        return self._walk_general(touched) or progressed

    def _walk_unsolicited(self) -> bool:
        """The common run of frames, in one tight loop: VALID frames from
        the kernel holding one message that is no reply (nfqueue packets,
        nflog entries, notifications; see the fast path in
        _walk_general), on a backend whose frame data starts right after
        the header. Stops at the first other frame, or where an overrun is
        to be reported, and leaves it to _walk_general."""
        rx = self._rx
        frame_nr = rx.frame_nr
        marks = self._backend.overrun_marks
        budget = min(frame_nr, marks[0] - self._walked) if marks else frame_nr
        if budget <= 0:
            return False
        memory = rx.buffer
        offsets = rx.offsets
        views = self._backend.rx_views
        slots = self._slots
        append = self._unsolicited.append
        hold_callback = self._hold_callback
        index = self._rx_next
        taken = 0
        while taken < budget:
            # nl_mmap_hdr and the first nlmsghdr in one unpack
            status, length, group, sender, uid, gid, message_length, kind, flags, seq, pid = _unpack_frame_and_message(memory, offsets[index])
            if (
                status != VALID
                or sender
                or (seq and not group)
                or slots[index] is not None
                or not NLMSG_HDRLEN <= message_length <= length <= (message_length + 3) & ~3
            ):
                break
            frame = ReceivedFrame(views[index][:length], group, 0, uid, gid, index)  # type: ignore[index]
            frame.on_hold_change = hold_callback
            frame.pending = 1
            slots[index] = frame
            append(_new_message(Message, (kind, flags, seq, pid, NLMSG_HDRLEN, message_length, frame)))
            taken += 1
            index += 1
            if index == frame_nr:
                index = 0
        if not taken:
            return False
        self._rx_next = index
        self._walked += taken
        stats = self.stats
        stats.frames += taken
        stats.messages += taken
        stats.unsolicited += taken
        self._wake_iterator()
        return True

    def _walk_general(self, touched: list[Any]) -> bool:
        rx = self._rx
        backend = self._backend
        slots = self._slots
        frame_nr = rx.frame_nr
        stats = self.stats
        progressed = False
        ring_memory = rx.buffer
        offsets = rx.offsets
        unsolicited = self._unsolicited
        views = backend.rx_views
        for _ in range(frame_nr):
            index = self._rx_next
            header = _unpack_frame_header(ring_memory, offsets[index])
            status = header[0]
            if slots[index] is not None:
                if status == SKIP:
                    self._advance()  # held by the user; the producer stepped past it too
                    continue
                break  # still pinned from the last lap: nothing new behind it
            if status == VALID:
                length = header[1]
                if length == 0:
                    # A ring skb freed without delivery (e.g. a socket filter
                    # dropped it): release unread, as the kernel expects.
                    rx.release(index)
                    stats.empty_frames += 1
                    self._walked += 1
                    self._advance()
                    continue
                frame = ReceivedFrame(
                    backend.frame_data(index, length) if views is None else views[index][:length], header[2], header[3], header[4], header[5], index
                )
                slots[index] = frame
                over_limit = False
            elif status == COPY:
                length = header[1]
                data = backend.read_copy(index, length)
                rx.release(index)
                stats.copy_frames += 1
                frame = ReceivedFrame(data, header[2], header[3], header[4], header[5], COPIED)
                length = len(data)
                # Notifications read off the socket queue and not consumed
                # yet may reach the backlog limit (the kernel sees no
                # backpressure: the frame went back at once). Past it, this
                # one is dropped below and an overrun reported in its place,
                # as the kernel does when its queue is full; replies
                # (seq != 0) are never dropped.
                over_limit = self._copied_bytes + length > self._backlog_limit and length >= NLMSG_HDRLEN and bool(frame.group or not _unpack_header(data, 0)[3])
                if not over_limit:
                    self._copied_bytes += length
            elif status == SKIP:
                self._advance()  # held by the user since an earlier lap
                continue
            else:
                if self._lap_scan_budget > 0 and self._scan_past_released(index):
                    continue
                marks = backend.overrun_marks
                if marks and self._walked >= marks[0]:
                    # Lost after the last frame we have: report it now.
                    marks.popleft()
                    self._on_overrun(touched)
                break  # UNUSED: nothing yet; RESERVED: the kernel is still writing it
            # self._advance(), inlined: this runs once per frame
            self._rx_next = 0 if index + 1 == frame_nr else index + 1
            if self._lap_scan_budget:
                self._lap_scan_budget -= 1
            progressed = True
            stats.frames += 1
            marks = backend.overrun_marks
            if marks and self._walked >= marks[0]:
                # Messages were lost right before this frame.
                marks.popleft()
                self._on_overrun(touched)
            self._walked += 1
            if over_limit:
                self._drop_copied_notification(frame, touched)
                continue
            frame.on_hold_change = self._hold_callback
            if length >= NLMSG_HDRLEN and not frame.sender_pid:
                first = _unpack_header(frame.buffer, 0)
                if self._active_dump is not None and not frame.group:
                    # Fast path: a chunk of the running dump (its first message
                    # carries the dump's seq and our portid; netlink_dump() fills
                    # an skb with that dump's messages only, NLMSG_DONE possibly
                    # last). Hand the frame over unparsed: the dump's iterator
                    # parses as it yields, one pass instead of two.
                    pending = self._proto.pending.get(first[3])
                    if pending is not None and pending.is_dump and first[4] == self.portid and not pending.abandoned:
                        frame.pending = 1
                        pending.messages.append((frame, length))  # type: ignore[arg-type]  # the dump's chunk queue (see _requests)
                        touched.append(pending)
                        continue
                message_length = first[0]
                if (frame.group or not first[3]) and NLMSG_HDRLEN <= message_length <= length <= (message_length + 3) & ~3:
                    # Fast path: one message fills the datagram and it is no
                    # reply (multicast, or seq 0, which requests never use):
                    # nfqueue packets, nflog entries, most notifications
                    # (rtnetlink and nfnetlink send one event per skb).
                    # Queued as a lone Message (see _walk_unsolicited).
                    stats.messages += 1
                    stats.unsolicited += 1
                    frame.pending = 1
                    unsolicited.append(_new_message(Message, (first[1], first[2], first[3], first[4], NLMSG_HDRLEN, message_length, frame)))
                    self._wake_iterator()
                    continue
            messages, error = parse_frame(frame, length)
            if error is not None:
                stats.decode_errors += 1
                log.debug("aionlmmap: skipped malformed data in frame %d: %s", index, error)
            stats.messages += len(messages)
            self._route(frame, messages, touched)
        return progressed

    def _advance(self) -> None:
        index = self._rx_next + 1
        self._rx_next = 0 if index == self._rx.frame_nr else index
        if self._lap_scan_budget:
            self._lap_scan_budget -= 1

    def _scan_past_released(self, index: int) -> bool:
        # A frame the user held (SKIP) when the producer passed it and
        # released later sits UNUSED at our head while newer frames follow
        # it: netlink_forward_ring() stepped past it. Jump to the next frame
        # with data if only UNUSED/SKIP frames lie between.
        rx = self._rx
        probe = index
        for _ in range(rx.frame_nr - 1):
            probe = rx.next_index(probe)
            status = rx.status(probe)
            if status in (VALID, COPY) and self._slots[probe] is None:
                while self._rx_next != probe:
                    self._advance()
                return True
            if status not in (UNUSED, SKIP):
                return False
        return False

    # -- routing -----------------------------------------------------------------
    def _route(self, frame: ReceivedFrame, messages: list[Message], touched: list[Any]) -> None:
        if not messages:
            self._release(frame)
            return
        proto = self._proto
        if frame.sender_pid and not proto.accept_foreign:
            self.stats.foreign += len(messages)
            self._release(frame)
            return
        if frame.group or not any(map(_seq_of, messages)):
            # Multicast, or unicast with seq 0 (nfqueue packets, nflog
            # entries): never a reply, since requests never get seq 0.
            self._deliver_unsolicited(frame, messages, touched)
            return
        self._route_slow(frame, messages, touched)

    def _route_slow(self, frame: ReceivedFrame, messages: list[Message], touched: list[Any]) -> None:
        proto = self._proto
        portid = self.portid
        stale = self._stale_seqs
        run_target: Any = None
        run: list[Message] = []
        batches: list[tuple[Any, list[Message]]] = []
        for msg in messages:
            if stale and msg[2] in stale and msg[3] == portid:
                self.stats.stale_replies += 1
                if msg[0] in (NLMSG_ERROR, NLMSG_DONE):
                    stale.discard(msg[2])
                continue
            try:
                target = proto.feed(msg)
            except Exception as exc:  # malformed error message: count, skip
                self.stats.decode_errors += 1
                log.debug("aionlmmap: skipped malformed control message: %s", exc)
                continue
            if target is FOREIGN:
                self.stats.foreign += 1
                continue
            if target is None:
                destination: Any = None
            else:
                pending: PendingRequest = target  # type: ignore[assignment]
                touched.append(pending)
                if pending is self._barrier and pending.finished:
                    self._barrier_done(touched)
                if pending.is_dump:
                    if pending.finished and self._active_dump is pending:
                        self._active_dump = None
                        touched.append(self._wake_dump_slot)
                    if msg[0] in (NLMSG_ERROR, NLMSG_DONE):
                        continue
                    destination = pending
                else:
                    if msg[0] != NLMSG_ERROR and pending.messages and pending.messages[-1] is msg:
                        # Replies of plain requests outlive the frame (the
                        # caller gets them as a list): copy them now.
                        pending.messages[-1] = msg.copy()
                    continue
            if destination is not run_target or not run:
                if run:
                    batches.append((run_target, run))
                run_target = destination
                run = [msg]
            else:
                run.append(msg)
        if run:
            batches.append((run_target, run))
        if not batches:
            self._release(frame)
            return
        frame.pending = len(batches)
        for destination, batch in batches:
            if destination is None:
                self._deliver_unsolicited(frame, batch, touched, counted=True)
            else:
                self._deliver_dump(destination, frame, batch, touched, counted=True)

    def _deliver_unsolicited(self, frame: ReceivedFrame, messages: list[Message], touched: list[Any], counted: bool = False) -> None:
        if not counted:
            frame.pending = 1
        self.stats.unsolicited += len(messages)
        self._unsolicited.append((frame, messages))
        # Wake the iterator now (set_result only schedules it): one wakeup
        # per drain instead of one entry in `touched` per frame.
        self._wake_iterator()

    def _deliver_dump(self, pending: PendingRequest, frame: ReceivedFrame, messages: list[Message], touched: list[Any], counted: bool = False) -> None:
        if not counted:
            frame.pending = 1
        if pending.abandoned:
            self._batch_done(frame)
            return
        pending.messages.append((frame, messages))  # type: ignore[arg-type]
        touched.append(pending)

    # -- wakeups ------------------------------------------------------------------
    def _wake(self, target: Any) -> None:
        if callable(target):
            target()
            return
        waiter = target.waiter
        if waiter is not None:
            target.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_iterator(self) -> None:
        waiter = self._iter_waiter
        if waiter is not None:
            self._iter_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_dump_slot(self) -> None:
        waiters = self._dump_slot_waiters
        self._dump_slot_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- the iterator -----------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate(None, None)

    def iterate(
        self,
        convert: Callable[[Message], Any] | None = None,
        *,
        on_overrun: Callable[[], None] | None = None,
    ) -> AsyncIterator[Any]:
        """Unsolicited messages, like ``async for msg in ring``, with two hooks
        for decoders that sit on top (nfqueue, nflog use them):

        - ``convert(msg)`` runs on each message while its frame is still
          pinned; what it returns is yielded instead, and ``None`` skips the
          message. It must not raise.
        - ``on_overrun()`` is called where an overrun happened, instead of
          raising :class:`OverrunError` (use it when a loss needs no resync,
          e.g. packets the kernel never queued).
        """
        return self._iterate(convert, on_overrun)

    async def _iterate(self, convert: Callable[[Message], Any] | None, on_overrun: Callable[[], None] | None) -> AsyncIterator[Any]:
        loop = self._attach()
        task = asyncio.current_task()
        owner = self._iter_owner
        if owner is not None and owner is not task and not owner.done():
            raise BusyResourceError("another task is already iterating this ring; one consumer per ring")
        # A loop left with `break` leaves its generator suspended until the
        # garbage collector closes it; take back what it had not yielded, so
        # the next loop goes on exactly where the last one stopped.
        self._reclaim_abandoned()
        token = object()
        self._iter_owner = task
        self._iter_token = token
        release_frame = self._rx.release
        try:
            while True:
                queue = self._unsolicited
                while queue:
                    entry = queue.popleft()
                    if entry.__class__ is Message:
                        # One message in its frame (the common case): it is
                        # its own position; the frame goes back on resume.
                        self._iter_current = entry
                        try:
                            if convert is None:
                                yield entry
                            else:
                                item = convert(entry)
                                if item is not None:
                                    yield item
                        finally:
                            if self._iter_current is entry:
                                self._iter_current = None
                                frame = entry[6]
                                frame.pending = 0  # its one message is consumed
                                if not frame.holds:
                                    # self._release(frame), inlined for ring frames:
                                    # this runs once per message
                                    index = frame.frame_index
                                    if index >= 0:
                                        if not self._closed and self._slots[index] is frame:
                                            self._slots[index] = None
                                            release_frame(index)
                                            if self._paused:
                                                self._resume()
                                        frame.retire()
                                    else:
                                        self._release(frame)
                        queue = self._unsolicited  # relief may have replaced it
                        continue
                    frame, messages = entry
                    if frame is None:
                        if on_overrun is not None:
                            on_overrun()
                            continue
                        lost = messages.lost
                        raise OverrunError(
                            f"netlink socket overrun (ENOBUFS): {'some' if lost is None else lost} messages "
                            "were dropped; iterate again to go on, and re-read state you keep (or use a monitor "
                            "with resync=True)",
                            lost=lost,
                        )
                    rest = iter(messages)
                    current = self._iter_current = (frame, rest)
                    try:
                        for msg in rest:
                            if convert is None:
                                yield msg
                            else:
                                item = convert(msg)
                                if item is not None:
                                    yield item
                    finally:
                        if self._iter_current is current:
                            self._reclaim_abandoned()
                    queue = self._unsolicited
                if self._closed:
                    raise ClosedResourceError("the ring is closed")
                waiter = self._iter_waiter = loop.create_future()
                if self._paused:
                    self._drain()
                await waiter
        finally:
            if self._iter_token is token:
                self._iter_owner = None

    def _reclaim_abandoned(self) -> None:
        """Finish the batch the iterator is in: release its frame if every
        message was yielded, else put the unread ones back in front."""
        current = self._iter_current
        if current is None:
            return
        self._iter_current = None
        if current.__class__ is Message:
            self._batch_done(current[6])  # its one message was yielded
            return
        frame, rest = current
        unread = list(rest)
        if unread:
            self._unsolicited.appendleft((frame, unread))
        else:
            self._batch_done(frame)

    async def receive(self) -> Message:
        """The next unsolicited message (a copy that outlives its frame)."""
        async for msg in self:
            return msg.copy()
        raise ClosedResourceError("the ring is closed")  # pragma: no cover

    # -- membership --------------------------------------------------------------------
    def join(self, *groups: int) -> None:
        for group in groups:
            _sys.add_membership(self._sock, group)

    def leave(self, *groups: int) -> None:
        for group in groups:
            _sys.drop_membership(self._sock, group)


# `aionlmmap.ring.open` stays importable; it lives in _open.py (which imports
# Ring from here, hence the import at the end).
