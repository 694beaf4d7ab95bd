"""The compiled core (aionlmmap/_speedups.pyx) against its pure-Python
reference: the same inputs (real kernel dumps, generated messages and
attribute streams, fuzzed bytes) give the same results and the same
exceptions, and the import-time selection does what the docs say."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aionlmmap import AttributeBuilder, Message, attributes, message
from aionlmmap.families import nfqueue
from aionlmmap.message import ReceivedFrame

from conftest import compiled_core, dump_datagrams, ip

ROOT = Path(__file__).resolve().parent.parent


speedups = compiled_core()


def outcome(function: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: ("ok", result) or ("raised", type, message)."""
    try:
        return ("ok", function(*args))
    except Exception as exc:  # noqa: BLE001  # the point is to compare any exception
        return ("raised", type(exc), str(exc))


def walk_outcome(function: Callable[..., Any], *args: Any) -> tuple[list[Any], tuple[Any, ...] | None]:
    """Items a generator yields before it stops, and what stopped it."""
    items: list[Any] = []
    try:
        for item in function(*args):
            items.append(item)
    except Exception as exc:  # noqa: BLE001
        return items, (type(exc), str(exc))
    return items, None


def frame_outcome(function: Callable[..., Any], data: Any, length: int) -> tuple[Any, ...]:
    frame = ReceivedFrame(data)
    result = outcome(function, frame, length)
    if result[0] != "ok":
        return result
    messages, error = result[1]
    assert all(m[6] is frame and type(m) is Message for m in messages)
    return ("ok", [tuple(m[:6]) for m in messages], None if error is None else (type(error), str(error)))


def as_buffers(data: bytes) -> list[Any]:
    return [data, bytearray(data), memoryview(data), memoryview(bytearray(data))]


# --- generated inputs --------------------------------------------------------------

headers = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))


@st.composite
def message_streams(draw: st.DrawFn) -> bytes:
    """Datagrams as dumps make them: runs of messages with the same header,
    sometimes broken by another header, a length change or garbage."""
    chunks = []
    for _ in range(draw(st.integers(0, 6))):
        header = draw(headers)
        payload = draw(st.binary(max_size=40))
        chunks.append(message.encode_message(*header, payload) * draw(st.integers(1, 12)))
        if draw(st.booleans()):
            chunks.append(draw(st.binary(max_size=20)))
    return b"".join(chunks)


@st.composite
def attribute_streams(draw: st.DrawFn) -> bytes:
    builder = AttributeBuilder()
    for _ in range(draw(st.integers(0, 8))):
        attr_type = draw(st.integers(0, 0xFFFF))
        if draw(st.booleans()):
            with builder.nested(attr_type & 0x3FFF, flag=draw(st.booleans())):
                builder.add(draw(st.integers(0, 0x3FFF)), draw(st.binary(max_size=12)))
        else:
            builder.add(attr_type, draw(st.binary(max_size=24)))
    data = builder.build()
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))  # a short or broken tail
    if data and draw(st.booleans()):
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
    return data


offsets = st.one_of(st.integers(-20, 400), st.integers(0, 64))


# --- aionlmmap.message -----------------------------------------------------------------


def walks(data: bytes, draw: Any) -> list[tuple[Any, int]]:
    """The (buffer, frame length) pairs a datagram is walked with: each
    buffer type as_buffers makes, with the datagram's own length and (drawn)
    a length that cuts it short or claims bytes past it, as a lying nm_len
    would."""
    lengths = [len(data)] if draw is None else [len(data), draw.draw(st.integers(-4, len(data) + 40))]
    return [(buffer, length) for length in lengths for buffer in as_buffers(data)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(message_streams(), st.binary(max_size=200)), st.data())
@example(b"", None)
def test_parse_frame_twins_agree_on_generated_and_fuzzed_datagrams(data: bytes, draw: Any) -> None:
    for buffer, length in walks(data, draw):
        assert frame_outcome(speedups.parse_frame, buffer, length) == frame_outcome(message._pure_parse_frame, buffer, length)


def split_outcome(function: Callable[..., Any], data: Any, length: int) -> tuple[Any, ...]:
    frame = ReceivedFrame(data)
    result = outcome(function, frame, length)
    if result[0] != "ok":
        return result
    messages, controls, interrupted, error = result[1]
    assert all(m[6] is frame and type(m) is Message for m in messages + controls)
    return ("ok", [tuple(m[:6]) for m in messages], [tuple(m[:6]) for m in controls], interrupted, None if error is None else (type(error), str(error)))


@st.composite
def dump_chunks(draw: st.DrawFn) -> bytes:
    """Dump chunks as the kernel writes them: data messages (some flagged
    NLM_F_DUMP_INTR or NLM_F_MULTI), NLMSG_DONE or NLMSG_ERROR among or
    after them, sometimes a broken tail."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from([24, 24, 24, 16, 3, 2, 1]))
        flags = draw(st.sampled_from([0x2, 0x2, 0x12, 0x0, 0x10]))
        body = draw(st.binary(max_size=24)) if kind >= 16 else struct.pack("=i", -draw(st.integers(0, 3))) + bytes(16)
        data = message.encode_message(kind, flags, 7, 4242, body)
        parts.append(data + bytes(-len(data) % 4))
    chunk = b"".join(parts)
    if draw(st.booleans()):
        chunk += draw(st.binary(max_size=20))
    return chunk


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(dump_chunks(), st.binary(max_size=200)), st.data())
@example(b"", None)
def test_split_dump_chunk_twins_agree_and_split_what_parse_frame_finds(data: bytes, draw: Any) -> None:
    for buffer, length in walks(data, draw):
        compiled = split_outcome(speedups.split_dump_chunk, buffer, length)
        assert compiled == split_outcome(message._pure_split_dump_chunk, buffer, length)
        parsed = frame_outcome(message._pure_parse_frame, buffer, length)
        if parsed[0] == "ok":
            every = parsed[1]
            assert compiled[1] == [m for m in every if m[0] >= 16] and compiled[2] == [m for m in every if m[0] < 16]
            assert compiled[3] == any(m[0] >= 16 and m[1] & 0x10 for m in every) and compiled[4] == parsed[2]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(message_streams(), st.data())
def test_header_run_twins_agree_on_every_offset_and_end(data: bytes, draw: Any) -> None:
    offset = draw.draw(st.one_of(st.integers(-20, len(data) + 20), st.sampled_from([0])))
    end = draw.draw(st.one_of(st.integers(-4, len(data) + 20), st.just(len(data))))
    for buffer in as_buffers(data):
        assert outcome(speedups.header_run, buffer, offset, end) == outcome(message._pure_header_run, buffer, offset, end)


def test_header_run_twins_agree_at_every_offset_of_a_long_run() -> None:
    data = message.encode_message(24, 2, 7, 99, b"x" * 12) * 300 + message.encode_message(24, 2, 8, 99, b"y" * 12) * 5
    for offset in range(0, len(data), 4):
        assert speedups.header_run(data, offset, len(data)) == message._pure_header_run(data, offset, len(data))


# --- aionlmmap.attributes -----------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(attribute_streams(), st.binary(max_size=80)), st.data())
def test_attribute_walk_twins_agree(data: bytes, draw: Any) -> None:
    start = draw.draw(st.one_of(st.just(0), st.integers(-8, len(data) + 8)))
    end = draw.draw(st.one_of(st.none(), st.just(len(data)), st.integers(-8, len(data) + 8)))
    for buffer in as_buffers(data):
        assert outcome(speedups.parse_attributes, buffer, start, end) == outcome(attributes._pure_parse_attributes, buffer, start, end)
        assert walk_outcome(speedups.iter_attributes, buffer, start, end) == walk_outcome(attributes._pure_iter_attributes, buffer, start, end)


def test_the_attribute_walk_holds_no_buffer_between_steps() -> None:
    # The ring releases a frame's views while a consumer may be inside a
    # walk (ReceivedFrame.retire): a held export would make that fail.
    view = memoryview(bytearray(AttributeBuilder().add_u32(1, 5).add_u32(2, 6).build()))
    walk = speedups.iter_attributes(view)
    assert next(walk) == (1, 4, 8)
    view.release()
    with pytest.raises(ValueError, match="released"):
        next(walk)


# --- nfqueue --------------------------------------------------------------------------


def nfqueue_packet(packet_id: int, hook: int, queue_num: int = 0, lead: bytes = b"") -> bytes:
    header = struct.pack("=HH", 11, nfqueue.NFQA_PACKET_HDR) + struct.pack("!IHB", packet_id, 0x0800, hook) + b"\0"
    return struct.pack("!BBH", 2, 0, queue_num) + lead + header + AttributeBuilder().add(nfqueue.NFQA_PAYLOAD, b"E" * 20).build()


@settings(max_examples=300)
@given(
    st.one_of(
        st.builds(nfqueue_packet, st.integers(0, 0xFFFFFFFF), st.integers(0, 255), st.integers(0, 0xFFFF),
                  st.sampled_from([b"", AttributeBuilder().add_be32(nfqueue.NFQA_MARK, 3).build()])),
        st.binary(max_size=40),
    )
)
def test_packet_header_twins_agree(payload: bytes) -> None:
    for buffer in as_buffers(payload):
        assert outcome(speedups.decode_packet_header, buffer) == outcome(nfqueue._pure_decode_packet_header, buffer)


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 8))
def test_packet_head_reads_what_the_pure_fast_path_reads(packet_id: int, queue_num: int, our_queue: int, start: int) -> None:
    data = bytes(start) + nfqueue_packet(packet_id, 1, queue_num)
    expected_head = struct.pack("!H", our_queue) + struct.pack("=HH", 11, nfqueue.NFQA_PACKET_HDR)
    head, pid, hw_protocol, hook = nfqueue._FAST_PACKET.unpack_from(data, start)
    want = (pid, hw_protocol, hook) if head == expected_head else None
    assert speedups.packet_head(data, start, expected_head) == want


# --- real dumps ------------------------------------------------------------------------


@pytest.mark.integration
def test_twins_agree_on_real_route_link_and_address_dumps(netns: str) -> None:
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "link", "set", "d1", "up")
    ip(netns, "link", "set", "d0", "up", "mtu", "1400")
    ip(netns, "addr", "add", "10.7.0.1/16", "dev", "d0")
    ip(netns, "-6", "addr", "add", "fd00:7::1/64", "dev", "d0", "nodad")
    batch = [f"route add 10.8.{i // 250}.{i % 250}/32 dev d0" for i in range(300)]
    batch += [f"route add 10.9.{i}.0/24 via 10.7.0.{2 + i % 3} dev d0 metric {i % 5} proto static mtu 1300" for i in range(200)]
    batch += ["route add 10.10.0.0/16 nexthop via 10.7.0.2 dev d0 weight 1 nexthop via 10.7.0.3 dev d0 weight 2"]
    batch += [f"route add fd00:8:{i:x}::/48 via fd00:7::2 dev d0 metric 9" for i in range(200)]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
    requests = [
        message.encode_message(26, 0x301, 1, 0, struct.pack("=BBBBBBBBI", socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)),  # RTM_GETROUTE
        message.encode_message(18, 0x301, 2, 0, bytes(16)),  # RTM_GETLINK
        message.encode_message(22, 0x301, 3, 0, bytes(8)),  # RTM_GETADDR
    ]
    seen = 0
    for request in requests:
        for datagram in dump_datagrams(netns, request):
            assert frame_outcome(speedups.parse_frame, datagram, len(datagram)) == frame_outcome(message._pure_parse_frame, datagram, len(datagram))
            assert split_outcome(speedups.split_dump_chunk, datagram, len(datagram)) == split_outcome(message._pure_split_dump_chunk, datagram, len(datagram))
            offset = 0
            while offset < len(datagram):
                assert speedups.header_run(datagram, offset, len(datagram)) == message._pure_header_run(datagram, offset, len(datagram))
                offset += (int.from_bytes(datagram[offset : offset + 4], "little") + 3) & ~3
            for msg in message._pure_parse_frame(ReceivedFrame(datagram), len(datagram))[0]:
                body = bytes(msg.payload)
                fixed = {26: 12, 24: 12, 16: 16, 20: 8}.get(msg.type, len(body))
                assert speedups.parse_attributes(body, fixed) == attributes._pure_parse_attributes(body, fixed)
                assert list(speedups.iter_attributes(body, fixed)) == list(attributes._pure_iter_attributes(body, fixed))
                seen += 1
    assert seen > 700


# --- selection at import -----------------------------------------------------------------


def _core_in_subprocess(env_value: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "AIONLMMAP_NO_EXTENSIONS"}
    if env_value is not None:
        env["AIONLMMAP_NO_EXTENSIONS"] = env_value
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = (
        "import json, aionlmmap.message as m, aionlmmap.attributes as a, aionlmmap._extensions as e\n"
        "from aionlmmap.families import nfqueue as q, rtnl_addresses as r\n"
        "print(json.dumps({'core': e.CORE, 'parse_frame': type(m.parse_frame).__name__, "
        "'parse_attributes': type(a.parse_attributes).__name__, 'decode': type(q.decode_packet_header).__name__, "
        "'ipv6_text': type(r.ipv6_text).__name__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_the_compiled_core_is_selected_when_built() -> None:
    assert _core_in_subprocess(None) == {"core": "compiled", "parse_frame": "cython_function_or_method",
                                         "parse_attributes": "cython_function_or_method", "decode": "cython_function_or_method",
                                         "ipv6_text": "cython_function_or_method"}


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_extensions_selects_pure_python(value: str) -> None:
    assert _core_in_subprocess(value) == {"core": "pure-python", "parse_frame": "function", "parse_attributes": "function", "decode": "function",
                                          "ipv6_text": "function"}


def test_no_extensions_set_to_zero_keeps_the_compiled_core() -> None:
    assert _core_in_subprocess("0")["core"] == "compiled"


def test_aionlmmap_info_names_the_core_in_use() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), AIONLMMAP_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-m", "aionlmmap", "info"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "core: pure-python (AIONLMMAP_NO_EXTENSIONS is set)" in out.stdout
    env.pop("AIONLMMAP_NO_EXTENSIONS")
    out = subprocess.run([sys.executable, "-m", "aionlmmap", "info"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "core: compiled (aionlmmap._speedups" in out.stdout


# --- rtnl_addresses ------------------------------------------------------------------------


@st.composite
def ipv6_addresses(draw: st.DrawFn) -> bytes:
    """Addresses whose zero runs, ties and IPv4 forms exercise inet_ntop6's cases."""
    groups = draw(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x1234, 0xABCD]), min_size=8, max_size=8))
    if draw(st.booleans()):
        prefix = draw(st.sampled_from([bytes(10) + b"\xff\xff", bytes(12), bytes(10) + b"\0\x01", bytes(11) + b"\x01"]))
        return prefix + draw(st.binary(min_size=4, max_size=4))
    return b"".join(group.to_bytes(2, "big") for group in groups)


@settings(max_examples=500)
@given(st.one_of(ipv6_addresses(), st.binary(min_size=16, max_size=16)))
def test_ipv6_text_twins_agree(raw: bytes) -> None:
    from aionlmmap import address_text
    from aionlmmap.families import rtnl_addresses

    # Both keep their texts in one cache (address_text._IPV6_TEXTS): each
    # computes its own from an empty one, then the cached text is the same.
    address_text._IPV6_TEXTS.clear()
    compiled = speedups.ipv6_text(raw)
    assert address_text._IPV6_TEXTS == {raw: compiled}
    address_text._IPV6_TEXTS.clear()
    assert compiled == rtnl_addresses._pure_ipv6_text(raw)
    assert speedups.ipv6_text(raw) is address_text._IPV6_TEXTS[raw]


def test_ipv6_text_twin_hands_other_inputs_to_the_reference() -> None:
    from aionlmmap.families import rtnl_addresses

    for raw in (bytes(15), bytes(17), bytearray(16)):
        assert outcome(speedups.ipv6_text, raw) == outcome(rtnl_addresses._pure_ipv6_text, raw)


class _NoRing:
    closed = False

    def send_nowait(self, *messages: Any) -> None:
        pass


def _packet_state(queue: Any, function: Callable[..., Any], message: Any) -> tuple[Any, ...]:
    """What Queue._packet_of made of ``message``: every slot of the Packet
    (or the exception), the queue's counters and its outstanding count."""
    result = outcome(function, queue, message)
    if result[0] == "ok" and result[1] is not None:
        packet = result[1]
        assert type(packet) is nfqueue.Packet and packet._queue is queue and packet._message is message
        slots = []
        for name in nfqueue.Packet.__slots__:
            try:
                value = getattr(packet, name)
            except AttributeError:
                value = "<unset>"
            slots.append((name, "<same>" if name in ("_queue", "_message") else value))
        result = ("packet", tuple(slots))
    return result, attrs.asdict(queue.stats), len(queue._outstanding)


@settings(max_examples=300)
@given(
    st.one_of(
        st.builds(nfqueue_packet, st.integers(0, 0xFFFFFFFF), st.integers(0, 255), st.sampled_from([0, 0, 1, 0x100]),
                  st.sampled_from([b"", AttributeBuilder().add_be32(nfqueue.NFQA_MARK, 3).build()])),
        st.binary(max_size=40),
    ),
    st.sampled_from([nfqueue._TYPE_PACKET, nfqueue._TYPE_PACKET, nfqueue._TYPE_VERDICT, 2, 3]),
    st.booleans(),
)
def test_packet_of_twins_make_the_same_packet_and_counts(payload: bytes, msg_type: int, released: bool) -> None:
    data = message.encode_message(msg_type, 0, 0, 0, payload)
    frame = ReceivedFrame(memoryview(bytearray(data)))
    msg = tuple.__new__(Message, (msg_type, 0, 0, 0, 16, 16 + len(payload), frame))
    if released:
        frame.retire()
    states = []
    for function in (speedups._packet_of, nfqueue._pure_packet_of):
        queue = nfqueue.Queue(_NoRing(), 0, Message(0))
        states.append(_packet_state(queue, function, msg))
    assert states[0] == states[1]


def test_a_stale_build_means_pure_python_not_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from aionlmmap import _extensions

    monkeypatch.delenv("AIONLMMAP_NO_EXTENSIONS", raising=False)
    stale = SimpleNamespace(TWINS_VERSION=_extensions.TWINS_VERSION - 1, __file__="/old/_speedups.so")
    monkeypatch.setattr(_extensions.importlib, "import_module", lambda name, package=None: stale)
    module, reason = _extensions._load()
    assert module is None and "stale build" in reason and "pip install" in reason


class _Loop:
    """Records the flush a queue schedules (Queue._schedule_flush)."""

    def __init__(self) -> None:
        self.scheduled: list[Any] = []

    def call_soon(self, callback: Any) -> None:
        self.scheduled.append(callback.__name__)


def _accept_outcome(accept: Callable[..., Any], state: int, run_key: Any, flush_scheduled: bool, mark: int | None, payload: bytes | None,
                    subclass: bool) -> tuple[Any, ...]:
    """Everything Packet.accept touches, after one call on a packet in ``state``."""
    queue = nfqueue.Queue(_NoRing(), 0, Message(0))
    queue._loop = _Loop()  # type: ignore[assignment]
    queue._run_key = run_key
    queue._flush_scheduled = flush_scheduled
    data = message.encode_message(nfqueue._TYPE_PACKET, 0, 0, 0, nfqueue_packet(5, 1))
    msg = tuple.__new__(Message, (nfqueue._TYPE_PACKET, 0, 0, 0, 16, len(data), ReceivedFrame(memoryview(bytearray(data)))))
    packet = queue._packet_of(msg)
    assert packet is not None
    if subclass:
        packet.__class__ = type("MyPacket", (nfqueue.Packet,), {"__slots__": ()})
    if state == nfqueue._UNDECIDED_HELD:
        packet.hold()
    elif state >= nfqueue._DECIDED:
        packet.drop()
        packet._state = state
    result = outcome(lambda: accept(packet, mark=mark, payload=payload))
    slots = {name: getattr(packet, name, "<unset>") for name in ("_state", "_verdict", "_new_payload")}
    return (result, slots, msg[6].holds, [p.id for p in queue._decided_now], queue._run_key, queue._mixed, queue._flush_scheduled,
            queue._loop.scheduled, attrs.asdict(queue.stats))  # type: ignore[union-attr]


@settings(max_examples=300)
@given(st.sampled_from([nfqueue._UNDECIDED, nfqueue._UNDECIDED, nfqueue._UNDECIDED_HELD, nfqueue._DECIDED, nfqueue._SENT]),
       st.sampled_from([None, nfqueue._PLAIN_ACCEPT, nfqueue._PLAIN_DROP, (nfqueue.NF_ACCEPT, None), (nfqueue.NF_ACCEPT, 3)]),
       st.booleans(), st.sampled_from([None, None, 0, 7]), st.sampled_from([None, None, b"", b"\x45abc"]), st.booleans())
def test_accept_twins_leave_the_packet_and_the_queue_alike(state: int, run_key: Any, flush_scheduled: bool, mark: int | None,
                                                          payload: bytes | None, subclass: bool) -> None:
    compiled = _accept_outcome(speedups.packet_accept, state, run_key, flush_scheduled, mark, payload, subclass)
    reference = _accept_outcome(nfqueue._pure_accept, state, run_key, flush_scheduled, mark, payload, subclass)
    assert compiled == reference
