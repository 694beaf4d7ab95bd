"""``Ring``: the asyncio object over a netlink socket and its frame rings.

Shape (DESIGN.md section 3):

- reader: ``loop.add_reader(fd)`` (works on the default loop and uvloop);
  on wake the backend brings frames in (``fill``) and the *drainer*
  (:class:`aionlmmap.drainer.Drainer`, the pure base class: no event loop,
  no socket) walks RX frames in ring order, parses the messages in place
  and routes them: replies to their request or dump (by seq and portid,
  through the sans-IO :class:`NetlinkProtocol`), everything else to the
  iterator. This module wakes the futures of what was delivered.
- frames go back to the kernel (UNUSED) when every message in them has been
  consumed; ``msg.hold()`` keeps a frame (SKIP) without stopping later ones.
- TX: messages are written into TX frames; one flush per loop iteration
  (``call_soon``) sends every VALID frame with one syscall.
- a full RX ring pauses the reader (the drainer's stall rules say when), so
  the kernel's socket buffer absorbs and then overruns (ENOBUFS) exactly as
  with the kernel's own ring.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import _sys
from ._extensions import speedups as _speedups
from ._frame_keeping import socket_drops
from ._requests import Requester
from ._transmit import Transmitter
from .backends import Backend
from .drainer import RELEASE_IN_C, Drainer, RingStats
from .errors import (
    BusyResourceError,
    ClosedResourceError,
    OverrunError,
)
from .frames import RingConfig
from .message import Message, ReceivedFrame
from .protocol import NetlinkProtocol, PendingRequest

__all__ = ["Ring", "RingStats", "DEFAULT_RX", "DEFAULT_TX"]

log = logging.getLogger("aionlmmap")

#: RX frames hold the largest dump chunk the kernel builds (32 KiB, once a
#: recvmsg buffer of 32 KiB or more was seen: netlink_recvmsg caps
#: max_recvmsg_len at 32768) plus the 24-byte frame header; 9 pages each.
DEFAULT_RX = RingConfig(block_size=36864, block_nr=64, frame_size=36864, frame_nr=64)
#: TX frames: many small messages share a frame; an nfnetlink batch must fit one.
DEFAULT_TX = RingConfig(block_size=65536, block_nr=16, frame_size=65536, frame_nr=16)

_MAX_DRAIN_FAILURES = 3


class Ring(Drainer, Requester, Transmitter):
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
        self.options = options or {}
        # The sans-IO half: frames in, deliveries out (aionlmmap.drainer).
        Drainer.__init__(self, backend, NetlinkProtocol(_sys.portid_of(sock), accept_foreign), backlog_limit=backlog_limit)
        self._drops_seen = socket_drops(sock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False  #: the socket is in our epoll's interest set
        self._watching = False  #: the loop watches our epoll fd
        self._failure: BaseException | None = None
        self._drain_failures = 0
        # iterator
        self._iter_waiter: asyncio.Future[None] | None = None
        self._iter_owner: asyncio.Task[Any] | None = None
        self._iter_token: object = None
        #: the entry the iterator is in: a Message, or (frame, iterator over the rest)
        self._iter_current: Any = None
        # requests and dumps
        self._dump_slot_waiters: list[asyncio.Future[None]] = []
        # An answer costs its skb's truesize in receive buffer: about 1 KiB
        # for an ACK, 2-4 KiB for a reply and its ACK (an RTM_GETLINK reply
        # is allocated at if_nlmsg_size()). Budget 4 KiB per request;
        # getsockopt(SO_RCVBUF) reports the doubled value the kernel charges
        # against.
        self.max_in_flight = max(8, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4096)
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
        """The netlink socket's fd (for getsockopt/setsockopt, SO_MEMINFO...).
        Not always the fd the loop watches: the uring backend is woken
        through its io_uring fd."""
        return int(self._sock.fileno())

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

    # -- the drainer's hooks -------------------------------------------------------
    def _resume(self) -> None:
        self._paused = False
        self._start_reading()
        if self._backend.name != "emulated" and self._loop is not None and not self._closed:
            # The kernel ring continues a dump only inside poll(), and a
            # release in frame memory wakes nobody: poll now.
            self._loop.call_soon(self._on_readable)

    def _send_barrier(self, request: Message, barrier: PendingRequest) -> None:
        self._queue_tx([request], False, [barrier])

    def _kernel_drops(self) -> int | None:
        return socket_drops(self._sock)

    def _look_again_soon(self) -> None:
        if self._loop is not None:
            self._loop.call_later(0.005, self._resume)

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

    def _claim_iterator(self) -> object:
        """Make the current task the ring's one consumer (iterate and
        iterate_batches alike); the token tells its generator apart from an
        abandoned one."""
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
        return token

    async def _iterate(self, convert: Callable[[Message], Any] | None, on_overrun: Callable[[], None] | None) -> AsyncIterator[Any]:
        loop = self._attach()
        token = self._claim_iterator()
        release_frame = self._rx.release
        release = self._release
        release_in_c = RELEASE_IN_C
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
                                if release_in_c:
                                    if not frame.holds:
                                        release(frame)  # the compiled Drainer._release: one C call
                                elif not frame.holds:
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

    def iterate_batches(
        self,
        convert: Callable[[Message], Any] | None = None,
        *,
        on_overrun: Callable[[], None] | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Like :meth:`iterate`, but each step yields a list: every
        unsolicited message waiting at that moment (the RX frames the
        drainer walked), converted, in order (``None`` results left out;
        an empty list is never yielded). The frames go back to the producer
        when the iterator resumes (a held message's, when it is released),
        so a step costs one generator resumption for the whole list instead
        of one per message. Overruns: as :meth:`iterate` (the messages
        before one are yielded first)."""
        return self._iterate_batches(convert, on_overrun)

    async def _iterate_batches(self, convert: Callable[[Message], Any] | None, on_overrun: Callable[[], None] | None) -> AsyncIterator[list[Any]]:
        loop = self._attach()
        token = self._claim_iterator()
        try:
            while True:
                if self._unsolicited:
                    # The step is current before anything is taken: if
                    # convert raises, what was taken goes back all the same.
                    batch = self._iter_current = TakenBatch()
                    try:
                        items = batch.take(self._unsolicited, convert, on_overrun)
                        if items:
                            yield items
                    finally:
                        if self._iter_current is batch:
                            self._iter_current = None
                            batch.finish(self)
                    if batch.overrun is not None:
                        lost = batch.overrun.lost
                        raise OverrunError(
                            f"netlink socket overrun (ENOBUFS): {'some' if lost is None else lost} messages "
                            "were dropped; iterate again to go on, and re-read state you keep (or use a monitor "
                            "with resync=True)",
                            lost=lost,
                        )
                    continue
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
        if current.__class__ is TakenBatch:
            current.finish(self)  # a list was yielded: all of it was delivered
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


class TakenBatch:
    """The frames of one :meth:`Ring.iterate_batches` step, given back
    together when the step ends.

    ``take`` empties the unsolicited queue up to the first overrun entry
    (left for the next step, so the messages before it are delivered first;
    taken into ``overrun`` when it comes first), so a step holds at most the
    RX ring's frames plus frames already copied out."""

    __slots__ = ("lone", "shared", "overrun")

    def __init__(self) -> None:
        #: messages alone in their frame: the frame goes back at once (unless held)
        self.lone: list[Message] = []
        #: frames of several messages: one ``_batch_done`` each, as the per-message iterator does
        self.shared: list[ReceivedFrame] = []
        self.overrun: Any = None

    def take(self, queue: deque[Any], convert: Callable[[Message], Any] | None, on_overrun: Callable[[], None] | None) -> list[Any]:
        items: list[Any] = []
        lone = self.lone
        while queue:
            entry = queue.popleft()
            if entry.__class__ is Message:
                lone.append(entry)
                if convert is None:
                    items.append(entry)
                else:
                    item = convert(entry)
                    if item is not None:
                        items.append(item)
                continue
            frame, messages = entry
            if frame is None:
                if on_overrun is not None:
                    on_overrun()
                    continue
                if lone or self.shared:
                    queue.appendleft(entry)  # reported by the next step
                else:
                    self.overrun = messages
                break
            self.shared.append(frame)
            for msg in messages:
                if convert is None:
                    items.append(msg)
                else:
                    item = convert(msg)
                    if item is not None:
                        items.append(item)
        return items

    def finish(self, ring: Ring) -> None:
        release = ring._release
        for msg in self.lone:
            frame = msg[6]
            frame.pending = 0  # its one message is consumed
            if not frame.holds:
                release(frame)
        for frame in self.shared:
            ring._batch_done(frame)
        self.lone = []
        self.shared = []


# The compiled twins of a batch step (aionlmmap/_speedups_drain.pxi: the
# loops in C, the compiled packet conversion and frame release called
# without a Python call) unless pure Python is selected; the methods above
# stay the reference.
_pure_take_batch = TakenBatch.take
_pure_finish_batch = TakenBatch.finish
if _speedups is not None:
    TakenBatch.take = _speedups.take_batch  # type: ignore[method-assign]
    TakenBatch.finish = _speedups.finish_batch  # type: ignore[method-assign]


# `aionlmmap.ring.open` stays importable; it lives in _open.py (which imports
# Ring from here, hence the import at the end).
