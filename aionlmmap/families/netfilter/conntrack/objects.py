"""Conntrack values: flows (:class:`Flow` with two :class:`Tuple`), counters,
expectations and statistics, each with ``to_json()``.

Pure: imports neither asyncio nor socket.

The JSON keys follow what conntrack-tools shows (``conntrack -L -o xml``,
``-o extended``): ``family`` and ``protocol`` by name, ``original`` and
``reply`` tuples with ``src``/``dst``/``sport``/``dport`` (``type``/``code``/
``id`` for ICMP), ``state`` for TCP and SCTP, ``timeout``, ``mark``, ``zone``,
``use``, ``id``, the bracketed flags ``conntrack -L`` prints (``UNREPLIED``,
``ASSURED``, ``OFFLOAD``, ``HW_OFFLOAD``) and per-direction ``packets`` and
``bytes`` when accounting is on (``net.netfilter.nf_conntrack_acct=1``).
docs/conntrack.md lists every key.
"""

from __future__ import annotations

from typing import Any

import attrs

from .constants import (
    FAMILY_NAMES,
    IPS_ASSURED,
    IPS_HW_OFFLOAD,
    IPS_OFFLOAD,
    IPS_SEEN_REPLY,
    PROTOCOL_NAMES,
    STATUS_NAMES,
)

__all__ = ["Tuple", "Counters", "Flow", "Expectation", "CpuStats", "TableCount", "status_names"]


def status_names(status: int) -> list[str]:
    """IPS_* bits of ``status`` by name, lowest bit first."""
    return [name for bit, name in enumerate(STATUS_NAMES) if status >> bit & 1]


@attrs.frozen
class Tuple:
    """One direction of a flow (``struct nf_conntrack_tuple``)."""

    src: str | None = None
    dst: str | None = None
    protonum: int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    zone: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"src": self.src, "dst": self.dst}
        if self.sport is not None:
            out["sport"] = self.sport
            out["dport"] = self.dport
        if self.icmp_type is not None:
            out["type"] = self.icmp_type
            out["code"] = self.icmp_code
            out["id"] = self.icmp_id
        if self.zone is not None:
            out["zone"] = self.zone
        return out


@attrs.frozen
class Counters:
    """CTA_COUNTERS_ORIG / _REPLY (present when accounting is on)."""

    packets: int
    bytes: int


@attrs.frozen
class Flow:
    """One conntrack entry.

    Equality (what the monitor's resync compares) leaves out the values that
    move on their own between two dumps of an unchanged entry: ``timeout``
    (counts down), ``use`` (reference count) and the counters.
    """

    family: int
    original: Tuple
    reply: Tuple
    status: int = 0
    timeout: int | None = attrs.field(default=None, eq=False)
    mark: int | None = None
    zone: int | None = None
    use: int | None = attrs.field(default=None, eq=False)
    id: int | None = None
    state: str | None = None
    counters_original: Counters | None = attrs.field(default=None, eq=False)
    counters_reply: Counters | None = attrs.field(default=None, eq=False)
    labels: bytes | None = None
    helper: str | None = None
    secctx: str | None = None
    timestamp_start: int | None = attrs.field(default=None, eq=False)
    timestamp_stop: int | None = attrs.field(default=None, eq=False)
    master: Tuple | None = None

    @property
    def protonum(self) -> int | None:
        return self.original.protonum

    @property
    def protocol(self) -> str:
        number = self.original.protonum
        return PROTOCOL_NAMES.get(number, str(number)) if number is not None else "unknown"

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies an entry in the kernel's table: its original tuple
        in its zone (nf_conntrack_find_get hashes exactly these)."""
        o = self.original
        return (self.family, o.protonum, o.src, o.dst, o.sport, o.dport, o.icmp_type, o.icmp_code, o.icmp_id, self.zone or 0)

    @property
    def flags(self) -> list[str]:
        """The bracketed flags ``conntrack -L`` prints for this entry."""
        out = []
        if not self.status & IPS_SEEN_REPLY:
            out.append("UNREPLIED")
        if self.status & IPS_ASSURED:
            out.append("ASSURED")
        if self.status & IPS_OFFLOAD:
            out.append("OFFLOAD")
        if self.status & IPS_HW_OFFLOAD:
            out.append("HW_OFFLOAD")
        return out

    def to_json(self) -> dict[str, Any]:
        original = self.original.to_json()
        reply = self.reply.to_json()
        if self.counters_original is not None:
            original["packets"] = self.counters_original.packets
            original["bytes"] = self.counters_original.bytes
        if self.counters_reply is not None:
            reply["packets"] = self.counters_reply.packets
            reply["bytes"] = self.counters_reply.bytes
        out: dict[str, Any] = {
            "family": FAMILY_NAMES.get(self.family, str(self.family)),
            "protocol": self.protocol,
            "protonum": self.original.protonum,
            "original": original,
            "reply": reply,
        }
        if self.state is not None:
            out["state"] = self.state
        if self.timeout is not None:
            out["timeout"] = self.timeout
        out["flags"] = self.flags
        out["status"] = status_names(self.status)
        if self.mark is not None:
            out["mark"] = self.mark
        if self.zone is not None:
            out["zone"] = self.zone
        if self.use is not None:
            out["use"] = self.use
        if self.id is not None:
            out["id"] = self.id
        if self.labels is not None:
            out["labels"] = self.labels.hex()
        if self.helper is not None:
            out["helper"] = self.helper
        if self.secctx is not None:
            out["secctx"] = self.secctx
        if self.timestamp_start is not None:
            out["timestamp_start"] = self.timestamp_start
        if self.timestamp_stop is not None:
            out["timestamp_stop"] = self.timestamp_stop
        if self.master is not None:
            out["master"] = self.master.to_json()
        return out


@attrs.frozen
class Expectation:
    """One expectation (``conntrack -L expect``): a flow a helper waits for."""

    family: int
    tuple: Tuple
    mask: Tuple | None
    master: Tuple | None
    timeout: int | None = attrs.field(default=None, eq=False)
    id: int | None = None
    helper: str | None = None
    zone: int | None = None
    flags: int = 0
    expect_class: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": FAMILY_NAMES.get(self.family, str(self.family)),
            "protocol": PROTOCOL_NAMES.get(self.tuple.protonum or -1, str(self.tuple.protonum)),
            "tuple": self.tuple.to_json(),
        }
        if self.mask is not None:
            out["mask"] = self.mask.to_json()
        if self.master is not None:
            out["master"] = self.master.to_json()
        for key in ("timeout", "id", "helper", "zone"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["expect_flags"] = self.flags
        if self.expect_class is not None:
            out["class"] = self.expect_class
        return out


@attrs.frozen
class CpuStats:
    """One CPU's counters (IPCTNL_MSG_CT_GET_STATS_CPU, ``conntrack -S``);
    ``res_id`` of the reply names the CPU."""

    cpu: int
    counters: dict[str, int] = attrs.field(eq=True, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {"cpu": self.cpu, **self.counters}


@attrs.frozen
class TableCount:
    """IPCTNL_MSG_CT_GET_STATS: entries in the table (``conntrack -C``) and
    the table's limit where the kernel reports it."""

    entries: int
    max_entries: int | None = None
