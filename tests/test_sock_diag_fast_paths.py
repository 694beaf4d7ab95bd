"""sock_diag's dump fast path on both cores, its addresses against ss and
inet_ntop, and what the command imports.

- ``decode_inet_chunk`` and ``json_texts`` have compiled twins
  (aionlmmap/_speedups_sockdiag.pxi): both are fed real dump chunks and
  generated or corrupted ones and must give the same sockets, texts,
  counts and exceptions.
- IPv6 addresses read as inet_ntop(3) writes them, which is what ss prints:
  a dual-stack listener's IPv4 peers are ``::ffff:a.b.c.d``.
- ``import aionlmmap.cli``, ``aionlmmap --help`` and ``aionlmmap dump
  sockets`` load only what they use (asyncio, attrs, ctypes.util, the other
  families... stay out where not needed): checked with ``-X importtime``
  against a bare interpreter's list, so the test asserts behaviour, not time.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aionlmmap.families import sock_diag
from aionlmmap.families.sock_diag import codec, objects
from aionlmmap.families.sock_diag import constants as c
from aionlmmap.families.sock_diag.objects import InetSocket
from tests.conftest import compiled_core, run
from tests.test_sock_diag import _split_endpoint, _wild, holding_sockets, our_rows, socket_set, ss_rows

ROOT = Path(__file__).resolve().parent.parent


def outcome(function: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", function(*args))
    except Exception as exc:  # noqa: BLE001  # any exception is compared
        return ("raised", type(exc), str(exc))


def decoded_by(function: Callable[..., Any], chunk: bytes, end: int, protocol: int = c.IPPROTO_TCP) -> tuple[Any, ...]:
    """What one decoder makes of a chunk: its outcome, the malformed count
    and the address cache it leaves."""
    counts = codec.DecodeCounts()
    text = codec.AddressText()
    result = outcome(function, bytearray(chunk), end, protocol, counts, text)
    return result, counts.malformed, counts.unknown_attributes, text.v4, text.v6


# --- dual-stack addresses (ground truth: ss and inet_ntop) ------------------------------

_DUAL_STACK = r"""
import socket, sys
listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("::", 7070)); listener.listen(16)
keep = [listener]
for host in ("127.0.0.1", "10.77.0.1", "::1", "127.0.0.1"):
    client = socket.create_connection((host, 7070)); keep.append(client)
    keep.append(listener.accept()[0])
import time; time.sleep(0.2)
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def dual_stack(netns: str) -> Iterator[None]:
    run("ip", "-n", netns, "addr", "replace", "10.77.0.1/24", "dev", "lo")  # socket_set may have added it
    with holding_sockets(netns, _DUAL_STACK, failure="the dual-stack socket maker failed"):
        yield


async def test_a_dual_stack_listeners_ipv4_peers_read_as_ss_prints_them(netns: str) -> None:
    with dual_stack(netns):
        async with sock_diag.open(netns=netns) as sd:
            ours = [sock.to_json() async for sock in sd.inet("tcp")]
        tool = ss_rows(netns, "-t")
    tool = +type(tool)({row: count for row, count in tool.items() if row[0] == "tcp"})
    assert our_rows(ours) == tool
    mapped = {item["local_address"] for item in ours if item["family"] == "inet6"}
    assert {"::ffff:127.0.0.1", "::ffff:10.77.0.1"} <= mapped


_V6_PREFIXES = st.sampled_from([b"\0" * 10 + b"\xff\xff", b"\0" * 12, b"\0" * 8 + b"\xff\xff\0\0", b"\xfe\x80" + b"\0" * 10, b"\x20\x01\x0d\xb8" + b"\0" * 8])
_V6_ADDRESSES = st.one_of(st.binary(min_size=16, max_size=16), st.tuples(_V6_PREFIXES, st.binary(min_size=4, max_size=4)).map(b"".join),
                          st.tuples(_V6_PREFIXES, st.sampled_from([b"\0\0\0\0", b"\0\0\0\x01", b"\0\x01\0\0", b"\x7f\0\0\x01"])).map(b"".join))  # fmt: skip


@given(_V6_ADDRESSES)
def test_ipv6_text_is_inet_ntop(raw: bytes) -> None:
    expected = socket.inet_ntop(socket.AF_INET6, raw)
    assert codec._pure_ipv6_text(raw) == expected
    assert codec.AddressText()(c.AF_INET6, raw) == expected


# --- decode_inet_chunk: compiled twin against the reference ---------------------------------


_SOCKDIAG_PROTOCOL = 4  # NETLINK_SOCK_DIAG


def _real_chunks(netns: str) -> list[tuple[int, bytes]]:
    """Every datagram of TCP and UDP dumps (both families) in ``netns``, and
    of a TCPDIAG_GETSOCK dump (both families interleaved)."""
    script = r"""
import socket, struct, sys, json
out = []
for protocol, family in ((6, 2), (6, 10), (17, 2), (17, 10), (6, 0)):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
    s.bind((0, 0))
    if family:
        payload = struct.pack("=BBBBI", family, protocol, 0, 0, 0xFFFFFFFF) + bytes(40) + b"\xff" * 8
    else:  # struct inet_diag_req: family, src_len, dst_len, ext, sockid, states, dbs
        payload = bytes(4) + bytes(40) + b"\xff" * 8 + struct.pack("=II", 0xFFFFFFFF, 0)
    s.send(struct.pack("=IHHII", 16 + len(payload), 20 if family else 18, 0x301, 1, 0) + payload)
    done = False
    while not done:
        data = s.recv(65536)
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            done = done or kind in (2, 3)
            offset += (length + 3) & ~3
        out.append([protocol, data.hex()])
    s.close()
print(json.dumps(out))
"""
    result = run("ip", "netns", "exec", netns, sys.executable, "-c", script)
    return [(protocol, bytes.fromhex(text)) for protocol, text in json.loads(result.stdout)]


def test_decode_inet_chunk_twins_agree_on_real_dumps_and_their_corruptions(netns: str) -> None:
    compiled = compiled_core()
    with socket_set(netns, 5, 40), dual_stack(netns):
        chunks = _real_chunks(netns)
    assert sum(len(codec._pure_decode_inet_chunk(chunk, len(chunk), protocol, codec.DecodeCounts(), codec.AddressText())) for protocol, chunk in chunks) > 40
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for protocol, chunk in chunks:
        cases = [(chunk, len(chunk)), (chunk, len(chunk) - rng.randrange(1, 100)), (chunk + bytes(8), len(chunk)), (chunk, len(chunk) + 4)]
        for _ in range(30):
            corrupt = bytearray(chunk)
            for _ in range(rng.randrange(1, 4)):
                spot = rng.randrange(len(corrupt))
                corrupt[spot] = rng.randrange(256)
            cases.append((bytes(corrupt), rng.choice([len(corrupt), rng.randrange(len(corrupt) + 1)])))
        for data, end in cases:
            end = max(end, 0)
            reference = decoded_by(codec._pure_decode_inet_chunk, data, end, protocol)
            assert decoded_by(compiled.decode_inet_chunk, data, end, protocol) == reference, f"seed {seed}, chunk {data.hex()}, end {end}"


def _message(rng: random.Random) -> bytes:
    kind = rng.choice([c.SOCK_DIAG_BY_FAMILY] * 4 + [c.TCPDIAG_GETSOCK] * 2 + [3, 2, 99])
    family = rng.choice([c.AF_INET, c.AF_INET6, c.AF_INET6, 1, 0])
    address = lambda: rng.choice([b"\x7f\0\0\x01" + bytes(12), b"\0" * 10 + b"\xff\xff\x0a\0\0\x01", rng.randbytes(16), bytes(16)])  # noqa: E731
    body = struct.pack("=BBBBHH16s16sIQIIIII", family, rng.randrange(13), rng.randrange(5), rng.randrange(3), rng.randrange(65536), rng.randrange(65536),
                       address(), address(), rng.randrange(5), rng.getrandbits(64), rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32),
                       rng.getrandbits(32), rng.getrandbits(32))  # fmt: skip
    body = body[: rng.choice([len(body)] * 5 + [rng.randrange(len(body))])] + rng.randbytes(rng.choice([0, 0, 8, 36, 3]))
    length = 16 + len(body)
    if rng.random() < 0.05:
        length = rng.randrange(0, length + 40)
    return struct.pack("=IHHII", length, kind, 2, 1, 0) + body + bytes((-len(body)) % 4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(1, 12), st.sampled_from([c.IPPROTO_TCP, c.IPPROTO_UDP]))
def test_decode_inet_chunk_twins_agree_on_generated_chunks(rng: random.Random, count: int, protocol: int) -> None:
    compiled = compiled_core()
    # runs of identical messages, as a dump's chunk is, and mixtures
    messages = [_message(rng) for _ in range(rng.randrange(1, 4))]
    data = b"".join(rng.choice(messages) for _ in range(count))
    end = rng.choice([len(data), len(data), rng.randrange(len(data) + 1)])
    assert decoded_by(compiled.decode_inet_chunk, data, end, protocol) == decoded_by(codec._pure_decode_inet_chunk, data, end, protocol)


def test_the_dump_path_uses_the_compiled_twins_when_the_core_is() -> None:
    from aionlmmap import _extensions

    if _extensions.speedups is None:
        assert codec.decode_inet_chunk is codec._pure_decode_inet_chunk and objects.json_texts is objects._pure_json_texts
        assert codec.inet_chunk_json is codec._pure_inet_chunk_json
    else:
        assert codec.decode_inet_chunk is compiled_core().decode_inet_chunk and objects.json_texts is compiled_core().json_texts
        assert codec.inet_chunk_json is compiled_core().inet_chunk_json


# --- inet_chunk_json: what `dump sockets --json` writes per chunk, both cores ---------------


def _joined_texts(buffer: Any, end: int, protocol: int, counts: codec.DecodeCounts, text: codec.AddressText) -> tuple[bytes, bytes]:
    """inet_chunk_json's definition: each family's decoded sockets' JSON texts, joined."""
    socks = codec._pure_decode_inet_chunk(buffer, end, protocol, counts, text)
    return tuple(",".join(objects._pure_json_texts([sock for sock in socks if sock.family == family])).encode() for family in (c.AF_INET, c.AF_INET6))  # type: ignore[return-value]


def _chunk_json_agree(data: bytes, end: int, protocol: int, context: str) -> None:
    definition = decoded_by(_joined_texts, data, end, protocol)
    assert decoded_by(codec._pure_inet_chunk_json, data, end, protocol) == definition, context
    assert decoded_by(compiled_core().inet_chunk_json, data, end, protocol) == definition, context


def test_inet_chunk_json_twins_write_the_joined_texts_of_real_dumps_and_their_corruptions(netns: str) -> None:
    with socket_set(netns, 6, 40), dual_stack(netns):
        chunks = _real_chunks(netns)
    written = b",".join(b",".join(codec._pure_inet_chunk_json(chunk, len(chunk), protocol, codec.DecodeCounts(), codec.AddressText())) for protocol, chunk in chunks)
    assert written.count(b'"netid"') > 40  # (the generated chunks below add ifindex and timers)
    compat = [codec._pure_inet_chunk_json(chunk, len(chunk), protocol, codec.DecodeCounts(), codec.AddressText()) for protocol, chunk in chunks
              if struct.unpack_from("=H", chunk, 4)[0] == c.TCPDIAG_GETSOCK]  # fmt: skip
    assert any(v4 and v6 for v4, v6 in compat)  # a TCPDIAG_GETSOCK datagram holds both families
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for protocol, chunk in chunks:
        cases = [(chunk, len(chunk)), (chunk, len(chunk) - rng.randrange(1, 100)), (chunk + bytes(8), len(chunk)), (chunk, len(chunk) + 4), (chunk, -1)]
        for _ in range(30):
            corrupt = bytearray(chunk)
            for _ in range(rng.randrange(1, 4)):
                spot = rng.randrange(len(corrupt))
                corrupt[spot] = rng.randrange(256)
            cases.append((bytes(corrupt), rng.choice([len(corrupt), rng.randrange(len(corrupt) + 1)])))
        for data, end in cases:
            _chunk_json_agree(data, end, protocol, f"seed {seed}, chunk {data.hex()}, end {end}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(1, 12), st.sampled_from([c.IPPROTO_TCP, c.IPPROTO_UDP, 33]))
def test_inet_chunk_json_twins_write_the_joined_texts_of_generated_chunks(rng: random.Random, count: int, protocol: int) -> None:
    # ifindex, timers, unknown states and families, truncated messages
    messages = [_message(rng) for _ in range(rng.randrange(1, 4))]
    data = b"".join(rng.choice(messages) for _ in range(count))
    end = rng.choice([len(data), len(data), rng.randrange(len(data) + 1)])
    _chunk_json_agree(data, end, protocol, f"chunk {data.hex()}, end {end}")


def _ordered_ss_rows(netns: str, netids: tuple[str, ...], *args: str) -> list[tuple[Any, ...]]:
    """``ss -tuanH ARGS`` lines of ``netids`` in ss's order, as our_rows reads an object."""
    rows = []
    for line in run("ip", "netns", "exec", netns, "ss", "-tuanH", *args).stdout.splitlines():
        fields = line.split()
        if fields[1].isdigit():
            fields.insert(1, "ESTAB")  # `ss state X` of one state leaves the State column out
        (local, lport), (peer, pport) = _split_endpoint(fields[4]), _split_endpoint(fields[5])
        if fields[0] in netids:
            rows.append((fields[0], fields[1], int(fields[2]), int(fields[3]), _wild(local), lport, _wild(peer), pport))
    return rows


@pytest.mark.parametrize("seed", [17, 4242])
def test_dump_sockets_json_prints_socket_chunks_texts_in_ss_order(netns: str, seed: int) -> None:
    # TCP of both families is one TCPDIAG_GETSOCK walk (IPv4 and IPv6
    # interleaved, held apart by inet_chunk_json); the command still prints
    # what the per-family SOCK_DIAG_BY_FAMILY dumps give, byte for byte and
    # in their order, which is ss's: UDP, then TCP; IPv4, then IPv6.
    from aionlmmap.families.sock_diag import oneshot

    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with socket_set(netns, seed, 30), dual_stack(netns):
        for flags, netids, ss_args in ((["-t"], ("tcp",), []), (["-t", "-u"], ("udp", "tcp"), []), (["-t", "state", "established"], ("tcp",), ["state", "established"])):
            printed = run("ip", "netns", "exec", netns, sys.executable, "-m", "aionlmmap", "dump", "sockets", "--json", *flags).stdout
            states = flags[flags.index("state") + 1] if "state" in flags else None
            texts = [compact(sock.to_json()) for chunk in oneshot.socket_chunks(tcp=True, udp="-u" in flags, states=states, netns=netns) for sock in chunk]
            assert printed == "[" + ",".join(texts) + "]\n", flags
            items = json.loads(printed)
            assert {item["family"] for item in items} == {"inet", "inet6"}
            assert [next(iter(our_rows([item]))) for item in items] == _ordered_ss_rows(netns, netids, *ss_args), flags


async def test_inet_tcp_of_both_families_lists_what_the_per_family_dumps_list_in_their_order(netns: str) -> None:
    # sd.inet("tcp") reads both families with one TCPDIAG_GETSOCK walk and
    # holds the IPv6 sockets back: the same sockets, IPv4 then IPv6, with
    # states and bytecode filters applied by the kernel as before.
    from aionlmmap.families.sock_diag.bytecode import sport

    with socket_set(netns, 23, 30), dual_stack(netns):
        async with sock_diag.open(netns=netns) as sd:
            for options in ({}, {"states": "established"}, {"filter": ~sport(7070)}, {"states": "listening", "filter": ~sport(7070)}):
                both = [sock async for sock in sd.inet("tcp", **options)]
                apart = [sock async for sock in sd.inet("tcp", 4, **options)] + [sock async for sock in sd.inet("tcp", 6, **options)]
                assert both == apart, options
                assert {sock.family for sock in both} == {c.AF_INET, c.AF_INET6}, options
            assert not [sock async for sock in sd.inet("tcp", filter=sport(7070) & ~sport(7070))]
            assert sd.counts.malformed == 0


class _OddTexts(codec.AddressText):
    """An address cache whose texts the compiled writer cannot take as they
    are (not a str, not UTF-8 encodable): it hands the chunk to the reference."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def __call__(self, family: int, raw: bytes) -> Any:
        return self.value


@pytest.mark.parametrize("value", [None, 7, "\udc80", "ok"])
def test_inet_chunk_json_twin_hands_odd_address_texts_to_the_reference(value: Any) -> None:
    chunk = b"".join(_message(random.Random(seed)) for seed in (3, 3, 5))
    results = []
    for function in (codec._pure_inet_chunk_json, compiled_core().inet_chunk_json):
        counts = codec.DecodeCounts()
        results.append((outcome(function, chunk, len(chunk), c.IPPROTO_TCP, counts, _OddTexts(value)), counts.malformed))
    assert results[0] == results[1]


# --- json_texts: compiled twin against the reference ----------------------------------------

_INTS = st.one_of(st.integers(0, 70000), st.integers(-(2**70), 2**70), st.booleans())
_ADDRESS_TEXTS = st.one_of(st.sampled_from(["127.0.0.1", "::ffff:10.0.0.1", "fe80::1", "0.0.0.0"]), st.text(max_size=60), st.none(), st.integers(0, 9))
_SOCKETS = st.builds(
    lambda values, extensions: InetSocket(*values, extensions=extensions),
    st.tuples(st.sampled_from([c.AF_INET, c.AF_INET6, 1]), st.sampled_from([c.IPPROTO_TCP, c.IPPROTO_UDP, 33]), st.integers(0, 14), _ADDRESS_TEXTS, _INTS,
              _ADDRESS_TEXTS, _INTS, _INTS, _INTS, _INTS, _INTS, st.sampled_from([0, 0, 0, 3]), _INTS, st.sampled_from([0, 0, 0, 2]), st.integers(0, 3), _INTS),
    st.sampled_from([None, None, None, {"mark": 7}]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_SOCKETS, max_size=8))
def test_json_texts_twins_agree(socks: list[InetSocket]) -> None:
    assert outcome(compiled_core().json_texts, socks) == outcome(objects._pure_json_texts, socks)


def test_json_texts_twin_writes_what_to_json_serializes() -> None:
    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    socks = [InetSocket(c.AF_INET6, c.IPPROTO_TCP, 10, "::ffff:127.0.0.1", 7070, "::", 0, 0, 128, 4242, 0, cookie=2**63 + 5),
             InetSocket(c.AF_INET, c.IPPROTO_UDP, 7, "0.0.0.0", 53, "0.0.0.0", 0, 3, 0, 17, 1000, cookie=9)]  # fmt: skip
    assert compiled_core().json_texts(socks) == [compact(sock.to_json()) for sock in socks]


# --- what the command imports ---------------------------------------------------------------

#: never needed by the commands checked below (importlib.abc brings
#: importlib.resources, and with it tempfile, shutil, pathlib, random)
_NEVER = {"ctypes.util", "tempfile", "uvloop", "aiohttp", "prometheus_client", "examples", "pyroute2",
          "importlib.abc", "importlib.resources", "pathlib", "urllib.parse"}  # fmt: skip
#: families a `dump sockets` has no use for
_OTHER_FAMILIES = ("aionlmmap.families.rtnl", "aionlmmap.families.conntrack", "aionlmmap.families.genl", "aionlmmap.families.nf")


def imported_by(*argv: str, netns: str | None = None) -> tuple[set[str], str]:
    """Modules ``python -S -X importtime argv...`` imports beyond what a
    bare interpreter does, and its stdout.

    ``-S`` (no site), with site-packages on PYTHONPATH instead: the dev
    venv's editable-install finder (a .pth file site runs) imports
    importlib.abc, pathlib, urllib and ipaddress at every start, which
    hid those imports from the comparison while an installed copy paid
    for them (~15 ms of `aionlmmap dump sockets`)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *(path for path in sys.path if path.endswith("site-packages"))]))
    prefix = ["ip", "netns", "exec", netns] if netns else []

    def modules(*args: str) -> tuple[set[str], str]:
        result = subprocess.run([*prefix, sys.executable, "-S", "-X", "importtime", *args], capture_output=True, text=True, env=env, timeout=60, check=False)
        names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:") and "|" in line}
        assert result.returncode == 0, result.stderr[-2000:]
        return names, result.stdout

    bare, _ = modules("-c", "pass")
    names, out = modules(*argv)
    return names - bare, out


@pytest.mark.parametrize("argv", [("-c", "import aionlmmap.cli"), ("-m", "aionlmmap", "--help"), ("-c", "import aionlmmap")])
def test_help_and_the_bare_package_import_no_ring_asyncio_attrs_or_ctypes(argv: tuple[str, ...]) -> None:
    names, _ = imported_by(*argv)
    heavy = {"asyncio", "attr", "attrs", "ctypes", "ssl", "subprocess", "shutil", "aionlmmap.ring", "aionlmmap._sys", "aionlmmap.frames", "aionlmmap.backends"}
    assert not names & (heavy | _NEVER), sorted(names & (heavy | _NEVER))
    assert not [name for name in names if name.startswith("aionlmmap.families.")]


def test_dump_sockets_runs_without_asyncio_attrs_or_other_families(netns: str) -> None:
    # A one-shot dump reads like ss (sock_diag.oneshot): no event loop, no
    # ring, and a TCP/UDP dump no attrs either (UnixSocket's module is not
    # loaded); the output is still ss's sockets.
    with socket_set(netns, 8, 10):
        names, out = imported_by("-m", "aionlmmap", "dump", "sockets", "-t", "-u", "--json", netns=netns)
        expected = +type(ss_rows(netns))({row: count for row, count in ss_rows(netns).items() if row[0] in ("tcp", "udp")})
    assert our_rows(json.loads(out)) == expected
    heavy = {"asyncio", "attr", "attrs", "ssl", "subprocess", "shutil", "ipaddress", "aionlmmap.ring", "aionlmmap.protocol", "aionlmmap.families.sock_diag.client"}
    # nor what ss's start-up has no counterpart of: argparse and the
    # command's parser of every kind (aionlmmap._entry reads the line), json
    # (the texts are written by inet_chunk_json), typing (annotations only),
    # socket.py with its IntEnums and threading (_socket makes the socket)
    lean = {"argparse", "aionlmmap.cli", "aionlmmap._cli_families", "json", "typing", "socket", "threading", "enum", "re", "aionlmmap._sys"}
    assert not names & (heavy | lean | _NEVER), sorted(names & (heavy | lean | _NEVER))
    assert not [name for name in names if name.startswith(_OTHER_FAMILIES)]
    assert "aionlmmap.families.sock_diag.oneshot" in names  # the test sees the real path


# --- the command line read without argparse (aionlmmap._entry) --------------------------------

_WORDS = st.sampled_from(["-t", "--tcp", "-u", "--udp", "-x", "--unix", "--json", "-4", "-6", "--netns", "blue", "--netns=blue", "--netns=", "state",
                          "listening", "established", "", "-", "--", "-h", "--help", "-tu", "--js", "--tc", "-d", "-s", "--table", "all", "-5", "-xt"])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_WORDS, max_size=7))
def test_parse_argv_reads_what_argparse_reads_or_leaves_it_to_argparse(words: list[str]) -> None:
    from aionlmmap import cli
    from aionlmmap.families.sock_diag.cli import parse_argv

    ours = parse_argv(list(words))
    try:
        theirs: Any = cli.build_parser().parse_args(["dump", "sockets", *words])
    except SystemExit:
        theirs = None
    if ours is None:
        return  # argparse answers it (a usage error, help, or what it alone reads)
    assert theirs is not None, words
    for name in ("tcp", "udp", "unix", "json", "family", "netns", "filter"):
        assert getattr(ours, name) == getattr(theirs, name), (words, name)


def test_parse_argv_takes_the_plain_spellings() -> None:
    from aionlmmap.families.sock_diag.cli import parse_argv

    args = parse_argv(["--json", "-t", "state", "listening", "-6", "--netns", "blue", "-x", "--udp"])
    assert args is not None and (args.json, args.tcp, args.udp, args.unix, args.family, args.netns, args.filter) == (True, True, True, True, 6, "blue", ["state", "listening"])
    assert [parse_argv(words) for words in (["-h"], ["-tu"], ["-4", "-6"], ["--netns"], ["--js"])] == [None] * 5


def test_the_command_answers_the_lines_it_leaves_to_argparse_as_before(netns: str) -> None:
    # help, a usage error and the combined short flags still come from argparse
    assert "state S" in run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "-h").stdout
    result = run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "-4", "-6", check=False)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    with socket_set(netns, 9, 12):  # no TIME-WAIT timers running down between the two dumps
        combined = run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "-tu", "--json", "--netns", netns).stdout
        assert combined == run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "-t", "-u", "--json", "--netns", netns).stdout
        assert {item["netid"] for item in json.loads(combined)} == {"tcp", "udp"}
    result = run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "state", "nonsense", check=False)
    assert result.returncode == 1 and result.stderr.startswith("aionlmmap: ") and "unknown state" in result.stderr


def test_inet_socket_fields_are_its_typed_declaration() -> None:
    # InetSocket is built by collections.namedtuple at run time (typing's
    # NamedTuple cost ~2 ms of the command's start-up); type checkers read
    # the NamedTuple declaration beside it: the same names and defaults.
    import ast

    tree = ast.parse(Path(objects.__file__).read_text())
    typed = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "_InetFields")
    fields = [stmt for stmt in typed.body if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)]
    assert tuple(stmt.target.id for stmt in fields) == InetSocket._fields  # type: ignore[union-attr]
    assert {stmt.target.id: ast.literal_eval(stmt.value) for stmt in fields if stmt.value is not None} == InetSocket._field_defaults  # type: ignore[union-attr]
    sock = InetSocket(c.AF_INET, c.IPPROTO_TCP, 1, "127.0.0.1", 1, "127.0.0.1", 2, 0, 0, 5, 0)
    assert not hasattr(sock, "__dict__") and repr(sock).startswith("InetSocket(family=2,") and sock._replace(state=10).state_name == "LISTEN"


def test_the_package_keeps_its_names_and_submodules_after_a_bare_import() -> None:
    script = (
        "import aionlmmap, sys\n"
        "assert 'aionlmmap.ring' not in sys.modules\n"
        "from aionlmmap import Ring, open, Message, RingConfig, iter_messages, AttributeBuilder, DEFAULT_RX\n"
        "assert aionlmmap.open is open and aionlmmap.Ring is Ring and aionlmmap.ring.Ring is Ring\n"
        "assert set(aionlmmap.__all__) <= set(dir(aionlmmap))\n"
        "import aionlmmap._sys as s; assert callable(s.libc.setns) and s.kernel_release()\n"
        "try:\n    aionlmmap.nonexistent\nexcept AttributeError as exc:\n    assert 'nonexistent' in str(exc)\nelse:\n    raise SystemExit('no AttributeError')\n"
        "print('ok')\n"
    )
    result = run(sys.executable, "-c", script)
    assert result.stdout.strip() == "ok"


# --- the one-shot dump (no event loop) against the ring client ------------------------------


async def test_the_oneshot_dump_lists_what_the_ring_client_lists(netns: str) -> None:
    from aionlmmap.families.sock_diag import oneshot

    compact = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
    with socket_set(netns, 13, 30), dual_stack(netns):
        async with sock_diag.open(netns=netns) as sd:
            ring_listed = sorted([compact(sock.to_json()) async for sock in sd.sockets(tcp=True, udp=True, unix=True)])
        listed = sorted(compact(sock.to_json()) for chunk in oneshot.socket_chunks(tcp=True, udp=True, unix=True, netns=netns) for sock in chunk)
        listening = [sock for chunk in oneshot.socket_chunks(tcp=True, states="listening", family=6, netns=netns) for sock in chunk]
    assert listed == ring_listed and len(listed) > 30
    assert listening and all(sock.state_name == "LISTEN" and sock.family == c.AF_INET6 for sock in listening)


def test_the_oneshot_dump_raises_the_kernels_error() -> None:
    from aionlmmap import NetlinkError
    from aionlmmap._sys import open_socket
    from aionlmmap.constants import NETLINK_SOCK_DIAG
    from aionlmmap.families.sock_diag import oneshot

    sock = open_socket(NETLINK_SOCK_DIAG)
    sock.setblocking(True)
    try:
        # __sock_diag_cmd refuses a family past AF_MAX with EINVAL
        with pytest.raises(NetlinkError) as caught:
            list(oneshot.dump_chunks(sock, codec.inet_request(200, c.IPPROTO_TCP), bytearray(1 << 16)))
        assert caught.value.errno == 22
    finally:
        sock.close()


# --- a kernel without TCPDIAG_GETSOCK (inet_diag's compat handler) ----------------------------


@pytest.fixture
def tcpdiag_refused(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """tcp_request_every_family replaced by a message type sock_diag_rcv_msg
    refuses (its default: EINVAL), as a kernel refuses TCPDIAG_GETSOCK where
    inet_diag registered no compat handler (EOPNOTSUPP); counts the calls."""
    from aionlmmap import Message

    calls: list[int] = []

    def refused(states: int = c.ALL_STATES, bytecode: bytes | None = None) -> Message:
        calls.append(states)
        return Message(22, 0x301)  # NLM_F_REQUEST | NLM_F_DUMP; no such sock_diag command

    monkeypatch.setattr(codec, "tcp_request_every_family", refused)
    return calls


def test_dump_sockets_json_falls_back_to_a_dump_per_family_where_tcpdiag_is_refused(netns: str, tcpdiag_refused: list[int]) -> None:
    from aionlmmap.families.sock_diag import oneshot

    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with socket_set(netns, 29, 30), dual_stack(netns):
        for options in ({"tcp": True}, {"tcp": True, "udp": True}, {"tcp": True, "states": "listening"}):
            printed = b",".join(piece for piece in oneshot.json_chunks(netns=netns, **options) if piece)  # type: ignore[arg-type]
            texts = [compact(sock.to_json()) for chunk in oneshot.socket_chunks(netns=netns, **options) for sock in chunk]  # type: ignore[arg-type]
            assert printed.decode() == ",".join(texts) and len(texts) > 10, options
    assert len(tcpdiag_refused) == 3


async def test_inet_tcp_of_both_families_falls_back_to_a_dump_per_family_where_tcpdiag_is_refused(netns: str, tcpdiag_refused: list[int]) -> None:
    with socket_set(netns, 31, 30), dual_stack(netns):
        async with sock_diag.open(netns=netns) as sd:
            both = [sock async for sock in sd.inet("tcp", states="established")]
            apart = [sock async for sock in sd.inet("tcp", 4, states="established")] + [sock async for sock in sd.inet("tcp", 6, states="established")]
            assert both == apart and {sock.family for sock in both} == {c.AF_INET, c.AF_INET6}
            # the ring stays usable: the refusal ended its dump
            assert [sock async for sock in sd.inet("udp", 4)] is not None
    assert len(tcpdiag_refused) == 1
