"""Shared helpers of the rtnl tests: a randomized configuration built with
`ip` inside a throwaway namespace, and the keys compared with `ip -j`."""

from __future__ import annotations

import json
import random
from typing import Any

from conftest import ip, run

#: link keys to_json() supports (compared with `ip -j link show`)
LINK_KEYS = {"ifindex", "link", "link_index", "ifname", "flags", "mtu", "qdisc", "master", "operstate", "linkmode",
             "group", "txqlen", "link_type", "address", "broadcast", "link_netnsid", "ifalias"}  # fmt: skip
ROUTE_KEYS = {"type", "dst", "from", "gateway", "dev", "table", "protocol", "scope", "prefsrc", "metric", "flags", "nexthops", "pref"}
RULE_KEYS = {"priority", "not", "src", "srclen", "dst", "dstlen", "fwmark", "fwmask", "iif", "oif", "table", "action", "goto"}
NEIGH_KEYS = {"dst", "dev", "lladdr", "router", "proxy", "state"}


def ip_json(netns: str, *args: str) -> Any:
    return json.loads(ip(netns, "-j", *args).stdout or "[]")


def only(entries: list[dict[str, Any]], keys: set[str]) -> list[dict[str, Any]]:
    return [{key: value for key, value in entry.items() if key in keys} for entry in entries]


def quiet_ipv6(netns: str) -> None:
    """No DAD and no router solicitations: addresses are final at once and
    no neighbour entries appear behind the test's back."""
    for key in ("accept_dad", "dad_transmits", "router_solicitations"):
        for scope in ("all", "default"):
            run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"net.ipv6.conf.{scope}.{key}=0")


def build_random_config(netns: str, seed: int) -> dict[str, Any]:
    """Links of several kinds, IPv4+IPv6 addresses, routes in several
    tables (gateway, dev, blackhole, unreachable, multipath), neighbours and
    rules, chosen by ``seed``. Returns what was made."""
    rng = random.Random(seed)
    quiet_ipv6(netns)
    made: dict[str, Any] = {"tables": set()}
    ip(netns, "link", "add", "va0", "type", "veth", "peer", "name", "vb0")
    ip(netns, "link", "add", "br0", "type", "bridge")
    ip(netns, "link", "set", "vb0", "master", "br0")
    ip(netns, "link", "add", "link", "va0", "name", "mv0", "type", "macvlan", "mode", rng.choice(["bridge", "private", "vepa"]))
    ip(netns, "link", "add", "vx0", "type", "vxlan", "id", str(rng.randrange(1, 1 << 24)), "dstport", "4789", "local", "10.200.0.1")
    ip(netns, "link", "add", "ifb0", "type", "ifb")
    ip(netns, "link", "set", "ifb0", "mtu", str(rng.randrange(1280, 9000)), "alias", f"alias-{seed}")
    for name in ["va0", "br0", *rng.sample(["vb0", "mv0", "ifb0"], 2)]:  # gateways and dev routes need va0, br0 up
        ip(netns, "link", "set", name, "up")
    subnet = rng.randrange(1, 200)
    ip(netns, "addr", "add", f"10.{subnet}.0.1/24", "dev", "va0")
    ip(netns, "addr", "add", f"10.{subnet}.1.1/24", "brd", "+", "dev", "br0", "label", "br0:lab")
    ip(netns, "addr", "add", f"10.{subnet}.2.1/28", "dev", "mv0", "scope", rng.choice(["global", "link", "host"]))
    ip(netns, "addr", "add", f"2001:db8:{subnet:x}::1/64", "dev", "va0", "nodad")
    ip(netns, "addr", "add", f"fd00:{seed:x}::5/80", "dev", "br0", "nodad", "noprefixroute")
    for index in range(rng.randrange(3, 8)):
        table = rng.choice(["main", "100", "200", "1000"])
        made["tables"].add(table)
        dst = f"172.{16 + index}.{rng.randrange(0, 255)}.0/24"
        kind = rng.choice(["gateway", "dev", "blackhole", "unreachable", "metric"])
        if kind == "gateway":
            ip(netns, "route", "add", dst, "via", f"10.{subnet}.0.{rng.randrange(2, 250)}", "table", table)
        elif kind == "dev":
            ip(netns, "route", "add", dst, "dev", "br0", "table", table, "proto", rng.choice(["static", "boot", "99"]))
        elif kind == "metric":
            ip(netns, "route", "add", dst, "via", f"10.{subnet}.0.{rng.randrange(2, 250)}", "metric", str(rng.randrange(1, 5000)), "table", table)
        else:
            ip(netns, "route", "add", kind, dst, "table", table)
    ip(netns, "route", "add", "192.168.77.0/24", "nexthop", "via", f"10.{subnet}.0.7", "weight", str(rng.randrange(1, 5)),
       "nexthop", "via", f"10.{subnet}.0.8", "weight", "3")  # fmt: skip
    ip(netns, "-6", "route", "add", f"2001:db8:ff{seed % 10}::/48", "via", f"2001:db8:{subnet:x}::9", "metric", str(rng.randrange(1, 2000)))
    ip(netns, "-6", "route", "add", "2001:db8:dead::/48", "dev", "va0", "table", "100")
    for index in range(rng.randrange(1, 4)):
        ip(netns, "neigh", "add", f"10.{subnet}.0.{100 + index}", "lladdr", f"02:00:00:00:{seed % 256:02x}:{index:02x}", "dev", "va0",
           "nud", rng.choice(["permanent", "stale", "reachable"]))  # fmt: skip
    ip(netns, "-6", "neigh", "add", f"2001:db8:{subnet:x}::77", "lladdr", "02:00:00:00:aa:bb", "dev", "va0")
    priority = rng.randrange(100, 1000)
    ip(netns, "rule", "add", "from", f"10.{subnet}.0.0/16", "table", "100", "priority", str(priority))
    ip(netns, "rule", "add", "fwmark", hex(rng.randrange(1, 255)), "table", "200", "priority", str(priority + 1))
    ip(netns, "rule", "add", "to", "198.51.100.0/24", "blackhole", "priority", str(priority + 2))
    ip(netns, "rule", "add", "not", "from", "192.0.2.0/24", "iif", "va0", "lookup", "main", "priority", str(priority + 3))
    ip(netns, "-6", "rule", "add", "from", "2001:db8::/32", "table", "100", "priority", str(priority + 4))
    made["subnet"] = subnet
    return made
