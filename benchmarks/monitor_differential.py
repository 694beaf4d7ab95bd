"""Differential test of ``rtnl.monitor(resync=True)``: random changes made
with ``ip -batch`` in a throwaway namespace, and at each checkpoint the
view built only from the monitor's events must equal a fresh dump, object
by object (``to_json()`` of every object, keyed by ``obj.key``).

    python -m benchmarks.monitor_differential [--operations 20000] [--seed N] [--runs N] [--uvloop] [--quiet]

Prints one JSON line of figures (operations, checkpoints, mismatches, ...)
and exits non-zero on a mismatch, printing the seed, the failing batch and
the difference. tests/test_rtnl_monitor_differential.py runs a shorter
version in the suite.

What it changes (whatever this kernel builds): veth pairs and bridges
(add, delete, up, down, mtu, rename, enslave, release; never both ends of
a veth pair in bridges: an L2 loop storms for good, and each checkpoint
first checks ``ip -j link`` for one), IPv4 and IPv6
addresses (with and without lifetimes, replace, flush), routes in several
tables (add, delete, replace, change, append, prepend, flush; gateways,
priorities, tos, types, multipath with weights; RTA_METRICS such as mtu where
the library decodes them), neighbours (permanent, noarp,
stale, reachable; add, replace, delete), rules, and nexthop objects
(IPv4, IPv6 and blackhole nexthops, groups with weights, resilient
groups; add, replace, delete) with IPv4 and IPv6 routes using them (``nhid``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from aionlmmap import rtnl
from aionlmmap.families.rtnl.objects import Route
from aionlmmap.families.rtnl.state import KINDS

ALL_KINDS = list(KINDS)
#: ``to_json()`` keys whose values count down in the kernel (remaining
#: lifetimes): the view holds them as of the last notification
_COUNTDOWN = ("valid_life_time", "preferred_life_time", "expires")
_FOREVER = 4294967295
_TABLES = ["main", "100", "200"]
_SETTLE_TIMEOUT = 8.0


def normalized(kind: str, obj: Any) -> Any:
    out = obj.to_json()
    for key in _COUNTDOWN:
        if key in out and out[key] != _FOREVER:
            out[key] = "countdown"
    resilient = out.get("resilient_args")
    if resilient is not None and resilient.get("unbalanced_time"):
        # How long a resilient group has been unbalanced: a clock the
        # kernel advances with no notification (nh_res_table_upkeep).
        out["resilient_args"] = {**resilient, "unbalanced_time": "clock"}
    return out


class View:
    """What a consumer holds after applying every event."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, Any], Any] = {}
        self.events = 0
        self.redundant = 0
        self.nexthop_events = 0

    def apply(self, event: Any) -> None:
        key = (event.kind, event.obj.key)
        self.events += 1
        if event.kind == "nexthop":
            self.nexthop_events += 1
        if event.action == "new":
            if self.state.get(key) == event.obj:
                self.redundant += 1
            self.state[key] = event.obj
        elif self.state.pop(key, None) is None:
            self.redundant += 1


def ip_batch(netns: str, lines: list[str]) -> None:
    """Run ``lines`` in order; ``ip -batch`` takes no per-line ``-6``, so
    each run of IPv6 lines is a batch of its own (``ip -6 -batch``)."""
    runs: list[tuple[bool, list[str]]] = []
    for line in lines:
        six = line.startswith("-6 ")
        text = line[3:] if six else line
        if runs and runs[-1][0] == six:
            runs[-1][1].append(text)
        else:
            runs.append((six, [text]))
    for six, texts in runs:
        options = ["-6"] if six else []
        subprocess.run(["ip", "-n", netns, *options, "-force", "-batch", "-"], input="".join(text + "\n" for text in texts), text=True, capture_output=True, check=False)


def ip_json(netns: str, *args: str) -> Any:
    done = subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=False)
    return json.loads(done.stdout or "[]")


class Driver:
    """A seeded source of ``ip`` commands that mostly make sense for the
    namespace as it is (names that exist, gateways on connected subnets);
    the kernel refuses the rest, which is fine (``ip -force``)."""

    def __init__(self, seed: int, nexthops: bool) -> None:
        self.rng = random.Random(seed)
        self.links: dict[str, str] = {}  #: name -> "veth" | "bridge"
        self.peers: dict[str, str] = {}
        self.serial = 0
        self.nexthops = nexthops
        self.metrics = hasattr(Route, "metrics")
        self.nexthop_ids: list[int] = []
        self.up: set[str] = set()  #: links set up (as far as the driver knows)
        #: veth -> its bridge: at most one end of a pair is ever enslaved, so
        #: no two bridges (or one bridge twice) are joined by a veth pair and
        #: no L2 loop forms (without STP a loop floods frames forever, and
        #: the bridge sends an RTM_NEWNEIGH per learned move: a notification
        #: storm of hundreds of thousands of AF_BRIDGE fdb entries, in which
        #: no monitor can settle because the kernel never does)
        self.masters: dict[str, str] = {}

    # -- vocabulary ----------------------------------------------------------------------
    def _name(self) -> str:
        self.serial += 1
        return f"t{self.serial}"

    def _dev(self) -> str:
        return self.rng.choice(sorted(self.links)) if self.links else "lo"

    def _carrier_dev(self) -> str:
        """A device likely to have a carrier (a veth up with its peer up, or
        lo): nexthops refuse the others (nh_create_ipv4/ipv6)."""
        ready = sorted(name for name in self.up if name in self.links and self.peers.get(name) in self.up)
        return self.rng.choice(ready) if ready and self.rng.random() < 0.9 else self._dev()

    def _bring_up(self) -> str:
        """Lines that set a veth pair up (most links are down most of the
        time, and nexthops need a carrier), or none."""
        veths = sorted(self.peers)
        if not veths or self.rng.random() < 0.5:
            return ""
        name = self.rng.choice(veths)
        self.up.update((name, self.peers[name]))
        return f"link set {name} up\nlink set {self.peers[name]} up\n"

    def _v4_subnet(self) -> int:
        return self.rng.randrange(0, 6)

    def _v4_address(self) -> str:
        return f"10.{self._v4_subnet()}.0.{self.rng.randrange(1, 6)}"

    def _v6_address(self) -> str:
        return f"2001:db8:{self.rng.randrange(0, 6)}::{self.rng.randrange(1, 6):x}"

    def _v4_gateway(self) -> str:
        return f"10.{self._v4_subnet()}.0.{self.rng.randrange(1, 9)}"

    def _v6_gateway(self) -> str:
        return self.rng.choice([f"2001:db8:{self.rng.randrange(0, 6)}::{self.rng.randrange(1, 9):x}", f"fe80::{self.rng.randrange(1, 5)}"])

    def _lifetime(self) -> str:
        if self.rng.random() < 0.6:
            return ""
        valid = self.rng.randrange(30, 3600)
        return f" valid_lft {valid} preferred_lft {self.rng.randrange(0, valid)}"

    def _prefix(self, family: int) -> str:
        if family == 4:
            length = self.rng.choice([8, 16, 24, 24, 32])
            value = self.rng.randrange(0, 4)
            return {8: "172.0.0.0/8", 16: f"172.{16 + value}.0.0/16", 24: f"172.16.{value}.0/24", 32: f"172.16.0.{value}"}[length] if self.rng.random() < 0.9 else "default"
        length = self.rng.choice([48, 64, 64, 128])
        value = self.rng.randrange(0, 4)
        return {48: f"2001:db8:{100 + value:x}::/48", 64: f"2001:db8:100:{value:x}::/64", 128: f"2001:db8:100::{value + 1:x}"}[length] if self.rng.random() < 0.9 else "default"

    def _route_spec(self, family: int) -> str:
        rng = self.rng
        shape = rng.random()
        if shape < 0.1:
            spec = rng.choice(["blackhole", "unreachable", "prohibit"])
        elif shape < 0.25 and len(self.links) > 1:
            hops = []
            for _ in range(rng.randrange(2, 4)):
                gateway = self._v4_gateway() if family == 4 else self._v6_gateway()
                hops.append(f"nexthop via {gateway} dev {self._dev()} weight {rng.randrange(1, 4)}")
            spec = " ".join(hops)
        elif shape < 0.4 and self.nexthop_ids:
            spec = f"nhid {rng.choice(self.nexthop_ids)}"
        elif shape < 0.6:
            spec = f"dev {self._dev()}"
        else:
            spec = f"via {self._v4_gateway() if family == 4 else self._v6_gateway()} dev {self._dev()}"
        if rng.random() < 0.5:
            spec += f" metric {rng.choice([1, 10, 100])}"
        if family == 4 and rng.random() < 0.1:
            spec += " tos 0x10"
        if rng.random() < 0.4:
            spec += f" table {rng.choice(_TABLES)}"
        if rng.random() < 0.15:
            spec += f" proto {rng.choice(['static', 'boot', '99'])}"
        if self.metrics and rng.random() < 0.1:
            # Only where the library decodes RTA_METRICS: two IPv4 routes
            # differing only in metrics are two routes to the kernel.
            spec += f" mtu {rng.randrange(1280, 1500)}"
        return spec

    # -- operations ------------------------------------------------------------------------
    def operation(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12 or not self.links:
            return self._link_operation()
        if roll < 0.32:
            return self._address_operation()
        if roll < 0.78:
            return self._route_operation()
        if roll < 0.82:
            return self._neighbour_operation()
        if roll < 0.86 or not self.nexthops:
            return self._rule_operation()
        return self._nexthop_operation()

    def _link_operation(self) -> str:
        rng = self.rng
        roll = rng.random()
        if (roll < 0.2 or not self.links) and len(self.links) < 10:
            if rng.random() < 0.8:
                name, peer = self._name(), self._name()
                self.links[name] = self.links[peer] = "veth"
                self.peers[name], self.peers[peer] = peer, name
                return f"link add {name} type veth peer name {peer}"
            name = self._name()
            self.links[name] = "bridge"
            return f"link add {name} type bridge"
        name = self._dev()
        if roll < 0.27:
            for gone in (name, self.peers.pop(name, None)):
                if gone is not None:
                    self.links.pop(gone, None)
                    self.peers.pop(gone, None)
                    self.masters.pop(gone, None)
            # A bridge's ports are released when it goes (br_dev_delete).
            self.masters = {port: bridge for port, bridge in self.masters.items() if bridge != name}
            return f"link del {name}"
        if roll < 0.62:
            self.up.add(name)
            return f"link set {name} up"
        if roll < 0.75:
            self.up.discard(name)
            return f"link set {name} down"
        if roll < 0.82:
            return f"link set {name} mtu {rng.choice([1280, 1400, 1500, 9000])}"
        if roll < 0.88:
            bridges = [link for link, kind in self.links.items() if kind == "bridge"]
            if bridges and self.links[name] == "veth" and self.peers.get(name) not in self.masters:
                self.masters[name] = rng.choice(bridges)
                return f"link set {name} master {self.masters[name]}"
            self.masters.pop(name, None)
            return f"link set {name} nomaster"
        # Renaming needs the link down (dev_change_name: EBUSY when up).
        new = self._name()
        self.up.discard(name)
        self.links[new] = self.links.pop(name)
        peer = self.peers.pop(name, None)
        if peer is not None:
            self.peers[new], self.peers[peer] = peer, new
        if name in self.masters:
            self.masters[new] = self.masters.pop(name)
        self.masters = {port: new if bridge == name else bridge for port, bridge in self.masters.items()}
        return f"link set {name} down\nlink set {name} name {new}"

    def _address_operation(self) -> str:
        rng = self.rng
        dev = self._dev()
        roll = rng.random()
        if rng.random() < 0.5:
            address = f"{self._v4_address()}/{rng.choice([16, 24, 24, 32])}"
        else:
            address = f"{self._v6_address()}/{rng.choice([64, 64, 80, 128])}" + rng.choice(["", " nodad", " noprefixroute"])
        if roll < 0.5:
            return f"addr add {address} dev {dev}{self._lifetime()}"
        if roll < 0.6:
            return f"addr replace {address} dev {dev}{self._lifetime()}"
        if roll < 0.95:
            return f"addr del {address.split()[0]} dev {dev}"
        return f"addr flush dev {dev}" + rng.choice(["", " scope global"])

    def _route_operation(self) -> str:
        rng = self.rng
        family = rng.choice([4, 6])
        verb = rng.choices(["add", "del", "replace", "change", "append", "prepend", "flush"], [30, 25, 15, 8, 10, 8, 4])[0]
        prefix = "" if family == 4 else "-6 "
        if verb == "flush":
            return f"{prefix}route flush " + rng.choice([f"table {rng.choice(_TABLES)}", f"dev {self._dev()}", "proto static"])
        if verb == "del" and rng.random() < 0.5:
            extra = f" table {rng.choice(_TABLES)}" if rng.random() < 0.4 else ""
            return f"{prefix}route del {self._prefix(family)}{extra}"
        return f"{prefix}route {verb} {self._prefix(family)} {self._route_spec(family)}"

    def _neighbour_operation(self) -> str:
        rng = self.rng
        dev = self._dev()
        dst = f"10.{self._v4_subnet()}.0.{rng.randrange(10, 14)}" if rng.random() < 0.5 else f"2001:db8:{rng.randrange(0, 6)}::{rng.randrange(10, 14):x}"
        verb = rng.choices(["add", "replace", "change", "del"], [3, 3, 1, 3])[0]
        if verb == "del":
            return f"neigh del {dst} dev {dev}"
        lladdr = f"02:00:00:00:{rng.randrange(0, 4):02x}:{rng.randrange(0, 256):02x}"
        state = rng.choice(["permanent", "noarp", "stale", "reachable"])
        return f"neigh {verb} {dst} lladdr {lladdr} dev {dev} nud {state}"

    def _rule_operation(self) -> str:
        rng = self.rng
        family = rng.choice(["", "-6 "])
        selector = f"pref {rng.randrange(100, 110)}"
        if rng.random() < 0.5:
            selector += " from " + (f"10.{rng.randrange(0, 4)}.0.0/16" if not family else f"2001:db8:{rng.randrange(0, 4)}::/48")
        if rng.random() < 0.3:
            selector += f" fwmark {rng.randrange(1, 4)}"
        action = rng.choice([f"table {rng.choice(_TABLES)}", "blackhole", "unreachable", "prohibit"])
        verb = "add" if rng.random() < 0.55 else "del"
        return f"{family}rule {verb} {selector} {action}"

    def _nexthop_operation(self) -> str:
        rng = self.rng
        identifier = rng.randrange(1, 10)
        if rng.random() < 0.25:
            if self.nexthop_ids and rng.random() < 0.8:
                identifier = rng.choice(self.nexthop_ids)
            if identifier in self.nexthop_ids:
                self.nexthop_ids.remove(identifier)
            return f"nexthop del id {identifier}"
        if identifier not in self.nexthop_ids:
            self.nexthop_ids.append(identifier)
        verb = rng.choice(["add", "add", "replace"])
        prelude = self._bring_up()
        others = [member for member in self.nexthop_ids if member != identifier]
        roll = rng.random()
        if roll < 0.3 and others:
            # Groups get ids of their own (10-12): the kernel refuses to
            # replace a nexthop with a group and the reverse; groups of
            # groups are refused too, which is fine.
            self.nexthop_ids.remove(identifier)
            identifier = rng.randrange(10, 13)
            if identifier not in self.nexthop_ids:
                self.nexthop_ids.append(identifier)
            others = [member for member in others if member < 10]
            chosen = rng.sample(others, min(len(others), rng.randrange(1, 4))) or [1]
            if rng.random() < 0.5:
                # Members made (or remade) just before, so that the group
                # mostly exists: two gateways of one family on one device.
                dev = self._carrier_dev()
                prelude += "".join(f"nexthop replace id {member} via {self._v4_gateway()} dev {dev} onlink\n" for member in chosen)
            members = "/".join(f"{member},{rng.randrange(1, 4)}" if rng.random() < 0.4 else str(member) for member in chosen)
            kind = rng.choice(["", "", "", f" type resilient buckets {rng.choice([4, 8, 16])} idle_timer {rng.choice([0, 1, 120])}"])
            return f"{prelude}nexthop {verb} id {identifier} group {members}{kind}"
        if roll < 0.35:
            return f"{prelude}nexthop {verb} id {identifier} blackhole"
        if roll < 0.6:
            return f"{prelude}nexthop {verb} id {identifier} via {self._v6_gateway()} dev {self._carrier_dev()}"
        if roll < 0.7:
            return f"{prelude}nexthop {verb} id {identifier} dev {self._carrier_dev()}"
        # onlink: the gateway need not be on a connected subnet (a device
        # that is up is still needed: nh_create_ipv4).
        return f"{prelude}nexthop {verb} id {identifier} via {self._v4_gateway()} dev {self._carrier_dev()}" + (" onlink" if rng.random() < 0.5 else "")


def setup(netns: str) -> None:
    """Kernel settings for a run that finishes: no IPv6 router solicitations
    (they repeat for minutes), DAD on (tentative addresses are part of the
    test) but quick."""
    for line in ("net.ipv6.conf.all.router_solicitations=0", "net.ipv6.conf.default.router_solicitations=0",
                 "net.ipv6.conf.default.dad_transmits=1", "net.ipv6.conf.default.accept_dad=1"):  # fmt: skip
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", line], check=False)


async def fresh(netns: str, kinds: list[str], client: Any = None) -> dict[tuple[str, Any], Any]:
    """A fresh dump of ``kinds``, normalized and keyed (on ``client`` if given)."""
    if client is None:
        async with rtnl.open(netns=netns) as nl:
            snapshot = await nl.snapshot(kinds)  # type: ignore[arg-type]
    else:
        snapshot = await client.snapshot(kinds)
    return {(kind, obj.key): normalized(kind, obj) for kind, objects in snapshot.items() for obj in objects}


def bridged_pairs(links: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Veth pairs (``ip -j link show``) with both ends bridge ports: each
    such pair closes an L2 loop (see ``Driver.masters``)."""
    masters = {link["ifname"]: link.get("master") for link in links}
    return sorted({tuple(sorted((link["ifname"], link["link"]))) for link in links if link.get("master") and masters.get(link.get("link"))})  # type: ignore[misc]


def ip_json_batch(netns: str, options: list[str], commands: list[str], optional_last: bool = False) -> list[Any]:
    """One ``ip -j -batch`` of ``commands``: one JSON document per command
    (a process per checkpoint instead of one per command). With
    ``optional_last`` the last command may fail (``ip nexthop`` before Linux
    5.3): it then lists nothing."""
    done = subprocess.run(["ip", "-n", netns, "-j", *options, "-batch", "-"], input="".join(command + "\n" for command in commands),
                          capture_output=True, text=True, check=False)  # fmt: skip
    decoder = json.JSONDecoder()
    documents, text, position = [], done.stdout, 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    if optional_last and len(documents) == len(commands) - 1:
        documents.append([])
    if len(documents) != len(commands):
        raise AssertionError(f"ip -batch printed {len(documents)} documents for {commands}: {done.stderr}")
    return documents


def ip_counts(netns: str) -> dict[str, int]:
    """How many objects ``ip`` itself lists: the fresh dump must hold as many."""
    links, addresses, neighbours, nexthops = ip_json_batch(netns, [], ["link show", "address show", "neigh show nud all", "nexthop show"], optional_last=True)
    routes4, rules4 = ip_json_batch(netns, ["-4"], ["route show table all", "rule show"])
    routes6, rules6 = ip_json_batch(netns, ["-6"], ["route show table all", "rule show"])
    return {
        "link": len(links),
        "address": sum(len(link.get("addr_info", [])) for link in addresses),
        "route": len(routes4) + len(routes6),
        "neighbour": len(neighbours),
        "rule": len(rules4) + len(rules6),
        "nexthop": len(nexthops),
    }


def difference(view: dict[Any, Any], kernel: dict[Any, Any]) -> list[str]:
    lines = []
    for key in sorted(set(view) | set(kernel), key=repr):
        if view.get(key) != kernel.get(key):
            lines.append(f"{key[0]} {key[1]!r}:\n    view:   {view.get(key)}\n    kernel: {kernel.get(key)}")
    return lines


async def run(netns: str, *, operations: int, seed: int, batch: int = 100, poll: float = 0.25, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``operations`` random changes in batches of ``batch``; after each
    batch the view must equal a fresh dump within _SETTLE_TIMEOUT seconds.
    Returns the figures; raises AssertionError (with the seed) on a mismatch."""
    setup(netns)
    kinds = ALL_KINDS
    driver = Driver(seed, nexthops="nexthop" in KINDS)
    view = View()
    figures: dict[str, Any] = {"seed": seed, "operations": 0, "checkpoints": 0, "mismatches": 0, "settle_seconds_max": 0.0, "settle_seconds": 0.0, "dump_more_than_ip": 0,
                               "nexthops_max": 0, "nhid_routes_max": 0}  # fmt: skip
    async with rtnl.open(netns=netns) as nl, rtnl.open(netns=netns) as checker:

        async def consume() -> None:
            async for event in nl.monitor(links=True, addresses=True, routes=True, neighbours=True, rules=True, nexthops=driver.nexthops, poll=poll):
                view.apply(event)

        task = asyncio.create_task(consume())
        started = time.perf_counter()
        try:
            done = 0
            while done < operations:
                lines = [line for _ in range(min(batch, operations - done)) for line in driver.operation().split("\n")]
                await asyncio.to_thread(ip_batch, netns, lines)
                done += min(batch, operations - done)
                figures["operations"] = done
                loops = bridged_pairs(await asyncio.to_thread(ip_json, netns, "link", "show"))
                if loops:
                    # The run's premise (a kernel that holds still between
                    # batches) is gone: a loop storms for good.
                    raise AssertionError(f"the driver made an L2 loop after {done} operations (seed {seed}): veth pairs with both ends bridged: {loops}")
                settle_started = time.perf_counter()
                deadline = settle_started + _SETTLE_TIMEOUT
                while True:
                    await asyncio.sleep(0.05)
                    if task.done():
                        task.result()
                    kernel = await fresh(netns, kinds, checker)
                    mine = {key: normalized(key[0], obj) for key, obj in view.state.items()}
                    counts = ours = None
                    if mine == kernel:
                        # The fresh dump itself must hold at least what ip
                        # lists (the kernel may have added a neighbour since:
                        # retry). More than ip is the dump's business, not the
                        # monitor's: counted, not fatal.
                        counts = await asyncio.to_thread(ip_counts, netns)
                        ours = {kind: sum(1 for key in kernel if key[0] == kind) for kind in counts}
                        if all(ours[kind] >= counts[kind] for kind in counts):
                            if ours != counts:
                                figures["dump_more_than_ip"] += 1
                                kinds_more = figures.setdefault("dump_more_than_ip_kinds", [])
                                kinds_more += [kind for kind in counts if ours[kind] != counts[kind] and kind not in kinds_more]
                            break
                    if time.perf_counter() > deadline:
                        figures["mismatches"] += 1
                        if counts is not None:
                            raise AssertionError(f"fresh dump and ip disagree after {done} operations (seed {seed}): library {ours}, ip {counts}")
                        report = "\n".join(difference(mine, kernel)[:40])
                        raise AssertionError(
                            f"monitor view differs from a fresh dump after {done} operations (seed {seed}); "
                            f"last batch:\n  " + "\n  ".join(lines) + f"\ndifferences:\n{report}"
                        )
                settled = time.perf_counter() - settle_started
                figures["settle_seconds_max"] = max(figures["settle_seconds_max"], round(settled, 3))
                figures["settle_seconds"] = round(figures["settle_seconds"] + settled, 3)
                figures["checkpoints"] += 1
                figures["nexthops_max"] = max(figures["nexthops_max"], sum(1 for key in kernel if key[0] == "nexthop"))
                figures["nhid_routes_max"] = max(figures["nhid_routes_max"], sum(1 for key, obj in kernel.items() if key[0] == "route" and "nhid" in obj))
                if log is not None:
                    log(f"checkpoint {figures['checkpoints']}: {done} operations, {len(kernel)} objects, view exact")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        figures["seconds"] = round(time.perf_counter() - started, 2)
        figures["events"] = view.events
        figures["redundant_events"] = view.redundant
        figures["nexthop_events"] = view.nexthop_events
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=None, help="the first run's seed (default: drawn at random)")
    parser.add_argument("--runs", type=int, default=1, help="runs, each with a fresh random seed after the first")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no line per checkpoint on stderr")
    args = parser.parse_args()
    from aionlmmap._extensions import CORE

    for index in range(args.runs):
        seed = args.seed if args.seed is not None and index == 0 else int.from_bytes(os.urandom(4), "big")
        netns = f"aionlmmap-diff-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        try:
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            log = None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
            coroutine = run(netns, operations=args.operations, seed=seed, batch=args.batch, log=log)
            if args.uvloop:
                import uvloop

                figures = uvloop.run(coroutine)
            else:
                figures = asyncio.run(coroutine)
            figures["loop"] = "uvloop" if args.uvloop else "asyncio"
            figures["core"] = CORE
            print(json.dumps(figures), flush=True)
        except AssertionError as error:
            print(f"MISMATCH (seed {seed}): {error}", file=sys.stderr, flush=True)
            sys.exit(1)
        finally:
            subprocess.run(["ip", "netns", "del", netns], check=False)


if __name__ == "__main__":
    main()
