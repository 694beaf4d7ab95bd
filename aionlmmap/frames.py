"""The mmap ring's frames: geometry, frame header, and a cursor over them.

Pure: imports neither asyncio nor socket. Both backends and the simulated
kernel (``aionlmmap.testing``) use these, so frame addressing and status
handling exist once.

Layout facts (pre-4.6 ``net/netlink/af_netlink.c``, checked on Linux 4.4.1,
see DESIGN.md section 1): a ring is ``block_nr`` blocks of ``block_size``
bytes; frame i lives in block ``i // frames_per_block`` at offset
``(i % frames_per_block) * frame_size``. When block_size is not a multiple of
frame_size the block tail is unused, so frames are not contiguous. The RX
ring comes first in the mapping, the TX ring right after it.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs

from .constants import NL_MMAP_HDRLEN, NL_MMAP_MSG_ALIGNMENT
from .errors import RingConfigError

__all__ = [
    "FrameStatus",
    "FrameHeader",
    "RingConfig",
    "FrameRing",
    "NL_MMAP_HDR",
    "NL_MMAP_REQ",
    "DEFAULT_PAGE_SIZE",
]

#: struct nl_mmap_hdr {u32 nm_status, nm_len, nm_group, nm_pid, nm_uid, nm_gid}
NL_MMAP_HDR = struct.Struct("=IIIIII")
#: struct nl_mmap_req {u32 nm_block_size, nm_block_nr, nm_frame_size, nm_frame_nr}
NL_MMAP_REQ = struct.Struct("=IIII")
_STATUS = struct.Struct("=I")
_LEN_STATUS = struct.Struct("=II")
DEFAULT_PAGE_SIZE = 4096

# The kernel reads block_size as an unsigned int and rejects `(int)block_size <= 0`.
_INT_MAX = 2**31 - 1
_U32_MAX = 2**32 - 1


class FrameStatus(enum.IntEnum):
    """nm_status values (enum nl_mmap_status)."""

    UNUSED = 0
    RESERVED = 1
    VALID = 2
    COPY = 3
    SKIP = 4


UNUSED = FrameStatus.UNUSED.value
RESERVED = FrameStatus.RESERVED.value
VALID = FrameStatus.VALID.value
COPY = FrameStatus.COPY.value
SKIP = FrameStatus.SKIP.value


@attrs.frozen
class FrameHeader:
    """One ``struct nl_mmap_hdr``."""

    status: int
    len: int
    group: int = 0
    pid: int = 0
    uid: int = 0
    gid: int = 0

    def pack(self) -> bytes:
        return NL_MMAP_HDR.pack(self.status, self.len, self.group, self.pid, self.uid, self.gid)

    @classmethod
    def unpack_from(cls, buffer: Any, offset: int = 0) -> FrameHeader:
        return cls(*NL_MMAP_HDR.unpack_from(buffer, offset))


@attrs.frozen
class RingConfig:
    """Ring geometry: ``struct nl_mmap_req`` without the ``nm_`` prefixes.

    >>> RingConfig.for_frames(frame_size=16384, frame_nr=64)
    RingConfig(block_size=16384, block_nr=64, frame_size=16384, frame_nr=64)

    :meth:`validate` applies the kernel's checks (``netlink_set_ring``) and
    raises :class:`RingConfigError` naming the broken invariant, so a bad
    geometry fails before any syscall.
    """

    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int

    @classmethod
    def for_frames(cls, frame_size: int, frame_nr: int, page_size: int = DEFAULT_PAGE_SIZE) -> RingConfig:
        """The smallest blocks that hold whole frames: each block is the
        frame size rounded up to pages. The kernel wants frame_nr to fill
        whole blocks (frame_nr == frames_per_block * block_nr), so a small
        frame_nr of small frames is rounded up to fill the last block."""
        if frame_size <= 0 or frame_nr <= 0:
            raise RingConfigError("frame_size and frame_nr must be positive")
        block_size = -(-frame_size // page_size) * page_size
        per_block = block_size // frame_size
        block_nr = -(-frame_nr // per_block)
        config = cls(block_size, block_nr, frame_size, per_block * block_nr)
        config.validate(page_size)
        return config

    @classmethod
    def teardown(cls) -> RingConfig:
        """block_nr 0 and frame_nr 0: the request that removes a ring."""
        return cls(0, 0, 0, 0)

    @property
    def is_teardown(self) -> bool:
        return self.block_nr == 0 and self.frame_nr == 0

    @property
    def frames_per_block(self) -> int:
        return self.block_size // self.frame_size if self.frame_size else 0

    @property
    def ring_size(self) -> int:
        """Bytes this ring takes in the mapping: block_nr * block_size."""
        return self.block_nr * self.block_size

    @property
    def data_size(self) -> int:
        """Room for a message in one frame: frame_size - NL_MMAP_HDRLEN."""
        return self.frame_size - NL_MMAP_HDRLEN

    def frame_offset(self, index: int) -> int:
        """Byte offset of frame ``index`` from the start of its ring."""
        per_block = self.block_size // self.frame_size
        return (index // per_block) * self.block_size + (index % per_block) * self.frame_size

    def pack(self) -> bytes:
        """The 16-byte ``struct nl_mmap_req`` for setsockopt()."""
        return NL_MMAP_REQ.pack(self.block_size, self.block_nr, self.frame_size, self.frame_nr)

    def problems(self, page_size: int = DEFAULT_PAGE_SIZE) -> list[str]:
        """Every invariant ``netlink_set_ring`` would reject (EINVAL) for, in
        words; empty when the kernel accepts the geometry."""
        if self.is_teardown:
            return []  # the kernel ignores block_size and frame_size here
        found: list[str] = []
        for name in ("block_size", "block_nr", "frame_size", "frame_nr"):
            value = getattr(self, name)
            if not 0 <= value <= _U32_MAX:
                found.append(f"{name} {value} does not fit an unsigned 32-bit field")
        if found:
            return found
        if self.block_nr == 0:
            found.append(f"block_nr 0 with frame_nr {self.frame_nr}: a teardown needs frame_nr 0 too")
            return found
        if self.block_size == 0 or self.block_size > _INT_MAX:
            found.append(f"block_size {self.block_size} must be between 1 and 2^31-1 (the kernel checks (int)block_size > 0)")
        elif self.block_size % page_size:
            found.append(f"block_size {self.block_size} is not a multiple of the page size {page_size}")
        if self.frame_size < NL_MMAP_HDRLEN:
            found.append(f"frame_size {self.frame_size} is smaller than the {NL_MMAP_HDRLEN}-byte frame header (NL_MMAP_HDRLEN)")
        elif self.frame_size % NL_MMAP_MSG_ALIGNMENT:
            found.append(f"frame_size {self.frame_size} is not a multiple of NL_MMAP_MSG_ALIGNMENT ({NL_MMAP_MSG_ALIGNMENT})")
        if self.frame_size > self.block_size:
            found.append(f"frame_size {self.frame_size} is larger than block_size {self.block_size}")
        if not found:
            per_block = self.block_size // self.frame_size
            if self.frame_nr != per_block * self.block_nr:
                found.append(
                    f"frame_nr {self.frame_nr} != {per_block} frames per block x {self.block_nr} blocks "
                    f"(= {per_block * self.block_nr})"
                )
        return found

    def validate(self, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        """Raise :class:`RingConfigError` if the kernel would reject this ring."""
        found = self.problems(page_size)
        if found:
            raise RingConfigError(f"invalid ring {self}: " + "; ".join(found))


class FrameRing:
    """A cursor over one ring's frames in a writable buffer.

    The same class serves the user side (RX: read VALID/COPY frames in order,
    release or hold them; TX: reserve an UNUSED frame, commit it VALID) and
    the producer side of the emulated backend and the simulated kernel
    (which write frames and consume TX frames).

    Ordering (DESIGN.md section 1): the status word is read first and the
    data after it; on release or commit, data and nm_len are written first
    and the status word last. CPython performs these stores in program order.
    """

    __slots__ = ("buffer", "config", "base", "frame_nr", "head", "offsets", "_data_offsets")

    def __init__(self, buffer: Any, config: RingConfig, base: int = 0, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        config.validate(page_size)
        if base + config.ring_size > len(buffer):
            raise ValueError(f"a ring of {config.ring_size} bytes at offset {base} does not fit a {len(buffer)}-byte buffer")
        self.buffer = buffer
        self.config = config
        self.base = base
        self.frame_nr = config.frame_nr
        self.head = 0
        self.offsets = [base + config.frame_offset(i) for i in range(config.frame_nr)]
        self._data_offsets = [offset + NL_MMAP_HDRLEN for offset in self.offsets]

    # -- addressing ---------------------------------------------------------
    def offset(self, index: int) -> int:
        """Byte offset of frame ``index``'s header in the buffer."""
        return self.offsets[index]

    def data_offset(self, index: int) -> int:
        return self._data_offsets[index]

    def next_index(self, index: int) -> int:
        index += 1
        return 0 if index == self.frame_nr else index

    # -- header access -----------------------------------------------------
    def status(self, index: int) -> int:
        return _STATUS.unpack_from(self.buffer, self.offsets[index])[0]  # type: ignore[no-any-return]

    def set_status(self, index: int, status: int) -> None:
        _STATUS.pack_into(self.buffer, self.offsets[index], status)

    def header(self, index: int) -> FrameHeader:
        return FrameHeader.unpack_from(self.buffer, self.offsets[index])

    def raw_header(self, index: int) -> tuple[int, int, int, int, int, int]:
        return NL_MMAP_HDR.unpack_from(self.buffer, self.offsets[index])  # type: ignore[return-value]

    def write_header(self, index: int, header: FrameHeader) -> None:
        """Write a whole header, status word last."""
        offset = self.offsets[index]
        NL_MMAP_HDR.pack_into(self.buffer, offset, UNUSED if header.status != UNUSED else 0, header.len, header.group, header.pid, header.uid, header.gid)
        _STATUS.pack_into(self.buffer, offset, header.status)

    def statuses(self) -> str:
        """Every frame's status as a letter (U/R/V/C/S), as the probe notes print them."""
        letters = "URVCS"
        return "".join(letters[s] if s < 5 else "?" for s in (self.status(i) for i in range(self.frame_nr)))

    # -- user side, RX -------------------------------------------------------
    def release(self, index: int) -> None:
        """Give an RX frame back to the kernel (nm_status = UNUSED)."""
        _STATUS.pack_into(self.buffer, self.offsets[index], UNUSED)

    def hold(self, index: int) -> None:
        """Keep an RX frame for later (nm_status = SKIP): the ring path steps past it."""
        _STATUS.pack_into(self.buffer, self.offsets[index], SKIP)

    # -- user side, TX -------------------------------------------------------
    def reserve(self) -> int | None:
        """The TX head frame if user space owns it (UNUSED), else None.
        Does not advance; :meth:`commit` does."""
        index = self.head
        if _STATUS.unpack_from(self.buffer, self.offsets[index])[0] != UNUSED:
            return None
        return index

    def commit(self, index: int, length: int) -> None:
        """Hand a written TX frame to the kernel: nm_len first, VALID last."""
        if length > self.config.frame_size - NL_MMAP_HDRLEN:
            raise ValueError(f"{length} bytes do not fit a frame's {self.config.frame_size - NL_MMAP_HDRLEN}-byte data area")
        offset = self.offsets[index]
        _STATUS.pack_into(self.buffer, offset + 4, length)
        _STATUS.pack_into(self.buffer, offset, VALID)
        self.head = self.next_index(index)

    # -- producer side (emulated backend, simulated kernel) -------------------
    def forward_past_skip(self) -> None:
        """Step the producer head past SKIP frames, as netlink_forward_ring()
        does before the ring path writes a frame. Stops after one lap."""
        for _ in range(self.frame_nr):
            if _STATUS.unpack_from(self.buffer, self.offsets[self.head])[0] != SKIP:
                return
            self.head = self.next_index(self.head)

    def produce(self, status: int, length: int, group: int = 0, pid: int = 0, uid: int = 0, gid: int = 0) -> int:
        """Fill the header of the head frame (data already written) and
        advance; returns the frame index. The caller checked it was UNUSED."""
        index = self.head
        offset = self.offsets[index]
        NL_MMAP_HDR.pack_into(self.buffer, offset, UNUSED, length, group, pid, uid, gid)
        _STATUS.pack_into(self.buffer, offset, status)
        self.head = self.next_index(index)
        return index
