"""nf_tables transactions and dumps against the real kernel, checked with
``nft -j list ruleset`` inside throwaway namespaces (asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import json

import pytest

from aionlmmap.families import nftables
from aionlmmap.families.nftables import (
    ACCEPT,
    DROP,
    Counter,
    Element,
    GenerationChangedError,
    Log,
    ip_saddr,
    ip_saddr_in,
    tcp_dport,
    udp_dport,
)

from conftest import run
from test_nfqueue import Sink, send_udp

pytestmark = pytest.mark.integration


def nft_json(netns: str) -> list[dict]:
    listing = json.loads(run("ip", "netns", "exec", netns, "nft", "-j", "list", "ruleset").stdout)
    return [item for item in listing["nftables"] if "metainfo" not in item]


def without_countdowns(items: list[dict]) -> list[dict]:
    """The listing without set elements' ``expires``: it counts down in whole
    seconds, so two listings a moment apart can differ by one."""
    out = []
    for item in items:
        ((kind, body),) = item.items()
        if kind == "set" and "elem" in body:
            elements = [
                {"elem": {key: value for key, value in entry["elem"].items() if key != "expires"}} if isinstance(entry, dict) and "elem" in entry else entry
                for entry in body["elem"]
            ]
            body = {**body, "elem": elements}
        out.append({kind: body})
    return out


def strip_handles(items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        ((kind, body),) = item.items()
        out.append({kind: {key: value for key, value in body.items() if key != "handle"}})
    return out


async def build_firewall(nft: nftables.Nftables) -> nftables.Transaction:
    async with nft.transaction() as tx:
        tx.add_table("inet", "fw")
        tx.add_chain("inet", "fw", "input", hook="input", priority=0, policy="accept")
        blocklist = tx.add_set("inet", "fw", "blocklist", key_type="ipv4_addr", flags={"timeout"}, timeout=3600)
        nets = tx.add_set("inet", "fw", "nets", key_type="ipv4_addr", flags={"interval"})
        tx.add_elements(blocklist, ["10.0.0.7"])
        tx.add_elements(nets, [Element("10.1.0.0", key_end="10.1.0.255"), "10.2.0.1"])
        tx.add_rule("inet", "fw", "input", [*ip_saddr_in("blocklist"), Counter(), DROP], comment="blocked")
        tx.add_rule("inet", "fw", "input", [*udp_dport(53), *ip_saddr("10.0.0.1"), Log(prefix="dns ", group=3), ACCEPT])
    return tx


async def test_a_transaction_creates_exactly_what_nft_lists(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        await build_firewall(nft)
    listed = strip_handles(nft_json(netns))
    assert listed[0] == {"table": {"family": "inet", "name": "fw"}}
    assert listed[1]["set"]["name"] == "blocklist" and listed[1]["set"]["type"] == "ipv4_addr"
    assert listed[1]["set"]["timeout"] == 3600
    assert listed[1]["set"]["elem"][0]["elem"]["val"] == "10.0.0.7"
    assert listed[2]["set"] == {"family": "inet", "name": "nets", "table": "fw", "type": "ipv4_addr", "flags": ["interval"],
                                "elem": [{"prefix": {"addr": "10.1.0.0", "len": 24}}, "10.2.0.1"]}
    assert listed[3] == {"chain": {"family": "inet", "table": "fw", "name": "input", "type": "filter", "hook": "input", "prio": 0,
                                   "policy": "accept"}}
    assert listed[4]["rule"]["comment"] == "blocked"
    assert listed[4]["rule"]["expr"] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@blocklist"}},
        {"counter": {"packets": 0, "bytes": 0}},
        {"drop": None},
    ]
    assert listed[5]["rule"]["expr"] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.1"}},
        {"log": {"prefix": "dns ", "group": 3}},
        {"accept": None},
    ]
    assert len(listed) == 6


async def test_dumps_return_what_the_transaction_added(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        tx = await build_firewall(nft)
        added = {op.index: op.subject for op in tx.operations}
        assert [t.name for t in await nft.tables()] == ["fw"]
        assert await nft.chains("inet", "fw") == [added[1]]
        assert await nft.sets("inet", "fw") == [added[2], added[3]]
        rules = await nft.rules("inet", "fw", "input")
        assert rules == [added[6], added[7]]
        # Handles come back with the echo and match the dump.
        assert [tx.results[6].handle, tx.results[7].handle] == [rule.handle for rule in rules]
        nets = await nft.get_set("inet", "fw", "nets")
        assert sorted(await nft.elements(nets), key=lambda e: e.key) == [Element("10.1.0.0", key_end="10.1.0.255"), Element("10.2.0.1")]
        (element,) = await nft.elements(added[2])
        # No timeout of its own: it lives by the set's default (3600 s).
        assert element.key == "10.0.0.7" and element.timeout is None and 3500 < element.expires <= 3600


async def test_one_bad_operation_changes_nothing_and_is_named(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        await build_firewall(nft)
        before = nft_json(netns)
        with pytest.raises(FileNotFoundError) as caught:
            async with nft.transaction() as tx:
                tx.add_table("inet", "other")
                tx.add_chain("inet", "fw", "forward", hook="forward", priority=0, policy="drop")
                tx.add_rule("inet", "fw", "forward", [*ip_saddr_in("no-such-set"), DROP])
                tx.add_rule("inet", "fw", "input", [*tcp_dport(22), ACCEPT])
        error = caught.value
        assert error.operation.index == 2
        assert "operation #2 (add rule inet fw forward)" in str(error)
        assert "lookup" in str(error)  # the extack offset points into the lookup expression
        assert without_countdowns(nft_json(netns)) == without_countdowns(before)


async def test_creating_an_existing_table_exclusively_fails_with_eexist(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        await build_firewall(nft)
        with pytest.raises(FileExistsError) as caught:
            async with nft.transaction() as tx:
                tx.add_table("inet", "fw", exclusive=True)
        assert caught.value.operation.index == 0


async def test_a_ruleset_change_after_the_transaction_opened_refuses_the_commit(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        with pytest.raises(GenerationChangedError):
            async with nft.transaction() as tx:
                tx.add_table("inet", "mine")
                await asyncio.to_thread(run, "ip", "netns", "exec", netns, "nft", "add", "table", "ip", "theirs")
        assert [t.name for t in await nft.tables()] == ["theirs"]
        async with nft.transaction() as tx:  # a fresh transaction reads the new generation
            tx.add_table("inet", "mine")
        assert sorted(t.name for t in await nft.tables()) == ["mine", "theirs"]


async def test_deletes_remove_rules_sets_chains_and_tables(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        tx = await build_firewall(nft)
        async with nft.transaction() as tx2:
            tx2.delete_rule("inet", "fw", "input", tx.results[7].handle)
        assert len(await nft.rules("inet", "fw")) == 1
        async with nft.transaction() as tx3:
            tx3.flush_chain("inet", "fw", "input")
            tx3.delete_set("inet", "fw", "nets")
        assert await nft.rules("inet", "fw") == []
        assert [s.name for s in await nft.sets("inet", "fw")] == ["blocklist"]
        async with nft.transaction() as tx4:
            tx4.delete_table("inet", "fw")
        assert nft_json(netns) == []


async def test_traffic_from_a_blocked_address_is_dropped(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    async with nftables.open(netns=receiver) as nft:
        async with nft.transaction() as tx:
            tx.add_table("inet", "fw")
            tx.add_chain("inet", "fw", "input", hook="input", priority=0, policy="accept")
            blocklist = tx.add_set("inet", "fw", "blocklist", key_type="ipv4_addr", flags={"timeout"})
            tx.add_rule("inet", "fw", "input", [*ip_saddr_in("blocklist"), Counter(), DROP])
        async with Sink(receiver, 10, idle=1.0) as sink:
            await send_udp(sender, 10)
            assert len((await sink.result())["seqs"]) == 10
        async with nft.transaction() as tx:
            tx.add_elements(blocklist, ["10.99.0.1"], timeout=60)
        async with Sink(receiver, 10, idle=1.0) as sink:
            await send_udp(sender, 10)
            assert (await sink.result())["seqs"] == []
        (rule,) = await nft.rules("inet", "fw")
        counter = next(e for e in rule.expressions if isinstance(e, Counter))
        assert counter.packets == 10
        async with nft.transaction() as tx:
            tx.delete_elements(blocklist, ["10.99.0.1"])
        async with Sink(receiver, 10, idle=1.0) as sink:
            await send_udp(sender, 10)
            assert len((await sink.result())["seqs"]) == 10


async def test_many_elements_commit_in_one_transaction(netns: str) -> None:
    async with nftables.open(netns=netns) as nft:
        async with nft.transaction() as tx:
            tx.add_table("ip", "big")
            blocklist = tx.add_set("ip", "big", "blocklist", key_type="ipv4_addr")
            tx.add_elements(blocklist, [f"10.{i >> 8}.{i & 255}.1" for i in range(3000)])
        assert len(await nft.elements(blocklist)) == 3000
    assert len(nft_json(netns)[1]["set"]["elem"]) == 3000
