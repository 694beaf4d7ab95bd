"""The nlmsghdr codec: :class:`Message`, :func:`iter_messages`, encoding.

Pure: imports neither asyncio nor socket.

A received message borrows its bytes from the ring frame it arrived in
(zero copy). The frame goes back to the kernel when the message is consumed,
and from then on the payload cannot be read: :class:`ReleasedMessageError`
is raised instead of showing whatever the kernel wrote into the frame next.
``msg.hold()`` keeps the frame (the ring marks it SKIP), ``msg.copy()`` or
``bytes(msg.payload)`` keeps the bytes.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import AsyncIterator, Callable, Iterator
from operator import itemgetter

from .constants import NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN
from .errors import DecodeError, ReleasedMessageError

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Message",
    "ReceivedFrame",
    "NLMSGHDR",
    "nlmsg_align",
    "iter_messages",
    "parse_frame",
    "encode_message",
    "header_run",
]

#: struct nlmsghdr {u32 nlmsg_len; u16 nlmsg_type; u16 nlmsg_flags; u32 nlmsg_seq; u32 nlmsg_pid}
NLMSGHDR = struct.Struct("=IHHII")
_unpack_header = NLMSGHDR.unpack_from
_pack_header_into = NLMSGHDR.pack_into




def header_run(buffer: Any, offset: int, end: int) -> tuple[int, tuple[int, int, int, int, int] | None]:
    """The run of identical nlmsghdrs at ``offset``: ``(count, header)``.

    ``count`` consecutive messages, the first at ``offset`` and each
    NLMSG_ALIGN(nlmsg_len) after the one before, have the same 16-byte
    header ``header`` (nlmsg_len, type, flags, seq, pid) and lie wholly
    inside ``buffer[:end]``. ``(0, None)`` when the header at ``offset`` is
    truncated, below 16 bytes or runs past ``end``.

    Why runs: a dump's datagram is many messages built by one fill function
    (``fib_dump_info``, ``rtnl_fill_ifinfo``...) for one request, so long
    stretches share nlmsg_len, type, flags (NLM_F_MULTI), seq and portid; a
    route table of one kind is runs of hundreds. Checking a run costs a few
    strided copies of the header words instead of one unpack per message,
    and a walker then steps through it with ``range()``.
    """
    if end - offset < NLMSG_HDRLEN:
        return 0, None
    header = _unpack_header(buffer, offset)
    length = header[0]
    if length < NLMSG_HDRLEN or offset + length > end:
        return 0, None
    step = (length + 3) & ~3
    fit = (end - offset - length) // step + 1  # messages of this length that fit
    if fit == 1 or _unpack_header(buffer, offset + step) != header:
        return 1, header
    # Every header word at offset + k*step, k < fit, in one strided slice
    # of a u32 array per word (array slicing is a C loop; a strided
    # memoryview's tobytes() is twice as slow); the run is the prefix where
    # all four match the first header.
    words = array("I")
    words.frombytes(buffer[offset : offset + (fit - 1) * step + NLMSG_HDRLEN])
    stride = step >> 2
    mismatch = 0
    for index in range(4):
        seen = words[index::stride]
        expected = words[index : index + 1] * fit
        if seen != expected:
            mismatch |= int.from_bytes(seen.tobytes(), "little") ^ int.from_bytes(expected.tobytes(), "little")
    if not mismatch:
        return fit, header
    # The lowest differing bit is in the first message whose header differs.
    return ((mismatch & -mismatch).bit_length() - 1) >> 5, header


def nlmsg_align(length: int) -> int:
    """Round up to NLMSG_ALIGNTO (4), as NLMSG_ALIGN() does."""
    return (length + 3) & ~3


#: ``ReceivedFrame.frame_index`` of a datagram the kernel backend read off
#: the socket queue for a COPY frame (the ring frame went back at once; the
#: bytes count against the ring's ``backlog_limit`` until released). -1 is
#: any other frame that owns its bytes, >= 0 a frame of ring memory.
COPIED = -2


class ReceivedFrame:
    """The bytes of one received datagram and the frame metadata the kernel
    wrote in its ``nl_mmap_hdr`` (or that the emulated backend filled in).

    Every :class:`Message` parsed from the datagram points here. The ring
    keeps the frame until ``pending`` (messages not yet consumed) and
    ``holds`` both reach zero, then calls :meth:`retire`.
    """

    __slots__ = (
        "buffer",
        "alive",
        "group",
        "sender_pid",
        "uid",
        "gid",
        "frame_index",
        "pending",
        "holds",
        "views",
        "on_hold_change",
    )

    def __init__(
        self,
        buffer: memoryview | bytes,
        group: int = 0,
        sender_pid: int = 0,
        uid: int = 0,
        gid: int = 0,
        frame_index: int = -1,
    ) -> None:
        self.buffer = buffer
        self.alive = True
        self.group = group
        self.sender_pid = sender_pid
        self.uid = uid
        self.gid = gid
        self.frame_index = frame_index
        self.pending = 0
        self.holds = 0
        self.views: list[memoryview] | None = None
        # Set by the ring: called with (frame, +1 | -1) when a message is held or released.
        self.on_hold_change: Callable[[ReceivedFrame, int], None] | None = None

    def view(self, start: int, end: int) -> memoryview:
        if not self.alive:
            raise ReleasedMessageError(
                "this message's ring frame was released; call msg.hold() before the "
                "iterator moves on, or copy the bytes (msg.copy(), bytes(msg.payload))"
            )
        view = memoryview(self.buffer)[start:end]
        if isinstance(self.buffer, memoryview):
            # Frame memory is reused: remember the view so retire() can
            # release it and later reads raise instead of showing new bytes.
            if self.views is None:
                self.views = [view]
            else:
                self.views.append(view)
        return view

    def detach(self) -> None:
        """Copy the datagram out of frame memory; messages stay readable."""
        if self.alive and isinstance(self.buffer, memoryview):
            old_views = self.views
            self.buffer = bytes(self.buffer)
            self.views = None
            if old_views:
                for view in old_views:
                    view.release()

    def retire(self) -> None:
        """The frame goes back to the kernel: invalidate every view into it."""
        if isinstance(self.buffer, memoryview):
            self.alive = False
            views = self.views
            if views:
                for view in views:
                    view.release()
                self.views = None
            self.buffer = b""


_get_type = itemgetter(0)
_get_flags = itemgetter(1)
_get_seq = itemgetter(2)
_get_pid = itemgetter(3)


class Message(tuple):  # type: ignore[type-arg]
    """One netlink message: ``nlmsghdr`` fields plus the payload after it.

    ``Message(type, flags, seq=0, pid=0, payload=b"")`` builds one to send;
    the ring fills in ``seq`` and ``pid`` for requests. Received messages
    also carry the frame metadata: ``group`` (multicast group number, 0 for
    unicast), ``sender_pid`` (the sender's portid, 0 for the kernel), ``uid``
    and ``gid``.

    A tuple underneath, because the ring builds one per received message and
    a tuple is the cheapest object CPython can build; treat it as opaque.
    """

    __slots__ = ()

    def __new__(
        cls,
        type: int,
        flags: int = 0,
        seq: int = 0,
        pid: int = 0,
        payload: bytes | bytearray | memoryview = b"",
    ) -> Message:
        for name, value, limit in (("type", type, 0xFFFF), ("flags", flags, 0xFFFF), ("seq", seq, 0xFFFFFFFF), ("pid", pid, 0xFFFFFFFF)):
            if not 0 <= value <= limit:
                raise ValueError(f"nlmsghdr {name} {value} out of range 0..{limit}")
        data = bytes(payload)
        if len(data) > 0xFFFFFFFF - NLMSG_HDRLEN:
            raise ValueError("payload too large for nlmsg_len (u32)")
        return tuple.__new__(cls, (type, flags, seq, pid, 0, len(data), ReceivedFrame(data)))

    type: int = property(_get_type)  # type: ignore[assignment]
    """nlmsg_type"""
    flags: int = property(_get_flags)  # type: ignore[assignment]
    """nlmsg_flags (NLM_F_*)"""
    seq: int = property(_get_seq)  # type: ignore[assignment]
    """nlmsg_seq"""
    pid: int = property(_get_pid)  # type: ignore[assignment]
    """nlmsg_pid: the portid in the header (for replies, the requester's)."""

    @property
    def payload(self) -> memoryview:
        """The bytes after the nlmsghdr, a zero-copy view into the frame.

        Raises :class:`ReleasedMessageError` once the frame was released."""
        return self[6].view(self[4], self[5])

    @property
    def frame(self) -> ReceivedFrame:
        return self[6]  # type: ignore[no-any-return]

    @property
    def group(self) -> int:
        """nm_group: multicast group number this arrived on (0 = unicast)."""
        return self[6].group  # type: ignore[no-any-return]

    @property
    def sender_pid(self) -> int:
        """nm_pid: portid of the sender (0 = the kernel)."""
        return self[6].sender_pid  # type: ignore[no-any-return]

    @property
    def uid(self) -> int:
        return self[6].uid  # type: ignore[no-any-return]

    @property
    def gid(self) -> int:
        return self[6].gid  # type: ignore[no-any-return]

    @property
    def length(self) -> int:
        """nlmsg_len: header plus payload."""
        return NLMSG_HDRLEN + self[5] - self[4]  # type: ignore[no-any-return]

    @property
    def is_error(self) -> bool:
        return self[0] == NLMSG_ERROR  # type: ignore[no-any-return]

    @property
    def is_done(self) -> bool:
        return self[0] == NLMSG_DONE  # type: ignore[no-any-return]

    def hold(self) -> Message:
        """Keep this message's frame past the iterator step (the frame is
        marked SKIP so later frames keep flowing). Pair with :meth:`release`."""
        frame = self[6]
        if not frame.alive:
            raise ReleasedMessageError("cannot hold a message whose frame was already released")
        frame.holds += 1
        if frame.on_hold_change is not None:
            frame.on_hold_change(frame, 1)
        return self

    def release(self) -> None:
        """Give back a frame kept with :meth:`hold`."""
        frame = self[6]
        if frame.holds <= 0:
            raise ValueError("release() without a matching hold()")
        frame.holds -= 1
        if frame.on_hold_change is not None:
            frame.on_hold_change(frame, -1)

    def copy(self) -> Message:
        """A detached copy that owns its bytes and outlives the frame."""
        frame = self[6]
        detached = ReceivedFrame(bytes(self.payload), frame.group, frame.sender_pid, frame.uid, frame.gid)
        return tuple.__new__(Message, (self[0], self[1], self[2], self[3], 0, self[5] - self[4], detached))

    def with_header(self, *, type: int | None = None, flags: int | None = None, seq: int | None = None, pid: int | None = None) -> Message:
        """The same payload with some header fields replaced."""
        return tuple.__new__(
            Message,
            (
                self[0] if type is None else type,
                self[1] if flags is None else flags,
                self[2] if seq is None else seq,
                self[3] if pid is None else pid,
                self[4],
                self[5],
                self[6],
            ),
        )

    def encode(self) -> bytes:
        """nlmsghdr + payload, padded to NLMSG_ALIGNTO."""
        return encode_message(self[0], self[1], self[2], self[3], self.payload)

    def encode_into(self, buffer: Any, offset: int = 0) -> int:
        """Write nlmsghdr + payload at ``offset``; returns the aligned length written."""
        payload_length = self[5] - self[4]
        length = NLMSG_HDRLEN + payload_length
        aligned = nlmsg_align(length)
        if offset + aligned > len(buffer):
            raise ValueError(f"message of {aligned} bytes does not fit at offset {offset} of a {len(buffer)}-byte buffer")
        _pack_header_into(buffer, offset, length, self[0], self[1], self[2], self[3])
        start = offset + NLMSG_HDRLEN
        buffer[start : start + payload_length] = self.payload
        if aligned != length:
            buffer[offset + length : offset + aligned] = bytes(aligned - length)
        return aligned

    def __repr__(self) -> str:
        return (
            f"Message(type={self[0]}, flags={self[1]:#x}, seq={self[2]}, pid={self[3]}, "
            f"payload_length={self[5] - self[4]}, group={self[6].group})"
        )

    def __reduce__(self) -> Any:
        return (Message, (self[0], self[1], self[2], self[3], bytes(self.payload)))


def encode_message(type: int, flags: int, seq: int, pid: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """Encode one netlink message (header, payload, padding)."""
    length = NLMSG_HDRLEN + len(payload)
    padding = nlmsg_align(length) - length
    return NLMSGHDR.pack(length, type, flags, seq, pid) + bytes(payload) + bytes(padding)


_new_message = tuple.__new__


def parse_frame(frame: ReceivedFrame, length: int) -> tuple[list[Message], DecodeError | None]:
    """Split the first ``length`` bytes of ``frame.buffer`` into messages.

    Never raises: on malformed data it returns the messages before the bad
    spot together with a :class:`DecodeError` describing it, so the reader
    can count it and keep going (a malformed datagram never kills a reader).
    """
    buffer = frame.buffer
    messages: list[Message] = []
    append = messages.append
    offset = 0
    error: DecodeError | None = None
    try:
        while offset < length:
            if length - offset < NLMSG_HDRLEN:
                error = DecodeError(f"truncated nlmsghdr: {length - offset} bytes left at offset {offset}, need {NLMSG_HDRLEN}")
                break
            msg_length, msg_type, msg_flags, msg_seq, msg_pid = _unpack_header(buffer, offset)
            end = offset + msg_length
            if msg_length < NLMSG_HDRLEN or end > length:
                if msg_length < NLMSG_HDRLEN:
                    error = DecodeError(f"nlmsg_len {msg_length} at offset {offset} is below the 16-byte header")
                else:
                    error = DecodeError(f"nlmsg_len {msg_length} at offset {offset} runs past the {length}-byte datagram")
                break
            append(_new_message(Message, (msg_type, msg_flags, msg_seq, msg_pid, offset + NLMSG_HDRLEN, end, frame)))
            offset = (end + 3) & ~3
    except struct.error as exc:  # buffer shorter than `length` claimed
        error = DecodeError(f"datagram length {length} exceeds the frame buffer: {exc}")
    return messages, error


def split_dump_chunk(frame: ReceivedFrame, length: int) -> tuple[list[Message], list[Message], bool, DecodeError | None]:
    """:func:`parse_frame` for a dump's iterator: the data messages, the
    control messages (type below 16: NLMSG_DONE, NLMSG_ERROR), whether a
    data message carries NLM_F_DUMP_INTR, and the DecodeError. The iterator
    settles the controls before it hands out the data, so its step per
    message is a bare ``yield``. A chunk is almost always data only: then
    the list parse_frame made is returned as it is."""
    messages, error = parse_frame(frame, length)
    interrupted = False
    for msg in messages:
        if msg[0] < 16 or msg[1] & NLM_F_DUMP_INTR:
            break
    else:
        return messages, [], False, error
    data: list[Message] = []
    controls: list[Message] = []
    for msg in messages:
        if msg[0] < 16:
            controls.append(msg)
        else:
            if msg[1] & NLM_F_DUMP_INTR:
                interrupted = True
            data.append(msg)
    return data, controls, interrupted, error


async def flatten_lists(lists: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    """The items of an async iterator of lists, one at a time: what a dump's
    iterator is on the compiled core, where the ring's generator steps once
    per chunk (a list of Messages) instead of once per message.

    This pure version is the reference; its compiled twin is an iterator
    object whose step, while its list lasts, returns the next item at once
    (through the ``am_send`` slot, which CPython's SEND honours up to 3.11)
    instead of resuming a generator. The ring picks the twin where it pays
    (:data:`aionlmmap._requests.FLATTEN_IN_C`). Both end as ``lists`` ends,
    raise what it raises, and ``aclose()`` closes it."""
    try:
        async for items in lists:
            for item in items:
                yield item
    finally:
        await lists.aclose()  # type: ignore[attr-defined]


def iter_messages(data: bytes | bytearray | memoryview) -> Iterator[Message]:
    """Yield the messages in ``data``; raise :class:`DecodeError` on malformed input.

    The messages own a copy of ``data`` only if it is ``bytes``; pass bytes
    if you keep them."""
    frame = ReceivedFrame(data if isinstance(data, bytes) else bytes(data))
    messages, error = parse_frame(frame, len(frame.buffer))
    yield from messages
    if error is not None:
        raise error



# The pure functions above are the reference; their compiled twins
# (aionlmmap/_speedups.pyx) take their names unless the extension is not
# built or AIONLMMAP_NO_EXTENSIONS=1 (aionlmmap._extensions). Modules that
# import these names after this point get whichever core is in use.
_pure_header_run = header_run
_pure_parse_frame = parse_frame
_pure_split_dump_chunk = split_dump_chunk
_pure_flatten_lists = flatten_lists

from ._extensions import speedups as _speedups  # noqa: E402  # after the definitions it replaces

if _speedups is not None:
    header_run = _speedups.header_run  # type: ignore[misc, no-redef, assignment]  # noqa: F811
    parse_frame = _speedups.parse_frame  # type: ignore[misc, no-redef, assignment]  # noqa: F811
    split_dump_chunk = _speedups.split_dump_chunk  # type: ignore[misc, no-redef, assignment]  # noqa: F811
    flatten_lists = _speedups.flatten_lists  # type: ignore[misc, no-redef, assignment]  # noqa: F811
