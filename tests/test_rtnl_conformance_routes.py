"""Generated conformance of routes: random but valid routes made with `ip`
in a throwaway namespace, and `aionlmmap dump routes --json` must print
what `ip -j route show` prints, byte for byte, in every view (main table,
every table, one table, IPv6, `-d` details); `Route.to_json_items()` must
give ip's keys in ip's order, object by object.

The seeded driver prints its seed and the `ip` commands of a failing case.
Routes the kernel refuses (a feature this kernel lacks) are counted and
reported, not silently dropped: the test fails if a whole shape could not
be made at all.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from typing import Any

import pytest

from conftest import ip
from rtnl_helpers import quiet_ipv6

from aionlmmap.families import rtnl

COMMAND = [sys.executable, "-m", "aionlmmap", "dump", "routes", "--json"]
#: Fixed seeds (reproducible in CI) plus one fresh seed per run, printed on failure.
SEEDS = [1, 2, 3, int(os.environ.get("AIONLMMAP_CONFORMANCE_SEED", random.SystemRandom().randrange(1 << 30)))]
ROUTES_PER_SEED = 70

METRIC_CHOICES = [
    "mtu {lock}{n1}", "advmss {lock}{n2}", "window {lock}{n2}", "rtt {lock}{ms}ms", "rttvar {lock}{ms}ms", "hoplimit {lock}{hop}",
    "initcwnd {lock}{small}", "initrwnd {lock}{small}", "quickack {bit}", "congctl {lock}reno", "features ecn",
    "ssthresh {lock}{small}", "cwnd {lock}{small}", "reordering {lock}{small}", "rto_min {ms}ms", "fastopen_no_cookie {bit}",
]  # fmt: skip


def _metrics(rng: random.Random) -> str:
    chosen = rng.sample(METRIC_CHOICES, rng.randint(1, 4))
    return " ".join(
        choice.format(lock="lock " if rng.random() < 0.3 else "", n1=rng.randint(600, 1500), n2=rng.randint(100, 60000),
                      ms=rng.choice([1, 20, 999, 1000, 1500, 30000]), hop=rng.randint(1, 255), small=rng.randint(1, 100),
                      bit=rng.randint(0, 1))  # fmt: skip
        for choice in chosen
    )


def _route(rng: random.Random, index: int) -> tuple[str, str]:
    """(shape, `ip route` arguments without the leading "route add")."""
    v6 = rng.random() < 0.4
    if v6:
        dst = f"2001:db8:{0x100 + index:x}::/{rng.choice([48, 64, 100, 128])}"
    else:
        dst = f"10.{index // 200}.{index % 200}.0/{rng.choice([16, 24, 28, 32])}" if rng.random() < 0.9 else f"10.{index // 200}.{index % 200}.7"
    family = "-6 " if v6 else ""
    table = rng.choice(["", "", "table 100 ", "table 200 ", "table local "])
    extra = ""
    if rng.random() < 0.3:
        extra += f"metric {rng.choice([0, 1, 5, 1024, 4294967295])} "
    if rng.random() < 0.3:
        extra += f"proto {rng.choice(['static', 'boot', 'kernel', '99', 'bird', 'dhcp'])} "
    if not v6 and rng.random() < 0.15:
        extra += f"tos {rng.choice(['0x10', '0x08', '0x04'])} "
    shape = rng.choice(["device", "gateway", "multipath", "type", "metrics", "expires", "pref", "realms", "via6", "nhid", "encap", "prefsrc", "scope"])
    gw, gw2 = ("2001:db8::2", "2001:db8:1::2") if v6 else ("192.0.2.2", "198.51.100.2")
    if shape == "device":
        body = f"{dst} dev d0"
    elif shape == "gateway":
        body = f"{dst} via {gw}" + (" onlink dev d0" if rng.random() < 0.2 else "")
    elif shape == "multipath":
        hops = [f"nexthop via {gw} dev d0 weight {rng.randint(1, 256)}", f"nexthop via {gw2} dev d1 weight {rng.randint(1, 256)}"]
        if rng.random() < 0.3:
            hops.append("nexthop dev d1" + (" onlink" if rng.random() < 0.5 else ""))
        if not v6 and rng.random() < 0.3:
            hops[0] += f" realms {rng.randint(1, 9)}"
        body = f"{dst} " + " ".join(hops)
    elif shape == "type":
        kind = rng.choice(["blackhole", "unreachable", "prohibit", "throw"] + ([] if v6 else ["local", "broadcast", "multicast", "anycast"]))
        body = f"{kind} {dst}" + (" dev d0" if kind in ("local", "broadcast", "multicast", "anycast") else "")
        if kind == "multicast":
            body = f"multicast 224.{index % 200}.0.0/16 dev d0"
    elif shape == "metrics":
        body = f"{dst} dev d0 {_metrics(rng)}"
    elif shape == "expires":
        body = f"{dst} dev d0 expires {rng.randint(100, 100000)}" if v6 else f"{dst} dev d0 {_metrics(rng)}"
    elif shape == "pref":
        body = f"{dst} dev d0 pref {rng.choice(['low', 'medium', 'high'])}" if v6 else f"{dst} dev d1"
    elif shape == "realms":
        body = f"{dst} via {gw} realms {rng.choice(['3/4', '5', '0/7', '9/0'])}" if not v6 else f"{dst} via {gw}"
    elif shape == "via6":
        body = f"{dst} via inet6 2001:db8::2 dev d0" if not v6 else f"{dst} via {gw} dev d0"
    elif shape == "nhid":
        body = f"{dst} nhid {rng.choice([1, 2] if not v6 else [3])}"
    elif shape == "encap":
        body = (f"{dst} encap ip6 id {rng.randint(1, 1 << 40)} dst 2001:db8::9 hoplimit {rng.randint(0, 255)} tc {rng.randint(0, 255)} dev d0"
                if v6 else f"{dst} encap ip id {rng.randint(1, 1 << 40)} dst 203.0.113.{rng.randint(1, 254)} ttl {rng.randint(0, 255)} tos {rng.randint(0, 255)} {rng.choice(['', 'key', 'csum', 'seq'])} dev d0")  # fmt: skip
    elif shape == "prefsrc":
        body = f"{dst} dev d0 src {'2001:db8::1' if v6 else '192.0.2.1'}"
    else:
        body = f"{dst} dev d0 scope {rng.choice(['link', 'host', 'global'])}" if not v6 else f"{dst} dev d1"
    if shape == "type" and "multicast" in body:
        table = ""
    return shape, f"{family}route add {body} {table}{extra}".strip()


def build_routes(netns: str, seed: int) -> tuple[list[str], dict[str, list[int]]]:
    """Random routes in ``netns``; returns the commands and, per shape,
    [made, refused] counts (`ip -batch -force` goes on past a refusal)."""
    rng = random.Random(seed)
    quiet_ipv6(netns)
    setup = [
        "link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
        "addr add 198.51.100.1/24 dev d1", "addr add 2001:db8::1/64 dev d0 nodad", "addr add 2001:db8:1::1/64 dev d1 nodad",
        "addr add 2001:db8:2::1/64 dev d1 nodad valid_lft 3000 preferred_lft 2000",
        "nexthop add id 1 via 192.0.2.2 dev d0", "nexthop add id 2 dev d1", "nexthop add id 3 via 2001:db8::2 dev d0",
    ]  # fmt: skip
    for line in setup:
        ip(netns, *line.split())
    commands = [_route(rng, index) for index in range(ROUTES_PER_SEED)]
    counts: dict[str, list[int]] = {}
    for shape, command in commands:
        made = ip(netns, *command.split(), check=False).returncode == 0
        counts.setdefault(shape, [0, 0])[0 if made else 1] += 1
    return [command for _, command in commands], counts


def _ip_text(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def _ours(netns: str, *args: str) -> str:
    result = subprocess.run([*COMMAND, "--netns", netns, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


_EXPIRES = re.compile(r'"expires":(\d+)')
_AGE = re.compile(r'"age":(\d+)')
_TICKING = re.compile(r'"(expires|age)":\d+')


def assert_same_text(ours: str, theirs: str, context: str, theirs_after: str | None = None) -> None:
    """Byte-identical, except that an `expires` countdown ticks between
    ip's dump and ours: ours must lie between ip's before (``theirs``) and
    after (``theirs_after``, taken once ours is done), a second either way."""
    if ours == theirs:
        return
    assert _TICKING.sub(r'"\1":_', ours) == _TICKING.sub(r'"\1":_', theirs), context + _first_difference(ours, theirs)
    assert _EXPIRES.sub('"expires":_', _AGE.sub('"age":_', ours)) == _EXPIRES.sub('"expires":_', _AGE.sub('"age":_', theirs)), context
    after = _EXPIRES.findall(theirs_after) if theirs_after is not None else None
    for index, (mine, their) in enumerate(zip(_EXPIRES.findall(ours), _EXPIRES.findall(theirs))):
        low = int(after[index]) if after is not None and index < len(after) else int(their) - 2
        assert low - 1 <= int(mine) <= int(their) + 1, context
    # a cached route's "age" (ip -s) counts up: ours lies between ip's before and after
    after = _AGE.findall(theirs_after) if theirs_after is not None else None
    for index, (mine, their) in enumerate(zip(_AGE.findall(ours), _AGE.findall(theirs))):
        high = int(after[index]) if after is not None and index < len(after) else int(their) + 2
        assert int(their) - 1 <= int(mine) <= high + 1, context


def _first_difference(ours: str, theirs: str) -> str:
    mine, their = json.loads(ours), json.loads(theirs)
    for left, right in zip(mine, their):
        if left != right:
            return f"\nfirst different object:\n  ours: {json.dumps(left)}\n  ip:   {json.dumps(right)}"
    return f"\n{len(mine)} objects vs ip's {len(their)}"


VIEWS = [
    ([], ["route", "show"]),
    (["--table", "all"], ["route", "show", "table", "all"]),
    (["--table", "100"], ["route", "show", "table", "100"]),
    (["-6"], ["-6", "route", "show"]),
    (["-6", "--table", "all"], ["-6", "route", "show", "table", "all"]),
    (["-d", "--table", "all"], ["-d", "route", "show", "table", "all"]),
    (["-d"], ["-d", "route", "show"]),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_routes_json_is_byte_identical_to_ip_on_generated_routes(netns: str, seed: int) -> None:
    commands, counts = build_routes(netns, seed)
    context = f"seed {seed} (AIONLMMAP_CONFORMANCE_SEED={seed} reruns it); routes made: {counts}\n" + "\n".join(commands)
    print(f"seed {seed}: routes made/refused per shape: {counts}")
    for cli_args, ip_args in VIEWS:
        theirs = _ip_text(netns, *ip_args)
        ours = _ours(netns, *cli_args)
        assert_same_text(ours, theirs, f"view {cli_args}: {context}", _ip_text(netns, *ip_args))


def test_every_route_shape_is_made_by_this_kernel(netns: str) -> None:
    """The generator's shapes are all within what this kernel builds (else
    the conformance test would silently cover less): each shape is made at
    least once over the fixed seeds' routes."""
    made: dict[str, int] = {}
    refused: dict[str, int] = {}
    for seed in SEEDS[:3]:
        rng = random.Random(seed)
        for index in range(ROUTES_PER_SEED):
            shape, _ = _route(rng, index)
            made[shape] = made.get(shape, 0) + 1
    _, counts = build_routes(netns, SEEDS[0])
    for shape, (ok, bad) in counts.items():
        refused[shape] = bad
        assert ok > 0, f"shape {shape!r}: this kernel refused all {bad} routes of it"
    print(f"shapes generated over the fixed seeds: {made}; refused by this kernel (seed {SEEDS[0]}): {refused}")


async def test_route_to_json_items_are_ips_keys_in_ips_order(netns: str) -> None:
    build_routes(netns, SEEDS[1])
    theirs = json.loads(_ip_text(netns, "route", "show", "table", "all"), object_pairs_hook=list)
    async with rtnl.open(netns=netns) as nl:
        ours = [route async for route in nl.routes(table="all")]
    assert len(ours) == len(theirs)
    for route, their in zip(ours, theirs):
        items = [(key, _as_pairs(value)) for key, value in route.to_json_items()]
        expected = [(key, value) for key, value in their]
        assert [key for key, _ in items] == [key for key, _ in expected]
        for (key, mine), (_, value) in zip(items, expected):
            if key == "expires":
                assert 0 <= value - mine <= 5  # ours was dumped after ip's
            else:
                assert mine == value, (key, route)
        assert list(route.to_json()) == list(dict(expected))  # the dict keeps ip's order


def _as_pairs(value: Any) -> Any:
    """A to_json value in the shape json.loads(object_pairs_hook=list) gives."""
    if isinstance(value, dict):
        return [(key, _as_pairs(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_as_pairs(item) for item in value]
    return value


def test_route_keys_that_were_missing_are_printed(netns: str) -> None:
    """The defects of issue 13: metrics, expires, pref before nexthops."""
    quiet_ipv6(netns)
    for line in ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
                 "addr add 2001:db8::1/64 dev d0 nodad", "addr add 2001:db8:1::1/64 dev d1 nodad valid_lft 5000 preferred_lft 4000"]:  # fmt: skip
        ip(netns, *line.split())
    ip(netns, "route", "add", "10.1.0.0/16", "via", "192.0.2.2", "mtu", "lock", "1400", "advmss", "1000", "rtt", "20ms", "congctl", "reno", "features", "ecn")
    ip(netns, "-6", "route", "add", "2001:db8:5::/64", "nexthop", "via", "2001:db8::2", "dev", "d0", "weight", "2", "nexthop", "via", "2001:db8:1::2", "dev", "d1")
    ip(netns, "-6", "route", "add", "2001:db8:6::/64", "dev", "d0", "expires", "300")
    ours = json.loads(_ours(netns, "--table", "all"))
    by_dst = {route["dst"]: route for route in ours}
    assert by_dst["10.1.0.0/16"]["metrics"] == [{"mtu": 1400, "rtt": 20, "advmss": 1000, "ecn": None, "congestion": "reno"}]
    assert 295 <= by_dst["2001:db8:6::/64"]["expires"] <= 300
    assert 4990 <= by_dst["2001:db8:1::/64"]["expires"] <= 5000  # the prefix route of an address with a lifetime
    assert list(by_dst["2001:db8:5::/64"])[-2:] == ["pref", "nexthops"]
    assert [hop["weight"] for hop in by_dst["2001:db8:5::/64"]["nexthops"]] == [2, 1]


def build_nexthops(netns: str, seed: int) -> tuple[list[str], int]:
    """Random nexthop objects: gateways, devices, blackholes, onlink,
    protocols, IPv4/IPv6, groups with weights, resilient groups."""
    rng = random.Random(seed)
    quiet_ipv6(netns)
    for line in ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
                 "addr add 2001:db8::1/64 dev d0 nodad"]:  # fmt: skip
        ip(netns, *line.split())
    commands, singles, refused = [], [], 0
    for identifier in range(1, 25):
        proto = f" proto {rng.choice(['static', 'boot', '99', 'zebra'])}" if rng.random() < 0.4 else ""
        kind = rng.random()
        if kind < 0.5 or len(singles) < 3:
            body = rng.choice([f"via 192.0.2.{rng.randint(2, 254)} dev d0", "dev d1", f"via 2001:db8::{rng.randint(2, 999):x} dev d0",
                               "blackhole", f"via 203.0.113.{rng.randint(1, 254)} dev d0 onlink"])  # fmt: skip
            family_ok = "2001" not in body
        else:
            members = rng.sample([member for member, v4 in singles if v4], min(len([1 for _, v4 in singles if v4]), rng.randint(1, 3)))
            if not members:
                continue
            body = "group " + "/".join(f"{member},{rng.randint(1, 255)}" if rng.random() < 0.5 else str(member) for member in members)
            if rng.random() < 0.3:
                body += f" type resilient buckets {rng.choice([2, 8, 32])} idle_timer {rng.randint(0, 300)} unbalanced_timer {rng.randint(0, 60)}"
            family_ok = None
        command = f"nexthop add id {identifier} {body}{proto}"
        if ip(netns, *command.split(), check=False).returncode == 0:
            commands.append(command)
            if family_ok is not None and "blackhole" not in body:
                singles.append((identifier, family_ok))
        else:
            refused += 1
    return commands, refused


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_nexthops_json_equals_ip_on_generated_nexthops(netns: str, seed: int) -> None:
    commands, refused = build_nexthops(netns, seed)
    print(f"seed {seed}: {len(commands)} nexthops made, {refused} refused by this kernel")
    assert len(commands) >= 10, f"seed {seed}: only {len(commands)} nexthops could be made ({refused} refused)"
    context = f"seed {seed}:\n" + "\n".join(commands)
    for args in ([], ["-d"], ["-4"], ["-6"]):
        result = subprocess.run([sys.executable, "-m", "aionlmmap", "dump", "nexthops", "--json", "--netns", netns, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        theirs = _ip_text(netns, *args, "nexthop", "show")
        assert json.loads(result.stdout, object_pairs_hook=list) == json.loads(theirs, object_pairs_hook=list), f"{args} {context}"
    # routes through them, with -d (nh_info)
    for identifier in [int(command.split()[3]) for command in commands][:6]:
        ip(netns, "route", "add", f"10.77.{identifier}.0/24", "nhid", str(identifier), check=False)
    theirs = _ip_text(netns, "-d", "route", "show")
    assert_same_text(_ours(netns, "-d"), theirs, context, _ip_text(netns, "-d", "route", "show"))


def test_dump_routes_cache_is_byte_identical_to_ip(netns: str) -> None:
    """Route exceptions (`ip route show cache`): a PMTU exception made by a
    real "fragmentation needed" / "packet too big" from a router namespace
    with a smaller MTU, IPv4 (with its "cache" flags) and IPv6."""
    router, far = f"{netns}-r", f"{netns}-b"
    for name in (router, far):
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        script = [
            (netns, f"link add a0 type veth peer name r0 netns {router}"), (router, f"link add r1 type veth peer name b0 netns {far}"),
            (netns, "addr add 10.1.0.1/24 dev a0"), (netns, "addr add 2001:db8:1::1/64 dev a0 nodad"),
            (router, "addr add 10.1.0.2/24 dev r0"), (router, "addr add 2001:db8:1::2/64 dev r0 nodad"),
            (router, "addr add 10.2.0.1/24 dev r1"), (router, "addr add 2001:db8:2::1/64 dev r1 nodad"),
            (far, "addr add 10.2.0.2/24 dev b0"), (far, "addr add 2001:db8:2::2/64 dev b0 nodad"),
            (router, "link set r1 mtu 1300"), (far, "link set b0 mtu 1300"),
            (netns, "link set a0 up"), (router, "link set r0 up"), (router, "link set r1 up"), (far, "link set b0 up"), (far, "link set lo up"),
            (netns, "route add default via 10.1.0.2"), (netns, "-6 route add default via 2001:db8:1::2"),
            (far, "route add default via 10.2.0.1"), (far, "-6 route add default via 2001:db8:2::1"),
        ]  # fmt: skip
        for name, command in script:
            ip(name, *command.split())
        subprocess.run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"], check=True, timeout=30)
        # Bounded: a few pings until both exceptions exist (DAD is off; ND takes a moment).
        for _ in range(10):
            subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1400", "10.2.0.2"], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "exec", netns, "ping", "-6", "-c", "1", "-W", "1", "-s", "1400", "2001:db8:2::2"], capture_output=True, timeout=30)
            if len(json.loads(_ip_text(netns, "route", "show", "table", "all", "cache"))) >= 2:
                break
        cached = json.loads(_ip_text(netns, "route", "show", "table", "all", "cache"))
        assert {route["dst"] for route in cached} == {"10.2.0.2", "2001:db8:2::2"}, cached
        shapes = [([], []), (["-6"], ["-6"]), (["--table", "all"], ["table", "all"]), (["-d"], ["-d"]), (["-d", "--table", "all"], ["-d", "table", "all"])]
        # ip -s: print_rta_cacheinfo()'s users, used, age of the cached routes
        shapes += [(["-s"], ["-s"]), (["-s", "-6"], ["-s", "-6"]), (["-s", "-d", "--table", "all"], ["-s", "-d", "table", "all"])]
        for cli_args, ip_args in shapes:
            ip_command = [arg for arg in ip_args if arg.startswith("-")] + ["route", "show"] + [arg for arg in ip_args if not arg.startswith("-")] + ["cache"]
            theirs = _ip_text(netns, *ip_command)
            ours = _ours(netns, "--cache", *cli_args)
            assert_same_text(ours, theirs, f"cache {cli_args}", _ip_text(netns, *ip_command))
        assert json.loads(_ours(netns, "--cache"))[0]["metrics"] == [{"mtu": 1300}]
        stats = json.loads(_ours(netns, "--cache", "-s", "--table", "all"))
        assert all("users" in route or "age" in route for route in stats), stats  # both exceptions were used by a ping
    finally:
        for name in (router, far):
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


async def test_routes_added_by_the_library_with_metrics_and_more_show_in_ip(netns: str) -> None:
    """route_add() takes metrics (with locks), expires, pref, tos, realms,
    nhid, onlink; what it makes, ip shows, and our dump shows the same."""
    quiet_ipv6(netns)
    for line in ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
                 "addr add 2001:db8::1/64 dev d0 nodad", "nexthop add id 1 via 192.0.2.2 dev d0"]:  # fmt: skip
        ip(netns, *line.split())
    async with rtnl.open(netns=netns) as nl:
        await nl.route_add("10.1.0.0/16", gateway="192.0.2.2", metrics={"mtu": 1400, "advmss": 1360, "rtt": 20, "rttvar": 10, "congctl": "reno",
                           "features": "ecn", "initcwnd": 10, "lock": ["mtu"]}, tos=0x10, realms=3 << 16 | 4)  # fmt: skip
        await nl.route_add("10.2.0.0/16", gateway="198.51.100.9", dev="d0", onlink=True)
        await nl.route_add("10.3.0.0/16", nhid=1)
        await nl.route_add("2001:db8:5::/64", dev="d0", expires=300, pref="high", metrics={"hoplimit": 7})
    theirs = _ip_text(netns, "route", "show", "table", "all")
    assert_same_text(_ours(netns, "--table", "all"), theirs, "library routes", _ip_text(netns, "route", "show", "table", "all"))
    by_dst = {route["dst"]: route for route in json.loads(theirs)}
    assert by_dst["10.1.0.0/16"]["metrics"] == [{"mtu": 1400, "rtt": 20, "rttvar": 10, "advmss": 1360, "initcwnd": 10, "ecn": None, "congestion": "reno"}]
    assert by_dst["10.2.0.0/16"]["flags"] == ["onlink"] and by_dst["10.3.0.0/16"]["nhid"] == 1
    assert by_dst["2001:db8:5::/64"]["pref"] == "high" and 290 <= by_dst["2001:db8:5::/64"]["expires"] <= 300
