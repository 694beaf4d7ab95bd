"""sock_diag against ss: seeded random socket sets inside a namespace
(TCP listeners and connections with unread data, UDP bound and connected,
IPv4 and IPv6, unix stream/dgram/seqpacket with paths, abstract names and
pairs), compared with ``ss -tanuxH``'s text value by value; state filters,
the bytecode filter against its own evaluation, extensions, SOCK_DESTROY."""

from __future__ import annotations

import contextlib
import json
import random
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from aionlmmap import DecodeError
from aionlmmap.families import sock_diag
from aionlmmap.families.sock_diag import bytecode as bc
from aionlmmap.families.sock_diag import codec
from aionlmmap.families.sock_diag import constants as c
from tests.conftest import ip, run

pytestmark = pytest.mark.integration

_MAKER = r"""
import json, os, random, socket, sys, tempfile
seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
keep = []
# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 in a
# new namespace): a port chosen here can then never be one connect() took
# for a client already, which bind() would refuse with EADDRINUSE.
ports = iter(rng.sample(range(2000, 32768), count * 4))
tmp = tempfile.mkdtemp(prefix="aionlmmap-ss-")
hosts = {4: ["127.0.0.1", "0.0.0.0", "10.77.0.1"], 6: ["::1", "::", "fd77::1"]}
for index in range(count):
    kind = rng.choice(["tcp", "tcp", "udp", "unix"])
    if kind == "tcp":
        version = rng.choice((4, 6))
        af = socket.AF_INET if version == 4 else socket.AF_INET6
        host = rng.choice(hosts[version])
        listener = socket.socket(af, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = next(ports)
        listener.bind((host, port)); listener.listen(rng.choice((5, 16, 128)))
        keep.append(listener)
        target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        for _ in range(rng.randrange(3)):
            client = socket.create_connection((target, port))
            payload = b"x" * rng.randrange(0, 3000)
            if payload:
                client.sendall(payload)
            keep.append(client)
            if rng.random() < 0.7:
                keep.append(listener.accept()[0])  # else it stays in the accept queue
    elif kind == "udp":
        version = rng.choice((4, 6))
        af = socket.AF_INET if version == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_DGRAM)
        sock.bind((rng.choice(hosts[version]), next(ports)))
        if rng.random() < 0.4:
            sock.connect(("127.0.0.1" if version == 4 else "::1", next(ports)))
        keep.append(sock)
    else:
        sock_type = rng.choice([socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET])
        shape = rng.choice(["path", "abstract", "pair"])
        if shape == "pair":
            keep += socket.socketpair(socket.AF_UNIX, sock_type)
        else:
            sock = socket.socket(socket.AF_UNIX, sock_type)
            name = os.path.join(tmp, f"s{index}") if shape == "path" else f"\0aionlmmap-{seed}-{index}"
            sock.bind(name)
            if sock_type != socket.SOCK_DGRAM:
                sock.listen(4)
                if rng.random() < 0.5:
                    client = socket.socket(socket.AF_UNIX, sock_type); client.connect(name); keep.append(client)
                    if rng.random() < 0.5:
                        keep.append(sock.accept()[0])
            keep.append(sock)
# The server side of a loopback handshake is made when the final ACK is
# processed (tcp_check_req), which a loaded machine may do a moment after
# connect() returned: let every accept queue settle before anyone looks.
import time
time.sleep(0.3)
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def holding_sockets(netns: str, script: str, *args: str, failure: str) -> Iterator[None]:
    """Run ``script`` (a socket maker that prints "ready", then holds its
    sockets until stdin closes) in ``netns`` for the ``with`` block."""
    process = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready", failure
        yield
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def socket_set(netns: str, seed: int, count: int) -> Iterator[None]:
    ip(netns, "addr", "add", "10.77.0.1/24", "dev", "lo")
    ip(netns, "addr", "add", "fd77::1/64", "dev", "lo", "nodad")
    with holding_sockets(netns, _MAKER, str(seed), str(count), failure=f"seed {seed}: the socket maker failed"):
        yield


def _split_endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    address = address.strip("[]").split("%", 1)[0]
    return address, 0 if port == "*" else int(port)


def ss_rows(netns: str, *args: str) -> Counter[tuple[Any, ...]]:
    """``ss -tanuxH`` lines as (netid, state, recv_q, send_q, local, lport, peer, pport)."""
    out = run("ip", "netns", "exec", netns, "ss", "-tanuxH", *args).stdout
    rows: Counter[tuple[Any, ...]] = Counter()
    for line in out.splitlines():
        fields = line.split()
        if fields[1].isdigit():
            fields.insert(1, "-")  # `ss state X` of one state leaves the State column out
        netid, state, recv_q, send_q = fields[0], fields[1], int(fields[2]), int(fields[3])
        if netid.startswith("u_"):
            local, lport, peer, pport = fields[4], int(fields[5]), fields[6], int(fields[7])
        else:
            local, lport = _split_endpoint(fields[4])
            peer, pport = _split_endpoint(fields[5])
        rows[(netid, state, recv_q, send_q, _wild(local), lport, _wild(peer), pport)] += 1
    return rows


def _wild(address: str) -> str:
    return "*" if address in ("0.0.0.0", "::", "*") else address


def our_rows(items: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter((i["netid"], i["state"], i["recv_q"], i["send_q"], _wild(i["local_address"]), i["local_port"], _wild(i["peer_address"]), i["peer_port"]) for i in items)


async def dump(netns: str, **options: Any) -> list[dict[str, Any]]:
    async with sock_diag.open(netns=netns) as sd:
        return [sock.to_json() async for sock in sd.sockets(tcp=True, udp=True, unix=True, **options)]


@pytest.mark.parametrize("seed", [3, 1234])
async def test_dump_equals_ss_on_generated_socket_sets(netns: str, seed: int) -> None:
    with socket_set(netns, seed, 40):
        ours = await dump(netns)
        tool = ss_rows(netns)
    assert our_rows(ours) == tool, f"seed {seed}"
    netids = {item["netid"] for item in ours}
    assert {"tcp", "udp"} <= netids and netids & {"u_str", "u_dgr", "u_seq"}


@pytest.mark.parametrize("state", ["listening", "established", "connected", "closed", "synchronized"])
async def test_state_filters_equal_ss(netns: str, state: str) -> None:
    with socket_set(netns, 77, 30):
        ours = await dump(netns, states=state)
        tool = ss_rows(netns, "state", state)
    assert Counter(row[:1] + row[2:] for row in our_rows(ours)) == Counter(row[:1] + row[2:] for row in tool)


def _random_condition(rng: random.Random, ports: list[int], depth: int = 0) -> bc.Condition:
    choice = rng.random()
    if depth < 3 and choice < 0.35:
        left, right = _random_condition(rng, ports, depth + 1), _random_condition(rng, ports, depth + 1)
        return left & right if rng.random() < 0.5 else left | right
    if depth < 3 and choice < 0.45:
        return ~_random_condition(rng, ports, depth + 1)
    leaf = rng.randrange(6)
    if leaf == 0:
        return bc.sport(rng.choice(ports))
    if leaf == 1:
        return bc.dport(rng.choice(ports))
    if leaf == 2:
        low = rng.randrange(1000, 60000)
        return bc.sport_range(low, min(65535, low + rng.randrange(20000)))
    if leaf == 3:
        low = rng.randrange(1000, 60000)
        return bc.dport_range(low, min(65535, low + rng.randrange(20000)))
    prefix = rng.choice(["127.0.0.0/8", "127.0.0.1", "10.77.0.0/16", "::1", "fd77::/16", "0.0.0.0/0", "::/0"])
    port = rng.choice([None, rng.choice(ports)])
    return bc.src(prefix, port) if leaf == 4 else bc.dst(prefix, port)


async def test_bytecode_filters_agree_with_their_own_evaluation(netns: str) -> None:
    seed = 4242
    rng = random.Random(seed)
    with socket_set(netns, seed, 40):
        async with sock_diag.open(netns=netns) as sd:
            everything = [sock async for sock in sd.inet("tcp")] + [sock async for sock in sd.inet("udp")]
            ports = sorted({sock.local_port for sock in everything} | {sock.peer_port for sock in everything} - {0})
            for round_number in range(40):
                condition = _random_condition(rng, ports)
                for protocol in ("tcp", "udp"):
                    kernel = sorted([sock.cookie async for sock in sd.inet(protocol, filter=condition)])
                    local = sorted(sock.cookie for sock in everything if sock.protocol == {"tcp": 6, "udp": 17}[protocol] and condition.matches(sock))
                    assert kernel == local, f"seed {seed} round {round_number}: {condition!r}"


async def test_bytecode_filter_equals_ss_expression(netns: str) -> None:
    with socket_set(netns, 8, 30):
        async with sock_diag.open(netns=netns) as sd:
            listeners = [sock async for sock in sd.inet("tcp", states="listening")]
            port = listeners[0].local_port
            ours = [sock.to_json() async for sock in sd.inet("tcp", filter=bc.sport(port) | bc.dport(port))]
        tool = run("ip", "netns", "exec", netns, "ss", "-tanH", f"( sport = :{port} or dport = :{port} )").stdout.splitlines()
    assert len(ours) == len(tool) >= 1
    assert sorted(item["local_port"] for item in ours) == sorted(_split_endpoint(line.split()[3])[1] for line in tool)


async def test_extensions_tcp_info_memory_cong_mark_cgroup(netns: str) -> None:
    with socket_set(netns, 5, 20):
        async with sock_diag.open(netns=netns) as sd:
            socks = [sock async for sock in sd.inet("tcp", states="established", extensions=["tcp_info", "meminfo", "skmeminfo", "cong"])]
        cong = run("ip", "netns", "exec", netns, "sysctl", "-n", "net.ipv4.tcp_congestion_control").stdout.strip()
    assert socks
    for sock in socks:
        ext = sock.extensions or {}
        assert ext["tcp_info"]["state"] == c.TCP_ESTABLISHED
        assert ext["tcp_info"]["snd_mss"] > 0 and ext["tcp_info"]["rtt"] >= 0
        assert set(ext["meminfo"]) == {"rmem", "wmem", "fmem", "tmem"}
        assert ext["skmeminfo"]["rcvbuf"] > 0
        assert ext["cong"] == cong
        assert "mark" in ext and "cgroup_id" in ext
        json.dumps(sock.to_json())


async def test_sock_destroy_aborts_a_connection(netns: str) -> None:
    script = r"""
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 4711)); l.listen()
c = socket.create_connection(("127.0.0.1", 4711)); a, _ = l.accept()
print("ready", flush=True)
sys.stdin.readline()
try:
    c.recv(1)
    print("no error")
except OSError as exc:
    print(exc.errno)
"""
    process = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        async with sock_diag.open(netns=netns) as sd:
            client = [sock async for sock in sd.inet("tcp", 4, states="established", filter=bc.dport(4711))]
            assert len(client) == 1
            await sd.destroy(client[0])
            assert [sock async for sock in sd.inet("tcp", 4, states="established", filter=bc.dport(4711))] == []
        process.stdin.write("go\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
        assert process.stdout.readline().strip() == "103"  # ECONNABORTED
    finally:
        process.kill()
        process.wait()


def test_malformed_messages_raise_and_unknown_attributes_count() -> None:
    counts = codec.DecodeCounts()
    header = struct.pack("=BBBBHH16s16sIQIIIII", c.AF_INET, 1, 0, 0, 0x5000, 0x0100, b"\x7f\0\0\x01" + bytes(12), b"\x7f\0\0\x02" + bytes(12), 0, 9, 0, 3, 4, 0, 99)
    unknown = struct.pack("=HH", 8, 200) + b"abcd"
    sock = codec.decode_inet(header + unknown, 0, len(header) + 8, 6, counts)
    assert (sock.local_port, sock.peer_port, sock.recv_q, sock.send_q, sock.inode) == (80, 1, 3, 4, 99)
    assert counts.unknown_attributes == 1
    with pytest.raises(DecodeError):
        codec.decode_inet(header[:40], 0, 40, 6, counts)
    with pytest.raises(DecodeError):
        codec.decode_inet(header + struct.pack("=HH", 40, 2), 0, len(header) + 4, 6, counts)


def test_bytecode_layout_follows_the_kernels_audit() -> None:
    program = (bc.sport(1) | bc.dport(2)).compile()
    ops = []
    offset = 0
    while offset < len(program):
        code, yes, no = struct.unpack_from("=BBH", program, offset)
        ops.append((code, yes, no))
        offset += yes  # every "yes" is the op's own length (valid_cc walks them)
    assert offset == len(program)
    assert [op[0] for op in ops] == [c.INET_DIAG_BC_S_EQ, c.INET_DIAG_BC_JMP, c.INET_DIAG_BC_D_EQ]
    with pytest.raises(ValueError):
        bc.sport(70000)


def test_cli_dump_sockets_json_and_state_filter(netns: str) -> None:
    with socket_set(netns, 21, 25):
        everything = json.loads(run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "--json", "-t", "-u", "-x", "--netns", netns).stdout)
        listening = json.loads(run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "--json", "-t", "--netns", netns, "state", "listening").stdout)
        v6 = json.loads(run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "--json", "-u", "-6", "--netns", netns).stdout)
        assert our_rows(everything) == ss_rows(netns)
        tool = ss_rows(netns, "-t", "state", "listening")
        assert Counter(row[:1] + row[2:] for row in our_rows(listening)) == Counter(row[:1] + row[2:] for row in tool if row[0] == "tcp")
        assert all(item["netid"] == "udp" and item["family"] == "inet6" for item in v6)


async def test_fast_json_text_equals_to_json(netns: str) -> None:
    from aionlmmap.families.sock_diag.objects import json_text, json_texts

    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with socket_set(netns, 31, 20):
        async with sock_diag.open(netns=netns) as sd:
            socks = [sock async for sock in sd.inet("tcp")] + [sock async for sock in sd.inet("udp", extensions=["shutdown"])]
    assert socks
    for sock in socks:
        assert json_text(sock) == compact(sock.to_json())
    assert json_texts(socks) == [compact(sock.to_json()) for sock in socks]


def test_cli_socket_options_belong_to_dump_sockets() -> None:
    result = run(sys.executable, "-m", "aionlmmap", "dump", "routes", "state", "established", check=False)
    assert result.returncode == 2 and "dump sockets" in result.stderr
    result = run(sys.executable, "-m", "aionlmmap", "dump", "sockets", "state", "nonsense", check=False)
    assert result.returncode == 1 and "unknown state" in result.stderr
