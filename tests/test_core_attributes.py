"""nlattr codec: builder, parser, typed getters, nests, malformed input."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aionlmmap import AttributeBuilder, Attributes, DecodeError
from aionlmmap.attributes import iter_attributes, parse_attributes
from aionlmmap.constants import NLA_F_NESTED

attribute_lists = st.lists(st.tuples(st.integers(0, 0x3FFF), st.binary(max_size=64)), max_size=20)


@given(attribute_lists)
def test_built_attributes_parse_back_in_order(items: list[tuple[int, bytes]]) -> None:
    builder = AttributeBuilder()
    for attr_type, value in items:
        builder.add(attr_type, value)
    data = builder.build()
    assert len(data) % 4 == 0
    parsed = [(t, bytes(data[s:e])) for t, s, e in iter_attributes(data)]
    assert parsed == items


@given(attribute_lists)
def test_the_last_duplicate_wins_like_nla_parse(items: list[tuple[int, bytes]]) -> None:
    builder = AttributeBuilder()
    for attr_type, value in items:
        builder.add(attr_type, value)
    data = builder.build()
    expected = {}
    for attr_type, value in items:
        expected[attr_type] = value
    assert {t: bytes(data[s:e]) for t, (s, e) in parse_attributes(data).items()} == expected


@given(st.binary(max_size=120))
def test_arbitrary_bytes_parse_or_raise_decode_error(data: bytes) -> None:
    try:
        table = parse_attributes(data)
    except DecodeError:
        return
    for start, end in table.values():
        assert 0 <= start <= end <= len(data)


def test_typed_getters_read_what_the_builder_wrote() -> None:
    data = (
        AttributeBuilder()
        .add_u8(1, 7)
        .add_u16(2, 0x1234)
        .add_u32(3, 0xDEADBEEF)
        .add_u64(4, 2**40)
        .add_s32(5, -5)
        .add_be16(6, 80)
        .add_be32(7, 0x01020304)
        .add_str(8, "veth0")
        .add_ip(9, "192.0.2.1")
        .add_ip(10, "2001:db8::1")
        .add_flag(11)
        .build()
    )
    attrs = Attributes(data)
    assert attrs.get_u8(1) == 7
    assert attrs.get_u16(2) == 0x1234
    assert attrs.get_u32(3) == 0xDEADBEEF
    assert attrs.get_u64(4) == 2**40
    assert attrs.get_s32(5) == -5
    assert attrs.get_be16(6) == 80
    assert attrs.get_be32(7) == 0x01020304
    assert attrs.get_str(8) == "veth0"
    assert attrs.get_ip(9) == ipaddress.ip_address("192.0.2.1")
    assert attrs.get_ip(10) == ipaddress.ip_address("2001:db8::1")
    assert 11 in attrs and attrs.get_bytes(11) == b""
    assert attrs.get_u32(99, default=-1) == -1


def test_nested_attributes_carry_nla_f_nested_and_parse_inside() -> None:
    builder = AttributeBuilder()
    with builder.nested(18):
        builder.add_str(1, "veth")
        with builder.nested(2):
            builder.add_u32(3, 42)
    data = builder.build()
    assert int.from_bytes(data[2:4], "little") == 18 | NLA_F_NESTED
    outer = Attributes(data).get_nested(18)
    assert outer is not None and outer.get_str(1) == "veth"
    inner = outer.get_nested(2)
    assert inner is not None and inner.get_u32(3) == 42


def test_attribute_length_overflowing_its_parent_is_a_decode_error() -> None:
    data = bytearray(AttributeBuilder().add_u32(1, 5).build())
    data[0:2] = (200).to_bytes(2, "little")
    with pytest.raises(DecodeError, match="runs past"):
        parse_attributes(data)


def test_attribute_length_below_its_header_is_a_decode_error() -> None:
    data = bytearray(AttributeBuilder().add_u32(1, 5).build())
    data[0:2] = (2).to_bytes(2, "little")
    with pytest.raises(DecodeError, match="below"):
        parse_attributes(data)


def test_a_getter_on_a_too_short_value_is_a_decode_error() -> None:
    attrs = Attributes(AttributeBuilder().add_u16(1, 5).build())
    with pytest.raises(DecodeError, match="expected 4"):
        attrs.get_u32(1)


def test_builder_rejects_values_that_overflow_nla_len() -> None:
    with pytest.raises(ValueError, match="nla_len"):
        AttributeBuilder().add(1, bytes(70000))


def test_build_inside_an_open_nest_is_refused() -> None:
    builder = AttributeBuilder()
    with pytest.raises(ValueError, match="nested"):
        with builder.nested(1):
            builder.build()
