"""The conntrack client: dumps, changes, statistics and the live monitor
over one NETLINK_NETFILTER ring."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from typing import Any

import attrs

from .... import open as _open_ring
from ....constants import NETLINK_NETFILTER, NLM_F_CREATE, NLM_F_EXCL
from ....errors import DecodeError, DumpInterruptedError, NetlinkError, OverrunError
from ....message import Message
from ....ring import Ring
from ..._drops import DropWatch
from ...rtnl.objects import Event
from ...rtnl.state import StateTracker
from . import codec
from . import constants as c
from .codec import DecodeCounts, TupleSpec, family_number
from .objects import CpuStats, Expectation, Flow, TableCount

__all__ = ["open", "ConntrackClient", "MonitorStats"]

_CT_NEW = c.NFNL_SUBSYS_CTNETLINK << 8 | c.IPCTNL_MSG_CT_NEW
_CT_DELETE = c.NFNL_SUBSYS_CTNETLINK << 8 | c.IPCTNL_MSG_CT_DELETE
_EXP_NEW = c.NFNL_SUBSYS_CTNETLINK_EXP << 8 | c.IPCTNL_MSG_EXP_NEW
_CT_STATS_CPU = c.NFNL_SUBSYS_CTNETLINK << 8 | c.IPCTNL_MSG_CT_GET_STATS_CPU
_GROUPS = (c.NFNLGRP_CONNTRACK_NEW, c.NFNLGRP_CONNTRACK_UPDATE, c.NFNLGRP_CONNTRACK_DESTROY)
_RESYNC_ATTEMPTS = 20
_KIND = "conntrack"


def open(netns: Any = None, **ring_options: Any) -> ConntrackClient:
    """A conntrack client: ``async with conntrack.open(netns="blue") as ct: ...``

    ``netns`` is a namespace name (``ip netns``), path or fd; ``ring_options``
    go to :func:`aionlmmap.open` (``backend``, ``rx``, ``rcvbuf`` ...)."""
    ring = _open_ring(NETLINK_NETFILTER, netns=netns, **ring_options)
    return ConntrackClient(ring, netns=netns)


@attrs.define
class MonitorStats:
    """What a monitor saw: ``overruns`` (ENOBUFS reports: the kernel dropped
    events), ``resyncs`` (re-dumps made after them), ``events`` yielded."""

    overruns: int = 0
    resyncs: int = 0
    events: int = 0
    silent_drops: int = 0  #: times events were dropped in an overrun's congestion window


def _decode(msg: Message) -> tuple[Any, int, int]:
    return msg[6].buffer, msg[4], msg[5]


class ConntrackClient:
    """Conntrack over one NETLINK_NETFILTER ring (``ct.ring``).

    ``ct.counts`` counts attributes of unknown type and malformed messages
    (skipped, never fatal); ``ct.monitor_stats`` the monitor's overruns and
    resyncs."""

    def __init__(self, ring: Ring, *, netns: Any = None) -> None:
        self.ring = ring
        self.netns = netns
        self.counts = DecodeCounts()
        self.monitor_stats = MonitorStats()
        #: whether the kernel keeps marks (CONFIG_NF_CONNTRACK_MARK), as the
        #: monitor's dumps show; assumed until a dump says otherwise
        self._kernel_marks = True

    async def __aenter__(self) -> ConntrackClient:
        await self.ring.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.ring.aclose()

    def _flow(self, msg: Message) -> Flow | None:
        try:
            return codec.decode_flow(*_decode(msg), self.counts)
        except DecodeError:
            self.counts.malformed += 1
            return None

    # -- dumps -------------------------------------------------------------------------
    async def flows(
        self,
        family: int | str | None = None,
        *,
        mark: int | None = None,
        mark_mask: int | None = None,
        status: int | None = None,
        status_mask: int | None = None,
        zone: int | None = None,
        original: TupleSpec | None = None,
        reply: TupleSpec | None = None,
        ring: Ring | None = None,
    ) -> AsyncIterator[Flow]:
        """Stream the conntrack table (``conntrack -L``), filtered in the
        kernel. The same filter is applied again here, so a kernel older than
        a filter (CTA_FILTER is 5.8, zones 6.8) still gives the right answer,
        only with more bytes read."""
        number = family_number(family)
        request = codec.dump_request(number, mark=mark, mark_mask=mark_mask, status=status, status_mask=status_mask, zone=zone, original=original, reply=reply)
        mark_bits = None if mark is None else (mark, 0xFFFFFFFF if mark_mask is None else mark_mask)
        status_bits = None if status is None else (status, status if status_mask is None else status_mask)
        number = request[6].buffer[0]  # a tuple filter may have chosen the family
        async for msg in (ring or self.ring).dump(request):
            if msg[0] != _CT_NEW:
                continue
            flow = self._flow(msg)
            if flow is None:
                continue
            if number and flow.family != number:
                continue
            if mark_bits is not None and ((flow.mark or 0) & mark_bits[1]) != mark_bits[0]:
                continue
            if status_bits is not None and (flow.status & status_bits[1]) != status_bits[0]:
                continue
            if zone is not None and (flow.zone or 0) != zone:
                continue
            if original is not None and not original.matches(flow.original):
                continue
            if reply is not None and not reply.matches(flow.reply):
                continue
            yield flow

    async def get(self, original: TupleSpec, *, zone: int | None = None) -> Flow:
        """The entry with this original tuple (``conntrack -G``); raises
        ``FileNotFoundError`` (ENOENT) when there is none."""
        replies = await self.ring.request(codec.flow_request(c.IPCTNL_MSG_CT_GET, original, zone=zone))
        for msg in replies:
            if msg[0] == _CT_NEW:
                flow = self._flow(msg)
                if flow is not None:
                    return flow
        raise DecodeError("the kernel answered IPCTNL_MSG_CT_GET without a decodable entry")

    async def expectations(self, family: int | str | None = None) -> AsyncIterator[Expectation]:
        """Stream the expectation table (``conntrack -L expect``)."""
        async for msg in self.ring.dump(codec.expect_dump_request(family_number(family))):
            if msg[0] != _EXP_NEW:
                continue
            try:
                yield codec.decode_expectation(*_decode(msg), self.counts)
            except DecodeError:
                self.counts.malformed += 1

    async def stats(self) -> list[CpuStats]:
        """Per-CPU counters (``conntrack -S``)."""
        out = []
        async for msg in self.ring.dump(codec.stats_cpu_request()):
            if msg[0] != _CT_STATS_CPU:
                continue
            try:
                out.append(codec.decode_cpu_stats(*_decode(msg), self.counts))
            except DecodeError:
                self.counts.malformed += 1
        return out

    async def count(self) -> TableCount:
        """Entries in the table (``conntrack -C``)."""
        # The reply carries NLM_F_MULTI without a NLMSG_DONE (ctnetlink_stat_ct):
        # only the ACK ends the request.
        replies = await self.ring.request(codec.count_request())
        for msg in replies:
            if msg[0] == c.NFNL_SUBSYS_CTNETLINK << 8 | c.IPCTNL_MSG_CT_GET_STATS:
                return codec.decode_table_count(*_decode(msg), self.counts)
        raise DecodeError("the kernel answered IPCTNL_MSG_CT_GET_STATS without a count")

    # -- changes -----------------------------------------------------------------------
    async def create(self, original: TupleSpec, reply: TupleSpec | None = None, *, timeout: int, **options: Any) -> None:
        """Add an entry (``conntrack -I``): ``reply`` defaults to the reversed
        original; ``options``: status, mark, zone, tcp_state, labels.
        ``FileExistsError`` if it exists."""
        await self.ring.request(codec.create_request(original, reply, timeout=timeout, **options))

    async def update(self, original: TupleSpec, **changes: Any) -> None:
        """Change an entry (``conntrack -U``): mark, timeout, status, labels
        (+ labels_mask), zone to find it in."""
        try:
            await self.ring.request(codec.update_request(original, **changes))
        except NetlinkError as exc:
            if exc.errno == errno.ENOSPC and changes.get("labels") is not None:
                # nf_connlabels_replace: an entry has label storage only if it
                # was created while a ruleset used labels (nf_connlabels_get).
                raise NetlinkError(errno.ENOSPC, "this entry has no room for labels: the kernel adds label storage only to entries created while a ruleset uses ct labels (nft 'ct label', iptables connlabel)", request=exc.request) from None
            raise

    async def delete(self, original: TupleSpec, *, zone: int | None = None) -> None:
        """Delete one entry (``conntrack -D``); ``FileNotFoundError`` if absent."""
        await self.ring.request(codec.flow_request(c.IPCTNL_MSG_CT_DELETE, original, zone=zone))

    async def flush(self, family: int | str | None = None, *, mark: int | None = None, mark_mask: int | None = None) -> None:
        """Delete every entry of a family (default both), or those whose
        mark matches (``conntrack -F``)."""
        await self.ring.request(codec.flush_request(family_number(family), mark=mark, mark_mask=mark_mask))

    # -- the monitor -------------------------------------------------------------------
    async def monitor(self, resync: bool = True, *, family: int | str | None = None, ring: Ring | None = None, **ring_options: Any) -> AsyncIterator[Event]:
        """Live changes as events (``action`` "new" for created or updated,
        "del" for destroyed; ``kind`` "conntrack"; ``obj`` a :class:`Flow`)
        from NFNLGRP_CONNTRACK_NEW, _UPDATE and _DESTROY, on a ring of its
        own.

        With ``resync=True`` it first yields the table as "new" events; after
        an overrun (the kernel dropped events: ENOBUFS) it dumps again and
        yields only the differences, so a consumer applying every event holds
        what ``conntrack -L`` shows (a mark an event left out is 0 there, as
        -L prints it). ``ct.monitor_stats`` counts the overruns and resyncs.
        With ``resync=False`` every event passes through as the kernel sent
        it, as ``conntrack -E`` prints it (``mark`` None where the kernel left
        a zero mark out), and an overrun raises
        :class:`aionlmmap.OverrunError` (iterate again to go on).
        """
        number = family_number(family)
        if ring is None:
            ring = _open_ring(NETLINK_NETFILTER, groups=_GROUPS, netns=self.netns, **ring_options)
        else:
            ring.join(*_GROUPS)
        stats = self.monitor_stats
        async with ring:
            drops = DropWatch(ring.fileno())
            try:
                tracker = StateTracker([_KIND])  # type: ignore[list-item]
                if resync:
                    for event in await self._resync(ring, tracker, number, drops):
                        stats.events += 1
                        yield event
                while True:
                    try:
                        async for msg in ring:
                            msg_type = msg[0]
                            if msg_type == _CT_NEW:
                                action = "new"
                            elif msg_type == _CT_DELETE:
                                action = "del"
                            else:
                                continue
                            flow = self._flow(msg)
                            if flow is not None and (not number or flow.family == number):
                                if not resync:
                                    stats.events += 1
                                    yield Event(action, _KIND, flow)  # type: ignore[arg-type]
                                    continue
                                if flow.mark is None and self._kernel_marks:
                                    # The event left a zero mark out (ctnetlink_dump_mark sends
                                    # it only when set or when the event is about it); the
                                    # view holds what conntrack -L shows: mark=0.
                                    flow = attrs.evolve(flow, mark=0)
                                if action == "new" and msg[1] & (NLM_F_CREATE | NLM_F_EXCL) == 0:
                                    # An update event carries only what changed
                                    # (ctnetlink_conntrack_event): merge it into the
                                    # entry we hold so the view stays whole.
                                    flow = _merge(tracker.objects(_KIND).get(flow.key), flow)
                                change = tracker.apply(action, _KIND, flow)  # type: ignore[arg-type]
                                if change is not None:
                                    stats.events += 1
                                    yield change
                            if drops.armed:
                                for event in await self._after_resync(ring, tracker, number, drops):
                                    stats.events += 1
                                    yield event
                    except OverrunError:
                        stats.overruns += 1
                        if not resync:
                            raise
                        drops.arm()
                        for event in await self._resync(ring, tracker, number, drops):
                            stats.events += 1
                            yield event
            finally:
                drops.close()

    async def snapshot(self, family: int | str | None = None, ring: Ring | None = None) -> list[Flow]:
        """The whole table as a list."""
        return [flow async for flow in self.flows(family, ring=ring)]

    async def _resync(self, ring: Ring, tracker: StateTracker, family: int, drops: DropWatch) -> list[Event]:
        self.monitor_stats.resyncs += 1
        for attempt in range(_RESYNC_ATTEMPTS):
            try:
                flows = await self.snapshot(family or None, ring)
                break
            except DumpInterruptedError:
                if attempt == _RESYNC_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        self._learn_marks(flows)
        events = tracker.replace(_KIND, flows)  # type: ignore[arg-type]
        return events + await self._after_resync(ring, tracker, family, drops)

    def _learn_marks(self, flows: list[Flow]) -> None:
        # A dumped entry always has CTA_MARK where the kernel keeps marks
        # (ctnetlink_dump_info); one without it means CONFIG_NF_CONNTRACK_MARK
        # is off, and then an event's missing mark is no zero either.
        if flows:
            self._kernel_marks = flows[0].mark is not None

    async def _after_resync(self, ring: Ring, tracker: StateTracker, family: int, drops: DropWatch) -> list[Event]:
        # Events the kernel dropped after the overrun without a second
        # ENOBUFS (see _drops.py): dump again until a dump ends with none
        # dropped since it began.
        events: list[Event] = []
        for _attempt in range(_RESYNC_ATTEMPTS):
            if drops.check() != "lost":
                return events
            self.monitor_stats.silent_drops += 1
            drops.arm()
            self.monitor_stats.resyncs += 1
            flows = await self.snapshot(family or None, ring)
            self._learn_marks(flows)
            events += tracker.replace(_KIND, flows)  # type: ignore[arg-type]
        return events


def _merge(held: Flow | None, update: Flow) -> Flow:
    """An update event's flow completed from the entry held before it: the
    kernel leaves out attributes whose event bit is not set (protoinfo,
    helper, labels, ...), which would otherwise read as "removed"."""
    if held is None:
        return update
    changes = {}
    for field in ("state", "helper", "labels", "secctx", "master", "mark", "zone", "id", "timeout", "use", "counters_original", "counters_reply"):
        if getattr(update, field) is None and getattr(held, field) is not None:
            changes[field] = getattr(held, field)
    return attrs.evolve(update, **changes) if changes else update
