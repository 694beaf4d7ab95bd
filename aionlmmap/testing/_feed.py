"""A frame source with no socket, for driving :class:`aionlmmap.drainer.Drainer`
by hand: the test writes datagrams into RX frames (VALID), queues COPY
datagrams, empty frames and overruns, exactly as a backend would leave them,
then calls ``drainer.walk()``.

Pure: imports neither asyncio nor socket.
"""

from __future__ import annotations

from collections import deque

from ..frames import COPY, RESERVED, VALID, FrameRing, RingConfig

__all__ = ["FrameFeed"]


class FrameFeed:
    """The backend interface the drainer reads (see
    :class:`aionlmmap.backends.Backend`), over anonymous memory.

    ``views=True`` exposes ``rx_views`` (data right after the frame header,
    as the emulated and uring backends do), which enables the drainer's
    one-message fast walk; ``views=False`` makes the drainer go through
    :meth:`frame_data`, as on the kernel ring."""

    name = "emulated"
    readable = False

    def __init__(self, frame_nr: int = 8, frame_size: int = 4096, *, views: bool = True, skip_is_safe: bool = True) -> None:
        config = RingConfig(block_size=frame_size * frame_nr, block_nr=1, frame_size=frame_size, frame_nr=frame_nr)
        self.rx_config = config
        self.memory = bytearray(config.ring_size)
        self.rx = FrameRing(self.memory, config)
        whole = memoryview(self.memory)
        self._data = [whole[self.rx.data_offset(i) : self.rx.data_offset(i) + config.data_size] for i in range(frame_nr)]
        self.rx_views: list[memoryview] | None = self._data if views else None
        self.skip_is_safe = skip_is_safe
        self.frames_produced = 0
        self.overrun_marks: deque[int] = deque()
        self._copied: deque[tuple[int, bytes]] = deque()

    def free(self) -> bool:
        """The producer's head frame is UNUSED (after stepping past SKIP)."""
        self.rx.forward_past_skip()
        return self.rx.status(self.rx.head) == 0

    def valid(self, datagram: bytes, group: int = 0, pid: int = 0, uid: int = 0, gid: int = 0) -> int:
        """A datagram written into the head frame (VALID); returns its index."""
        self.rx.forward_past_skip()
        index = self.rx.head
        self._data[index][: len(datagram)] = datagram
        self.frames_produced += 1
        return self.rx.produce(VALID, len(datagram), group, pid, uid, gid)

    def empty(self) -> int:
        """A VALID frame of length 0 (a socket filter dropped its skb)."""
        self.frames_produced += 1
        return self.rx.produce(VALID, 0)

    def copy(self, datagram: bytes, group: int = 0, pid: int = 0) -> int:
        """A COPY frame: the datagram waits on the socket queue."""
        self.rx.forward_past_skip()
        index = self.rx.head
        self._copied.append((index, bytes(datagram)))
        self.frames_produced += 1
        return self.rx.produce(COPY, len(datagram), group, pid)

    def reserved(self) -> int:
        """The kernel still builds this frame (RESERVED)."""
        return self.rx.produce(RESERVED, 0)

    def overrun(self) -> None:
        """Messages were lost right here in the stream (ENOBUFS)."""
        self.overrun_marks.append(self.frames_produced)

    # -- the Backend interface the drainer calls ----------------------------------
    def frame_data(self, index: int, length: int) -> memoryview:
        return self._data[index][:length]

    def read_copy(self, index: int, length: int) -> bytes:
        while self._copied:
            copied_index, data = self._copied.popleft()
            if copied_index == index:
                return data
        raise RuntimeError(f"COPY frame {index} has no datagram queued")

    def take_overrun(self) -> bool:
        return False
