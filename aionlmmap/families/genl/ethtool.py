"""Typed ethtool results over the declared ``ethtool`` family: link info,
link modes, link state, features, rings, channels, statistics, and the
monitor's notifications, with ``to_json()`` in ethtool's own terms."""

from __future__ import annotations

import errno
import struct
from collections.abc import AsyncIterator
from typing import Any

import attrs

from ...attributes import iter_attributes
from ...errors import NetlinkError
from .client import GenlClient, Notification
from .specs.ethtool import STATS_GROUPS

__all__ = ["Ethtool", "LinkInfo", "LinkModes", "LinkState", "Features", "Rings", "Channels", "EthtoolInfo", "bitset_values"]

_PORTS = {0: "Twisted Pair", 1: "AUI", 2: "MII", 3: "FIBRE", 4: "BNC", 5: "Direct Attach Copper", 0xEF: "None", 0xFF: "Other"}
_TRANSCEIVERS = {0: "internal", 1: "external"}
_DUPLEX = {0: "Half", 1: "Full", 0xFF: "Unknown!"}
_MDIX = {0: "Unknown", 1: "off", 2: "on"}
_U64 = struct.Struct("=Q")


def bitset_values(bitset: dict[str, Any] | None) -> dict[str, bool]:
    """A verbose ethtool bitset as {bit name: set?}: with a mask, the bits
    listed are the mask and ``value`` marks those set; with ``nomask``, the
    bits listed are the set ones (bitset.c, ethnl_put_bitset32)."""
    if not bitset:
        return {}
    bits = (bitset.get("bits") or {}).get("bit", [])
    nomask = bool(bitset.get("nomask"))
    return {bit.get("name") or str(bit.get("index")): (True if nomask else bool(bit.get("value"))) for bit in bits}


@attrs.frozen
class LinkInfo:
    port: int | None
    phyaddr: int | None
    tp_mdix: int | None
    tp_mdix_ctrl: int | None
    transceiver: int | None


@attrs.frozen
class LinkModes:
    autoneg: bool
    speed: int | None  #: Mb/s, None when unknown
    duplex: int | None
    lanes: int | None
    ours: dict[str, bool] = attrs.field(hash=False)
    peer: dict[str, bool] = attrs.field(hash=False)


@attrs.frozen
class LinkState:
    link: bool | None
    sqi: int | None = None
    sqi_max: int | None = None
    ext_state: int | None = None
    ext_substate: int | None = None


@attrs.frozen
class Features:
    """Each feature's state: ``active``, ``wanted``, and ``fixed`` (not in
    the changeable ``hw`` set, ethtool's "[fixed]")."""

    hw: dict[str, bool] = attrs.field(hash=False)
    wanted: dict[str, bool] = attrs.field(hash=False)
    active: dict[str, bool] = attrs.field(hash=False)
    nochange: dict[str, bool] = attrs.field(hash=False)

    def fixed(self, name: str) -> bool:
        return not self.hw.get(name, False) or self.nochange.get(name, False)


@attrs.frozen
class Rings:
    values: dict[str, int] = attrs.field(hash=False)


@attrs.frozen
class Channels:
    rx_max: int | None
    tx_max: int | None
    other_max: int | None
    combined_max: int | None
    rx_count: int | None
    tx_count: int | None
    other_count: int | None
    combined_count: int | None


@attrs.frozen
class EthtoolInfo:
    """What ``ethtool DEV``, ``-k``, ``-g``, ``-l`` and ``-S --all-groups``
    show; a part the driver does not offer is None."""

    ifname: str
    ifindex: int
    linkinfo: LinkInfo | None
    linkmodes: LinkModes | None
    linkstate: LinkState | None
    features: Features | None
    rings: Rings | None
    channels: Channels | None
    stats: dict[str, dict[int, int]] | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ifname": self.ifname, "ifindex": self.ifindex}
        if self.linkmodes is not None:
            modes = self.linkmodes
            out["speed"] = modes.speed
            out["duplex"] = _DUPLEX.get(modes.duplex, "Unknown!") if modes.duplex is not None else None
            out["auto-negotiation"] = modes.autoneg
            out["supported-link-modes"] = sorted(name for name in modes.ours) if modes.ours else []
            out["advertised-link-modes"] = sorted(name for name, on in modes.ours.items() if on)
            if modes.lanes is not None:
                out["lanes"] = modes.lanes
        if self.linkinfo is not None:
            info = self.linkinfo
            out["port"] = _PORTS.get(info.port, str(info.port)) if info.port is not None else None
            out["phyad"] = info.phyaddr
            out["transceiver"] = _TRANSCEIVERS.get(info.transceiver, str(info.transceiver)) if info.transceiver is not None else None
            out["mdi-x"] = _MDIX.get(info.tp_mdix, str(info.tp_mdix)) if info.tp_mdix is not None else None
        if self.linkstate is not None:
            out["link-detected"] = self.linkstate.link
        if self.features is not None:
            features = self.features
            names = [name for name in {**features.hw, **features.wanted, **features.active, **features.nochange} if name]
            out["features"] = {name: {"active": features.active.get(name, False), "fixed": features.fixed(name)} for name in names}
        if self.rings is not None:
            out["rings"] = dict(self.rings.values)
        if self.channels is not None:
            out["channels"] = {key.replace("_", "-"): value for key, value in attrs.asdict(self.channels).items() if value is not None}
        if self.stats is not None:
            out["stats"] = {group: {str(key): value for key, value in values.items()} for group, values in self.stats.items()}
        return out


class Ethtool:
    """ethtool over a :class:`GenlClient`: ``Ethtool(gn).show("eth0")``."""

    def __init__(self, client: GenlClient) -> None:
        self.client = client

    async def _get(self, op: str, dev: str | int, **extra: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"dev-index": dev} if isinstance(dev, int) else {"dev-name": dev}
        replies = await self.client.request("ethtool", op, {"header": header, **extra})
        if not replies:
            raise NetlinkError(errno.ENODATA, f"ethtool {op} on {dev!r} returned nothing")
        return replies[0]

    async def linkinfo(self, dev: str | int) -> LinkInfo:
        r = await self._get("linkinfo-get", dev)
        return LinkInfo(r.get("port"), r.get("phyaddr"), r.get("tp-mdix"), r.get("tp-mdix-ctrl"), r.get("transceiver"))

    async def linkmodes(self, dev: str | int) -> LinkModes:
        r = await self._get("linkmodes-get", dev)
        speed = r.get("speed")
        return LinkModes(bool(r.get("autoneg")), None if speed in (None, 0xFFFFFFFF) else speed, r.get("duplex"), r.get("lanes"), bitset_values(r.get("ours")), bitset_values(r.get("peer")))

    async def linkstate(self, dev: str | int) -> LinkState:
        r = await self._get("linkstate-get", dev)
        return LinkState(None if r.get("link") is None else bool(r["link"]), r.get("sqi"), r.get("sqi-max"), r.get("ext-state"), r.get("ext-substate"))

    async def features(self, dev: str | int) -> Features:
        r = await self._get("features-get", dev)
        return Features(bitset_values(r.get("hw")), bitset_values(r.get("wanted")), bitset_values(r.get("active")), bitset_values(r.get("nochange")))

    async def rings(self, dev: str | int) -> Rings:
        r = await self._get("rings-get", dev)
        return Rings({key: value for key, value in r.items() if key != "header"})

    async def channels(self, dev: str | int) -> Channels:
        r = await self._get("channels-get", dev)
        return Channels(*(r.get(name) for name in ("rx-max", "tx-max", "other-max", "combined-max", "rx-count", "tx-count", "other-count", "combined-count")))

    async def stats(self, dev: str | int, groups: tuple[str, ...] = tuple(STATS_GROUPS.values())) -> dict[str, dict[int, int]]:
        """Standard statistics groups (eth-phy, eth-mac, eth-ctrl, rmon,
        phy) the driver reports: ``{group: {statistic number: value}}``."""
        request = {"groups": {"nomask": True, "bits": {"bit": [{"name": name} for name in groups]}}}
        r = await self._get("stats-get", dev, **request)
        out: dict[str, dict[int, int]] = {}
        for group in r.get("grp", []):
            values: dict[int, int] = {}
            for raw in group.get("stat", []):
                for number, start, end in iter_attributes(raw):
                    if end - start >= 8:
                        values[number] = _U64.unpack_from(raw, start)[0]
            out[STATS_GROUPS.get(group.get("id", -1), str(group.get("id")))] = values
        return out

    async def show(self, dev: str | int) -> EthtoolInfo:
        """Everything the driver offers; parts it does not (EOPNOTSUPP) are None."""
        parts: dict[str, Any] = {}
        for name, getter in (("linkinfo", self.linkinfo), ("linkmodes", self.linkmodes), ("linkstate", self.linkstate), ("features", self.features),
                             ("rings", self.rings), ("channels", self.channels), ("stats", self.stats)):  # fmt: skip
            try:
                parts[name] = await getter(dev)
            except NetlinkError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENODATA):
                    raise
                parts[name] = None
        header = (await self._get("linkstate-get", dev))["header"]
        return EthtoolInfo(header.get("dev-name", str(dev)), header.get("dev-index", 0), **parts)

    async def monitor(self, **ring_options: Any) -> AsyncIterator[Notification]:
        """ethtool's "monitor" group: linkinfo-ntf, linkmodes-ntf,
        features-ntf, rings-ntf, channels-ntf, ... as they happen."""
        async for notification in self.client.monitor("ethtool", ["monitor"], **ring_options):
            yield notification
