"""The netstate service's pure parts: the view, the change log, query parsing, SSE parsing."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service.state import (  # noqa: E402
    ALL_TABLES,
    ChangeLog,
    NetState,
    QueryError,
    encode_key,
    parse_family,
    parse_table,
)
from examples.netstate_service.sse_client import _line_end  # noqa: E402


@attrs.frozen
class Link:
    ifindex: int
    ifname: str
    mtu: int = 1500

    @property
    def key(self) -> int:
        return self.ifindex

    def to_json(self) -> dict:
        return {"ifindex": self.ifindex, "ifname": self.ifname, "mtu": self.mtu}


@attrs.frozen
class Route:
    family: int
    table: int
    dst: str

    @property
    def key(self) -> tuple:
        return (self.family, self.table, self.dst, 0, 0, 0)

    def to_json(self) -> dict:
        return {"dst": self.dst}


def test_new_link_is_a_change_and_is_served():
    state = NetState()
    assert state.apply("new", "link", Link(2, "eth0")) == ("new", "link", "2", {"ifindex": 2, "ifname": "eth0", "mtu": 1500})
    assert state.links() == [{"ifindex": 2, "ifname": "eth0", "mtu": 1500}]


def test_repeated_identical_new_is_not_a_change():
    state = NetState()
    state.apply("new", "link", Link(2, "eth0"))
    assert state.apply("new", "link", Link(2, "eth0")) is None


def test_changed_object_replaces_the_old_one():
    state = NetState()
    state.apply("new", "link", Link(2, "eth0"))
    assert state.apply("new", "link", Link(2, "eth0", mtu=9000)) is not None
    assert state.links() == [{"ifindex": 2, "ifname": "eth0", "mtu": 9000}]


def test_del_of_unknown_object_is_not_a_change():
    assert NetState().apply("del", "link", Link(5, "ghost")) is None


def test_del_removes_and_reports_the_object():
    state = NetState()
    state.apply("new", "link", Link(3, "veth0"))
    assert state.apply("del", "link", Link(3, "veth0")) == ("del", "link", "3", Link(3, "veth0").to_json())
    assert state.links() == []


def test_links_are_served_in_ifindex_order():
    state = NetState()
    for index in (7, 1, 4):
        state.apply("new", "link", Link(index, f"if{index}"))
    assert [link["ifindex"] for link in state.links()] == [1, 4, 7]


def test_unknown_kind_and_action_raise_value_error():
    with pytest.raises(ValueError, match="unknown event kind"):
        NetState().apply("new", "tunnel", Link(1, "lo"))
    with pytest.raises(ValueError, match="unknown event action"):
        NetState().apply("set", "link", Link(1, "lo"))


def test_routes_filter_by_table_and_family():
    state = NetState()
    state.apply("new", "route", Route(socket.AF_INET, 254, "10.0.0.0/8"))
    state.apply("new", "route", Route(socket.AF_INET, 255, "127.0.0.1"))
    state.apply("new", "route", Route(socket.AF_INET6, 254, "fd00::/8"))
    assert state.routes() == [{"dst": "10.0.0.0/8"}, {"dst": "fd00::/8"}]
    assert state.routes(table=255) == [{"dst": "127.0.0.1"}]
    assert len(state.routes(table=ALL_TABLES)) == 3
    assert state.routes(family=socket.AF_INET6, table=ALL_TABLES) == [{"dst": "fd00::/8"}]


@attrs.frozen
class Address:
    family: int
    ifindex: int
    local: str
    prefixlen: int
    dev: str | None = None

    @property
    def key(self) -> tuple:
        return (self.family, self.ifindex, self.local, self.prefixlen)

    def to_json(self) -> dict:
        return {"family": "inet" if self.family == socket.AF_INET else "inet6", "local": self.local, "prefixlen": self.prefixlen}


def test_addresses_are_served_under_their_link_like_ip_address_show():
    state = NetState()
    state.apply("new", "link", Link(1, "lo"))
    state.apply("new", "link", Link(2, "eth0"))
    state.apply("new", "address", Address(socket.AF_INET6, 2, "fd00::1", 64, "eth0"))
    state.apply("new", "address", Address(socket.AF_INET, 2, "10.0.0.1", 24, "eth0"))
    assert state.addresses() == [
        {"ifindex": 1, "ifname": "lo", "mtu": 1500, "addr_info": []},
        {
            "ifindex": 2,
            "ifname": "eth0",
            "mtu": 1500,
            "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}, {"family": "inet6", "local": "fd00::1", "prefixlen": 64}],
        },
    ]
    # with a family, links without such an address are left out (as ip -4 does)
    assert [link["ifname"] for link in state.addresses(family=socket.AF_INET)] == ["eth0"]
    assert state.addresses(family=socket.AF_INET)[0]["addr_info"] == [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]


def test_address_events_name_their_link():
    state = NetState()
    change = state.apply("new", "address", Address(socket.AF_INET, 3, "10.0.0.1", 24, None))
    assert change[3] == {"ifindex": 3, "dev": "if3", "family": "inet", "local": "10.0.0.1", "prefixlen": 24}
    assert state.addresses() == [{"ifindex": 3, "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]}]


@attrs.frozen
class Neighbour:
    dst: str
    state: int
    flags: int = 0
    family: int = socket.AF_INET6

    @property
    def key(self) -> tuple:
        return (self.family, 2, self.dst)

    def to_json(self) -> dict:
        return {"dst": self.dst}


def test_neighbours_hide_noarp_and_none_entries_like_ip_neigh_show():
    state = NetState()
    state.apply("new", "neighbour", Neighbour("fe80::1", state=0x02))  # REACHABLE
    state.apply("new", "neighbour", Neighbour("ff02::1", state=0x40))  # NOARP
    state.apply("new", "neighbour", Neighbour("fe80::9", state=0x00))  # NONE
    state.apply("new", "neighbour", Neighbour("fe80::8", state=0x40, flags=0x08))  # proxy
    assert [n["dst"] for n in state.neighbours()] == ["fe80::1", "fe80::8"]
    assert len(state.neighbours(every_state=True)) == 4


def test_forget_reports_a_del_for_a_known_key_only():
    state = NetState()
    state.apply("new", "link", Link(2, "eth0"))
    assert state.forget("link", "2") == ("del", "link", "2", Link(2, "eth0").to_json())
    assert state.forget("link", "2") is None


def test_snapshot_maps_collections_to_keyed_objects():
    state = NetState()
    state.apply("new", "link", Link(1, "lo"))
    snapshot = state.snapshot()
    assert snapshot["links"] == {"1": {"ifindex": 1, "ifname": "lo", "mtu": 1500}}
    assert snapshot["routes"] == {} and snapshot["addresses"] == {} and snapshot["neighbours"] == {}


def test_encode_key_is_stable_text_for_tuples_with_addresses():
    import ipaddress

    key = (2, 254, ipaddress.ip_address("10.0.0.0"), 8, 0, None)
    assert encode_key(key) == '[2,254,"10.0.0.0",8,0,null]'
    assert encode_key(5) == "5"


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("all", None), ("inet", socket.AF_INET), ("4", socket.AF_INET), ("inet6", socket.AF_INET6), ("6", socket.AF_INET6), ("IPv6", socket.AF_INET6)])
def test_parse_family_accepts_iproute2_names(value, expected):
    assert parse_family(value) == expected


@pytest.mark.parametrize("value", ["inet7", "", "bridge ", "0"])
def test_parse_family_rejects_unknown_values_naming_the_accepted_ones(value):
    with pytest.raises(QueryError, match="use one of inet, inet6, 4, 6, all"):
        parse_family(value)


@pytest.mark.parametrize(("value", "expected"), [(None, 254), ("main", 254), ("local", 255), ("default", 253), ("all", ALL_TABLES), ("100", 100), ("4294967295", 4294967295)])
def test_parse_table_accepts_names_and_numbers(value, expected):
    assert parse_table(value) == expected


@pytest.mark.parametrize("value", ["4294967296", "-1", "mian", "", "1e3", "٣"])
def test_parse_table_rejects_unknown_values(value):
    with pytest.raises(QueryError, match="unknown table"):
        parse_table(value)


def test_change_log_numbers_changes_and_serializes_once():
    log = ChangeLog(capacity=4, epoch="e")
    change = log.append("new", "link", "2", {"ifindex": 2})
    assert change.seq == 1 and log.last_event_id == "e-1"
    assert json.loads(change.data) == {"action": "new", "kind": "link", "key": "2", "obj": {"ifindex": 2}}


def test_change_log_replays_after_a_known_id():
    log = ChangeLog(capacity=4, epoch="e")
    for index in range(3):
        log.append("new", "link", str(index), {})
    assert [change.seq for change in log.since("e-1")] == [2, 3]
    assert log.since("e-3") == []


def test_change_log_refuses_ids_it_cannot_replay():
    log = ChangeLog(capacity=2, epoch="e")
    for index in range(5):
        log.append("new", "link", str(index), {})
    assert [change.seq for change in log.since("e-3")] == [4, 5]  # oldest kept is 4
    assert log.since("e-2") is None  # change 3 was evicted
    assert log.since("other-4") is None  # another process's numbering
    assert log.since("e-9") is None  # from the future
    assert log.since("garbage") is None
    assert log.since(None) is None


def test_change_log_memory_is_bounded_by_capacity():
    log = ChangeLog(capacity=8)
    for index in range(1000):
        log.append("new", "link", str(index), {})
    assert len(log) == 8


@pytest.mark.parametrize(
    ("buffer", "start", "expected"),
    [(b"ab\r\ncd", 0, (2, 4)), (b"ab\ncd", 0, (2, 3)), (b"ab\rcd", 0, (2, 3)), (b"ab\r", 0, None), (b"abc", 0, None), (b"a\nb\n", 2, (3, 4))],
)
def test_sse_line_ends_follow_the_event_stream_rules(buffer, start, expected):
    assert _line_end(bytearray(buffer), start) == expected


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(capacity=st.integers(1, 20), appended=st.integers(0, 60), seen=st.integers(0, 70))
def test_change_log_replays_exactly_the_missed_changes_or_refuses(capacity, appended, seen):
    log = ChangeLog(capacity=capacity, epoch="e")
    for index in range(appended):
        log.append("new", "link", str(index), {})
    replay = log.since(f"e-{seen}")
    if seen > appended or appended - seen > capacity:
        assert replay is None  # from the future, or some missed changes were evicted
    else:
        assert [change.seq for change in replay] == list(range(seen + 1, appended + 1))
