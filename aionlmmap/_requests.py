"""Requests and dumps: seq/portid matching on top of the TX and RX paths.

Mixed into :class:`aionlmmap.ring.Ring`. Kernel facts relied on:
``netlink_rcv_skb`` answers every nlmsg of a datagram in order (an ACK when
NLM_F_ACK asks, an error otherwise), so many requests share one datagram;
``__netlink_dump_start`` runs one dump per socket and answers EBUSY while
one runs, so dumps on a ring queue up; a started dump is never ACKed and ends
with NLMSG_DONE.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._extensions import speedups as _speedups
from .constants import NETLINK_ROUTE, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_REQUEST, NLMSG_HDRLEN, NLMSG_MIN_TYPE, NLMSG_NOOP
from .errors import ClosedResourceError, DecodeError, DumpInterruptedError
from .frames import SKIP
from .message import Message, ReceivedFrame, flatten_lists, header_run, parse_frame, split_dump_chunk
from .protocol import NetlinkProtocol, PendingRequest

#: dump() builds each chunk's Messages with the compiled parse_frame when
#: the compiled core is in use; the pure core walks runs of headers
#: (header_run), which is faster in pure Python.
_MESSAGES_IN_C = _speedups is not None
#: Whether ring.dump() steps its generator once per chunk and hands the
#: messages out through the compiled flatten_lists (about 100 ns less per
#: message). Its fast step is the am_send slot, which the interpreter's
#: SEND uses through PyIter_Send up to CPython 3.11; 3.12's SEND calls
#: tp_iternext instead, where the item would travel in a StopIteration and
#: the plain generator is faster.
FLATTEN_IN_C = _MESSAGES_IN_C and sys.version_info < (3, 12)

# What _dump's generator yields: one Message a step (dump), a chunk as
# (frame, end) or (frame, messages) (dump_chunks), or a chunk's list of
# Messages (dump on the compiled core, through flatten_lists).
_YIELD_MESSAGES = 0
_YIELD_CHUNKS = 1
_YIELD_LISTS = 2


class Requester:
    """The request/dump half of a Ring (state is set up in ``Ring.__init__``)."""

    _proto: NetlinkProtocol
    _closed: bool
    _paused: bool
    _active_dump: PendingRequest | None
    _dump_slot_waiters: list[asyncio.Future[None]]
    _stale_seqs: set[int]
    #: requests awaiting their answer at once, at most (see _wait_for_room)
    max_in_flight: int
    #: requests and answers given room and not settled yet (see _wait_for_room)
    _requests_out = 0
    _answers_out = 0
    _credit_waiters: list[asyncio.Future[None]] | None = None

    if TYPE_CHECKING:
        stats: Any

        def _attach(self) -> asyncio.AbstractEventLoop: ...

        def _queue_tx(self, messages: list[Message], atomic: bool, owners: list[PendingRequest]) -> None: ...

        def _drain(self) -> None: ...

        def _batch_done(self, frame: ReceivedFrame) -> None: ...

        def _wake_dump_slot(self) -> None: ...

        def _detach(self, frame: Any) -> None: ...

        protocol: int
        _backend: Any
        _rx: Any
        _rx_next: int
        _slots: list[Any]

    async def request(self, msg: Message, *, ack: bool = True) -> list[Message]:
        """Send one request and return its replies (copies that own their
        bytes). Raises :class:`NetlinkError` (an OSError of the errno's
        subclass, with the extack message) if the kernel refuses it.

        ``seq`` and ``pid`` are set by the ring; NLM_F_REQUEST is added, and
        NLM_F_ACK unless ``ack=False`` (then the first reply completes it)."""
        loop = self._attach()
        costs = self._answer_costs([msg]) if ack else [1]
        _count, answers = await self._wait_for_room(loop, costs, whole=True)
        try:
            requests, pendings = self._admit([msg], ack=ack)
            return await self._await_requests(loop, requests, pendings, atomic=False)[0]  # type: ignore[no-any-return]
        finally:
            self._settle(1, answers)

    def _admit(self, messages: Sequence[Message], *, ack: bool = True, ack_last_only: bool = False) -> tuple[list[Message], list[PendingRequest]]:
        """The one place a request is admitted: each message gets its seq
        and its pending state, right before it is queued for sending (a
        request admitted and never sent would wait for an answer forever)."""
        return self._proto.start_requests(messages, ack=ack, ack_last_only=ack_last_only)

    # -- flow control: answers in flight -------------------------------------------
    # The kernel answers a whole datagram of requests before we read a byte
    # (netlink_rcv_skb runs in the sender's context), so the answers to
    # everything in flight must have room at once, or they are lost:
    # - in the receive buffer (COPY-path answers, and every answer on the
    #   emulated and uring backends): max_in_flight requests, from SO_RCVBUF;
    # - on the kernel ring, in free RX frames (fact c.8: netlink_ack finds
    #   no UNUSED frame, drops the ACK and reports ENOBUFS; a COPY-path
    #   answer needs the head frame too). The backend's answer_room() counts
    #   them; a request is admitted when its answers fit beside those of the
    #   requests already in flight.
    def _answer_costs(self, messages: Sequence[Message]) -> list[int]:
        """Answers each request with NLM_F_ACK may get, each needing a frame
        on the kernel ring: the ACK, plus a reply for rtnetlink GET requests
        (type & 3 == 2) and NLM_F_ECHO, or the notification of a change on a
        subscribed ring. Other families' request types are not known here:
        two. Elsewhere only the count of requests matters: one each."""
        if not hasattr(self._backend, "answer_room"):
            return [1] * len(messages)
        if self.protocol != NETLINK_ROUTE:
            return [2] * len(messages)
        # A change notifies its group before it is ACKed (rtnl_notify in the
        # handler, netlink_ack after it): on a ring that joined groups, that
        # notification takes a frame too.
        change = 2 if self._backend.subscribed() else 1
        return [2 if msg.flags & NLM_F_ECHO or (msg.type >= NLMSG_MIN_TYPE and msg.type & 3 == 2) else change for msg in messages]

    def _frame_room(self) -> int | None:
        """Answers the kernel ring can take now (None: not a frame-bound backend)."""
        room_of = getattr(self._backend, "answer_room", None)
        if room_of is None:
            return None
        start = self._rx_next
        slot = self._slots[start]
        if slot is not None and self._rx.status(start) != SKIP:
            room = 0  # the walk waits at a frame we still pin: the kernel's head is on it
        else:
            room = int(room_of(start))
        return room

    async def _wait_for_room(self, loop: asyncio.AbstractEventLoop, costs: list[int], *, whole: bool) -> tuple[int, int]:
        """Wait until the answers of the first requests fit; returns how
        many requests (a prefix of ``costs``, all of them if ``whole``) may
        go now and their answers. Settle both with :meth:`_settle`."""
        total = sum(costs) if whole else costs[0]
        frame_nr = self._rx.frame_nr
        if self._frame_room() is not None and total > max(1, frame_nr - 1):
            raise ValueError(
                f"the answers to these requests ({total}) cannot fit the {frame_nr}-frame RX ring at once: "
                "the kernel ring drops an answer that finds no free frame; open the ring with more RX frames "
                "(rx=RingConfig(...)) or send fewer requests at a time"
            )
        while True:  # ends when room is found; close() settles what is in flight, and the 5 ms looks see _closed
            if self._closed:
                raise ClosedResourceError("the ring is closed")
            count, answers = self._fit(costs, whole)
            if count:
                self._requests_out += count
                self._answers_out += answers
                if hasattr(self._backend, "poll_deferred"):
                    # A running dump fills free frames inside every poll
                    # (netlink_dump_space); between now and the sendmsg that
                    # carries these requests, none may run: the room counted
                    # is the room the kernel finds. The backend's flush
                    # lifts this.
                    self._backend.poll_deferred = True
                return count, answers
            waiter = loop.create_future()
            if self._requests_out == 0:
                # Nothing in flight will settle and free room: the frames are
                # pinned by consumers (unread notifications, held messages,
                # a dump's chunks). Read what is there, copy out pinned
                # frames, and look again soon (a RESERVED frame turns VALID
                # without waking anyone).
                # No poll meanwhile: it would let a running dump refill what
                # is freed (netlink_dump_space), e.g. when this task is the
                # dump's own consumer.
                deferrable = hasattr(self._backend, "poll_deferred")
                if deferrable:
                    self._backend.poll_deferred = True
                self._drain()
                self._relieve_for_answers(total)
                if self._fit(costs, whole)[0]:
                    continue
                if deferrable:
                    self._backend.poll_deferred = False
                loop.call_later(0.005, _wake_future, waiter)
            if self._credit_waiters is None:
                self._credit_waiters = []
            self._credit_waiters.append(waiter)
            await waiter

    def _fit(self, costs: list[int], whole: bool) -> tuple[int, int]:
        room = self._frame_room()
        requests_left = self.max_in_flight - self._requests_out
        answers_left = (1 << 62) if room is None else room - self._answers_out
        if whole:
            total = sum(costs)
            fits = (len(costs) <= requests_left or self._requests_out == 0) and total <= answers_left
            return (len(costs), total) if fits else (0, 0)
        count = answers = 0
        for cost in costs:
            if count >= requests_left or answers + cost > answers_left:
                break
            count += 1
            answers += cost
        return count, answers

    def _relieve_for_answers(self, wanted: int) -> None:
        """Copy pinned frames out, oldest first, until ``wanted`` answers fit."""
        rx = self._rx
        index = self._rx_next
        for _ in range(rx.frame_nr):
            room = self._frame_room()
            if room is None or room >= wanted:
                return
            frame = self._slots[index]
            if frame is not None:
                self._detach(frame)
            index = rx.next_index(index)

    def _settle(self, requests: int, answers: int) -> None:
        self._requests_out -= requests
        self._answers_out -= answers
        if not self._answers_out and hasattr(self._backend, "poll_deferred"):
            self._backend.poll_deferred = False
        waiters = self._credit_waiters
        if waiters:
            self._credit_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def request_many(self, messages: Sequence[Message], *, atomic: bool = False) -> list[list[Message]]:
        """Send several requests in one datagram and wait for all of them.

        Each message gets its own seq and NLM_F_ACK. Returns the replies of
        each, in order; raises the first error in order.

        ``atomic=True`` is for nfnetlink batches (BATCH_BEGIN ... BATCH_END):
        the messages get a TX frame, hence a datagram, of their own. The
        kernel does not answer every member of a failed batch (BATCH_END of
        an aborted batch is never ACKed), so a barrier follows in the next
        datagram (NLMSG_NOOP with NLM_F_ACK, which ``netlink_rcv_skb``
        always ACKs): one socket's requests are answered in order, so once
        the barrier is ACKed every answer to the batch is in. Members left
        unanswered share the batch's first error, or succeed with no reply
        if there was none."""
        loop = self._attach()
        costs = self._answer_costs(messages)
        if not atomic:
            results = []
            first = 0
            while first < len(messages):
                count, answers = await self._wait_for_room(loop, costs[first:], whole=False)
                try:
                    # Admitted a chunk at a time, once it has room: a
                    # cancellation between chunks leaves none of the later
                    # ones waiting.
                    # One datagram per chunk: on rtnetlink only its last
                    # request asks for an ACK (see start_requests).
                    requests, chunk = self._admit(messages[first : first + count], ack_last_only=self.protocol == NETLINK_ROUTE)
                    self._send_requests(requests, chunk)
                    results += await self._wait_all(loop, chunk)
                finally:
                    self._settle(count, answers)
                first += count
        else:
            # Every member's answers and the barrier's ACK come back in one
            # sendmsg (nfnetlink_rcv_batch): they need room at once.
            admitted = await self._wait_for_room(loop, costs + [1], whole=True)
            requests, pendings = self._admit(messages)
            for pending in pendings:
                pending.batch = pendings
            barrier_requests, barriers = self._admit([Message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK)])
            try:
                self._queue_tx(requests, True, pendings)
                self._queue_tx(barrier_requests, False, barriers)
                await self._wait_pending(loop, barriers[0])
            except BaseException:
                self._abandon(pendings + barriers)
                raise
            finally:
                self._settle(*admitted)
            batch_error = next((p.error for p in pendings if p.error is not None), None)
            results = []
            for pending in pendings:
                if not pending.finished:
                    # No answer will ever come for it (the barrier proves it).
                    self._proto.cancel(pending)
                    pending.finished = True
                    pending.error = batch_error
                results.append(pending.error if pending.error is not None else pending.messages)
        out: list[list[Message]] = []
        first_error: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                if first_error is None:
                    first_error = result
                out.append([])
            else:
                out.append(result)
        if first_error is not None:
            raise first_error
        return out

    def _await_requests(self, loop: asyncio.AbstractEventLoop, requests: list[Message], pendings: list[PendingRequest], atomic: bool) -> list[Any]:
        self._send_requests(requests, pendings, atomic)
        return [self._wait_pending(loop, pending) for pending in pendings]

    def _send_requests(self, requests: list[Message], pendings: list[PendingRequest], atomic: bool = False) -> None:
        try:
            self._queue_tx(requests, atomic, pendings)
        except BaseException:
            for pending in pendings:
                self._proto.cancel(pending)
            raise

    async def _wait_all(self, loop: asyncio.AbstractEventLoop, pendings: list[PendingRequest]) -> list[Any]:
        """Each request's replies, or its error, in order: request_many's
        wait, in this one coroutine. One socket's requests are answered in
        order, and a drain routes a whole datagram of answers at once, so
        most are finished by the time their turn comes and need no future
        (a task per request, as gather() makes, cost more than the kernel's
        work on each). Closing the ring finishes them all with its error."""
        results: list[Any] = []
        try:
            if pendings and pendings[-1].covers is not None:
                # Settles the whole chunk (the others wait for its answer).
                await self._until_finished(loop, pendings[-1])
            for pending in pendings:
                if not pending.finished:
                    await self._until_finished(loop, pending)
                results.append(pending.error if pending.error is not None else pending.messages)
        except BaseException:
            if not (pendings and pendings[-1].covers is not None and not pendings[-1].finished):
                self._abandon(pendings)
            # else: the chunk stays registered: its datagram is out (or
            # fails, and its TX failure finishes them), and the last
            # request's answer settles them all; stale seqs would wait
            # forever for answers that requests without NLM_F_ACK never get.
            raise
        return results

    async def _wait_pending(self, loop: asyncio.AbstractEventLoop, pending: PendingRequest) -> list[Message]:
        try:
            await self._until_finished(loop, pending)
        except asyncio.CancelledError:
            self._abandon([pending])
            raise
        if pending.error is not None:
            raise pending.error
        return pending.messages

    async def _until_finished(self, loop: asyncio.AbstractEventLoop, pending: PendingRequest) -> None:
        while not pending.finished:
            waiter = pending.waiter = loop.create_future()
            if self._paused:
                self._drain()
                if pending.finished:
                    break
                # The flush that sends this request may still be queued, and
                # a paused reader would not read its answer after it: read
                # once more after that flush (call_soon runs in order).
                loop.call_soon(self._drain_if_paused)
            await waiter

    def _drain_if_paused(self) -> None:
        if self._paused and not self._closed:
            self._drain()

    def _abandon(self, pendings: list[PendingRequest]) -> None:
        """Give up on the unanswered ones: their answers, if any come, are dropped as stale."""
        for pending in pendings:
            if not pending.finished:
                self._proto.cancel(pending)
                self._stale_seqs.add(pending.seq)

    def dump(self, msg: Message, *, on_interrupt: Literal["raise", "ignore"] = "raise") -> AsyncIterator[Message]:
        """Stream a dump: ``async for m in ring.dump(msg)``.

        Messages are borrowed from the frames (see :meth:`Message.hold`);
        nothing is buffered beyond the ring. The kernel runs one dump per
        socket at a time (``__netlink_dump_start`` answers EBUSY), so dumps on
        one ring queue up; plain requests interleave freely.

        If the kernel flags the dump NLM_F_DUMP_INTR (its table changed under
        it), ``on_interrupt="raise"`` raises :class:`DumpInterruptedError`
        after the last message; ``"ignore"`` does not. :meth:`dump_all`
        retries for a consistent snapshot."""
        if FLATTEN_IN_C:
            return flatten_lists(self._dump(msg, on_interrupt, _YIELD_LISTS))  # type: ignore[no-any-return]
        return self._dump(msg, on_interrupt, _YIELD_MESSAGES)

    def dump_chunks(self, msg: Message, *, on_interrupt: Literal["raise", "ignore"] = "raise") -> AsyncIterator[tuple[ReceivedFrame, Any]]:
        """Stream a dump a datagram at a time, for decoders that walk the
        bytes themselves (``rtnl.routes()`` does): one generator step per
        chunk instead of one ``Message`` and one step per message.

        Yields ``(frame, end)``: ``frame.buffer[:end]`` holds whole messages,
        their headers already checked (a malformed tail is cut off and
        counted); NLMSG_DONE and NLMSG_ERROR may be among them and are
        already handled, so skip message types below 16. Or, for messages
        the ring had to route one by one, ``(frame, messages)``: a list of
        data messages. The frame stays pinned until the next step. Errors
        and ``on_interrupt`` as in :meth:`dump`."""
        return self._dump(msg, on_interrupt, _YIELD_CHUNKS)  # type: ignore[return-value]

    def _check_chunk(self, pending: PendingRequest, frame: ReceivedFrame, body: int) -> int:
        """dump_chunks' pass over a chunk before it is handed out: control
        messages go to the protocol, NLM_F_DUMP_INTR is noted, and the end of
        the well-formed messages is returned. Walks runs of identical headers
        (:func:`header_run`): a dump chunk is mostly one or a few runs."""
        buffer = frame.buffer
        offset = 0
        count = 0
        while offset < body:
            run, header = header_run(buffer, offset, body)
            if header is None:
                self.stats.decode_errors += 1
                break
            length, msg_type, flags, seq, pid = header
            step = (length + 3) & ~3
            if msg_type < 16:
                for start in range(offset, offset + run * step, step):
                    self._dump_control(pending, tuple.__new__(Message, (msg_type, flags, seq, pid, start + NLMSG_HDRLEN, start + length, frame)))
            elif flags & NLM_F_DUMP_INTR:
                pending.interrupted = True
            count += run
            offset += run * step
        self.stats.messages += count
        return min(offset, body)

    async def _dump(self, msg: Message, on_interrupt: str, what: int) -> AsyncIterator[Any]:
        loop = self._attach()
        chunks = what == _YIELD_CHUNKS
        lists = what == _YIELD_LISTS
        while True:
            while self._active_dump is not None:
                waiter = loop.create_future()
                self._dump_slot_waiters.append(waiter)
                if self._paused:
                    # The reader may be paused behind the frames of
                    # notifications nobody reads; a drain copies them out if
                    # the dump ahead was abandoned (see _starving), so its end
                    # can arrive.
                    self._drain()
                try:
                    await waiter
                finally:
                    if waiter in self._dump_slot_waiters:
                        self._dump_slot_waiters.remove(waiter)
                if self._closed:
                    raise ClosedResourceError("the ring is closed")
            # The first chunk is built in our sendmsg (__netlink_dump_start
            # runs netlink_dump at once): it needs a frame like an answer.
            _count, answers = await self._wait_for_room(loop, [1], whole=True)
            if self._active_dump is None:
                break
            self._settle(1, answers)  # another dump took the slot meanwhile
        request, pending = self._proto.start(msg, dump=True)
        try:
            self._queue_tx([request], False, [pending])
        except BaseException:
            # Never sent (too large, ring closed): it holds no slot.
            self._proto.cancel(pending)
            self._settle(1, answers)
            raise
        self._active_dump = pending
        # (frame, parsed messages) from the slow path, or (frame, length)
        # for a whole dump chunk handed over unparsed by _walk.
        batches: deque[Any] = deque()
        pending.messages = batches  # type: ignore[assignment]
        new = tuple.__new__
        stats = self.stats
        try:
            while True:
                if answers and (batches or pending.finished):
                    # The first chunk has its frame: the dump's later chunks
                    # come only as poll finds room (netlink_dump_space).
                    self._settle(1, answers)
                    answers = 0
                while batches:
                    frame, body = batches.popleft()
                    offset = 0
                    try:
                        if body.__class__ is list:
                            if chunks:
                                yield frame, body
                                continue
                            if lists:
                                yield body
                                continue
                            for m in body:
                                yield m
                            continue
                        if chunks:
                            end = self._check_chunk(pending, frame, body)
                            offset = body  # every control message in it was handled
                            yield frame, end
                            continue
                        if _MESSAGES_IN_C:
                            # The compiled core builds the chunk's Messages
                            # in C (split_dump_chunk's twin) and sets its
                            # control messages apart: they are settled
                            # first (NLMSG_DONE only ends the request; the
                            # slot is freed when this iterator ends, and an
                            # error is raised after the last message, as
                            # below), so each step is a bare yield. Same
                            # results as the run walk below.
                            messages, controls, interrupted, error = split_dump_chunk(frame, body)
                            stats.messages += len(messages) + len(controls)
                            if error is not None:
                                stats.decode_errors += 1
                            offset = body  # nothing left to scan for the end
                            for m in controls:
                                self._dump_control(pending, m)
                            if interrupted:
                                pending.interrupted = True
                            if lists:
                                if messages:
                                    yield messages
                                continue
                            for m in messages:
                                yield m
                            continue
                        buffer = frame.buffer
                        while offset < body:
                            # A run of identical headers (header_run) is
                            # checked once; its messages differ only in where
                            # they start.
                            run, header = header_run(buffer, offset, body)
                            if header is None:
                                stats.decode_errors += 1
                                break
                            length, msg_type, flags, seq, pid = header
                            step = (length + 3) & ~3
                            stats.messages += run
                            if msg_type < 16:
                                for _ in range(run):
                                    offset += step
                                    self._dump_control(pending, new(Message, (msg_type, flags, seq, pid, offset - step + NLMSG_HDRLEN, offset - step + length, frame)))
                                continue
                            if flags & NLM_F_DUMP_INTR:
                                pending.interrupted = True
                            payload = length - NLMSG_HDRLEN
                            to_next = step - NLMSG_HDRLEN
                            for start in range(offset + NLMSG_HDRLEN, offset + run * step, step):
                                offset = start + to_next  # past this message: where a `break` leaves the chunk
                                yield new(Message, (msg_type, flags, seq, pid, start, start + payload, frame))
                    finally:
                        if not pending.finished and body.__class__ is int and offset < body:
                            # Left mid-frame (break, cancel): NLMSG_DONE may
                            # still be in the rest of this chunk.
                            self._scan_for_end(pending, frame, offset, body)
                        self._batch_done(frame)
                if pending.finished:
                    break
                waiter = pending.waiter = loop.create_future()
                if self._paused:
                    self._drain()
                    if batches or pending.finished:
                        continue
                    loop.call_soon(self._drain_if_paused)  # after the flush of the request, as in _until_finished
                await waiter
        finally:
            if not pending.finished:
                # Abandoned (break, cancel): the kernel keeps dumping; drop
                # the rest as it arrives and free the slot at NLMSG_DONE.
                pending.abandoned = True
                for frame, body in batches:
                    if body.__class__ is int:
                        self._scan_for_end(pending, frame, 0, body)
                    else:
                        for m in body:
                            if m[0] < 16:
                                self._dump_control(pending, m)
                    self._batch_done(frame)
                batches.clear()
                if pending.finished and self._active_dump is pending:
                    self._active_dump = None
                    self._wake_dump_slot()
            elif self._active_dump is pending:
                self._active_dump = None
                self._wake_dump_slot()
            if answers:
                self._settle(1, answers)
        if pending.error is not None:
            raise pending.error
        if pending.interrupted and on_interrupt == "raise":
            raise DumpInterruptedError(
                "the dump was interrupted (NLM_F_DUMP_INTR): the kernel's table changed while "
                "dumping, so the data may be inconsistent; dump again, or use dump_all() which retries"
            )

    def _scan_for_end(self, pending: PendingRequest, frame: ReceivedFrame, start: int, end: int) -> None:
        """Feed the control messages (NLMSG_DONE/ERROR) in part of an unread
        chunk to the protocol, so an abandoned dump still ends."""
        messages, _error = parse_frame(frame, end)
        for msg in messages:
            if msg[4] >= start and msg[0] < 16:
                self._dump_control(pending, msg)

    def _dump_control(self, pending: PendingRequest, msg: Message) -> None:
        """NLMSG_DONE / NLMSG_ERROR met by a dump's iterator."""
        try:
            self._proto.feed(msg)
        except DecodeError as exc:
            # A malformed end of dump must still end it, never hang it.
            self.stats.decode_errors += 1
            pending.finished = True
            pending.error = exc  # type: ignore[assignment]
            self._proto.cancel(pending)

    async def dump_all(self, msg: Message, *, retries: int = 3) -> list[Message]:
        """A whole dump as a list of copies, retried while NLM_F_DUMP_INTR
        says it is inconsistent (raises :class:`DumpInterruptedError` after
        ``retries`` retries)."""
        for _attempt in range(retries + 1):
            out: list[Message] = []
            try:
                async for m in self.dump(msg):
                    out.append(m.copy())
            except DumpInterruptedError:
                continue
            return out
        raise DumpInterruptedError(f"the dump was interrupted (NLM_F_DUMP_INTR) {retries + 1} times in a row")


def _wake_future(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
