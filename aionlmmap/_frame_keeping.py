"""Frame keeping: when RX frames go back to the kernel, holds (SKIP),
copying frames out for starving waiters, and overruns.

Pure: imports neither asyncio nor socket. The base of
:class:`aionlmmap.drainer.Drainer` (state is set up in ``Drainer.__init__``);
what needs the event loop or the socket goes through the drainer's hooks.
Kernel facts relied on (DESIGN.md section 1): the ring path steps past SKIP
frames (``netlink_forward_ring``) while the COPY path drops a message at a
SKIP head, so SKIP is used only where ``backend.skip_is_safe``; a full ring
loses messages, which the kernel reports as ENOBUFS.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from .constants import NLM_F_ACK, NLM_F_REQUEST, NLMSG_NOOP
from .errors import OverrunError
from .message import COPIED, Message, ReceivedFrame, parse_frame
from .protocol import NetlinkProtocol, PendingRequest

if TYPE_CHECKING:
    from .frames import FrameRing


class Overrun:
    """An overrun report in the iterator's queue, at the place of the loss:
    ``(None, Overrun(lost))``. ``lost`` counts the messages lost there, or
    is None where the kernel does not tell how many."""

    __slots__ = ("lost",)

    def __init__(self, lost: int | None) -> None:
        self.lost = lost

    def add(self, count: int) -> None:
        if self.lost is not None:
            self.lost += count

#: getsockopt(SOL_SOCKET, SO_MEMINFO): u32 sk_meminfo[SK_MEMINFO_VARS]
#: (Linux >= 4.12); SK_MEMINFO_DROPS is index 8 (since 4.15).
_SOL_SOCKET = 1  # asm-generic/socket.h (this module stays free of the socket module)
_SO_MEMINFO = 55
_SK_MEMINFO_DROPS = 8
_MEMINFO = struct.Struct("=9I")


def socket_drops(sock: Any) -> int | None:
    """The kernel's count of messages it dropped on this socket
    (``sk_drops``: netlink_overrun() adds one per message it could not
    queue, notification or answer alike), or None where the kernel (or a
    simulated socket) does not tell."""
    try:
        raw = sock.getsockopt(_SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
    except (OSError, TypeError, ValueError):
        return None
    if not isinstance(raw, bytes) or len(raw) < _MEMINFO.size:
        return None
    return int(_MEMINFO.unpack_from(raw)[_SK_MEMINFO_DROPS])


def entry_frame(entry: Any) -> ReceivedFrame | None:
    """The frame of an entry of the iterator's queue. Entries are a lone
    :class:`Message` (one message: the common case, no container to
    build), ``(frame, messages)``, or ``(None, Overrun)``."""
    return entry[6] if entry.__class__ is Message else entry[0]  # type: ignore[no-any-return]


class FrameKeeper:
    """Frame release, holds, relief and overrun handling of a Ring."""

    _backend: Any  #: the frame source (aionlmmap.backends.Backend)
    _rx: FrameRing
    _proto: NetlinkProtocol
    _closed: bool
    _paused: bool
    _slots: list[ReceivedFrame | None]
    _unsolicited: deque[Any]
    _iter_waiter: Any
    _lap_scan_budget: int
    _backlog_limit: int
    _copied_bytes: int
    _barrier: PendingRequest | None
    _stale_seqs: set[int]
    _active_dump: PendingRequest | None
    _dump_slot_waiters: list[Any]
    #: the kernel's drop count (socket_drops) at the last overrun report
    _drops_seen: int | None

    if TYPE_CHECKING:
        stats: Any

        def _resume(self) -> None: ...

        def _send_barrier(self, request: Message, barrier: PendingRequest) -> None: ...

        def _kernel_drops(self) -> int | None: ...

        def _wake_iterator(self) -> None: ...

        def _wake_dump_slot(self) -> None: ...

    # -- frame release and holds ---------------------------------------------------
    def _batch_done(self, frame: ReceivedFrame) -> None:
        frame.pending -= 1
        if frame.pending <= 0 and frame.holds == 0:
            self._release(frame)

    def _release(self, frame: ReceivedFrame) -> None:
        index = frame.frame_index
        if index >= 0 and not self._closed:
            if self._slots[index] is frame:
                self._slots[index] = None
                self._rx.release(index)
                if self._paused:
                    self._resume()
        elif index == COPIED:
            frame.frame_index = -1  # counted out once
            self._copied_bytes -= len(frame.buffer)
        frame.retire()

    def _on_hold_change(self, frame: ReceivedFrame, delta: int) -> None:
        index = frame.frame_index
        if delta > 0 and frame.holds == 1 and index >= 0:
            if self._backend.skip_is_safe:
                # SKIP: the ring path steps past it, later frames keep flowing.
                self._rx.hold(index)
            else:
                # SKIP would make the kernel drop COPY-path messages on this
                # socket (DESIGN.md section 1): copy the datagram out instead.
                self._detach(frame)
        elif delta < 0 and frame.holds == 0:
            if index >= 0 and self._slots[index] is frame:
                self._lap_scan_budget = self._rx.frame_nr
            if frame.pending <= 0:
                self._release(frame)

    def _detach(self, frame: ReceivedFrame) -> None:
        index = frame.frame_index
        if index < 0:
            return  # it owns its bytes already
        frame.detach()
        frame.frame_index = -1
        self.stats.detached_frames += 1
        if index >= 0 and self._slots[index] is frame:
            self._slots[index] = None
            self._rx.release(index)
            # The freed frame may be where the walk will stop while the
            # producer has moved on: let the walk scan past it.
            self._lap_scan_budget = self._rx.frame_nr
            if self._paused:
                self._resume()

    def _relieve(self, touched: list[Any]) -> bool:
        """The RX ring is full of frames whose messages wait for a consumer.
        If some task is starving (waits on data that cannot arrive until
        frames free up: a request's ACK, the next dump chunk), copy the
        oldest pinned frames out (up to ``backlog_limit`` bytes); past that,
        drop notifications and report an overrun, as the kernel would. A
        consumer that is merely busy with what it has gets no relief: that
        backpressure is what keeps a streamed dump's memory bounded."""
        if not self._starving(touched):
            return False
        rx = self._rx
        relieved = False
        index = rx.head
        backlog = self._detached_backlog()
        for _ in range(max(1, rx.frame_nr // 4)):
            frame = self._slots[index]
            if frame is None:
                break
            size = len(frame.buffer)
            if backlog + size > self._backlog_limit and frame.pending and self._queued_for_iterator(frame):
                self._drop_unsolicited_frame(frame)
            else:
                backlog += size
                self._detach(frame)
            relieved = True
            index = rx.next_index(index)
        return relieved

    def _detached_backlog(self) -> int:
        """Bytes of copied-out notifications still waiting for the iterator."""
        total = 0
        for entry in self._unsolicited:
            frame = entry_frame(entry)
            if frame is not None and frame.frame_index < 0:
                total += len(frame.buffer)
        return total

    def _starving(self, touched: list[Any]) -> bool:
        """Some task waits and this drain brought it nothing."""
        for pending in self._proto.pending.values():
            waiter = pending.waiter
            if waiter is not None and not waiter.done() and pending not in touched:
                return True
        active = self._active_dump
        if active is not None and active.abandoned and self._wake_dump_slot not in touched and any(not w.done() for w in self._dump_slot_waiters):
            # A dump waits for the slot of one nobody reads any more: the
            # kernel sends the rest of the old dump (then NLMSG_DONE, which
            # frees the slot) only as we read, and frames pinned by unread
            # notifications stop the producer at its head.
            return True
        waiter = self._iter_waiter
        return waiter is not None and not waiter.done() and self._wake_iterator not in touched

    def _someone_waits(self) -> bool:
        return self._starving([])

    def _queued_for_iterator(self, frame: ReceivedFrame) -> bool:
        return any(entry_frame(entry) is frame for entry in self._unsolicited)

    def _drop_unsolicited_frame(self, frame: ReceivedFrame) -> None:
        # The overrun is reported where the dropped messages were, so that
        # what comes before it is older than the loss and what comes after
        # it is newer (a resyncing monitor relies on that order).
        kept: deque[Any] = deque()
        dropped = 0
        report: Overrun | None = None
        for entry in self._unsolicited:
            if entry_frame(entry) is frame:
                if report is None:
                    report = self._report_before(kept)  # one report per run of losses
                dropped += 1 if entry.__class__ is Message else len(entry[1])
            else:
                kept.append(entry)
        if report is None:
            report = self._report_before(kept)
        report.add(dropped)
        self._unsolicited = kept
        self.stats.dropped_unsolicited += dropped
        self.stats.lost += dropped
        frame.pending = 0
        self._release(frame)

    def _report_before(self, kept: deque[Any]) -> Overrun:
        """The overrun report ending ``kept``: the last entry if it is one
        (a run of losses is reported once), else a new one appended."""
        if kept and kept[-1][0] is None:
            return kept[-1][1]  # type: ignore[no-any-return]
        report = Overrun(0)
        kept.append((None, report))
        self.stats.overruns += 1
        return report

    def _drop_copied_notification(self, frame: ReceivedFrame, touched: list[Any]) -> None:
        """A COPY-path notification past the backlog limit: counted as
        dropped, with one overrun report per run of drops, queued after
        what the iterator has not read yet (all of it older)."""
        messages, _error = parse_frame(frame, len(frame.buffer))
        self.stats.dropped_unsolicited += len(messages)
        # Only notifications were lost (replies are never dropped here),
        # so no barrier is needed to find lost answers.
        self._report_before(self._unsolicited).add(len(messages))
        self.stats.lost += len(messages)
        touched.append(self._wake_iterator)
        frame.frame_index = -1
        frame.retire()

    # -- overrun ------------------------------------------------------------------
    def _on_overrun(self, touched: list[Any]) -> None:
        self._report_overrun(touched)
        self._proto.overran()
        # Replies may have been lost with the dropped messages. Send a
        # barrier (NLMSG_NOOP with NLM_F_ACK: netlink_rcv_skb ACKs control
        # messages): the kernel answers requests on one socket in order, so
        # when the barrier's ACK arrives, a request sent earlier that still
        # has no answer lost it in the overrun.
        previous = self._barrier
        if previous is not None and not previous.finished:
            # A full kernel ring loses ACKs too (netlink_ack finds no frame):
            # this overrun may have eaten the barrier's own ACK. Replace it.
            self._proto.cancel(previous)
            self._stale_seqs.add(previous.seq)
            self._barrier = None
        if self._barrier is None and (self._stale_seqs or any(not p.is_dump for p in self._proto.pending.values())):
            request, barrier = self._proto.start(Message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK), dump=False)
            barrier.batch = None
            self._barrier = barrier
            # The barrier keeps requests, not replies: those in flight, and
            # the seqs of cancelled ones whose late answers are still to be
            # dropped (an answer lost in the overrun would keep its seq
            # waiting forever).
            barrier.messages = [*self._proto.pending.values(), *self._stale_seqs]  # type: ignore[list-item]
            self._send_barrier(request, barrier)

    def _report_overrun(self, touched: list[Any]) -> None:
        """Mark the place of lost notifications in the iterator's queue,
        with the kernel's count of what it dropped since the last report
        (None where the kernel does not tell: then a loss is reported,
        never counted)."""
        self.stats.overruns += 1
        drops = self._kernel_drops()
        lost: int | None = None
        if drops is not None and self._drops_seen is not None:
            lost = max(0, drops - self._drops_seen)
            self._drops_seen = drops
            self.stats.lost += lost
        self._unsolicited.append((None, Overrun(lost)))
        touched.append(self._wake_iterator)

    def _barrier_done(self, touched: list[Any]) -> None:
        barrier = self._barrier
        self._barrier = None
        if barrier is None:
            return
        for pending in barrier.messages:  # the requests in flight when the overrun happened
            if pending.__class__ is int:
                self._stale_seqs.discard(pending)  # type: ignore[arg-type]  # answered before the barrier, or lost
                continue
            # Cancelled since the barrier left: its answer came before the
            # barrier's ACK, or never will.
            self._stale_seqs.discard(pending.seq)  # type: ignore[union-attr]
            if isinstance(pending, PendingRequest) and not pending.finished and not pending.is_dump and pending is not barrier:
                pending.finished = True
                pending.error = OverrunError("the reply to this request was lost in a socket overrun (ENOBUFS); retry it")  # type: ignore[assignment]
                self._proto.cancel(pending)
                touched.append(pending)
