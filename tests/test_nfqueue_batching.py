"""How verdicts become messages: runs of equal verdicts at the head of the
queue become one NFQNL_MSG_VERDICT_BATCH; everything else goes out alone.
A fake ring records what would be sent (no kernel needed)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from aionlmmap import Message
from aionlmmap.errors import DecodeError
from aionlmmap.families import nfqueue
from aionlmmap.families.nfqueue import Packet, Queue, decode_packet_header, encode_verdict

VERDICT, BATCH = 3 << 8 | 1, 3 << 8 | 3


class FakeRing:
    closed = False

    def __init__(self, messages: list[Message] = ()) -> None:  # type: ignore[assignment]
        self.sent: list[Message] = []
        self.incoming = list(messages)

    def send_nowait(self, *messages: Message, atomic: bool = False) -> None:
        self.sent.extend(messages)

    def iterate(self, convert, *, on_overrun=None):  # type: ignore[no-untyped-def]
        """Ring.iterate's contract: convert each message, skip None."""
        async def items():  # type: ignore[no-untyped-def]
            for msg in self.incoming:
                item = convert(msg)
                if item is not None:
                    yield item
        return items()


def sent(ring: FakeRing) -> list[tuple[str, int, int, int | None, bytes | None]]:
    """(kind, id, verdict, mark, payload) of every message the queue sent."""
    out = []
    for msg in ring.sent:
        payload = bytes(msg.payload)
        verdict, packet_id = struct.unpack_from("!II", payload, 8)
        mark = new_payload = None
        offset = 16
        while offset < len(payload):
            length, attr_type = struct.unpack_from("=HH", payload, offset)
            if attr_type == 3:
                mark = struct.unpack_from("!I", payload, offset + 4)[0]
            elif attr_type == 10:
                new_payload = payload[offset + 4 : offset + length]
            offset += (length + 3) & ~3
        out.append(("batch" if msg.type == BATCH else "single", packet_id, verdict, mark, new_payload))
    return out


def make_queue(count: int) -> tuple[Queue, FakeRing, list[Packet]]:
    ring = FakeRing()
    queue = Queue(ring, 5, Message(0))
    packets = [Packet(queue, Message(0), packet_id, 0x0800, 1) for packet_id in range(1, count + 1)]
    queue._outstanding.extend(packets)
    return queue, ring, packets


async def test_equal_verdicts_at_the_head_become_one_batch() -> None:
    queue, ring, packets = make_queue(5)
    for packet in packets:
        packet.accept()
    await asyncio.sleep(0)  # the flush runs at the end of the loop iteration
    assert sent(ring) == [("batch", 5, 1, None, None)]
    assert queue.pending == 0


async def test_a_change_of_verdict_or_mark_starts_a_new_run() -> None:
    queue, ring, packets = make_queue(6)
    packets[0].accept()
    packets[1].accept()
    packets[2].drop()
    packets[3].accept(mark=9)
    packets[4].accept(mark=9)
    packets[5].accept()
    await asyncio.sleep(0)
    assert sent(ring) == [("batch", 2, 1, None, None), ("single", 3, 0, None, None), ("batch", 5, 1, 9, None), ("single", 6, 1, None, None)]


async def test_an_undecided_packet_ends_the_batchable_run() -> None:
    queue, ring, packets = make_queue(5)
    packets[0].accept()
    packets[2].accept()
    packets[3].accept()
    packets[4].accept()  # packet 2 is still undecided: 3..5 cannot be batched past it
    await asyncio.sleep(0)
    assert sent(ring) == [("single", 1, 1, None, None), ("single", 3, 1, None, None), ("single", 4, 1, None, None), ("single", 5, 1, None, None)]
    assert queue.pending == 1
    packets[1].drop()
    await asyncio.sleep(0)
    assert sent(ring)[-1] == ("single", 2, 0, None, None)
    assert queue.pending == 0


async def test_a_mangled_payload_always_goes_alone() -> None:
    queue, ring, packets = make_queue(3)
    packets[0].accept()
    packets[1].accept(payload=b"new")
    packets[2].accept()
    await asyncio.sleep(0)
    assert sent(ring) == [("single", 1, 1, None, None), ("single", 2, 1, None, b"new"), ("single", 3, 1, None, None)]


async def test_verdicts_of_one_iteration_share_one_flush() -> None:
    queue, ring, packets = make_queue(100)
    for packet in packets:
        packet.accept()
    await asyncio.sleep(0)
    assert queue.stats.flushes == 1 and queue.stats.batch_messages == 1


async def test_a_second_verdict_is_refused() -> None:
    queue, ring, packets = make_queue(1)
    packets[0].accept()
    with pytest.raises(RuntimeError, match="already has a verdict"):
        packets[0].drop()


def test_queue_verdict_puts_the_queue_number_in_the_upper_bits() -> None:
    ring = FakeRing()
    queue = Queue(ring, 5, Message(0))
    packet = Packet(queue, Message(0), 1, 0x0800, 1)
    queue._outstanding.append(packet)
    queue._loop = asyncio.new_event_loop()
    try:
        packet.queue(9)
        queue._flush_verdicts()
    finally:
        queue._loop.close()
    assert sent(ring) == [("single", 1, 3 | 9 << 16, None, None)]


def test_verdict_batches_cannot_carry_a_payload() -> None:
    with pytest.raises(ValueError):
        encode_verdict(0, 1, 1, payload=b"x", batch=True)


def test_the_packet_header_is_read_with_or_without_the_fast_path() -> None:
    header = struct.pack("=HH", 11, 1) + struct.pack("!IHB", 77, 0x0800, 1) + b"\0"
    assert decode_packet_header(b"\0\0\0\x05" + header) == (77, 0x0800, 1)
    # NFQA_PACKET_HDR not first: found by the attribute walk.
    mark = struct.pack("=HH", 8, 3) + b"\0\0\0\x07"
    assert decode_packet_header(b"\0\0\0\x05" + mark + header) == (77, 0x0800, 1)
    with pytest.raises(DecodeError):
        decode_packet_header(b"\0\0\0\x05" + mark)
    with pytest.raises(DecodeError):
        decode_packet_header(b"\0\0")


async def test_malformed_and_foreign_queue_messages_are_counted_not_fatal() -> None:
    good = Message(3 << 8, 0, payload=b"\0\0\0\x05" + struct.pack("=HH", 11, 1) + struct.pack("!IHB", 1, 0x0800, 1) + b"\0")
    other_queue = Message(3 << 8, 0, payload=b"\0\0\0\x06" + struct.pack("=HH", 11, 1) + struct.pack("!IHB", 2, 0x0800, 1) + b"\0")
    truncated = Message(3 << 8, 0, payload=b"\0\0\0\x05" + struct.pack("=HH", 11, 1) + b"\0\0")
    unknown_attribute = Message(3 << 8, 0, payload=bytes(good.payload) + struct.pack("=HH", 8, 99) + b"abcd")
    ring = FakeRing([truncated, other_queue, Message(0x1234, 0), good, unknown_attribute])
    queue = Queue(ring, 5, Message(0))
    packets = [packet async for packet in queue]
    assert [packet.id for packet in packets] == [1, 1]
    assert packets[1].mark == 0  # decoding the rest counts the unknown attribute
    assert queue.stats.malformed == 1 and queue.stats.other_messages == 2 and queue.stats.unknown_attributes == 1


def test_open_validates_the_queue_number() -> None:
    with pytest.raises(ValueError):
        nfqueue.open(70000)
