"""The compiled uring twins (aionlmmap/_speedups_uring.pxi: taking
completions off the CQ ring into frame headers, providing frames to the
buffer ring) against the pure methods: two uring backends on two sockets
get the same datagrams from a real io_uring (unicast and to a group, some
larger than a frame, with and without SO_PASSCRED), and a consumer that
makes the same seeded choices on both (release now, later or out of order,
hold) sees the same frames, headers and bytes, and the backends the same
counters and bookkeeping, after every step. The seed is in the test id
(AIONLMMAP_URING_TWIN_SEED=N runs another one)."""

from __future__ import annotations

import os
import random
import socket
from typing import Any

import pytest

from aionlmmap import _sys
from aionlmmap.backends import uring as uring_module
from aionlmmap.backends.uring import UringBackend
from aionlmmap.frames import NL_MMAP_HDR, SKIP, VALID, RingConfig

from conftest import compiled_core

NETLINK_USERSOCK = 2  #: user-to-user netlink: only our own datagrams arrive
GROUP = 3
SEEDS = [1, 2, 3, int(os.environ.get("AIONLMMAP_URING_TWIN_SEED", random.SystemRandom().randrange(1 << 30)))]

speedups = compiled_core()


class PureBackend(UringBackend):
    _reap = uring_module._pure_reap
    _provide = uring_module._pure_provide


class CompiledBackend(UringBackend):
    _reap = speedups.uring_reap
    _provide = speedups.uring_provide
    handed_back = 0  #: completions the twin handed to the pure _take

    def _take(self, completions: list[tuple[int, int, int]]) -> None:
        self.handed_back += len(completions)
        super()._take(completions)


class Consumer:
    """Reads VALID frames in ring order as the drainer does: a frame still
    pinned from the last lap stops it, a held (SKIP) one is stepped over."""

    def __init__(self, backend: UringBackend) -> None:
        self.backend = backend
        self.cursor = 0
        self.pinned: list[int] = []
        self.held: set[int] = set()

    def take(self) -> list[tuple[Any, ...]]:
        rx = self.backend.rx
        seen = []
        for _ in range(rx.frame_nr):
            index = self.cursor
            header = NL_MMAP_HDR.unpack_from(rx.buffer, rx.offsets[index])
            if index in self.held and header[0] == SKIP:
                self.cursor = rx.next_index(index)
                continue
            if index in self.pinned or header[0] != VALID:
                break
            seen.append((index, *header, bytes(self.backend.frame_data(index, header[1]))))
            self.pinned.append(index)
            self.cursor = rx.next_index(index)
        return seen

    def release(self, index: int) -> None:
        self.pinned.remove(index)
        self.held.discard(index)
        self.backend.rx.release(index)

    def hold(self, index: int) -> None:
        self.held.add(index)
        self.backend.rx.hold(index)


def _state(backend: UringBackend) -> tuple[Any, ...]:
    return (
        backend.frames_produced, backend.truncated, backend.overruns, list(backend.overrun_marks), list(backend._in_kernel),
        list(backend._provided), backend._producer, backend.rx.head, backend._armed, backend._recv_errors, backend.dry_rings,
        backend._uring.buffer_tail, backend._uring._cq_head,
    )


def _open(netns: str, cls: type[UringBackend], passcred: bool, rx: RingConfig) -> tuple[socket.socket, UringBackend]:
    sock = _sys.open_socket(NETLINK_USERSOCK, netns)
    _sys.configure_socket(sock, groups=[GROUP], ext_ack=False, strict_check=False, pktinfo=True, passcred=passcred, rcvbuf=8 << 20)
    return sock, cls(sock, rx, RingConfig(block_size=4096, block_nr=4, frame_size=4096, frame_nr=4))


@pytest.mark.parametrize("passcred", [False, True], ids=["in-place", "passcred"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{seed}" for seed in SEEDS])
def test_the_compiled_uring_twins_deliver_what_the_pure_methods_do(netns: str, seed: int, passcred: bool) -> None:
    print(f"uring twin seed {seed} (AIONLMMAP_URING_TWIN_SEED={seed} repeats it)")
    rng = random.Random(seed)
    frame_nr = rng.choice([4, 8, 16])
    rx = RingConfig(block_size=4096, block_nr=frame_nr, frame_size=4096, frame_nr=frame_nr)
    sender = _sys.open_socket(NETLINK_USERSOCK, netns)
    sender.bind((0, 0))
    opened = [_open(netns, cls, passcred, rx) for cls in (PureBackend, CompiledBackend)]
    backends = [backend for _sock, backend in opened]
    consumers = [Consumer(backend) for backend in backends]
    capacity = backends[0]._capacity
    delivered = 0
    groups: set[int] = set()
    try:
        for step in range(80):
            # Datagrams: unicast to each socket alike, or one to the group
            # both joined; now and then one larger than a frame holds.
            for _ in range(rng.randrange(0, 2 * frame_nr)):
                size = rng.choice([16, 20, 64, 200, 1000, capacity, capacity + 1, capacity + 500])
                data = rng.randbytes(size)
                if rng.random() < 0.5:
                    # netlink_sendmsg broadcasts, then unicasts to portid 0,
                    # which NETLINK_USERSOCK has no kernel socket for
                    with pytest.raises(ConnectionRefusedError):
                        sender.sendto(data, (0, 1 << (GROUP - 1)))
                else:
                    for sock, _backend in opened:
                        sender.sendto(data, (sock.getsockname()[0], 0))
            seen = []
            for backend, consumer in zip(backends, consumers):
                frames = []
                for _ in range(4):
                    backend.fill()
                    frames += consumer.take()
                seen.append(frames)
            assert seen[0] == seen[1], f"step {step}: the frames differ"
            assert _state(backends[0]) == _state(backends[1]), f"step {step}: the bookkeeping differs"
            delivered += len(seen[0])
            groups |= {frame[3] for frame in seen[0]}
            # The same choices for both: release some pinned frames in any
            # order, hold some, keep the rest for later.
            pinned = list(consumers[0].pinned)
            rng.shuffle(pinned)
            for index in pinned:
                choice = rng.random()
                for consumer in consumers:
                    if choice < 0.6:
                        consumer.release(index)
                    elif choice < 0.7 and index not in consumer.held:
                        consumer.hold(index)
        assert delivered > 50 and backends[0].truncated and backends[0].dry_rings and groups == {0, GROUP}
        compiled = backends[1]
        assert isinstance(compiled, CompiledBackend)
        if not passcred:
            # The twin itself took the common completions (the pure _take
            # got the truncated datagrams and the dry-ring ends, no more).
            assert compiled.handed_back <= compiled.truncated + compiled.dry_rings + compiled.rearms, (compiled.handed_back, delivered)
    finally:
        for sock, backend in opened:
            backend.close()
            sock.close()
        sender.close()
