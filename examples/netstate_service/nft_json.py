"""The nf_tables ruleset as ``nft -j list ruleset`` prints it. Pure.

Input: the objects of one dump (:mod:`aionlmmap.families.nftables_codec`'s
Table, Chain, Set with its Elements, Rule); output: the list under
``{"nftables": [...]}`` in nft's order (per table: the table, its named
sets with their elements, its chains, then each chain's rules in order).

Rules are shown the way nft shows them: the kernel holds register
operations (``payload`` load + ``cmp``), nft folds them back into
``match`` statements, hides the protocol dependencies it added itself
(``meta nfproto``, ``meta l4proto`` before a port), and names payload
fields. The folding here covers the statements the library's rule builder
writes and their neighbours: ip/ip6 saddr/daddr (a value, a prefix, a
named or anonymous set), tcp/udp sport/dport, meta l4proto/mark/iifname/
oifname, ct state, counter, log, verdicts (jump/goto included). Anything else is shown as
nft's raw form where it has one (``payload`` by base/offset/len) or as
``{"unsupported": {"name": ...}}``, never dropped silently.

Known differences from nft: element ``expires`` is the value at the last
dump (nft computes it when asked); counters are as of the last change of
the ruleset (the kernel notifies changes, not packets).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from aionlmmap.families.netfilter.nftables.codec import Chain, Element, Rule, Set, Table
from aionlmmap.families.netfilter.nftables.expr import Bitwise, Cmp, Counter, Ct, Log, Lookup, Meta, NfprotoDependency, Payload, Queue, Verdict

__all__ = ["anonymous_sets", "ruleset_json", "table_json", "chain_json", "set_json", "element_json", "rule_json", "expressions_json"]

#: json_schema_version of nft's JSON (libnftables-json(5))
JSON_SCHEMA_VERSION = 1
_SET_FLAG_ORDER = ("constant", "interval", "timeout", "dynamic")  # nft's set_print_json order
_NFPROTO_NAMES = {2: "ip", 10: "ip6"}
_L4PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
#: ct state bits (NF_CT_STATE_BIT(ctinfo), NF_CT_STATE_INVALID_BIT, NF_CT_STATE_UNTRACKED_BIT) in nft's print order
_CT_STATES = ((1, "invalid"), (2, "established"), (4, "related"), (8, "new"), (64, "untracked"))
#: (protocol, payload offset, length) -> field name (the header field nft prints)
_FIELDS = {
    ("ip", 9, 1): "protocol",
    ("ip", 12, 4): "saddr",
    ("ip", 16, 4): "daddr",
    ("ip6", 6, 1): "nexthdr",
    ("ip6", 8, 16): "saddr",
    ("ip6", 24, 16): "daddr",
    ("tcp", 0, 2): "sport",
    ("tcp", 2, 2): "dport",
    ("udp", 0, 2): "sport",
    ("udp", 2, 2): "dport",
}


#: (protocol, offset) -> (address field, its length): where a shorter load is a prefix
_ADDRESS_AT = {("ip", 12): ("saddr", 4), ("ip", 16): ("daddr", 4), ("ip6", 8): ("saddr", 16), ("ip6", 24): ("daddr", 16)}


def _adjacent_fields(protocol: str | None, offset: int, length: int) -> list[tuple[str, int]] | None:
    """The known fields that exactly tile ``length`` bytes at ``offset``
    (two or more), or None."""
    if protocol is None:
        return None
    fields, position = [], offset
    while position < offset + length:
        for (candidate, start, size), name in _FIELDS.items():
            if candidate == protocol and start == position and position + size <= offset + length:
                fields.append((name, size))
                position += size
                break
        else:
            return None
    return fields if len(fields) > 1 else None


def table_json(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {"family": table.family, "name": table.name, "handle": table.handle}
    if table.flags & 0x1:  # NFT_TABLE_F_DORMANT
        out["flags"] = ["dormant"]
    return out


def chain_json(chain: Chain) -> dict[str, Any]:
    out: dict[str, Any] = {"family": chain.family, "table": chain.table, "name": chain.name, "handle": chain.handle}
    if chain.hook is not None:
        out["type"] = chain.type
        out["hook"] = chain.hook
        if chain.device is not None:
            out["dev"] = chain.device
        out["prio"] = chain.priority
        out["policy"] = chain.policy or "accept"
    return out


def _seconds(value: float) -> int:
    return int(round(value))


def element_json(element: Element, nft_set: Set) -> Any:
    """One entry of a set's ``elem`` list."""
    value: Any = _key_json(element.key, nft_set.key_type)
    if element.key_end is not None:
        value = _range_json(element.key, element.key_end, nft_set.key_type)
    extras: dict[str, Any] = {}
    # nft prints an element's timeout only where it differs from the set's default.
    if element.timeout is not None and element.timeout != nft_set.timeout:
        extras["timeout"] = _seconds(element.timeout)
    if element.expires is not None:
        extras["expires"] = _seconds(element.expires) if element.expires >= 1 else 0
    if extras:
        return {"elem": {"val": value, **extras}}
    return value


def _key_json(key: Any, key_type: str) -> Any:
    if isinstance(key, bytes):
        return "0x" + key.hex()
    return key


def _range_json(start: Any, end: Any, key_type: str) -> Any:
    if key_type in ("ipv4_addr", "ipv6_addr") and isinstance(start, str) and isinstance(end, str):
        first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        networks = list(ipaddress.summarize_address_range(first, last))
        if len(networks) == 1:
            return {"prefix": {"addr": str(networks[0].network_address), "len": networks[0].prefixlen}}
    return {"range": [_key_json(start, key_type), _key_json(end, key_type)]}


def set_json(nft_set: Set, elements: Sequence[Element] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"family": nft_set.family, "name": nft_set.name, "table": nft_set.table, "type": nft_set.key_type, "handle": nft_set.handle}
    flags = [flag for flag in _SET_FLAG_ORDER if flag in nft_set.flags]
    if flags:
        out["flags"] = flags
    if nft_set.timeout:
        out["timeout"] = _seconds(nft_set.timeout)
    if nft_set.gc_interval:
        out["gc-interval"] = _seconds(nft_set.gc_interval)
    if elements:
        out["elem"] = [element_json(element, nft_set) for element in elements]
    return out


def rule_json(rule: Rule, anonymous: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"family": rule.family, "table": rule.table, "chain": rule.chain, "handle": rule.handle}
    if rule.comment is not None:
        out["comment"] = rule.comment
    out["expr"] = expressions_json(rule.expressions, rule.family, anonymous)
    return out


class _Folder:
    """Walks a rule's expressions, keeping what nft's delinearization keeps:
    the loaded value waiting for its comparison, the protocol context."""

    def __init__(self, family: str, anonymous: dict[str, list[Any]] | None = None) -> None:
        self.anonymous = anonymous or {}
        self.state_mask: int | None = None
        self.network: str | None = family if family in ("ip", "ip6") else None
        self.transport: str | None = None
        self.left: dict[str, Any] | None = None
        self.left_kind: tuple[str, ...] = ()
        self.prefix_len: int | None = None
        self.pad = 0  #: zero bytes that complete a byte-boundary prefix's value
        self.merged: list[tuple[str, int]] | None = None  #: fields of one merged load
        self.out: list[dict[str, Any]] = []

    def run(self, expressions: Sequence[Any]) -> list[dict[str, Any]]:
        items = list(expressions)
        index = 0
        while index < len(items):
            item = items[index]
            following = items[index + 1] if index + 1 < len(items) else None
            after = items[index + 2] if index + 2 < len(items) else None
            if isinstance(item, NfprotoDependency):
                self.network = _NFPROTO_NAMES.get(item.nfproto, self.network)
            elif (
                isinstance(item, Meta) and item.key == "l4proto" and isinstance(following, Cmp) and following.op == "=="
                and len(following.data) == 1 and isinstance(after, Payload) and after.base == "transport"
            ):  # fmt: skip
                # The dependency nft adds before a transport header match: hidden.
                self.transport = _L4PROTO_NAMES.get(following.data[0], str(following.data[0]))
                index += 2
                continue
            else:
                self.step(item)
            index += 1
        return self.out

    def step(self, item: Any) -> None:
        if isinstance(item, Payload):
            protocol = self.transport if item.base == "transport" else self.network if item.base == "network" else None
            field = _FIELDS.get((protocol or "", item.offset, item.length))
            self.prefix_len = None
            self.pad = 0
            self.merged = None
            shorter = _ADDRESS_AT.get((protocol or "", item.offset))
            if field is None and shorter is not None and item.length < shorter[1]:
                # A prefix on a byte boundary (10.0.0.0/8): nft loads only
                # the prefix's bytes and compares them, no bitwise mask.
                field, self.prefix_len, self.pad = shorter[0], item.length * 8, shorter[1] - item.length
            if protocol is not None and field is not None:
                self.left = {"payload": {"protocol": protocol, "field": field}}
                self.left_kind = ("payload", protocol, field)
                return
            merged = _adjacent_fields(protocol, item.offset, item.length)
            if merged:
                # nft loads adjacent header fields compared alike at once
                # (tcp sport and dport: 4 bytes at offset 0) and prints them
                # back as one match per field, in header order.
                self.merged = merged
                self.left, self.left_kind = {"payload": {"protocol": protocol}}, ("merged", protocol or "")
                return
            else:
                self.left = {"payload": {"base": {"network": "nh", "transport": "th", "link": "ll"}.get(item.base, item.base), "offset": item.offset * 8, "len": item.length * 8}}
                self.left_kind = ("raw",)
        elif isinstance(item, Meta):
            self.left = {"meta": {"key": item.key}}
            self.left_kind = ("meta", item.key)
            self.prefix_len = None
        elif isinstance(item, Ct):
            self.left = {"ct": {"key": item.key}}
            self.left_kind = ("ct", item.key)
            self.prefix_len = self.state_mask = None
        elif isinstance(item, Bitwise) and self.left_kind == ("ct", "state") and not any(item.xor) and len(item.mask) == 4:
            # `ct state established,related`: (state & mask) != 0, the mask
            # in host order (the register holds the kernel's u32).
            self.state_mask = struct.unpack("=I", item.mask)[0]
        elif isinstance(item, Cmp) and self.state_mask is not None and item.op == "!=" and not any(item.data):
            names = [name for bit, name in _CT_STATES if self.state_mask & bit]
            self.out.append({"match": {"op": "in", "left": self.left, "right": names[0] if len(names) == 1 else names}})
            self.left, self.state_mask = None, None
        elif isinstance(item, Bitwise) and self.left is not None and not any(item.xor):
            bits = "".join(f"{byte:08b}" for byte in item.mask)
            ones = len(bits.rstrip("0"))
            if "0" not in bits[:ones]:
                self.prefix_len = ones  # a network prefix: nft shows addr/len
            else:
                self.left = {"&": [self.left, int.from_bytes(item.mask, "big")]}
        elif isinstance(item, Cmp) and self.merged and item.op in ("==", "!="):
            protocol, offset = self.left_kind[1], 0
            for field, length in self.merged:
                self.left_kind = ("payload", protocol, field)
                value = self._value(item.data[offset : offset + length])
                self.out.append({"match": {"op": item.op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": value}})
                offset += length
            self.left, self.merged = None, None
        elif isinstance(item, Cmp) and self.left is not None:
            right = self._value(item.data + bytes(self.pad))
            self.pad = 0
            if self.prefix_len is not None and isinstance(right, str):
                right = {"prefix": {"addr": right, "len": self.prefix_len}}
            self.out.append({"match": {"op": item.op, "left": self.left, "right": right}})
            self.left, self.prefix_len = None, None
        elif isinstance(item, Lookup) and self.left is not None:
            # An anonymous set (`{ 22, 80 }` written in the rule) is shown inline.
            right: Any = {"set": self.anonymous[item.set]} if item.set in self.anonymous else f"@{item.set}"
            self.out.append({"match": {"op": "!=" if item.invert else "==", "left": self.left, "right": right}})
            self.left = None
        elif isinstance(item, Counter):
            self.out.append({"counter": {"packets": item.packets, "bytes": item.bytes}})
        elif isinstance(item, Verdict):
            if item.kind in ("jump", "goto"):
                self.out.append({item.kind: {"target": item.chain}})
            else:
                self.out.append({item.kind: None})
        elif isinstance(item, Log):
            options = {name: value for name, value in (("prefix", item.prefix), ("group", item.group), ("snaplen", item.snaplen), ("queue-threshold", item.qthreshold)) if value is not None}
            self.out.append({"log": options or None})
        elif isinstance(item, Queue):
            self.out.append({"queue": {"num": item.num}})
        else:
            self.out.append({"unsupported": {"name": getattr(item, "name", type(item).__name__)}})

    def _value(self, data: bytes) -> Any:
        kind = self.left_kind
        if kind[:1] == ("payload",):
            field = kind[2]
            if field in ("saddr", "daddr"):
                return str(ipaddress.ip_address(data)) if len(data) in (4, 16) else "0x" + data.hex()
            if field in ("sport", "dport") and len(data) == 2:
                return struct.unpack("!H", data)[0]
            if field in ("protocol", "nexthdr") and len(data) == 1:
                return _L4PROTO_NAMES.get(data[0], data[0])
        if kind[:1] == ("meta",):
            key = kind[1]
            if key in ("iifname", "oifname"):
                return data.rstrip(b"\0").decode(errors="replace")
            if key in ("l4proto",) and len(data) == 1:
                return _L4PROTO_NAMES.get(data[0], data[0])
            if key == "nfproto" and len(data) == 1:
                return {2: "ipv4", 10: "ipv6"}.get(data[0], data[0])
            if len(data) == 4:
                return struct.unpack("=I", data)[0]  # mark, iif, skuid...: host order in the register
        return int.from_bytes(data, "big") if len(data) <= 8 else "0x" + data.hex()


def expressions_json(expressions: Sequence[Any], family: str, anonymous: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """A rule's ``expr`` list as nft -j prints it (see the module docstring).
    ``anonymous``: the elements (as nft prints them) of the table's
    anonymous sets by name, for rules that look one up."""
    return _Folder(family, anonymous).run(expressions)


def _sort_key(value: Any) -> tuple[int, Any]:
    # nft prints an anonymous set's elements in key order.
    if isinstance(value, dict):
        inner = value.get("prefix", {}).get("addr") or (value.get("range") or [None])[0] or value.get("elem", {}).get("val")
        return _sort_key(inner)
    if isinstance(value, str):
        try:
            return (0, int(ipaddress.ip_address(value)))
        except ValueError:
            return (1, value)
    return (0, value) if isinstance(value, int) else (2, str(value))


def anonymous_sets(sets: Iterable[tuple[Set, Sequence[Element]]]) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """(family, table) -> {anonymous set name: its elements as nft prints them}."""
    out: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for nft_set, elements in sets:
        if "anonymous" in nft_set.flags:
            values = sorted((element_json(element, nft_set) for element in elements), key=_sort_key)
            out.setdefault((nft_set.family, nft_set.table), {})[nft_set.name] = values
    return out


def ruleset_json(
    tables: Iterable[Table],
    chains: Iterable[Chain],
    sets: Iterable[tuple[Set, Sequence[Element]]],
    rules: Iterable[Rule],
) -> list[dict[str, Any]]:
    """The objects of ``nft -j list ruleset`` after its metainfo entry, in
    nft's order. Anonymous sets (the ``{ 22, 80 }`` written inside a rule)
    are not listed, as nft does not list them."""
    by_table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    order: list[tuple[str, str]] = []
    for table in tables:
        key = (table.family, table.name)
        order.append(key)
        by_table[key] = [{"table": table_json(table)}]
    chains_by_table: dict[tuple[str, str], list[Chain]] = {}
    for chain in chains:
        chains_by_table.setdefault((chain.family, chain.table), []).append(chain)
    rules_by_chain: dict[tuple[str, str, str], list[Rule]] = {}
    for rule in rules:
        rules_by_chain.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
    sets = list(sets)
    anonymous = anonymous_sets(sets)
    for nft_set, elements in sets:
        if "anonymous" in nft_set.flags:
            continue
        by_table.setdefault((nft_set.family, nft_set.table), []).append({"set": set_json(nft_set, elements)})
    out: list[dict[str, Any]] = []
    for key in order:
        out.extend(by_table[key])
        table_chains = chains_by_table.get(key, [])
        out.extend({"chain": chain_json(chain)} for chain in table_chains)
        for chain in table_chains:
            table_sets = anonymous.get(key, {})
            out.extend({"rule": rule_json(rule, table_sets)} for rule in rules_by_chain.get((chain.family, chain.table, chain.name), []))
    return out
