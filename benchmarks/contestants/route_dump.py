"""Route-dump contestants (scenario ``route-dump``), run inside the
benchmark namespace: ``python -m benchmarks.contestants.route_dump NAME``.

Each dumps the IPv4 routes once (``--family all``: the routes of every
family and table, as ``ip route show table all`` asks) and prints
``{"count", "elapsed", "rss_before_kib", "peak_rss_kib"}``; ``elapsed`` covers
the request and the whole reply stream, not imports or socket setup.
"""

from __future__ import annotations

import argparse
import socket
import struct
from typing import Any

from ._child import Stopwatch, emit, run_on_loop, unavailable

watch = Stopwatch()

NETLINK_ROUTE = 0
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSGHDR = struct.Struct("=IHHII")
RTMSG = struct.Struct("=BBBBBBBBI")
NLATTR = struct.Struct("=HH")
#: RTA_* numbers from include/uapi/linux/rtnetlink.h
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15


#: rtm_family of the dump request (main() sets it from --family)
FAMILY = socket.AF_INET


def _dump_request(seq: int = 1) -> bytes:
    body = RTMSG.pack(FAMILY, 0, 0, 0, 0, 0, 0, 0, 0)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _socket_dump(on_message: Any) -> int:
    """A blocking dump with the socket module: recv_into one 32 KiB buffer
    (netlink_recvmsg lets the kernel size its dump chunks up to that)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    buffer = bytearray(32768)
    view = memoryview(buffer)
    unpack = NLMSGHDR.unpack_from
    count = 0
    try:
        watch.start()
        sock.sendto(_dump_request(), (0, 0))
        for _ in range(10_000_000):  # bounded: far more datagrams than any dump here
            got = sock.recv_into(view)
            offset = 0
            while offset + 16 <= got:
                length, msg_type, _flags, _seq, _pid = unpack(buffer, offset)
                if msg_type == NLMSG_DONE:
                    return count
                if msg_type == NLMSG_ERROR:
                    raise RuntimeError("the kernel answered the dump with an error")
                if length < 16:
                    raise RuntimeError("malformed netlink message")
                if on_message is not None:
                    on_message(buffer, offset + 16, offset + length)
                count += 1
                offset += (length + 3) & ~3
        raise RuntimeError("the dump did not end")
    finally:
        sock.close()


def socket_loop(_args: argparse.Namespace) -> int:
    return _socket_dump(None)


def struct_decode(_args: argparse.Namespace) -> int:
    """Decode every route into a dict with plain struct calls (what a user
    without a library would write); like every streaming contestant, the
    dicts are not kept."""
    unpack_rtmsg = RTMSG.unpack_from
    unpack_attr = NLATTR.unpack_from
    unpack_u32 = struct.Struct("=I").unpack_from

    def decode(buffer: bytearray, start: int, end: int) -> None:
        family, dst_len, _src_len, tos, table, protocol, scope, rtype, _flags = unpack_rtmsg(buffer, start)
        route: dict[str, Any] = {"family": family, "dst_len": dst_len, "tos": tos, "table": table, "protocol": protocol, "scope": scope, "type": rtype}
        offset = start + RTMSG.size
        while offset + 4 <= end:
            length, attr_type = unpack_attr(buffer, offset)
            if length < 4:
                break
            if attr_type == RTA_DST or attr_type == RTA_GATEWAY or attr_type == RTA_PREFSRC:
                route[{RTA_DST: "dst", RTA_GATEWAY: "gateway", RTA_PREFSRC: "prefsrc"}[attr_type]] = socket.inet_ntop(
                    socket.AF_INET if family == socket.AF_INET else socket.AF_INET6, buffer[offset + 4 : offset + length])
            elif attr_type == RTA_OIF:
                route["oif"] = unpack_u32(buffer, offset + 4)[0]
            elif attr_type == RTA_PRIORITY:
                route["metric"] = unpack_u32(buffer, offset + 4)[0]
            elif attr_type == RTA_TABLE:
                route["table"] = unpack_u32(buffer, offset + 4)[0]
            offset += (length + 3) & ~3

    return _socket_dump(decode)


def pyroute2_iproute(_args: argparse.Namespace) -> int:
    try:
        from pyroute2 import IPRoute
    except ImportError:
        unavailable("pyroute2 is not installed: pip install pyroute2 (or the bench extra)")
    count = 0
    with IPRoute() as ipr:
        watch.start()
        for message in ipr.route("dump", family=FAMILY):
            message.get("dst")  # make sure the attributes were decoded
            count += 1
    return count


def pyroute2_async(args: argparse.Namespace) -> tuple[int, Any]:
    try:
        from pyroute2 import AsyncIPRoute
    except ImportError:
        unavailable("pyroute2 >= 0.9 (AsyncIPRoute) is not installed: pip install pyroute2")

    async def main() -> int:
        count = 0
        try:
            ipr = AsyncIPRoute()
            await ipr.setup_endpoint()
        except ValueError as error:
            unavailable(f"pyroute2's AsyncIPRoute cannot run on {args.loop} ({error}): uvloop rejects AF_NETLINK datagram endpoints")
        async with ipr:
            watch.start()
            async for message in await ipr.route("dump", family=FAMILY):
                message.get("dst")
                count += 1
        return count

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def _ring_options(args: argparse.Namespace) -> dict[str, Any]:
    import aionlmmap

    if not args.frame_size:
        return {}
    frame_size, frame_nr = args.frame_size, args.frame_nr
    # One frame per block when frames are page multiples, as the defaults do;
    # smaller frames share 4 KiB blocks.
    block_size = frame_size if frame_size % 4096 == 0 else 4096
    per_block = block_size // frame_size
    return {"rx": aionlmmap.RingConfig(block_size=block_size, block_nr=frame_nr // per_block, frame_size=frame_size, frame_nr=frame_nr)}


def _core() -> str:
    """Which aionlmmap core ran: "compiled" or "pure-python"."""
    from aionlmmap import _extensions

    return _extensions.CORE


def aionlmmap_raw(args: argparse.Namespace) -> int:
    """``async for m in ring.dump(...)``, counting only."""
    import aionlmmap
    from aionlmmap import Message

    request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, payload=RTMSG.pack(FAMILY, 0, 0, 0, 0, 0, 0, 0, 0))
    options = _ring_options(args)

    async def main() -> int:
        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, **options) as ring:
            watch.start()
            count = 0
            async for _message in ring.dump(request):
                count += 1
            watch.stop()
            watch.fields.update(backend=ring.backend, frames=ring.stats.frames, copy_frames=ring.stats.copy_frames, core=_core())
            return count

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def aionlmmap_decoded(args: argparse.Namespace) -> int:
    """Route objects from ``aionlmmap.rtnl`` with ``to_json()`` on each."""
    try:
        from aionlmmap import rtnl
    except ImportError as error:
        unavailable(f"aionlmmap.rtnl is not importable yet ({error})")

    async def main() -> int:
        async with rtnl.open() as nl:
            watch.start()
            count = 0
            routes = nl.routes(family=socket.AF_INET) if FAMILY == socket.AF_INET else nl.routes(table="all")
            async for route in routes:
                route.to_json()
                count += 1
            watch.stop()
            watch.fields.update(backend=nl.ring.backend, frames=nl.ring.stats.frames, copy_frames=nl.ring.stats.copy_frames, core=_core())
            return count

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


CONTESTANTS = {
    "socket-loop": socket_loop,
    "struct-decode": struct_decode,
    "pyroute2-iproute": pyroute2_iproute,
    "pyroute2-async": pyroute2_async,
    "aionlmmap-raw": aionlmmap_raw,
    "aionlmmap-decoded": aionlmmap_decoded,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(CONTESTANTS))
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--frame-size", type=int, default=0, help="RX frame size (aionlmmap-raw only)")
    parser.add_argument("--frame-nr", type=int, default=0, help="RX frame count (aionlmmap-raw only)")
    parser.add_argument("--family", choices=["inet", "all"], default="inet", help="inet: IPv4 routes; all: every family and table")
    args = parser.parse_args()
    global FAMILY
    FAMILY = socket.AF_INET if args.family == "inet" else socket.AF_UNSPEC
    count = CONTESTANTS[args.name](args)
    watch.stop()
    emit(count=count, **watch.result())


if __name__ == "__main__":
    main()
