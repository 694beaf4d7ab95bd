"""The emulated backend's producer: recvmmsg batches and the one-by-one
fallback fill frames exactly alike."""

from __future__ import annotations

import socket

import pytest

from aionlmmap import Message, RingConfig
from aionlmmap.backends.emulated import EmulatedBackend
from aionlmmap.constants import NETLINK_PKTINFO, NETLINK_USERSOCK, SOL_NETLINK
from aionlmmap.frames import COPY, VALID

pytestmark = pytest.mark.integration


@pytest.fixture
def pair() -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_USERSOCK)
    receiver.bind((0, 0))
    receiver.setsockopt(SOL_NETLINK, NETLINK_PKTINFO, 1)
    receiver.setsockopt(socket.SOL_SOCKET, 33, 4 * 1024 * 1024)  # SO_RCVBUFFORCE
    sender = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_USERSOCK)
    sender.bind((0, 0))
    yield receiver, sender
    receiver.close()
    sender.close()


@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvmsg_into"])
def test_small_and_oversized_datagrams_fill_frames_in_order(pair: tuple[socket.socket, socket.socket], batched: bool) -> None:
    receiver, sender = pair
    config = RingConfig.for_frames(4096, 8)
    backend = EmulatedBackend(receiver, config, RingConfig.for_frames(4096, 2), batched=batched)
    try:
        # two oversized datagrams in a row: with recvmmsg both land in one
        # call, and each must keep its own spill area
        payloads = [b"a" * 100, b"b" * 9000, b"c" * 12000, b"d" * 10]
        for payload in payloads:
            sender.sendto(Message(0x20, 0, 1, 0, payload).encode(), (receiver.getsockname()[0], 0))
        assert backend.fill() is False  # queue read empty, ring not full
        for index, payload in enumerate(payloads):
            status, length, group, pid, _uid, _gid = backend.rx.raw_header(index)
            assert group == 0 and pid == sender.getsockname()[0]
            if len(payload) + 16 > config.data_size:
                assert status == COPY
                data = backend.read_copy(index, length)
            else:
                assert status == VALID
                data = bytes(backend.frame_data(index, length))
            encoded = Message(0x20, 0, 1, 0, payload).encode()
            assert length == len(encoded) and data == encoded
        assert backend.frames_produced == 4
    finally:
        backend.close()


@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvmsg_into"])
def test_a_full_ring_stops_the_producer(pair: tuple[socket.socket, socket.socket], batched: bool) -> None:
    receiver, sender = pair
    backend = EmulatedBackend(receiver, RingConfig.for_frames(4096, 4), RingConfig.for_frames(4096, 2), batched=batched)
    try:
        for number in range(6):
            sender.sendto(Message(0x20, 0, number, 0, b"x").encode(), (receiver.getsockname()[0], 0))
        assert backend.fill() is True  # 4 frames filled, 2 datagrams wait in the socket
        assert backend.rx.statuses() == "VVVV"
        backend.rx.release(0)
        backend.rx.release(1)
        assert backend.fill() is True  # the last two came in, and the ring is full again
        assert backend.rx.statuses() == "VVVV" and backend.frames_produced == 6
        for index in range(4):
            backend.rx.release(index)
        assert backend.fill() is False  # room, and nothing left to read
    finally:
        backend.close()
