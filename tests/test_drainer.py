"""The drainer on its own: frames written by hand in, deliveries out.

No event loop and no socket: a FrameFeed (aionlmmap.testing._feed) leaves
frames in ring memory as a backend would, and each test walks them.
"""

from __future__ import annotations

import struct

import pytest

from aionlmmap import NetlinkError
from aionlmmap.constants import NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR
from aionlmmap.drainer import Drainer
from aionlmmap.frames import SKIP, UNUSED
from aionlmmap.message import Message, encode_message
from aionlmmap.protocol import NetlinkProtocol
from aionlmmap.testing._feed import FrameFeed

PORTID = 4242
RTM_NEWLINK = 16


def make(frame_nr: int = 8, *, views: bool = True, skip_is_safe: bool = True) -> tuple[FrameFeed, Drainer]:
    feed = FrameFeed(frame_nr, views=views, skip_is_safe=skip_is_safe)
    return feed, Drainer(feed, NetlinkProtocol(PORTID))


def event(seq: int = 0, payload: bytes = b"\x00" * 16, kind: int = RTM_NEWLINK, flags: int = 0, pid: int = 0) -> bytes:
    data = encode_message(kind, flags, seq, pid, payload)
    return data + b"\x00" * (-len(data) % 4)


def ack(seq: int, error: int = 0) -> bytes:
    request = encode_message(RTM_NEWLINK, 5, seq, PORTID)
    return encode_message(NLMSG_ERROR, 0x100, seq, PORTID, struct.pack("=i", -error) + request[:16])


@pytest.mark.parametrize("views", [True, False])
def test_a_notification_is_queued_for_the_iterator_as_one_message(views: bool) -> None:
    feed, drainer = make(views=views)
    index = feed.valid(event(payload=b"abcd" * 4), group=1)
    touched: list[object] = []
    assert drainer.walk(touched)
    assert touched == []
    [msg] = drainer._unsolicited
    assert msg.__class__ is Message and (msg.type, msg.group, bytes(msg.payload)) == (RTM_NEWLINK, 1, b"abcd" * 4)
    assert (drainer.stats.frames, drainer.stats.messages, drainer.stats.unsolicited) == (1, 1, 1)
    assert drainer._slots[index] is msg.frame  # pinned until the iterator consumes it
    drainer._batch_done(msg.frame)
    assert feed.rx.status(index) == UNUSED and not msg.frame.alive


def test_a_reply_finishes_its_request_and_releases_the_frame() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=False)
    index = feed.valid(event(seq=request.seq, pid=PORTID) + ack(request.seq))
    touched: list[object] = []
    drainer.walk(touched)
    assert pending in touched and pending.finished and pending.error is None
    [reply] = pending.messages
    assert reply.type == RTM_NEWLINK and reply.frame.frame_index == -1  # a copy: it outlives the frame
    assert feed.rx.status(index) == UNUSED and drainer._slots[index] is None
    assert not drainer._unsolicited


def test_an_error_answer_carries_the_errno() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=False)
    feed.valid(ack(request.seq, error=17))
    drainer.walk([])
    assert isinstance(pending.error, NetlinkError) and pending.error.errno == 17


def test_a_chunk_of_the_running_dump_is_handed_over_unparsed() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=True)
    pending.messages = []  # the dump's chunk queue (the shell sets a deque)
    drainer._active_dump = pending
    data = b"".join(encode_message(RTM_NEWLINK, NLM_F_MULTI, request.seq, PORTID, b"\x00" * 16) for _ in range(3))
    index = feed.valid(data)
    touched: list[object] = []
    drainer.walk(touched)
    assert touched == [pending]
    [(frame, length)] = pending.messages
    assert length == len(data) and frame.frame_index == index and frame.pending == 1


def test_done_of_a_dump_that_is_not_streaming_finishes_it() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=True)
    pending.messages = []
    feed.valid(encode_message(RTM_NEWLINK, NLM_F_MULTI, request.seq, PORTID, b"\x00" * 16) + encode_message(NLMSG_DONE, NLM_F_MULTI, request.seq, PORTID, b"\x00" * 4))
    touched: list[object] = []
    drainer.walk(touched)
    assert pending.finished and pending in touched
    [(frame, batch)] = pending.messages
    assert [m.type for m in batch] == [RTM_NEWLINK]


def test_an_overrun_is_reported_where_the_loss_happened_and_sends_a_barrier() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=False)
    feed.valid(event(), group=1)
    feed.overrun()
    feed.valid(event(payload=b"late" * 4), group=1)
    drainer.walk([])
    first, report, last = drainer._unsolicited
    assert first.__class__ is Message and report[0] is None and bytes(last.payload) == b"late" * 4
    assert drainer.stats.overruns == 1
    # The reply to the request in flight may be lost: a barrier asks the kernel.
    [barrier] = drainer.barriers_sent
    assert barrier.type == 1 and drainer._barrier is not None and pending in drainer._barrier.messages


def test_the_barrier_ack_fails_requests_whose_answer_was_lost() -> None:
    feed, drainer = make()
    _request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=False)
    feed.overrun()
    feed.valid(event(), group=1)
    drainer.walk([])
    barrier = drainer._barrier
    assert barrier is not None
    touched: list[object] = []
    feed.valid(ack(barrier.seq))
    drainer.walk(touched)
    assert pending.finished and "overrun" in str(pending.error) and pending in touched


def test_messages_from_other_senders_are_counted_and_dropped() -> None:
    feed, drainer = make()
    index = feed.valid(event(), group=1, pid=999)
    drainer.walk([])
    assert not drainer._unsolicited and drainer.stats.foreign == 1 and feed.rx.status(index) == UNUSED


def test_late_answers_to_cancelled_requests_are_dropped() -> None:
    feed, drainer = make()
    request, pending = drainer._proto.start(Message(RTM_NEWLINK, 0), dump=False)
    drainer._proto.cancel(pending)
    drainer._stale_seqs.add(request.seq)
    feed.valid(ack(request.seq))
    drainer.walk([])
    assert not drainer._unsolicited and drainer.stats.stale_replies == 1 and not drainer._stale_seqs


def test_an_empty_frame_is_released_unread() -> None:
    feed, drainer = make()
    index = feed.empty()
    feed.valid(event(), group=1)
    drainer.walk([])
    assert feed.rx.status(index) == UNUSED and drainer.stats.empty_frames == 1 and len(drainer._unsolicited) == 1


def test_a_copy_frame_goes_back_at_once_and_its_datagram_is_delivered() -> None:
    feed, drainer = make(views=False, skip_is_safe=False)
    index = feed.copy(event(payload=b"copy" * 4), group=3)
    drainer.walk([])
    assert feed.rx.status(index) == UNUSED and drainer.stats.copy_frames == 1
    [msg] = drainer._unsolicited
    frame = msg.frame
    assert bytes(msg.payload) == b"copy" * 4 and msg.group == 3 and drainer._copied_bytes == len(frame.buffer)
    drainer._batch_done(frame)
    assert drainer._copied_bytes == 0


def test_malformed_data_is_counted_and_the_good_messages_before_it_kept() -> None:
    feed, drainer = make()
    feed.valid(event() + struct.pack("=IHHII", 400, RTM_NEWLINK, 0, 0, 0), group=1)
    drainer.walk([])
    [(frame, messages)] = drainer._unsolicited
    assert len(messages) == 1 and drainer.stats.decode_errors == 1


def test_a_ring_full_of_unconsumed_frames_blocks_the_reader_until_one_is_released() -> None:
    feed, drainer = make(frame_nr=4)
    for _ in range(4):
        feed.valid(event(), group=1)
    drainer.walk([])
    assert not feed.free() and drainer.rx_blocked(False)
    first = drainer._unsolicited.popleft()
    drainer._batch_done(first.frame)
    assert feed.free() and not drainer.rx_blocked(False)


def test_a_held_message_turns_its_frame_skip_and_later_frames_keep_flowing() -> None:
    feed, drainer = make(frame_nr=2)
    feed.valid(event(payload=b"kept" * 4), group=1)
    drainer.walk([])
    kept = drainer._unsolicited.popleft()
    kept.hold()
    drainer._batch_done(kept.frame)  # the iterator moved on
    assert feed.rx.status(kept.frame.frame_index) == SKIP
    for _ in range(3):  # laps past the held frame
        feed.valid(event(), group=1)
        drainer.walk([])
        msg = drainer._unsolicited.popleft()
        drainer._batch_done(msg.frame)
    assert bytes(kept.payload) == b"kept" * 4
    kept.release()
    assert feed.rx.status(kept.frame.frame_index) == UNUSED if kept.frame.frame_index >= 0 else True
