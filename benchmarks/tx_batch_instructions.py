"""Instructions per route added with ``ring.request_many`` (callgrind).

``python -m benchmarks.tx_batch_instructions [--n 2000] [--chunk 256] [--core both]``

The wall clock of scenario 4 (``tx-batch``) swings on a shared machine;
instruction counts do not. For each core (compiled, then pure with
``AIONLMMAP_NO_EXTENSIONS=1``) and each phase, a child adds N and then 2N
/32 routes in a throwaway namespace under ``valgrind --tool=callgrind``;
instructions per route = (Ir(2N) - Ir(N)) / N, so interpreter start-up,
imports and opening the ring cancel out. Callgrind counts user-space
instructions only: the kernel's route insert (which ``ip -batch`` pays
too) is not in them.

Phases:

- ``build``: building the N ``Message`` objects (rtmsg + RTA_DST + RTA_OIF),
  as the ``aionlmmap-request-many`` contestant does;
- ``request-many``: the same plus ``ring.request_many`` in chunks of
  ``--chunk`` (the contestant's whole work);
- ``raw``: prebuilt request bytes sent with one ``sendmsg`` per chunk on a
  plain socket and the ACKs read with ``recv_into``, checked by seq (the
  floor for any Python sender).

``request-many`` minus ``build`` is the library's cost per route.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = ("build", "request-many", "raw")


def child(phase: str, count: int, chunk: int) -> None:
    """Run inside the namespace (and valgrind): add ``count`` routes."""
    import socket
    import struct

    from benchmarks.contestants.tx_batch import DEVICE, route_messages

    ifindex = socket.if_nametoindex(DEVICE)
    if phase == "raw":
        messages = route_messages(count, ifindex)
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 0))
        header = struct.Struct("=IHHII")
        datagrams = []
        for start in range(0, count, chunk):
            parts = []
            for seq, msg in enumerate(messages[start : start + chunk], start + 1):
                payload = bytes(msg.payload)
                parts.append(header.pack(16 + len(payload), msg.type, msg.flags | 0x4, seq, 0) + payload)
            datagrams.append(b"".join(parts))
        buffer = bytearray(1 << 16)
        seq = 1
        for datagram in datagrams:
            sock.send(datagram)
            answered = 0
            expected = len(datagram) and min(chunk, count - seq + 1)
            while answered < expected:
                size = sock.recv_into(buffer)
                offset = 0
                while offset < size:
                    length, msg_type, _flags, got, _pid = header.unpack_from(buffer, offset)
                    error = struct.unpack_from("=i", buffer, offset + 16)[0]
                    if msg_type != 2 or got != seq or error:
                        raise SystemExit(f"unexpected answer type {msg_type} seq {got} (wanted {seq}) error {error}")
                    seq += 1
                    answered += 1
                    offset += (length + 3) & ~3
        return
    messages = route_messages(count, ifindex)
    if phase == "build":
        return
    import asyncio

    import aionlmmap

    async def main() -> None:
        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE) as ring:
            for start in range(0, count, chunk):
                await ring.request_many(messages[start : start + chunk])

    asyncio.run(main())


def instructions(phase: str, count: int, chunk: int, pure: bool) -> int:
    from .netns import namespace

    env = dict(os.environ)
    env.pop("AIONLMMAP_NO_EXTENSIONS", None)
    if pure:
        env["AIONLMMAP_NO_EXTENSIONS"] = "1"
    with namespace("txcg") as space, tempfile.TemporaryDirectory() as tmp:
        space.add_route_device()
        out = Path(tmp) / "cg.out"
        # Write the .pyc files first: compiling them would otherwise count
        # in whichever of the N and 2N runs comes first.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "aionlmmap", "benchmarks"], check=True, cwd=REPO, timeout=300)
        argv = [*space.exec_prefix(), "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                "-m", "benchmarks.tx_batch_instructions", "--child", phase, "--n", str(count), "--chunk", str(chunk)]  # fmt: skip
        subprocess.run(argv, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1200)
        text = out.read_text(errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if match is None:
        raise SystemExit("callgrind wrote no totals")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--core", choices=("both", "compiled", "pure"), default="both")
    parser.add_argument("--phase", choices=PHASES, action="append")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.chunk)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    cores = ("compiled", "pure") if args.core == "both" else (args.core,)
    phases = args.phase or list(PHASES)
    print(f"instructions per route, (Ir(2N) - Ir(N)) / N, N={args.n}, chunks of {args.chunk}")
    for core in cores:
        for phase in phases:
            if phase == "raw" and core == "pure" and "raw" in phases and len(cores) == 2:
                continue  # no aionlmmap code in it: the same on both cores
            small = instructions(phase, args.n, args.chunk, core == "pure")
            large = instructions(phase, 2 * args.n, args.chunk, core == "pure")
            print(f"{core:9} {phase:13} {(large - small) / args.n:10.0f}", flush=True)


if __name__ == "__main__":
    main()
