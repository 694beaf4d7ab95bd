"""The monitor's view of rtnetlink state and how it changes.

Pure: imports neither asyncio nor socket.

:class:`StateTracker` keeps one dict per kind (``obj.key`` -> object).
Notifications go through :meth:`StateTracker.apply` (or, for routes,
:meth:`StateTracker.apply_route`, which follows the kernel's insertion
rules), which drops those that change nothing; a fresh dump of all or part
of a kind goes through :meth:`StateTracker.replace`, which returns exactly
the differences. A consumer that applies every event it is given holds what
the tracker holds.

Notifications alone do not tell everything. The kernel changes state without
a message in several places, and a notification sometimes does not say what
it replaced:

- IPv4 deletes the routes through a device that goes down or away
  (``fib_sync_down_dev`` from ``fib_netdev_event``/``fib_disable_ip``), the
  routes whose preferred source was a deleted address
  (``fib_sync_down_addr``), and flips RTNH_F_DEAD/RTNH_F_LINKDOWN on
  nexthops (``fib_sync_down_dev``/``fib_sync_up``), all without
  RTM_DELROUTE/RTM_NEWROUTE;
- IPv6 flips RTNH_F_LINKDOWN/RTNH_F_DEAD on routes and multipath siblings
  (``fib6_ifdown``, ``fib6_ifup``) and clears a deleted address's preferred
  source from routes (``fib6_remove_prefsrc``) silently; it merges routes
  into multipath siblings and replaces whole sibling groups, notifying the
  result but not what it replaced (``fib6_add_rt2``);
- addrconf makes link-local addresses on a device that comes up
  (``addrconf_add_linklocal``) and tells only when duplicate address
  detection ends (``addrconf_dad_completed``);
- an NLM_F_REPLACE RTM_NEWROUTE names the new route only;
- nexthop objects (net/ipv4/nexthop.c): deleting one drops the IPv4 routes
  using it (``__remove_nexthop_fib`` marks their fib_info dead, then
  ``fib_flush``) with no RTM_DELROUTE (IPv6 routes go through
  ``ip6_del_rt``, notified unless ``nexthop_compat_mode`` is off); removing
  a group's member (``remove_nh_grp_entry``) notifies the group but not the
  routes whose expansion changed; a device going down, away or losing its
  carrier removes its nexthops (``nexthop_flush_dev`` calls
  ``remove_nexthop`` with no ``nlinfo``) with no RTM_DELNEXTHOP at all.

Each such change comes with (or after) a notification that hints at it (a
link changed, an address went, a route was replaced). The tracker turns the
hint into a :class:`Scope` that is *dirty*: the part of the state that must
be dumped again. :meth:`StateTracker.replace` with the scope's fresh dump
makes it exact again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ...constants import (
    NLM_F_APPEND,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_IPV6_RULE,
    RTNLGRP_LINK,
    RTNLGRP_NEIGH,
)
from .constants import AF_INET, AF_INET6
from .nexthops import RTM_DELNEXTHOP, RTM_NEWNEXTHOP
from .objects import Event, Kind, Link

__all__ = ["MESSAGE_KINDS", "KIND_GROUPS", "KINDS", "Scope", "StateTracker", "followed_kinds"]

KINDS: tuple[Kind, ...] = ("link", "address", "route", "neighbour", "rule", "nexthop")
#: enum rtnetlink_groups (Linux >= 5.3; older kernels refuse to join it:
#: EINVAL from netlink_setsockopt, which RtnlClient.monitor tolerates when
#: nexthops are followed only for the routes' sake)
RTNLGRP_NEXTHOP = 32

#: nlmsg_type -> (action, kind)
MESSAGE_KINDS: dict[int, tuple[str, Kind]] = {
    RTM_NEWLINK: ("new", "link"),
    RTM_DELLINK: ("del", "link"),
    RTM_NEWADDR: ("new", "address"),
    RTM_DELADDR: ("del", "address"),
    RTM_NEWROUTE: ("new", "route"),
    RTM_DELROUTE: ("del", "route"),
    RTM_NEWNEIGH: ("new", "neighbour"),
    RTM_DELNEIGH: ("del", "neighbour"),
    RTM_NEWRULE: ("new", "rule"),
    RTM_DELRULE: ("del", "rule"),
    RTM_NEWNEXTHOP: ("new", "nexthop"),
    RTM_DELNEXTHOP: ("del", "nexthop"),
}

#: multicast groups carrying each kind's notifications (enum rtnetlink_groups)
KIND_GROUPS: dict[Kind, tuple[int, ...]] = {
    "link": (RTNLGRP_LINK,),
    "address": (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR),
    "route": (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE),
    "neighbour": (RTNLGRP_NEIGH,),
    "rule": (RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE),
    "nexthop": (RTNLGRP_NEXTHOP,),
}


def followed_kinds(wanted: Iterable[Kind]) -> list[Kind]:
    """The kinds a resyncing monitor must follow to keep ``wanted`` exact:
    links always (names, and the hints of silent changes), addresses too
    when routes are wanted (an address going or coming changes routes
    without a route notification), and nexthop objects (deleting or
    changing one changes the routes using it silently)."""
    wanted = set(wanted)
    followed = set(wanted) | {"link"}
    if "route" in wanted:
        followed.update(("address", "nexthop"))
    return [kind for kind in KINDS if kind in followed]


@attrs.frozen
class Scope:
    """A part of one kind's state that a dump can fetch again: every object
    of ``kind``, or those of one ``family``, one route ``table``, or one
    device (``ifindex``: routes with a nexthop through it, addresses and
    neighbours on it). Nexthop objects are dumped whole (few, and a group
    changes with its members' devices). The kernel filters the dump the
    same way (``ip_valid_fib_dump_req``: RTA_TABLE, RTA_OIF; ``inet_valid_dump_ifaddr_req``;
    ``neigh_valid_dump_req``), so :meth:`covers` is the dump's own filter."""

    kind: Kind
    family: int = 0  #: 0: both
    table: int | None = None
    ifindex: int | None = None

    def covers(self, obj: Any) -> bool:
        if self.family and obj.family != self.family:
            return False
        if self.table is not None and obj.table != self.table:
            return False
        if self.ifindex is not None:
            if self.kind == "route":
                return obj.oif == self.ifindex or any(hop.ifindex == self.ifindex for hop in obj.nexthops)
            return bool(obj.ifindex == self.ifindex)
        return True


def _uses(route: Any, ifindex: int) -> bool:
    return route.oif == ifindex or any(hop.ifindex == ifindex for hop in route.nexthops)


# What a link change can change silently (see the module docstring): the
# operational flags and state, the mtu (IPv6 route mtu), the master (VRF
# enslavement moves routes and addresses), the name (every object naming it).
def _link_fingerprint(link: Link) -> tuple[Any, ...]:
    return (link.flags, link.operstate, link.mtu, link.master_ifindex, link.ifname)


class StateTracker:
    """Current objects per kind, keyed by ``obj.key``.

    >>> tracker = StateTracker(["route"])
    >>> events = tracker.replace("route", dumped_routes)   # all "new" at first
    >>> event = tracker.apply("del", "route", route)       # None if nothing changed

    The monitor's own use adds :meth:`apply_route`, :meth:`apply_link`,
    :meth:`apply_address` and the :attr:`dirty` scopes they leave.
    """

    __slots__ = ("state", "dirty", "_runs", "uncertain")

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.state: dict[str, dict[Any, Any]] = {kind: {} for kind in kinds}
        #: scopes to dump again before the view is exact
        self.dirty: set[Scope] = set()
        #: IPv4 routes sharing a ``replace_key``, in the kernel's list order
        #: (fib_alias order: what NLM_F_REPLACE replaces is the first one)
        self._runs: dict[Any, list[Any]] = {}
        #: the order of notifications against the view is not known (a dump
        #: was just taken while notifications were queued): order-dependent
        #: notifications are then settled by a dump, not inferred
        self.uncertain = False

    # -- plain set/delete --------------------------------------------------------------
    def apply(self, action: str, kind: Kind, obj: Any) -> Event | None:
        """One notification that names exactly the object it adds, changes
        or deletes; returns the event to show, or None if the tracked state
        already says so."""
        table = self.state.get(kind)
        if table is None:
            return None
        key = obj.key
        if action == "new":
            if table.get(key) == obj:
                return None
            table[key] = obj
            if kind == "route" and obj.family == AF_INET:
                run = self._runs.setdefault(obj.replace_key, [])
                if key not in run:
                    run.append(key)
            return Event("new", kind, obj)
        old = table.pop(key, None)
        if old is None:
            return None
        if kind == "route":
            self._unrun(old)
        return Event("del", kind, old)

    def _unrun(self, route: Any) -> None:
        if route.family != AF_INET:
            return
        run = self._runs.get(route.replace_key)
        if run is not None:
            try:
                run.remove(route.key)
            except ValueError:
                pass
            if not run:
                del self._runs[route.replace_key]

    # -- routes ------------------------------------------------------------------------
    def apply_route(self, action: str, flags: int, route: Any) -> list[Event]:
        """An RTM_NEWROUTE/RTM_DELROUTE with its nlmsg_flags, applied as the
        kernel applied it, or left to a dump of its table (marked dirty)
        where the notification does not say what it replaced."""
        if "route" not in self.state:
            return []
        table = self.state["route"]
        key = route.key
        if action == "del":
            event = self.apply("del", "route", route)
            if event is None:
                # Not a route the view holds: one sibling of an IPv6
                # multipath route (fib6_del_route notifies it alone), or the
                # view is behind. The table's dump settles it.
                self.dirty.add(Scope("route", route.family, route.table))
                return []
            return [event]
        if route.family == AF_INET6:
            if flags & (NLM_F_REPLACE | NLM_F_APPEND) or not flags & NLM_F_EXCL or route.nexthops:
                # fib6_add_rt2 merged it into (or replaced) a sibling group,
                # or replaced a route it does not name: only a dump tells
                # which routes the table holds now.
                self.dirty.add(Scope("route", AF_INET6, route.table))
                return []
            if table.get(key) == route:
                return []
            table[key] = route
            return [Event("new", "route", route)]
        # IPv4: fib_table_insert tells in nlmsg_flags where the new alias went
        # among those with the same (table, prefix, tos, priority):
        # NLM_F_REPLACE took the first one's place, NLM_F_APPEND went last,
        # NLM_F_CREATE alone (ip route prepend) went first, NLM_F_EXCL made
        # the only one.
        old = table.get(key)
        if old is not None:
            # Already there (the kernel refuses an exact duplicate, fa_match):
            # a notification the last dump already showed, or one that
            # changed only RTNH_F_* state.
            if old == route:
                return []
            table[key] = route
            return [Event("new", "route", route)]
        replace_key = route.replace_key
        run = self._runs.get(replace_key)
        if not run and not flags & NLM_F_REPLACE:
            # The first of its key: where it went is certain whatever the
            # view's order knowledge (a storm of new routes stays here).
            table[key] = route
            self._runs[replace_key] = [key]
            return [Event("new", "route", route)]
        if self.uncertain or not run or flags & NLM_F_EXCL or any(scope.kind == "route" for scope in self.dirty):
            # Which alias it displaced, or where it went, depends on an
            # order the view may not have right now: the table's dump says.
            self.dirty.add(Scope("route", AF_INET, route.table))
            if flags & NLM_F_REPLACE:
                return []
            table[key] = route
            run.append(key)  # type: ignore[union-attr]
            return [Event("new", "route", route)]
        events: list[Event] = []
        if flags & NLM_F_REPLACE:
            events.append(Event("del", "route", table.pop(run[0])))
            run[0] = key
        elif flags & NLM_F_APPEND:
            run.append(key)
        else:
            run.insert(0, key)
        table[key] = route
        events.append(Event("new", "route", route))
        return events

    # -- links and addresses: the hints of silent changes ------------------------------------
    def apply_link(self, action: str, link: Link, resolve: Callable[[Link, dict[int, Link]], Link]) -> list[Event]:
        """An RTM_NEWLINK/RTM_DELLINK. A notification is a full snapshot of
        the link (rtnl_fill_ifinfo), so it replaces the tracked one; links
        naming it (veth peer, macvlan lower, bridge ports) are resolved
        again; scopes a link change can alter silently become dirty."""
        links = self.state["link"]
        ifindex = link.ifindex
        old = links.get(ifindex)
        events: list[Event] = []
        if action == "del":
            if old is None:
                return []
            del links[ifindex]
            events.append(Event("del", "link", old))
            # Its addresses and neighbours went with it (notified before
            # RTM_DELLINK by addrconf_ifdown/neigh_ifdown, or silently):
            # drop whatever the view still has.
            for kind in ("address", "neighbour"):
                objects = self.state.get(kind)
                if objects:
                    for key in [key for key, obj in objects.items() if obj.ifindex == ifindex]:
                        events.append(Event("del", kind, objects.pop(key)))
            routes = self.state.get("route")
            if routes:
                for route in routes.values():
                    if _uses(route, ifindex):
                        self.dirty.add(Scope("route", route.family, route.table))
            if "nexthop" in self.state:
                self.dirty.add(Scope("nexthop"))  # nexthop_flush_dev(NETDEV_UNREGISTER): silent
        else:
            link = resolve(link, links)
            if old != link:
                links[ifindex] = link
                events.append(Event("new", "link", link))
            lower = links.get(link.link_ifindex) if old is None and link.link_ifindex and link.link_netnsid is None else None  # type: ignore[arg-type]
            if lower is not None and lower.link_ifindex != ifindex:
                # A veth pair registers the peer first, announcing it with
                # IFLA_LINK 0 (its partner has no ifindex yet); the kernel
                # never says the peer's link is now this one: fetch it.
                self.dirty.add(Scope("link", ifindex=lower.ifindex))
            if old is None or _link_fingerprint(old) != _link_fingerprint(link):
                for kind in ("route", "address", "neighbour"):
                    if kind in self.state:
                        self.dirty.add(Scope(kind, ifindex=ifindex))
                if "nexthop" in self.state and old is not None:
                    # nexthop_flush_dev on NETDEV_DOWN/NETDEV_CHANGE (no
                    # carrier): the device's nexthops go, unannounced.
                    self.dirty.add(Scope("nexthop"))
        if "rule" in self.state and (old is None or action == "del" or old.ifname != link.ifname):
            # Rules name devices (iif/oif); fib_rules_event attaches and
            # detaches them (FIB_RULE_IIF_DETACHED) without RTM_NEWRULE.
            self.dirty.add(Scope("rule"))
        if old is None or action == "del" or old.ifname != link.ifname or old.is_up != link.is_up:
            events += self.relink(ifindex, resolve)
        return events

    def relink(self, ifindex: int, resolve: Callable[[Link, dict[int, Link]], Link]) -> list[Event]:
        """iproute2 prints the lower device's name and whether it is up
        (M-DOWN) with each link that names it: resolve those again after
        link ``ifindex`` changed (by notification or by a dump)."""
        links = self.state["link"]
        events = []
        for other in list(links.values()):
            if other.ifindex != ifindex and ifindex in (other.link_ifindex, other.master_ifindex):
                resolved = resolve(other, links)
                if resolved != other:
                    links[other.ifindex] = resolved
                    events.append(Event("new", "link", resolved))
        return events

    def apply_address(self, action: str, address: Any) -> list[Event]:
        """An RTM_NEWADDR/RTM_DELADDR: the address itself, and the routes it
        may have changed silently made dirty (see the module docstring)."""
        events: list[Event] = []
        if "address" in self.state:
            event = self.apply(action, "address", address)
            if event is not None:
                events.append(event)
        routes = self.state.get("route")
        if routes is not None:
            self.dirty.add(Scope("route", ifindex=address.ifindex))
            if action == "del":
                for route in routes.values():
                    if route.prefsrc == address.local:
                        self.dirty.add(Scope("route", route.family, route.table))
        return events

    # -- nexthop objects ---------------------------------------------------------------
    def apply_nexthop(self, action: str, nexthop: Any) -> list[Event]:
        """An RTM_NEWNEXTHOP/RTM_DELNEXTHOP: the object itself, and the route
        tables using it made dirty when it went or changed (see the module
        docstring)."""
        old = self.state.get("nexthop", {}).get(nexthop.key)
        event = self.apply(action, "nexthop", nexthop) if "nexthop" in self.state else None
        if action == "del" or old is not None:
            self.nexthops_changed({nexthop.key})
        return [event] if event is not None else []

    def nexthops_changed(self, ids: set[int]) -> None:
        """Routes using nexthop ``ids`` (directly or through a group holding
        one) may have changed or gone silently: their tables become dirty."""
        routes = self.state.get("route")
        if not routes or not ids:
            return
        nexthops = self.state.get("nexthop", {})
        ids = ids | {nexthop.id for nexthop in nexthops.values() if any(member in ids for member, _weight in nexthop.group)}
        for route in routes.values():
            if route.nhid in ids:
                self.dirty.add(Scope("route", route.family, route.table))

    # -- dumps ---------------------------------------------------------------------------
    def replace(self, kind: Kind, objects: Iterable[Any], scope: Scope | None = None) -> list[Event]:
        """Swap in a fresh dump of ``kind`` (of the part ``scope`` covers, or
        all of it); returns "del" events for objects that vanished, then
        "new" events for objects added or changed."""
        old = self.state.setdefault(kind, {})
        fresh: dict[Any, Any] = {}
        for obj in objects:
            fresh[obj.key] = obj
        covered = old if scope is None else {key: obj for key, obj in old.items() if scope.covers(obj)}
        events = [Event("del", kind, obj) for key, obj in covered.items() if key not in fresh]
        events += [Event("new", kind, obj) for key, obj in fresh.items() if old.get(key) != obj]
        if scope is None:
            self.state[kind] = fresh
        else:
            for key in covered:
                if key not in fresh:
                    del old[key]
            old.update(fresh)
        if kind == "route":
            self._rerun(fresh.values(), scope)
        return events

    def _rerun(self, dumped: Iterable[Any], scope: Scope | None) -> None:
        """IPv4 alias order after a dump: the dump walks each alias list in
        order (fib_table_dump), so its order wins; aliases the scope did not
        cover keep their place after those it did."""
        table = self.state["route"]
        order: dict[Any, list[Any]] = {}
        for route in dumped:
            if route.family == AF_INET:
                order.setdefault(route.replace_key, []).append(route.key)
        if scope is None:
            self._runs = order
            return
        for replace_key in list(self._runs):
            run = self._runs[replace_key]
            kept = [key for key in run if key in table and not scope.covers(table[key])]
            fresh = order.pop(replace_key, [])
            run = fresh + [key for key in kept if key not in fresh]
            if run:
                self._runs[replace_key] = run
            else:
                del self._runs[replace_key]
        self._runs.update(order)

    def objects(self, kind: Kind) -> dict[Any, Any]:
        return self.state.get(kind, {})
