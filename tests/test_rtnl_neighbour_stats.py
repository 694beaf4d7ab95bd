"""``ip -s neigh``: NDA_CACHEINFO (refcnt; used, confirmed, updated: seconds
since) and NDA_PROBES, printed before ``state`` when statistics are asked
(iproute2's print_neigh/print_cacheinfo), in the API's ``to_json(stats=True)``
and ``aionlmmap dump neighbours -s --json`` as ``ip -j -s neigh show``
prints them. They are clocks and counters the kernel moves without a
notification, so they take no part in equality (a monitor's view stays
equal to a later dump)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from aionlmmap import rtnl
from conftest import ip
from rtnl_helpers import ip_json, quiet_ipv6

#: seconds-since values: the two dumps are taken a moment apart
CLOCKS = ("used", "confirmed", "updated")


def neighbours(netns: str) -> None:
    quiet_ipv6(netns)
    ip(netns, "link", "add", "ns0", "type", "veth", "peer", "name", "ns1")
    ip(netns, "link", "set", "ns0", "up")
    ip(netns, "link", "set", "ns1", "up")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "ns0")
    ip(netns, "addr", "add", "192.0.2.2/24", "dev", "ns1")
    for index, state in enumerate(("permanent", "reachable", "stale", "noarp", "delay", "probe")):
        ip(netns, "neigh", "add", f"192.0.2.{10 + index}", "lladdr", f"02:00:00:00:00:{index:02x}", "dev", "ns0", "nud", state)
        ip(netns, "neigh", "add", f"2001:db8::{10 + index:x}", "lladdr", f"02:00:00:00:01:{index:02x}", "dev", "ns0", "nud", state, "router")


def close(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Equal key by key in ip's order, the clocks within a second."""
    assert [list(entry) for entry in ours] == [list(entry) for entry in theirs]
    for mine, its in zip(ours, theirs):
        assert {key: value for key, value in mine.items() if key not in CLOCKS} == {key: value for key, value in its.items() if key not in CLOCKS}
        for key in CLOCKS:
            if key in its:
                assert abs(mine[key] - its[key]) <= 1, (key, mine, its)


async def test_to_json_with_stats_equals_ip_s_neigh(netns: str) -> None:
    neighbours(netns)
    await asyncio.sleep(1.1)  # the clocks read 1 or more
    async with rtnl.open(netns=netns) as nl:
        mine = [neighbour async for neighbour in nl.neighbours()]
        again = [neighbour async for neighbour in nl.neighbours()]
    theirs = ip_json(netns, "-s", "neigh", "show", "nud", "all")
    close([neighbour.to_json(stats=True) for neighbour in mine], theirs)
    assert any("probes" in entry for entry in theirs) and any(entry.get("used", 0) >= 1 for entry in theirs)
    # Without stats, as `ip -j neigh show` (no clocks, no counters).
    assert [neighbour.to_json() for neighbour in mine] == ip_json(netns, "neigh", "show", "nud", "all")
    assert mine == again


def test_dump_neighbours_s_json_equals_ip_j_s_neigh(netns: str) -> None:
    neighbours(netns)
    ours = subprocess.run([sys.executable, "-m", "aionlmmap", "dump", "neighbours", "-s", "--json", "--netns", netns],
                          capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    close(json.loads(ours), ip_json(netns, "-s", "neigh", "show"))
