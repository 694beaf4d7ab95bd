"""The rtnl monitor's loop: notifications in, events out, and the dumps that
keep the view exact where notifications do not (see :mod:`.rtnl_state`).

``RtnlClient.monitor()`` is the public entry; this module is its engine.
With ``resync=True`` it follows, on one ring:

1. a full dump of every followed kind (the initial state, and again after
   an overrun);
2. each notification, applied to a :class:`StateTracker` with the kernel's
   own semantics (an IPv4 NLM_F_REPLACE route takes the first alias's place,
   ...), which leaves *dirty* scopes where the kernel changed more than it
   said;
3. a dump of each dirty scope (routes through a device, a route table,
   the addresses or neighbours of a device) once the notifications
   received so far are consumed, or after ``_RECONCILE_BUDGET`` of them at
   the latest, so a busy ring cannot postpone it without bound.

Kinds the caller did not ask for may be followed anyway (links always,
addresses and nexthop objects when routes are asked: they carry the hints
of silent route changes); their events are not yielded.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import attrs

from ...attributes import AttributeBuilder
from ...constants import NLM_F_REQUEST, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, RTM_GETADDR, RTM_GETNEIGH, RTM_GETROUTE, RTM_GETRULE, RTM_NEWADDR, RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWRULE
from ...errors import DecodeError, DumpInterruptedError, OverrunError
from ...message import Message
from ...ring import Ring
from .codec import (
    RTMSG,
    address_dump_request,
    decode_address,
    decode_link,
    decode_neighbour,
    decode_route,
    decode_rule,
    neighbour_dump_request,
    rule_dump_request,
)
from .constants import AF_INET, AF_INET6, AF_UNSPEC, IFA_F_TENTATIVE, NTF_PROXY, RTA_OIF, RTA_TABLE, RTM_F_CLONED
from .nexthops import RTM_GETNEXTHOP, RTM_NEWNEXTHOP, decode_nexthop, nexthop_dump_request
from .objects import Event, Kind, Link
from .requests import link_index_payload
from .state import MESSAGE_KINDS, Scope, StateTracker, followed_kinds

if TYPE_CHECKING:
    from . import RtnlClient

_FAMILIES = (AF_INET, AF_INET6)
_RESYNC_ATTEMPTS = 20
#: rounds of dumps in one reconcile (a nexthop dump can make route tables
#: dirty, whose dumps make nothing dirty: two rounds settle it; what is
#: left dirty after the last round waits for the next reconcile)
_RECONCILE_ROUNDS = 4
#: notifications applied while a scope is dirty before it is dumped even
#: though more are queued (bounds how long a busy ring keeps the view stale)
_RECONCILE_BUDGET = 2048


def resolve(link: Link, links: dict[int, Link]) -> Link:
    """``link`` with the names of its lower device and master, and whether
    the lower device is up, as they are in ``links`` now (cleared when that
    device is gone): what ``print_linkinfo`` looks up when ``ip`` prints."""
    lower = links.get(link.link_ifindex) if link.link_ifindex and link.link_netnsid is None else None  # type: ignore[arg-type]
    master = links.get(link.master_ifindex) if link.master_ifindex else None  # type: ignore[arg-type]
    values = (
        lower.ifname if lower is not None else None,
        master.ifname if master is not None else None,
        lower.is_up if lower is not None else None,
    )
    if (link.link, link.master, link.lower_up) == values:
        return link
    return attrs.evolve(link, link=values[0], master=values[1], lower_up=values[2])


class _Names(dict):  # type: ignore[type-arg]
    """ifindex -> name looked up in the tracked links on demand (decoders
    only call ``.get``), so no map is rebuilt per notification."""

    __slots__ = ("_links",)

    def __init__(self, links: dict[Any, Link]) -> None:
        super().__init__()
        self._links = links

    def get(self, ifindex: Any, default: Any = None) -> Any:  # type: ignore[override]
        link = self._links.get(ifindex)
        return default if link is None else link.ifname

    def __bool__(self) -> bool:
        return True


def _queued(ring: Ring) -> bool:
    """Whether notifications received so far wait for the iterator. The
    ring walks its frames in order, so once a dump's NLMSG_DONE arrived
    every notification sent before it is in this queue."""
    return bool(ring._unsolicited)  # noqa: SLF001 - same package; the only way to know the iterator would not wait


def _route_request(scope: Scope) -> bytes:
    """A route dump filtered like ``scope`` (ip_valid_fib_dump_req with
    NETLINK_GET_STRICT_CHK: RTA_TABLE, RTA_OIF)."""
    table = scope.table
    payload = RTMSG.pack(scope.family, 0, 0, 0, table if table is not None and table < 256 else 0, 0, 0, 0, 0)
    builder = AttributeBuilder()
    if table is not None:
        builder.add_u32(RTA_TABLE, table)
    if scope.ifindex is not None:
        builder.add_u32(RTA_OIF, scope.ifindex)
    return payload + builder.build()


class MonitorEngine:
    """One resyncing monitor's state on its ring (see the module docstring)."""

    def __init__(self, client: RtnlClient, ring: Ring, wanted: list[Kind], poll: float = 1.0) -> None:
        self.client = client
        self.ring = ring
        self.shown = set(wanted)
        self.followed = followed_kinds(wanted)
        self.tracker = StateTracker(self.followed)
        self.names = _Names(self.tracker.state["link"])
        self.applied_while_dirty = 0
        #: seconds between re-dumps of what changes with no notification at all
        self.poll = poll
        self.polled_at: float | None = None
        #: links changed since the last poll (their addresses are dumped then)
        self.settling: set[int] = set()
        #: devices with a tentative IPv6 address (dumped at each poll)
        self.tentative: set[int] = set()
        #: figures for tests and curious users
        self.resyncs = 0
        self.reconciles = 0
        self.polls = 0

    async def events(self) -> AsyncIterator[Event]:
        shown = self.shown
        for event in await self.resync():
            if event.kind in shown:
                yield event
        ring = self.ring
        tracker = self.tracker
        loop = asyncio.get_running_loop()
        messages = ring.__aiter__()
        while True:
            try:
                due = self._next_poll()
                if due is not None and loop.time() >= due:
                    for event in await self.poll_now():
                        if event.kind in shown:
                            yield event
                    continue
                if due is not None and not _queued(ring):
                    try:
                        # A timer, not a task: asyncio.timeout cancels the
                        # wait at `due` and tells its cancellation from the
                        # caller's (Task.uncancel).
                        async with asyncio.timeout_at(due):
                            msg = await messages.__anext__()
                    except TimeoutError:
                        # Cancelled while waiting (the ring stays consistent
                        # and keeps its queue): a new iterator goes on.
                        messages = ring.__aiter__()
                        for event in await self.poll_now():
                            if event.kind in shown:
                                yield event
                        continue
                else:
                    msg = await messages.__anext__()
            except OverrunError:
                # The kernel dropped notifications: only a dump of
                # everything tells what they said.
                messages = ring.__aiter__()
                for event in await self.resync():
                    if event.kind in shown:
                        yield event
                continue
            entry = MESSAGE_KINDS.get(msg[0])
            if entry is not None:
                try:
                    changes = self.apply(msg, entry[0], entry[1])
                except DecodeError:
                    ring.stats.decode_errors += 1  # a malformed notification: counted and skipped
                    changes = []
                for event in changes:
                    if event.kind in shown:
                        yield event
            queued = _queued(ring)
            if tracker.dirty:
                self.applied_while_dirty += 1
                if not queued or self.applied_while_dirty >= _RECONCILE_BUDGET:
                    for event in await self.reconcile():
                        if event.kind in shown:
                            yield event
                    queued = _queued(ring)
            if not queued:
                # Caught up: every notification sent before the last dump
                # has been applied, so their order is known again.
                tracker.uncertain = False

    def _next_poll(self) -> float | None:
        """When the next poll is due, or None if nothing needs one."""
        # Only what the caller sees is polled: addresses followed for the
        # routes' sake need no exactness of their own.
        if not self.poll or not ("neighbour" in self.shown or ("address" in self.shown and (self.settling or self.tentative))):
            return None
        if self.polled_at is None:
            self.polled_at = asyncio.get_running_loop().time()
        return self.polled_at + self.poll

    async def poll_now(self) -> list[Event]:
        """Dump again what the kernel changes without a notification at
        times no notification hints at: neighbour entries it makes itself
        (the multicast NOARP entries of MLD reports, DAD and router
        solicitations, INCOMPLETE entries of address resolution: created by
        ``__neigh_create`` without ``neigh_update_notify``), and the
        addresses of a link that changed lately (addrconf makes IPv6
        link-local addresses on NETDEV_UP/NETDEV_CHANGE, after RTM_NEWLINK
        may have been sent, and tells only when DAD ends)."""
        tracker = self.tracker
        if "neighbour" in self.shown:
            tracker.dirty.add(Scope("neighbour"))
        if "address" in self.shown:
            tracker.dirty.update(Scope("address", ifindex=ifindex) for ifindex in self.settling | self.tentative)
        self.settling.clear()
        events = await self.reconcile()
        # inet6_addr_modify() tells nothing while an address is tentative
        # (ip address replace/change of one that waits for DAD, or on a
        # device without carrier, where it stays tentative): poll those.
        self.tentative = {address.ifindex for address in tracker.objects("address").values() if address.flags & IFA_F_TENTATIVE}
        self.polled_at = asyncio.get_running_loop().time()
        self.polls += 1
        return events

    # -- notifications -------------------------------------------------------------------
    def apply(self, msg: Message, action: str, kind: Kind) -> list[Event]:
        tracker = self.tracker
        if kind not in tracker.state:
            return []
        obj = _decode(msg, kind, self.names)
        if obj is None:
            return []
        if kind == "link":
            if action == "new":
                self.settling.add(obj.ifindex)
            else:
                self.settling.discard(obj.ifindex)
            return tracker.apply_link(action, obj, resolve)
        if kind == "route":
            return tracker.apply_route(action, msg[1], obj)
        if kind == "address":
            if obj.flags & IFA_F_TENTATIVE:
                self.tentative.add(obj.ifindex)
            return tracker.apply_address(action, obj)
        if kind == "nexthop":
            return tracker.apply_nexthop(action, obj)
        event = tracker.apply(action, kind, obj)
        return [event] if event is not None else []

    # -- dumps ---------------------------------------------------------------------------
    async def resync(self) -> list[Event]:
        """Dump every followed kind and swap it in (initial state, overrun)."""
        # A dump taken while the table changes may come back flagged
        # NLM_F_DUMP_INTR (inconsistent): the view must never be built from
        # one, so dump again (bounded; a table that never holds still for a
        # dump raises DumpInterruptedError).
        for attempt in range(_RESYNC_ATTEMPTS):
            try:
                links = await self.client.link_table(self.ring)
                names = {ifindex: link.ifname for ifindex, link in links.items()}
                snapshot: dict[Kind, list[Any]] = {"link": list(links.values())}
                for kind in self.followed:
                    if kind != "link":
                        snapshot[kind] = await self._dump(Scope(kind), names)
                break
            except DumpInterruptedError:
                if attempt == _RESYNC_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        tracker = self.tracker
        tracker.dirty.clear()
        events: list[Event] = []
        for kind in self.followed:
            events += tracker.replace(kind, snapshot[kind])
        self.names._links = tracker.state["link"]  # noqa: SLF001 - replace() swapped the dict
        self.tentative = {address.ifindex for address in tracker.objects("address").values() if address.flags & IFA_F_TENTATIVE}
        tracker.uncertain = _queued(self.ring)
        self.applied_while_dirty = 0
        self.resyncs += 1
        return events

    async def reconcile(self) -> list[Event]:
        """Dump each dirty scope again and swap it in."""
        tracker = self.tracker
        events: list[Event] = []
        for _round in range(_RECONCILE_ROUNDS):
            if not tracker.dirty:
                break
            scopes = sorted(tracker.dirty, key=_scope_order)
            tracker.dirty.clear()
            for scope in scopes:
                for attempt in range(_RESYNC_ATTEMPTS):
                    try:
                        objects = await self._dump(scope, self.names)
                        break
                    except DumpInterruptedError:
                        if attempt == _RESYNC_ATTEMPTS - 1:
                            raise
                        await asyncio.sleep(0.01 * (attempt + 1))
                changes = tracker.replace(scope.kind, objects, scope)
                if scope.kind == "link":
                    # A dump may show a rename (or an up/down) before its
                    # notification is read, which then changes nothing:
                    # the links naming this one are resolved again here.
                    for event in list(changes):
                        changes += tracker.relink(event.obj.ifindex, resolve)
                elif scope.kind == "nexthop":
                    # Nexthops that went or changed unannounced (a device
                    # went down: nexthop_flush_dev) took or changed their
                    # routes unannounced too: dump those tables next round.
                    tracker.nexthops_changed({event.obj.id for event in changes})
                events += changes
        tracker.uncertain = _queued(self.ring)
        self.applied_while_dirty = 0
        self.reconciles += 1
        return events

    async def _dump(self, scope: Scope, names: Any) -> list[Any]:
        """The objects ``scope`` covers, dumped now (the kernel filters)."""
        kind = scope.kind
        client = self.client
        ring = self.ring
        try:
            if kind == "link":
                # One link (the only scope of links): RTM_GETLINK answers
                # with rtnl_fill_ifinfo, as a dump would.
                replies = await ring.request(Message(RTM_GETLINK, NLM_F_REQUEST, payload=link_index_payload(scope.ifindex)), ack=False)  # type: ignore[arg-type]
                links = self.tracker.state["link"]
                return [resolve(decode_link(m[6].buffer, m[4], m[5]), links) for m in replies if m[0] == RTM_NEWLINK]
            if kind == "route":
                # Decoded while each message's frame is pinned (inside the loop).
                routes = [decode_route(m[6].buffer, m[4], m[5], names) async for m in client._dump(RTM_GETROUTE, _route_request(scope), ring) if m[0] == RTM_NEWROUTE]
                return [route for route in routes if route.family in _FAMILIES and not route.flags & RTM_F_CLONED and scope.covers(route)]
            if kind == "address":
                return [
                    decode_address(m[6].buffer, m[4], m[5], names)
                    async for m in client._dump(RTM_GETADDR, address_dump_request(scope.family, scope.ifindex or 0), ring)
                    if m[0] == RTM_NEWADDR
                ]
            if kind == "neighbour":
                return [
                    decode_neighbour(m[6].buffer, m[4], m[5], names)
                    async for m in client._dump(RTM_GETNEIGH, neighbour_dump_request(scope.family, scope.ifindex), ring)
                    if m[0] == RTM_NEWNEIGH and m[6].buffer[m[4]] in _FAMILIES
                ]
            if kind == "rule":
                return [
                    decode_rule(m[6].buffer, m[4], m[5])
                    async for m in client._dump(RTM_GETRULE, rule_dump_request(scope.family), ring)
                    if m[0] == RTM_NEWRULE and m[6].buffer[m[4]] in _FAMILIES
                ]
            if kind == "nexthop":
                try:
                    return [
                        decode_nexthop(m[6].buffer, m[4], m[5], names)
                        async for m in client._dump(RTM_GETNEXTHOP, nexthop_dump_request(), ring)
                        if m[0] == RTM_NEWNEXTHOP
                    ]
                except OSError as error:
                    # Linux < 5.3 has no nexthop objects (rtnetlink_rcv_msg:
                    # EOPNOTSUPP for an unknown message type): none to follow.
                    if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                        return []
                    raise
            raise ValueError(f"no dump for {scope}")
        except (FileNotFoundError, ProcessLookupError):
            # ip_valid_fib_dump_req: an IPv4 table that does not exist (ENOENT)
            return []
        except OSError as error:
            if error.errno == errno.ENODEV:
                return []  # the device went away: it has nothing left
            raise


def _scope_order(scope: Scope) -> tuple[int, int, int, int]:
    # Links' dependants first, devices before tables (a table dump after a
    # device dump sees what the device dump could not: IPv6 siblings).
    return (("address", "neighbour", "rule", "nexthop", "route").index(scope.kind) if scope.kind != "link" else -1,
            scope.ifindex is None, scope.family, scope.table or 0)  # fmt: skip


async def passthrough(client: RtnlClient, ring: Ring, wanted: list[Kind]) -> AsyncIterator[Event]:
    """``resync=False``: every notification of a wanted kind as it comes;
    an overrun raises :class:`OverrunError`."""
    links = await client.link_table(ring)
    names = _Names(links)
    async for msg in ring:
        entry = MESSAGE_KINDS.get(msg[0])
        if entry is None:
            continue
        action, kind = entry
        try:
            obj = _decode(msg, kind, names)
        except DecodeError:
            ring.stats.decode_errors += 1  # a malformed notification: counted and skipped
            continue
        if obj is None:
            continue
        if kind == "link":
            link = obj
            if msg[0] == RTM_DELLINK:
                links.pop(link.ifindex, None)
            else:
                links[link.ifindex] = link
            if kind in wanted:
                yield Event(action, kind, resolve(link, links))  # type: ignore[arg-type]
            continue
        if kind in wanted:
            yield Event(action, kind, obj)  # type: ignore[arg-type]


def _decode(msg: Message, kind: Kind, names: Any) -> Any:
    """The object of one notification, or None if the monitor leaves it
    out (bridge ports and fdb entries, other families' routes and rules,
    cached routes: what the dumps leave out too)."""
    buffer, start, end = msg[6].buffer, msg[4], msg[5]
    if kind == "link":
        return decode_link(buffer, start, end) if buffer[start] == AF_UNSPEC else None
    if kind == "nexthop":
        # Every family: groups and blackholes are AF_UNSPEC.
        return decode_nexthop(buffer, start, end, names)
    if buffer[start] not in _FAMILIES:
        return None
    if kind == "route":
        route = decode_route(buffer, start, end, names)
        return None if route.flags & RTM_F_CLONED else route
    if kind == "address":
        return decode_address(buffer, start, end, names)
    if kind == "neighbour":
        neighbour = decode_neighbour(buffer, start, end, names)
        # Proxy entries (pneigh) are dumped only on request (NTF_PROXY in
        # the dump's ndm_flags); kernels that announce them are not followed.
        return None if neighbour.flags & NTF_PROXY else neighbour
    return decode_rule(buffer, start, end)
