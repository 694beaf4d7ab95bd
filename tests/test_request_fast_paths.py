"""The request_many fast paths (issue 16) against the general paths they
short-cut, on seeded random inputs:

- ``NetlinkProtocol.start_requests`` gives the seqs, flags and pending
  states that one ``start`` per message gives (wrap-around, in-flight seqs);
- ``NetlinkProtocol.settle_ack`` finishes a request exactly as ``feed`` does
  for a plain ACK, and declines everything ``feed`` must decode (errors with
  extack, dumps, unknown seqs, another portid);
- the TX encoder (``_transmit._encode_planned``) writes the bytes
  ``Message.encode_into`` writes, for owned payloads and views into frames;
- through a real ring on every backend: each lone ACK frame is settled and
  its frame given back, errors in the same datagram still carry their
  extack, and the ring's counters match the answers.
"""

from __future__ import annotations

import asyncio
import errno
import random
import struct

import pytest

import aionlmmap
from aionlmmap import Message, NetlinkError
from aionlmmap._transmit import _encode_planned
from aionlmmap.constants import NLM_F_ACK, NLM_F_CAPPED, NLM_F_REQUEST, NLMSG_ERROR, RTM_NEWLINK
from aionlmmap.message import ReceivedFrame, parse_frame
from aionlmmap.protocol import NetlinkProtocol

from test_core_batches import route_add, routes_added
from test_core_protocol import PORTID, error_reply, received

SEEDS = [1, 7, 16, 440, 2026]


def random_message(rng: random.Random) -> Message:
    return Message(rng.randrange(16, 0x10000), rng.randrange(0, 0x10000), rng.randrange(0, 1 << 32), rng.randrange(0, 1 << 32), rng.randbytes(rng.randrange(0, 41)))


@pytest.mark.parametrize("seed", SEEDS)
def test_start_requests_matches_one_start_per_message(seed: int) -> None:
    rng = random.Random(seed)
    first_seq = rng.choice([1, 0xFFFFFFFF - rng.randrange(0, 20), rng.randrange(1, 1 << 32)])
    in_flight = {first_seq + rng.randrange(1, 40) & 0xFFFFFFFF for _ in range(10)} - {0}
    messages = [random_message(rng) for _ in range(rng.randrange(1, 60))]
    ack = rng.random() < 0.8
    one_by_one = NetlinkProtocol(PORTID, first_seq=first_seq)
    batched = NetlinkProtocol(PORTID, first_seq=first_seq)
    for proto in (one_by_one, batched):
        for seq in in_flight:
            proto.pending[seq] = "in flight"  # type: ignore[assignment]
    expected = [one_by_one.start(msg, dump=False, ack=ack) for msg in messages]
    requests, pendings = batched.start_requests(messages, ack=ack)
    assert requests == [request for request, _ in expected]
    assert [(p.seq, p.request, p.is_dump, p.expects_ack, p.finished) for p in pendings] == [
        (p.seq, p.request, p.is_dump, p.expects_ack, p.finished) for _, p in expected
    ]
    assert batched.pending.keys() == one_by_one.pending.keys()
    assert batched.next_seq() == one_by_one.next_seq()
    assert all(request.flags & NLM_F_REQUEST and bool(request.flags & NLM_F_ACK) == ack for request in requests)


def ack_bytes(request: Message, error: int = 0, *, portid: int = PORTID) -> bytes:
    return Message(NLMSG_ERROR, NLM_F_CAPPED, request.seq, portid, struct.pack("=i", error) + request.encode()[:16]).encode()


def test_settle_ack_finishes_a_plain_request_as_feed_does() -> None:
    fed, settled = NetlinkProtocol(PORTID), NetlinkProtocol(PORTID)
    [request], [by_feed] = fed.start_requests([Message(RTM_NEWLINK)])
    [_], [by_settle] = settled.start_requests([Message(RTM_NEWLINK)])
    data = ack_bytes(request)
    assert fed.feed(received(Message(NLMSG_ERROR, NLM_F_CAPPED, request.seq, PORTID, data[16:]))) is by_feed
    assert settled.settle_ack(memoryview(data), request.seq, PORTID) is by_settle
    for pending in (by_feed, by_settle):
        assert (pending.finished, pending.acked, pending.error, pending.messages) == (True, True, None, [])
    assert not fed.pending and not settled.pending


def test_settle_ack_declines_what_feed_must_decode() -> None:
    proto = NetlinkProtocol(PORTID)
    [request], [pending] = proto.start_requests([Message(RTM_NEWLINK)])
    dump, dump_pending = proto.start(Message(RTM_NEWLINK), dump=True)
    assert proto.settle_ack(ack_bytes(request, -errno.EEXIST), request.seq, PORTID) is None  # a refusal
    assert proto.settle_ack(ack_bytes(request), request.seq + 100, PORTID) is None  # unknown seq
    assert proto.settle_ack(ack_bytes(request, portid=PORTID + 1), request.seq, PORTID + 1) is None  # another portid
    assert proto.settle_ack(ack_bytes(dump, -errno.ENOBUFS), dump.seq, PORTID) is None  # a dump
    assert proto.settle_ack(ack_bytes(dump), dump.seq, PORTID) is None
    assert not pending.finished and not dump_pending.finished
    # ... and feed() still turns the refusal into its error, extack included
    proto.feed(received(error_reply(request, errno.EEXIST, text="File exists")))
    assert isinstance(pending.error, NetlinkError) and pending.error.errno == errno.EEXIST


@pytest.mark.parametrize("seed", SEEDS)
def test_the_tx_encoder_writes_what_encode_into_writes(seed: int) -> None:
    rng = random.Random(seed)
    messages = [random_message(rng) for _ in range(40)]
    # Views into a received datagram (replies sent back, e.g. an echo), as
    # well as messages that own their bytes.
    datagram = b"".join(msg.encode() for msg in messages[:10])
    borrowed, error = parse_frame(ReceivedFrame(memoryview(bytearray(datagram))), len(datagram))
    assert error is None
    mixed = borrowed + messages[10:]
    rng.shuffle(mixed)
    frames = [bytearray(rng.randbytes(2048)) for _ in range(12)]
    expected = [bytearray(frame) for frame in frames]
    plan = []
    frame_index = offset = 0
    for msg in mixed:
        size = (msg.length + 3) & ~3
        if offset + size > 2048:
            frame_index, offset = frame_index + 1, 0
        if rng.random() < 0.1:
            frame_index, offset = frame_index + 1, rng.choice([0, 64])  # a fresh frame (what follows an atomic batch)
        plan.append((frame_index, offset))  # end to end in a frame, as _write_tx plans
        offset += size
    for msg, (index, at) in zip(mixed, plan):
        msg.encode_into(memoryview(expected[index]), at)
    _encode_planned(mixed, plan, lambda index: memoryview(frames[index]))
    assert frames == expected


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["emulated", "uring"])
async def test_request_many_settles_each_ack_and_keeps_errors_in_the_same_datagram(netns: str, backend: str) -> None:
    """Up to 300 route adds in one request_many (one datagram), three of
    them already there (EEXIST): the errors take the general path (the
    first one raised), the last request's ACK the fast one and settles the
    rest; every frame comes back."""
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, backend=backend) as ring:  # type: ignore[arg-type]
        count = min(300, ring.max_in_flight)
        duplicates = [7, count // 2, count - 2]  # the last one succeeds: its ACK settles the datagram
        await ring.request_many([route_add(index) for index in duplicates])
        before = ring.stats.messages
        with pytest.raises(NetlinkError) as caught:
            await asyncio.wait_for(ring.request_many([route_add(index) for index in range(count)]), 30)
        assert caught.value.errno == errno.EEXIST
        # rtnetlink: only the datagram's last request asks for an ACK; the
        # kernel answers the failed ones anyway (netlink_rcv_skb acks on err)
        assert ring.stats.messages - before == len(duplicates) + 1
        assert not ring._proto.pending
        assert all(slot is None for slot in ring._slots)  # every ACK frame was given back
        replies = await asyncio.wait_for(ring.request_many([route_add(index) for index in range(count, count + 220)]), 30)
        assert replies == [[] for _ in range(220)]
    assert len(routes_added(netns)) == count + 220


def test_only_the_last_of_a_datagram_asks_for_an_ack_and_its_answer_settles_the_rest() -> None:
    proto = NetlinkProtocol(PORTID)
    requests, pendings = proto.start_requests([Message(RTM_NEWLINK, payload=bytes([index])) for index in range(5)], ack_last_only=True)
    assert [bool(request.flags & NLM_F_ACK) for request in requests] == [False, False, False, False, True]
    assert all(request.flags & NLM_F_REQUEST for request in requests)
    assert pendings[-1].covers == pendings[:-1]
    # a reply to a silent request does not finish it: its ACK never comes,
    # the last one's does
    reply = received(Message(RTM_NEWLINK, 0, requests[1].seq, PORTID, b"reply"))
    assert proto.feed(reply) is pendings[1] and not pendings[1].finished
    proto.feed(received(error_reply(requests[2], errno.EINVAL, text="bad")))
    assert not pendings[0].finished and pendings[2].finished
    data = ack_bytes(requests[4])
    assert proto.settle_ack(memoryview(data), requests[4].seq, PORTID) is pendings[4]
    assert [p.finished for p in pendings] == [True] * 5
    assert [p.error is None for p in pendings] == [True, True, False, True, True]
    assert bytes(pendings[1].messages[0].payload) == b"reply"
    assert not proto.pending


def test_an_error_on_the_last_of_a_datagram_still_settles_the_rest() -> None:
    proto = NetlinkProtocol(PORTID)
    requests, pendings = proto.start_requests([Message(RTM_NEWLINK) for _ in range(3)], ack_last_only=True)
    proto.feed(received(error_reply(requests[2], errno.EEXIST)))
    assert [p.error is None for p in pendings] == [True, True, False]
    assert all(p.finished for p in pendings) and not proto.pending


@pytest.mark.integration
async def test_request_many_on_rtnetlink_returns_the_replies_of_requests_sent_without_ack(netns: str) -> None:
    """GETs among adds in one datagram: each GET's reply is its result
    though only the datagram's last request asked for an ACK."""
    from test_stress_cancel import GET_LO

    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        replies = await asyncio.wait_for(ring.request_many([route_add(1), GET_LO, route_add(2), GET_LO, route_add(3)]), 10)
        assert [len(reply) for reply in replies] == [0, 1, 0, 1, 0]
        assert replies[1][0].type == RTM_NEWLINK and replies[3][0].type == RTM_NEWLINK
        assert not ring._proto.pending
    assert routes_added(netns) == {"10.77.0.1", "10.77.0.2", "10.77.0.3"}


@pytest.mark.parametrize("views", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_an_overrun_before_the_last_ack_leaves_the_silent_requests_unsure(views: bool, seed: int) -> None:
    """The kernel answers a failed request without NLM_F_ACK with an error
    only, so if the socket overran while the datagram's answers were on the
    way, that error may be the message lost: the last request's ACK cannot
    say the others succeeded. They are settled by the overrun's barrier:
    each error that did arrive stays, the rest get OverrunError (retry),
    never a success the kernel did not confirm."""
    from aionlmmap.drainer import Drainer
    from aionlmmap.testing._feed import FrameFeed

    rng = random.Random(seed)
    feed = FrameFeed(64, views=views)
    drainer = Drainer(feed, NetlinkProtocol(PORTID))
    count = rng.randrange(2, 12)
    requests, pendings = drainer._proto.start_requests([Message(RTM_NEWLINK, payload=bytes([i])) for i in range(count)], ack_last_only=True)
    failed = {index for index in range(count - 1) if rng.random() < 0.4}
    lost = rng.choice(sorted(failed)) if failed and rng.random() < 0.7 else None
    overrun_at = rng.randrange(0, count)  # the report's place among the answers
    answers = [index for index in range(count - 1) if index in failed and index != lost] + [count - 1]
    for position, index in enumerate(answers):
        if position == min(overrun_at, len(answers) - 1):
            feed.overrun()
        error = -errno.EEXIST if index in failed else 0
        feed.valid(ack_bytes(requests[index], error))
    touched: list[object] = []
    drainer.walk(touched)
    assert pendings[-1].finished and pendings[-1].error is None
    barrier = drainer._barrier
    assert barrier is not None
    feed.valid(ack_bytes(Message(1, 0, barrier.seq, PORTID)))
    drainer.walk(touched)
    assert all(pending.finished for pending in pendings)
    for index, pending in enumerate(pendings[:-1]):
        if index in failed and index != lost:
            assert isinstance(pending.error, NetlinkError) and pending.error.errno == errno.EEXIST
        else:
            assert type(pending.error).__name__ == "OverrunError", (index, pending.error)
    assert not drainer._proto.pending
