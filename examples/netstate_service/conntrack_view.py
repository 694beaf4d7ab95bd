"""The connection tracking table, kept live by the conntrack family's monitor.

``conntrack.monitor(resync=True)`` joins NFNLGRP_CONNTRACK_NEW, _UPDATE and
_DESTROY, starts with the table as "new" events and re-dumps after an
overrun, so applying its events keeps what ``conntrack -L`` shows. The view

- holds at most ``limit`` entries (``--conntrack-limit``). Past the cap an
  entry the view does not hold yet is turned away (its events counted in
  ``turned_away``; it is not picked up when room frees, only when the view
  reopens and dumps again); entries already held keep being updated and removed.
  ``/api/conntrack`` then says ``"truncated": true`` and still reports the
  kernel's own count (``ct.count()``, one IPCTNL_MSG_CT_GET_STATS request)
  as ``table_entries``;
- serves the entries and a summary (count, per protocol, per state) with
  filters for ``/api/conntrack``;
- publishes each change to the service's view as kind ``conntrack``
  (``new`` for a created or updated entry, ``del`` for a destroyed one), so
  SSE clients see flows come and go and resync snapshots carry them.

If the table cannot be read (module missing, namespace gone) the view
empties itself (publishing ``del`` for what it held), reports the error
and retries with a growing delay (:class:`.LiveView`).

Example::

    view = ConntrackView(service, netns="blue", limit=10_000)
    task = asyncio.create_task(view.run())
    await view.wait_ready(5)
    view.summary()     # {"count": ..., "protocols": {...}, "states": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import Any

import attrs

from .live_view import LiveView, ViewEvent

__all__ = ["CONNTRACK_KIND", "ConntrackQuery", "ConntrackView", "parse_conntrack_query"]

log = logging.getLogger("netstate_service")

CONNTRACK_KIND = "conntrack"
DEFAULT_LIMIT = 10_000
MAX_ANSWER = 100_000  #: the largest ?limit= accepted
_DEFAULT_ANSWER = 1000
_PARAMETERS = ("limit", "family", "protocol", "state", "src", "dst", "sport", "dport", "mark", "zone")
_FAMILIES = {"ipv4": socket.AF_INET, "inet": socket.AF_INET, "4": socket.AF_INET, "ipv6": socket.AF_INET6, "inet6": socket.AF_INET6, "6": socket.AF_INET6}
# The layer-4 names conntrack -L prints (nf_conntrack_l4proto names).
_PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "udplite": 136}
# tcp_conntrack_names (nf_conntrack_proto_tcp.c) and sctp_conntrack_names.
_STATES = {
    "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
    "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED",
}  # fmt: skip


class ConntrackQueryError(ValueError):
    """A ``/api/conntrack`` query value the service does not understand (400)."""


@attrs.frozen(kw_only=True)
class ConntrackQuery:
    """Filters of ``/api/conntrack``; None matches everything."""

    limit: int = _DEFAULT_ANSWER
    family: int | None = None
    protonum: int | None = None
    state: str | None = None
    src: str | None = None  #: canonical text (ipaddress), as the decoder prints addresses
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    mark: int | None = None
    zone: int | None = None

    def matches(self, flow: Any) -> bool:
        o = flow.original
        return (
            (self.family is None or flow.family == self.family)
            and (self.protonum is None or o.protonum == self.protonum)
            and (self.state is None or (flow.state or "").upper() == self.state)
            and (self.src is None or o.src == self.src)
            and (self.dst is None or o.dst == self.dst)
            and (self.sport is None or o.sport == self.sport)
            and (self.dport is None or o.dport == self.dport)
            and (self.mark is None or (flow.mark or 0) == self.mark)
            and (self.zone is None or (flow.zone or 0) == self.zone)
        )


def _address(value: str) -> str | None:
    # The canonical text form (RFC 5952 for IPv6), which is how the codec
    # prints addresses: the filter then compares strings, not parses per entry.
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _number(name: str, value: str, maximum: int) -> int:
    # isascii: str.isdigit also accepts other scripts' digits.
    if not (value.isascii() and value.isdigit()) or int(value) > maximum:
        raise ConntrackQueryError(f"{name} must be a whole number from 0 to {maximum}, not {value!r}")
    return int(value)


def parse_conntrack_query(query: Any) -> ConntrackQuery:
    """``request.query`` -> :class:`ConntrackQuery`; unknown parameters,
    repeated ones and bad values raise :class:`ConntrackQueryError`."""
    for name in query:
        if name not in _PARAMETERS:
            raise ConntrackQueryError(f"unknown query parameter {name!r} for /api/conntrack (accepted: {', '.join(_PARAMETERS)})")
        if len(query.getall(name)) > 1:
            raise ConntrackQueryError(f"query parameter {name!r} given more than once")
    values: dict[str, Any] = {}
    if "limit" in query:
        values["limit"] = _number("limit", query["limit"], MAX_ANSWER)
    if "family" in query:
        family = _FAMILIES.get(query["family"].lower())
        if family is None:
            raise ConntrackQueryError(f"unknown family {query['family']!r}: use ipv4, ipv6, inet, inet6, 4 or 6")
        values["family"] = family
    if "protocol" in query:
        name = query["protocol"].lower()
        values["protonum"] = _PROTOCOLS[name] if name in _PROTOCOLS else _number("protocol", name, 255) if name.isdigit() else None
        if values["protonum"] is None:
            raise ConntrackQueryError(f"unknown protocol {query['protocol']!r}: use {', '.join(_PROTOCOLS)} or a number 0..255")
    if "state" in query:
        state = query["state"].upper()
        if state not in _STATES:
            raise ConntrackQueryError(f"unknown state {query['state']!r}: use a TCP or SCTP state as conntrack -L prints it (e.g. ESTABLISHED)")
        values["state"] = state
    for name in ("src", "dst"):
        if name in query:
            address = _address(query[name])
            if address is None:
                raise ConntrackQueryError(f"{name} must be an IPv4 or IPv6 address, not {query[name]!r}")
            values[name] = address
    for name, maximum in (("sport", 65535), ("dport", 65535), ("mark", 2**32 - 1), ("zone", 65535)):
        if name in query:
            values[name] = _number(name, query[name], maximum)
    return ConntrackQuery(**values)


@attrs.frozen
class _Held:
    """A flow with its JSON made once: the service's view files this, so the
    entry is serialized once per change for both /api/conntrack and SSE."""

    flow: Any
    document: dict[str, Any]

    @property
    def key(self) -> Any:
        return self.flow.key

    @property
    def family(self) -> int:
        return int(self.flow.family)

    def to_json(self) -> dict[str, Any]:
        return self.document


def _client_class() -> Any:
    from aionlmmap.families.netfilter.conntrack import ConntrackClient

    class _MarkingClient(ConntrackClient):
        """A client that tells the view when one of the monitor's dumps has
        ended: the monitor then yields its events without waiting for the
        kernel, so the view is complete the next time the loop runs."""

        on_dumped: Any = None

        async def snapshot(self, family: Any = None, ring: Any = None) -> list[Any]:
            flows = await super().snapshot(family, ring)
            if self.on_dumped is not None:
                asyncio.get_running_loop().call_soon(self.on_dumped)
            return flows

    return _MarkingClient


class ConntrackView(LiveView):
    """See the module docstring. ``service`` receives the change events
    (``NetStateService.apply_external``)."""

    name = "conntrack view"

    def __init__(self, service: Any, netns: Any = None, *, limit: int = DEFAULT_LIMIT, retry_delay: float = 1.0, max_retry_delay: float = 30.0) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 (entries the view holds)")
        super().__init__(service, netns, retry_delay=retry_delay, max_retry_delay=max_retry_delay)
        self.limit = limit
        self.flows: dict[Any, Any] = {}  #: Flow.key -> Flow, at most ``limit``
        self._documents: dict[Any, dict[str, Any]] = {}  #: Flow.key -> to_json(), made once per change
        self.turned_away = 0  #: events about entries not held because the view was full
        self.events = 0
        self._client: Any = None

    @property
    def full(self) -> bool:
        return len(self.flows) >= self.limit

    async def _follow(self) -> None:
        from aionlmmap import NETLINK_NETFILTER
        from aionlmmap import open as open_ring

        # The monitor's ring is opened here so /metrics can count its frames
        # and overruns; the monitor joins the conntrack groups on it.
        monitor_ring = open_ring(NETLINK_NETFILTER, netns=self.netns)
        try:
            client = _client_class()(open_ring(NETLINK_NETFILTER, netns=self.netns), netns=self.netns)
        except BaseException:
            monitor_ring.close()
            raise
        client.on_dumped = self._ready.set
        try:
            async with client:
                self._client = client
                register = getattr(self.service, "register_ring", None)
                if register is not None:
                    register("conntrack", monitor_ring)
                async with contextlib.aclosing(client.monitor(resync=True, ring=monitor_ring)) as events:  # type: ignore[type-var]
                    async for event in events:
                        self._apply(event)
        finally:
            self._client = None
            # Both are closed already on a normal exit; this covers a failure
            # before the monitor or the client's ring started.
            monitor_ring.close()
            client.ring.close()

    def _apply(self, event: Any) -> None:
        self.events += 1
        flow = event.obj
        key = flow.key
        if event.action == "del":
            if self.flows.pop(key, None) is not None:
                del self._documents[key]
                self.service.apply_external(ViewEvent("del", CONNTRACK_KIND, flow))
            return
        if key not in self.flows and self.full:
            self.turned_away += 1
            return
        # A zero mark an event left out is already 0 here: the resyncing
        # monitor holds what conntrack -L shows.
        self.flows[key] = flow
        document = self._documents[key] = flow.to_json()
        self.service.apply_external(ViewEvent("new", CONNTRACK_KIND, _Held(flow, document)))

    def _failed(self) -> None:
        # Not served stale: the table may have changed while it was unreadable.
        flows, self.flows = self.flows, {}
        self._documents = {}
        for flow in flows.values():
            self.service.apply_external(ViewEvent("del", CONNTRACK_KIND, flow))

    # -- readers ---------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Entries held, by protocol and by state (entries without a state,
        e.g. UDP, are left out of ``states``)."""
        protocols: dict[str, int] = {}
        states: dict[str, int] = {}
        for flow in self.flows.values():
            protocols[flow.protocol] = protocols.get(flow.protocol, 0) + 1
            if flow.state is not None:
                states[flow.state] = states.get(flow.state, 0) + 1
        return {"count": len(self.flows), "protocols": dict(sorted(protocols.items())), "states": dict(sorted(states.items())), "limit": self.limit, "turned_away": self.turned_away}

    def select(self, query: ConntrackQuery) -> tuple[int, list[dict[str, Any]]]:
        """(entries matching, the first ``query.limit`` of them as JSON)."""
        matched = 0
        out = []
        documents = self._documents
        for key, flow in self.flows.items():
            if query.matches(flow):
                matched += 1
                if len(out) < query.limit:
                    out.append(documents[key])
        return matched, out

    async def table_entries(self) -> int | None:
        """The kernel's count of the table (None when it cannot be asked)."""
        client = self._client
        if client is None:
            return None
        try:
            return int((await client.count()).entries)
        except Exception as exc:  # the answer still has the view's own figures
            log.debug("conntrack count failed: %s", exc)
            return None

    def status(self) -> dict[str, Any]:
        return {"ready": self.ready, "entries": len(self.flows), "limit": self.limit, "turned_away": self.turned_away, "events": self.events, "last_error": self.last_error}
