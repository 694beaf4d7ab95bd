"""Instruction counts of the route-dump decoding paths, for callgrind.

Timing on a shared 2-core machine is noise; instruction counts are not.
This script splits the measurement in two steps so that valgrind sees only
the decoding:

    # 1. capture: build N routes of one shape in a throwaway namespace and
    #    save the raw dump datagrams (root; the namespace is deleted after)
    python -m benchmarks.route_decode_instructions capture --shape device --n 100000 --out /tmp/dump-device.bin

    # 2. count: decode the saved datagrams with routes()'s decoder
    #    (RouteDecoders + to_json) or the CLI's text path (RouteTexts), and
    #    compare with "load" (reading the file only) to get the decoding cost
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        python -m benchmarks.route_decode_instructions run objects /tmp/dump-device.bin
    callgrind_annotate /tmp/cg.out | head -n 5    # "PROGRAM TOTALS"

Shapes: ``device`` (``10.x.y.z/32 dev d0``), ``gateway`` (``... via
192.0.2.2``), ``ipv6`` (``2001:db8:x::/64 dev d0``), ``metrics`` (device
routes with ``mtu 1400``: the generic walk). ``count`` runs all three modes
under callgrind and prints the instructions per route.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import socket
import struct
import subprocess
import sys
import tempfile
import uuid

_NLMSG = struct.Struct("=IHHII")
_RTM_GETROUTE = 26
_NLM_F_REQUEST_DUMP = 0x1 | 0x300


def _route_lines(shape: str, n: int) -> list[str]:
    lines = []
    for index in range(n):
        a, b, c = index >> 16 & 0xFF, index >> 8 & 0xFF, index & 0xFF
        if shape == "device":
            lines.append(f"route add 10.{a}.{b}.{c}/32 dev d0")
        elif shape == "gateway":
            lines.append(f"route add 10.{a}.{b}.{c}/32 via 192.0.2.2")
        elif shape == "metrics":
            lines.append(f"route add 10.{a}.{b}.{c}/32 dev d0 mtu 1400")
        elif shape == "ipv6":
            lines.append(f"route add 2001:db8:{index >> 16:x}:{index & 0xFFFF:x}::/64 dev d0")
        else:
            raise SystemExit(f"unknown shape {shape!r}: device, gateway, metrics or ipv6")
    return lines


def capture(shape: str, n: int, out: pathlib.Path) -> None:
    netns = f"aionlmmap-bench-cg-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        setup = ["link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "addr add 192.0.2.1/24 dev d0",
                 "addr add 2001:db8:ffff::1/64 dev d0 nodad"]  # fmt: skip
        subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(setup + _route_lines(shape, n)) + "\n", text=True, check=True, timeout=600)
        # The socket must be made inside the namespace: Python 3.11 has no
        # os.setns, so the dump runs in a child under `ip netns exec`.
        family = "6" if shape == "ipv6" else "4"
        subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m", "benchmarks.route_decode_instructions", "dump", family, str(out)], check=True)
        print(f"{out.stat().st_size} bytes -> {out}")
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def dump(family_version: str, out: pathlib.Path) -> None:
    """Dump the main table of this namespace into ``out``."""
    family = socket.AF_INET6 if family_version == "6" else socket.AF_INET
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    # rtmsg + RTA_TABLE main: the table routes() dumps by default
    payload = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 254, 0, 0, 0, 0) + struct.pack("=HHI", 8, 15, 254)
    sock.send(_NLMSG.pack(_NLMSG.size + len(payload), _RTM_GETROUTE, _NLM_F_REQUEST_DUMP, 1, 0) + payload)
    datagrams = []
    done = False
    while not done:
        data = sock.recv(1 << 16)
        offset = 0
        while offset < len(data):
            length, msg_type = struct.unpack_from("=IH", data, offset)
            if msg_type in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
                done = True
            offset += (length + 3) & ~3
        datagrams.append(data)
    sock.close()
    with out.open("wb") as file:
        for data in datagrams:
            file.write(struct.pack("=I", len(data)) + data)


def _load(path: pathlib.Path) -> list[bytes]:
    raw = path.read_bytes()
    datagrams, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("=I", raw, offset)
        datagrams.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return datagrams


def _body(data: bytes) -> int:
    """Bytes of RTM_NEWROUTE messages at the start of a datagram (what
    Ring.dump_chunks hands the walker as ``body``)."""
    offset = 0
    while offset < len(data):
        length, msg_type = struct.unpack_from("=IH", data, offset)
        if msg_type != 24:
            break
        offset += (length + 3) & ~3
    return offset


def run(mode: str, path: pathlib.Path) -> int:
    import gc

    gc.disable()
    from aionlmmap.cli import _route_text
    from aionlmmap.families.rtnl.codec import decode_route
    from aionlmmap.families.rtnl.route_layout import RouteDecoders, RouteTexts

    datagrams = _load(path)
    names = {2: "d0", 3: "d1", 1: "lo"}
    count = 0
    if mode == "objects":
        decoders = RouteDecoders(names, decode_route)
        for data in datagrams:
            for route in decoders.walk(data, _body(data)):
                route.to_json()
                count += 1
    elif mode == "texts":
        texts = RouteTexts(_route_text, names, decode_route)
        for data in datagrams:
            count += len(texts.walk(data, _body(data)))
    elif mode != "load":
        raise SystemExit("mode: objects, texts or load")
    return count


def _instructions(mode: str, path: pathlib.Path) -> int:
    with tempfile.TemporaryDirectory() as directory:
        out = pathlib.Path(directory) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "benchmarks.route_decode_instructions", "run", mode, str(path)],
                       check=True, capture_output=True)  # fmt: skip
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert match is not None, "no summary line in the callgrind output"
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.route_decode_instructions", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    grab = commands.add_parser("capture")
    grab.add_argument("--shape", default="device")
    grab.add_argument("--n", type=int, default=100_000)
    grab.add_argument("--out", type=pathlib.Path, required=True)
    raw = commands.add_parser("dump", help="(inside a namespace) save the main table's dump")
    raw.add_argument("family", choices=["4", "6"])
    raw.add_argument("out", type=pathlib.Path)
    once = commands.add_parser("run")
    once.add_argument("mode", choices=["objects", "texts", "load"])
    once.add_argument("path", type=pathlib.Path)
    count = commands.add_parser("count", help="callgrind all modes, print instructions per route")
    count.add_argument("path", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "capture":
        capture(args.shape, args.n, args.out)
    elif args.command == "dump":
        dump(args.family, args.out)
    elif args.command == "run":
        print(run(args.mode, args.path))
    else:
        routes = run("objects", args.path)
        base = _instructions("load", args.path)
        for mode in ("objects", "texts"):
            total = _instructions(mode, args.path)
            print(f"{args.path.name} {mode}: {(total - base) / routes:.0f} instructions/route ({total - base} over {routes} routes)")


if __name__ == "__main__":
    main()
