"""The monitor's view of rtnetlink state and how it changes.

Pure: imports neither asyncio nor socket.

:class:`StateTracker` keeps one dict per kind (key -> object). Live
notifications go through :meth:`StateTracker.apply`, which drops the ones
that change nothing (a notification for an object the initial dump already
showed, a repeated RTM_NEWLINK, a delete of something unknown), and a fresh
dump after an overrun goes through :meth:`StateTracker.replace`, which
returns exactly the differences. A consumer that applies every event it is
given therefore always ends with the kernel's state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..constants import (
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
from .rtnl_objects import Event, Kind

__all__ = ["MESSAGE_KINDS", "KIND_GROUPS", "KINDS", "StateTracker"]

KINDS: tuple[Kind, ...] = ("link", "address", "route", "neighbour", "rule")

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
}

#: multicast groups carrying each kind's notifications (enum rtnetlink_groups)
KIND_GROUPS: dict[Kind, tuple[int, ...]] = {
    "link": (RTNLGRP_LINK,),
    "address": (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR),
    "route": (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE),
    "neighbour": (RTNLGRP_NEIGH,),
    "rule": (RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE),
}


class StateTracker:
    """Current objects per kind, keyed by ``obj.key``.

    >>> tracker = StateTracker(["route"])
    >>> events = tracker.replace("route", dumped_routes)   # all "new" at first
    >>> event = tracker.apply("del", "route", route)       # None if nothing changed
    """

    __slots__ = ("state",)

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.state: dict[str, dict[Any, Any]] = {kind: {} for kind in kinds}

    def apply(self, action: str, kind: Kind, obj: Any) -> Event | None:
        """One notification; returns the event to show, or None if the
        tracked state already says so."""
        table = self.state.get(kind)
        if table is None:
            return None
        key = obj.key
        if action == "new":
            if table.get(key) == obj:
                return None
            table[key] = obj
            return Event("new", kind, obj)
        if table.pop(key, None) is None:
            return None
        return Event("del", kind, obj)

    def replace(self, kind: Kind, objects: Iterable[Any]) -> list[Event]:
        """Swap in a fresh dump of ``kind``; returns "del" events for objects
        that vanished, then "new" events for objects added or changed."""
        fresh = {obj.key: obj for obj in objects}
        old = self.state.get(kind, {})
        events = [Event("del", kind, obj) for key, obj in old.items() if key not in fresh]
        events += [Event("new", kind, obj) for key, obj in fresh.items() if old.get(key) != obj]
        self.state[kind] = fresh
        return events

    def objects(self, kind: Kind) -> dict[Any, Any]:
        return self.state.get(kind, {})
