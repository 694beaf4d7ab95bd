"""End-to-end tests of the `aionlmmap` command (run as a subprocess, in a
throwaway namespace) and of the examples."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import shutil
import subprocess
import sys

import pytest

from conftest import ip
from rtnl_helpers import LINK_KEYS, NEIGH_KEYS, ROUTE_KEYS, RULE_KEYS, build_random_config, ip_json, only, quiet_ipv6

ROOT = pathlib.Path(__file__).parent.parent
COMMAND = [sys.executable, "-m", "aionlmmap"]


def aionlmmap(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize(
    ("cli_args", "ip_args", "keys"),
    [
        (["links"], ["link", "show"], LINK_KEYS),
        (["routes"], ["route", "show"], ROUTE_KEYS),
        (["routes", "--table", "all"], ["route", "show", "table", "all"], ROUTE_KEYS),
        (["routes", "--table", "100"], ["route", "show", "table", "100"], ROUTE_KEYS),
        (["routes", "-6"], ["-6", "route", "show"], ROUTE_KEYS),
        (["neighbours"], ["neigh", "show"], NEIGH_KEYS),
        (["rules"], ["rule", "show"], RULE_KEYS),
        (["rules", "-6"], ["-6", "rule", "show"], RULE_KEYS),
    ],
)
def test_dump_json_equals_ip_json(netns: str, cli_args: list[str], ip_args: list[str], keys: set[str]) -> None:
    build_random_config(netns, 11)
    ours = json.loads(aionlmmap("dump", *cli_args, "--json", "--netns", netns).stdout)
    assert only(ours, keys) == only(ip_json(netns, *ip_args), keys)


@pytest.mark.parametrize("family", [[], ["-4"], ["-6"]])
def test_dump_addresses_json_equals_ip_json(netns: str, family: list[str]) -> None:
    build_random_config(netns, 12)
    ours = json.loads(aionlmmap("dump", "addresses", *family, "--json", "--netns", netns).stdout)
    theirs = ip_json(netns, *family, "address", "show")
    assert only(ours, LINK_KEYS | {"addr_info"}) == only(theirs, LINK_KEYS | {"addr_info"})


def test_dump_routes_json_is_byte_identical_to_ip(netns: str) -> None:
    ip(netns, "link", "add", "d0", "type", "bridge")
    ip(netns, "link", "set", "d0", "up")
    batch = "".join(f"route add 10.5.{index // 200}.{index % 200}/32 dev d0\n" for index in range(1000))
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input=batch, text=True, check=True, timeout=60)
    ours = aionlmmap("dump", "routes", "--json", "--netns", netns).stdout
    assert ours == subprocess.run(["ip", "-n", netns, "-j", "route", "show"], capture_output=True, text=True, check=True).stdout


def test_dump_routes_json_of_varied_routes_is_byte_identical_to_ip(netns: str) -> None:
    # Routes that share a layout but differ in gateway, metric, protocol,
    # scope, type, prefix length and table, plus IPv6: every template of
    # the streaming path, and the "table" a one-table dump leaves out.
    quiet_ipv6(netns)
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "link", "set", "d0", "up")
    ip(netns, "link", "set", "d1", "up")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "d0")
    ip(netns, "addr", "add", "2001:db8::1/64", "dev", "d0", "nodad")
    lines = []
    for index in range(600):
        dst = f"10.6.{index // 8}.{(index % 8) * 16}/{28 + index % 5}"
        table, metric = ("main", "100", "200")[index % 3], (0, 5, 100)[index % 4 % 3]
        if index % 7 == 0:
            lines.append(f"route add {('blackhole', 'unreachable')[index % 2]} {dst} table {table} metric {metric}")
        else:
            via = f"via 192.0.2.{2 + index % 9} " if index % 2 else ""
            scope = "scope link" if not via and index % 3 == 0 else ""
            lines.append(f"route add {dst} {via}dev d0 table {table} metric {metric} proto {('static', 'boot', '99', 'bird')[index % 4]} {scope}")
    lines += [f"route add 2001:db8:{index:x}::/{(48, 64, 128)[index % 3]} dev d0 metric {(1024, 5)[index % 2]} table {('main', '100')[index % 2]}" for index in range(100)]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True, timeout=60)
    for cli_args, ip_args in [([], []), (["--table", "100"], ["table", "100"]), (["--table", "all"], ["table", "all"]), (["-6"], ["-6"]), (["-6", "--table", "100"], ["-6", "table", "100"])]:
        ip_command = ["ip", "-n", netns, "-j", *(["-6"] if "-6" in ip_args else []), "route", "show", *[arg for arg in ip_args if arg != "-6"]]
        theirs = subprocess.run(ip_command, capture_output=True, text=True, check=True).stdout
        assert aionlmmap("dump", "routes", *cli_args, "--json", "--netns", netns).stdout == theirs, cli_args


def test_dump_plain_tables_name_every_object(netns: str) -> None:
    build_random_config(netns, 13)
    links = aionlmmap("dump", "links", "--netns", netns).stdout
    assert all(name in links for name in ("va0", "br0", "mv0@va0", "vx0", "ifb0", "master br0"))
    routes = aionlmmap("dump", "routes", "--table", "all", "--netns", netns).stdout
    assert "192.168.77.0/24" in routes and "table local" in routes
    assert "lookup 100" in aionlmmap("dump", "rules", "--netns", netns).stdout


def test_bad_arguments_exit_with_a_message(netns: str) -> None:
    result = subprocess.run([*COMMAND, "dump", "routes", "--netns", "no-such-netns-x"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no-such-netns-x" in result.stderr
    result = subprocess.run([*COMMAND, "dump", "links", "--table", "5", "--netns", netns], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--table applies to routes only" in result.stderr


async def read_line(stream: asyncio.StreamReader, timeout: float = 20.0) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout)
    assert line, "the command exited early"
    return line.decode()


async def lines_until(stream: asyncio.StreamReader, predicate, limit: int = 500) -> list[str]:  # type: ignore[no-untyped-def]
    seen = []
    for _ in range(limit):
        line = await read_line(stream)
        seen.append(line)
        if predicate(line):
            return seen
    raise AssertionError(f"no matching line in {seen[-5:]}")


async def test_monitor_json_lines_show_changes_and_exit_cleanly_on_sigterm(netns: str) -> None:
    process = await asyncio.create_subprocess_exec(*COMMAND, "monitor", "--json", "--netns", netns, "--kinds", "link,address,route",
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert stdout_is(process)
        first = json.loads(await read_line(process.stdout))  # type: ignore[arg-type]
        assert first["action"] == "new" and first["kind"] in ("link", "address", "route")
        ip(netns, "link", "add", "j0", "type", "veth", "peer", "name", "j1")
        line = await lines_until(process.stdout, lambda text: '"ifname":"j0"' in text)  # type: ignore[arg-type]
        event = json.loads(line[-1])
        assert (event["action"], event["kind"], event["object"]["ifname"]) == ("new", "link", "j0")
        ip(netns, "link", "del", "j0")
        line = await lines_until(process.stdout, lambda text: '"action":"del"' in text and '"j0"' in text)  # type: ignore[arg-type]
        assert json.loads(line[-1])["kind"] == "link"
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    assert b"Traceback" not in await process.stderr.read()  # type: ignore[union-attr]


async def test_monitor_follows_nexthop_objects(netns: str) -> None:
    ip(netns, "link", "add", "n0", "type", "veth", "peer", "name", "n1")
    ip(netns, "link", "set", "n0", "up")
    ip(netns, "link", "set", "n1", "up")
    ip(netns, "addr", "add", "10.77.0.1/24", "dev", "n0")
    process = await asyncio.create_subprocess_exec(*COMMAND, "monitor", "--json", "--netns", netns, "--kinds", "nexthop",
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        await asyncio.sleep(1)  # the monitor's initial dump (no nexthops yet)
        ip(netns, "nexthop", "add", "id", "7", "via", "10.77.0.2", "dev", "n0")
        line = await lines_until(process.stdout, lambda text: '"kind":"nexthop"' in text)  # type: ignore[arg-type]
        event = json.loads(line[-1])
        assert (event["action"], event["object"]["id"], event["object"]["gateway"]) == ("new", 7, "10.77.0.2")
        ip(netns, "nexthop", "del", "id", "7")
        line = await lines_until(process.stdout, lambda text: '"action":"del"' in text)  # type: ignore[arg-type]
        assert json.loads(line[-1])["object"]["id"] == 7
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    assert b"Traceback" not in await process.stderr.read()  # type: ignore[union-attr]


def stdout_is(process: asyncio.subprocess.Process) -> bool:
    return process.stdout is not None


async def test_default_view_prints_state_then_follows_until_sigint(netns: str) -> None:
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "lo")
    process = await asyncio.create_subprocess_exec(*COMMAND, "--netns", netns, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        header = await lines_until(process.stdout, lambda text: text.startswith("Following changes"))  # type: ignore[arg-type]
        text = "".join(header)
        assert "Links (1)" in text and "192.0.2.1/24" in text and "Routes (" in text
        ip(netns, "route", "add", "198.51.100.0/24", "dev", "lo")
        lines = await lines_until(process.stdout, lambda text: "198.51.100.0/24" in text)  # type: ignore[arg-type]
        assert lines[-1].startswith("new route")
        # Nothing the overview printed is repeated as an event.
        assert not any("192.0.2.1/24" in line for line in lines)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    assert b"Traceback" not in await process.stderr.read()  # type: ignore[union-attr]


def test_info_prints_the_backend() -> None:
    output = aionlmmap("info").stdout
    assert "emulated" in output or "kernel" in output


def test_console_script_entry_point_is_main() -> None:
    # The installed script is what pyproject names: the lean entry point,
    # which hands everything but a plain `dump sockets` to cli.main.
    import tomllib

    from aionlmmap._entry import main

    with open(ROOT / "pyproject.toml", "rb") as project:
        assert tomllib.load(project)["project"]["scripts"]["aionlmmap"] == "aionlmmap._entry:main"
    assert callable(main)
    result = subprocess.run(["aionlmmap", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "dump" in result.stdout and "monitor" in result.stdout
    script = shutil.which("aionlmmap")
    assert script is not None and "aionlmmap._entry" in open(script).read()


def test_topology_example_pings_across_two_namespaces() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "topology.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ping ok" in result.stdout


async def test_route_monitor_example_tracks_routes(netns: str) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "examples" / "route_monitor.py"), "--netns", netns,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        await lines_until(process.stdout, lambda text: text.startswith("routes:"))  # type: ignore[arg-type]
        ip(netns, "route", "add", "203.0.113.0/24", "dev", "lo")
        lines = await lines_until(process.stdout, lambda text: "203.0.113.0/24" in text)  # type: ignore[arg-type]
        assert lines[-1].startswith("+")
        ip(netns, "route", "del", "203.0.113.0/24", "dev", "lo")
        lines = await lines_until(process.stdout, lambda text: "203.0.113.0/24" in text)  # type: ignore[arg-type]
        assert lines[-1].startswith("-")
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
