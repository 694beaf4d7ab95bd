"""The sans-IO request state: matching, ACKs, errors with extack, dumps."""

from __future__ import annotations

import errno
import struct

import pytest

from aionlmmap import AttributeBuilder, Message, NetlinkError
from aionlmmap.constants import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS,
    RTM_GETLINK,
    RTM_NEWLINK,
)
from aionlmmap.message import ReceivedFrame
from aionlmmap.protocol import FOREIGN, NetlinkProtocol, parse_error

PORTID = 4242


def received(msg: Message, *, group: int = 0, sender: int = 0) -> Message:
    """The message as the ring would deliver it (with frame metadata)."""
    frame = ReceivedFrame(msg.encode(), group=group, sender_pid=sender)
    from aionlmmap.message import parse_frame

    [parsed], _ = parse_frame(frame, len(frame.buffer))
    return parsed


def error_reply(request: Message, error: int, *, text: str | None = None, offset: int | None = None, capped: bool = True) -> Message:
    flags = NLM_F_CAPPED if capped else 0
    original = request.encode()
    payload = struct.pack("=i", -error) + (original[:16] if capped else original)
    if text is not None or offset is not None:
        flags |= NLM_F_ACK_TLVS
        tlvs = AttributeBuilder()
        if text is not None:
            tlvs.add_str(NLMSGERR_ATTR_MSG, text)
        if offset is not None:
            tlvs.add_u32(NLMSGERR_ATTR_OFFS, offset)
        payload += tlvs.build()
    return Message(NLMSG_ERROR, flags, request.seq, PORTID, payload)


def test_requests_get_distinct_nonzero_seqs_and_request_ack_flags() -> None:
    proto = NetlinkProtocol(PORTID)
    first, _ = proto.start(Message(RTM_NEWLINK), dump=False)
    second, _ = proto.start(Message(RTM_NEWLINK), dump=False)
    assert first.seq != second.seq and 0 not in (first.seq, second.seq)
    assert first.flags & NLM_F_REQUEST and first.flags & NLM_F_ACK


def test_seq_wraps_around_and_skips_zero_and_in_flight_values() -> None:
    proto = NetlinkProtocol(PORTID, first_seq=0xFFFFFFFF)
    _, kept = proto.start(Message(RTM_NEWLINK), dump=False)
    assert kept.seq == 0xFFFFFFFF
    following, _ = proto.start(Message(RTM_NEWLINK), dump=False)
    assert following.seq == 1


def test_a_dump_is_not_acked_and_ends_at_done() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK, NLM_F_DUMP), dump=True)
    assert not request.flags & NLM_F_ACK
    data = received(Message(RTM_NEWLINK, NLM_F_MULTI, request.seq, PORTID, b"x" * 16))
    assert proto.feed(data) is pending and not pending.finished
    done = received(Message(NLMSG_DONE, NLM_F_MULTI, request.seq, PORTID, struct.pack("=i", 0)))
    assert proto.feed(done) is pending
    assert pending.finished and pending.error is None
    assert request.seq not in proto.pending


def test_dump_intr_marks_the_dump_interrupted() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK, NLM_F_DUMP), dump=True)
    proto.feed(received(Message(RTM_NEWLINK, NLM_F_MULTI | NLM_F_DUMP_INTR, request.seq, PORTID, b"x")))
    assert pending.interrupted


def test_an_error_in_done_fails_the_dump() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK, NLM_F_DUMP), dump=True)
    proto.feed(received(Message(NLMSG_DONE, NLM_F_MULTI, request.seq, PORTID, struct.pack("=i", -errno.EMSGSIZE))))
    assert pending.finished and isinstance(pending.error, NetlinkError) and pending.error.errno == errno.EMSGSIZE


def test_ack_completes_a_request_after_its_replies() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK), dump=False)
    proto.feed(received(Message(RTM_NEWLINK, 0, request.seq, PORTID, b"reply")))
    assert not pending.finished
    proto.feed(received(error_reply(request, 0)))
    assert pending.finished and pending.error is None and len(pending.messages) == 1


def test_error_with_extack_becomes_the_matching_oserror_subclass() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_NEWLINK), dump=False)
    proto.feed(received(error_reply(request, errno.EEXIST, text="Route already exists", offset=20)))
    error = pending.error
    assert isinstance(error, FileExistsError) and isinstance(error, NetlinkError)
    assert error.extack_message == "Route already exists" and error.extack_offset == 20
    assert error.request is request


def test_uncapped_error_skips_the_echoed_request_before_the_tlvs() -> None:
    request = Message(RTM_NEWLINK, NLM_F_REQUEST, 9, 0, b"p" * 22)
    report = parse_error(received(error_reply(request, errno.EINVAL, text="bad attr", capped=False)))
    assert report.error == -errno.EINVAL and report.extack_message == "bad attr"
    assert report.request_header is not None and report.request_header[3] == 9


def test_multicast_messages_with_our_seq_are_unsolicited() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_NEWLINK), dump=False)
    notification = received(Message(RTM_NEWLINK, 0, request.seq, PORTID, b"n"), group=1)
    assert proto.feed(notification) is None
    assert not pending.messages


def test_replies_for_another_portid_are_unsolicited() -> None:
    proto = NetlinkProtocol(PORTID)
    request, _ = proto.start(Message(RTM_NEWLINK), dump=False)
    assert proto.feed(received(Message(RTM_NEWLINK, 0, request.seq, PORTID + 1, b"n"))) is None


def test_non_kernel_senders_are_foreign_unless_accepted() -> None:
    message = received(Message(RTM_NEWLINK, 0, 0, 0, b"n"), sender=777)
    assert NetlinkProtocol(PORTID).feed(message) is FOREIGN
    assert NetlinkProtocol(PORTID, accept_foreign=True).feed(message) is None


def test_an_error_on_the_first_message_of_an_atomic_batch_fails_the_batch() -> None:
    proto = NetlinkProtocol(PORTID)
    pendings = []
    requests = []
    for _ in range(3):
        request, pending = proto.start(Message(0x0A00), dump=False)
        requests.append(request)
        pendings.append(pending)
    for pending in pendings:
        pending.batch = pendings
    proto.feed(received(error_reply(requests[0], errno.EPERM)))
    assert all(p.finished and isinstance(p.error, PermissionError) for p in pendings)
    assert not proto.pending


def test_a_short_error_payload_is_a_decode_error() -> None:
    from aionlmmap import DecodeError

    with pytest.raises(DecodeError):
        parse_error(received(Message(NLMSG_ERROR, 0, 1, PORTID, b"\x00\x00")))


def test_enobufs_at_a_dumps_start_leaves_the_dump_running_until_done() -> None:
    # __netlink_dump_start acks -ENOBUFS when the first chunk finds the
    # receive buffer full, yet the dump stays running and continues as the
    # socket is read: the pending dump must wait for its data and DONE.
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK, NLM_F_DUMP), dump=True)
    assert proto.feed(received(error_reply(request, errno.ENOBUFS))) is pending
    assert not pending.finished and request.seq in proto.pending
    assert proto.feed(received(Message(RTM_NEWLINK, NLM_F_MULTI, request.seq, PORTID, b"x" * 16))) is pending
    proto.feed(received(Message(NLMSG_DONE, NLM_F_MULTI, request.seq, PORTID, struct.pack("=i", 0))))
    assert pending.finished and pending.error is None


def test_enobufs_on_a_plain_request_is_its_error() -> None:
    proto = NetlinkProtocol(PORTID)
    request, pending = proto.start(Message(RTM_GETLINK, 0), dump=False)
    proto.feed(received(error_reply(request, errno.ENOBUFS)))
    assert pending.finished and isinstance(pending.error, NetlinkError) and pending.error.errno == errno.ENOBUFS
