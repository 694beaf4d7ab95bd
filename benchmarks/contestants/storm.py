"""Notification-storm receivers (scenario ``storm``), run inside the storm
namespace: ``python -m benchmarks.contestants.storm NAME VIEW_FILE [--rcvbuf N]``.

A receiver subscribes to the link, address and route groups, prints
``ready``, then counts RTM_NEWROUTE/RTM_DELROUTE of the main table and keeps
the set of /32 destinations under 10.0.0.0/8 it believes exist. It stops at
the sentinel route (table 242), after 3 s without a message once the storm
began, or after 120 s. It writes that view to VIEW_FILE (one address a line)
and prints ``{"count", "elapsed", "overruns", "sentinel", "rcvbuf"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
import struct
import time
from typing import Any

from ._child import emit, run_on_loop, unavailable

SENTINEL_TABLE = 242
RT_TABLE_MAIN = 254
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST, RTA_TABLE = 1, 15
RTMSG = struct.Struct("=BBBBBBBBI")
#: rtnetlink groups (include/uapi/linux/rtnetlink.h, enum rtnetlink_groups)
RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE = 1, 5, 7, 9, 11
GROUPS = (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE)
IDLE_SECONDS = 3.0
DEADLINE_SECONDS = 120.0


class Tally:
    """What a receiver saw: counts, timing and its view of the routes."""

    def __init__(self) -> None:
        self.received = 0
        self.overruns = 0
        self.sentinel = False
        self.first = 0.0
        self.last = 0.0
        self.view: set[str] = set()

    def route(self, action_new: bool, table: int, dst: str | None, prefixlen: int) -> bool:
        """Account one route event; True once the sentinel arrived."""
        now = time.perf_counter()
        if not self.first:
            self.first = now
        self.last = now
        if table == SENTINEL_TABLE:
            self.sentinel = action_new
            return self.sentinel
        if table != RT_TABLE_MAIN or prefixlen != 32 or dst is None or not dst.startswith("10."):
            return False
        self.received += 1
        if action_new:
            self.view.add(dst)
        else:
            self.view.discard(dst)
        return False

    def touch(self) -> None:
        now = time.perf_counter()
        if not self.first:
            self.first = now
        self.last = now


async def until_quiet(consume: Any, tally: Tally) -> None:
    """Run ``consume()`` until it returns, the storm goes quiet for
    IDLE_SECONDS (1 s once the sentinel arrived: a resyncing monitor may
    still owe the differences of an overrun noticed after it), or
    DEADLINE_SECONDS pass. A watchdog, so the hot loop pays nothing per
    message for the bound."""
    task = asyncio.ensure_future(consume())
    started = time.perf_counter()
    try:
        while not task.done():
            await asyncio.wait([task], timeout=0.25)
            now = time.perf_counter()
            quiet = tally.last and now - tally.last > (1.0 if tally.sentinel else IDLE_SECONDS)
            if quiet or now - started > DEADLINE_SECONDS:
                task.cancel()
        await task
    except asyncio.CancelledError:
        pass


def _rcvbuf_of(fd: int) -> int:
    probe = socket.socket(fileno=__import__("os").dup(fd))
    try:
        return probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        probe.close()


def aionlmmap_ring(args: argparse.Namespace, tally: Tally) -> dict[str, Any]:
    """``async for msg in ring``, decoding the rtmsg and RTA_DST itself;
    an OverrunError is counted and the iteration resumed."""
    import aionlmmap
    from aionlmmap.attributes import parse_attributes

    unpack_rtmsg = RTMSG.unpack_from

    async def main() -> dict[str, Any]:
        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=GROUPS, rcvbuf=args.rcvbuf or None) as ring:
            print("ready", flush=True)

            async def consume() -> None:
                while True:
                    try:
                        async for msg in ring:
                            msg_type = msg.type
                            if msg_type != RTM_NEWROUTE and msg_type != RTM_DELROUTE:
                                tally.touch()
                                continue
                            payload = msg.payload
                            family, dst_len, _s, _t, table, _p, _sc, _ty, _f = unpack_rtmsg(payload, 0)
                            if family != socket.AF_INET:
                                continue
                            attrs = parse_attributes(payload, RTMSG.size, len(payload))
                            if RTA_TABLE in attrs:
                                start, _end = attrs[RTA_TABLE]
                                table = int.from_bytes(payload[start : start + 4], "little")
                            dst = None
                            if RTA_DST in attrs:
                                start, end = attrs[RTA_DST]
                                dst = socket.inet_ntop(socket.AF_INET, payload[start:end])
                            tally.route(msg_type == RTM_NEWROUTE, table, dst, dst_len)
                        return
                    except aionlmmap.OverrunError:
                        tally.overruns += 1

            await until_quiet(consume, tally)
            return {"rcvbuf": _rcvbuf_of(ring.fileno()), "backend": ring.backend, "ring_overruns": ring.stats.overruns}

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def aionlmmap_monitor(args: argparse.Namespace, tally: Tally) -> dict[str, Any]:
    """``rtnl.monitor(resync=True)``: route events as objects; after an
    overrun the monitor re-dumps and yields the differences."""
    try:
        from aionlmmap import rtnl
    except ImportError as error:
        unavailable(f"aionlmmap.rtnl is not importable yet ({error})")

    async def main() -> dict[str, Any]:
        async with rtnl.open() as nl:
            # The monitor opens a ring of its own; ring options go to monitor().
            ring_options: dict[str, Any] = {"rcvbuf": args.rcvbuf} if args.rcvbuf else {}
            monitor = nl.monitor(links=True, addresses=True, routes=True, resync=True, **ring_options)
            ready = False

            async def consume() -> None:
                nonlocal ready
                async for event in monitor:
                    if not ready:
                        # The first event is the initial state (links always
                        # exist): the subscription is live from here on.
                        print("ready", flush=True)
                        ready = True
                    if event.kind != "route":
                        tally.touch()
                        continue
                    family, table, dst, prefixlen = event.obj.key[:4]
                    if family not in (socket.AF_INET, 4):
                        continue
                    table = {"main": RT_TABLE_MAIN}.get(table, table)
                    tally.route(event.action == "new", int(table), None if dst is None else str(dst).split("/")[0], int(prefixlen))

            await until_quiet(consume, tally)
            await monitor.aclose()
            # resync=True hides overruns by design (it re-dumps and yields the
            # difference): the final view is what shows whether it kept up.
            return {"overruns_visible": False}

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def pyroute2_async(args: argparse.Namespace, tally: Tally) -> dict[str, Any]:
    """pyroute2's AsyncIPRoute bound to the same groups; an ENOBUFS from
    get() is counted and reading resumed."""
    try:
        from pyroute2 import AsyncIPRoute
    except ImportError:
        unavailable("pyroute2 >= 0.9 (AsyncIPRoute) is not installed: pip install pyroute2")
    mask = 0
    for group in GROUPS:
        mask |= 1 << (group - 1)

    async def main() -> dict[str, Any]:
        ipr = AsyncIPRoute(rcvbuf=args.rcvbuf) if args.rcvbuf else AsyncIPRoute()
        try:
            await ipr.setup_endpoint()
        except ValueError as error:
            unavailable(f"pyroute2's AsyncIPRoute cannot run on {args.loop} ({error})")
        async with ipr:
            await ipr.bind(groups=mask)
            print("ready", flush=True)

            async def consume() -> None:
                while True:
                    try:
                        async for message in ipr.get():
                            event = message.get("event")
                            if event != "RTM_NEWROUTE" and event != "RTM_DELROUTE":
                                tally.touch()
                                continue
                            if message.get("family") != socket.AF_INET:
                                continue
                            table = message.get("table") or message["table"]
                            tally.route(event == "RTM_NEWROUTE", int(table), message.get("dst"), int(message["dst_len"]))
                    except OSError as error:
                        if error.errno != errno.ENOBUFS:
                            raise
                        tally.overruns += 1

            await until_quiet(consume, tally)
            # pyroute2 keeps an ENOBUFS raised inside its transport in
            # status["error"]: the endpoint stops delivering after it.
            error = ipr.status.get("error")
            if isinstance(error, OSError) and error.errno == errno.ENOBUFS:
                tally.overruns += 1
                return {"receiver_died": True}
            return {"rcvbuf": ipr.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), "receiver_died": False}

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


CONTESTANTS = {"aionlmmap-ring": aionlmmap_ring, "aionlmmap-monitor": aionlmmap_monitor, "pyroute2-async": pyroute2_async}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(CONTESTANTS))
    parser.add_argument("view_file")
    parser.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF in bytes (0: the library's default)")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = parser.parse_args()
    tally = Tally()
    fields = CONTESTANTS[args.name](args, tally)
    with open(args.view_file, "w") as out:
        for dst in sorted(tally.view):
            out.write(dst + "\n")
    emit(count=tally.received, elapsed=max(0.0, tally.last - tally.first), overruns=tally.overruns, sentinel=tally.sentinel, **fields)


if __name__ == "__main__":
    main()
