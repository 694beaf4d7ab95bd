"""The fast paths of route dumps, each held to exactly what the plain path
gives: routes built without attrs' frozen ``__init__`` (``_build_route`` and
the learned layouts), and RouteTexts, the JSON text of ``aionlmmap dump
routes --json`` made straight from the messages. No kernel needed."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionlmmap.attributes import AttributeBuilder
from aionlmmap.constants import NETLINK_ROUTE, NLM_F_MULTI, NLMSG_HDRLEN, RTM_GETROUTE, RTM_NEWLINK, RTM_NEWROUTE
from aionlmmap.families import rtnl_route_layout
from aionlmmap.families.rtnl_codec import RTMSG, decode_route
from aionlmmap.families.rtnl_constants import RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PREF, RTA_PRIORITY, RTA_TABLE
from aionlmmap.families.rtnl_objects import Nexthop, Route, _build_route
from aionlmmap.families.rtnl import RtnlClient
from aionlmmap.families.rtnl_route_layout import RouteDecoders, RouteTexts
from aionlmmap.message import NLMSGHDR
from aionlmmap.testing import Request, SimulatedKernel

NAMES = {index: f"eth{index}" for index in range(1, 9)}
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def compact_json(route: Route) -> str:
    return _compact(route.to_json())  # type: ignore[no-any-return]


def route_payload(
    family: int = 2,
    dst: bytes | None = b"\x0a\x00\x01\x02",
    dst_len: int = 32,
    *,
    table: int = 254,
    oif: int | None = 3,
    gateway: bytes | None = None,
    priority: int | None = None,
    pref: int | None = None,
    protocol: int = 4,
    scope: int = 0,
    route_type: int = 1,
) -> bytes:
    """An RTM_NEWROUTE payload in fib_dump_info()'s attribute order."""
    builder = AttributeBuilder().add_u32(RTA_TABLE, table)
    if dst is not None:
        builder.add(RTA_DST, dst)
    if priority is not None:
        builder.add_u32(RTA_PRIORITY, priority)
    if gateway is not None:
        builder.add(RTA_GATEWAY, gateway)
    if oif is not None:
        builder.add_u32(RTA_OIF, oif)
    if pref is not None:
        builder.add_u8(RTA_PREF, pref)
    return RTMSG.pack(family, dst_len, 0, 0, min(table, 255), protocol, scope, route_type, 0) + builder.build()


def texts_of(payloads: list[bytes], render: Callable[[Route], str] = compact_json) -> tuple[list[str], RouteTexts]:
    """What RtnlClient._route_texts does with each message."""
    texts = RouteTexts(render, NAMES, decode_route)
    out = []
    for payload in payloads:
        message = NLMSGHDR.pack(NLMSG_HDRLEN + len(payload), RTM_NEWROUTE, NLM_F_MULTI, 7, 0) + payload
        function = texts.functions.get(len(payload))
        text = function(message, 0) if function is not None else None
        out.append(text if text is not None else texts.slow(message, NLMSG_HDRLEN, len(message)))
    return out, texts


@pytest.fixture(autouse=True)
def fresh_layouts() -> None:
    rtnl_route_layout.clear()


# --- routes built without attrs' __init__ ---------------------------------------------
optional_text = st.none() | st.text(max_size=8)
optional_u32 = st.none() | st.integers(0, 2**32 - 1)
u8 = st.integers(0, 255)
route_values = st.tuples(
    st.sampled_from([2, 10]), st.integers(0, 2**32 - 1), optional_text, u8, u8, u8, u8, st.integers(0, 2**32 - 1), u8,
    optional_u32, optional_text, optional_u32, optional_text, optional_text, optional_text, u8, st.none() | u8,
    st.just(()) | st.just((Nexthop(ifindex=2, gateway="192.0.2.1"),)),
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(values=route_values)
def test_build_route_makes_the_same_route_as_the_attrs_init(values: tuple[Any, ...]) -> None:
    built = _build_route(*values)
    made = Route(*values)
    assert type(built) is Route
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert built.to_json() == made.to_json()


def test_built_routes_stay_frozen() -> None:
    route = _build_route(2, 254, "10.0.0.1", 32, 1, 4, 0, 0, 0, None, None, 3, "eth3", None, None, 0, None, ())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        route.dst = "10.0.0.2"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del route.dst  # type: ignore[misc]
    assert route.dst == "10.0.0.1"


def test_layout_routes_are_ordinary_routes() -> None:
    payload = route_payload(priority=5, gateway=bytes([192, 0, 2, 1]))
    walked = decode_route(payload, 0, len(payload), NAMES)
    fast = rtnl_route_layout.decode(payload, 0, len(payload), NAMES)
    assert type(fast) is Route and fast == walked
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert copy.copy(fast) == fast
    assert attrs.evolve(fast, priority=6) == attrs.evolve(walked, priority=6) != fast
    assert {fast: 1}[walked] == 1


# --- RouteTexts ---------------------------------------------------------------------------
#: One route of a layout: the destination and every other value the text
#: depends on, drawn from small pools so that routes often share all but the
#: destination (one template) and often differ in just one other value.
layout_route = st.tuples(
    st.sampled_from([bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([192, 168, 9, 0]), bytes([0, 0, 0, 0])]),
    st.sampled_from([32, 24, 0]),
    st.sampled_from([bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])]),
    st.sampled_from([1, 2, 9]),
    st.sampled_from([0, 5]),
    st.sampled_from([254, 255, 100, 70000]),
    st.sampled_from([3, 4, 186]),
    st.sampled_from([0, 253, 17]),
    st.sampled_from([1, 2, 6, 11]),
)


def _payloads(routes: list[tuple[Any, ...]]) -> list[bytes]:
    return [
        route_payload(dst=dst, dst_len=dst_len, gateway=gateway, oif=oif, priority=priority, table=table, protocol=protocol, scope=scope, route_type=route_type)
        for dst, dst_len, gateway, oif, priority, table, protocol, scope, route_type in routes
    ]  # fmt: skip


#: up to 40 route payloads of the layouts fib_dump_info() makes
layout_payloads = st.lists(layout_route, min_size=1, max_size=40).map(_payloads)


@settings(max_examples=200, deadline=None)
@given(payloads=layout_payloads)
def test_route_texts_equal_each_rendered_route(payloads: list[bytes]) -> None:
    texts, _ = texts_of(payloads)
    assert texts == [compact_json(decode_route(payload, 0, len(payload), NAMES)) for payload in payloads]


def test_routes_that_differ_only_by_destination_share_one_template() -> None:
    calls: list[Route] = []

    def render(route: Route) -> str:
        calls.append(route)
        return compact_json(route)

    payloads = [route_payload(dst=bytes([10, 1, index, 7])) for index in range(50)]
    texts, route_texts = texts_of(payloads, render)
    assert texts == [compact_json(decode_route(payload, 0, len(payload), NAMES)) for payload in payloads]
    # The first message takes the walk; the second teaches the template (its
    # text, then the same route with the address marker); the rest are made
    # from the template alone.
    assert len(calls) == 3
    assert texts[-1] == '{"dst":"10.1.49.7","dev":"eth3","protocol":"static","flags":[]}'
    assert list(route_texts.functions) == [len(payloads[0])]


def test_route_texts_without_a_destination_and_of_ipv6() -> None:
    default_routes = [route_payload(dst=None, dst_len=0, priority=metric) for metric in (5, 5, 7, 5)]
    ipv6 = [route_payload(family=10, dst=bytes(range(16 - index)) + bytes(index), dst_len=64, priority=1024, pref=0) for index in range(6)]
    texts, _ = texts_of(default_routes + ipv6)
    assert texts == [compact_json(decode_route(payload, 0, len(payload), NAMES)) for payload in default_routes + ipv6]
    assert texts[0] == '{"dst":"default","dev":"eth3","protocol":"static","metric":5,"flags":[]}'


def test_route_texts_take_the_walk_when_the_headers_differ() -> None:
    first = route_payload(priority=5, oif=2)
    # Same length, attributes in another order: no template can match it,
    # and the layout's decoder refuses it, so the generic walk decodes it.
    swapped = RTMSG.pack(2, 32, 0, 0, 254, 4, 0, 1, 0) + (
        AttributeBuilder().add_u32(RTA_TABLE, 254).add(RTA_DST, b"\x0a\x00\x01\x02").add_u32(RTA_OIF, 5).add_u32(RTA_PRIORITY, 2).build()
    )
    assert len(swapped) == len(first)
    texts, _ = texts_of([first, first, swapped, first])
    assert texts[2] == compact_json(decode_route(swapped, 0, len(swapped), NAMES))
    assert '"dev":"eth5"' in texts[2] and '"metric":2' in texts[2]
    assert texts[3] == texts[0]


def test_a_render_using_the_destination_otherwise_gets_no_template() -> None:
    def render(route: Route) -> str:
        return f"{route.dst}|{route.dst}|{route.dev}"

    payloads = [route_payload(dst=bytes([10, 0, 0, index])) for index in range(5)]
    texts, _ = texts_of(payloads, render)
    assert texts == [f"10.0.0.{index}|10.0.0.{index}|eth3" for index in range(5)]


def test_templates_are_bounded_per_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl_route_layout, "_MAX_TEMPLATES", 2)
    payloads = [route_payload(dst=bytes([10, 0, 0, index]), gateway=bytes([192, 0, 2, index % 7])) for index in range(40)]
    texts, route_texts = texts_of(payloads)
    assert texts == [compact_json(decode_route(payload, 0, len(payload), NAMES)) for payload in payloads]
    assert len(route_texts.functions[len(payloads[0])].__globals__["_templates"]) == 2


def _messages(payloads: list[bytes], msg_type: int = RTM_NEWROUTE) -> bytes:
    return b"".join(NLMSGHDR.pack(NLMSG_HDRLEN + len(payload), msg_type, NLM_F_MULTI, 7, 0) + payload + bytes(-len(payload) % 4) for payload in payloads)


@settings(max_examples=200, deadline=None)
@given(payloads=layout_payloads)
def test_route_decoders_walk_gives_what_the_generic_walk_gives(payloads: list[bytes]) -> None:
    data = _messages(payloads)
    expected = [decode_route(payload, 0, len(payload), NAMES) for payload in payloads]
    decoders = RouteDecoders(NAMES, decode_route)
    assert decoders.walk(data, len(data)) == expected
    assert decoders.walk(data, len(data)) == expected  # now with every template learned
    assert [route.__class__ for route in decoders.walk(data, len(data))] == [Route] * len(payloads)


def test_a_route_function_checks_the_nlmsghdr_too() -> None:
    payload = route_payload(priority=5)
    decoders = RouteDecoders(NAMES, decode_route)
    decoders.slow(_messages([payload]), NLMSG_HDRLEN, NLMSG_HDRLEN + len(payload))  # learns the layout
    function = decoders.functions[len(payload)]
    expected = decode_route(payload, 0, len(payload), NAMES)
    assert function(_messages([payload]), 0) == expected  # learns the template
    assert function(_messages([payload]), 0) == expected  # made from it
    assert function(_messages([payload], RTM_NEWLINK), 0) is None
    longer = NLMSGHDR.pack(NLMSG_HDRLEN + len(payload) + 4, RTM_NEWROUTE, NLM_F_MULTI, 7, 0) + payload + bytes(4)
    assert function(longer, 0) is None


def test_route_templates_live_per_dump_because_names_change() -> None:
    payloads = [route_payload(dst=bytes([10, 0, 0, index]), oif=2) for index in range(3)]
    data = _messages(payloads)
    first = RouteDecoders({2: "old"}, decode_route).walk(data, len(data))
    second = RouteDecoders({2: "new"}, decode_route).walk(data, len(data))
    assert [route.dev for route in first] == ["old"] * 3
    assert [route.dev for route in second] == ["new"] * 3


def _mixed_dump() -> list[tuple[int, bytes]]:
    """A route dump whose chunks mix layouts: runs of one layout, a route of
    the same length with its attributes in another order, other layouts,
    IPv6, a message of another type, and runs split across chunks."""
    same_length_swapped = RTMSG.pack(2, 32, 0, 0, 254, 4, 0, 1, 0) + (
        AttributeBuilder().add_u32(RTA_TABLE, 254).add(RTA_DST, b"\x0a\x00\x01\x02").add_u32(RTA_OIF, 5).add_u32(RTA_PRIORITY, 2).build()
    )
    messages: list[tuple[int, bytes]] = [(RTM_NEWROUTE, route_payload(dst=bytes([10, 1, index // 256, index % 256]), priority=5, oif=2)) for index in range(300)]
    messages.insert(40, (RTM_NEWROUTE, same_length_swapped))
    messages.insert(41, (RTM_NEWLINK, bytes(40)))  # not a route: skipped
    messages[100:100] = [(RTM_NEWROUTE, route_payload(dst=bytes([10, 2, 0, index]), gateway=b"\xc0\x00\x02\x01")) for index in range(20)]
    messages[150:150] = [(RTM_NEWROUTE, route_payload(family=10, dst=bytes(15) + bytes([index]), dst_len=128, priority=1024, pref=0)) for index in range(10)]
    messages.append((RTM_NEWROUTE, route_payload(dst=None, dst_len=0, oif=3)))
    return messages


async def test_route_dumps_of_mixed_layouts_give_what_the_generic_walk_gives() -> None:
    messages = _mixed_dump()

    def answer(request: Request) -> None:
        request.dump(messages)

    kernel = SimulatedKernel()
    kernel.register(NETLINK_ROUTE, RTM_GETROUTE, answer)
    async with RtnlClient(kernel.open(NETLINK_ROUTE)) as nl:
        names = await nl.names()
        expected = [decode_route(payload, 0, len(payload), names) for msg_type, payload in messages if msg_type == RTM_NEWROUTE]
        for _ in range(2):  # the first dump learns the layouts, the second uses them throughout
            routes = [route async for route in nl.routes(table="all")]
            assert routes == expected
            texts = [text async for chunk in nl._route_texts(None, "all", compact_json, 64) for text in chunk]
            assert texts == [compact_json(route) for route in expected]
    assert nl.ring.stats.frames > 3  # the dump really came in several chunks
