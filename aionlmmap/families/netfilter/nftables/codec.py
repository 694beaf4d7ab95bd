"""nf_tables objects and their messages: tables, chains, sets, elements, rules.

Pure: imports neither asyncio nor socket. The expression codec lives in
:mod:`aionlmmap.families.nftables_expr`; the asyncio client (transactions,
dumps) in :mod:`aionlmmap.families.nftables`.

Numbers come from include/uapi/linux/netfilter/nf_tables.h and
include/uapi/linux/netfilter.h (NFPROTO_*, NF_INET_* hooks). Values that
nftables' own tool stores and reads back (set key datatypes, the rule
comment in NFTA_RULE_USERDATA) follow the numbering nft uses, so
``nft list ruleset`` shows what this module wrote.

>>> msg = encode_table(Table("inet", "fw"))
>>> decode_table(msg).name
'fw'
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ....attributes import AttributeBuilder, Attributes
from ....constants import NFNL_SUBSYS_NFTABLES, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL
from ....errors import DecodeError
from ....message import Message
from ..nfnetlink import encode_nfgenmsg, parse_nfgenmsg
from .expr import Expression, decode_expressions, encode_expressions, strip_dependencies

__all__ = [
    "FAMILIES",
    "family_number",
    "family_name",
    "Table",
    "Chain",
    "Set",
    "Element",
    "Rule",
    "encode_table",
    "encode_chain",
    "encode_set",
    "encode_elements",
    "encode_rule",
    "encode_delete",
    "encode_dump",
    "encode_getgen",
    "decode_table",
    "decode_chain",
    "decode_set",
    "decode_elements",
    "decode_element_records",
    "elements_from_records",
    "decode_rule",
    "decode_genid",
    "describe_offset",
    "encode_key",
    "decode_key",
]

# enum nf_tables_msg_types
NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE = 0, 1, 2
NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN, NFT_MSG_DELCHAIN = 3, 4, 5
NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_DELRULE = 6, 7, 8
NFT_MSG_NEWSET, NFT_MSG_GETSET, NFT_MSG_DELSET = 9, 10, 11
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16

NFTA_LIST_ELEM = 1
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_HOOK_DEV = 1, 2, 3
NFTA_TABLE_NAME, NFTA_TABLE_FLAGS, NFTA_TABLE_USE, NFTA_TABLE_HANDLE = 1, 2, 3, 4
NFTA_CHAIN_TABLE, NFTA_CHAIN_HANDLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK = 1, 2, 3, 4
NFTA_CHAIN_POLICY, NFTA_CHAIN_USE, NFTA_CHAIN_TYPE = 5, 6, 7
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_EXPRESSIONS = 1, 2, 3, 4
NFTA_RULE_POSITION, NFTA_RULE_USERDATA = 6, 7
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN = 1, 2, 3, 4, 5
NFTA_SET_DATA_TYPE, NFTA_SET_DATA_LEN, NFTA_SET_POLICY, NFTA_SET_DESC, NFTA_SET_ID = 6, 7, 8, 9, 10
NFTA_SET_TIMEOUT, NFTA_SET_GC_INTERVAL, NFTA_SET_USERDATA, NFTA_SET_HANDLE = 11, 12, 13, 16
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_TIMEOUT = 1, 2, 3, 4
NFTA_SET_ELEM_EXPIRATION, NFTA_SET_ELEM_KEY_END = 5, 10
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET_ID = 1, 2, 3, 4
NFTA_DATA_VALUE = 1
NFTA_GEN_ID = 1

NFT_SET_ANONYMOUS, NFT_SET_CONSTANT, NFT_SET_INTERVAL, NFT_SET_MAP = 0x1, 0x2, 0x4, 0x8
NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x10, 0x20
NFT_SET_ELEM_INTERVAL_END = 0x1
SET_FLAGS = {"anonymous": NFT_SET_ANONYMOUS, "constant": NFT_SET_CONSTANT, "interval": NFT_SET_INTERVAL,
             "map": NFT_SET_MAP, "timeout": NFT_SET_TIMEOUT, "dynamic": NFT_SET_EVAL}

#: NFPROTO_* (include/uapi/linux/netfilter.h) by nft's family names
FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
_FAMILY_NAMES = {number: name for name, number in FAMILIES.items()}
#: NF_INET_* hook numbers (netdev's ingress is 0 in its own numbering)
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4, "ingress": 0}
_HOOK_NAMES = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
POLICIES = {"drop": 0, "accept": 1}
_POLICY_NAMES = {0: "drop", 1: "accept"}

#: nft's set key datatypes (enum datatypes in nftables' datatype.h) with
#: their key length in bytes. The kernel stores the number opaquely; nft
#: reads it back to print the set.
KEY_TYPES: dict[str, tuple[int, int]] = {
    "ipv4_addr": (7, 4),
    "ipv6_addr": (8, 16),
    "ether_addr": (9, 6),
    "inet_proto": (12, 1),
    "inet_service": (13, 2),
    "mark": (19, 4),
}
_KEY_TYPE_NAMES = {number: name for name, (number, _length) in KEY_TYPES.items()}

_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")


def family_number(family: str | int) -> int:
    if isinstance(family, int):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown nftables family {family!r}; use one of {sorted(FAMILIES)}") from None


def family_name(number: int) -> str:
    return _FAMILY_NAMES.get(number, str(number))


def _type(message_type: int) -> int:
    return NFNL_SUBSYS_NFTABLES << 8 | message_type


# --- values -----------------------------------------------------------------------
@attrs.frozen
class Table:
    """``table FAMILY NAME``."""

    family: str
    name: str
    flags: int = 0
    handle: int | None = attrs.field(default=None, eq=False)
    use: int | None = attrs.field(default=None, eq=False)  #: chains + sets + objects in it (kernel count)


@attrs.frozen
class Chain:
    """A chain; a base chain when ``hook`` is set (then ``type``, ``priority``
    and ``policy`` apply)."""

    family: str
    table: str
    name: str
    hook: str | None = None
    priority: int = 0
    type: str = "filter"
    policy: str | None = None
    device: str | None = None
    handle: int | None = attrs.field(default=None, eq=False)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@attrs.frozen
class Set:
    """A named set. ``key_type`` is one of :data:`KEY_TYPES`; ``flags`` names
    from ``("interval", "timeout", "constant", "dynamic")``; ``timeout`` is
    the default element lifetime in seconds."""

    family: str
    table: str
    name: str
    key_type: str = "ipv4_addr"
    flags: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    timeout: float | None = None
    gc_interval: float | None = None
    handle: int | None = attrs.field(default=None, eq=False)

    @property
    def key_length(self) -> int:
        return KEY_TYPES[self.key_type][1] if self.key_type in KEY_TYPES else 0


@attrs.frozen
class Element:
    """One set element. ``key`` is the value as text (``"10.0.0.1"``, ``22``)
    or bytes; ``key_end`` closes an interval (in an ``interval`` set). A
    ``timeout`` in seconds overrides the set's default; ``expires`` is what
    the kernel reports as left (dumps only)."""

    key: Any
    key_end: Any = None
    timeout: float | None = None
    expires: float | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Rule:
    """A rule: expressions evaluated in order (see :mod:`nftables_expr`)."""

    family: str
    table: str
    chain: str
    expressions: tuple[Expression, ...] = attrs.field(converter=tuple)
    comment: str | None = None
    handle: int | None = attrs.field(default=None, eq=False)
    position: int | None = attrs.field(default=None, eq=False)  #: add after this handle


# --- keys ------------------------------------------------------------------------------
def encode_key(key_type: str, value: Any) -> bytes:
    """A set key in the byte order the packet has it (network order)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if key_type == "ipv4_addr":
        return ipaddress.IPv4Address(value).packed
    if key_type == "ipv6_addr":
        return ipaddress.IPv6Address(value).packed
    if key_type == "ether_addr":
        return bytes(int(part, 16) for part in str(value).split(":"))
    if key_type == "inet_service":
        return struct.pack("!H", int(value))
    if key_type == "inet_proto":
        return struct.pack("B", int(value))
    if key_type == "mark":
        return struct.pack("=I", int(value))  # meta mark is host order in the register
    raise ValueError(f"cannot encode a key of type {key_type!r}; pass bytes")


def decode_key(key_type: str, raw: bytes) -> Any:
    if key_type == "ipv4_addr" and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if key_type == "ipv6_addr" and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    if key_type == "ether_addr" and len(raw) == 6:
        return ":".join(f"{byte:02x}" for byte in raw)
    if key_type == "inet_service" and len(raw) == 2:
        return struct.unpack("!H", raw)[0]
    if key_type == "inet_proto" and len(raw) == 1:
        return raw[0]
    if key_type == "mark" and len(raw) == 4:
        return struct.unpack("=I", raw)[0]
    return raw


def _next_key(raw: bytes) -> bytes:
    """raw + 1 as a big-endian number: the kernel's interval sets store the
    first key AFTER a range (nft_set_rbtree's INTERVAL_END elements)."""
    number = int.from_bytes(raw, "big") + 1
    if number >> (8 * len(raw)):
        return b""  # the range runs to the end of the key space: no end element
    return number.to_bytes(len(raw), "big")


# --- encoders ------------------------------------------------------------------------
def _message(message_type: int, family: str | int, builder: AttributeBuilder, flags: int = 0) -> Message:
    return Message(_type(message_type), flags, payload=encode_nfgenmsg(family_number(family), 0) + builder.build())


def encode_table(table: Table, *, exclusive: bool = False) -> Message:
    builder = AttributeBuilder().add_str(NFTA_TABLE_NAME, table.name).add_be32(NFTA_TABLE_FLAGS, table.flags)
    return _message(NFT_MSG_NEWTABLE, table.family, builder, NLM_F_CREATE | (NLM_F_EXCL if exclusive else 0))


def encode_chain(chain: Chain, *, exclusive: bool = False) -> Message:
    builder = AttributeBuilder().add_str(NFTA_CHAIN_TABLE, chain.table).add_str(NFTA_CHAIN_NAME, chain.name)
    if chain.hook is not None:
        if chain.hook not in HOOKS:
            raise ValueError(f"unknown hook {chain.hook!r}; use one of {sorted(HOOKS)}")
        with builder.nested(NFTA_CHAIN_HOOK):
            builder.add_be32(NFTA_HOOK_HOOKNUM, HOOKS[chain.hook])
            builder.add(NFTA_HOOK_PRIORITY, struct.pack("!i", chain.priority))
            if chain.device is not None:
                builder.add_str(NFTA_HOOK_DEV, chain.device)
        builder.add_str(NFTA_CHAIN_TYPE, chain.type)
        if chain.policy is not None:
            if chain.policy not in POLICIES:
                raise ValueError(f"chain policy must be 'accept' or 'drop', not {chain.policy!r}")
            builder.add_be32(NFTA_CHAIN_POLICY, POLICIES[chain.policy])
    return _message(NFT_MSG_NEWCHAIN, chain.family, builder, NLM_F_CREATE | (NLM_F_EXCL if exclusive else 0))


def encode_set(nft_set: Set, set_id: int, *, exclusive: bool = False) -> Message:
    if nft_set.key_type not in KEY_TYPES:
        raise ValueError(f"unknown set key type {nft_set.key_type!r}; use one of {sorted(KEY_TYPES)}")
    unknown = set(nft_set.flags) - set(SET_FLAGS)
    if unknown:
        raise ValueError(f"unknown set flags {sorted(unknown)}; use names from {sorted(SET_FLAGS)}")
    type_number, key_length = KEY_TYPES[nft_set.key_type]
    flags = 0
    for name in nft_set.flags:
        flags |= SET_FLAGS[name]
    builder = AttributeBuilder().add_str(NFTA_SET_TABLE, nft_set.table).add_str(NFTA_SET_NAME, nft_set.name)
    builder.add_be32(NFTA_SET_FLAGS, flags).add_be32(NFTA_SET_KEY_TYPE, type_number).add_be32(NFTA_SET_KEY_LEN, key_length)
    builder.add_be32(NFTA_SET_ID, set_id)
    if nft_set.timeout is not None:
        builder.add_be64(NFTA_SET_TIMEOUT, int(nft_set.timeout * 1000))
    if nft_set.gc_interval is not None:
        builder.add_be32(NFTA_SET_GC_INTERVAL, int(nft_set.gc_interval * 1000))
    return _message(NFT_MSG_NEWSET, nft_set.family, builder, NLM_F_CREATE | (NLM_F_EXCL if exclusive else 0))


def _add_element(builder: AttributeBuilder, key: bytes, flags: int, timeout: float | None) -> None:
    with builder.nested(NFTA_LIST_ELEM):
        with builder.nested(NFTA_SET_ELEM_KEY):
            builder.add(NFTA_DATA_VALUE, key)
        if flags:
            builder.add_be32(NFTA_SET_ELEM_FLAGS, flags)
        if timeout is not None:
            builder.add_be64(NFTA_SET_ELEM_TIMEOUT, int(timeout * 1000))


def encode_elements(nft_set: Set, elements: Iterable[Element], *, delete: bool = False, set_id: int | None = None) -> Message:
    """NEWSETELEM (or DELSETELEM) for ``elements`` of ``nft_set``. In an
    interval set each ``Element(start, key_end=last)`` becomes the start key
    and an INTERVAL_END key one past ``last``, as nft_set_rbtree stores them."""
    builder = AttributeBuilder().add_str(NFTA_SET_ELEM_LIST_TABLE, nft_set.table).add_str(NFTA_SET_ELEM_LIST_SET, nft_set.name)
    if set_id is not None:
        builder.add_be32(NFTA_SET_ELEM_LIST_SET_ID, set_id)
    interval = "interval" in nft_set.flags
    with builder.nested(NFTA_SET_ELEM_LIST_ELEMENTS):
        for element in elements:
            if not isinstance(element, Element):
                element = Element(element)
            key = encode_key(nft_set.key_type, element.key)
            if interval:
                last = key if element.key_end is None else encode_key(nft_set.key_type, element.key_end)
                _add_element(builder, key, 0, None if delete else element.timeout)
                end = _next_key(last)
                if end:
                    _add_element(builder, end, NFT_SET_ELEM_INTERVAL_END, None)
            else:
                if element.key_end is not None:
                    raise ValueError(f"set {nft_set.name!r} has no 'interval' flag: an element cannot be a range")
                _add_element(builder, key, 0, None if delete else element.timeout)
    return _message(NFT_MSG_DELSETELEM if delete else NFT_MSG_NEWSETELEM, nft_set.family, builder, 0 if delete else NLM_F_CREATE)


def _comment_userdata(comment: str) -> bytes:
    # nft's rule userdata is a TLV list {u8 type; u8 len; value}; type 0 is
    # NFTNL_UDATA_RULE_COMMENT, a NUL-terminated string.
    raw = comment.encode() + b"\0"
    if len(raw) > 255:
        raise ValueError("rule comments are limited to 254 bytes")
    return bytes((0, len(raw))) + raw


def _comment_from_userdata(raw: bytes) -> str | None:
    offset = 0
    while offset + 2 <= len(raw):
        kind, length = raw[offset], raw[offset + 1]
        value = raw[offset + 2 : offset + 2 + length]
        if kind == 0:
            return value.split(b"\0", 1)[0].decode("utf-8", "replace")
        offset += 2 + length
    return None


def encode_rule(rule: Rule, *, set_ids: dict[str, int] | None = None, append: bool = True) -> Message:
    builder = AttributeBuilder().add_str(NFTA_RULE_TABLE, rule.table).add_str(NFTA_RULE_CHAIN, rule.chain)
    if rule.position is not None:
        builder.add_be64(NFTA_RULE_POSITION, rule.position)
    with builder.nested(NFTA_RULE_EXPRESSIONS):
        encode_expressions(builder, rule.expressions, family_number(rule.family), set_ids or {})
    if rule.comment is not None:
        builder.add(NFTA_RULE_USERDATA, _comment_userdata(rule.comment))
    return _message(NFT_MSG_NEWRULE, rule.family, builder, NLM_F_CREATE | (NLM_F_APPEND if append else 0))


def encode_delete(kind: str, family: str | int, table: str, name: str | None = None, *, chain: str | None = None, handle: int | None = None) -> Message:
    """DELTABLE / DELCHAIN / DELSET / DELRULE (by name, or rules by handle).
    ``encode_delete("elements", family, table, set_name)`` flushes a set."""
    builder = AttributeBuilder()
    if kind == "table":
        builder.add_str(NFTA_TABLE_NAME, table)
        return _message(NFT_MSG_DELTABLE, family, builder)
    if kind == "chain":
        builder.add_str(NFTA_CHAIN_TABLE, table).add_str(NFTA_CHAIN_NAME, _required(name, "chain name"))
        return _message(NFT_MSG_DELCHAIN, family, builder)
    if kind == "set":
        builder.add_str(NFTA_SET_TABLE, table).add_str(NFTA_SET_NAME, _required(name, "set name"))
        return _message(NFT_MSG_DELSET, family, builder)
    if kind == "elements":
        builder.add_str(NFTA_SET_ELEM_LIST_TABLE, table).add_str(NFTA_SET_ELEM_LIST_SET, _required(name, "set name"))
        return _message(NFT_MSG_DELSETELEM, family, builder)
    if kind == "rule":
        builder.add_str(NFTA_RULE_TABLE, table).add_str(NFTA_RULE_CHAIN, _required(chain, "chain"))
        if handle is not None:
            builder.add_be64(NFTA_RULE_HANDLE, handle)
        return _message(NFT_MSG_DELRULE, family, builder)
    raise ValueError(f"cannot delete a {kind!r}; use table, chain, set, elements or rule")


def _required(value: str | None, what: str) -> str:
    if value is None:
        raise ValueError(f"{what} is required")
    return value


def encode_dump(kind: str, family: str | int = 0, *, table: str | None = None, name: str | None = None, chain: str | None = None) -> Message:
    """A dump request for tables, chains, sets, rules or elements (elements
    need ``family``, ``table`` and the set ``name``)."""
    from ....constants import NLM_F_DUMP, NLM_F_REQUEST

    builder = AttributeBuilder()
    kinds = {"tables": NFT_MSG_GETTABLE, "chains": NFT_MSG_GETCHAIN, "sets": NFT_MSG_GETSET, "rules": NFT_MSG_GETRULE,
             "elements": NFT_MSG_GETSETELEM}
    if kind not in kinds:
        raise ValueError(f"cannot dump {kind!r}; use one of {sorted(kinds)}")
    if kind == "elements":
        if not family or table is None or name is None:
            raise ValueError("dumping elements needs the set's family, table and name")
        builder.add_str(NFTA_SET_ELEM_LIST_TABLE, table).add_str(NFTA_SET_ELEM_LIST_SET, name)
    elif kind == "rules" and table is not None:
        builder.add_str(NFTA_RULE_TABLE, table)
        if chain is not None:
            builder.add_str(NFTA_RULE_CHAIN, chain)
    elif table is not None and kind in ("chains", "sets"):
        builder.add_str(1, table)  # NFTA_CHAIN_TABLE == NFTA_SET_TABLE == 1
    return Message(_type(kinds[kind]), NLM_F_REQUEST | NLM_F_DUMP, payload=encode_nfgenmsg(family_number(family), 0) + builder.build())


def encode_getgen() -> Message:
    return Message(_type(NFT_MSG_GETGEN), 0, payload=encode_nfgenmsg(0, 0))


# --- decoders --------------------------------------------------------------------------
def _attributes(msg: Message, expected: int) -> tuple[int, Attributes]:
    if msg.type != _type(expected):
        raise DecodeError(f"expected nf_tables message {expected}, got type {msg.type:#x}")
    payload = msg.payload
    header = parse_nfgenmsg(payload)
    return header.family, Attributes(payload, 4)


def _required_str(attributes: Attributes, attr_type: int, what: str) -> str:
    value = attributes.get_str(attr_type)
    if value is None:
        raise DecodeError(f"nf_tables message without its {what}")
    return value


def decode_table(msg: Message) -> Table:
    family, attributes = _attributes(msg, NFT_MSG_NEWTABLE)
    return Table(family_name(family), _required_str(attributes, NFTA_TABLE_NAME, "table name"), attributes.get_be32(NFTA_TABLE_FLAGS, 0),
                 attributes.get_be64(NFTA_TABLE_HANDLE), attributes.get_be32(NFTA_TABLE_USE))


def decode_chain(msg: Message) -> Chain:
    family, attributes = _attributes(msg, NFT_MSG_NEWCHAIN)
    hook_name = device = None
    priority = 0
    hook = attributes.get_nested(NFTA_CHAIN_HOOK)
    if hook is not None:
        number = hook.get_be32(NFTA_HOOK_HOOKNUM)
        hook_name = "ingress" if family == FAMILIES["netdev"] else _HOOK_NAMES.get(number, str(number))
        raw = hook.get_bytes(NFTA_HOOK_PRIORITY)
        priority = struct.unpack("!i", raw)[0] if raw and len(raw) == 4 else 0
        device = hook.get_str(NFTA_HOOK_DEV)
    policy = attributes.get_be32(NFTA_CHAIN_POLICY)
    return Chain(
        family_name(family),
        _required_str(attributes, NFTA_CHAIN_TABLE, "chain's table"),
        _required_str(attributes, NFTA_CHAIN_NAME, "chain name"),
        hook_name,
        priority,
        attributes.get_str(NFTA_CHAIN_TYPE) or "filter",
        None if policy is None else _POLICY_NAMES.get(policy, str(policy)),
        device,
        attributes.get_be64(NFTA_CHAIN_HANDLE),
    )


def decode_set(msg: Message) -> Set:
    family, attributes = _attributes(msg, NFT_MSG_NEWSET)
    flags = attributes.get_be32(NFTA_SET_FLAGS, 0)
    timeout = attributes.get_be64(NFTA_SET_TIMEOUT)
    gc_interval = attributes.get_be32(NFTA_SET_GC_INTERVAL)
    key_type = attributes.get_be32(NFTA_SET_KEY_TYPE, 0)
    return Set(
        family_name(family),
        _required_str(attributes, NFTA_SET_TABLE, "set's table"),
        _required_str(attributes, NFTA_SET_NAME, "set name"),
        _KEY_TYPE_NAMES.get(key_type, str(key_type)),
        frozenset(name for name, bit in SET_FLAGS.items() if flags & bit),
        None if timeout is None else timeout / 1000,
        None if gc_interval is None or timeout is None else gc_interval / 1000,
        attributes.get_be64(NFTA_SET_HANDLE),
    )


ElementRecord = tuple[bytes, int, "float | None", "float | None"]  # key, flags, timeout, expires


def decode_element_records(msg: Message) -> list[ElementRecord]:
    """Raw elements of one NEWSETELEM message: (key bytes, flags, timeout, expires)."""
    _family, attributes = _attributes(msg, NFT_MSG_NEWSETELEM)
    listing = attributes.get_nested(NFTA_SET_ELEM_LIST_ELEMENTS)
    records: list[ElementRecord] = []
    if listing is None:
        return records
    for attr_type, view in listing.items():
        if attr_type != NFTA_LIST_ELEM:
            continue
        element = Attributes(view)
        key_nest = element.get_nested(NFTA_SET_ELEM_KEY)
        key = key_nest.get_bytes(NFTA_DATA_VALUE) if key_nest is not None else None
        if key is None:
            continue
        timeout = element.get_be64(NFTA_SET_ELEM_TIMEOUT)
        expiration = element.get_be64(NFTA_SET_ELEM_EXPIRATION)
        records.append((key, element.get_be32(NFTA_SET_ELEM_FLAGS, 0), None if timeout is None else timeout / 1000,
                        None if expiration is None else expiration / 1000))
    return records


def elements_from_records(records: Sequence[ElementRecord], key_type: str, interval: bool) -> list[Element]:
    """Decode keys; for an interval set, fold each start and the
    INTERVAL_END that follows it back into ``Element(start, key_end=last)``."""
    if interval:
        return _fold_intervals(records, key_type)
    return [Element(decode_key(key_type, key), None, timeout, expires) for key, _flags, timeout, expires in records]


def decode_elements(msg: Message, key_type: str = "ipv4_addr", interval: bool = False) -> list[Element]:
    """Elements of one NEWSETELEM message (see :func:`elements_from_records`)."""
    return elements_from_records(decode_element_records(msg), key_type, interval)


def _fold_intervals(raw: Sequence[tuple[bytes, int, float | None, float | None]], key_type: str) -> list[Element]:
    # The rbtree dump order is not the key order: sort, then pair each start
    # with the INTERVAL_END that follows it.
    ordered = sorted(raw, key=lambda item: (item[0], not item[1] & NFT_SET_ELEM_INTERVAL_END))
    elements: list[Element] = []
    start: tuple[bytes, int, float | None, float | None] | None = None
    for item in ordered:
        if item[1] & NFT_SET_ELEM_INTERVAL_END:
            if start is not None:
                end_key = int.from_bytes(item[0], "big")
                if not end_key:
                    raise DecodeError("an INTERVAL_END key of 0 closes no interval")
                last = (end_key - 1).to_bytes(len(item[0]), "big")
                key_end = None if last == start[0] else decode_key(key_type, last)  # a single key, not a range
                elements.append(Element(decode_key(key_type, start[0]), key_end, start[2], start[3]))
                start = None
        else:
            if start is not None:  # a range that runs to the end of the key space
                elements.append(Element(decode_key(key_type, start[0]), decode_key(key_type, b"\xff" * len(start[0])), start[2], start[3]))
            start = item
    if start is not None:
        elements.append(Element(decode_key(key_type, start[0]), decode_key(key_type, b"\xff" * len(start[0])), start[2], start[3]))
    return elements


def decode_rule(msg: Message) -> Rule:
    family, attributes = _attributes(msg, NFT_MSG_NEWRULE)
    expressions_nest = attributes.get_nested(NFTA_RULE_EXPRESSIONS)
    expressions = decode_expressions(expressions_nest) if expressions_nest is not None else []
    if family in (FAMILIES["inet"], FAMILIES["bridge"], FAMILIES["netdev"]):
        # Fold `meta nfproto` + cmp back into the dependency marker the
        # match helpers use, so a dumped rule equals the rule that was added.
        expressions = strip_dependencies(expressions)
    userdata = attributes.get_bytes(NFTA_RULE_USERDATA)
    return Rule(
        family_name(family),
        _required_str(attributes, NFTA_RULE_TABLE, "rule's table"),
        _required_str(attributes, NFTA_RULE_CHAIN, "rule's chain"),
        tuple(expressions),
        None if userdata is None else _comment_from_userdata(userdata),
        attributes.get_be64(NFTA_RULE_HANDLE),
        attributes.get_be64(NFTA_RULE_POSITION),
    )


def describe_offset(msg: Message, offset: int | None) -> str | None:
    """Name what sits at extack byte ``offset`` of request ``msg`` (offsets
    count from the nlmsghdr): "expression #2 (lookup)" inside a rule's
    expressions, else "attribute N"."""
    if offset is None:
        return None
    position = offset - 16 - 4  # past nlmsghdr and nfgenmsg, into the attributes
    payload = bytes(msg.payload)
    try:
        top = Attributes(payload, 4)
        if msg.type & 0xFF == NFT_MSG_NEWRULE and NFTA_RULE_EXPRESSIONS in top:
            start, end = top.table[NFTA_RULE_EXPRESSIONS]
            if start <= position + 4 < end:
                for index, (attr_type, element_start, element_end) in enumerate(_walk(payload, start, end)):
                    if element_start - 4 <= position + 4 < element_end:
                        name = Attributes(payload, element_start, element_end).get_str(1)
                        return f"expression #{index} ({name})"
        for attr_type, attr_start, attr_end in _walk(payload, 4, len(payload)):
            if attr_start - 4 <= position + 4 < attr_end:
                return f"attribute {attr_type}"
    except DecodeError:
        return None
    return None


def _walk(buffer: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    from ....attributes import iter_attributes

    return list(iter_attributes(buffer, start, end))


def decode_genid(msg: Message) -> int:
    """The ruleset generation id from an NFT_MSG_NEWGEN reply."""
    _family, attributes = _attributes(msg, NFT_MSG_NEWGEN)
    genid = attributes.get_be32(NFTA_GEN_ID)
    if genid is None:
        raise DecodeError("NFT_MSG_NEWGEN without NFTA_GEN_ID")
    return genid  # type: ignore[no-any-return]
