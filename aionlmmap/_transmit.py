"""TX: messages written into TX frames and flushed once per loop iteration.

Mixed into :class:`aionlmmap.ring.Ring`. Several small messages share a
frame; ``atomic=True`` keeps messages in one frame, hence one datagram (an
nfnetlink batch must arrive whole: ``nfnetlink_rcv_batch`` works on one
skb). A flush commits the open frame (nm_len first, VALID last) and asks the
backend to hand every VALID frame over in one syscall: ``sendto(fd, NULL,
0)`` on the kernel ring, one ``sendmsg`` of frame memoryviews on the
emulated one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .constants import NLMSG_HDRLEN
from .errors import ClosedResourceError
from .frames import UNUSED
from .message import NLMSGHDR, Message
from .protocol import PendingRequest

_pack_header = NLMSGHDR.pack
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # by nlmsg_len % 4

if TYPE_CHECKING:
    from .backends import Backend
    from .frames import FrameRing
    from .protocol import NetlinkProtocol


class Transmitter:
    """The TX half of a Ring (state is set up in ``Ring.__init__``)."""

    _backend: Backend
    _tx: FrameRing
    _proto: NetlinkProtocol
    _closed: bool
    _paused: bool
    _loop: asyncio.AbstractEventLoop | None
    _tx_open: int | None
    _tx_fill: int
    _tx_owners: dict[int, list[PendingRequest]]
    _tx_backlog: deque[tuple[list[Message], bool, list[PendingRequest]]]
    _flush_scheduled: bool
    _drain_waiters: list[asyncio.Future[None]]
    _tx_data_size: int

    if TYPE_CHECKING:

        def _attach(self) -> asyncio.AbstractEventLoop: ...

        def _wake(self, target: Any) -> None: ...

        def _drain(self) -> None: ...

        stats: Any

    def send_nowait(self, *messages: Message, atomic: bool = False) -> None:
        """Queue messages for the next flush (one per loop iteration).

        Messages are sent as given: no seq or flags are added (use
        :meth:`request` for that). ``atomic=True`` keeps them in one frame,
        hence one datagram (an nfnetlink batch must arrive whole)."""
        self._attach()
        self._queue_tx(list(messages), atomic, [])

    async def send(self, *messages: Message, atomic: bool = False) -> None:
        """Like :meth:`send_nowait`, but waits for TX frames when the ring is
        full instead of queueing without bound."""
        self._attach()
        self._queue_tx(list(messages), atomic, [])
        if len(self._tx_backlog) > self._tx.frame_nr:
            await self.drain()

    async def drain(self) -> None:
        """Wait until every queued TX message has been handed to the kernel."""
        loop = self._attach()
        if self._tx_open is None and not self._tx_backlog and not self._flush_scheduled:
            return
        waiter = loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _queue_tx(self, messages: list[Message], atomic: bool, owners: list[PendingRequest]) -> None:
        if self._closed:
            raise ClosedResourceError("the ring is closed")
        data_size = self._tx_data_size
        sizes = [(msg.length + 3) & ~3 for msg in messages]
        for size in sizes:
            if size > data_size:
                raise ValueError(
                    f"a {size}-byte message does not fit a TX frame ({data_size} data bytes); "
                    f"open the ring with a larger tx=RingConfig(...)"
                )
        if atomic and sum(sizes) > data_size:
            raise ValueError(
                f"an atomic batch of {sum(sizes)} bytes does not fit one TX frame ({data_size} data bytes); "
                f"open the ring with a larger tx=RingConfig(...)"
            )
        if self._tx_backlog or not self._write_tx(messages, sizes, atomic, owners):
            self._tx_backlog.append((messages, atomic, owners))
        self.stats.tx_messages += len(messages)
        self._schedule_flush()

    def _write_tx(self, messages: list[Message], sizes: list[int], atomic: bool, owners: list[PendingRequest]) -> bool:
        """Write into TX frames; False (nothing written) if frames ran out."""
        tx = self._tx
        data_size = self._tx_data_size
        # Reserve every frame first so a partial write never happens.
        plan: list[tuple[int, int]] = []  # (frame index, offset) per message
        index = self._tx_open
        fill = self._tx_fill
        need_new = index is None
        probe = tx.head
        reserved: list[int] = []
        for size in sizes:
            room = data_size - fill
            # An atomic batch starts a frame of its own: nfnetlink_rcv()
            # treats a datagram as a batch only when its first message is
            # NFNL_MSG_BATCH_BEGIN, and ignores what follows BATCH_END.
            if need_new or size > room or (atomic and not plan):
                if index is not None and not need_new:
                    probe = tx.next_index(index)
                if tx.status(probe) != UNUSED or probe in reserved:
                    return False
                index = probe
                reserved.append(index)
                fill = 0
                need_new = False
            plan.append((index, fill))  # type: ignore[arg-type]
            fill += size
        if not plan:
            return True
        _encode_planned(messages, plan, self._backend.tx_data)
        # Commit frames that are full now; the last one stays open for more.
        open_index = self._tx_open
        for frame_index in reserved:
            if open_index is not None:
                tx.commit(open_index, self._tx_fill)
                self.stats.tx_frames += 1
            open_index = frame_index
            self._tx_fill = 0
        self._tx_open = open_index
        self._tx_fill = fill
        if owners:
            self._tx_owners.setdefault(plan[-1][0], []).extend(owners)
        if atomic and open_index is not None:
            # ... and ends it: commit now so nothing joins the frame, and
            # tell the backend to send it as a datagram of its own.
            tx.commit(open_index, fill)
            self.stats.tx_frames += 1
            self._backend.solo_frames.add(open_index)
            self._tx_open = None
            self._tx_fill = 0
        return True

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        tx = self._tx
        backend = self._backend
        touched: list[Any] = []
        answered = False  # sent requests that wait for answers
        for _ in range(tx.frame_nr + 2):  # bounded
            if self._tx_open is not None:
                tx.commit(self._tx_open, self._tx_fill)
                self.stats.tx_frames += 1
                self._tx_open = None
                self._tx_fill = 0
            failures = backend.flush()
            self.stats.tx_syscalls = backend.tx_syscalls
            for failure in failures:
                for frame_index in failure.frames:
                    for pending in self._tx_owners.pop(frame_index, ()):
                        if not pending.finished:
                            pending.finished = True
                            pending.error = failure.error  # type: ignore[assignment]
                            self._proto.cancel(pending)
                            touched.append(pending)
            sent_owners = [i for i in self._tx_owners if tx.status(i) == UNUSED]
            for i in sent_owners:
                del self._tx_owners[i]
            answered = answered or bool(sent_owners)
            if not self._tx_backlog:
                break
            progressed = False
            while self._tx_backlog:
                messages, atomic, owners = self._tx_backlog[0]
                sizes = [(msg.length + 3) & ~3 for msg in messages]
                if not self._write_tx(messages, sizes, atomic, owners):
                    break
                self._tx_backlog.popleft()
                progressed = True
            if not progressed and self._tx_open is None:
                break
        for target in touched:
            self._wake(target)
        if answered and not self._closed and not self._paused:
            # netlink_sendmsg() runs the kernel's handlers in our context
            # (netlink_unicast_kernel -> netlink_rcv_skb): every answer to
            # what was just sent is queued already. Read them now rather
            # than after the next epoll round trip.
            self._drain()
        if not self._tx_backlog and self._tx_open is None:
            waiters = self._drain_waiters
            self._drain_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        elif self._tx_backlog:
            self._schedule_flush()


def _encode_planned(messages: list[Message], plan: list[tuple[int, int]], tx_data: Any) -> None:
    """Write each message (nlmsghdr, payload, padding to NLMSG_ALIGNTO) at
    its planned (frame, offset); the plan already made room for every
    aligned length and lays a frame's messages end to end. Each frame's run
    is joined and copied in once. A message built from bytes owns its
    payload as the whole frame buffer: used without a view (a request batch
    is mostly such messages). Same bytes as ``Message.encode_into``."""
    parts: list[Any] = []
    run_frame = run_offset = -1
    for msg, (frame_index, offset) in zip(messages, plan):
        if frame_index != run_frame:
            if parts:
                _write_run(tx_data(run_frame), run_offset, parts)
                parts = []
            run_frame = frame_index
            run_offset = offset
        start = msg[4]
        end = msg[5]
        source = msg[6]
        payload = source.buffer
        if start or payload.__class__ is not bytes or end != len(payload) or not source.alive:
            payload = msg.payload  # a view into a received frame (raises if released)
        length = NLMSG_HDRLEN + end - start
        parts.append(_pack_header(length, msg[0], msg[1], msg[2], msg[3]))
        parts.append(payload)
        parts.append(_PADDING[length & 3])
    if parts:
        _write_run(tx_data(run_frame), run_offset, parts)


def _write_run(data: Any, offset: int, parts: list[Any]) -> None:
    run = b"".join(parts)
    data[offset : offset + len(run)] = run
