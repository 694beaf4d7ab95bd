"""The nlattr codec: walk, typed getters, nested attributes, and a builder.

Pure: imports neither asyncio nor socket.

``struct nlattr {u16 nla_len; u16 nla_type}`` followed by the value, each
attribute padded to NLA_ALIGNTO (4). ``nla_len`` counts the 4-byte header
but not the padding (include/uapi/linux/netlink.h).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .constants import NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN
from .errors import DecodeError

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "NLATTR",
    "nla_align",
    "iter_attributes",
    "parse_attributes",
    "Attributes",
    "AttributeBuilder",
]

NLATTR = struct.Struct("=HH")
_unpack_nlattr = NLATTR.unpack_from
_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_S8 = struct.Struct("=b")
_S16 = struct.Struct("=h")
_S32 = struct.Struct("=i")
_S64 = struct.Struct("=q")
_BE16 = struct.Struct(">H")
_BE32 = struct.Struct(">I")
_BE64 = struct.Struct(">Q")


def nla_align(length: int) -> int:
    return (length + 3) & ~3


def iter_attributes(buffer: Any, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """Yield ``(type, value_start, value_end)`` for each attribute in
    ``buffer[start:end]``. ``type`` has NLA_F_NESTED / NLA_F_NET_BYTEORDER
    masked off. Raises :class:`DecodeError` on a length below the header or
    past the end."""
    if end is None:
        end = len(buffer)
    offset = start
    while offset < end:
        if end - offset < NLA_HDRLEN:
            # The kernel's nla_for_each_attr stops here too; a short tail is
            # padding, not an attribute (nla_ok()).
            return
        length, attr_type = _unpack_nlattr(buffer, offset)
        if length < NLA_HDRLEN:
            raise DecodeError(f"nla_len {length} at offset {offset} is below the 4-byte attribute header")
        value_end = offset + length
        if value_end > end:
            raise DecodeError(f"attribute type {attr_type & _TYPE_MASK} at offset {offset}: nla_len {length} runs past the end of its parent ({end - offset} bytes left)")
        yield attr_type & _TYPE_MASK, offset + NLA_HDRLEN, value_end
        offset = (value_end + 3) & ~3


def parse_attributes(buffer: Any, start: int = 0, end: int | None = None) -> dict[int, tuple[int, int]]:
    """Map attribute type -> (value_start, value_end); the last one wins,
    as in the kernel's nla_parse(). Raises :class:`DecodeError`."""
    if end is None:
        end = len(buffer)
    table: dict[int, tuple[int, int]] = {}
    offset = start
    while end - offset >= NLA_HDRLEN:
        length, attr_type = _unpack_nlattr(buffer, offset)
        value_end = offset + length
        if length < NLA_HDRLEN or value_end > end:
            raise DecodeError(
                f"attribute type {attr_type & _TYPE_MASK} at offset {offset}: nla_len {length} "
                f"{'is below the header' if length < NLA_HDRLEN else 'runs past its parent'} "
                f"({end - offset} bytes left)"
            )
        table[attr_type & _TYPE_MASK] = (offset + NLA_HDRLEN, value_end)
        offset = (value_end + 3) & ~3
    return table


class Attributes:
    """Attributes of one message (or one nest), decoded on demand.

    >>> attrs = Attributes(msg.payload, start=16)       # after an ifinfomsg
    >>> attrs.get_str(IFLA_IFNAME), attrs.get_u32(IFLA_MTU)

    Getters return ``default`` when the attribute is absent and raise
    :class:`DecodeError` when it has the wrong size.
    """

    __slots__ = ("buffer", "start", "end", "_table")

    def __init__(self, buffer: Any, start: int = 0, end: int | None = None) -> None:
        self.buffer = buffer
        self.start = start
        self.end = len(buffer) if end is None else end
        self._table: dict[int, tuple[int, int]] | None = None

    @property
    def table(self) -> dict[int, tuple[int, int]]:
        table = self._table
        if table is None:
            table = self._table = parse_attributes(self.buffer, self.start, self.end)
        return table

    def __contains__(self, attr_type: int) -> bool:
        return attr_type in self.table

    def __iter__(self) -> Iterator[int]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self) -> Iterator[tuple[int, memoryview]]:
        """Every attribute in order, duplicates included."""
        view = memoryview(self.buffer)
        for attr_type, start, end in iter_attributes(self.buffer, self.start, self.end):
            yield attr_type, view[start:end]

    def get_bytes(self, attr_type: int, default: bytes | None = None) -> bytes | None:
        span = self.table.get(attr_type)
        if span is None:
            return default
        return bytes(self.buffer[span[0] : span[1]])

    def get_view(self, attr_type: int) -> memoryview | None:
        span = self.table.get(attr_type)
        if span is None:
            return None
        return memoryview(self.buffer)[span[0] : span[1]]

    def _fixed(self, attr_type: int, codec: struct.Struct, default: Any) -> Any:
        span = self.table.get(attr_type)
        if span is None:
            return default
        if span[1] - span[0] < codec.size:
            raise DecodeError(f"attribute {attr_type}: {span[1] - span[0]} bytes, expected {codec.size}")
        return codec.unpack_from(self.buffer, span[0])[0]

    def get_u8(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _U8, default)

    def get_u16(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _U16, default)

    def get_u32(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _U32, default)

    def get_u64(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _U64, default)

    def get_s32(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _S32, default)

    def get_be16(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _BE16, default)

    def get_be32(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _BE32, default)

    def get_be64(self, attr_type: int, default: Any = None) -> Any:
        return self._fixed(attr_type, _BE64, default)

    def get_str(self, attr_type: int, default: str | None = None) -> str | None:
        """A NUL-terminated string (NLA_NUL_STRING / NLA_STRING)."""
        span = self.table.get(attr_type)
        if span is None:
            return default
        raw = bytes(self.buffer[span[0] : span[1]])
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        return raw.decode("utf-8", "replace")

    def get_ip(self, attr_type: int, default: Any = None) -> Any:
        """An IPv4 (4 bytes) or IPv6 (16 bytes) address."""
        span = self.table.get(attr_type)
        if span is None:
            return default
        size = span[1] - span[0]
        if size not in (4, 16):
            raise DecodeError(f"attribute {attr_type}: {size} bytes is not an IPv4 or IPv6 address")
        import ipaddress  # here, not at the top: `aionlmmap dump sockets` never needs it (1-2 ms of its start)

        return ipaddress.ip_address(bytes(self.buffer[span[0] : span[1]]))

    def get_nested(self, attr_type: int) -> Attributes | None:
        span = self.table.get(attr_type)
        if span is None:
            return None
        return Attributes(self.buffer, span[0], span[1])


class AttributeBuilder:
    """Builds an attribute stream.

    >>> b = AttributeBuilder()
    >>> b.add_str(IFLA_IFNAME, "veth0").add_u32(IFLA_MTU, 1400)
    >>> with b.nested(IFLA_LINKINFO):
    ...     b.add_str(IFLA_INFO_KIND, "veth")
    >>> payload = ifinfomsg + b.build()
    """

    __slots__ = ("_buffer", "_open")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._open: list[int] = []

    def add(self, attr_type: int, value: bytes | bytearray | memoryview = b"") -> AttributeBuilder:
        length = NLA_HDRLEN + len(value)
        if length > 0xFFFF:
            raise ValueError(f"attribute {attr_type}: value of {len(value)} bytes does not fit nla_len (u16)")
        if not 0 <= attr_type <= 0xFFFF:
            raise ValueError(f"attribute type {attr_type} out of range 0..65535")
        buffer = self._buffer
        buffer += NLATTR.pack(length, attr_type)
        buffer += value
        buffer += bytes(nla_align(length) - length)
        return self

    def add_flag(self, attr_type: int) -> AttributeBuilder:
        return self.add(attr_type)

    def add_u8(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _U8.pack(value))

    def add_u16(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _U16.pack(value))

    def add_u32(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _U32.pack(value))

    def add_u64(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _U64.pack(value))

    def add_s32(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _S32.pack(value))

    def add_be16(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _BE16.pack(value))

    def add_be32(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _BE32.pack(value))

    def add_be64(self, attr_type: int, value: int) -> AttributeBuilder:
        return self.add(attr_type, _BE64.pack(value))

    def add_str(self, attr_type: int, value: str) -> AttributeBuilder:
        """A NUL-terminated string, as NLA_NUL_STRING and NLA_STRING accept."""
        return self.add(attr_type, value.encode() + b"\0")

    def add_ip(self, attr_type: int, value: Any) -> AttributeBuilder:
        import ipaddress  # as in get_ip

        return self.add(attr_type, ipaddress.ip_address(value).packed)

    def nested(self, attr_type: int, *, flag: bool = True) -> _Nest:
        """Context manager: attributes added inside go into one nest. ``flag``
        sets NLA_F_NESTED, which nftables and strict validation expect."""
        return _Nest(self, attr_type | (NLA_F_NESTED if flag else 0))

    def extend(self, other: AttributeBuilder | bytes) -> AttributeBuilder:
        self._buffer += other.build() if isinstance(other, AttributeBuilder) else other
        return self

    def build(self) -> bytes:
        if self._open:
            raise ValueError("build() inside an open nested() block")
        return bytes(self._buffer)

    def __len__(self) -> int:
        return len(self._buffer)


class _Nest:
    __slots__ = ("_builder", "_type", "_start")

    def __init__(self, builder: AttributeBuilder, attr_type: int) -> None:
        self._builder = builder
        self._type = attr_type
        self._start = -1

    def __enter__(self) -> AttributeBuilder:
        builder = self._builder
        self._start = len(builder._buffer)
        builder._buffer += NLATTR.pack(0, self._type)
        builder._open.append(self._start)
        return builder

    def __exit__(self, *exc: object) -> None:
        builder = self._builder
        builder._open.pop()
        length = len(builder._buffer) - self._start
        if length > 0xFFFF:
            raise ValueError(f"nested attribute {self._type & _TYPE_MASK} is {length} bytes, over nla_len's u16")
        NLATTR.pack_into(builder._buffer, self._start, length, self._type)


# The pure functions above are the reference; their compiled twins
# (aionlmmap/_speedups.pyx) take their names unless the extension is not
# built or AIONLMMAP_NO_EXTENSIONS=1 (aionlmmap._extensions).
_pure_iter_attributes = iter_attributes
_pure_parse_attributes = parse_attributes

from ._extensions import speedups as _speedups  # noqa: E402  # after the definitions it replaces

if _speedups is not None:
    iter_attributes = _speedups.iter_attributes  # type: ignore[misc, no-redef, assignment]  # noqa: F811
    parse_attributes = _speedups.parse_attributes  # type: ignore[misc, no-redef, assignment]  # noqa: F811
