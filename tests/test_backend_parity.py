"""One behavioural suite, three worlds: the emulated and the uring backends
over the real kernel (inside a throwaway namespace) and the kernel ring
backend over aionlmmap.testing's simulated Linux 4.4 kernel. Passing in all
is what says the backends behave the same behind the Ring API.

Every test also runs on asyncio and uvloop (conftest), so six times.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run

import aionlmmap
from aionlmmap import AttributeBuilder, Attributes, ClosedResourceError, Message, OverrunError, RingConfig
from aionlmmap.constants import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTNLGRP_LINK,
)
from aionlmmap.testing import SimulatedKernel

IFLA_IFNAME = 3
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFINFOMSG = struct.Struct("=BxHiII")


class RealWorld:
    """The emulated (or uring) backend on this machine's kernel, in a namespace."""

    def __init__(self, netns: str, backend: str = "emulated") -> None:
        self.netns = netns
        self.backend = backend

    def open(self, **kwargs: Any) -> aionlmmap.Ring:
        return aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=self.netns, backend=self.backend, **kwargs)  # type: ignore[arg-type]

    async def add_links(self, *names: str) -> None:
        # veth pairs: this kernel has no dummy module; the peer gets a "p" suffix.
        batch = "".join(f"link add {name} type veth peer name {name}p\n" for name in names)
        await asyncio.to_thread(run, "ip", "-n", self.netns, "-batch", "-", input=batch)

    def newlink(self, name: str) -> Message:
        peer = IFINFOMSG.pack(0, 0, 0, 0, 0) + AttributeBuilder().add_str(IFLA_IFNAME, name + "p").build()
        builder = AttributeBuilder().add_str(IFLA_IFNAME, name)
        with builder.nested(IFLA_LINKINFO):
            builder.add_str(IFLA_INFO_KIND, "veth")
            with builder.nested(IFLA_INFO_DATA):
                builder.add(VETH_INFO_PEER, peer)
        return Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload=IFINFOMSG.pack(0, 0, 0, 0, 0) + builder.build())


class SimulatedWorld:
    """The kernel ring backend on the simulated 4.4 kernel."""

    backend = "kernel"

    def __init__(self) -> None:
        self.kernel = SimulatedKernel()

    def open(self, **kwargs: Any) -> aionlmmap.Ring:
        return self.kernel.open(aionlmmap.NETLINK_ROUTE, **kwargs)  # type: ignore[no-any-return]

    async def add_links(self, *names: str) -> None:
        for name in names:
            self.kernel.rtnl.add_link(name)
        await asyncio.sleep(0)

    def newlink(self, name: str) -> Message:
        payload = IFINFOMSG.pack(0, 0, 0, 0, 0) + AttributeBuilder().add_str(IFLA_IFNAME, name).build()
        return Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload=payload)


@pytest.fixture(params=["emulated-real-kernel", "uring-real-kernel", "kernel-simulated-kernel"])
def world(request: pytest.FixtureRequest) -> Iterator[RealWorld | SimulatedWorld]:
    if request.param == "emulated-real-kernel":
        yield RealWorld(request.getfixturevalue("netns"))
    elif request.param == "uring-real-kernel":
        yield RealWorld(request.getfixturevalue("netns"), "uring")
    else:
        yield SimulatedWorld()


def getlink_dump() -> Message:
    return Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16))


def getlink(name: str) -> Message:
    return Message(RTM_GETLINK, NLM_F_REQUEST, payload=IFINFOMSG.pack(0, 0, 0, 0, 0) + AttributeBuilder().add_str(IFLA_IFNAME, name).build())


def dellink(name: str) -> Message:
    return Message(RTM_DELLINK, 0, payload=IFINFOMSG.pack(0, 0, 0, 0, 0) + AttributeBuilder().add_str(IFLA_IFNAME, name).build())


def link_name(msg: Message) -> str | None:
    return Attributes(msg.payload, IFINFOMSG.size).get_str(IFLA_IFNAME)


async def dump_names(ring: aionlmmap.Ring) -> list[str]:
    names = []
    async with asyncio.timeout(20):
        async for msg in ring.dump(getlink_dump()):
            assert msg.type == RTM_NEWLINK
            names.append(link_name(msg) or "")
    return names


async def wait_for_link_event(ring: aionlmmap.Ring, msg_type: int, name: str) -> Message:
    async with asyncio.timeout(10):
        async for msg in ring:
            if msg.type == msg_type and link_name(msg) == name:
                return msg.copy()
    raise AssertionError("iterator ended")


async def test_the_ring_reports_its_backend(world: Any) -> None:
    async with world.open() as ring:
        assert ring.backend == world.backend


async def test_a_dump_sees_every_link(world: Any) -> None:
    names = [f"pa{i}" for i in range(30)]
    await world.add_links(*names)
    async with world.open() as ring:
        seen = await dump_names(ring)
    assert "lo" in seen
    assert set(names) <= set(seen)
    assert len(seen) == len(set(seen))


async def test_a_dump_larger_than_the_ring_streams_through_it(world: Any) -> None:
    names = [f"ps{i}" for i in range(120)]
    await world.add_links(*names)
    async with world.open(rx=RingConfig.for_frames(4096, 4)) as ring:
        seen = await dump_names(ring)
        assert set(names) <= set(seen)
        assert ring.stats.frames > 4  # the ring was reused many times over


async def test_dump_all_returns_copies_that_outlive_the_ring(world: Any) -> None:
    await world.add_links("pc0", "pc1")
    async with world.open() as ring:
        messages = await ring.dump_all(getlink_dump())
    names = {link_name(m) for m in messages}  # the ring is closed now
    assert {"lo", "pc0", "pc1"} <= names


async def test_a_request_is_acked_and_its_notification_arrives_on_the_group(world: Any) -> None:
    async with world.open(groups=[RTNLGRP_LINK]) as ring:
        replies = await ring.request(world.newlink("pn0"))
        assert replies == []
        event = await wait_for_link_event(ring, RTM_NEWLINK, "pn0")
        assert event.group == RTNLGRP_LINK
        assert event.sender_pid == 0
        seen = await dump_names(ring)
        assert "pn0" in seen


async def test_a_get_request_returns_its_reply(world: Any) -> None:
    async with world.open() as ring:
        replies = await ring.request(getlink("lo"))
        assert [link_name(m) for m in replies] == ["lo"]
        assert replies[0].type == RTM_NEWLINK


async def test_creating_an_existing_link_raises_file_exists_error(world: Any) -> None:
    await world.add_links("pe0")
    async with world.open() as ring:
        with pytest.raises(FileExistsError) as info:
            await ring.request(world.newlink("pe0"))
        assert info.value.errno == errno.EEXIST
        assert isinstance(info.value, aionlmmap.NetlinkError)
        # the ring keeps working after an error
        assert "pe0" in await dump_names(ring)


async def test_deleting_a_missing_link_raises_enodev(world: Any) -> None:
    async with world.open() as ring:
        with pytest.raises(aionlmmap.NetlinkError) as info:
            await ring.request(dellink("nosuchlink"))
        assert info.value.errno == errno.ENODEV


async def test_concurrent_requests_and_dumps_share_one_socket(world: Any) -> None:
    await world.add_links(*(f"pq{i}" for i in range(10)))
    async with world.open() as ring:
        results = await asyncio.gather(
            dump_names(ring),
            ring.request(getlink("lo")),
            dump_names(ring),
            ring.request(getlink("pq3")),
        )
        assert set(results[0]) == set(results[2])
        assert link_name(results[1][0]) == "lo"
        assert link_name(results[3][0]) == "pq3"


async def test_a_borrowed_message_raises_after_the_iterator_moves_on(world: Any) -> None:
    await world.add_links("pb0")
    async with world.open() as ring:
        kept = []
        async for msg in ring.dump(getlink_dump()):
            kept.append(msg)
        with pytest.raises(aionlmmap.ReleasedMessageError):
            bytes(kept[0].payload)


async def test_a_held_message_survives_later_frames_until_released(world: Any) -> None:
    await world.add_links(*(f"ph{i}" for i in range(60)))
    # frames large enough for the biggest dump chunk of either kernel: the
    # chunks are parsed in place, and two dumps wrap the 4-frame ring
    async with world.open(rx=RingConfig.for_frames(36864, 4)) as ring:
        held = None
        held_bytes = b""
        count = 0
        async for msg in ring.dump(getlink_dump()):
            if held is None:
                held = msg.hold()
                held_bytes = bytes(msg.payload)
            count += 1
        assert held is not None and count > 60
        # a second full dump through the 4-frame ring
        assert len(await dump_names(ring)) == count
        assert bytes(held.payload) == held_bytes
        assert ring.stats.frames > 4
        held.release()
        with pytest.raises(ValueError):
            held.release()  # release() without a matching hold()


async def test_an_overrun_raises_once_then_the_ring_recovers(world: Any) -> None:
    async with world.open(groups=[RTNLGRP_LINK], rcvbuf=4096, rx=RingConfig.for_frames(4096, 4)) as ring:
        # nobody iterates while 40 links appear: frames fill, the socket overruns.
        # Maybe more than once: a read the loop's reader makes mid-batch
        # empties the socket queue, which clears NETLINK_S_CONGESTED
        # (netlink_rcv_wake), and the rest of the batch overruns it anew.
        # What must hold: each overrun raises exactly once, then the ring goes on.
        await world.add_links(*(f"po{i}" for i in range(40)))
        overruns = 0
        async with asyncio.timeout(10):
            while not overruns:
                try:
                    async for _msg in ring:
                        pass
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    overruns += 1
        assert ring.stats.overruns >= 1
        # recovery: requests still work and later notifications arrive
        assert {f"po{i}" for i in range(40)} <= set(await dump_names(ring))
        # the dump's answer queued behind the batch: every overrun of it is counted by now
        counted = ring.stats.overruns
        await world.add_links("pafter")
        async with asyncio.timeout(10):
            while True:
                try:
                    await wait_for_link_event(ring, RTM_NEWLINK, "pafter")
                    break
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    overruns += 1
        assert overruns == counted == ring.stats.overruns


async def test_close_wakes_every_waiter_with_closed_resource_error(world: Any) -> None:
    ring = world.open(groups=[RTNLGRP_LINK])
    async with ring:

        async def iterate() -> None:
            async for _ in ring:
                pass

        iterator = asyncio.create_task(iterate())
        await asyncio.sleep(0.02)
        ring.close()
        with pytest.raises(ClosedResourceError):
            await iterator
        with pytest.raises(ClosedResourceError):
            await ring.request(getlink("lo"))


async def test_a_cancelled_request_leaves_the_ring_consistent(world: Any) -> None:
    async with world.open() as ring:
        task = asyncio.create_task(ring.request(getlink("lo")))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        replies = await ring.request(getlink("lo"))
        assert [link_name(m) for m in replies] == ["lo"]
        assert "lo" in await dump_names(ring)
        assert ring.stats.unsolicited == 0


async def test_an_abandoned_dump_does_not_block_the_next_dump(world: Any) -> None:
    await world.add_links(*(f"pd{i}" for i in range(40)))
    async with world.open(rx=RingConfig.for_frames(4096, 4)) as ring:
        async for _msg in ring.dump(getlink_dump()):
            break
        seen = await dump_names(ring)
        assert {f"pd{i}" for i in range(40)} <= set(seen)


async def test_a_slow_consumer_does_not_make_the_reader_spin(world: Any) -> None:
    await world.add_links(*(f"pw{i}" for i in range(20)))
    async with world.open() as ring:
        rx_before = ring.stats.rx_syscalls
        async for _msg in ring.dump(getlink_dump()):
            # the consumer sits on a borrowed message for a while
            await asyncio.sleep(0.2)
            break
        # a spinning reader would poll thousands of times in 0.2 s
        assert ring.stats.rx_syscalls - rx_before < 50


async def test_open_and_close_leak_no_fds(world: Any) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        async with world.open(groups=[RTNLGRP_LINK]) as ring:
            await ring.request(getlink("lo"))
    assert len(os.listdir("/proc/self/fd")) == before


async def test_many_concurrent_requests_on_a_small_ring_all_get_their_answers(world: Any) -> None:
    # The kernel ring builds every answer in a frame and drops it when none
    # is free (fact c.8): requests in flight are bounded by free frames
    # there, by the receive buffer on the emulated ring. No caller may see
    # a lost answer either way.
    async with world.open(rx=RingConfig.for_frames(8192, 4), rcvbuf=4 << 20) as ring:
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(ring.request(world.newlink(f"pm{i}")) for i in range(60)),
                *(ring.request(getlink("lo")) for _ in range(20)),
                ring.request_many([world.newlink(f"pr{i}") for i in range(30)]),
                dump_names(ring),
                return_exceptions=True,
            )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert results[:60] == [[]] * 60
        assert all(link_name(r[0]) == "lo" for r in results[60:80])  # type: ignore[index]
        assert results[80] == [[]] * 30
        assert ring.stats.overruns == 0
        names = set(await dump_names(ring))
        assert {f"pm{i}" for i in range(60)} | {f"pr{i}" for i in range(30)} <= names


async def test_batches_deliver_notifications_in_order_and_an_overrun_once_in_its_place(world: Any) -> None:
    # Ring.iterate_batches (what nfqueue's queue.batches() steps on): lists
    # of every message waiting, in order, none empty; with a tiny ring and
    # socket nobody reads, the socket overruns: it raises once per overrun
    # (after the messages before it), then the ring goes on.
    async with world.open(groups=[RTNLGRP_LINK]) as ring:
        await world.add_links(*(f"pr{i}" for i in range(20)))
        names: list[str] = []
        async with asyncio.timeout(10):
            async for batch in ring.iterate_batches(lambda msg: link_name(msg) if msg.type == RTM_NEWLINK else None):
                assert batch
                names += [name for name in batch if name.startswith("pr") and not name.endswith("p")]
                if len(names) == 20:
                    break
        assert names == [f"pr{i}" for i in range(20)]
    async with world.open(groups=[RTNLGRP_LINK], rcvbuf=4096, rx=RingConfig.for_frames(4096, 4)) as ring:
        await world.add_links(*(f"ps{i}" for i in range(40)))
        overruns = 0
        async with asyncio.timeout(10):
            while not overruns:
                try:
                    async for batch in ring.iterate_batches():
                        assert batch and all(msg.__class__ is Message for msg in batch)
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    overruns += 1
        assert {f"ps{i}" for i in range(40)} <= set(await dump_names(ring))
        await world.add_links("psafter")
        async with asyncio.timeout(10):
            found = False
            while not found:
                try:
                    async for batch in ring.iterate_batches(lambda msg: link_name(msg) if msg.type == RTM_NEWLINK else None):
                        if "psafter" in batch:
                            found = True
                            break
                except OverrunError as exc:
                    assert exc.errno == errno.ENOBUFS
                    overruns += 1
        assert overruns == ring.stats.overruns


async def test_a_converter_that_raises_in_a_batch_step_gives_the_frames_back(world: Any) -> None:
    # As with Ring.iterate: the error reaches the loop, and the frames the
    # step had taken go back (those not taken stay queued for the next step).
    async with world.open(groups=[RTNLGRP_LINK], rx=RingConfig.for_frames(4096, 4)) as ring:
        await world.add_links("pt0", "pt1")

        def broken(msg: Message) -> Any:
            raise RuntimeError("a converter bug")

        with pytest.raises(RuntimeError, match="a converter bug"):
            async with asyncio.timeout(10):
                async for _batch in ring.iterate_batches(broken):
                    pass
        # Pinned frames are only those still queued for the next step.
        queued = {id(entry[6] if entry.__class__ is Message else entry[0]) for entry in ring._unsolicited}
        assert all(frame is None or id(frame) in queued for frame in ring._slots), "a frame of the failed step is still pinned"
        assert {"pt0", "pt1"} <= set(await dump_names(ring))  # and the ring goes on
