"""Every decoder, fuzzed from real messages: only DecodeError may escape,
and no call takes more than 100 ms (harness: tests/decoder_fuzz.py).

CI runs a fixed budget (FUZZ_EXAMPLES per decoder, about 30 s in all);
``python -m benchmarks.stress fuzz`` runs the long one.
"""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aionlmmap.errors import DecodeError
from aionlmmap.families import nftables_codec as nft
from aionlmmap.families.nftables_expr import ACCEPT, jump
from aionlmmap.families.rtnl_codec import decode_link

import decoder_fuzz
from conftest import _require_root_tools, ip, run
from decoder_fuzz import DECODERS, NFT_RULESET, Seed, capture_seeds, check, mutate
from rtnl_helpers import build_random_config

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def seeds() -> Iterator[dict[str, list[Seed]]]:
    """Real messages captured in a namespace with links of several kinds,
    addresses, routes, neighbours, rules and an nf_tables ruleset."""
    _require_root_tools()
    name = f"aionlmmap-fuzz-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    try:
        ip(name, "link", "set", "lo", "up")
        build_random_config(name, 7)
        run("ip", "netns", "exec", name, "nft", "-f", "-", input=NFT_RULESET)
        by_name: dict[str, list[Seed]] = {}
        for seed in capture_seeds(name):
            by_name.setdefault(seed.name, []).append(seed)
        yield by_name
    finally:
        run("ip", "netns", "del", name, check=False)


def test_every_decoder_has_real_seeds(seeds: dict[str, list[Seed]]) -> None:
    assert set(seeds) == set(DECODERS)
    for name in ("rtnl.link", "rtnl.address", "rtnl.route", "rtnl.neighbour", "rtnl.rule", "nftables.chain", "nftables.rule", "nftables.set"):
        assert len(seeds[name]) >= 2, name
    # the seeds decode cleanly before they are damaged
    for name, group in seeds.items():
        for seed in group:
            DECODERS[name][0](seed.message_type, seed.payload())


tree_edit = st.tuples(st.integers(0, 1 << 16), st.integers(0, 8), st.integers(0, 64), st.binary(max_size=12))
byte_edit = st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 255))


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_only_decode_errors_escape(seeds: dict[str, list[Seed]], name: str) -> None:
    group = seeds[name]

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(pick=st.integers(0, len(group) - 1), tree_edits=st.lists(tree_edit, max_size=4), byte_edits=st.lists(byte_edit, max_size=3))
    def fuzz(pick: int, tree_edits: list[tuple[int, int, int, bytes]], byte_edits: list[tuple[int, int, int]]) -> None:
        seed = group[pick]
        check(name, seed.message_type, mutate(seed, tree_edits, byte_edits))

    fuzz()


# -- the crashes issue 14 cites, kept as plain regressions ---------------------------------------
def test_a_zero_length_u8_attribute_at_the_end_is_a_decode_error() -> None:
    message = bytes.fromhex("240000001000000000000000000000000000000000000000000000000000000004001000")
    payload = message[16:]
    with pytest.raises(DecodeError):
        decode_link(payload, 0, len(payload))
    for attr_type in (16, 17):  # IFLA_OPERSTATE, IFLA_LINKMODE
        payload = bytes(16) + struct.pack("=HH", 4, attr_type)
        with pytest.raises(DecodeError):
            decode_link(payload, 0, len(payload))


def test_a_short_verdict_code_is_a_decode_error() -> None:
    rule = nft.encode_rule(nft.Rule("inet", "fw", "in", (jump("x"), ACCEPT)))
    payload = bytes(rule.payload)
    code = struct.pack("=HH", 8, 1) + struct.pack("!i", -3)  # NFTA_VERDICT_CODE, a jump
    assert code in payload
    seed = Seed("nftables.rule", rule.type, payload, 4)
    damaged = [node for node in decoder_fuzz.tree_nodes(seed.tree) if node[0][node[1]][1] == struct.pack("!i", -3)]
    assert damaged
    siblings, index = damaged[0]
    siblings[index][1] = b"\xff\xff"
    with pytest.raises(DecodeError):
        nft.decode_rule(decoder_fuzz._message(rule.type, seed.payload()))


async def test_a_monitor_counts_and_skips_a_malformed_notification(netns: str) -> None:
    # On the receive path a message no decoder can read is counted in
    # ring.stats.decode_errors and skipped; the events after it still come.
    import asyncio

    import aionlmmap
    from aionlmmap import rtnl
    from aionlmmap._sys import open_socket
    from aionlmmap.message import encode_message

    ring = aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns, accept_foreign=True)
    async with rtnl.open(netns=netns) as nl:
        events: list[Any] = []
        monitor = nl.monitor(links=True, addresses=False, routes=False, ring=ring)
        task = asyncio.create_task(_collect(monitor, events))
        try:
            async with asyncio.timeout(10):
                while not events:  # lo, from the first resync
                    await asyncio.sleep(0.01)
            spoofer = open_socket(aionlmmap.NETLINK_ROUTE, netns)
            try:
                spoofer.bind((0, 0))
                malformed = bytes.fromhex("240000001000000000000000000000000000000000000000000000000000000004001000")[16:]
                spoofer.sendto(encode_message(16, 0, 0, 0, malformed), (ring.portid, 0))  # RTM_NEWLINK, IFLA_OPERSTATE empty
            finally:
                spoofer.close()
            async with asyncio.timeout(10):
                while ring.stats.decode_errors == 0:
                    await asyncio.sleep(0.01)
            await asyncio.to_thread(ip, netns, "link", "add", "fz0", "type", "veth", "peer", "name", "fz1")
            async with asyncio.timeout(10):
                while not any(getattr(event.obj, "ifname", None) == "fz0" for event in events):
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _collect(monitor: Any, events: list[Any]) -> None:
    async for event in monitor:
        events.append(event)
