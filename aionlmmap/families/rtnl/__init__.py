"""rtnetlink over the ring: links, addresses, routes, neighbours, rules,
their changes, and a live monitor that never lets a consumer's view go stale.

>>> from aionlmmap import rtnl
>>> async with rtnl.open(netns=None) as nl:
...     async for route in nl.routes(table="all"):
...         print(route.to_json())
...     await nl.route_add("198.51.100.0/24", gateway="192.0.2.254")
...     async for event in nl.monitor():
...         print(event.action, event.kind, event.obj.to_json())

Dumps are streamed from ring frame memory and filtered in the kernel where
it can (NETLINK_GET_STRICT_CHK is on: routes by table and family, addresses
by interface, links by kind and master, neighbours by interface). Change
requests validate their arguments first and raise ``ValueError`` without
sending anything; kernel refusals are :class:`aionlmmap.NetlinkError`
(``FileExistsError`` for an existing route, ...) carrying the extack text.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from ... import open as _open_ring
from ...constants import (
    NETLINK_ROUTE,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
)
from ...message import Message
from ...ring import Ring
from .codec import (
    address_dump_request,
    decode_address,
    decode_link,
    decode_neighbour,
    decode_route,
    decode_rule,
    family_number,
    link_dump_request,
    neighbour_dump_request,
    resolve_link,
    route_dump_request,
    rule_dump_request,
)
from .constants import AF_INET, AF_INET6, RT_TABLE_MAIN
from .objects import Address, Event, Kind, Link, Neighbour, Nexthop, Route, Rule
from .requests import (
    address_payload,
    link_add_payload,
    link_index_payload,
    link_set_payload,
    neighbour_payload,
    route_payload,
    rule_payload,
    table_number,
)
from .route_layout import RouteDecoders, RouteTexts
from .monitor import MonitorEngine, passthrough
from .state import KIND_GROUPS, KINDS, Scope, followed_kinds

__all__ = ["open", "RtnlClient", "Link", "Address", "Route", "Nexthop", "Neighbour", "Rule", "Event"]

_RULE_FAMILIES = (AF_INET, AF_INET6)
_NEW = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
_DUMP = NLM_F_REQUEST | NLM_F_DUMP
Device = int | str


def open(netns: Any = None, **ring_options: Any) -> RtnlClient:
    """An rtnetlink client: ``async with rtnl.open(netns="blue") as nl: ...``

    ``netns`` is a namespace name (``ip netns``), path or fd; the socket is
    opened inside it. ``ring_options`` go to :func:`aionlmmap.open`
    (``backend``, ``rx``, ``tx``, ``rcvbuf`` ...)."""
    ring = _open_ring(NETLINK_ROUTE, netns=netns, **ring_options)
    return RtnlClient(ring, netns=netns)


class RtnlClient:
    """Dumps, changes and the monitor over one NETLINK_ROUTE ring (``nl.ring``).

    Interfaces can be named by index or name everywhere (``dev="veth0"``);
    names are resolved with a link dump and a name the kernel does not know
    raises ``ValueError`` before the request is sent.
    """

    def __init__(self, ring: Ring, *, netns: Any = None) -> None:
        self.ring = ring
        self.netns = netns
        self._links: dict[int, Link] | None = None

    async def __aenter__(self) -> RtnlClient:
        await self.ring.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.ring.aclose()

    # -- dumps -----------------------------------------------------------------------
    async def _dump(self, msg_type: int, payload: bytes, ring: Ring | None = None) -> AsyncIterator[Message]:
        async for msg in (ring or self.ring).dump(Message(msg_type, _DUMP, payload=payload)):
            yield msg

    async def link_table(self, ring: Ring | None = None) -> dict[int, Link]:
        """ifindex -> :class:`Link` for every interface (names resolved).
        Also refreshes the name cache used to resolve ``dev=`` arguments."""
        raw: dict[int, Link] = {}
        async for msg in (ring or self.ring).dump(Message(RTM_GETLINK, _DUMP, payload=link_dump_request())):
            if msg[0] == RTM_NEWLINK:
                link = decode_link(msg[6].buffer, msg[4], msg[5])
                raw[link.ifindex] = link
        table = {ifindex: resolve_link(link, raw) for ifindex, link in raw.items()}
        self._links = table
        return table

    async def names(self) -> dict[int, str]:
        """ifindex -> interface name (from a fresh link dump)."""
        return {ifindex: link.ifname for ifindex, link in (await self.link_table()).items()}

    async def links(self, *, kind: str | None = None, master: Device | None = None) -> AsyncIterator[Link]:
        """Every interface, or those of one ``kind`` ("veth", "bridge"...) or
        enslaved to ``master`` (filtered by the kernel)."""
        table = await self.link_table()
        if kind is None and master is None:
            for link in table.values():
                yield link
            return
        master_index = await self.ifindex(master) if master is not None else None
        async for msg in self._dump(RTM_GETLINK, link_dump_request(kind, master_index)):
            if msg[0] == RTM_NEWLINK:
                yield resolve_link(decode_link(msg[6].buffer, msg[4], msg[5]), table)

    async def get_link(self, dev: Device) -> Link:
        """One interface by index or name, freshly dumped; ValueError if unknown."""
        ifindex = await self.ifindex(dev)
        table = await self.link_table()
        if ifindex not in table:
            raise ValueError(f"interface {dev!r} disappeared while it was looked up")
        return table[ifindex]

    async def addresses(self, family: int | None = None, *, dev: Device | None = None) -> AsyncIterator[Address]:
        """Interface addresses; ``family`` None/4/6, ``dev`` filters in the kernel."""
        family_value = family_number(family)
        names = await self.names()
        ifindex = await self.ifindex(dev) if dev is not None else 0
        async for msg in self._dump(RTM_GETADDR, address_dump_request(family_value, ifindex)):
            if msg[0] == RTM_NEWADDR:
                yield decode_address(msg[6].buffer, msg[4], msg[5], names)

    async def routes(self, family: int | None = None, table: int | str | None = None) -> AsyncIterator[Route]:
        """Routes of the main table (``table=None``), of one table (id or
        "local"/"main"/"default") or of every table (``table="all"``),
        filtered by the kernel. Decoded straight from frame memory."""
        request, names, one_table = await self._route_request(family, table)
        # A datagram at a time (dump_chunks): every route of a chunk is
        # made straight from the frame while it is pinned (RouteDecoders),
        # with no Message built.
        decoders = RouteDecoders(names, decode_route)
        try:
            async for frame, body in self.ring.dump_chunks(request):
                for route in decoders.chunk(frame, body):
                    yield route
        except FileNotFoundError:
            # ip_valid_fib_dump_req: an IPv4 dump of a table that does not
            # exist answers ENOENT; it simply has no routes.
            if not one_table:
                raise

    async def _route_texts(self, family: int | None, table: int | str | None, render: Callable[[Route], str], batch: int = 4096) -> AsyncIterator[list[str]]:
        """``render(route)`` for every route ``routes(family, table)`` would
        yield, in lists of up to ``batch`` texts: the streaming path of
        ``aionlmmap dump routes --json``. Made straight from the messages
        by :class:`RouteTexts` (see there for what ``render`` may do), so a
        big table costs no Route object or dict per route."""
        request, names, one_table = await self._route_request(family, table)
        texts = RouteTexts(render, names, decode_route)
        chunk: list[str] = []
        try:
            async for frame, body in self.ring.dump_chunks(request):
                chunk += texts.chunk(frame, body)
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
        except FileNotFoundError:
            if not one_table:  # as in routes()
                raise
        if chunk:
            yield chunk

    async def _route_request(self, family: int | None, table: int | str | None) -> tuple[Message, dict[int, str], bool]:
        """The dump request of routes(family, table), the interface names
        and whether it asks for one table."""
        family_value = family_number(family)
        table_id = None if table == "all" else table_number(table, RT_TABLE_MAIN)
        names = await self.names()
        return Message(RTM_GETROUTE, _DUMP, payload=route_dump_request(family_value, table_id)), names, table_id is not None

    async def neighbours(self, family: int | None = None, *, dev: Device | None = None) -> AsyncIterator[Neighbour]:
        """ARP and NDP entries (``dev`` filters in the kernel)."""
        family_value = family_number(family)
        names = await self.names()
        ifindex = await self.ifindex(dev) if dev is not None else None
        async for msg in self._dump(RTM_GETNEIGH, neighbour_dump_request(family_value, ifindex)):
            if msg[0] == RTM_NEWNEIGH:
                yield decode_neighbour(msg[6].buffer, msg[4], msg[5], names)

    async def rules(self, family: int | None = None) -> AsyncIterator[Rule]:
        """Policy routing rules of IPv4 and IPv6 (or one ``family``)."""
        async for msg in self._dump(RTM_GETRULE, rule_dump_request(family_number(family))):
            # An AF_UNSPEC dump also walks the multicast routing rule sets
            # (RTNL_FAMILY_IPMR/IP6MR); `ip rule` shows those only on request.
            if msg[0] == RTM_NEWRULE and msg[6].buffer[msg[4]] in _RULE_FAMILIES:
                yield decode_rule(msg[6].buffer, msg[4], msg[5])

    # -- name resolution -------------------------------------------------------------
    async def ifindex(self, dev: Device) -> int:
        """Interface index of ``dev`` (index or name); ValueError if the
        kernel has no such interface in this namespace."""
        if isinstance(dev, bool) or not isinstance(dev, (int, str)):
            raise ValueError(f"dev must be an interface name or index, not {dev!r}")
        for attempt in range(2):
            links = self._links if attempt == 0 and self._links is not None else await self.link_table()
            if isinstance(dev, int):
                if dev in links:
                    return dev
            else:
                for link in links.values():
                    if link.ifname == dev:
                        return link.ifindex
        where = f"network namespace {self.netns!r}" if self.netns is not None else "this network namespace"
        raise ValueError(f"no interface {dev!r} in {where}")

    # -- changes -----------------------------------------------------------------------
    async def _change(self, msg_type: int, flags: int, payload: bytes) -> None:
        await self.ring.request(Message(msg_type, flags, payload=payload))

    async def link_add(self, name: str, kind: str, *, link: Device | None = None, master: Device | None = None, **options: Any) -> Link:
        """Create an interface: ``await nl.link_add("veth0", "veth", peer="veth1")``,
        ``("br0", "bridge")``, ``("eth0.5", "vlan", link="eth0", vlan_id=5)``,
        ``("mv0", "macvlan", link="eth0", mode="bridge")``,
        ``("vx0", "vxlan", vni=42, local="192.0.2.1", port=4789)``.
        Also ``mtu``, ``address``, ``txqlen``, ``up``. Returns the new link."""
        link_index = await self.ifindex(link) if link is not None else None
        master_index = await self.ifindex(master) if master is not None else None
        payload = link_add_payload(name, kind, link=link_index, master=master_index, **options)
        await self._change(RTM_NEWLINK, _NEW, payload)
        return await self.get_link(name)

    async def link_set(
        self,
        dev: Device,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        name: str | None = None,
        master: Device | None = None,
        address: str | None = None,
        txqlen: int | None = None,
        netns: Any = None,
    ) -> None:
        """Change an interface: up/down, mtu, name, master (``master=0`` or
        ``""`` detaches), link-layer address, txqlen, or move it to ``netns``
        (name, path or fd)."""
        ifindex = await self.ifindex(dev)
        master_index = None
        if master is not None:
            master_index = 0 if master in (0, "") else await self.ifindex(master)
        netns_fd, owned = _netns_fd(netns) if netns is not None else (None, False)
        try:
            payload = link_set_payload(ifindex, up=up, mtu=mtu, name=name, master=master_index, address=address, txqlen=txqlen, netns_fd=netns_fd)
            await self._change(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, payload)
        finally:
            if owned:
                os.close(netns_fd)  # type: ignore[arg-type]
        self._links = None

    async def link_delete(self, dev: Device) -> None:
        """Delete an interface (a veth takes its peer with it)."""
        await self._change(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, link_index_payload(await self.ifindex(dev)))
        self._links = None

    async def address_add(self, dev: Device, address: str, **options: Any) -> None:
        """``await nl.address_add("veth0", "192.0.2.1/24", broadcast=..., label=...)``"""
        payload = address_payload(await self.ifindex(dev), address, **options)
        await self._change(RTM_NEWADDR, _NEW, payload)

    async def address_delete(self, dev: Device, address: str) -> None:
        await self._change(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, address_payload(await self.ifindex(dev), address))

    async def _route_payload(self, dst: str, dev: Device | None, multipath: Iterable[Mapping[str, Any]] | None, options: dict[str, Any], delete: bool = False) -> bytes:
        oif = await self.ifindex(dev) if dev is not None else None
        hops = None
        if multipath is not None:
            hops = []
            for hop in multipath:
                hop = dict(hop)
                if "dev" in hop:
                    hop["oif"] = await self.ifindex(hop.pop("dev"))
                hops.append(hop)
        return route_payload(dst, oif=oif, multipath=hops, delete=delete, **options)

    async def route_add(self, dst: str, *, dev: Device | None = None, multipath: Iterable[Mapping[str, Any]] | None = None, **options: Any) -> None:
        """Add a route: ``await nl.route_add("10.0.0.0/8", gateway="192.0.2.1",
        dev="veth0", table=100, metric=10)``; also ``scope``, ``type``
        ("blackhole", ...), ``protocol``, ``prefsrc``, ``family`` (for
        "default") and ``multipath=[{"gateway": ..., "dev": ..., "weight": 2}, ...]``.
        An existing route raises ``FileExistsError``."""
        await self._change(RTM_NEWROUTE, _NEW, await self._route_payload(dst, dev, multipath, options))

    async def route_replace(self, dst: str, *, dev: Device | None = None, multipath: Iterable[Mapping[str, Any]] | None = None, **options: Any) -> None:
        """Add or replace a route (NLM_F_CREATE | NLM_F_REPLACE)."""
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        await self._change(RTM_NEWROUTE, flags, await self._route_payload(dst, dev, multipath, options))

    async def route_delete(self, dst: str, *, dev: Device | None = None, **options: Any) -> None:
        """Delete a route; the arguments given must match it (unset ones match any)."""
        await self._change(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, await self._route_payload(dst, dev, None, options, delete=True))

    async def neighbour_add(self, dev: Device, dst: str, *, lladdr: str | None = None, state: int | str = "permanent", replace: bool = False) -> None:
        """Add (or with ``replace=True`` add-or-update) a neighbour entry."""
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        await self._change(RTM_NEWNEIGH, flags, neighbour_payload(await self.ifindex(dev), dst, lladdr=lladdr, state=state))

    async def neighbour_delete(self, dev: Device, dst: str) -> None:
        await self._change(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, neighbour_payload(await self.ifindex(dev), dst, state=0))

    async def rule_add(self, **options: Any) -> None:
        """``await nl.rule_add(priority=1000, src="10.0.0.0/8", table=100)``;
        also ``dst``, ``fwmark``, ``fwmask``, ``iif``, ``oif``, ``action``
        ("blackhole", "unreachable", "prohibit", "nop"), ``family``."""
        await self._change(RTM_NEWRULE, _NEW, rule_payload(**options))

    async def rule_delete(self, **options: Any) -> None:
        """Delete the first rule matching the given selectors."""
        await self._change(RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, rule_payload(delete=True, **options))

    # -- the monitor -----------------------------------------------------------------
    async def snapshot(self, kinds: Iterable[Kind], ring: Ring | None = None) -> dict[Kind, list[Any]]:
        """Current objects of each kind, as a resyncing monitor dumps them:
        routes of every table (IPv4 and IPv6, no cached routes), every
        neighbour entry whatever its state (``ip neigh show nud all``,
        IPv4 and IPv6), addresses, links, rules."""
        engine = MonitorEngine(self, ring or self.ring, [])
        links = await self.link_table(ring)
        names = {ifindex: link.ifname for ifindex, link in links.items()}
        return {kind: list(links.values()) if kind == "link" else await engine._dump(Scope(kind), names) for kind in kinds}

    async def monitor(
        self,
        links: bool = True,
        addresses: bool = True,
        routes: bool = True,
        neighbours: bool = False,
        rules: bool = False,
        resync: bool = True,
        nexthops: bool = False,
        *,
        poll: float = 1.0,
        ring: Ring | None = None,
        **ring_options: Any,
    ) -> AsyncIterator[Event]:
        """Live changes as :class:`Event` values (``action`` "new"/"del",
        ``kind``, ``obj``), on a ring of its own joined to the kinds' groups.

        With ``resync=True`` it first yields the current state as "new"
        events, then changes, so that a consumer applying every event to a
        dict keyed by ``(event.kind, event.obj.key)`` holds what a fresh
        dump holds once the kernel is still: a replaced route comes as a
        "del" of the old one and a "new"; what the kernel changes without a
        notification (routes of a link that went down, route flags, a veth's
        peer, ...) is dumped again once the notifications received so far
        are consumed, and what has no notification at all (neighbour entries
        the kernel makes itself, tentative IPv6 addresses) every ``poll``
        seconds (0: never); after an overrun (ENOBUFS: the kernel dropped
        notifications) it dumps everything again and yields only the
        differences. It follows links (and addresses and nexthop objects,
        with routes) for that even when they are not asked for, without
        yielding them. See
        docs/rtnl.md, "The monitor". With ``resync=False`` events are passed
        through and an overrun raises :class:`aionlmmap.OverrunError`
        (iterate again to go on).

        ``ring_options`` (``rcvbuf``, ``rx``, ...) go to :func:`aionlmmap.open`;
        or pass an open NETLINK_ROUTE ``ring`` of this namespace (joined to
        the groups here, closed when the monitor ends) to read its stats.
        """
        wanted = {"link": links, "address": addresses, "route": routes, "neighbour": neighbours, "rule": rules, "nexthop": nexthops}
        kinds: list[Kind] = [kind for kind in KINDS if wanted[kind]]
        # A resyncing monitor also follows links (names, and the hints of
        # changes the kernel makes silently) and, with routes, addresses
        # and nexthop objects: see rtnl_state. Their events are not yielded
        # unless asked for.
        followed = followed_kinds(kinds) if resync else kinds
        # Nexthops followed only for the routes' sake are optional: a kernel
        # older than 5.3 has no RTNLGRP_NEXTHOP (netlink_setsockopt: EINVAL
        # past the family's groups) and no nexthop objects to follow.
        optional = set(KIND_GROUPS["nexthop"]) if "nexthop" in followed and "nexthop" not in kinds else set()
        groups = sorted({group for kind in followed for group in KIND_GROUPS[kind]} - optional)
        if ring is None:
            ring = _open_ring(NETLINK_ROUTE, groups=groups, netns=self.netns, **ring_options)
        else:
            ring.join(*groups)
        async with ring:
            for group in sorted(optional):
                try:
                    ring.join(group)
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
            events = MonitorEngine(self, ring, kinds, poll).events() if resync else passthrough(self, ring, kinds)
            async for event in events:
                yield event


def _netns_fd(netns: Any) -> tuple[int, bool]:
    if isinstance(netns, int):
        return netns, False
    path = os.fspath(netns)
    if os.sep not in path:
        path = os.path.join("/run/netns", path)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), True
    except FileNotFoundError:
        raise ValueError(f"network namespace {netns!r} not found ({path})") from None

