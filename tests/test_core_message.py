"""nlmsghdr codec: encoding, parsing, bounds checks, frame lifetime."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aionlmmap import DecodeError, Message, ReleasedMessageError, iter_messages
from aionlmmap.message import NLMSGHDR, ReceivedFrame, encode_message, header_run, nlmsg_align, parse_frame

messages = st.builds(
    Message,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=300),
)


@given(st.lists(messages, max_size=20))
def test_encoding_then_parsing_gives_back_every_message(batch: list[Message]) -> None:
    data = b"".join(m.encode() for m in batch)
    parsed = list(iter_messages(data))
    assert [(m.type, m.flags, m.seq, m.pid, bytes(m.payload)) for m in parsed] == [
        (m.type, m.flags, m.seq, m.pid, bytes(m.payload)) for m in batch
    ]


@given(messages)
def test_encoded_length_is_aligned_and_nlmsg_len_is_not_padded(msg: Message) -> None:
    data = msg.encode()
    assert len(data) % 4 == 0
    assert int.from_bytes(data[:4], "little") == 16 + len(msg.payload)
    assert msg.length == 16 + len(msg.payload)


@given(messages, st.integers(0, 64))
def test_encode_into_writes_the_same_bytes_as_encode(msg: Message, offset: int) -> None:
    buffer = bytearray(offset + nlmsg_align(msg.length) + 8)
    written = msg.encode_into(buffer, offset)
    assert buffer[offset : offset + written] == msg.encode()


@given(st.binary(max_size=200))
def test_parsing_arbitrary_bytes_never_raises_anything_but_decode_error(data: bytes) -> None:
    frame = ReceivedFrame(data)
    parsed, error = parse_frame(frame, len(data))
    assert error is None or isinstance(error, DecodeError)
    for msg in parsed:
        assert msg.length >= 16


def test_truncated_header_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="truncated nlmsghdr"):
        list(iter_messages(Message(20, payload=b"x").encode()[:12]))


def test_length_below_the_header_is_a_decode_error() -> None:
    data = bytearray(Message(20).encode())
    data[0:4] = (8).to_bytes(4, "little")
    with pytest.raises(DecodeError, match="below the 16-byte header"):
        list(iter_messages(data))


def test_length_past_the_buffer_is_a_decode_error_after_the_good_messages() -> None:
    good = Message(20, payload=b"good").encode()
    bad = bytearray(Message(21, payload=b"bad").encode())
    bad[0:4] = (400).to_bytes(4, "little")
    parsed = []
    with pytest.raises(DecodeError, match="runs past"):
        for msg in iter_messages(good + bytes(bad)):
            parsed.append(msg)
    assert [m.type for m in parsed] == [20]


def test_out_of_range_header_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="type"):
        Message(0x10000)
    with pytest.raises(ValueError, match="seq"):
        Message(16, seq=-1)


def test_a_retired_frame_raises_on_payload_access_and_releases_views() -> None:
    memory = bytearray(Message(30, payload=b"hello").encode())
    frame = ReceivedFrame(memoryview(memory))
    [msg], error = parse_frame(frame, len(memory))
    assert error is None
    view = msg.payload
    assert bytes(view) == b"hello"
    frame.retire()
    with pytest.raises(ReleasedMessageError, match="hold"):
        msg.payload
    with pytest.raises(ValueError):
        bytes(view)  # the view handed out earlier was released too


def test_copy_and_detach_outlive_the_frame() -> None:
    memory = bytearray(Message(30, payload=b"hello").encode())
    frame = ReceivedFrame(memoryview(memory), group=5)
    [msg], _ = parse_frame(frame, len(memory))
    copy = msg.copy()
    frame.detach()
    memory[16:21] = b"XXXXX"  # the kernel reuses the frame
    assert bytes(msg.payload) == b"hello"
    assert bytes(copy.payload) == b"hello" and copy.group == 5


def test_release_without_hold_is_an_error() -> None:
    with pytest.raises(ValueError, match="without a matching hold"):
        Message(16).release()


def test_messages_pickle_as_plain_values() -> None:
    msg = Message(16, 1, 2, 3, b"abc")
    clone = pickle.loads(pickle.dumps(msg))
    assert (clone.type, clone.flags, clone.seq, clone.pid, bytes(clone.payload)) == (16, 1, 2, 3, b"abc")


def test_encode_message_matches_message_encode() -> None:
    assert encode_message(16, 5, 6, 7, b"xyz") == Message(16, 5, 6, 7, b"xyz").encode()


def _runs_by_walking(data: bytes, end: int) -> list[tuple[int, tuple[int, ...] | None]]:
    """header_run's answers, computed one header at a time."""
    runs: list[tuple[int, tuple[int, ...] | None]] = []
    offset = 0
    while offset < end:
        header = None
        count = 0
        while end - offset >= 16:
            this = NLMSGHDR.unpack_from(data, offset)
            if this[0] < 16 or offset + this[0] > end or (header is not None and this != header):
                break
            header = this
            count += 1
            offset += nlmsg_align(this[0])
        runs.append((count, header))
        if not count:
            break
    return runs


# Mostly one header (long runs), with a few that differ in exactly one field:
# length, type, flags (NLM_F_DUMP_INTR), seq or portid.
_variants = st.sampled_from([(52, 24, 2, 9, 77)] * 6 + [(56, 24, 2, 9, 77), (52, 3, 2, 9, 77), (52, 24, 0x12, 9, 77), (52, 24, 2, 10, 77), (52, 24, 2, 9, 78), (17, 24, 2, 9, 77)])


@given(st.lists(_variants, min_size=1, max_size=80), st.integers(0, 40), st.booleans())
def test_header_run_finds_the_runs_a_header_by_header_walk_finds(headers: list[tuple[int, ...]], cut: int, as_view: bool) -> None:
    data = b"".join(NLMSGHDR.pack(*header) + bytes(nlmsg_align(header[0]) - 16) for header in headers)
    end = max(0, len(data) - cut)  # a cut may leave a truncated or overlong last message
    buffer = memoryview(data) if as_view else data
    runs = []
    offset = 0
    while offset < end:
        count, header = header_run(buffer, offset, end)
        runs.append((count, header))
        if not count:
            break
        assert header is not None
        offset += count * nlmsg_align(header[0])
    assert runs == _runs_by_walking(data, end)


def test_header_run_counts_a_long_run_and_stops_at_the_first_difference() -> None:
    same = NLMSGHDR.pack(60, 24, 2, 5, 0) + bytes(44)
    other = NLMSGHDR.pack(60, 24, 2, 6, 0) + bytes(44)
    data = same * 300 + other + same * 2
    assert header_run(data, 0, len(data)) == (300, (60, 24, 2, 5, 0))
    assert header_run(data, 300 * 60, len(data)) == (1, (60, 24, 2, 6, 0))
    assert header_run(data, 301 * 60, len(data)) == (2, (60, 24, 2, 5, 0))
    assert header_run(data, 0, 59) == (0, None)  # the first message runs past the end
    assert header_run(data, 0, 10) == (0, None)  # not even a header
