"""The benchmark suite works: every scenario runs end to end at N=1000 in
throwaway namespaces and reports well-formed, plausible results. Speed is
never asserted; counts, completeness and cleanup are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks.netns import route_address
from benchmarks.scenarios.route_dump import mixed_routes
from benchmarks.runner import Contestant, Sample, count_json_records, format_table, measure_all, ratio_target
from benchmarks.scenarios.storm import expected_events, storm_commands

REPO = Path(__file__).resolve().parent.parent
N = 1000


def bench_namespaces(prefix: str) -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in listing.splitlines() if line.startswith(prefix)}


def run_scenario(scenario: str, *extra: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``python -m benchmarks SCENARIO --n 1000 --repeat 1`` and return
    its JSON records and its whole stdout; check it left no namespace.

    The run names its namespaces with a prefix of its own
    (AIONLMMAP_BENCH_NETNS_PREFIX): other benchmark runs on the same host
    create and delete namespaces meanwhile, and theirs are not ours to
    count. Any namespace with this run's prefix left afterwards leaked."""
    prefix = f"aionlmmap-bench-t{uuid.uuid4().hex[:8]}-"
    assert not bench_namespaces(prefix)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", scenario, "--n", str(N), "--repeat", "1", *extra],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=REPO,
        env={**os.environ, "AIONLMMAP_BENCH_NETNS_PREFIX": prefix},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records[0]["kernel"] and records[0]["command"].startswith("python3 -m benchmarks " + scenario)
    left = bench_namespaces(prefix)
    assert not left, f"a benchmark namespace was left behind: {sorted(left)}"
    return records[1:], result.stdout


def contestants_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["contestant"]: record for record in records if "contestant" in record}


def assert_ok(record: dict[str, Any]) -> None:
    assert record["status"] == "ok", record.get("reason")
    assert record["median_s"] > 0 and record["rate"] > 0 and record["peak_rss_mib"] > 0


# -- pure helpers -------------------------------------------------------------------


def test_route_addresses_are_distinct_slash32s_under_10_8() -> None:
    assert route_address(0) == "10.0.0.0"
    assert route_address(65536 + 258) == "10.1.1.2"
    assert len({route_address(i) for i in range(70000)}) == 70000
    with pytest.raises(ValueError):
        route_address(1 << 24)


def test_storm_script_makes_two_events_per_route_and_ends_with_the_sentinel() -> None:
    commands = list(storm_commands(1000))
    route_commands = [c for c in commands if "table" not in c]
    assert len(route_commands) == expected_events(1000) == 2000
    assert sum(c.startswith("route del") for c in route_commands) == 500
    assert commands[-1].endswith("table 242")


def test_json_records_are_counted_in_arrays_and_in_lines() -> None:
    assert count_json_records('[{"dst": "10.0.0.1"}, {"dst": "10.0.0.2"}]') == 2
    assert count_json_records('{"a": 1}\n{"a": 2}\n{"a": 3}\n') == 3
    assert count_json_records("") == 0


def test_summaries_give_medians_ratios_and_targets() -> None:
    samples = {"fast": [Sample(100, 1.0, 1024), Sample(100, 2.0, 2048), Sample(100, 3.0, 1024)], "slow": [Sample(100, 10.0, 4096)]}
    contestants = [Contestant(name, (lambda name=name, it=iter(s): next(it)), reference="fast") for name, s in samples.items()]
    summaries = measure_all("demo", "msgs/s", contestants, 1, progress=lambda _text: None)
    assert summaries["fast"]["median_s"] == 1.0 and summaries["fast"]["aionlmmap_ratio"] == 1.0
    assert summaries["slow"]["aionlmmap_ratio"] == 10.0
    met, detail = ratio_target("fast beats slow 5x", "fast", "slow", 5).check(summaries)
    assert met is True and "10.00x" in detail
    assert ratio_target("missing", "fast", "absent", 1).check(summaries)[0] is None
    table = format_table("demo", summaries, [])
    assert "fast" in table and "slow" in table and "10.00" in table


def test_a_failing_contestant_is_reported_not_fatal() -> None:
    def broken() -> Sample:
        raise RuntimeError("boom")

    summaries = measure_all("demo", "msgs/s", [Contestant("broken", broken)], 2, progress=lambda _text: None)
    assert summaries["broken"]["status"] == "failed" and "boom" in summaries["broken"]["reason"]


# -- the scenarios, tiny -----------------------------------------------------------------


def test_route_dump_scenario_runs_every_contestant() -> None:
    records, stdout = run_scenario("route-dump")
    by_name = contestants_of(records)
    for name in ("c-recv-loop", "socket-loop", "struct-decode", "pyroute2-iproute", "pyroute2-async", "aionlmmap-raw", "aionlmmap-raw-uvloop", "aionlmmap-raw-pure"):
        assert_ok(by_name[name])
        assert by_name[name]["count"] >= N  # all IPv4 tables: N routes + the local table's
    for name in ("ip-json", "aionlmmap-decoded", "aionlmmap-decoded-uvloop", "aionlmmap-decoded-pure", "aionlmmap-cli", "aionlmmap-cli-pure"):
        assert_ok(by_name[name])
        assert by_name[name]["count"] == N  # the main table only
    # both cores ran, each where its name says
    assert by_name["aionlmmap-raw"]["core"] == by_name["aionlmmap-decoded"]["core"] == "compiled"
    assert by_name["aionlmmap-raw-pure"]["core"] == by_name["aionlmmap-decoded-pure"]["core"] == "pure-python"
    # pyroute2's AsyncIPRoute needs create_datagram_endpoint, which uvloop refuses for AF_NETLINK
    assert by_name["pyroute2-async-uvloop"]["status"] in ("ok", "skipped")
    assert by_name["aionlmmap-raw"]["extra_rss_mib"] is not None
    assert by_name["c-recv-loop"]["aionlmmap_ratio"] > 0
    targets = [record for record in records if "target" in record]
    assert len(targets) == 8 and all(record["met"] in (True, False) for record in targets)
    assert "== Scenario 1: route dump (N /32 routes on one device), N=1000" in stdout


def test_the_mixed_table_holds_every_route_shape_once_per_ten() -> None:
    lines = mixed_routes(20, "dev0")
    assert len(lines) == len(set(lines)) == 20
    assert sum("fd0" in line for line in lines) == 8  # IPv6: 4 of every 10
    assert sum("nexthop" in line for line in lines) == 2 and sum("mtu" in line for line in lines) == 4
    assert {line.split(" proto ")[1] for line in lines if " proto " in line} == {"static", "bgp"}


def test_route_dump_on_the_mixed_table_counts_every_family_and_table() -> None:
    records, stdout = run_scenario("route-dump-mixed", "--only", "c-recv", "--only", "ip-json", "--only", "aionlmmap", "--only", "pyroute2-async")
    by_name = contestants_of(records)
    for name in ("c-recv-loop", "ip-json", "pyroute2-async", "aionlmmap-raw", "aionlmmap-raw-pure", "aionlmmap-decoded", "aionlmmap-decoded-pure", "aionlmmap-cli", "aionlmmap-cli-pure"):
        assert_ok(by_name[name])
    # table all: the N routes plus the local tables' and IPv6's own, the same for every dumper of routes
    assert by_name["ip-json"]["count"] > N
    assert by_name["aionlmmap-decoded"]["count"] == by_name["aionlmmap-decoded-pure"]["count"] == by_name["aionlmmap-cli"]["count"] == by_name["ip-json"]["count"]
    assert by_name["aionlmmap-raw"]["count"] == by_name["c-recv-loop"]["count"] >= by_name["ip-json"]["count"]
    assert "IPv4 and IPv6" in stdout


def test_storm_scenario_counts_events_and_checks_the_final_view() -> None:
    records, stdout = run_scenario("storm")
    by_name = contestants_of(records)
    assert len(by_name) == 8
    for name, record in by_name.items():
        if record["status"] == "skipped":
            continue
        assert_ok(record)
        assert record["expected"] == 2 * N
        # A receiver that lost events without an overrun report must not claim a correct view.
        if record["lost"] > 0 and not name.startswith("aionlmmap-monitor"):
            assert record["overruns"] > 0 or not record["view_matches"], name
    for name in ("c-receiver/8MiB", "aionlmmap-ring/8MiB"):
        assert by_name[name]["status"] == "ok"
        assert by_name[name]["lost"] == 0 and by_name[name]["view_matches"] and by_name[name]["sentinel"]
    for name in ("aionlmmap-monitor/default", "aionlmmap-monitor/8MiB"):
        assert by_name[name]["status"] == "ok"
        assert by_name[name]["view_matches"], f"{name}: resync=True must converge on the kernel's routes"
    assert "== Scenario 2: notification storm" in stdout


def test_nfqueue_scenario_floods_and_gives_verdicts() -> None:
    records, stdout = run_scenario("nfqueue")
    by_name = contestants_of(records)
    consumers = ("c-libnetfilter_queue", "netfilterqueue", "aionlmmap", "aionlmmap-uvloop", "aionlmmap-pure", "aionlmmap-per-packet")
    assert set(by_name) == {"fnfqueue", *consumers, *(name + "-prequeued" for name in consumers)}
    for name, record in by_name.items():
        if record["status"] == "ok":
            assert record["sent"] == N and 0 <= record["verdicts"] <= N
            assert record["prequeued"] == name.endswith("-prequeued")
            if name.endswith("-prequeued"):
                # The queue and buffer were sized for the whole flood: the
                # kernel dropped nothing and every packet got its verdict.
                assert record["queue_dropped"] == 0 and record["user_dropped"] == 0, name
                assert record["verdicts"] == N, name
            else:
                assert record["verdicts"] > 0, name
        elif name == "fnfqueue" and record["status"] == "failed":
            # fnfqueue may overflow at once: reported as such, with no rate.
            assert "no rate to report" in record["reason"]
        else:
            assert record["status"] == "skipped" and record["reason"]
    for name in ("aionlmmap", "aionlmmap-uvloop", "aionlmmap-prequeued", "aionlmmap-uvloop-prequeued", "aionlmmap-pure", "aionlmmap-pure-prequeued",
                 "aionlmmap-per-packet", "aionlmmap-per-packet-prequeued"):
        assert_ok(by_name[name])
    assert "== Scenario 3: nfqueue verdicts" in stdout


def test_tx_batch_scenario_installs_every_route() -> None:
    records, stdout = run_scenario("tx-batch")
    by_name = contestants_of(records)
    assert set(by_name) == {"aionlmmap-sequential", "aionlmmap-concurrent", "aionlmmap-request-many", "aionlmmap-request-many-pure", "pyroute2-iproute", "pyroute2-async", "ip-batch"}
    for record in by_name.values():
        assert_ok(record)
        assert record["count"] == N and record["installed"] == N
    assert "== Scenario 4: TX batching" in stdout


def test_geometry_scenario_sweeps_frame_sizes_and_counts() -> None:
    records, stdout = run_scenario("geometry")
    by_name = contestants_of(records)
    assert len(by_name) == 12
    for record in by_name.values():
        assert_ok(record)
        assert record["count"] >= N
    # Frames smaller than a dump chunk spill into COPY frames; the default holds a chunk.
    assert by_name["4096x64"]["copy_frames"] > 0
    assert by_name["36864x64"]["copy_frames"] == 0
    assert "== Scenario 5: RX ring geometry" in stdout


def test_frames_scenario_relays_or_says_why_not() -> None:
    records, _stdout = run_scenario("frames")
    assert records and all(record["scenario"] == "frames" for record in records)
    assert all(record.get("status") != "failed" for record in records), records
