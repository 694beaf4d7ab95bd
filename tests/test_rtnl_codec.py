"""Pure rtnl codec: decoders, the route layout fast path, request builders,
the monitor's state tracker. No kernel needed."""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionlmmap import DecodeError
from aionlmmap.attributes import AttributeBuilder, parse_attributes
from aionlmmap.families import rtnl_codec, rtnl_route_layout
from aionlmmap.families.rtnl_codec import (
    IFINFOMSG,
    RTMSG,
    RTNEXTHOP,
    decode_address,
    decode_link,
    decode_neighbour,
    decode_route,
    decode_rule,
    format_address,
    route_dump_request,
)
from aionlmmap.families.rtnl_constants import (
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    RTA_DST,
    RTA_GATEWAY,
    RTA_MULTIPATH,
    RTA_OIF,
    RTA_PREF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_TABLE,
    VETH_INFO_PEER,
)
from aionlmmap.families.rtnl_objects import Event, Route
from aionlmmap.families.rtnl.route_values import USER_HZ
from aionlmmap.families.rtnl_requests import (
    address_payload,
    link_add_payload,
    link_set_payload,
    neighbour_payload,
    parse_prefix,
    route_payload,
    rule_payload,
)
from aionlmmap.families.rtnl_state import StateTracker

PURE_MODULES = ["rtnl_addresses", "rtnl_constants", "rtnl_objects", "rtnl_codec", "rtnl_requests", "rtnl_state", "rtnl_route_layout",
                "rtnl_route_values", "rtnl_link_values", "rtnl_nexthops"]  # fmt: skip


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_neither_asyncio_nor_socket(module: str) -> None:
    path = pathlib.Path(importlib.import_module(f"aionlmmap.families.{module}").__file__)  # old path, resolves to rtnl/<name>.py
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket"}


def route_message(family: int = 2, dst: bytes | None = b"\x0a\x00\x01\x02", dst_len: int = 32, **attributes: object) -> bytes:
    builder = AttributeBuilder().add_u32(RTA_TABLE, int(attributes.get("table", 254)))  # type: ignore[call-overload]
    if dst is not None:
        builder.add(RTA_DST, dst)
    for name, attr_type in (("priority", RTA_PRIORITY), ("oif", RTA_OIF)):
        if name in attributes:
            builder.add_u32(attr_type, attributes[name])  # type: ignore[arg-type]
    for name, attr_type in (("gateway", RTA_GATEWAY), ("prefsrc", RTA_PREFSRC)):
        if name in attributes:
            builder.add(attr_type, attributes[name])  # type: ignore[arg-type]
    if "pref" in attributes:
        builder.add_u8(RTA_PREF, attributes["pref"])  # type: ignore[arg-type]
    header = RTMSG.pack(family, dst_len, 0, 0, 254, int(attributes.get("protocol", 4)), int(attributes.get("scope", 0)), int(attributes.get("type", 1)), 0)  # type: ignore[call-overload]
    return header + builder.build()


def test_decode_route_reads_every_supported_attribute() -> None:
    payload = route_message(dst=bytes([192, 0, 2, 0]), dst_len=24, priority=50, oif=3, gateway=bytes([192, 0, 2, 1]), prefsrc=bytes([192, 0, 2, 9]))
    route = decode_route(payload, 0, len(payload), {3: "veth0"})
    assert (route.dst, route.dst_len, route.priority, route.gateway, route.dev, route.prefsrc) == ("192.0.2.0", 24, 50, "192.0.2.1", "veth0", "192.0.2.9")
    assert route.to_json() == {"dst": "192.0.2.0/24", "gateway": "192.0.2.1", "dev": "veth0", "protocol": "static", "prefsrc": "192.0.2.9", "metric": 50, "flags": []}


def test_route_json_follows_ip_conventions() -> None:
    route = Route(family=2, table=255, dst="127.0.0.1", dst_len=32, type=2, protocol=2, scope=254, oif=1, dev="lo", prefsrc="127.0.0.1")
    assert route.to_json() == {"type": "local", "dst": "127.0.0.1", "dev": "lo", "table": "local", "protocol": "kernel", "scope": "host", "prefsrc": "127.0.0.1", "flags": []}
    assert Route(family=10, table=254, dst=None, dst_len=0, priority=1024, pref=0).to_json() == {"dst": "default", "metric": 1024, "flags": [], "pref": "medium"}


def test_decode_route_multipath() -> None:
    hop1 = AttributeBuilder().add(RTA_GATEWAY, bytes([192, 0, 2, 3])).build()
    hop2 = AttributeBuilder().add(RTA_GATEWAY, bytes([192, 0, 2, 4])).build()
    nexthops = RTNEXTHOP.pack(8 + len(hop1), 0, 0, 3) + hop1 + RTNEXTHOP.pack(8 + len(hop2), 0, 1, 3) + hop2
    payload = RTMSG.pack(2, 16, 0, 0, 254, 3, 0, 1, 0) + AttributeBuilder().add_u32(RTA_TABLE, 254).add(RTA_DST, bytes([10, 7, 0, 0])).add(RTA_MULTIPATH, nexthops).build()
    route = decode_route(payload, 0, len(payload), {3: "v0"})
    assert route.to_json()["nexthops"] == [
        {"gateway": "192.0.2.3", "dev": "v0", "weight": 1, "flags": []},
        {"gateway": "192.0.2.4", "dev": "v0", "weight": 2, "flags": []},
    ]


def metrics_blob(**members: int | bytes) -> bytes:
    builder = AttributeBuilder()
    for name, value in members.items():
        number = {"lock": 1, "mtu": 2, "window": 3, "rtt": 4, "rttvar": 5, "hoplimit": 10, "features": 12, "congctl": 16, "initcwnd": 11}[name]
        builder.add(number, value) if isinstance(value, bytes) else builder.add_u32(number, value)
    return builder.build()


CACHEINFO = struct.Struct("=IIiIIIII")
pure_walk = rtnl_codec._pure_decode_route


def test_route_metrics_are_shown_as_ip_shows_them() -> None:
    """print_rta_metrics(): by RTAX number, rtt/8, rttvar/4, ECN as "ecn",
    the congestion algorithm as "congestion", hoplimit -1 left out, no lock."""
    blob = metrics_blob(lock=1 << 2, congctl=b"reno\0", features=1, rtt=160, mtu=1400, rttvar=40, hoplimit=0xFFFFFFFF, initcwnd=10)
    payload = route_message(oif=2) + AttributeBuilder().add(8, blob).build()  # RTA_METRICS
    route = decode_route(payload, 0, len(payload), {2: "d0"})
    assert route.metrics == (("mtu", 1400), ("rtt", 20), ("rttvar", 10), ("initcwnd", 10), ("ecn", None), ("congestion", "reno"))
    assert route.to_json()["metrics"] == [{"mtu": 1400, "rtt": 20, "rttvar": 10, "initcwnd": 10, "ecn": None, "congestion": "reno"}]


def test_routes_with_metrics_and_cacheinfo_stay_on_the_layout_fast_path() -> None:
    """RTA_METRICS and RTA_CACHEINFO (every IPv6 route sends it) are read
    by the learned layout, not skipped: the fast path must equal the walk."""
    for expires in (0, 30000, -250):
        rtnl_route_layout.clear()
        # rt6_fill_node() of a FIB route: no dst, so clntref, lastuse and used are 0
        cacheinfo = CACHEINFO.pack(0, 0, expires, 0, 0, 0, 0, 0)
        payload = route_message(family=10, dst=bytes(16), dst_len=64, oif=2, pref=0) + AttributeBuilder().add(12, cacheinfo).add(8, metrics_blob(mtu=1300)).build()
        walked = decode_route(payload, 0, len(payload), {2: "d0"})
        fast = rtnl_route_layout.decode(payload, 0, len(payload), {2: "d0"})
        assert fast is not None and fast == walked
        assert walked.expires == (None if expires == 0 else int(expires / 100))  # C division: toward zero
        assert list(walked.to_json()) == ["dst", "dev", "protocol", "flags"] + (["expires"] if expires else []) + ["metrics", "pref"]
        assert walked.to_json(stats=True) == walked.to_json()
        # a cached route's counters (ip -s: users, used, age): the layout
        # learned from a FIB route declines it, the walk keeps them
        cached = bytearray(payload)
        cacheinfo_at = payload.index(struct.pack("=HH", 4 + CACHEINFO.size, 12) + cacheinfo) + 4
        cached[cacheinfo_at : cacheinfo_at + CACHEINFO.size] = CACHEINFO.pack(3, 250, expires, 0, 7, 0, 0, 0)
        assert rtnl_route_layout.decode(cached, 0, len(cached), {2: "d0"}) is None
        route = decode_route(cached, 0, len(cached), {2: "d0"})
        assert (route.extra.users, route.extra.used, route.extra.age) == (3, 7, 250 // USER_HZ)
        assert list(route.to_json(stats=True))[-5:] == ["users", "used", "age", "metrics", "pref"] and "users" not in route.to_json()
        assert route == walked  # counters take no part in equality


def test_layouts_send_attributes_they_do_not_read_to_the_walk() -> None:
    """A layout used to skip attributes it did not know (how RTA_METRICS
    was lost): now any such attribute (RTA_FLOW here) keeps the route on
    the generic walk, which decodes it."""
    rtnl_route_layout.clear()
    payload = route_message(oif=2) + AttributeBuilder().add_u32(11, 3 << 16 | 4).build()  # RTA_FLOW
    route = decode_route(payload, 0, len(payload), {2: "d0"})
    assert len(payload) in rtnl_route_layout._layouts and rtnl_route_layout.decode(payload, 0, len(payload), None) is None
    assert route.to_json()["flow"] == {"from": "3", "to": "4"}


def test_ipv6_multipath_prints_pref_before_nexthops() -> None:
    hop = AttributeBuilder().add(RTA_GATEWAY, bytes.fromhex("20010db8000000000000000000000002")).build()
    payload = route_message(family=10, dst=bytes(16), dst_len=0, pref=1) + AttributeBuilder().add(RTA_MULTIPATH, RTNEXTHOP.pack(8 + len(hop), 0, 4, 3) + hop).build()
    route = decode_route(payload, 0, len(payload), {3: "v0"})
    assert list(route.to_json())[-2:] == ["pref", "nexthops"]
    assert route.to_json()["nexthops"] == [{"gateway": "2001:db8::2", "dev": "v0", "weight": 5, "flags": []}]


def test_encap_ip_route_keeps_both_dst_keys_in_its_items() -> None:
    """lwt_print_encap() prints the tunnel's "dst" after the route's own:
    to_json_items() keeps both (the CLI writes them), to_json() the last
    value at the first place, as json.loads() does with ip's output."""
    encap = AttributeBuilder().add(1, (5).to_bytes(8, "big")).add(2, bytes([198, 51, 100, 9])).add(3, bytes(4)).add_u8(4, 64).add_u8(5, 0).build()
    payload = route_message(dst=bytes([10, 0, 0, 0]), dst_len=8, oif=2) + AttributeBuilder().add_u16(21, 2).add(22, encap).build()
    route = decode_route(payload, 0, len(payload), {2: "d0"})
    assert route.to_json_items() == [("dst", "10.0.0.0/8"), ("encap", "ip"), ("id", 5), ("src", "0.0.0.0"), ("dst", "198.51.100.9"),
                                     ("ttl", 64), ("tos", 0), ("dev", "d0"), ("protocol", "static"), ("flags", [])]  # fmt: skip
    assert route.to_json() == json.loads(json.dumps(dict(route.to_json_items())))


addresses4 = st.binary(min_size=4, max_size=4)
addresses6 = st.binary(min_size=16, max_size=16)


@settings(max_examples=200, deadline=None)
@given(
    family=st.sampled_from([2, 10]),
    data=st.data(),
    extras=st.fixed_dictionaries(
        {},
        optional={"priority": st.integers(0, 2**32 - 1), "oif": st.integers(1, 50), "pref": st.integers(0, 3), "table": st.integers(1, 2**32 - 1), "type": st.integers(1, 11)},
    ),
    with_gateway=st.booleans(),
    with_dst=st.booleans(),
)
def test_layout_fast_path_decodes_exactly_like_the_walk(family: int, data: st.DataObject, extras: dict[str, int], with_gateway: bool, with_dst: bool) -> None:
    address = addresses4 if family == 2 else addresses6
    attributes: dict[str, object] = dict(extras)
    if with_gateway:
        attributes["gateway"] = data.draw(address)
    dst = data.draw(address) if with_dst else None
    payload = route_message(family=family, dst=dst, dst_len=data.draw(st.integers(0, 32 if family == 2 else 128)), **attributes)
    names = {index: f"if{index}x" for index in range(1, 51)}
    rtnl_route_layout.clear()
    walked = decode_route(payload, 0, len(payload), names)  # generic walk, learns the layout
    assert rtnl_route_layout._layouts.get(len(payload)) is not None
    fast = rtnl_route_layout.decode(payload, 0, len(payload), names)
    assert fast is not None and fast == walked
    assert fast.to_json() == walked.to_json()


def test_layout_is_not_trusted_when_a_header_differs() -> None:
    # the reference decoder learns layouts (the compiled one keeps the first per length)
    rtnl_route_layout.clear()
    first = route_message(priority=5, oif=2)
    pure_walk(first, 0, len(first), {})
    # Same length, different attribute order: the header check must reject the layout.
    swapped = bytearray(first)
    builder = AttributeBuilder().add_u32(RTA_TABLE, 254).add(RTA_DST, b"\x0a\x00\x01\x02").add_u32(RTA_OIF, 5).add_u32(RTA_PRIORITY, 2)
    swapped[12:] = builder.build()
    assert rtnl_route_layout.decode(bytes(swapped), 0, len(swapped), {}) is None
    route = pure_walk(bytes(swapped), 0, len(swapped), {})
    assert (route.oif, route.priority) == (5, 2)
    # ... and the walk learned the second layout of that length: both decode
    # by layout now, each only its own kind (issue 16: a local-table route
    # and a metric-0 static route often share a length)
    assert rtnl_route_layout.decode(bytes(swapped), 0, len(swapped), {}) == route
    assert rtnl_route_layout.decode(first, 0, len(first), {}) == pure_walk(first, 0, len(first), {})
    assert len(rtnl_route_layout._decoders[len(first)]) == 2


def test_a_length_keeps_a_bounded_number_of_layouts() -> None:
    """Every order of four u32 attributes has one length: the length keeps
    _MAX_VARIANTS layouts, then stops learning, and every route still
    decodes as the walk decodes it."""
    rtnl_route_layout.clear()
    orders = [(RTA_TABLE, RTA_OIF, RTA_PRIORITY, RTA_DST), (RTA_OIF, RTA_TABLE, RTA_PRIORITY, RTA_DST), (RTA_PRIORITY, RTA_OIF, RTA_TABLE, RTA_DST),
              (RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_TABLE), (RTA_DST, RTA_TABLE, RTA_PRIORITY, RTA_OIF), (RTA_OIF, RTA_DST, RTA_PRIORITY, RTA_TABLE)]  # fmt: skip
    payloads = []
    for index, order in enumerate(orders):
        builder = AttributeBuilder()
        for attr_type in order:
            if attr_type == RTA_DST:
                builder.add(attr_type, bytes([10, 0, 0, index]))
            else:
                builder.add_u32(attr_type, 100 + index)
        payloads.append(route_message(family=2, dst_len=32)[:12] + builder.build())
    assert len({len(payload) for payload in payloads}) == 1
    walked = [pure_walk(payload, 0, len(payload), {}) for payload in payloads]
    assert rtnl_route_layout.is_known(len(payloads[0])) and len(rtnl_route_layout._decoders[len(payloads[0])]) == rtnl_route_layout._MAX_VARIANTS
    for payload, route in zip(payloads, walked):
        assert pure_walk(payload, 0, len(payload), {}) == route and route.priority == route.table
    assert [rtnl_route_layout.decode(payload, 0, len(payload), {}) is not None for payload in payloads] == [True] * 4 + [False] * 2


@pytest.mark.parametrize(
    "payload",
    [
        RTMSG.pack(2, 32, 0, 0, 254, 3, 0, 1, 0) + struct.pack("=HH", 200, RTA_DST) + b"\x0a\0\0\1",  # nla_len past the end
        RTMSG.pack(2, 32, 0, 0, 254, 3, 0, 1, 0) + struct.pack("=HH", 2, RTA_DST) + b"\0\0\0\0",  # nla_len below the header
        RTMSG.pack(2, 32, 0, 0, 254, 3, 0, 1, 0) + struct.pack("=HH", 7, RTA_DST) + b"\x0a\0\0\0",  # 3-byte address
        b"\x02\x20",  # shorter than rtmsg
    ],
)
def test_malformed_route_raises_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        pure_walk(payload, 0, len(payload), {})


def test_malformed_link_and_address_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_link(b"\0" * 8, 0, 8)
    with pytest.raises(DecodeError):
        decode_address(b"\x02\x18\0\0\1\0\0\0", 0, 8)  # no IFA_LOCAL / IFA_ADDRESS
    with pytest.raises(DecodeError):
        decode_neighbour(b"\0" * 4, 0, 4)
    with pytest.raises(DecodeError):
        decode_rule(b"\0" * 4, 0, 4)


def test_format_address_matches_inet_ntop_conventions() -> None:
    assert format_address(bytes([10, 0, 0, 1]), 0, 4) == "10.0.0.1"
    assert format_address(bytes(15) + b"\1", 0, 16) == "::1"
    assert format_address(bytes(10) + b"\xff\xff\x01\x02\x03\x04", 0, 16) == "::ffff:1.2.3.4"
    assert format_address(bytes.fromhex("20010db8000000000000000000000001"), 0, 16) == "2001:db8::1"
    with pytest.raises(DecodeError):
        format_address(b"\1\2\3", 0, 3)


# Addresses rich in zero groups, and the IPv4-mapped/-compatible prefixes,
# where inet_ntop's dotted-quad forms and RFC 5952's zero runs decide.
_ipv6_groups = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0xFE80, 0x2001]), min_size=8, max_size=8)


@settings(max_examples=500)
@given(st.one_of(_ipv6_groups.map(lambda groups: struct.pack("!8H", *groups)), st.binary(min_size=4, max_size=4).map(lambda tail: bytes(12) + tail), st.binary(min_size=16, max_size=16)))
def test_ipv6_addresses_are_written_as_inet_ntop_writes_them(raw: bytes) -> None:
    assert format_address(raw, 0, 16) == socket.inet_ntop(socket.AF_INET6, raw)


def test_route_dump_request_carries_rta_table_for_kernel_filtering() -> None:
    payload = route_dump_request(2, 1000)
    assert RTMSG.unpack_from(payload)[4] == 0  # does not fit rtm_table; RTA_TABLE has it
    assert struct.unpack_from("=I", payload, parse_attributes(payload, 12)[RTA_TABLE][0])[0] == 1000
    assert len(route_dump_request(0, None)) == RTMSG.size


# --- request builders: ValueError before sending ---------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: route_payload("10.0.0.1/8"), "host bits"),
        (lambda: route_payload("10.0.0.0/33"), "bad prefix"),
        (lambda: route_payload("not-a-prefix"), "bad prefix"),
        (lambda: route_payload("10.0.0.0/8", gateway="2001:db8::1"), "IPv6"),
        (lambda: route_payload("10.0.0.0/8", metric=2**32), "out of range"),
        (lambda: route_payload("10.0.0.0/8", table=0), "out of range"),
        (lambda: route_payload("10.0.0.0/8", table="nosuchtable"), "table"),
        (lambda: route_payload("10.0.0.0/8", type="bogus"), "route type"),
        (lambda: route_payload("10.0.0.0/8", multipath=[{"gateway": "10.1.1.1", "weight": 0}]), "weight"),
        (lambda: route_payload("default"), "family"),
        (lambda: link_add_payload("x" * 16, "bridge"), "IFNAMSIZ"),
        (lambda: link_add_payload("bad name", "bridge"), "not valid"),
        (lambda: link_add_payload("v0", "veth"), "peer"),
        (lambda: link_add_payload("v0", "vlan", link=2, vlan_id=4095), "out of range"),
        (lambda: link_add_payload("v0", "vlan"), "link="),
        (lambda: link_add_payload("v0", "vxlan", vni=1 << 24), "out of range"),
        (lambda: link_add_payload("v0", "macvlan", link=2, mode="weird"), "macvlan mode"),
        (lambda: link_add_payload("v0", "bridge", mtu=10), "out of range"),
        (lambda: link_set_payload(2, address="zz:00:00:00:00:00"), "link-layer"),
        (lambda: link_set_payload(2), "at least one change"),
        (lambda: address_payload(2, "300.1.1.1/24"), "bad prefix"),
        (lambda: address_payload(2, "2001:db8::1/64", broadcast="2001:db8::ff"), "IPv4 only"),
        (lambda: neighbour_payload(2, "192.0.2.1", lladdr="02:00"), "link-layer"),
        (lambda: neighbour_payload(2, "192.0.2.1", state="sleepy"), "state"),
        (lambda: rule_payload(priority=-1), "out of range"),
        (lambda: rule_payload(src="10.0.0.0/8", dst="2001:db8::/32"), "IPv6"),
        (lambda: rule_payload(action="explode"), "rule action"),
    ],
)
def test_builders_reject_bad_input_with_value_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


def test_parse_prefix_default_and_interface_forms() -> None:
    assert parse_prefix("default", 2) == (2, bytes(4), 0)
    assert parse_prefix("192.0.2.7/24", strict=False) == (2, bytes([192, 0, 2, 7]), 24)


def test_veth_payload_nests_the_peer_ifinfomsg() -> None:
    payload = link_add_payload("v0", "veth", peer="v1")
    info = parse_attributes(payload, IFINFOMSG.size)[IFLA_LINKINFO]
    linkinfo = parse_attributes(payload, *info)
    assert bytes(payload[linkinfo[IFLA_INFO_KIND][0] : linkinfo[IFLA_INFO_KIND][1]]) == b"veth\0"
    data = parse_attributes(payload, *linkinfo[IFLA_INFO_DATA])
    peer_start, peer_end = data[VETH_INFO_PEER]
    peer_attributes = parse_attributes(payload, peer_start + IFINFOMSG.size, peer_end)
    assert bytes(payload[peer_attributes[3][0] : peer_attributes[3][1]]) == b"v1\0"


def test_vlan_payload_carries_id_and_protocol() -> None:
    payload = link_add_payload("v0.5", "vlan", link=2, vlan_id=5)
    linkinfo = parse_attributes(payload, *parse_attributes(payload, IFINFOMSG.size)[IFLA_LINKINFO])
    data = parse_attributes(payload, *linkinfo[IFLA_INFO_DATA])
    assert struct.unpack_from("=H", payload, data[1][0])[0] == 5
    assert struct.unpack_from(">H", payload, data[5][0])[0] == 0x8100


# --- the monitor's state tracker ----------------------------------------------------
def make_route(dst: str, metric: int = 0) -> Route:
    return Route(family=2, table=254, dst=dst, dst_len=32, priority=metric, oif=2, dev="d0")


def test_routes_that_differ_only_by_device_are_distinct() -> None:
    # IPv6 keeps one fe80::/64 per interface at the same metric.
    first = Route(family=10, table=254, dst="fe80::", dst_len=64, priority=256, oif=2, dev="x0")
    second = Route(family=10, table=254, dst="fe80::", dst_len=64, priority=256, oif=3, dev="x1")
    tracker = StateTracker(["route"])
    assert len(tracker.replace("route", [first, second])) == 2
    assert tracker.apply("del", "route", second) == Event("del", "route", second)


def test_tracker_drops_notifications_that_change_nothing() -> None:
    tracker = StateTracker(["route"])
    assert tracker.replace("route", [make_route("10.0.0.1")]) == [Event("new", "route", make_route("10.0.0.1"))]
    assert tracker.apply("new", "route", make_route("10.0.0.1")) is None
    assert tracker.apply("del", "route", make_route("10.0.0.9")) is None
    assert tracker.apply("del", "route", make_route("10.0.0.1")) == Event("del", "route", make_route("10.0.0.1"))


def test_tracker_replace_yields_exactly_the_differences() -> None:
    tracker = StateTracker(["route"])
    tracker.replace("route", [make_route("10.0.0.1"), make_route("10.0.0.2"), make_route("10.0.0.3")])
    # RTNH_F_LINKDOWN is state, not identity: the same route, changed.
    changed = Route(family=2, table=254, dst="10.0.0.3", dst_len=32, priority=0, oif=2, dev="d0", flags=16)
    events = tracker.replace("route", [make_route("10.0.0.1"), changed, make_route("10.0.0.4")])
    assert events == [Event("del", "route", make_route("10.0.0.2")), Event("new", "route", changed), Event("new", "route", make_route("10.0.0.4"))]


@pytest.mark.parametrize("raw", [b"", b"\x02"])
def test_a_short_rta_via_is_a_decode_error(raw: bytes) -> None:
    # Found by test_fuzz_decoders: struct.error escaped from an RTA_VIA shorter
    # than struct rtvia's u16 family.
    from aionlmmap.errors import DecodeError
    from aionlmmap.families.rtnl.route_values import via

    with pytest.raises(DecodeError, match="RTA_VIA"):
        via(raw)
