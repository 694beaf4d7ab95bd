"""rtnl against the real kernel in throwaway namespaces: dumps compared with
`ip -j` key by key, every change checked with `ip`, errors."""

from __future__ import annotations

import errno
import json

import pytest

import aionlmmap
from aionlmmap import rtnl
from conftest import ip, run
from rtnl_helpers import LINK_KEYS, NEIGH_KEYS, ROUTE_KEYS, RULE_KEYS, build_random_config, ip_json, only, quiet_ipv6

SEEDS = [1, 7, 42]


def test_rtnl_alias_module_is_the_family_module() -> None:
    from aionlmmap.families import rtnl as family_module

    assert rtnl is family_module


@pytest.mark.parametrize("seed", SEEDS)
async def test_dumps_equal_ip_json_for_random_configs(netns: str, seed: int) -> None:
    build_random_config(netns, seed)
    async with rtnl.open(netns=netns) as nl:
        links = [link.to_json() async for link in nl.links()]
        routes = [route.to_json() async for route in nl.routes(table="all")]
        main4 = [route.to_json() async for route in nl.routes(family=4)]
        table100 = [route.to_json() async for route in nl.routes(family=6, table=100)]
        addresses = [address async for address in nl.addresses()]
        neighbours = [neigh.to_json() async for neigh in nl.neighbours() if "NOARP" not in neigh.state_names]
        rules4 = [rule.to_json() async for rule in nl.rules(4)]
        rules6 = [rule.to_json() async for rule in nl.rules(6)]
    assert only(links, LINK_KEYS) == only(ip_json(netns, "link", "show"), LINK_KEYS)
    assert only(routes, ROUTE_KEYS) == only(ip_json(netns, "route", "show", "table", "all"), ROUTE_KEYS)
    assert only(main4, ROUTE_KEYS) == only(ip_json(netns, "route", "show"), ROUTE_KEYS)
    # `ip route show table N` leaves out the table it was asked for.
    assert only([{k: v for k, v in r.items() if k != "table"} for r in table100], ROUTE_KEYS) == only(ip_json(netns, "-6", "route", "show", "table", "100"), ROUTE_KEYS)
    for group in ip_json(netns, "address", "show"):
        ours = [address.to_json() for address in addresses if address.ifindex == group["ifindex"]]
        assert ours == group["addr_info"], group["ifname"]
    assert only(neighbours, NEIGH_KEYS) == only(ip_json(netns, "neigh", "show"), NEIGH_KEYS)
    assert only(rules4, RULE_KEYS) == only(ip_json(netns, "rule", "show"), RULE_KEYS)
    assert only(rules6, RULE_KEYS) == only(ip_json(netns, "-6", "rule", "show"), RULE_KEYS)


async def test_kernel_filters_dumps(netns: str) -> None:
    build_random_config(netns, 3)
    async with rtnl.open(netns=netns) as nl:
        assert {route.table async for route in nl.routes(table="all")} >= {254, 255}
        assert {route.table async for route in nl.routes(table="local")} == {255}
        assert {route.family async for route in nl.routes(family=6, table="all")} == {10}
        assert [route async for route in nl.routes(table=4242)] == []  # no such table: empty, not an error
        assert {address.dev async for address in nl.addresses(dev="br0")} == {"br0"}
        assert {address.family async for address in nl.addresses(family=6)} == {10}
        assert {link.ifname async for link in nl.links(kind="veth")} == {"va0", "vb0"}
        assert {link.ifname async for link in nl.links(master="br0")} == {"vb0"}
        assert {neigh.dev async for neigh in nl.neighbours(dev="va0")} == {"va0"}


async def test_get_link_by_name_and_index(netns: str) -> None:
    async with rtnl.open(netns=netns) as nl:
        lo = await nl.get_link("lo")
        assert lo.ifindex == 1 and (await nl.get_link(1)).ifname == "lo" and lo.is_up
        with pytest.raises(ValueError, match="no interface 'nope'"):
            await nl.get_link("nope")


async def test_link_add_set_delete_are_seen_by_ip(netns: str) -> None:
    other = netns + "-x"
    run("ip", "netns", "add", other)
    try:
        async with rtnl.open(netns=netns) as nl:
            await nl.link_add("p0", "veth", peer="p1")
            await nl.link_add("br9", "bridge", mtu=1400)
            await nl.link_add("mv9", "macvlan", link="p0", mode="bridge")
            await nl.link_add("vx9", "vxlan", vni=77, local="10.1.1.1", port=4790)
            link = await nl.link_add("ifb9", "ifb", up=True)
            assert link.is_up
            kinds = {entry["ifname"]: entry.get("linkinfo", {}).get("info_kind") for entry in ip_json(netns, "-d", "link", "show")}
            assert kinds | {"lo": None} == {"lo": None, "p0": "veth", "p1": "veth", "br9": "bridge", "mv9": "macvlan", "vx9": "vxlan", "ifb9": "ifb"}
            vxlan = ip_json(netns, "-d", "link", "show", "vx9")[0]["linkinfo"]["info_data"]
            assert (vxlan["id"], vxlan["local"], vxlan["port"]) == (77, "10.1.1.1", 4790)
            assert ip_json(netns, "link", "show", "br9")[0]["mtu"] == 1400

            await nl.link_add("q0", "veth", peer="q1")
            await nl.link_set("q0", up=True, mtu=1300, master="br9", address="02:11:22:33:44:55")
            q0 = ip_json(netns, "link", "show", "q0")[0]
            assert ("UP" in q0["flags"], q0["mtu"], q0["master"], q0["address"]) == (True, 1300, "br9", "02:11:22:33:44:55")
            await nl.link_set("q0", master=0, up=False, name="q0new")
            q0 = ip_json(netns, "link", "show", "q0new")[0]
            assert "master" not in q0 and "UP" not in q0["flags"]
            await nl.link_set("q1", netns=other)
            assert [entry["ifname"] for entry in ip_json(other, "link", "show")] == ["lo", "q1"]

            await nl.link_delete("q0new")
            await nl.link_delete("p0")
            await nl.link_delete("br9")
            names = {entry["ifname"] for entry in ip_json(netns, "link", "show")}
            assert names == {"lo", "vx9", "ifb9"}  # the macvlan went with its parent, p1 with p0
    finally:
        run("ip", "netns", "del", other, check=False)


async def test_address_route_neighbour_rule_changes_are_seen_by_ip(netns: str) -> None:
    quiet_ipv6(netns)
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "link", "set", "d0", "up")
    async with rtnl.open(netns=netns) as nl:
        await nl.address_add("d0", "192.0.2.1/24", broadcast="192.0.2.255", label="d0:a")
        await nl.address_add("d0", "2001:db8::1/64")
        infos = ip_json(netns, "addr", "show", "d0")[0]["addr_info"]
        assert {(info["local"], info["prefixlen"]) for info in infos} >= {("192.0.2.1", 24), ("2001:db8::1", 64)}
        assert [info["label"] for info in infos if info["family"] == "inet"] == ["d0:a"]

        await nl.route_add("198.51.100.0/24", gateway="192.0.2.254", metric=20)
        await nl.route_add("203.0.113.0/24", dev="d0", table=100, protocol="static")
        await nl.route_add("10.10.0.0/16", type="blackhole", table="100")
        await nl.route_add("10.20.0.0/16", multipath=[{"gateway": "192.0.2.5", "weight": 2}, {"gateway": "192.0.2.6", "dev": "d0"}])
        await nl.route_add("default", family=6, gateway="2001:db8::fe")
        await nl.route_add("10.30.0.0/16", dev="d0", scope="link")
        routes = ip_json(netns, "route", "show", "table", "all")
        by_dst = {(route["dst"], route.get("table", "main")): route for route in routes}
        assert by_dst[("198.51.100.0/24", "main")]["gateway"] == "192.0.2.254" and by_dst[("198.51.100.0/24", "main")]["metric"] == 20
        assert by_dst[("203.0.113.0/24", "100")]["protocol"] == "static" and by_dst[("203.0.113.0/24", "100")]["scope"] == "link"
        assert by_dst[("10.10.0.0/16", "100")]["type"] == "blackhole"
        assert [(hop["gateway"], hop["weight"]) for hop in by_dst[("10.20.0.0/16", "main")]["nexthops"]] == [("192.0.2.5", 2), ("192.0.2.6", 1)]
        assert by_dst[("default", "main")]["gateway"] == "2001:db8::fe"

        await nl.route_replace("198.51.100.0/24", gateway="192.0.2.253", metric=20)
        assert ip_json(netns, "route", "show", "198.51.100.0/24")[0]["gateway"] == "192.0.2.253"
        await nl.route_delete("198.51.100.0/24", metric=20)
        await nl.route_delete("203.0.113.0/24", table=100)
        remaining = {route["dst"] for route in ip_json(netns, "route", "show", "table", "all")}
        assert "198.51.100.0/24" not in remaining and "203.0.113.0/24" not in remaining

        await nl.neighbour_add("d0", "192.0.2.77", lladdr="02:00:00:00:00:77")
        await nl.neighbour_add("d0", "2001:db8::77", lladdr="02:00:00:00:00:78", state="stale")
        neighbours = {entry["dst"]: entry for entry in ip_json(netns, "neigh", "show")}
        assert neighbours["192.0.2.77"]["state"] == ["PERMANENT"] and neighbours["2001:db8::77"]["state"] == ["STALE"]
        await nl.neighbour_delete("d0", "192.0.2.77")
        assert "192.0.2.77" not in {entry["dst"] for entry in ip_json(netns, "neigh", "show")}

        await nl.rule_add(priority=500, src="10.0.0.0/8", table=100)
        await nl.rule_add(priority=501, fwmark=0x20, fwmask=0xF0, table="main", iif="d0")
        await nl.rule_add(priority=502, dst="2001:db8:1::/48", action="unreachable")
        rules = {rule["priority"]: rule for rule in ip_json(netns, "rule", "show") + ip_json(netns, "-6", "rule", "show")}
        assert (rules[500]["src"], rules[500]["srclen"], rules[500]["table"]) == ("10.0.0.0", 8, "100")
        assert (rules[501]["fwmark"], rules[501]["fwmask"], rules[501]["iif"]) == ("0x20", "0xf0", "d0")
        assert rules[502]["action"] == "unreachable"
        await nl.rule_delete(priority=500)
        assert 500 not in {rule["priority"] for rule in ip_json(netns, "rule", "show")}

        await nl.address_delete("d0", "192.0.2.1/24")
        assert "192.0.2.1" not in json.dumps(ip_json(netns, "addr", "show", "d0"))


async def test_adding_an_existing_route_raises_file_exists_error(netns: str) -> None:
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "d0")
    ip(netns, "link", "set", "d0", "up")
    async with rtnl.open(netns=netns) as nl:
        await nl.route_add("198.51.100.0/24", gateway="192.0.2.254")
        with pytest.raises(FileExistsError) as caught:
            await nl.route_add("198.51.100.0/24", gateway="192.0.2.254")
        assert isinstance(caught.value, aionlmmap.NetlinkError) and caught.value.errno == errno.EEXIST
        # fib_table_insert() gives no extack text for EEXIST; where the kernel
        # has one it is carried (and shown in the message):
        assert caught.value.extack_message is None
        with pytest.raises(FileExistsError) as caught:
            await nl.address_add("d0", "192.0.2.1/24")
        assert caught.value.extack_message == "ipv4: Address already assigned"
        assert "Address already assigned" in str(caught.value)
        with pytest.raises(aionlmmap.NetlinkError) as unreachable:
            await nl.route_add("10.9.0.0/16", gateway="10.55.0.1")
        assert unreachable.value.errno == errno.ENETUNREACH and unreachable.value.extack_message == "Nexthop has invalid gateway"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda nl: nl.route_add("10.0.0.1/8", dev="lo"), "host bits"),
        (lambda nl: nl.route_add("10.0.0.0/8", dev="nosuchdev"), "no interface 'nosuchdev'"),
        (lambda nl: nl.route_add("10.0.0.0/8", dev="lo", metric=-1), "out of range"),
        (lambda nl: nl.route_add("10.0.0.0/8", dev=999), "no interface 999"),
        (lambda nl: nl.link_set("lo", mtu=1 << 30), "out of range"),
        (lambda nl: nl.link_add("v0", "vlan", link="lo", vlan_id=5000), "out of range"),
        (lambda nl: nl.address_add("ghost0", "10.0.0.1/24"), "no interface"),
        (lambda nl: nl.address_add("lo", "10.0.0.300/24"), "bad prefix"),
        (lambda nl: nl.neighbour_add("lo", "10.0.0.1", lladdr="nonsense"), "link-layer"),
        (lambda nl: nl.rule_add(priority=1 << 33), "out of range"),
    ],
)
async def test_bad_arguments_raise_value_error_before_sending(netns: str, operation, message: str) -> None:  # type: ignore[no-untyped-def]
    async with rtnl.open(netns=netns) as nl:
        await nl.names()  # fill the name cache; a bad name refreshes it with one dump
        sent = nl.ring.stats.tx_messages
        with pytest.raises(ValueError, match=message):
            await operation(nl)
        dumps = nl.ring.stats.tx_messages - sent
        assert dumps <= 1  # at most the link dump that resolved a name, never the change itself
        assert ip_json(netns, "route", "show") == []
