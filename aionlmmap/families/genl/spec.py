"""Generic netlink families declared as data, and the interpreter that
encodes requests and decodes replies from the declaration.

Pure: imports neither asyncio nor socket.

A declaration has the shape of the kernel's YNL specs
(Documentation/netlink/specs/*.yaml): ``name``, ``protocol: genetlink``,
``attribute-sets`` (each attribute with a ``name``, ``type`` and, for
nests, ``nested-attributes``; values numbered from 1 unless given),
``operations`` (``name``, ``value``, ``attribute-set``, ``do``/``dump``
with ``request``/``reply`` attribute lists), and ``mcast-groups``. The
interpreter here is our own; it reads plain Python data (``FAMILY =
{...}``), so no YAML parser is needed.

Types: u8 u16 u32 u64 s8 s16 s32 s64, uint/sint (4 or 8 bytes), flag,
string, binary, nest, ``indexed-array`` (a nest of numbered entries, with
``sub-type``), ``bitfield32``, and ``pad``. ``multi-attr: true`` collects
repeated attributes into a list; ``byte-order: big-endian`` is honoured.
Attributes a declaration does not know decode under their number and are
counted, never fatal.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ...attributes import NLATTR, iter_attributes
from ...constants import NLA_F_NESTED
from ...decode_counts import DecodeCounts
from ...errors import DecodeError

__all__ = ["Attribute", "AttributeSet", "Operation", "Family", "DecodeCounts", "GENL_HDR"]

#: struct genlmsghdr {u8 cmd; u8 version; u16 reserved}
GENL_HDR = struct.Struct("=BBH")

_SCALARS = {
    "u8": "B", "u16": "H", "u32": "I", "u64": "Q",
    "s8": "b", "s16": "h", "s32": "i", "s64": "q",
}  # fmt: skip


@attrs.frozen
class Attribute:
    name: str
    value: int
    type: str
    nested_attributes: str | None = None
    sub_type: str | None = None
    multi_attr: bool = False
    big_endian: bool = False

    def __attrs_post_init__(self) -> None:
        if self.type not in _SCALARS and self.type not in ("uint", "sint", "flag", "string", "binary", "nest", "indexed-array", "bitfield32", "pad"):
            raise ValueError(f"attribute {self.name!r}: unknown type {self.type!r}")


@attrs.frozen
class AttributeSet:
    name: str
    by_name: dict[str, Attribute] = attrs.field(hash=False)
    by_value: dict[int, Attribute] = attrs.field(hash=False)


@attrs.frozen
class Operation:
    name: str
    value: int
    attribute_set: str
    do: bool
    dump: bool
    reply_value: int | None = None
    notify: bool = False


@attrs.frozen
class Family:
    """A family as data: its attribute sets, operations and groups."""

    name: str
    attribute_sets: dict[str, AttributeSet] = attrs.field(hash=False)
    operations: dict[str, Operation] = attrs.field(hash=False)
    mcast_groups: tuple[str, ...] = ()
    version: int = 1

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Family:
        """Read a YNL-shaped declaration (see the module docstring)."""
        sets: dict[str, AttributeSet] = {}
        for attr_set in spec.get("attribute-sets", ()):
            by_name: dict[str, Attribute] = {}
            value = attr_set.get("value-start", 1)
            for entry in attr_set["attributes"]:
                value = entry.get("value", value)
                attribute = Attribute(
                    entry["name"], value, entry["type"], entry.get("nested-attributes"), entry.get("sub-type"),
                    bool(entry.get("multi-attr", False)), entry.get("byte-order") == "big-endian",
                )  # fmt: skip
                by_name[attribute.name] = attribute
                value += 1
            sets[attr_set["name"]] = AttributeSet(attr_set["name"], by_name, {a.value: a for a in by_name.values()})
        for attr_set in sets.values():
            for attribute in attr_set.by_name.values():
                if attribute.nested_attributes is not None and attribute.nested_attributes not in sets:
                    raise ValueError(f"{spec['name']}: {attr_set.name}.{attribute.name} nests unknown set {attribute.nested_attributes!r}")
        operations: dict[str, Operation] = {}
        ops = spec.get("operations", {})
        value = ops.get("value-start", 1) if isinstance(ops, Mapping) else 1
        for entry in ops.get("list", ()) if isinstance(ops, Mapping) else ops:
            value = entry.get("value", value)
            attribute_set = entry.get("attribute-set") or (operations[entry["notify"]].attribute_set if "notify" in entry else "")
            if attribute_set not in sets:
                raise ValueError(f"{spec['name']}: operation {entry['name']!r} uses unknown attribute set {attribute_set!r}")
            operations[entry["name"]] = Operation(
                entry["name"], value, attribute_set, "do" in entry, "dump" in entry, entry.get("reply-value"), "notify" in entry or "event" in entry,
            )  # fmt: skip
            value += 1
        groups = tuple(group["name"] for group in spec.get("mcast-groups", {}).get("list", ()))
        return cls(spec["name"], sets, operations, groups, spec.get("version", 1))

    # -- encoding ------------------------------------------------------------------
    def encode(self, set_name: str, values: Mapping[str, Any]) -> bytes:
        """Attributes of ``set_name`` from ``{name: value}`` (nests as
        mappings, multi-attr as lists); an unknown name is a ValueError."""
        attr_set = self.attribute_sets[set_name]
        out = bytearray()
        for name, value in values.items():
            attribute = attr_set.by_name.get(name)
            if attribute is None:
                raise ValueError(f"{self.name}: attribute set {set_name!r} has no attribute {name!r} (it has {', '.join(attr_set.by_name)})")
            for item in value if attribute.multi_attr and isinstance(value, list) else [value]:
                out += self._encode_one(attribute, item)
        return bytes(out)

    def _encode_one(self, attribute: Attribute, value: Any) -> bytes:
        kind = attribute.type
        attr_type = attribute.value
        if kind in _SCALARS:
            data = struct.pack((">" if attribute.big_endian else "=") + _SCALARS[kind], value)
        elif kind in ("uint", "sint"):
            fits = -(1 << 31) <= value < (1 << 31) if kind == "sint" else 0 <= value < (1 << 32)
            data = struct.pack("=" + ("i" if kind == "sint" else "I") if fits else "=" + ("q" if kind == "sint" else "Q"), value)
        elif kind == "flag":
            if not value:
                return b""
            data = b""
        elif kind == "string":
            data = str(value).encode() + b"\0"
        elif kind == "binary":
            data = bytes(value)
        elif kind == "bitfield32":
            data = struct.pack("=II", value[0], value[1])
        elif kind == "nest":
            data = self.encode(attribute.nested_attributes or "", value)
            attr_type |= NLA_F_NESTED
        elif kind == "indexed-array":
            inner = bytearray()
            for index, item in enumerate(value, 1):
                if attribute.sub_type == "nest":
                    payload = self.encode(attribute.nested_attributes or "", item)
                    inner += NLATTR.pack(4 + len(payload), index | NLA_F_NESTED) + payload + bytes((-len(payload)) % 4)
                else:
                    payload = struct.pack("=" + _SCALARS.get(attribute.sub_type or "u32", "I"), item)
                    inner += NLATTR.pack(4 + len(payload), index) + payload + bytes((-len(payload)) % 4)
            data = bytes(inner)
            attr_type |= NLA_F_NESTED
        else:
            raise ValueError(f"{self.name}: cannot encode {attribute.name!r} of type {kind!r}")
        length = 4 + len(data)
        if length > 0xFFFF:
            raise ValueError(f"{self.name}: attribute {attribute.name!r} of {len(data)} bytes does not fit nla_len")
        return NLATTR.pack(length, attr_type) + data + bytes((-length) % 4)

    # -- decoding ------------------------------------------------------------------
    def decode(self, set_name: str, buffer: Any, start: int, end: int, counts: DecodeCounts) -> dict[str, Any]:
        """``{name: value}`` of the attributes in ``buffer[start:end]``.
        Unknown attribute types appear as ``"attr-<number>"`` (raw bytes) and
        are counted; a value of the wrong size raises DecodeError."""
        attr_set = self.attribute_sets[set_name]
        out: dict[str, Any] = {}
        for attr_type, value_start, value_end in iter_attributes(buffer, start, end):
            attribute = attr_set.by_value.get(attr_type)
            if attribute is None:
                counts.unknown_attributes += 1
                out[f"attr-{attr_type}"] = bytes(buffer[value_start:value_end])
                continue
            if attribute.type == "pad":
                continue
            value = self._decode_one(attribute, buffer, value_start, value_end, counts)
            if attribute.multi_attr:
                out.setdefault(attribute.name, []).append(value)
            else:
                out[attribute.name] = value
        return out

    def _decode_one(self, attribute: Attribute, buffer: Any, start: int, end: int, counts: DecodeCounts) -> Any:
        kind = attribute.type
        size = end - start
        if kind in _SCALARS:
            codec = struct.Struct((">" if attribute.big_endian else "=") + _SCALARS[kind])
            if size < codec.size:
                raise DecodeError(f"{self.name}: attribute {attribute.name!r} has {size} bytes, {kind} needs {codec.size}")
            return codec.unpack_from(buffer, start)[0]
        if kind in ("uint", "sint"):
            if size not in (4, 8):
                raise DecodeError(f"{self.name}: attribute {attribute.name!r} ({kind}) has {size} bytes, expected 4 or 8")
            code = {4: "I", 8: "Q"}[size] if kind == "uint" else {4: "i", 8: "q"}[size]
            return struct.unpack_from("=" + code, buffer, start)[0]
        if kind == "flag":
            return True
        if kind == "string":
            return bytes(buffer[start:end]).split(b"\0", 1)[0].decode("utf-8", "replace")
        if kind == "binary":
            return bytes(buffer[start:end])
        if kind == "bitfield32":
            if size < 8:
                raise DecodeError(f"{self.name}: bitfield32 {attribute.name!r} has {size} bytes")
            return struct.unpack_from("=II", buffer, start)
        if kind == "nest":
            return self.decode(attribute.nested_attributes or "", buffer, start, end, counts)
        if kind == "indexed-array":
            items = []
            for _index, item_start, item_end in iter_attributes(buffer, start, end):
                if attribute.sub_type == "nest":
                    items.append(self.decode(attribute.nested_attributes or "", buffer, item_start, item_end, counts))
                else:
                    items.append(self._decode_one(Attribute(attribute.name, 0, attribute.sub_type or "binary"), buffer, item_start, item_end, counts))
            return items
        return bytes(buffer[start:end])

    def operation(self, name: str) -> Operation:
        op = self.operations.get(name)
        if op is None:
            raise ValueError(f"family {self.name!r} declares no operation {name!r}: it has {', '.join(self.operations)}")
        return op

    def reply_operation(self, cmd: int) -> Operation | None:
        """The operation whose replies or notifications carry ``cmd``."""
        for op in self.operations.values():
            if (op.reply_value if op.reply_value is not None else op.value) == cmd:
                return op
        return None


def spec_names(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    return [spec["name"] for spec in specs]
