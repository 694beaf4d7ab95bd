"""``/api/nftables`` against ``nft -j list ruleset`` on generated rulesets,
kept live by NFNLGRP_NFTABLES notifications, with SSE events per object.

Rulesets come from a seeded generator over the statements the view folds
the way nft does (see examples/netstate_service/nft_json.py); the seed is
printed on failure. The comparison ignores what only differs by the clock
(an element's ``expires``) and nft's ``metainfo``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service import NetStateService, NftablesView, Settings, create_app, rtnl_source  # noqa: E402
from examples.netstate_service.sse_client import read_events  # noqa: E402


def nft(netns: str, script: str) -> None:
    run("ip", "netns", "exec", netns, "nft", "-f", "-", input=script)


def nft_json(netns: str) -> list[dict[str, Any]]:
    return json.loads(run("ip", "netns", "exec", netns, "nft", "-j", "list", "ruleset").stdout)["nftables"]


def comparable(listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without metainfo and element expiry; set elements in a fixed order."""
    out = []
    for entry in listing:
        if "metainfo" in entry:
            continue
        if "set" in entry and "elem" in entry["set"]:
            elements = []
            for element in entry["set"]["elem"]:
                if isinstance(element, dict) and "elem" in element:
                    element = {"elem": {name: value for name, value in element["elem"].items() if name != "expires"}}
                elements.append(element)
            entry = {"set": {**entry["set"], "elem": sorted(elements, key=lambda item: json.dumps(item, sort_keys=True))}}
        out.append(entry)
    return out


class RulesetGenerator:
    """nft scripts over the statements the view folds as nft does."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.tables: list[tuple[str, str]] = []
        self.chains: dict[tuple[str, str], list[str]] = {}
        self.sets: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}  # name, type, interval
        self.counter = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def address(self, version: int) -> str:
        if version == 4:
            return f"10.{self.random.randrange(256)}.{self.random.randrange(256)}.{self.random.randrange(1, 255)}"
        return f"fd00:{self.random.randrange(1, 0xFFFF):x}::{self.random.randrange(1, 0xFFFF):x}"

    def element(self, key_type: str, interval: bool) -> str:
        if key_type == "inet_service":
            low = self.random.randrange(1, 60) * 1000 + self.random.randrange(0, 800)  # a range stays in its thousand
            return f"{low}-{low + self.random.randrange(1, 100)}" if interval and self.random.random() < 0.5 else str(low)
        if interval and self.random.random() < 0.5:
            return f"10.{self.random.randrange(256)}.{self.random.randrange(256)}.0/24"
        return self.address(4)

    def match(self, network: str, transport: str, table: tuple[str, str]) -> str:
        """One match of a rule whose network (ip/ip6) and transport (tcp/udp)
        protocols are fixed: nft refuses conflicting ones in one rule."""
        choices = ["l4", "port", "mark", "ifname", "ct", "anonymous"]
        if network == "ip":
            choices += ["ip", "ip", "prefix"]
            if any(key_type == "ipv4_addr" for _, key_type, _ in self.sets.get(table, [])):
                choices.append("ipset")
        else:
            choices.append("ip6")
        kind = self.random.choice(choices)
        op = self.random.choice(["", "!= "])
        direction = self.random.choice(["saddr", "daddr"])
        if kind == "ip":
            return f"ip {direction} {op}{self.address(4)}"
        if kind == "prefix":
            return f"ip {direction} {op}10.{self.random.randrange(256)}.0.0/{self.random.choice([8, 16, 24])}"
        if kind == "ipset":
            name = self.random.choice([name for name, key_type, _ in self.sets[table] if key_type == "ipv4_addr"])
            return f"ip {direction} {op}@{name}"
        if kind == "ip6":
            return f"ip6 {direction} {op}{self.address(6)}"
        if kind == "ct":
            states = self.random.sample(["invalid", "established", "related", "new", "untracked"], self.random.randrange(1, 4))
            return f"ct state {','.join(states)}"
        if kind == "anonymous":
            if network == "ip" and self.random.random() < 0.5:
                members = {self.element("ipv4_addr", True) for _ in range(self.random.randrange(1, 4))}
                members = set({member.split(".")[1]: member for member in members}.values())  # no overlaps
                return f"ip {direction} {op}{{ {', '.join(sorted(members))} }}"
            ports = sorted({str(self.random.randrange(1, 65535)) for _ in range(self.random.randrange(1, 5))})
            return f"{transport} {self.random.choice(['sport', 'dport'])} {op}{{ {', '.join(ports)} }}"
        if kind == "l4":
            return f"meta l4proto {transport}"
        if kind == "port":
            return f"{transport} {self.random.choice(['sport', 'dport'])} {op}{self.random.randrange(1, 65535)}"
        if kind == "mark":
            return f"meta mark {op}{self.random.randrange(1, 1 << 20)}"
        return f'{self.random.choice(["iifname", "oifname"])} {op}"veth{self.random.randrange(10)}"'

    def rule(self, table: tuple[str, str], chain: str) -> str:
        family, name = table
        network = family if family in ("ip", "ip6") else self.random.choice(["ip", "ip6"])
        transport = self.random.choice(["tcp", "udp"])
        parts = [self.match(network, transport, table) for _ in range(self.random.randrange(0, 3))]
        if self.random.random() < 0.4:
            parts.append("counter")
        if self.random.random() < 0.2:
            parts.append(f'log prefix "p{self.random.randrange(100)} "')
        chains = self.chains[table]
        # Only forward, to regular chains: a jump loop is refused (ELOOP).
        targets = [other for other in chains[chains.index(chain) + 1 :] if other.startswith("sub")] if chain in chains else []
        verdicts = ["accept", "drop", "return", "continue"] + [f"jump {target}" for target in targets] + [f"goto {target}" for target in targets]
        parts.append(self.random.choice(verdicts))
        if self.random.random() < 0.3:
            parts.append(f'comment "c{self.random.randrange(1000)}"')
        return f"add rule {family} {name} {chain} {' '.join(parts)}\n"

    def ruleset(self) -> str:
        script = []
        for _ in range(self.random.randrange(1, 4)):
            family = self.random.choice(["ip", "ip6", "inet"])
            table = (family, self.name("t"))
            self.tables.append(table)
            self.chains[table] = []
            script.append(f"add table {family} {table[1]}\n")
            for _ in range(self.random.randrange(0, 3)):
                key_type = self.random.choice(["ipv4_addr", "inet_service"])
                interval = self.random.random() < 0.4
                timeout = not interval and self.random.random() < 0.3
                name = self.name("s")
                self.sets.setdefault(table, []).append((name, key_type, interval))
                flags = "flags interval; " if interval else "flags timeout; timeout 1h; " if timeout else ""
                elements = {self.element(key_type, interval) for _ in range(self.random.randrange(0, 6))}
                if interval:  # overlapping intervals are refused: keep one per /16 or per thousand ports
                    elements = set({element.split(".")[1] if "." in element else int(element.split("-")[0]) // 1000: element for element in elements}.values())
                body = f"elements = {{ {', '.join(sorted(elements))} }}; " if elements else ""
                script.append(f"add set {family} {table[1]} {name} {{ type {key_type}; {flags}{body}}}\n")
            for index in range(self.random.randrange(1, 4)):
                if index == 0 and self.random.random() < 0.6:
                    hook = self.random.choice(["input", "output", "forward"])
                    policy = self.random.choice(["accept", "drop"])
                    chain = self.name("base")
                    script.append(f"add chain {family} {table[1]} {chain} {{ type filter hook {hook} priority {self.random.randrange(-200, 200)}; policy {policy}; }}\n")
                else:
                    chain = self.name("sub")
                    script.append(f"add chain {family} {table[1]} {chain}\n")
                self.chains[table].append(chain)
            for chain in self.chains[table]:
                for _ in range(self.random.randrange(0, 5)):
                    script.append(self.rule(table, chain))
        return "".join(script)


@pytest.fixture
async def nft_client(netns):
    service = NetStateService(lambda: rtnl_source(netns=netns))
    view = NftablesView(service, netns)
    async with TestClient(TestServer(create_app(service, Settings(ping_interval=1.0), None, view))) as client:
        assert await service.wait_ready(10)
        assert await view.wait_ready(10)
        yield client, netns, view


async def served(client: TestClient) -> list[dict[str, Any]]:
    async with client.get("/api/nftables") as response:
        assert response.status == 200
        return (await response.json())["nftables"]  # type: ignore[no-any-return]


async def until_equal(client: TestClient, netns: str, context: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ours, theirs = comparable(await served(client)), comparable(nft_json(netns))
        if ours == theirs:
            return
        if time.monotonic() > deadline:
            differences = [f"ours {json.dumps(a)}\nnft  {json.dumps(b)}" for a, b in zip(ours, theirs, strict=False) if a != b]
            raise AssertionError(f"{context}: /api/nftables differs from nft -j ({len(ours)} vs {len(theirs)} objects)\n" + "\n".join(differences[:5]))
        await asyncio.sleep(0.1)


async def test_generated_rulesets_are_served_as_nft_prints_them(nft_client):
    client, netns, _view = nft_client
    base = int.from_bytes(os.urandom(4), "big")
    for seed in range(base, base + 4):
        generator = RulesetGenerator(seed)
        script = generator.ruleset()
        nft(netns, "flush ruleset\n" + script)
        await until_equal(client, netns, f"seed {seed}; ruleset:\n{script}")


async def test_live_changes_follow_the_kernel_without_a_new_request(nft_client):
    """Each change (rule added and deleted, elements added, a set and a
    table deleted) reaches /api/nftables through the notifications."""
    client, netns, view = nft_client
    seed = int.from_bytes(os.urandom(4), "big")
    generator = RulesetGenerator(seed)
    nft(netns, generator.ruleset())
    await until_equal(client, netns, f"seed {seed}")
    family, table = generator.tables[0]
    chain = generator.chains[(family, table)][-1]
    steps = [
        generator.rule((family, table), chain),
        f"add set {family} {table} live {{ type ipv4_addr; }}\n",
        f"add element {family} {table} live {{ 10.9.8.7, 10.9.8.6 }}\n",
        f"delete element {family} {table} live {{ 10.9.8.7 }}\n",
        f"flush chain {family} {table} {chain}\n",
        f"delete set {family} {table} live\n",
        f"delete table {family} {table}\n",
    ]
    for step in steps:
        refreshes = view.refreshes
        nft(netns, step)
        await until_equal(client, netns, f"seed {seed}, after {step.strip()}")
        assert view.refreshes > refreshes  # a notification caused it, not the request


async def test_each_kind_of_change_is_an_event(nft_client):
    client, netns, _view = nft_client
    async with client.get("/api/events") as response:
        events = read_events(response)
        async with asyncio.timeout(10):
            first = await anext(events)
        assert first.event == "resync" and "nft_rules" in first.json()["state"]
        nft(netns, 'add table inet ev\nadd chain inet ev c\nadd set inet ev s { type inet_service; }\nadd element inet ev s { 22 }\nadd rule inet ev c tcp dport @s counter accept comment "seen"\n')
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(10):
            async for event in events:
                change = event.json()
                if change["kind"].startswith("nft_"):
                    seen[change["kind"]] = change
                if len(seen) == 5:
                    break
        assert seen["nft_table"]["obj"] == {"family": "inet", "name": "ev", "handle": seen["nft_table"]["obj"]["handle"]}
        assert seen["nft_element"]["obj"] == {"family": "inet", "table": "ev", "set": "s", "elem": 22}
        rule = seen["nft_rule"]["obj"]
        assert rule["comment"] == "seen"
        assert rule["expr"][0] == {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@s"}}
        nft(netns, "delete table inet ev\n")
        deleted = set()
        async with asyncio.timeout(10):
            async for event in events:
                change = event.json()
                if change["kind"].startswith("nft_") and change["action"] == "del":
                    deleted.add(change["kind"])
                if len(deleted) == 5:
                    break
        assert deleted == {"nft_table", "nft_chain", "nft_set", "nft_element", "nft_rule"}


async def test_without_a_view_the_route_says_it_is_not_enabled(netns):
    service = NetStateService(lambda: rtnl_source(netns=netns))
    async with TestClient(TestServer(create_app(service, Settings()))) as client:
        async with client.get("/api/nftables") as response:
            assert response.status == 404
            assert "not enabled" in (await response.json())["error"]
