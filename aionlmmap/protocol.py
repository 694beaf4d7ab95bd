"""Sans-IO netlink request state: sequence numbers, matching replies to
requests by (seq, portid), ACKs and errors with extended ack, NLMSG_DONE,
NLM_F_DUMP_INTR, and the sender policy.

Pure: imports neither asyncio nor socket. The asyncio layer (``ring.py``)
feeds every received message to :meth:`NetlinkProtocol.feed` and wakes
whoever waits on the :class:`PendingRequest` it returns.

Kernel facts relied on:
- ``netlink_rcv_skb`` answers each nlmsg of a datagram on its own, in order:
  an NLMSG_ERROR with error 0 (ACK) when NLM_F_ACK is set, an NLMSG_ERROR
  with the negative errno on failure. Replies carry the request's seq and
  the requester's portid in nlmsg_pid.
- A started dump is not ACKed (``__netlink_dump_start`` returns -EINTR,
  which skips the ACK); it ends with NLMSG_DONE, whose payload is an int
  error (0, or the dump's negative errno) optionally followed by extack TLVs.
- With NETLINK_EXT_ACK the error payload is ``struct nlmsgerr {int error;
  struct nlmsghdr msg}``, the original payload unless NLM_F_CAPPED, then
  NLMSGERR_ATTR_* TLVs when NLM_F_ACK_TLVS.
- Multicast notifications caused by our own request carry our seq and
  portid too; they are told apart by their multicast group (nm_group /
  NETLINK_PKTINFO), never routed to the request.
"""

from __future__ import annotations

import struct
from errno import ENOBUFS
from typing import Any

import attrs

from .attributes import parse_attributes
from .constants import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_OVERRUN,
    NLMSGERR_ATTR_MISS_TYPE,
    NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS,
)
from .errors import DecodeError, NetlinkError
from .message import NLMSGHDR, Message

__all__ = [
    "ErrorReport",
    "parse_error",
    "PendingRequest",
    "NetlinkProtocol",
    "FOREIGN",
]

_S32 = struct.Struct("=i")
_U32 = struct.Struct("=I")


@attrs.frozen
class ErrorReport:
    """The content of an NLMSG_ERROR (or of an NLMSG_DONE that ends a dump)."""

    error: int  # 0 for an ACK, else a negative errno
    extack_message: str | None = None
    extack_offset: int | None = None
    missing_type: int | None = None
    request_header: tuple[int, int, int, int, int] | None = None  # nlmsg_len, type, flags, seq, pid

    @property
    def is_ack(self) -> bool:
        return self.error == 0

    def to_exception(self, request: Any = None) -> NetlinkError:
        message = self.extack_message
        if self.missing_type is not None and not message:
            message = f"missing attribute type {self.missing_type}"
        return NetlinkError(-self.error, message, self.extack_offset, request)


def parse_error(msg: Message) -> ErrorReport:
    """Decode NLMSG_ERROR, or the error code and TLVs of an NLMSG_DONE."""
    payload = msg.payload
    size = len(payload)
    if size < 4:
        if msg.type == NLMSG_DONE:
            return ErrorReport(0)  # some families send an empty DONE
        raise DecodeError(f"NLMSG_ERROR payload of {size} bytes is shorter than its 4-byte error code")
    error = _S32.unpack_from(payload, 0)[0]
    if error > 0:
        raise DecodeError(f"NLMSG_ERROR carries a positive error code {error}")
    tlv_start = 4
    header = None
    if msg.type == NLMSG_ERROR:
        if size < 4 + NLMSG_HDRLEN:
            raise DecodeError(f"NLMSG_ERROR payload of {size} bytes cannot hold the original nlmsghdr")
        header = NLMSGHDR.unpack_from(payload, 4)
        tlv_start = 4 + NLMSG_HDRLEN
        if not msg.flags & NLM_F_CAPPED:
            tlv_start = 4 + ((header[0] + 3) & ~3)
    message = offset = missing = None
    if msg.flags & NLM_F_ACK_TLVS and tlv_start < size:
        table = parse_attributes(payload, tlv_start, size)
        span = table.get(NLMSGERR_ATTR_MSG)
        if span is not None:
            raw = bytes(payload[span[0] : span[1]])
            message = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        span = table.get(NLMSGERR_ATTR_OFFS)
        if span is not None and span[1] - span[0] >= 4:
            offset = _U32.unpack_from(payload, span[0])[0]
        span = table.get(NLMSGERR_ATTR_MISS_TYPE)
        if span is not None and span[1] - span[0] >= 4:
            missing = _U32.unpack_from(payload, span[0])[0]
    return ErrorReport(error, message, offset, missing, header)


class PendingRequest:
    """What we know about one request in flight.

    ``messages`` collects the replies of a plain request (dump data is
    delivered by the caller of :meth:`NetlinkProtocol.feed`); ``finished`` turns True on the ACK, the error, or NLMSG_DONE;
    ``error`` is the :class:`NetlinkError` if it failed. ``waiter`` belongs
    to the I/O layer (an asyncio future, or anything).
    """

    __slots__ = ("seq", "request", "is_dump", "messages", "finished", "error", "interrupted", "acked", "expects_ack", "waiter", "batch", "abandoned", "covers", "covers_unsure")

    def __init__(self, seq: int, request: Message, is_dump: bool) -> None:
        self.seq = seq
        self.request = request
        self.is_dump = is_dump
        self.messages: list[Message] = []
        self.finished = False
        self.error: NetlinkError | None = None
        self.interrupted = False
        self.acked = False
        self.expects_ack = True
        self.waiter: Any = None
        self.batch: list[PendingRequest] | None = None
        #: the consumer stopped listening (dump abandoned); drop what arrives
        self.abandoned = False
        #: the requests sent before this one in its datagram without
        #: NLM_F_ACK (see start_requests): its answer settles them too
        self.covers: list[PendingRequest] | None = None
        #: an overrun was reported while this covering request was open: an
        #: error for a covered request may be what was lost, so its answer
        #: settles none of them (the overrun's barrier does)
        self.covers_unsure = False

    def __repr__(self) -> str:
        state = "error" if self.error else "finished" if self.finished else "open"
        return f"<PendingRequest seq={self.seq} {'dump' if self.is_dump else 'request'} {state} replies={len(self.messages)}>"


#: returned by :meth:`NetlinkProtocol.feed` for a message from a sender we do not accept
FOREIGN = object()


class NetlinkProtocol:
    """Request bookkeeping for one netlink socket.

    >>> proto = NetlinkProtocol(portid=1234)
    >>> request, pending = proto.start(Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16)))
    >>> # ... send request.encode(), then for every received message:
    >>> proto.feed(msg)   # -> pending (a reply), None (unsolicited) or FOREIGN
    """

    def __init__(self, portid: int = 0, accept_foreign: bool = False, first_seq: int = 1) -> None:
        self.portid = portid
        self.accept_foreign = accept_foreign
        self._next_seq = first_seq
        self.pending: dict[int, PendingRequest] = {}

    def next_seq(self) -> int:
        seq = self._next_seq
        # seq 0 is what notifications usually carry; never hand it out.
        self._next_seq = seq + 1 if seq < 0xFFFFFFFF else 1
        while self._next_seq in self.pending:
            self._next_seq = self._next_seq + 1 if self._next_seq < 0xFFFFFFFF else 1
        return seq

    def start(self, msg: Message, *, dump: bool, ack: bool = True) -> tuple[Message, PendingRequest]:
        """Register a request: give it a fresh seq, NLM_F_REQUEST, and (for a
        non-dump) NLM_F_ACK so completion is always signalled. Returns the
        message to send and its pending state."""
        flags = msg.flags | NLM_F_REQUEST
        if not dump and ack:
            flags |= NLM_F_ACK
        seq = self.next_seq()
        request = msg.with_header(flags=flags, seq=seq, pid=0)
        pending = PendingRequest(seq, request, dump)
        pending.expects_ack = bool(flags & NLM_F_ACK)
        self.pending[seq] = pending
        return request, pending

    def start_requests(self, messages: Any, *, ack: bool = True, ack_last_only: bool = False) -> tuple[list[Message], list[PendingRequest]]:
        """:meth:`start` for several plain (non-dump) requests in one pass:
        the same seqs, flags and pending states, in order.

        ``ack_last_only``: for requests that go out in one datagram to a
        family whose handler runs in ``netlink_rcv_skb`` (rtnetlink). It
        answers each nlmsg in order and sends an NLMSG_ERROR for every
        failure even without NLM_F_ACK (``if (nlh->nlmsg_flags & NLM_F_ACK
        || err) netlink_ack(...)``). So only the last request asks for an
        ACK: when its answer comes, every earlier one that sent no error
        succeeded, and its replies are in. One ACK per datagram instead of
        one per request (the kernel builds and queues each ACK as an skb of
        its own). The others keep waiting for that answer (``covers``)."""
        add = NLM_F_REQUEST | NLM_F_ACK if ack else NLM_F_REQUEST
        if ack and ack_last_only and len(messages) > 1:
            requests, pendings = self.start_requests(messages[:-1], ack=False)
            for pending in pendings:
                pending.expects_ack = True  # finished by the last one's answer, not by a reply
            last_requests, [last] = self.start_requests(messages[-1:], ack=True)
            last.covers = pendings
            return requests + last_requests, pendings + [last]
        pending_of = self.pending
        new = tuple.__new__
        requests: list[Message] = []
        pendings: list[PendingRequest] = []
        seq = self._next_seq
        try:
            for msg in messages:
                # next_seq(), inlined: skip 0 and seqs still in flight
                following = seq + 1 if seq < 0xFFFFFFFF else 1
                while following in pending_of:
                    following = following + 1 if following < 0xFFFFFFFF else 1
                flags = msg[1] | add
                request = new(Message, (msg[0], flags, seq, 0, msg[4], msg[5], msg[6]))
                pending = PendingRequest(seq, request, False)
                pending.expects_ack = bool(flags & NLM_F_ACK)
                pending_of[seq] = pending
                requests.append(request)
                pendings.append(pending)
                seq = following
        finally:
            self._next_seq = seq
        return requests, pendings

    def settle_ack(self, buffer: Any, seq: int, pid: int) -> PendingRequest | None:
        """Settle a plain ACK without building a Message: ``buffer`` starts
        with an NLMSG_ERROR of at least 36 bytes (error code and the
        original nlmsghdr; header already read: ``seq``, ``pid``) from the
        kernel, unicast, alone in its datagram. ``netlink_ack`` sends every
        ACK in an skb of its own, so a batch of N requests comes back as N
        such datagrams. Returns the request it finished, or None when this
        is not a plain ACK of a pending non-dump request (an error to
        decode with its extack, a foreign portid, an unknown seq): then
        :meth:`feed` must see it."""
        pending = self.pending.get(seq)
        if pending is None or pending.is_dump or (pid != self.portid and self.portid):
            return None
        if _S32.unpack_from(buffer, NLMSG_HDRLEN)[0]:
            return None  # a refusal: feed() builds its NetlinkError
        pending.acked = True
        pending.finished = True
        del self.pending[seq]
        if pending.covers is not None:
            self._settle_covered(pending)
        return pending

    def _settle_covered(self, pending: PendingRequest) -> None:
        """The last request of a datagram was answered (ACK or error): the
        kernel answered the ones before it first, so those that got no
        error succeeded. Unless an overrun came in between (the lost
        message may be one of their errors): then they stay open for the
        overrun's barrier, which fails those still unanswered."""
        if pending.covers_unsure:
            return
        pending_of = self.pending
        for earlier in pending.covers:  # type: ignore[union-attr]
            if not earlier.finished:
                earlier.finished = True
                earlier.acked = True
                if pending_of.get(earlier.seq) is earlier:
                    del pending_of[earlier.seq]

    def overran(self) -> None:
        """The socket dropped messages (ENOBUFS): no answer to a datagram's
        last request can vouch for the silent ones before it any more."""
        for pending in self.pending.values():
            if pending.covers is not None:
                pending.covers_unsure = True

    def cancel(self, pending: PendingRequest) -> None:
        """Forget a request (its task was cancelled). Late replies become unsolicited."""
        if self.pending.get(pending.seq) is pending:
            del self.pending[pending.seq]

    def accepts(self, msg: Message) -> bool:
        return self.accept_foreign or msg[6].sender_pid == 0

    def feed(self, msg: Message) -> PendingRequest | None | object:
        """Route one received message. Returns the :class:`PendingRequest` it
        belongs to (updated in place), ``None`` for an unsolicited message,
        or :data:`FOREIGN` for one from a non-kernel sender we do not accept.
        Raises :class:`DecodeError` for a malformed error message."""
        frame = msg[6]
        if frame.sender_pid and not self.accept_foreign:
            return FOREIGN
        if frame.group:
            return None
        pending = self.pending.get(msg[2])
        if pending is None or (msg[3] != self.portid and self.portid):
            return None
        msg_type = msg[0]
        if msg_type == NLMSG_ERROR:
            report = parse_error(msg)
            if report.error == -ENOBUFS and pending.is_dump:
                # __netlink_dump_start ran the first netlink_dump() in our
                # sendmsg and found the receive buffer full (sk_rmem_alloc >=
                # sk_rcvbuf): netlink_rcv_skb acks that -ENOBUFS, but the dump
                # stays running (cb_running) and netlink_recvmsg continues it
                # once we have read enough. Its data and NLMSG_DONE follow.
                return pending
            if report.error:
                self._finish(pending, report.to_exception(pending.request))
            else:
                pending.acked = True
                self._finish(pending, None)
            return pending
        if pending.is_dump:
            if msg[1] & NLM_F_DUMP_INTR:
                pending.interrupted = True
            if msg_type == NLMSG_DONE:
                report = parse_error(msg)
                self._finish(pending, report.to_exception(pending.request) if report.error else None)
                return pending
            # Dump data is handed back for the caller to deliver (streamed,
            # frame by frame); it is not collected here.
            return pending
        if msg_type == NLMSG_DONE:
            # A multipart (NLM_F_MULTI) reply to a plain request ends here.
            self._finish(pending, None)
            return pending
        if msg_type == NLMSG_OVERRUN:
            return None
        pending.messages.append(msg)
        if not pending.expects_ack and not msg[1] & NLM_F_MULTI:
            # No ACK was asked for: the (single-part) reply completes it.
            self._finish(pending, None)
        return pending

    def _finish(self, pending: PendingRequest, error: NetlinkError | None) -> None:
        pending.finished = True
        pending.error = error
        if self.pending.get(pending.seq) is pending:
            del self.pending[pending.seq]
        if pending.covers is not None:
            self._settle_covered(pending)
        batch = pending.batch
        if error is not None and batch and batch[0] is pending:
            # An error on the first message of an atomic batch (nfnetlink's
            # BATCH_BEGIN) means the kernel processed none of the rest.
            for other in batch[1:]:
                if not other.finished:
                    other.finished = True
                    other.error = error
                    self.pending.pop(other.seq, None)

    def fail_all(self, error: BaseException) -> list[PendingRequest]:
        """Finish every pending request with ``error`` (on close)."""
        failed = list(self.pending.values())
        for pending in failed:
            pending.finished = True
            pending.error = error  # type: ignore[assignment]
        self.pending.clear()
        return failed

