"""nf_tables rule expressions: values, their netlink codec, and match helpers.

Pure: imports neither asyncio nor socket.

A rule is a list of expressions run by the kernel's nft VM over registers:
``payload``/``meta``/``ct`` load a value into a register, ``cmp`` and
``lookup`` compare it (a failed comparison ends the rule), ``counter``,
``log``, ``queue`` act, and ``immediate`` sets the verdict register.

>>> rule = [*ip_saddr_in("blocklist"), Counter(), DROP]        # ip saddr @blocklist counter drop
>>> rule = [*tcp_dport(22), *ip_saddr("10.0.0.1"), ACCEPT]      # tcp dport 22 ip saddr 10.0.0.1 accept

The helpers emit what nft itself emits for the same rule, including the
protocol dependency (``meta nfproto ipv4`` in inet tables, ``meta l4proto``
before a port match), so ``nft list ruleset`` prints the rule back in its
short form.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Union

import attrs

from ....attributes import AttributeBuilder, Attributes
from ....errors import DecodeError

__all__ = [
    "Expression",
    "Payload",
    "Meta",
    "Cmp",
    "Lookup",
    "Counter",
    "Log",
    "Queue",
    "Verdict",
    "Bitwise",
    "Ct",
    "RawExpression",
    "NfprotoDependency",
    "ACCEPT",
    "DROP",
    "RETURN",
    "CONTINUE",
    "jump",
    "goto",
    "ip_saddr",
    "ip_daddr",
    "ip_saddr_in",
    "ip_daddr_in",
    "ip6_saddr",
    "ip6_daddr",
    "l4proto",
    "tcp_dport",
    "udp_dport",
    "tcp_sport",
    "udp_sport",
    "meta_mark",
    "iifname",
    "oifname",
    "encode_expressions",
    "decode_expressions",
]

NFT_REG_VERDICT = 0
NFT_REG_1 = 1

NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2

PAYLOAD_BASES = {"link": 0, "network": 1, "transport": 2, "inner": 3}
_BASE_NAMES = {number: name for name, number in PAYLOAD_BASES.items()}
CMP_OPS = {"==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
_OP_NAMES = {number: name for name, number in CMP_OPS.items()}
#: enum nft_meta_keys
META_KEYS = {"len": 0, "protocol": 1, "priority": 2, "mark": 3, "iif": 4, "oif": 5, "iifname": 6, "oifname": 7,
             "iiftype": 8, "oiftype": 9, "skuid": 10, "skgid": 11, "nftrace": 12, "rtclassid": 13, "secmark": 14,
             "nfproto": 15, "l4proto": 16, "pkttype": 19, "cpu": 20, "iifgroup": 21, "oifgroup": 22, "cgroup": 23}
_META_NAMES = {number: name for name, number in META_KEYS.items()}
#: enum nft_ct_keys (the first ones)
CT_KEYS = {"state": 0, "direction": 1, "status": 2, "mark": 3, "secmark": 4, "expiration": 5, "helper": 6,
           "l3protocol": 7, "src": 8, "dst": 9, "protocol": 10, "proto-src": 11, "proto-dst": 12}
_CT_NAMES = {number: name for name, number in CT_KEYS.items()}
#: verdict codes (NF_DROP, NF_ACCEPT; enum nft_verdicts)
VERDICT_CODES = {"drop": 0, "accept": 1, "continue": -1, "break": -2, "jump": -3, "goto": -4, "return": -5}
_VERDICT_NAMES = {number: name for name, number in VERDICT_CODES.items()}
NFT_QUEUE_FLAG_BYPASS = 0x01
NFT_QUEUE_FLAG_CPU_FANOUT = 0x02
NFT_LOOKUP_F_INV = 0x1
NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
#: families where one table sees several network protocols, so a match on
#: an IPv4/IPv6 header needs ``meta nfproto`` first (as nft adds it)
_MIXED_FAMILIES = frozenset({1, 5, 7})  # inet, netdev, bridge

_BE32 = struct.Struct("!I")


@attrs.frozen
class Payload:
    """Load ``length`` bytes at ``offset`` of a header (``base``: link, network, transport)."""

    base: str
    offset: int
    length: int
    dreg: int = NFT_REG_1

    name = "payload"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        builder.add_be32(1, self.dreg).add_be32(2, PAYLOAD_BASES[self.base]).add_be32(3, self.offset).add_be32(4, self.length)

    @classmethod
    def decode(cls, data: Attributes) -> Payload:
        return cls(_BASE_NAMES.get(data.get_be32(2, 0), "network"), data.get_be32(3, 0), data.get_be32(4, 0), data.get_be32(1, NFT_REG_1))


@attrs.frozen
class Meta:
    """Load packet metadata (``key``: mark, iifname, l4proto, nfproto, skuid, ...)."""

    key: str
    dreg: int = NFT_REG_1

    name = "meta"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if self.key not in META_KEYS:
            raise ValueError(f"unknown meta key {self.key!r}; use one of {sorted(META_KEYS)}")
        builder.add_be32(1, self.dreg).add_be32(2, META_KEYS[self.key])

    @classmethod
    def decode(cls, data: Attributes) -> Meta:
        key = data.get_be32(2, 0)
        return cls(_META_NAMES.get(key, str(key)), data.get_be32(1, NFT_REG_1))


@attrs.frozen
class Cmp:
    """Compare a register with ``data`` (bytes, in register byte order)."""

    op: str
    data: bytes
    sreg: int = NFT_REG_1

    name = "cmp"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if self.op not in CMP_OPS:
            raise ValueError(f"unknown comparison {self.op!r}; use one of {sorted(CMP_OPS)}")
        builder.add_be32(1, self.sreg).add_be32(2, CMP_OPS[self.op])
        with builder.nested(3):
            builder.add(NFTA_DATA_VALUE, self.data)

    @classmethod
    def decode(cls, data: Attributes) -> Cmp:
        value = data.get_nested(3)
        raw = value.get_bytes(NFTA_DATA_VALUE, b"") if value is not None else b""
        return cls(_OP_NAMES.get(data.get_be32(2, 0), "=="), raw or b"", data.get_be32(1, NFT_REG_1))


@attrs.frozen
class Lookup:
    """Is the register's value in set ``set``? (``invert``: is it not?)"""

    set: str
    sreg: int = NFT_REG_1
    invert: bool = False

    name = "lookup"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        builder.add_str(1, self.set).add_be32(2, self.sreg)
        set_id = set_ids.get(self.set)
        if set_id is not None:
            # The set may be created in this very transaction: its id finds
            # it before it has committed (nft_set_lookup_global).
            builder.add_be32(4, set_id)
        if self.invert:
            builder.add_be32(5, NFT_LOOKUP_F_INV)

    @classmethod
    def decode(cls, data: Attributes) -> Lookup:
        return cls(data.get_str(1) or "", data.get_be32(2, NFT_REG_1), bool(data.get_be32(5, 0) & NFT_LOOKUP_F_INV))


@attrs.frozen
class Counter:
    """Count packets and bytes (dumps show the values; they do not compare equal)."""

    packets: int = attrs.field(default=0, eq=False)
    bytes: int = attrs.field(default=0, eq=False)

    name = "counter"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        builder.add_be64(1, self.bytes).add_be64(2, self.packets)

    @classmethod
    def decode(cls, data: Attributes) -> Counter:
        return cls(data.get_be64(2, 0), data.get_be64(1, 0))


@attrs.frozen
class Log:
    """Log the packet: to the kernel log, or to nflog ``group`` (read it with
    :mod:`aionlmmap.families.nflog`)."""

    prefix: str | None = None
    group: int | None = None
    snaplen: int | None = None
    qthreshold: int | None = None
    level: int | None = None

    name = "log"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if self.group is not None:
            builder.add_be16(1, self.group)
        if self.prefix is not None:
            builder.add_str(2, self.prefix)
        if self.snaplen is not None:
            builder.add_be32(3, self.snaplen)
        if self.qthreshold is not None:
            builder.add_be16(4, self.qthreshold)
        if self.level is not None:
            builder.add_be32(5, self.level)

    @classmethod
    def decode(cls, data: Attributes) -> Log:
        return cls(data.get_str(2), data.get_be16(1), data.get_be32(3), data.get_be16(4), data.get_be32(5))


@attrs.frozen
class Queue:
    """Send the packet to nfqueue ``num`` (needs CONFIG_NFT_QUEUE; kernels
    without it answer the rule with EOPNOTSUPP/ENOENT: use iptables' NFQUEUE)."""

    num: int = 0
    total: int = 1
    bypass: bool = False
    fanout: bool = False

    name = "queue"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        flags = (NFT_QUEUE_FLAG_BYPASS if self.bypass else 0) | (NFT_QUEUE_FLAG_CPU_FANOUT if self.fanout else 0)
        builder.add_be16(1, self.num).add_be16(2, self.total).add_be16(3, flags)

    @classmethod
    def decode(cls, data: Attributes) -> Queue:
        flags = data.get_be16(3, 0)
        return cls(data.get_be16(1, 0), data.get_be16(2, 1), bool(flags & NFT_QUEUE_FLAG_BYPASS), bool(flags & NFT_QUEUE_FLAG_CPU_FANOUT))


@attrs.frozen
class Verdict:
    """``accept``, ``drop``, ``return``, ``continue``, or ``jump``/``goto`` ``chain``
    (an ``immediate`` expression into the verdict register)."""

    kind: str
    chain: str | None = None

    name = "immediate"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if self.kind not in VERDICT_CODES:
            raise ValueError(f"unknown verdict {self.kind!r}; use one of {sorted(VERDICT_CODES)}")
        if (self.kind in ("jump", "goto")) != (self.chain is not None):
            raise ValueError("jump and goto need a chain; other verdicts take none")
        builder.add_be32(1, NFT_REG_VERDICT)
        with builder.nested(2), builder.nested(NFTA_DATA_VERDICT):
            builder.add(NFTA_VERDICT_CODE, struct.pack("!i", VERDICT_CODES[self.kind]))
            if self.chain is not None:
                builder.add_str(NFTA_VERDICT_CHAIN, self.chain)

    @classmethod
    def decode(cls, data: Attributes) -> Verdict | RawExpression:
        holder = data.get_nested(2)
        verdict = holder.get_nested(NFTA_DATA_VERDICT) if holder is not None else None
        if verdict is None:
            return RawExpression("immediate", bytes(data.buffer[data.start : data.end]))
        raw = verdict.get_bytes(NFTA_VERDICT_CODE, b"\0\0\0\0") or b"\0\0\0\0"
        if len(raw) < 4:
            raise DecodeError(f"NFTA_VERDICT_CODE of {len(raw)} bytes (nft_verdict_policy says 4)")
        code = struct.unpack("!i", raw[:4])[0]
        return cls(_VERDICT_NAMES.get(code, str(code)), verdict.get_str(NFTA_VERDICT_CHAIN))


@attrs.frozen
class Bitwise:
    """register = (register & mask) ^ xor, over ``len(mask)`` bytes."""

    mask: bytes
    xor: bytes
    sreg: int = NFT_REG_1
    dreg: int = NFT_REG_1

    name = "bitwise"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if len(self.mask) != len(self.xor):
            raise ValueError("bitwise mask and xor must have the same length")
        builder.add_be32(1, self.sreg).add_be32(2, self.dreg).add_be32(3, len(self.mask))
        with builder.nested(4):
            builder.add(NFTA_DATA_VALUE, self.mask)
        with builder.nested(5):
            builder.add(NFTA_DATA_VALUE, self.xor)

    @classmethod
    def decode(cls, data: Attributes) -> Bitwise:
        mask, xor = data.get_nested(4), data.get_nested(5)
        return cls(mask.get_bytes(1, b"") if mask else b"", xor.get_bytes(1, b"") if xor else b"", data.get_be32(1, 1), data.get_be32(2, 1))  # type: ignore[arg-type]


@attrs.frozen
class Ct:
    """Load a conntrack field (``key``: state, mark, status, ...)."""

    key: str
    dreg: int = NFT_REG_1

    name = "ct"

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        if self.key not in CT_KEYS:
            raise ValueError(f"unknown ct key {self.key!r}; use one of {sorted(CT_KEYS)}")
        builder.add_be32(1, self.dreg).add_be32(2, CT_KEYS[self.key])

    @classmethod
    def decode(cls, data: Attributes) -> Ct:
        key = data.get_be32(2, 0)
        return cls(_CT_NAMES.get(key, str(key)), data.get_be32(1, NFT_REG_1))


@attrs.frozen
class RawExpression:
    """An expression this module does not model: its name and raw attributes."""

    expr_name: str
    data: bytes

    @property
    def name(self) -> str:
        return self.expr_name

    def encode(self, builder: AttributeBuilder, set_ids: dict[str, int]) -> None:
        builder.extend(self.data)


@attrs.frozen
class NfprotoDependency:
    """``meta nfproto == ipv4|ipv6``, emitted only in inet, bridge and netdev
    tables, where the table sees more than one network protocol."""

    nfproto: int


Expression = Union[Payload, Meta, Cmp, Lookup, Counter, Log, Queue, Verdict, Bitwise, Ct, RawExpression, NfprotoDependency]

ACCEPT = Verdict("accept")
DROP = Verdict("drop")
RETURN = Verdict("return")
CONTINUE = Verdict("continue")


def jump(chain: str) -> Verdict:
    return Verdict("jump", chain)


def goto(chain: str) -> Verdict:
    return Verdict("goto", chain)


# --- match helpers -------------------------------------------------------------------
def _ip(value: Any, version: int) -> bytes:
    address = ipaddress.ip_address(value)
    if address.version != version:
        raise ValueError(f"{value} is not an IPv{version} address")
    return address.packed


def ip_saddr(address: Any, op: str = "==") -> list[Expression]:
    """``ip saddr ADDRESS``."""
    return [NfprotoDependency(NFPROTO_IPV4), Payload("network", 12, 4), Cmp(op, _ip(address, 4))]


def ip_daddr(address: Any, op: str = "==") -> list[Expression]:
    return [NfprotoDependency(NFPROTO_IPV4), Payload("network", 16, 4), Cmp(op, _ip(address, 4))]


def ip_saddr_in(set_name: str, *, invert: bool = False) -> list[Expression]:
    """``ip saddr @SET`` (``!= @SET`` with ``invert``)."""
    return [NfprotoDependency(NFPROTO_IPV4), Payload("network", 12, 4), Lookup(set_name, invert=invert)]


def ip_daddr_in(set_name: str, *, invert: bool = False) -> list[Expression]:
    return [NfprotoDependency(NFPROTO_IPV4), Payload("network", 16, 4), Lookup(set_name, invert=invert)]


def ip6_saddr(address: Any, op: str = "==") -> list[Expression]:
    return [NfprotoDependency(NFPROTO_IPV6), Payload("network", 8, 16), Cmp(op, _ip(address, 6))]


def ip6_daddr(address: Any, op: str = "==") -> list[Expression]:
    return [NfprotoDependency(NFPROTO_IPV6), Payload("network", 24, 16), Cmp(op, _ip(address, 6))]


def l4proto(protocol: int | str) -> list[Expression]:
    """``meta l4proto tcp|udp|icmp|NUMBER``."""
    numbers = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}
    number = numbers[protocol] if isinstance(protocol, str) else protocol
    return [Meta("l4proto"), Cmp("==", bytes((number,)))]


def _port(protocol: str, offset: int, port: int, op: str) -> list[Expression]:
    return [*l4proto(protocol), Payload("transport", offset, 2), Cmp(op, struct.pack("!H", port))]


def tcp_dport(port: int, op: str = "==") -> list[Expression]:
    return _port("tcp", 2, port, op)


def tcp_sport(port: int, op: str = "==") -> list[Expression]:
    return _port("tcp", 0, port, op)


def udp_dport(port: int, op: str = "==") -> list[Expression]:
    return _port("udp", 2, port, op)


def udp_sport(port: int, op: str = "==") -> list[Expression]:
    return _port("udp", 0, port, op)


def meta_mark(mark: int, op: str = "==") -> list[Expression]:
    return [Meta("mark"), Cmp(op, struct.pack("=I", mark))]


def _ifname(name: str) -> bytes:
    raw = name.encode()
    if len(raw) >= 16:
        raise ValueError(f"interface name {name!r} is longer than IFNAMSIZ - 1")
    return raw + bytes(16 - len(raw))


def iifname(name: str, op: str = "==") -> list[Expression]:
    return [Meta("iifname"), Cmp(op, _ifname(name))]


def oifname(name: str, op: str = "==") -> list[Expression]:
    return [Meta("oifname"), Cmp(op, _ifname(name))]


# --- codec -------------------------------------------------------------------------
_DECODERS: dict[str, Any] = {
    "payload": Payload.decode,
    "meta": Meta.decode,
    "cmp": Cmp.decode,
    "lookup": Lookup.decode,
    "counter": Counter.decode,
    "log": Log.decode,
    "queue": Queue.decode,
    "immediate": Verdict.decode,
    "bitwise": Bitwise.decode,
    "ct": Ct.decode,
}


def _encode_one(builder: AttributeBuilder, expression: Any, set_ids: dict[str, int]) -> None:
    with builder.nested(NFTA_LIST_ELEM):
        builder.add_str(NFTA_EXPR_NAME, expression.name)
        with builder.nested(NFTA_EXPR_DATA):
            expression.encode(builder, set_ids)


def encode_expressions(builder: AttributeBuilder, expressions: Sequence[Expression], family: int, set_ids: dict[str, int]) -> None:
    """Append the NFTA_LIST_ELEM entries of ``expressions`` to ``builder``
    (inside the caller's NFTA_RULE_EXPRESSIONS nest)."""
    for expression in expressions:
        if isinstance(expression, NfprotoDependency):
            if family in _MIXED_FAMILIES:
                _encode_one(builder, Meta("nfproto"), set_ids)
                _encode_one(builder, Cmp("==", bytes((expression.nfproto,))), set_ids)
            continue
        if not hasattr(expression, "encode"):
            raise TypeError(f"{expression!r} is not an nftables expression")
        _encode_one(builder, expression, set_ids)


def decode_expressions(nest: Attributes) -> list[Expression]:
    """The expressions of an NFTA_RULE_EXPRESSIONS nest. Unknown expression
    names come back as :class:`RawExpression` (never an error)."""
    out: list[Expression] = []
    for attr_type, view in nest.items():
        if attr_type != NFTA_LIST_ELEM:
            continue
        element = Attributes(view)
        name = element.get_str(NFTA_EXPR_NAME) or ""
        data_span = element.table.get(NFTA_EXPR_DATA)
        data = Attributes(view, data_span[0], data_span[1]) if data_span else Attributes(b"")
        decoder = _DECODERS.get(name)
        if decoder is None:
            out.append(RawExpression(name, bytes(view[data_span[0] : data_span[1]]) if data_span else b""))
        else:
            out.append(decoder(data))
    return out


def strip_dependencies(expressions: Iterable[Expression]) -> list[Expression]:
    """Expressions as written with the helpers: drop the ``meta nfproto``
    pairs that :func:`encode_expressions` adds in inet/bridge/netdev tables,
    so a dumped rule compares equal to the rule that was added."""
    items = list(expressions)
    out: list[Expression] = []
    index = 0
    while index < len(items):
        item = items[index]
        following = items[index + 1] if index + 1 < len(items) else None
        if isinstance(item, Meta) and item.key == "nfproto" and isinstance(following, Cmp) and following.op == "==" and len(following.data) == 1:
            out.append(NfprotoDependency(following.data[0]))
            index += 2
            continue
        out.append(item)
        index += 1
    return out
