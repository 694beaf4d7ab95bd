"""The monitor's view against fresh dumps under 2,000 random changes per
run: links, addresses, routes, neighbours, rules, nexthop objects and the
routes using them (benchmarks/monitor_differential.py drives them; run it
for longer runs). The seed is printed on failure: rerun one with
``python -m benchmarks.monitor_differential --seed N --operations 2000``."""

from __future__ import annotations

import os

from benchmarks.monitor_differential import run

OPERATIONS = 2000


async def test_the_view_equals_a_fresh_dump_at_every_checkpoint_of_a_random_run(netns: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}")
    figures = await run(netns, operations=OPERATIONS, seed=seed, batch=100)
    print(figures)
    assert figures["operations"] == OPERATIONS
    assert figures["checkpoints"] == OPERATIONS // 100
    assert figures["mismatches"] == 0
    # The run changed things (most random commands make sense to the kernel).
    assert figures["events"] > OPERATIONS // 4
    assert figures["redundant_events"] == 0
    # Nexthop objects came and went, and routes used them (nhid).
    assert figures["nexthop_events"] > 0
    assert figures["nhid_routes_max"] > 0
