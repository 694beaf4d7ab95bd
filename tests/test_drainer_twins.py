"""The compiled drainer walk (aionlmmap/_speedups_drain.pxi) against the
pure drainer: two drainers fed the same frame sequences (real dumps,
notifications, replies, errors, DUMP_INTR, overruns, empty frames, foreign
senders, fuzzed bytes, holds, consumers that lag) make identical deliveries,
counters and frame states after every step. Seeded random drivers; the seed
is in the test id (AIONLMMAP_DRAINER_SEED=N runs another one)."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import sys
from typing import Any

import attrs
import pytest

from aionlmmap import drainer as drainer_module
from aionlmmap import ring as ring_module
from aionlmmap.constants import NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR
from aionlmmap.drainer import Drainer
from aionlmmap.message import Message, encode_message
from aionlmmap.protocol import NetlinkProtocol
from aionlmmap.testing._feed import FrameFeed

from conftest import compiled_core, dump_datagrams, ip

PORTID = 777


speedups = compiled_core()


class PureDrainer(Drainer):
    _walk_unsolicited = drainer_module._pure_walk_unsolicited
    _release = drainer_module._pure_release


class CompiledDrainer(Drainer):
    _walk_unsolicited = speedups.walk_unsolicited
    _release = speedups.release


class PureBatch(ring_module.TakenBatch):
    take = ring_module._pure_take_batch
    finish = ring_module._pure_finish_batch


class CompiledBatch(ring_module.TakenBatch):
    take = speedups.take_batch
    finish = speedups.finish_batch


# --- what a drainer delivered ------------------------------------------------------------


def _message(msg: Any) -> tuple[Any, ...]:
    frame = msg[6]
    payload = bytes(frame.buffer[msg[4] : msg[5]]) if frame.alive else None
    return (*msg[:6], frame.frame_index, frame.group, frame.sender_pid, frame.uid, frame.gid, frame.pending, frame.holds, payload)


def _entry(entry: Any) -> tuple[Any, ...]:
    if entry.__class__ is Message:
        return ("message", _message(entry))
    frame, body = entry
    if frame is None:
        return ("overrun", body.lost)
    if body.__class__ is int:
        return ("chunk", frame.frame_index, body, bytes(frame.buffer[:body]))
    return ("batch", frame.frame_index, [_message(m) for m in body])


def _pending(pending: Any) -> tuple[Any, ...]:
    delivered = []
    for item in pending.messages:
        if item.__class__ is Message:
            delivered.append(("reply", _message(item)))
        elif isinstance(item, tuple):
            delivered.append(_entry(item))
        else:  # the overrun barrier keeps the requests in flight (PendingRequest) and stale seqs (int)
            delivered.append(("request", getattr(item, "seq", item)))
    return (pending.seq, pending.is_dump, pending.finished, repr(pending.error), pending.interrupted, pending.abandoned, delivered)


def snapshot(drainer: Drainer, touched: list[Any], progressed: bool) -> dict[str, Any]:
    feed = drainer._backend
    return {
        "progressed": progressed,
        "touched": [getattr(t, "seq", None) if not callable(t) else t.__name__ for t in touched],
        "unsolicited": [_entry(e) for e in drainer._unsolicited],
        "pending": sorted(_pending(p) for p in drainer._proto.pending.values()),
        "stats": attrs.asdict(drainer.stats),
        "rx_next": drainer._rx_next,
        "walked": drainer._walked,
        "slots": [None if s is None else s.frame_index for s in drainer._slots],
        "statuses": feed.rx.statuses(),
        "barriers": [bytes(m.encode()) for m in drainer.barriers_sent],
        "stale": sorted(drainer._stale_seqs),
        "copied_bytes": drainer._copied_bytes,
        "blocked": drainer.rx_blocked(progressed),
    }


# --- the driver ----------------------------------------------------------------------------


def _padded(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


class Driver:
    """One random sequence of frames and consumer actions, replayed on a
    drainer. Every choice comes from ``rng``, so two drivers with the same
    seed do the same thing."""

    def __init__(self, cls: type[Drainer], seed: int, *, views: bool, dumps: list[bytes]) -> None:
        self.rng = random.Random(seed)
        self.feed = FrameFeed(self.rng.choice([2, 4, 8, 16]), views=views)
        self.drainer = cls(self.feed, NetlinkProtocol(PORTID))
        self.batch_cls = CompiledBatch if cls is CompiledDrainer else PureBatch
        self.dumps = dumps
        self.requests: list[Any] = []
        self.dump: Any = None
        self.kept: list[Message] = []

    def datagram(self) -> tuple[bytes, int, int]:
        """(bytes, group, sender pid) of one generated datagram."""
        rng = self.rng
        kind = rng.random()
        group = rng.choice([0, 0, 1, 5])
        pid = 0 if rng.random() < 0.9 else rng.randrange(1, 1 << 32)
        if kind < 0.35:  # one notification or packet (seq 0)
            return _padded(encode_message(rng.randrange(16, 0x400), rng.choice([0, 2]), 0, 0, rng.randbytes(rng.randrange(0, 64)))), group, pid
        if kind < 0.45:  # several unsolicited messages in one datagram
            return b"".join(_padded(encode_message(rng.randrange(16, 40), 0, rng.choice([0, 5]), 0, rng.randbytes(rng.randrange(0, 20)))) for _ in range(rng.randrange(1, 5))), group, pid
        if kind < 0.6 and self.requests:  # an answer (reply and/or ACK or error) to a request in flight
            pending = rng.choice(self.requests)
            parts = []
            if rng.random() < 0.5:
                parts.append(_padded(encode_message(rng.randrange(16, 40), 0, pending.seq, PORTID, rng.randbytes(8))))
            error = rng.choice([0, 0, 17, 1])
            parts.append(encode_message(NLMSG_ERROR, 0x100, pending.seq, PORTID, struct.pack("=i", -error) + encode_message(16, 5, pending.seq, PORTID)[:16]))
            return b"".join(parts), 0, pid
        if kind < 0.75 and self.dump is not None:  # a chunk of the dump, from a real dump when there is one
            seq = self.dump.seq
            if self.dumps and rng.random() < 0.7:
                data = bytearray(rng.choice(self.dumps))
                offset = 0
                while offset + 16 <= len(data):
                    length = int.from_bytes(data[offset : offset + 4], "little")
                    struct.pack_into("=II", data, offset + 8, seq, PORTID)
                    if rng.random() < 0.05:
                        struct.pack_into("=H", data, offset + 6, NLM_F_MULTI | NLM_F_DUMP_INTR)
                    if length < 16:
                        break
                    offset += (length + 3) & ~3
                return bytes(data), 0, 0
            flags = NLM_F_MULTI | (NLM_F_DUMP_INTR if rng.random() < 0.2 else 0)
            parts = [_padded(encode_message(24, flags, seq, PORTID, rng.randbytes(12))) for _ in range(rng.randrange(1, 6))]
            if rng.random() < 0.3:
                parts.append(encode_message(NLMSG_DONE, NLM_F_MULTI, seq, PORTID, b"\x00" * 4))
            return b"".join(parts), 0, 0
        if kind < 0.85:  # fuzzed bytes: a header or two with random lengths, or noise
            data = bytearray(rng.randbytes(rng.randrange(0, 80)))
            if len(data) >= 16 and rng.random() < 0.6:
                struct.pack_into("=I", data, 0, rng.choice([len(data), 16, rng.randrange(0, 200)]))
            return bytes(data), group, pid
        # a reply with a seq nobody waits for
        return _padded(encode_message(rng.randrange(16, 40), 0, rng.randrange(1, 50), PORTID, b"")), 0, 0

    def step(self) -> dict[str, Any]:
        rng = self.rng
        feed = self.feed
        drainer = self.drainer
        for _ in range(rng.randrange(1, 2 * feed.rx.frame_nr)):
            action = rng.random()
            if action < 0.05 and len(self.requests) < 4:
                _request, pending = drainer._proto.start(Message(16, 0), dump=False)
                self.requests.append(pending)
            elif action < 0.06 and self.dump is None and drainer._active_dump is None and rng.random() < 0.3:
                _request, self.dump = drainer._proto.start(Message(26, 0x300), dump=True)
                self.dump.messages = []
                if rng.random() < 0.7:
                    drainer._active_dump = self.dump  # streaming: chunks handed over unparsed
            elif action < 0.1 and self.requests:
                pending = self.requests.pop(rng.randrange(len(self.requests)))
                drainer._proto.cancel(pending)
                drainer._stale_seqs.add(pending.seq)
            elif action < 0.14:
                feed.overrun()
            elif not feed.free():
                break
            elif action < 0.17:
                feed.empty()
            elif action < 0.2 and not feed.rx_views:
                data, group, pid = self.datagram()
                feed.copy(data, group, pid)
            else:
                data, group, pid = self.datagram()
                feed.valid(data, group, pid)
        touched: list[Any] = []
        progressed = drainer.walk(touched)
        state = snapshot(drainer, touched, progressed)
        state["consumed"] = self.consume()
        state["after_consuming"] = (feed.rx.statuses(), [None if s is None else s.frame_index for s in drainer._slots],
                                    drainer._copied_bytes, drainer._paused)
        return state

    def consume(self) -> list[Any]:
        """Consume some of what was delivered, as the iterator and the dump's
        reader would; returns the state of each frame given back."""
        rng = self.rng
        drainer = self.drainer
        log: list[Any] = []

        def note(frame: Any) -> None:
            log.append((frame.frame_index, frame.alive, bytes(frame.buffer), frame.pending, frame.holds, frame.views))
        self.requests = [p for p in self.requests if not p.finished]
        if drainer._unsolicited and rng.random() < 0.3:
            # One Ring.iterate_batches step: the whole queue taken (up to an
            # overrun), converted, some messages held, then given back.
            batch = self.batch_cls()
            overruns: list[int] = []
            convert = rng.choice([None, lambda msg: None if msg[0] == NLMSG_DONE else msg])
            on_overrun = rng.choice([None, lambda: overruns.append(1)])
            items = batch.take(drainer._unsolicited, convert, on_overrun)
            log.append(("batch", [_message(msg) for msg in items], None if batch.overrun is None else batch.overrun.lost, len(overruns)))
            for msg in items:
                if rng.random() < 0.1 and msg[6].alive:
                    self.kept.append(msg.hold())
            frames = [msg[6] for msg in batch.lone] + list(batch.shared)
            batch.finish(drainer)
            for frame in frames:
                note(frame)
            log.append(("left", len(batch.lone), len(batch.shared)))
        for _ in range(rng.randrange(0, len(drainer._unsolicited) + 1)):
            entry = drainer._unsolicited.popleft()
            if entry.__class__ is Message:
                if rng.random() < 0.1 and entry[6].alive:
                    self.kept.append(entry.hold())
                entry[6].pending = 0
                if not entry[6].holds:
                    drainer._release(entry[6])
                note(entry[6])
            elif entry[0] is not None:
                drainer._batch_done(entry[0])
                note(entry[0])
        if self.kept and rng.random() < 0.3:
            kept = self.kept.pop(0)
            kept.release()
            note(kept[6])
        dump = self.dump
        if dump is not None:
            while dump.messages and rng.random() < 0.8:
                frame, _body = dump.messages.pop(0)
                drainer._batch_done(frame)
                note(frame)
            if dump.finished or rng.random() < 0.3:
                if not dump.finished:
                    drainer._proto.cancel(dump)
                for frame, _body in dump.messages:
                    drainer._batch_done(frame)
                    note(frame)
                dump.messages = []
                if drainer._active_dump is dump:
                    drainer._active_dump = None
                self.dump = None
        return log


def run_both(seed: int, steps: int, *, views: bool, dumps: list[bytes]) -> int:
    pure = Driver(PureDrainer, seed, views=views, dumps=dumps)
    compiled = Driver(CompiledDrainer, seed, views=views, dumps=dumps)
    for step in range(steps):
        expected = pure.step()
        got = compiled.step()
        if got != expected:
            for key in expected:
                assert got[key] == expected[key], f"seed {seed}, step {step}: the drainers differ in {key}"
    return pure.drainer.stats.frames


SEEDS = [int(os.environ["AIONLMMAP_DRAINER_SEED"])] if os.environ.get("AIONLMMAP_DRAINER_SEED") else list(range(12))


@pytest.mark.parametrize("views", [True, False], ids=["frame-views", "frame-data"])
@pytest.mark.parametrize("seed", SEEDS)
def test_both_drainers_deliver_the_same_on_generated_sequences(seed: int, views: bool) -> None:
    assert run_both(seed, 60, views=views, dumps=[]) > 0


@pytest.mark.integration
def test_both_drainers_deliver_the_same_on_real_dumps(netns: str) -> None:
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "link", "set", "d0", "up")
    ip(netns, "addr", "add", "10.7.0.1/16", "dev", "d0")
    batch = [f"route add 10.8.{i // 250}.{i % 250}/32 dev d0" for i in range(200)]
    batch += [f"route add 10.9.{i}.0/24 via 10.7.0.2 dev d0 metric {i % 5}" for i in range(100)]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
    dumps: list[bytes] = []
    for request in (
        encode_message(26, 0x301, 1, 0, struct.pack("=BBBBBBBBI", socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)),
        encode_message(18, 0x301, 2, 0, bytes(16)),
        encode_message(22, 0x301, 3, 0, bytes(8)),
    ):
        dumps += dump_datagrams(netns, request)
    assert len(dumps) >= 3
    # The dump datagrams fit a 4 KiB frame only when small; keep those (the
    # kernel's first chunks are about a page).
    fitting = [d for d in dumps if len(d) <= 4096 - 24]
    assert fitting
    for seed in SEEDS[:4]:
        run_both(1000 + seed, 40, views=True, dumps=fitting)
        run_both(2000 + seed, 40, views=False, dumps=fitting)
