"""Generated conformance of rules and neighbours: random `ip rule` rules
(every selector and action ip accepts: from/to, not, tos, fwmark/mask,
iif/oif, l3mdev, uidrange, ipproto, sport/dport and their ranges, tun_id,
lookup, suppress_prefixlength, suppress_ifgroup, realms, goto, nop,
blackhole/unreachable/prohibit, nat, protocol) and random neighbours in
every NUD state with the router/extern_learn flags, made with `ip`;
`aionlmmap dump rules|neighbours --json` must equal `ip -j rule|neigh show`
object by object, key by key, in ip's order (rules also with `-d` and
`-6`). The seed is printed; AIONLMMAP_CONFORMANCE_SEED reruns one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from conftest import ip
from rtnl_helpers import quiet_ipv6

SEEDS = [1, 2, int(os.environ.get("AIONLMMAP_CONFORMANCE_SEED", random.SystemRandom().randrange(1 << 30)))]
NUD_STATES = ["permanent", "noarp", "reachable", "stale", "delay", "probe", "failed", "incomplete", "none"]


def _selector(rng: random.Random, v6: bool) -> str:
    choices = [
        lambda: f"from {'2001:db8:' + format(rng.randint(1, 999), 'x') + '::/48' if v6 else '10.' + str(rng.randint(0, 255)) + '.0.0/16'}",
        lambda: f"to {'2001:db8::' + format(rng.randint(1, 999), 'x') if v6 else '192.0.2.' + str(rng.randint(1, 254))}",
        lambda: "not from all" if not v6 else "not from ::/0",
        lambda: "" if v6 else f"tos {rng.choice(['0x10', '0x08', '0x04'])}",
        lambda: f"fwmark {rng.choice(['0x10', '7', '0/0xff', '0x20/0xf0', '0xffffffff'])}",
        lambda: f"iif {rng.choice(['d0', 'lo', 'ghost0'])}",
        lambda: f"oif {rng.choice(['d1', 'ghost1'])}",
        lambda: f"uidrange {rng.randint(0, 500)}-{rng.randint(500, 5000)}",
        lambda: f"ipproto {rng.choice(['tcp', 'udp', 'icmp', '47', '253', 'sctp'])}",
        lambda: f"sport {rng.choice([str(rng.randint(1, 65535)), f'{rng.randint(1, 1000)}-{rng.randint(1001, 65535)}'])}",
        lambda: f"dport {rng.choice([str(rng.randint(1, 65535)), f'{rng.randint(1, 1000)}-{rng.randint(1001, 65535)}'])}",
        lambda: f"tun_id {rng.randint(1, 1 << 40)}",
        lambda: f"protocol {rng.choice(['static', 'boot', '99', 'kernel'])}",
    ]
    parts = [choice() for choice in rng.sample(choices, rng.randint(0, 4))]
    if any(part.startswith(("sport", "dport")) for part in parts) and not any(part.startswith("ipproto") for part in parts):
        parts.append("ipproto tcp")  # ports need a protocol (fib_rule_port_range_valid)
    return " ".join(part for part in parts if part)


def _action(rng: random.Random, priority: int) -> str:
    return rng.choice([
        f"lookup {rng.randint(1, 9999)}", f"lookup {rng.choice(['main', 'local', 'default'])}",
        f"lookup main suppress_prefixlength {rng.randint(0, 32)}", f"lookup main suppress_ifgroup {rng.randint(0, 9)}",
        f"lookup {rng.randint(1, 99)} realms {rng.choice(['3/4', '5', '0/7'])}", f"goto {priority + rng.randint(1, 50)}",
        "nop", "blackhole", "unreachable", "prohibit", "l3mdev",
    ])  # fmt: skip


def build_rules(netns: str, seed: int) -> tuple[list[str], int]:
    rng = random.Random(seed)
    for command in ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up"]:
        ip(netns, *command.split())
    made, refused = [], 0
    for index in range(40):
        v6 = rng.random() < 0.35
        priority = 100 + index * 10
        command = f"{'-6 ' if v6 else ''}rule add {_selector(rng, v6)} {_action(rng, priority)} pref {priority}"
        if ip(netns, *command.split(), check=False).returncode == 0:
            made.append(command)
        else:
            refused += 1
    return made, refused


def _ours(netns: str, kind: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "aionlmmap", "dump", kind, "--json", "--netns", netns, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def _assert_same(ours: str, theirs: str, context: str) -> None:
    mine, their = json.loads(ours, object_pairs_hook=list), json.loads(theirs, object_pairs_hook=list)
    for left, right in zip(mine, their):
        assert left == right, f"\n  ours: {left}\n  ip:   {right}\n{context}"
    assert len(mine) == len(their), context


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_rules_json_equals_ip_on_generated_rules(netns: str, seed: int) -> None:
    made, refused = build_rules(netns, seed)
    print(f"seed {seed}: {len(made)} rules made, {refused} refused by this kernel or ip")
    assert len(made) >= 25, f"seed {seed}: only {len(made)} of 40 rules could be made"
    context = f"seed {seed} (AIONLMMAP_CONFORMANCE_SEED={seed}):\n" + "\n".join(made)
    for args in ([], ["-6"], ["-d"], ["-6", "-d"]):
        ip_args = [arg for arg in args if arg in ("-6", "-d")]
        _assert_same(_ours(netns, "rules", *args), _ip(netns, *ip_args, "rule", "show"), f"{args} {context}")


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_neighbours_json_equals_ip_on_generated_neighbours(netns: str, seed: int) -> None:
    """Every NUD state, router and extern_learn flags; `ip neigh show`'s
    default filter (NOARP-only and state-less entries hidden) applies to
    the dump, while the API returns all of them."""
    rng = random.Random(seed)
    quiet_ipv6(netns)
    for command in ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
                    "addr add 2001:db8::1/64 dev d0 nodad"]:  # fmt: skip
        ip(netns, *command.split())
    made = []
    for index in range(30):
        v6 = rng.random() < 0.4
        dst = f"2001:db8::{index + 16:x}" if v6 else f"192.0.2.{index + 16}"
        state = rng.choice(NUD_STATES)
        lladdr = f" lladdr 02:00:00:00:{index:02x}:{rng.randint(0, 255):02x}" if state not in ("incomplete", "failed", "none") or rng.random() < 0.3 else ""
        flags = " ".join(flag for flag in ("router" if v6 and rng.random() < 0.3 else "", "extern_learn" if rng.random() < 0.2 else "") if flag)
        command = f"neigh add {dst}{lladdr} dev {rng.choice(['d0', 'd1'])} nud {state} {flags}".strip()
        if ip(netns, *command.split(), check=False).returncode == 0:
            made.append(command)
    print(f"seed {seed}: {len(made)} neighbours made")
    context = f"seed {seed}:\n" + "\n".join(made)
    for args in ([], ["-4"], ["-6"]):
        _assert_same(_ours(netns, "neighbours", *args), _ip(netns, *args, "neigh", "show"), f"{args} {context}")
    _assert_same(_ours(netns, "neighbours", "--nud", "all"), _ip(netns, "neigh", "show", "nud", "all"), f"nud all {context}")


async def test_rules_added_by_the_library_with_every_selector_show_in_ip(netns: str) -> None:
    """rule_add() takes every selector and action `ip rule` accepts; what
    it makes, ip shows, and our dump shows the same."""
    from aionlmmap.families import rtnl

    for command in ["link add d0 type veth peer name d1"]:
        ip(netns, *command.split())
    async with rtnl.open(netns=netns) as nl:
        await nl.rule_add(priority=100, src="10.0.0.0/8", dst="192.0.2.0/24", tos=0x10, fwmark=0x10, fwmask=0xFF, iif="d0", oif="d1",
                          uidrange=(100, 200), ipproto=17, sport=(1000, 2000), dport=53, table=100, protocol=4)  # fmt: skip
        await nl.rule_add(priority=101, invert=True, src="10.1.0.0/16", goto=200)
        await nl.rule_add(priority=102, l3mdev=True)
        await nl.rule_add(priority=103, table="main", suppress_prefixlength=0, suppress_ifgroup=5, realms=3 << 16 | 4)
        await nl.rule_add(priority=104, tun_id=7, action="blackhole")
        await nl.rule_add(family=6, priority=105, src="2001:db8::/32", ipproto=6, sport=22, dport=(1, 1024), table=200)
        ours4 = [rule.to_json() async for rule in nl.rules(4)]
    theirs4 = json.loads(_ip(netns, "rule", "show"))
    assert ours4 == theirs4
    assert theirs4[1] == {"priority": 100, "src": "10.0.0.0", "srclen": 8, "dst": "192.0.2.0", "dstlen": 24, "tos": "0x10", "fwmark": "0x10",
                          "fwmask": "0xff", "iif": "d0", "oif": "d1", "uid_start": 100, "uid_end": 200, "ipproto": "udp",
                          "sport_start": 1000, "sport_end": 2000, "dport": 53, "table": "100", "protocol": "static"}  # fmt: skip
    _assert_same(_ours(netns, "rules", "-6"), _ip(netns, "-6", "rule", "show"), "-6")
