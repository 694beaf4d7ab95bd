"""``/metrics``: node_exporter's network metrics, from netlink, for Prometheus.

Names, labels, types and units are those of node_exporter's ``netdev``
(netlink mode, with its default "legacy" folding of the detailed error
counters) and ``netclass`` collectors, so dashboards and alerts written for
node_exporter work unchanged:

- ``node_network_{receive,transmit}_*_total{device}``: counters of one
  ``RTM_GETSTATS`` dump per scrape (``IFLA_STATS_LINK_64``, see
  :mod:`aionlmmap.families.rtnl_stats`); the kernel never notifies them.
- ``node_network_up``, ``node_network_info``, ``node_network_mtu_bytes``,
  ``node_network_carrier`` and the other netclass gauges: from the links the
  monitor keeps live (no dump).
- ``node_nf_conntrack_entries`` and ``_entries_limit`` (node_exporter's
  conntrack collector): one ctnetlink ``IPCTNL_MSG_CT_GET_STATS`` request
  per scrape, which answers the namespace's ``nf_conntrack_count`` and
  ``nf_conntrack_max``; absent where conntrack is not available, as
  node_exporter leaves them out when its /proc files are missing.
- ``aionlmmap_*``: the service's own counters (ring frames, COPY frames,
  overruns, foreign messages dropped, monitor resyncs, SSE clients).

The per-device families are rendered here rather than through
prometheus_client's ``generate_latest``: with 1,000 links a scrape has some
25,000 samples, and building a Sample tuple and escaping every label of
every one cost more than the 50 ms a scrape may take. The text is the same
exposition format (``promtool check metrics`` checks it in the tests);
prometheus_client renders the ``aionlmmap_*`` families and supplies the
content type.

Example::

    reader = StatsReader(netns="blue")
    text = await render_metrics(service, reader)     # bytes, text format 0.0.4
    await reader.aclose()
"""

from __future__ import annotations

import asyncio
import logging
from operator import attrgetter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from aionlmmap.attributes import parse_attributes
from aionlmmap.families.rtnl.stats import LinkStats64, link_stats

__all__ = ["CONTENT_TYPE", "StatsReader", "render_metrics", "escape_label_value"]

#: text format 0.0.4, as node_exporter serves it (every Prometheus 2.x parses it)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
log = logging.getLogger("netstate_service")

# <linux/if.h>
_IFF_UP = 0x1
_IFF_LOWER_UP = 0x10000
_IFF_DORMANT = 0x20000
# IF_OPER_* as /sys/class/net/*/operstate spells them (net/core/net-sysfs.c operstates[])
_OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

#: node_exporter netdev's metric keys (before "_total") and how each is made
#: from struct rtnl_link_stats64. Its legacy() folds the detailed errors the
#: way /proc/net/dev does (dev_seq_printf_stats in net/core/net-procfs.c).
NETDEV_COUNTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("receive_bytes", ("rx_bytes",)),
    ("receive_packets", ("rx_packets",)),
    ("receive_errs", ("rx_errors",)),
    ("receive_drop", ("rx_dropped", "rx_missed_errors")),
    ("receive_fifo", ("rx_fifo_errors",)),
    ("receive_frame", ("rx_frame_errors", "rx_length_errors", "rx_over_errors", "rx_crc_errors")),
    ("receive_compressed", ("rx_compressed",)),
    ("receive_multicast", ("multicast",)),
    ("receive_nohandler", ("rx_nohandler",)),
    ("transmit_bytes", ("tx_bytes",)),
    ("transmit_packets", ("tx_packets",)),
    ("transmit_errs", ("tx_errors",)),
    ("transmit_drop", ("tx_dropped",)),
    ("transmit_fifo", ("tx_fifo_errors",)),
    ("transmit_colls", ("collisions",)),
    ("transmit_carrier", ("tx_carrier_errors", "tx_aborted_errors", "tx_heartbeat_errors", "tx_window_errors")),
    ("transmit_compressed", ("tx_compressed",)),
)


def escape_label_value(value: str) -> str:
    """A label value in the text format: backslash, double quote and line
    feed escaped (interface aliases may hold any of them)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# <linux/netfilter/nfnetlink_conntrack.h>: IPCTNL_MSG_CT_GET_STATS answers
# CTA_STATS_GLOBAL_ENTRIES / _MAX_ENTRIES (ctnetlink_stat_ct) as be32.
_CT_GET_STATS = 1 << 8 | 5  # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET_STATS
_CTA_STATS_GLOBAL_ENTRIES, _CTA_STATS_GLOBAL_MAX_ENTRIES = 1, 2
_NFGENMSG_SIZE = 4


def decode_conntrack_stats(buffer: Any, start: int, end: int) -> tuple[int, int | None]:
    """(entries, max entries) from an IPCTNL_MSG_CT_GET_STATS reply payload."""
    table = parse_attributes(buffer, start + _NFGENMSG_SIZE, end)
    values = {}
    for attr_type in (_CTA_STATS_GLOBAL_ENTRIES, _CTA_STATS_GLOBAL_MAX_ENTRIES):
        span = table.get(attr_type)
        if span is not None and span[1] - span[0] == 4:
            values[attr_type] = int.from_bytes(bytes(buffer[span[0] : span[1]]), "big")
    if _CTA_STATS_GLOBAL_ENTRIES not in values:
        raise ValueError("ctnetlink stats reply without CTA_STATS_GLOBAL_ENTRIES")
    return values[_CTA_STATS_GLOBAL_ENTRIES], values.get(_CTA_STATS_GLOBAL_MAX_ENTRIES)


class StatsReader:
    """Runs the per-scrape ``RTM_GETSTATS`` dump on a NETLINK_ROUTE ring of
    its own, opened on first use (in ``netns``) and kept for later scrapes.
    Concurrent scrapes share one dump."""

    def __init__(self, netns: Any = None, *, backend: str = "auto") -> None:
        self.netns = netns
        self.backend = backend
        self.ring: Any = None
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future[dict[int, LinkStats64]] | None = None
        self.netfilter: Any = None
        self.conntrack_error: str | None = None
        self.dumps = 0
        #: called as ``register_ring("stats", ring)`` when a ring opens (the
        #: app sets it to NetStateService.register_ring for aionlmmap_* metrics)
        self.register_ring: Callable[[str, Any], None] | None = None

    async def read(self) -> dict[int, LinkStats64]:
        """ifindex -> counters. A scrape that arrives while a dump runs
        waits for that dump instead of starting another."""
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        future: asyncio.Future[dict[int, LinkStats64]] = asyncio.get_running_loop().create_future()
        self._inflight = future
        try:
            async with self._lock:
                result = await self._dump()
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure with no waiter is not "never retrieved"
            raise
        finally:
            self._inflight = None

    async def _dump(self) -> dict[int, LinkStats64]:
        import aionlmmap

        if self.ring is None:
            ring = aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=self.netns, backend=self.backend)
            await ring.__aenter__()
            self.ring = ring
            if self.register_ring is not None:
                self.register_ring("stats", ring)
        try:
            stats = await link_stats(self.ring)
        except Exception:
            # A broken ring is not reused: the next scrape opens a fresh one.
            ring, self.ring = self.ring, None
            await ring.aclose()
            raise
        self.dumps += 1
        return stats

    async def conntrack(self) -> tuple[int, int | None] | None:
        """(entries, limit) of the namespace's conntrack table, or None when
        conntrack cannot be asked (not built, no ctnetlink): logged once."""
        import aionlmmap
        from aionlmmap.constants import NLM_F_REQUEST
        from aionlmmap.families.netfilter.nfnetlink import encode_nfgenmsg
        from aionlmmap.message import Message

        try:
            if self.netfilter is None:
                ring = aionlmmap.open(aionlmmap.NETLINK_NETFILTER, netns=self.netns, backend=self.backend)
                await ring.__aenter__()
                self.netfilter = ring
            replies = await self.netfilter.request(Message(_CT_GET_STATS, NLM_F_REQUEST, payload=encode_nfgenmsg(0)))
            for reply in replies:
                if reply[0] == _CT_GET_STATS:
                    return decode_conntrack_stats(reply[6].buffer, reply[4], reply[5])
            raise ValueError("no ctnetlink stats reply")
        except (OSError, ValueError) as exc:
            if self.conntrack_error is None:
                log.info("conntrack counts unavailable (%s); node_nf_conntrack_* left out", exc)
            self.conntrack_error = str(exc)
            return None

    async def aclose(self) -> None:
        ring, self.ring = self.ring, None
        if ring is not None:
            await ring.aclose()
        netfilter, self.netfilter = self.netfilter, None
        if netfilter is not None:
            await netfilter.aclose()


class _LinkLabels:
    """Per-link text that only changes when the link does (cached by identity)."""

    __slots__ = ("link", "device", "gauges")

    def __init__(self, link: Any) -> None:
        self.link = link
        self.device = '{device="' + escape_label_value(link.ifname) + '"}'
        self.gauges = _link_gauges(link, self.device)


def _operstate(link: Any) -> str:
    state = link.operstate
    return _OPERSTATES[state] if isinstance(state, int) and 0 <= state < len(_OPERSTATES) else "unknown"


def _link_gauges(link: Any, device: str) -> dict[str, str]:
    """name -> sample line of each netclass gauge of one link."""
    flags = link.flags
    operstate = _operstate(link)
    info_labels = {
        "address": link.address or "",
        "adminstate": "up" if flags & _IFF_UP else "down",
        "broadcast": link.broadcast or "",
        "device": link.ifname,
        # duplex comes from ethtool (ETHTOOL_GLINKSETTINGS), which netlink's
        # link messages do not carry: empty, as node_exporter prints it for
        # devices without ethtool link settings.
        "duplex": "",
        "ifalias": link.alias or "",
        "operstate": operstate,
    }
    info = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in info_labels.items())
    lines = {
        "up": f"node_network_up{device} {1 if operstate == 'up' else 0}\n",
        "info": f"node_network_info{{{info}}} 1\n",
        "flags": f"node_network_flags{device} {flags}\n",
        "iface_id": f"node_network_iface_id{device} {link.ifindex}\n",
        "iface_link": f"node_network_iface_link{device} {link.link_ifindex or link.ifindex}\n",
        "protocol_type": f"node_network_protocol_type{device} {link.link_type}\n",
    }
    if link.mtu is not None:
        lines["mtu_bytes"] = f"node_network_mtu_bytes{device} {link.mtu}\n"
    if link.txqlen is not None:
        lines["transmit_queue_length"] = f"node_network_transmit_queue_length{device} {link.txqlen}\n"
    if link.group is not None:
        lines["net_dev_group"] = f"node_network_net_dev_group{device} {link.group}\n"
    if link.linkmode is not None:
        lines["iface_link_mode"] = f"node_network_iface_link_mode{device} {link.linkmode}\n"
    if flags & _IFF_UP:
        # /sys/class/net/*/carrier and dormant answer EINVAL for a device
        # that is down (carrier_show: !netif_running), so node_exporter has
        # no sample then. When up, IFF_LOWER_UP is netif_carrier_ok and
        # IFF_DORMANT netif_dormant (dev_get_flags).
        lines["carrier"] = f"node_network_carrier{device} {1 if flags & _IFF_LOWER_UP else 0}\n"
        lines["dormant"] = f"node_network_dormant{device} {1 if flags & _IFF_DORMANT else 0}\n"
    return lines


#: netclass gauges in output order, with node_exporter's help texts.
_GAUGES = (
    ("up", "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise."),
    ("info", "node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1."),
    ("carrier", "node_network_carrier", "Network device property: carrier"),
    ("dormant", "node_network_dormant", "Network device property: dormant"),
    ("flags", "node_network_flags", "Network device property: flags"),
    ("iface_id", "node_network_iface_id", "Network device property: iface_id"),
    ("iface_link", "node_network_iface_link", "Network device property: iface_link"),
    ("iface_link_mode", "node_network_iface_link_mode", "Network device property: iface_link_mode"),
    ("mtu_bytes", "node_network_mtu_bytes", "Network device property: mtu_bytes"),
    ("net_dev_group", "node_network_net_dev_group", "Network device property: net_dev_group"),
    ("protocol_type", "node_network_protocol_type", "Network device property: protocol_type"),
    ("transmit_queue_length", "node_network_transmit_queue_length", "Network device property: transmit_queue_length"),
)


class NetworkMetrics:
    """Renders the ``node_network_*`` families (keeps per-link label text
    between scrapes)."""

    def __init__(self) -> None:
        self._labels: dict[int, _LinkLabels] = {}

    def _link_labels(self, links: Iterable[Any]) -> list[_LinkLabels]:
        cache, fresh = self._labels, {}
        for link in links:
            entry = cache.get(link.ifindex)
            if entry is None or entry.link is not link:
                entry = _LinkLabels(link)
            fresh[link.ifindex] = entry
        self._labels = fresh  # links gone from the view leave the cache
        return sorted(fresh.values(), key=lambda entry: entry.link.ifindex)

    def render(self, links: Iterable[Any], stats: dict[int, LinkStats64]) -> str:
        """The text of every node_network family for ``links`` (the
        monitor's live Link objects) and ``stats`` (one RTM_GETSTATS dump).
        A link without counters (created after the dump) gets gauges only."""
        entries = self._link_labels(links)
        out: list[str] = []
        devices = [entry.device for entry in entries if entry.link.ifindex in stats]
        counters = [stats[entry.link.ifindex] for entry in entries if entry.link.ifindex in stats]
        for key, fields in NETDEV_COUNTERS:
            name = f"node_network_{key}_total"
            out.append(f"# HELP {name} Network device statistic {key}.\n# TYPE {name} counter\n")
            # map() over a bound str.format: no Python-level loop per sample
            # (the device text is an argument, never part of the template).
            line = (name + "{} {}\n").format
            if len(fields) == 1:
                values: Iterable[int] = map(attrgetter(fields[0]), counters)
            else:
                values = map(sum, map(attrgetter(*fields), counters))
            out.append("".join(map(line, devices, values)))
        for key, name, help_text in _GAUGES:
            lines = [entry.gauges[key] for entry in entries if key in entry.gauges]
            if lines:
                out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
                out.extend(lines)
        return "".join(out)


class _ServiceCollector:
    """The service's own ``aionlmmap_*`` families, for prometheus_client."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        rings = service.ring_stats()
        for name, field, help_text in (
            ("aionlmmap_ring_frames", "frames", "RX frames walked (VALID and COPY) by the service's netlink rings."),
            ("aionlmmap_ring_copy_frames", "copy_frames", "RX frames that took the COPY path (notifications, oversized messages)."),
            ("aionlmmap_ring_overruns", "overruns", "ENOBUFS overruns reported by the kernel (notifications lost)."),
            ("aionlmmap_ring_foreign_dropped", "foreign", "Messages from non-kernel senders, dropped."),
            ("aionlmmap_ring_decode_errors", "decode_errors", "Malformed datagrams, counted and skipped."),
        ):
            family = CounterMetricFamily(name, help_text, labels=["ring"])
            for ring_name, stats in sorted(rings.items()):
                family.add_metric([ring_name], getattr(stats, field))
            yield family
        resyncs = CounterMetricFamily("aionlmmap_monitor_resyncs", "Re-dumps of the monitored state after an overrun (one per monitor-ring overrun).")
        resyncs.add_metric([], rings["monitor"].overruns if "monitor" in rings else 0)
        yield resyncs
        yield CounterMetricFamily("aionlmmap_source_errors", "Times the event source failed and was reopened.", value=service.source_errors)
        yield CounterMetricFamily("aionlmmap_events", "Monitor events applied to the view.", value=service.events)
        yield CounterMetricFamily("aionlmmap_changes", "Visible changes published to SSE clients.", value=service.log.seq)
        yield CounterMetricFamily("aionlmmap_sse_resyncs", "Snapshots sent to SSE clients that fell behind.", value=service.hub.lagged)
        yield CounterMetricFamily("aionlmmap_sse_dropped", "SSE clients disconnected for accepting nothing within the send timeout.", value=service.dropped_clients)
        yield GaugeMetricFamily("aionlmmap_sse_clients", "Connected SSE clients.", value=len(service.hub))
        yield GaugeMetricFamily("aionlmmap_ready", "1 once the initial netlink state is loaded.", value=1 if service.ready else 0)


async def render_metrics(service: Any, reader: StatsReader, network: NetworkMetrics | None = None) -> bytes:
    """The whole ``/metrics`` body: node_network_* then aionlmmap_*."""
    # Two sockets, two requests in flight at once: the conntrack answer
    # arrives while the stats dump is being read.
    stats, conntrack = await asyncio.gather(reader.read(), reader.conntrack())
    network = network or NetworkMetrics()
    text = network.render(service.state.objects("link"), stats)
    if conntrack is not None:
        entries, limit = conntrack
        text += (
            "# HELP node_nf_conntrack_entries Number of currently allocated flow entries for connection tracking.\n"
            f"# TYPE node_nf_conntrack_entries gauge\nnode_nf_conntrack_entries {entries}\n"
        )
        if limit is not None:
            text += (
                "# HELP node_nf_conntrack_entries_limit Maximum size of connection tracking table.\n"
                f"# TYPE node_nf_conntrack_entries_limit gauge\nnode_nf_conntrack_entries_limit {limit}\n"
            )
    return text.encode() + generate_latest(_ServiceCollector(service))  # type: ignore[arg-type]
