"""The pure nf_tables codecs: messages encode and decode back to equal values."""

from __future__ import annotations

import pytest

from aionlmmap import Message
from aionlmmap.errors import DecodeError
from aionlmmap.families.nfnetlink import batch_begin, parse_nfgenmsg
from aionlmmap.families.nftables_codec import (
    Chain,
    Element,
    Rule,
    Set,
    Table,
    decode_chain,
    decode_elements,
    decode_rule,
    decode_set,
    decode_table,
    describe_offset,
    encode_chain,
    encode_elements,
    encode_rule,
    encode_set,
    encode_table,
)
from aionlmmap.families.nftables_expr import (
    ACCEPT,
    DROP,
    Bitwise,
    Counter,
    Ct,
    Log,
    Lookup,
    Meta,
    Payload,
    Queue,
    RawExpression,
    jump,
    ip_saddr_in,
    tcp_dport,
)


def as_received(msg: Message) -> Message:
    """What a dump would hand us: the same message, parsed from bytes."""
    from aionlmmap import iter_messages

    (parsed,) = iter_messages(msg.encode())
    return parsed


def test_table_round_trips() -> None:
    assert decode_table(as_received(encode_table(Table("inet", "fw")))) == Table("inet", "fw")


def test_base_chain_round_trips_with_a_negative_priority() -> None:
    chain = Chain("ip", "fw", "pre", hook="prerouting", priority=-150, type="filter", policy="drop")
    assert decode_chain(as_received(encode_chain(chain))) == chain


def test_set_round_trips_with_flags_and_timeout() -> None:
    nft_set = Set("inet", "fw", "bl", key_type="ipv4_addr", flags={"timeout", "interval"}, timeout=90)
    assert decode_set(as_received(encode_set(nft_set, 7))) == nft_set


def test_rule_round_trips_every_modelled_expression() -> None:
    expressions = (
        *ip_saddr_in("bl", invert=True), *tcp_dport(22), Meta("mark"), Bitwise(b"\xff\0\0\0", b"\0\0\0\0"), Ct("state"),
        Counter(), Log(prefix="x", group=2, snaplen=64, qthreshold=4, level=4), Queue(num=3, total=2, bypass=True), jump("other"), ACCEPT,
    )
    rule = Rule("inet", "fw", "in", expressions, comment="ssh")
    assert decode_rule(as_received(encode_rule(rule))) == rule


def test_ip_family_rules_carry_no_nfproto_dependency() -> None:
    rule = Rule("ip", "fw", "in", (*ip_saddr_in("bl"), DROP))
    decoded = decode_rule(as_received(encode_rule(rule)))
    assert decoded.expressions == (Payload("network", 12, 4), Lookup("bl"), DROP)


def test_unknown_expressions_decode_as_raw() -> None:
    rule = Rule("ip", "fw", "in", (RawExpression("fancy", b"\x08\x00\x01\x00\x00\x00\x00\x01"), DROP))
    decoded = decode_rule(as_received(encode_rule(rule)))
    assert decoded.expressions[0] == RawExpression("fancy", b"\x08\x00\x01\x00\x00\x00\x00\x01")


def test_interval_elements_become_start_and_end_keys_and_fold_back() -> None:
    nft_set = Set("ip", "fw", "nets", flags={"interval"})
    msg = encode_elements(nft_set, [Element("10.0.0.0", key_end="10.0.0.255"), "192.168.1.1", Element("255.255.255.0", key_end="255.255.255.255")])
    elements = decode_elements(as_received(msg.with_header(type=msg.type)), "ipv4_addr", interval=True)
    assert elements == [Element("10.0.0.0", key_end="10.0.0.255"), Element("192.168.1.1"), Element("255.255.255.0", key_end="255.255.255.255")]


def test_ranges_in_a_plain_set_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        encode_elements(Set("ip", "fw", "s"), [Element("10.0.0.0", key_end="10.0.0.9")])


def test_batch_begin_carries_the_generation_id() -> None:
    msg = batch_begin(genid=0x01020304)
    assert parse_nfgenmsg(msg.payload).res_id == 10
    assert bytes(msg.payload)[4:] == b"\x08\x00\x01\x00\x01\x02\x03\x04"


def test_extack_offsets_name_the_expression() -> None:
    rule = encode_rule(Rule("ip", "fw", "in", (*tcp_dport(22), *ip_saddr_in("bl"), DROP)))
    payload = bytes(rule.payload)
    lookup_at = payload.index(b"lookup")
    assert describe_offset(rule, 16 + lookup_at) == "expression #5 (lookup)"  # meta, cmp, payload, cmp, payload, lookup


def test_malformed_messages_raise_decode_errors() -> None:
    with pytest.raises(DecodeError):
        decode_table(as_received(Message(10 << 8, 0, payload=b"\x01\x00")))
    with pytest.raises(DecodeError):
        decode_table(as_received(Message(10 << 8, 0, payload=b"\x01\x00\x00\x00" + b"\x40\x00\x01\x00abc")))
    with pytest.raises(DecodeError):
        decode_chain(as_received(encode_table(Table("ip", "t"))))


def test_bad_values_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="hook"):
        encode_chain(Chain("ip", "t", "c", hook="sideways"))
    with pytest.raises(ValueError, match="key type"):
        encode_set(Set("ip", "t", "s", key_type="colour"), 1)
    with pytest.raises(ValueError, match="verdict"):
        encode_rule(Rule("ip", "t", "c", (DROP.__class__("explode"),)))
