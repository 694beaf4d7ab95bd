"""The drainer: received frames in, deliveries out (no event loop, no socket).

Pure: imports neither asyncio nor socket.

The sans-IO half of :class:`aionlmmap.ring.Ring` (DESIGN.md section 3). A
frame *source* (a backend: the kernel ring, io_uring's buffer ring, the
emulated ring, or a test's fake) has already put frames into RX frame
memory; :meth:`Drainer.walk` reads them in ring order, parses the messages in
place and routes each one:

- a reply goes to its request, a dump chunk to its running dump (by seq and
  portid, through the sans-IO :class:`~aionlmmap.protocol.NetlinkProtocol`):
  the ``PendingRequest`` gets the messages and is appended to ``touched``;
- everything else (notifications, nfqueue packets, nflog entries) is queued
  for the iterator in ``_unsolicited``: a lone :class:`Message` (one message
  in its frame, the common case), ``(frame, messages)``, or
  ``(None, Overrun)`` where messages were lost (ENOBUFS);
- NLMSG_DONE / NLMSG_ERROR finish their request (``protocol.feed``);
  replies to cancelled requests are dropped (``_stale_seqs``), messages
  from other senders counted and dropped.

What is left to the shell (the asyncio ``Ring``): reading the socket (the
source's ``fill``), waking the futures of what was touched, pausing and
resuming the reader, sending the overrun barrier. The drainer calls these
hooks, which a subclass overrides: ``_resume`` (a frame was released while
paused), ``_wake_iterator``/``_wake_dump_slot`` (no-ops here: deliveries
are in ``_unsolicited`` and ``touched``), ``_send_barrier``,
``_kernel_drops``, ``_look_again_soon``.

Stall rules (:meth:`Drainer.rx_blocked`): when the producer cannot write and
nothing new can be walked, the drainer says so, and the shell pauses.

The hot loops (:meth:`Drainer._walk_unsolicited`, the frame walk of
:meth:`Drainer._walk_general`) have compiled twins in
``_speedups_drain.pxi``, swapped in at import unless
``AIONLMMAP_NO_EXTENSIONS=1``; tests/test_drainer_twins.py feeds both the
same frame sequences.
"""

from __future__ import annotations

import logging
import operator
import struct
from collections import deque
from typing import Any

import attrs

from ._extensions import speedups as _speedups
from ._frame_keeping import FrameKeeper
from .constants import NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN
from .frames import COPY, NL_MMAP_HDR, SKIP, UNUSED, VALID
from .message import COPIED, NLMSGHDR, Message, ReceivedFrame, parse_frame
from .protocol import FOREIGN, NetlinkProtocol, PendingRequest

__all__ = ["Drainer", "RingStats"]

log = logging.getLogger("aionlmmap")

_unpack_header = NLMSGHDR.unpack_from
_seq_of = operator.itemgetter(2)
_new_message = tuple.__new__
_unpack_frame_header = NL_MMAP_HDR.unpack_from
_unpack_frame_and_message = struct.Struct("=IIIIII" + "IHHII").unpack_from
#: the shortest NLMSG_ERROR the ACK fast paths take: nlmsghdr, the error
#: code and the request's nlmsghdr (netlink_ack always echoes it)
_ACK_LENGTH = 2 * NLMSG_HDRLEN + 4


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


class Drainer(FrameKeeper):
    """Frames in, deliveries out: the routing state of one netlink socket.

    ``source`` is a backend (see :class:`aionlmmap.backends.Backend`): the
    drainer reads its ``rx`` FrameRing, ``rx_views``/``frame_data`` (the
    data of a VALID frame), ``read_copy`` (the datagram behind a COPY
    frame), ``overrun_marks`` (frame counts after which messages were
    lost), ``skip_is_safe`` and ``name``. Standalone (tests, tools)::

        drainer = Drainer(source, NetlinkProtocol(portid))
        touched = []
        drainer.walk(touched)       # requests/dumps that got answers
        drainer._unsolicited        # what the iterator would yield
    """

    def __init__(self, source: Any, proto: NetlinkProtocol, *, backlog_limit: int = 16 * 1024 * 1024) -> None:
        self._backend = source
        self._proto = proto
        self.portid = proto.portid
        self.stats = RingStats()
        self._paused = False
        self._closed = False
        self._hold_callback = self._on_hold_change  # one bound method, not one per frame
        rx = source.rx
        self._rx = rx
        self._rx_next = 0
        self._walked = 0  #: VALID/COPY frames walked (matches the source's frames_produced)
        self._slots: list[ReceivedFrame | None] = [None] * rx.frame_nr
        self._lap_scan_budget = 0
        self._backlog_limit = backlog_limit
        #: bytes of COPY-path datagrams read off the socket and not released
        self._copied_bytes = 0
        self._drops_seen: int | None = None
        #: the iterator's queue (see the module docstring)
        self._unsolicited: deque[Any] = deque()
        #: the iterator's waiter (a future in the shell): starving checks it
        self._iter_waiter: Any = None
        self._active_dump: PendingRequest | None = None
        self._dump_slot_waiters: list[Any] = []
        self._stale_seqs: set[int] = set()
        self._barrier: PendingRequest | None = None
        #: barrier requests sent by _send_barrier when no shell overrides it
        self.barriers_sent: list[Message] = []

    # -- hooks the shell overrides -------------------------------------------------
    def _resume(self) -> None:
        """A frame was released while paused: the producer may go on."""
        self._paused = False

    def _wake_iterator(self) -> None:
        """Something was queued for the iterator (deliveries are in ``_unsolicited``)."""

    def _wake_dump_slot(self) -> None:
        """The dump slot became free."""

    def _send_barrier(self, request: Message, barrier: PendingRequest) -> None:
        """Send the overrun barrier (NLMSG_NOOP with NLM_F_ACK)."""
        self.barriers_sent.append(request)

    def _kernel_drops(self) -> int | None:
        """The kernel's count of messages dropped on the socket, or None."""
        return None

    def _look_again_soon(self) -> None:
        """Waiting at a RESERVED frame that turns VALID without a wakeup: look again later."""

    # -- the walk --------------------------------------------------------------------
    def rx_blocked(self, progressed: bool = False) -> bool:
        """The stall rule: True when the reader should pause until a frame is released."""
        return self._rx_blocked(progressed)

    def walk(self, touched: list[Any]) -> bool:
        """Walk the new frames and route their messages; True if any frame was taken."""
        return self._walk(touched)

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
            self._look_again_soon()
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
                if views is not None and length >= _ACK_LENGTH and not header[2] and not header[3] and not backend.overrun_marks and not self._stale_seqs:
                    # Fast path: a lone ACK from the kernel (netlink_ack
                    # sends each in an skb of its own, so N requests in one
                    # datagram come back as N frames), settled from the
                    # headers in ring memory and given back at once: no
                    # ReceivedFrame, no Message. Anything else (an error with
                    # extack, a reply, a stale seq) takes the general path.
                    both = _unpack_frame_and_message(ring_memory, offsets[index])
                    message_length = both[6]
                    if both[7] == NLMSG_ERROR and _ACK_LENGTH <= message_length <= length <= (message_length + 3) & ~3:
                        acked = self._proto.settle_ack(views[index], both[9], both[10])
                        if acked is not None:
                            rx.release(index)
                            self._rx_next = 0 if index + 1 == frame_nr else index + 1
                            if self._lap_scan_budget:
                                self._lap_scan_budget -= 1
                            progressed = True
                            self._walked += 1
                            stats.frames += 1
                            stats.messages += 1
                            if acked.waiter is not None:
                                touched.append(acked)
                            if acked is self._barrier:
                                self._barrier_done(touched)
                            if self._paused:
                                self._resume()
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
                if (
                    first[1] == NLMSG_ERROR
                    and not frame.group
                    and _ACK_LENGTH <= message_length <= length <= (message_length + 3) & ~3
                    and not self._stale_seqs
                ):
                    # Fast path: a lone ACK (netlink_ack sends each in an skb
                    # of its own), settled from its header and error code.
                    acked = self._proto.settle_ack(frame.buffer, first[3], first[4])
                    if acked is not None:
                        stats.messages += 1
                        if acked.waiter is not None:
                            touched.append(acked)
                        if acked is self._barrier:
                            self._barrier_done(touched)
                        self._release(frame)
                        continue
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



# The compiled twins of the one-message walk and of frame release
# (aionlmmap/_speedups_drain.pxi) take the methods unless pure Python was chosen (AIONLMMAP_NO_EXTENSIONS=1);
# the pure method stays the reference (tests/test_drainer_twins.py).
_pure_walk_unsolicited = Drainer._walk_unsolicited
_pure_release = Drainer._release
#: Ring's iterator calls _release for each consumed message when it is
#: compiled (one C call); the pure core inlines its body there instead.
RELEASE_IN_C = _speedups is not None
if _speedups is not None:
    Drainer._walk_unsolicited = _speedups.walk_unsolicited  # type: ignore[method-assign]
    Drainer._release = _speedups.release  # type: ignore[method-assign]
