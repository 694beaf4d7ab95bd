"""Route-add contestants (scenario ``tx-batch``), run inside a fresh
namespace that has the ``bench0`` device:
``python -m benchmarks.contestants.tx_batch NAME --count N``.

Each adds N /32 routes (10.x.y.z dev bench0), encoding included, and prints
``{"count", "elapsed"}``.
"""

from __future__ import annotations

import argparse
import socket
import struct
from typing import Any

from ._child import Stopwatch, emit, run_on_loop, unavailable

watch = Stopwatch()
DEVICE = "bench0"
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x200, 0x400
RTMSG = struct.Struct("=BBBBBBBBI")
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 253, 1
RTA_DST, RTA_OIF = 1, 4


def address(index: int) -> str:
    return f"10.{index >> 16}.{(index >> 8) & 0xFF}.{index & 0xFF}"


def route_messages(count: int, ifindex: int) -> list[Any]:
    from aionlmmap import AttributeBuilder, Message

    header = RTMSG.pack(socket.AF_INET, 32, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST, 0)
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
    messages = []
    for index in range(count):
        attributes = AttributeBuilder().add(RTA_DST, socket.inet_aton(address(index))).add_u32(RTA_OIF, ifindex).build()
        messages.append(Message(RTM_NEWROUTE, flags, payload=header + attributes))
    return messages


def aionlmmap_variant(args: argparse.Namespace) -> int:
    import asyncio

    import aionlmmap

    ifindex = socket.if_nametoindex(DEVICE)

    async def main() -> int:
        async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, rcvbuf=args.rcvbuf or None) as ring:
            watch.start()
            messages = route_messages(args.count, ifindex)
            if args.name == "aionlmmap-sequential":
                for message in messages:
                    await ring.request(message)
            elif args.name == "aionlmmap-concurrent":
                # --chunk requests in flight at a time: unbounded (all N at
                # once) overruns the socket with ACKs (OverrunError).
                for start in range(0, len(messages), args.chunk):
                    await asyncio.gather(*(ring.request(message) for message in messages[start : start + args.chunk]))
            else:  # aionlmmap-request-many: chunks of --chunk requests, one datagram each
                for start in range(0, len(messages), args.chunk):
                    await ring.request_many(messages[start : start + args.chunk])
            watch.stop()
            watch.fields.update(tx_syscalls=ring.stats.tx_syscalls, rx_syscalls=ring.stats.rx_syscalls)
        return len(messages)

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def pyroute2_iproute(args: argparse.Namespace) -> int:
    try:
        from pyroute2 import IPRoute
    except ImportError:
        unavailable("pyroute2 is not installed: pip install pyroute2")
    with IPRoute() as ipr:
        ifindex = socket.if_nametoindex(DEVICE)
        watch.start()
        for index in range(args.count):
            ipr.route("add", dst=address(index), dst_len=32, oif=ifindex, scope=RT_SCOPE_LINK)
        watch.stop()
    return args.count


def pyroute2_async(args: argparse.Namespace) -> int:
    try:
        from pyroute2 import AsyncIPRoute
    except ImportError:
        unavailable("pyroute2 >= 0.9 (AsyncIPRoute) is not installed: pip install pyroute2")

    async def main() -> int:
        async with AsyncIPRoute() as ipr:
            ifindex = socket.if_nametoindex(DEVICE)
            watch.start()
            for index in range(args.count):
                await ipr.route("add", dst=address(index), dst_len=32, oif=ifindex, scope=RT_SCOPE_LINK)
            watch.stop()
        return args.count

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


CONTESTANTS = {
    "aionlmmap-sequential": aionlmmap_variant,
    "aionlmmap-concurrent": aionlmmap_variant,
    "aionlmmap-request-many": aionlmmap_variant,
    "pyroute2-iproute": pyroute2_iproute,
    "pyroute2-async": pyroute2_async,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(CONTESTANTS))
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=256, help="requests per request_many() call / in flight at once")
    parser.add_argument("--rcvbuf", type=int, default=0)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = parser.parse_args()
    count = CONTESTANTS[args.name](args)
    emit(count=count, **watch.result())


if __name__ == "__main__":
    main()
