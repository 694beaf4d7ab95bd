"""Per-item costs in CPU instructions, on both cores (callgrind).

``python3 -m benchmarks.per_item [--routes N] [--repeat K]``

Wall-clock rates swing on a shared machine; instruction counts do not. This
captures real route dumps (the three table shapes of the route-dump
scenarios, made in a throwaway namespace) and synthetic nfqueue packet
messages, then runs each workload under ``valgrind --tool=callgrind``
twice, with K and 2K passes over the same input, on each core. Instructions
per item = (Ir(2K) - Ir(K)) / (items(2K) - items(K)): interpreter start-up
and imports cancel out. Needs root (namespaces) and valgrind.

Workloads (the library code only: no socket, no event loop):

- ``frame-walk``: ``parse_frame`` over every dump datagram (per message);
- ``route-decode``: ``RouteDecoders.chunk`` + ``Route.to_json()`` (per route),
  what ``rtnl.routes()`` does per chunk;
- ``route-text``: ``RouteTexts.chunk`` with the CLI's renderer (per route),
  what ``aionlmmap dump routes --json`` does per chunk;
- ``nfqueue``: ``Queue._packet_of`` + ``packet.accept()`` + the verdict
  flush every 256 packets (per packet), without the ring walk that
  delivers the messages;
- ``nfqueue-drain``: the same plus the drainer's walk of the packets' RX
  frames (``Drainer.walk``, aionlmmap/drainer.py) and each frame's release,
  256 frames a round, as a ring wake delivers them (per packet; it also
  counts re-arming each frame VALID, the producer's ~2 struct writes).
  What is left of a packet's cost is the iterator's ``async for`` step and
  the syscalls.
- ``nfqueue-batches``: ``nfqueue-drain`` as ``queue.batches()`` does it:
  each round's packets taken as one list (``TakenBatch.take`` with the
  queue's ``_packet_of``), each accepted, the frames given back together
  (``TakenBatch.finish``), one flush.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("frame-walk", "route-decode", "route-text", "nfqueue", "nfqueue-drain", "nfqueue-batches")
SHAPES = ("device", "gateway", "mixed")

_CAPTURE = """
import socket, struct, sys
family = socket.AF_INET if sys.argv[1] == "inet" else socket.AF_UNSPEC
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
s.send(struct.pack("=IHHII", 16 + len(body), 26, 0x301, 1, 0) + body)
while True:
    d = s.recv(1 << 16)
    if int.from_bytes(d[4:6], "little") in (2, 3):
        break
    sys.stdout.write(d.hex() + "\\n")
"""


def capture(shape: str, routes: int) -> list[bytes]:
    """The datagrams of a route dump of ``shape`` (minus NLMSG_DONE)."""
    from .netns import namespace
    from .scenarios.route_dump import SHAPES as TABLE_SHAPES
    from .scenarios.route_dump import build_table

    every_family = TABLE_SHAPES[shape][1]
    with namespace("items") as space:
        build_table(space, shape, routes)
        out = subprocess.run([*space.exec_prefix(), sys.executable, "-c", _CAPTURE, "all" if every_family else "inet"],
                             capture_output=True, text=True, check=True, timeout=120)
    return [bytes.fromhex(line) for line in out.stdout.split()]


# --- the workloads (run inside valgrind) ------------------------------------------------


def _frame_walk(datagrams: list[bytes], repeat: int) -> int:
    from aionlmmap.message import ReceivedFrame, parse_frame

    items = 0
    for _ in range(repeat):
        for datagram in datagrams:
            items += len(parse_frame(ReceivedFrame(datagram), len(datagram))[0])
    return items


def _route_decode(datagrams: list[bytes], repeat: int) -> int:
    from aionlmmap.families.rtnl.codec import decode_route
    from aionlmmap.families.rtnl.route_layout import RouteDecoders
    from aionlmmap.message import ReceivedFrame

    items = 0
    for _ in range(repeat):
        decoders = RouteDecoders({}, decode_route)  # one per dump, as rtnl.routes() makes
        for datagram in datagrams:
            for route in decoders.chunk(ReceivedFrame(datagram), len(datagram)):
                route.to_json()
                items += 1
    return items


def _route_text(datagrams: list[bytes], repeat: int) -> int:
    from aionlmmap.cli import _route_text as render
    from aionlmmap.families.rtnl.codec import decode_route
    from aionlmmap.families.rtnl.route_layout import RouteTexts
    from aionlmmap.message import ReceivedFrame

    items = 0
    for _ in range(repeat):
        texts = RouteTexts(render, {}, decode_route)
        for datagram in datagrams:
            items += len(texts.chunk(ReceivedFrame(datagram), len(datagram)))
    return items


class _FakeRing:
    closed = False

    def __init__(self) -> None:
        self.sent = 0

    def send_nowait(self, *messages: Any) -> None:
        self.sent += len(messages)


def _nfqueue(packets: int, repeat: int) -> int:
    import struct

    from aionlmmap import AttributeBuilder, Message
    from aionlmmap.families.netfilter import nfqueue
    from aionlmmap.message import ReceivedFrame

    header = struct.pack("=HH", 11, nfqueue.NFQA_PACKET_HDR)
    tail = AttributeBuilder().add_be32(nfqueue.NFQA_MARK, 0).add(nfqueue.NFQA_PAYLOAD, bytes(92)).build()
    ring = _FakeRing()
    queue = nfqueue.Queue(ring, 0, Message(0))
    # Built once: only the passes differ between the two runs.
    messages = []
    for packet_id in range(1, packets + 1):
        body = struct.pack("!BBH", 2, 0, 0) + header + struct.pack("!IHB", packet_id, 0x0800, 1) + b"\0" + tail
        datagram = Message(nfqueue._TYPE_PACKET, 0, payload=body).encode()
        messages.append(tuple.__new__(Message, (nfqueue._TYPE_PACKET, 0, 0, 0, 16, len(datagram), ReceivedFrame(datagram))))
    items = 0
    for _ in range(repeat):
        queue._flush_scheduled = True  # flushed below, every 256 packets, as one loop iteration would
        for index, message in enumerate(messages):
            packet = queue._packet_of(message)
            packet.accept()  # type: ignore[union-attr]
            items += 1
            if index & 255 == 255:
                queue._flush_verdicts()
                queue._flush_scheduled = True
        queue._flush_verdicts()
    return items


def _nfqueue_drain(packets: int, repeat: int, *, batches: bool = False) -> int:
    import struct

    from aionlmmap import AttributeBuilder, Message
    from aionlmmap.drainer import Drainer
    from aionlmmap.families.netfilter import nfqueue
    from aionlmmap.frames import VALID
    from aionlmmap.protocol import NetlinkProtocol
    from aionlmmap.ring import TakenBatch
    from aionlmmap.testing._feed import FrameFeed

    frame_nr = 256
    feed = FrameFeed(frame_nr, 4096)
    drainer = Drainer(feed, NetlinkProtocol(1))
    header = struct.pack("=HH", 11, nfqueue.NFQA_PACKET_HDR)
    tail = AttributeBuilder().add_be32(nfqueue.NFQA_MARK, 0).add(nfqueue.NFQA_PAYLOAD, bytes(92)).build()
    ring = _FakeRing()
    queue = nfqueue.Queue(ring, 0, Message(0))
    lengths = []
    for packet_id in range(1, frame_nr + 1):  # written once: a round re-arms the frames
        body = struct.pack("!BBH", 2, 0, 0) + header + struct.pack("!IHB", packet_id, 0x0800, 1) + b"\0" + tail
        datagram = Message(nfqueue._TYPE_PACKET, 0, payload=body).encode()
        feed.valid(datagram)
        lengths.append(len(datagram))
    drainer.walk([])
    unsolicited = drainer._unsolicited
    while unsolicited:
        drainer._batch_done(unsolicited.popleft()[6])
    produce = feed.rx.produce
    walk = drainer.walk
    release = drainer._release
    packet_of = queue._packet_of
    items = 0
    for _ in range(repeat * max(1, packets // frame_nr)):
        queue._flush_scheduled = True
        for length in lengths:
            produce(VALID, length)
        walk([])
        if batches:
            batch = TakenBatch()
            for packet in batch.take(unsolicited, packet_of, None):
                packet.accept()
                items += 1
            batch.finish(drainer)  # type: ignore[arg-type]
        while unsolicited:
            message = unsolicited.popleft()
            packet = packet_of(message)
            frame = message[6]
            frame.pending = 0  # what the iterator does when it resumes
            release(frame)
            packet.accept()  # type: ignore[union-attr]
            items += 1
        queue._flush_verdicts()
    return items


def work(name: str, path: Path, repeat: int) -> None:
    if name == "nfqueue":
        items = _nfqueue(int(path.read_text()), repeat)
    elif name == "nfqueue-drain":
        items = _nfqueue_drain(int(path.read_text()), repeat)
    elif name == "nfqueue-batches":
        items = _nfqueue_drain(int(path.read_text()), repeat, batches=True)
    else:
        datagrams = [bytes.fromhex(line) for line in path.read_text().split()]
        items = {"frame-walk": _frame_walk, "route-decode": _route_decode, "route-text": _route_text}[name](datagrams, repeat)
    from aionlmmap import _extensions

    print(json.dumps({"items": items, "core": _extensions.CORE}))


# --- the driver --------------------------------------------------------------------------


def instructions(workload: str, path: Path, repeat: int, core: str) -> tuple[int, int, str]:
    """(Ir, items, core) of one callgrind run."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="0")
    env.pop("AIONLMMAP_NO_EXTENSIONS", None)
    if core == "pure":
        env["AIONLMMAP_NO_EXTENSIONS"] = "1"
    with tempfile.TemporaryDirectory(prefix="aionlmmap-callgrind-") as scratch:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out", sys.executable, "-m", "benchmarks.per_item",
             "--work", workload, "--input", str(path), "--repeat", str(repeat)],
            capture_output=True, text=True, env=env, timeout=1800, check=True,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output: {out.stderr[-500:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return int(found.group(1)), int(result["items"]), result["core"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.per_item", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=3000, help="routes per captured table (default 3000)")
    parser.add_argument("--packets", type=int, default=3000, help="nfqueue packets per pass (default 3000)")
    parser.add_argument("--repeat", type=int, default=2, help="passes in the shorter run (the longer makes twice as many)")
    parser.add_argument("--only", action="append", default=[], help="workloads to run (default all)")
    parser.add_argument("--work", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.work:
        work(args.work, args.input, args.repeat)
        return 0
    if shutil.which("valgrind") is None:
        print("per_item: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    chosen = args.only or list(WORKLOADS)
    with tempfile.TemporaryDirectory(prefix="aionlmmap-items-") as scratch:
        inputs: list[tuple[str, str, Path]] = []
        for shape in SHAPES:
            if any(not workload.startswith("nfqueue") for workload in chosen):
                path = Path(scratch) / f"{shape}.hex"
                path.write_text("\n".join(datagram.hex() for datagram in capture(shape, args.routes)))
                inputs += [(workload, shape, path) for workload in chosen if not workload.startswith("nfqueue")]
        for workload in ("nfqueue", "nfqueue-drain", "nfqueue-batches"):
            if workload in chosen:
                path = Path(scratch) / "packets"
                path.write_text(str(args.packets))
                inputs.append((workload, "64-byte UDP", path))
        rows = []
        for workload, shape, path in inputs:
            row: dict[str, Any] = {"workload": workload, "input": shape}
            for core in ("compiled", "pure"):
                short_ir, short_items, ran = instructions(workload, path, args.repeat, core)
                long_ir, long_items, _ = instructions(workload, path, 2 * args.repeat, core)
                row[core] = round((long_ir - short_ir) / max(1, long_items - short_items))
                row[f"{core}_ran"] = ran
            row["ratio"] = round(row["pure"] / max(1, row["compiled"]), 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n{'workload':14} {'input':12} {'compiled':>10} {'pure':>10} {'pure/compiled':>14}   (instructions per item)")
    for row in rows:
        print(f"{row['workload']:14} {row['input']:12} {row['compiled']:>10} {row['pure']:>10} {row['ratio']:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
