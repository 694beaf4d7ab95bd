"""Generic netlink against iproute2's ``genl ctrl list`` and ethtool on
veths in a throwaway namespace; the declaration interpreter on generated
values; notifications of ethtool's monitor group."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionlmmap import DecodeError
from aionlmmap.families import genl
from aionlmmap.families.genl.ethtool import Ethtool
from aionlmmap.families.genl.spec import DecodeCounts, Family
from tests.conftest import ip, run

pytestmark = pytest.mark.integration


def genl_ctrl_list(netns: str) -> dict[str, dict[str, Any]]:
    """``genl ctrl list`` run inside the namespace (families that are not
    netns-aware are hidden outside the initial namespace)."""
    out = run("ip", "netns", "exec", netns, "genl", "ctrl", "list").stdout
    families: dict[str, dict[str, Any]] = {}
    for block in out.split("Name: ")[1:]:
        name = block.split()[0]
        head = re.search(r"ID: (0x[0-9a-f]+)\s+Version: (0x[0-9a-f]+)\s+header size: (\d+)\s+max attribs: (\d+)", block)
        assert head is not None, block
        commands, _, group_text = block.partition("multicast groups:")
        # each command: "#n:  ID-0x.." and, for some, "Capabilities (0x..)"
        ops = [(int(op, 16), int(cap, 16) if cap else None) for op, cap in re.findall(r"#\d+:\s+ID-(0x[0-9a-f]+)\s*\n(?:\s*Capabilities \((0x[0-9a-f]+)\))?", commands)]
        groups = {gname: int(gid, 16) for gid, gname in re.findall(r"ID-(0x[0-9a-f]+)\s+name: (\S+)", group_text)}
        families[name] = {"id": int(head[1], 16), "version": int(head[2], 16), "hdrsize": int(head[3]), "maxattr": int(head[4]), "ops": ops, "groups": groups}
    return families


async def test_families_equal_genl_ctrl_list(netns: str) -> None:
    async with genl.open(netns=netns) as gn:
        ours = {family.name: family for family in await gn.families()}
    tool = genl_ctrl_list(netns)
    assert sorted(ours) == sorted(tool)
    for name, expected in tool.items():
        family = ours[name]
        assert (family.id, family.version, family.hdrsize, family.maxattr) == (expected["id"], expected["version"], expected["hdrsize"], expected["maxattr"]), name
        assert [op for op, _flags in family.ops] == [op for op, _caps in expected["ops"]], name
        assert all(caps is None or caps == flags for (_op, flags), (_same, caps) in zip(family.ops, expected["ops"])), name
        assert family.mcast_groups == expected["groups"], name


async def test_resolve_on_demand_and_unknown_families(netns: str) -> None:
    async with genl.open(netns=netns) as gn:
        info = await gn.resolve("ethtool")  # no dump first: asked on demand
        assert info.name == "ethtool" and "monitor" in info.mcast_groups
        assert await gn.resolve("ethtool") is info  # cached on this ring
        with pytest.raises(FileNotFoundError, match="not registered"):
            await gn.resolve("no-such-family")
        with pytest.raises(ValueError, match="no declaration"):
            await gn.request("tcp_metrics", "get")


async def test_policy_of_netdev(netns: str) -> None:
    async with genl.open(netns=netns) as gn:
        policy = await gn.policy("netdev")
        info = await gn.resolve("netdev")
    assert set(policy["ops"]) == {op for op, _flags in info.ops}
    do_index = policy["ops"][1]["do"]  # dev-get
    assert policy["policies"][do_index][1]["type"] == "u32"  # NETDEV_A_DEV_IFINDEX


def _veth(netns: str) -> None:
    ip(netns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
    ip(netns, "link", "set", "veth0", "up")
    ip(netns, "link", "set", "veth1", "up")


def _ethtool_fields(netns: str, dev: str) -> dict[str, str]:
    out = run("ip", "netns", "exec", netns, "ethtool", dev).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines()[1:]) if value.strip()}


async def test_ethtool_equals_the_tool_on_a_veth(netns: str) -> None:
    _veth(netns)
    ip(netns, "link", "set", "veth1", "down")  # one side down: veth0 has no carrier
    async with genl.open(netns=netns) as gn:
        shown = {dev: (await Ethtool(gn).show(dev)).to_json() for dev in ("veth0", "veth1", "lo")}
    for dev, item in shown.items():
        tool = _ethtool_fields(netns, dev)
        if "Speed" in tool:
            assert tool["Speed"] == (f"{item['speed']}Mb/s" if item["speed"] else "Unknown!"), dev
            assert tool["Duplex"] == item["duplex"], dev
            assert tool["Auto-negotiation"] == ("on" if item["auto-negotiation"] else "off")
            assert tool["Port"] == item["port"] and tool["PHYAD"] == str(item["phyad"]) and tool["Transceiver"] == item["transceiver"]
            assert tool["MDI-X"] == item["mdi-x"]
        assert tool["Link detected"] == ("yes" if item["link-detected"] else "no"), dev
    assert shown["veth0"]["link-detected"] is False
    channels = run("ip", "netns", "exec", netns, "ethtool", "-l", "veth0").stdout.split("Current hardware settings:")
    maximums = dict(re.findall(r"(RX|TX):\s+(\d+)", channels[0]))
    current = dict(re.findall(r"(RX|TX):\s+(\d+)", channels[1]))
    assert shown["veth0"]["channels"] == {"rx-max": int(maximums["RX"]), "tx-max": int(maximums["TX"]), "rx-count": int(current["RX"]), "tx-count": int(current["TX"])}
    rings = run("ip", "netns", "exec", netns, "ethtool", "-g", "veth0", check=False)
    assert (rings.returncode == 0) == ("rings" in shown["veth0"])
    features = run("ip", "netns", "exec", netns, "ethtool", "-k", "veth0").stdout
    checked = 0
    # ethtool's legacy group names (ethtool's off_flag_def) are not kernel feature names
    legacy = {"rx-checksumming", "tx-checksumming", "scatter-gather", "tcp-segmentation-offload", "generic-segmentation-offload",
              "generic-receive-offload", "large-receive-offload", "rx-vlan-offload", "tx-vlan-offload", "ntuple-filters", "receive-hashing"}  # fmt: skip
    for name, state, fixed in re.findall(r"^\s*([\w-]+): (on|off)( \[fixed\])?", features, flags=re.M):
        if name in legacy:
            continue
        ours = shown["veth0"]["features"].get(name)
        if ours is None:
            assert state == "off", name  # only bits set somewhere come with names
            continue
        assert ours["active"] == (state == "on"), name
        assert ours["fixed"] == bool(fixed), name
        checked += 1
    assert checked >= 10


async def test_netdev_dev_get_lists_the_links(netns: str) -> None:
    _veth(netns)
    async with genl.open(netns=netns) as gn:
        devices = [dev async for dev in gn.dump("netdev", "dev-get")]
        one = await gn.request("netdev", "dev-get", {"ifindex": devices[-1]["ifindex"]})
    links = json.loads(ip(netns, "-j", "link", "show").stdout)
    assert sorted(dev["ifindex"] for dev in devices) == sorted(link["ifindex"] for link in links)
    assert one == [devices[-1]]
    assert all("xdp-features" in dev for dev in devices)


async def test_ethtool_monitor_reports_changes(netns: str) -> None:
    _veth(netns)
    async with genl.open(netns=netns) as gn:
        events = Ethtool(gn).monitor()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.3)
        run("ip", "netns", "exec", netns, "ethtool", "-L", "veth0", "rx", "2")
        channels = await asyncio.wait_for(first, 5)
        assert channels.op == "channels-ntf" and channels.attrs["rx-count"] == 2 and channels.attrs["header"]["dev-name"] == "veth0"
        run("ip", "netns", "exec", netns, "ethtool", "-K", "veth0", "gro", "on")
        for _ in range(10):
            event = await asyncio.wait_for(events.__anext__(), 5)
            if event.op == "features-ntf":
                break
        assert event.op == "features-ntf"
        assert json.dumps(event.to_json())
        await events.aclose()


# -- the interpreter ---------------------------------------------------------------------
SPEC = {
    "name": "toy",
    "attribute-sets": [
        {"name": "main", "attributes": [
            {"name": "a8", "type": "u8"}, {"name": "a16", "type": "u16"}, {"name": "a32", "type": "u32"}, {"name": "a64", "type": "u64"},
            {"name": "s32", "type": "s32"}, {"name": "be", "type": "u32", "byte-order": "big-endian"}, {"name": "text", "type": "string"},
            {"name": "blob", "type": "binary"}, {"name": "on", "type": "flag"}, {"name": "inner", "type": "nest", "nested-attributes": "inner"},
            {"name": "many", "type": "u32", "multi-attr": True}, {"name": "array", "type": "indexed-array", "sub-type": "nest", "nested-attributes": "inner"},
            {"name": "big", "type": "uint"},
        ]},
        {"name": "inner", "attributes": [{"name": "x", "type": "u32"}, {"name": "label", "type": "string"}]},
    ],
    "operations": {"list": [{"name": "get", "value": 1, "attribute-set": "main", "do": {}}]},
}  # fmt: skip
TOY = Family.from_spec(SPEC)
_inner = st.fixed_dictionaries({}, optional={"x": st.integers(0, 2**32 - 1), "label": st.text(st.characters(min_codepoint=32, max_codepoint=0x7E), max_size=12)})
_values = st.fixed_dictionaries({}, optional={
    "a8": st.integers(0, 255), "a16": st.integers(0, 2**16 - 1), "a32": st.integers(0, 2**32 - 1), "a64": st.integers(0, 2**64 - 1),
    "s32": st.integers(-(2**31), 2**31 - 1), "be": st.integers(0, 2**32 - 1), "text": st.text(st.characters(min_codepoint=32, max_codepoint=0x7E), max_size=20),
    "blob": st.binary(max_size=40), "on": st.just(True), "inner": _inner, "many": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    "array": st.lists(_inner, max_size=4), "big": st.integers(0, 2**64 - 1),
})  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_values)
def test_declared_attributes_round_trip(values: dict[str, Any]) -> None:
    counts = DecodeCounts()
    data = TOY.encode("main", values)
    assert TOY.decode("main", data, 0, len(data), counts) == values
    assert counts.unknown_attributes == 0


def test_unknown_attributes_are_counted_and_bad_sizes_raise() -> None:
    counts = DecodeCounts()
    data = TOY.encode("main", {"a32": 7}) + struct.pack("=HH", 8, 99) + b"new!"
    assert TOY.decode("main", data, 0, len(data), counts) == {"a32": 7, "attr-99": b"new!"}
    assert counts.unknown_attributes == 1
    short = struct.pack("=HH", 6, 3) + b"\x01\x02\0\0"  # a32 with 2 bytes
    with pytest.raises(DecodeError, match="a32"):
        TOY.decode("main", short, 0, len(short), counts)
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        TOY.encode("main", {"nope": 1})
    with pytest.raises(ValueError, match="unknown set"):
        Family.from_spec({"name": "bad", "attribute-sets": [{"name": "s", "attributes": [{"name": "n", "type": "nest", "nested-attributes": "missing"}]}]})


def test_cli_genl_families_and_ethtool(netns: str) -> None:
    _veth(netns)
    families = json.loads(run(sys.executable, "-m", "aionlmmap", "dump", "genl-families", "--json", "--netns", netns).stdout)
    tool = genl_ctrl_list(netns)
    assert {item["name"]: item["id"] for item in families} == {name: value["id"] for name, value in tool.items()}
    item = json.loads(run(sys.executable, "-m", "aionlmmap", "ethtool", "veth0", "--json", "--netns", netns).stdout)
    assert item["ifname"] == "veth0" and item["speed"] == 10000 and item["link-detected"] is True
    bad = run(sys.executable, "-m", "aionlmmap", "ethtool", "nosuchdev", "--netns", netns, check=False)
    assert bad.returncode == 1 and "aionlmmap:" in bad.stderr
