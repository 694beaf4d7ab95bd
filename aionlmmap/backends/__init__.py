"""Ring backends: who fills RX frames and who consumes TX frames.

Both present the same frame memory (``rx`` and ``tx`` :class:`FrameRing`
cursors laid out exactly as the kernel lays out ``nl_mmap_req`` rings), so
``Ring`` walks frames the same way on either:

- ``emulated`` (:mod:`.emulated`): anonymous memory filled by ``recvmsg_into``
  straight into the next UNUSED frame; TX frames leave in one ``sendmsg``.
- ``kernel`` (:mod:`.kernel`, Linux < 4.6 with CONFIG_NETLINK_MMAP): the
  kernel fills and consumes the frames itself.
- ``uring`` (:mod:`.uring`, Linux >= 6.0): io_uring's multishot RECVMSG
  writes each datagram into a frame (a provided buffer); TX frames leave in
  the same datagrams as on ``emulated``, one IORING_OP_SENDMSG each,
  submitted together.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ..frames import VALID, FrameRing, RingConfig

__all__ = ["Backend", "TxFailure", "tx_datagrams"]


class TxFailure(Exception):
    """A flush could not send some TX frames; ``frames`` are their indices
    (already returned to UNUSED) and ``error`` the OSError."""

    def __init__(self, frames: list[int], error: OSError) -> None:
        super().__init__(frames, error)
        self.frames = frames
        self.error = error


#: sendmsg's iovec limit (UIO_MAXIOV)
IOV_MAX = 1024


def tx_datagrams(tx: FrameRing, tail: int, solo_frames: set[int], limit: int) -> tuple[list[list[tuple[int, int]]], int]:
    """The VALID TX frames from ``tail``, grouped into datagrams: as many
    frames as fit ``limit`` bytes (SO_SNDBUF less 32: ``netlink_sendmsg``
    rejects len > sk_sndbuf - 32 with EMSGSIZE) and the iovec limit, a solo
    frame (an atomic batch) alone. Each datagram is a list of (frame index,
    length); returns them and the new tail. Only reads the frames: the
    caller sends and returns them to UNUSED."""
    datagrams: list[list[tuple[int, int]]] = []
    index = tail
    taken = 0
    while taken < tx.frame_nr:  # bounded: a full ring is read once
        frames: list[tuple[int, int]] = []
        total = 0
        while taken < tx.frame_nr and len(frames) < IOV_MAX:
            header = tx.raw_header(index)
            if header[0] != VALID:
                break
            length = header[1]
            solo = index in solo_frames
            if frames and (solo or total + length > limit):
                break
            frames.append((index, length))
            total += length
            index = tx.next_index(index)
            taken += 1
            if solo:
                solo_frames.discard(frames[-1][0])
                break
        if not frames:
            break
        datagrams.append(frames)
    return datagrams, index


class Backend(Protocol):
    name: str
    rx: FrameRing
    tx: FrameRing
    rx_config: RingConfig
    tx_config: RingConfig
    #: SKIP may be used to hold frames: every message on this socket takes
    #: the ring path (or the producer is ours), see DESIGN.md section 1.
    skip_is_safe: bool
    #: TX frames that must leave as a datagram of their own (atomic
    #: batches); the kernel ring sends every frame as its own skb anyway.
    solo_frames: set[int]
    #: counters the Ring folds into its stats
    overruns: int
    truncated: int
    tx_syscalls: int
    rx_syscalls: int

    def fileno(self) -> int: ...

    def fill(self) -> bool:
        """Bring new frames in (emulated: read the socket). Returns True if the
        RX ring is full and the producer had to stop (the reader should pause
        until a frame is released)."""
        ...

    #: RX frames produced since the start, and the counts after which
    #: messages were lost (emulated backend: the ring reports each overrun
    #: at that point of the stream). A backend that cannot place its
    #: overruns leaves this empty and reports through take_overrun().
    frames_produced: int
    overrun_marks: deque[int]

    def take_overrun(self) -> bool:
        """True once per overrun (ENOBUFS) seen since the last call, for
        backends that cannot place it in the stream (overrun_marks)."""
        ...

    #: Each RX frame's whole data area, where a frame's data always starts
    #: right after its header (the ring slices ``rx_views[index][:length]``
    #: instead of calling frame_data); None where frame_data must look.
    rx_views: list[memoryview] | None

    def frame_data(self, index: int, length: int) -> memoryview:
        """The data of VALID RX frame ``index`` (at the right data offset)."""
        ...

    def read_copy(self, index: int, length: int) -> bytes:
        """The datagram behind COPY frame ``index``."""
        ...

    def tx_data(self, index: int) -> memoryview:
        """The data area of TX frame ``index`` (frame_size - 24 bytes)."""
        ...

    def flush(self) -> list[TxFailure]:
        """Send every VALID TX frame; returns the failures (if any)."""
        ...

    def close(self) -> None: ...

    # Optional: ``answer_room(start) -> int``, on backends where every answer
    # needs a free RX frame at the moment the kernel builds it (the kernel
    # ring, fact c.8): how many answers fit now, counted from the next frame
    # the ring walks. Backends whose answers queue on the socket (emulated,
    # uring) leave it out: the receive buffer bounds them (max_in_flight).
