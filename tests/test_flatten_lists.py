"""flatten_lists, the compiled iterator a dump hands its messages out
through, against its pure reference (aionlmmap.message.flatten_lists): the
same items in the same order, the same end (exhaustion, an exception from
the lists, cancellation), and the source closed on ``aclose()``, whatever
lists the source makes, on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aionlmmap
from aionlmmap import Message, _requests, message
from aionlmmap.constants import NLM_F_DUMP, NLM_F_REQUEST, RTM_GETROUTE
from aionlmmap.message import ReceivedFrame

from conftest import compiled_core, ip, run

speedups = compiled_core()
TWINS: dict[str, Callable[[AsyncIterator[list[Any]]], AsyncIterator[Any]]] = {
    "pure": message._pure_flatten_lists,
    "compiled": speedups.flatten_lists,
}


class Boom(Exception):
    pass


class Source:
    """An async generator of lists that records how it ended."""

    def __init__(self, lists: list[list[Any]], raise_after: int | None, sleeps: bool) -> None:
        self.lists = lists
        self.raise_after = raise_after
        self.sleeps = sleeps
        self.ended: str | None = None

    async def run(self) -> AsyncIterator[list[Any]]:
        try:
            for index, items in enumerate(self.lists):
                if index == self.raise_after:
                    raise Boom(f"after {index} lists")
                if self.sleeps:
                    await asyncio.sleep(0)
                yield items
            self.ended = "exhausted"
        except GeneratorExit:
            self.ended = "closed"
            raise
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        except Boom:
            self.ended = "raised"
            raise


def generated_case(rng: random.Random) -> tuple[list[list[Any]], int | None, int | None, bool]:
    """Lists (empty ones among them; items are Messages, tuples, ints),
    where the source raises (or never), where the consumer stops (or never),
    and whether the source suspends between lists."""
    lists: list[list[Any]] = []
    for number in range(rng.randint(0, 8)):
        kind = rng.choice(["empty", "messages", "tuples", "ints"])
        size = 0 if kind == "empty" else rng.randint(1, 40)
        if kind == "messages":
            frame = ReceivedFrame(bytes(64))
            lists.append([tuple.__new__(Message, (16 + i, 2, number, 0, 16, 16, frame)) for i in range(size)])
        elif kind == "tuples":
            lists.append([(number, i) for i in range(size)])  # a tuple must come out whole, not unpacked
        else:
            lists.append(list(range(number * 100, number * 100 + size)))
    raise_after = rng.choice([None, rng.randint(0, len(lists))])
    total = sum(map(len, lists))
    stop_after = rng.choice([None, rng.randint(0, total)]) if total else None
    return lists, raise_after, stop_after, rng.random() < 0.5


async def consume(twin: str, case: tuple[list[list[Any]], int | None, int | None, bool]) -> tuple[list[Any], str | None, str | None]:
    lists, raise_after, stop_after, sleeps = case
    source = Source(lists, raise_after, sleeps)
    iterator = TWINS[twin](source.run())
    items: list[Any] = []
    raised = None
    try:
        async for item in iterator:
            if stop_after is not None and len(items) == stop_after:
                break
            items.append(item)
    except Boom as exc:
        raised = str(exc)
    await iterator.aclose()  # type: ignore[attr-defined]
    return items, raised, source.ended


async def test_twins_agree_on_generated_lists_ends_and_early_stops() -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    for number in range(400):
        case = generated_case(rng)
        pure = await consume("pure", case)
        compiled = await consume("compiled", case)
        assert compiled == pure, f"seed {seed}, case {number}: {case}"
        expected = [item for items in case[0][: case[1]] for item in items][: case[2]]
        assert pure[0] == expected and all(type(a) is type(b) for a, b in zip(pure[0], expected))


@pytest.mark.parametrize("twin", TWINS)
async def test_a_cancelled_wait_for_the_next_list_cancels_the_source(twin: str) -> None:
    gate = asyncio.Event()
    ended: list[str] = []

    async def source() -> AsyncIterator[list[int]]:
        try:
            yield [1, 2]
            await gate.wait()
            yield [3]
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    iterator = TWINS[twin](source())
    got: list[int] = []

    async def run() -> None:
        async for item in iterator:
            got.append(item)

    task = asyncio.ensure_future(run())
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == [1, 2] and ended == ["cancelled"]


async def test_a_ready_step_awaited_the_generic_way_gives_the_item_whole() -> None:
    """Where the interpreter does not use am_send (tp_iternext, as CPython
    3.12's SEND and ``yield from`` on other paths do) the item ends the
    await as StopIteration's value; a tuple item comes out whole."""

    async def source() -> AsyncIterator[list[Any]]:
        yield [("a", 1), ("b", 2)]

    iterator = speedups.flatten_lists(source())
    assert await iterator.__anext__() == ("a", 1)
    step = iterator.__anext__().__await__()
    with pytest.raises(StopIteration) as stop:
        next(step)
    assert stop.value.value == ("b", 2)
    with pytest.raises(RuntimeError, match="no item ready"):
        next(step)  # a second await of one step is an error, never a read past the list
    with pytest.raises(StopAsyncIteration):
        await iterator.__anext__()


async def test_a_real_dump_through_the_twin_equals_the_per_message_generator(netns: str) -> None:
    """On the compiled core up to CPython 3.11, ring.dump() is the compiled
    flatten_lists over the chunk generator; a dump of generated links and
    routes (several chunks) gives the same messages as the generator that
    yields one message a step, and a stop mid-chunk frees the dump slot."""
    assert _requests.FLATTEN_IN_C == (_requests._MESSAGES_IN_C and sys.version_info < (3, 12))
    rng = random.Random(random.SystemRandom().randrange(1 << 30))
    ip(netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip(netns, "link", "set", "d0", "up")
    lines = [f"route add 10.{i >> 8}.{i & 255}.0/24 dev d0 metric {rng.randint(0, 99)}" for i in range(rng.randint(300, 900))]
    run("ip", "-n", netns, "-batch", "-", input="\n".join(lines) + "\n")
    request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(12))
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        iterator = ring.dump(request)
        assert isinstance(iterator, speedups.flatten_lists) == _requests.FLATTEN_IN_C
        flattened = [(m[0], m[1], bytes(m.payload)) async for m in iterator]
        per_message = [(m[0], m[1], bytes(m.payload)) async for m in ring._dump(request, "raise", _requests._YIELD_MESSAGES)]
        assert len(flattened) >= len(lines) and flattened == per_message
        stop = rng.randint(1, len(flattened) - 1)
        async for m in ring.dump(request):
            stop -= 1
            if not stop:
                break
        async with asyncio.timeout(10):  # the abandoned dump ends in the kernel and frees the slot
            assert [bytes(m.payload) async for m in ring.dump(request)] == [payload for _, _, payload in flattened]
        # docs/ring.md: contextlib.aclosing(ring.dump(...)) closes it on the way out
        async with contextlib.aclosing(ring.dump(request)) as closing:
            async for m in closing:
                assert bytes(m.payload) == flattened[0][2]
                break
        async with asyncio.timeout(10):
            assert len([m async for m in ring.dump(request)]) == len(flattened)
