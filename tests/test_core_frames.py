"""Ring geometry validation (the kernel's netlink_set_ring rules) and the frame cursor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aionlmmap import FrameHeader, FrameStatus, RingConfig, RingConfigError
from aionlmmap.frames import FrameRing


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (RingConfig(4096, 4, 4094, 4), "not a multiple of NL_MMAP_MSG_ALIGNMENT"),
        (RingConfig(4096, 1, 20, 204), "smaller than the 24-byte frame header"),
        (RingConfig(4096, 1, 0, 1), "smaller than the 24-byte frame header"),
        (RingConfig(4000, 4, 2000, 8), "not a multiple of the page size"),
        (RingConfig(0, 4, 2048, 8), "between 1 and 2^31-1"),
        (RingConfig(2**31, 1, 4096, 2**19), "between 1 and 2^31-1"),
        (RingConfig(4096, 4, 8192, 2), "larger than block_size"),
        (RingConfig(4096, 4, 2048, 7), "frame_nr 7 != 2 frames per block x 4 blocks"),
        (RingConfig(4096, 4, 2048, 9), "frame_nr 9 != 2 frames per block x 4 blocks"),
        (RingConfig(4096, 4, 2048, 0), "frame_nr 0 != 2 frames per block"),
        (RingConfig(4096, 0, 2048, 4), "block_nr 0 with frame_nr 4"),
    ],
)
def test_every_geometry_the_kernel_rejects_is_rejected_with_its_invariant(config: RingConfig, words: str) -> None:
    with pytest.raises(RingConfigError, match=words.replace("^", r"\^")):
        config.validate()


@pytest.mark.parametrize(
    "config",
    [
        RingConfig(16384, 4, 4096, 16),
        RingConfig(65536, 64, 16384, 256),
        RingConfig(4096, 2, 24, 340),
        RingConfig(4096, 4, 3000, 4),
        RingConfig(4096, 1, 2052, 1),
        RingConfig(8 * 1024 * 1024, 1, 8 * 1024 * 1024, 1),
        RingConfig(0, 0, 0, 0),
        RingConfig(12345, 0, 7, 0),
    ],
)
def test_geometries_the_kernel_accepts_pass(config: RingConfig) -> None:
    config.validate()


def test_frames_are_not_contiguous_when_block_size_is_not_a_multiple_of_frame_size() -> None:
    config = RingConfig(4096, 4, 3000, 4)
    assert [config.frame_offset(i) for i in range(4)] == [0, 4096, 8192, 12288]
    config = RingConfig(8192, 2, 3000, 4)
    assert [config.frame_offset(i) for i in range(4)] == [0, 3000, 8192, 11192]


@given(st.integers(24, 70000).map(lambda n: n - n % 4), st.integers(1, 64))
def test_for_frames_always_builds_a_valid_ring_of_the_asked_size(frame_size: int, frame_nr: int) -> None:
    config = RingConfig.for_frames(frame_size, frame_nr)
    config.validate()
    assert config.frame_size == frame_size
    assert frame_nr <= config.frame_nr < frame_nr + config.frames_per_block


def test_pack_is_the_16_byte_nl_mmap_req() -> None:
    assert RingConfig(16384, 4, 4096, 16).pack() == (16384).to_bytes(4, "little") + (4).to_bytes(4, "little") + (4096).to_bytes(4, "little") + (16).to_bytes(4, "little")


def test_tx_reserve_commit_writes_length_then_valid_and_advances() -> None:
    config = RingConfig.for_frames(2048, 4)
    ring = FrameRing(bytearray(config.ring_size), config)
    index = ring.reserve()
    assert index == 0
    ring.commit(index, 100)
    assert ring.header(0) == FrameHeader(FrameStatus.VALID, 100)
    assert ring.reserve() == 1
    for i in (1, 2, 3):
        ring.commit(i, 10)
    assert ring.reserve() is None  # the head frame (0) still belongs to the kernel
    with pytest.raises(ValueError, match="data area"):
        ring.commit(0, 2048)


@given(st.lists(st.sampled_from(["produce", "skip_head", "release_all"]), max_size=60))
def test_the_producer_never_writes_a_frame_that_is_not_unused(operations: list[str]) -> None:
    config = RingConfig(2048, 1, 256, 8)
    ring = FrameRing(bytearray(config.ring_size), config, page_size=2048)
    for operation in operations:
        if operation == "produce":
            ring.forward_past_skip()
            if ring.status(ring.head) == FrameStatus.UNUSED:
                before = ring.status(ring.head)
                index = ring.produce(FrameStatus.VALID, 10)
                assert before == FrameStatus.UNUSED
                assert ring.status(index) == FrameStatus.VALID
        elif operation == "skip_head":
            for i in range(8):
                if ring.status(i) == FrameStatus.VALID:
                    ring.hold(i)
                    break
        else:
            for i in range(8):
                ring.release(i)
        statuses = ring.statuses()
        assert set(statuses) <= set("UVS")


def test_forward_past_skip_stops_after_one_lap() -> None:
    config = RingConfig(1024, 1, 256, 4)
    ring = FrameRing(bytearray(config.ring_size), config, page_size=1024)
    for i in range(4):
        ring.hold(i)
    ring.forward_past_skip()
    assert ring.statuses() == "SSSS"
