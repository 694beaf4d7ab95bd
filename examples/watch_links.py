"""Dump the links, then print link notifications as they arrive.

    python3 examples/watch_links.py [NETNS]

The foundation example: one Ring, one dump, then live events.
"""

from __future__ import annotations

import asyncio
import sys

import aionlmmap
from aionlmmap.constants import NLM_F_DUMP, NLM_F_REQUEST, RTM_GETLINK, RTNLGRP_LINK

IFLA_IFNAME = 3


def link_name(msg: aionlmmap.Message) -> str | None:
    # struct ifinfomsg is 16 bytes; attributes follow it.
    return aionlmmap.Attributes(msg.payload, 16).get_str(IFLA_IFNAME)


async def main(netns: str | None) -> None:
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK], netns=netns) as ring:
        print(f"backend: {ring.backend}, portid {ring.portid}")
        request = aionlmmap.Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16))
        async for msg in ring.dump(request):
            print(f"link {link_name(msg)!r}: type {msg.type}, {len(msg.payload)} payload bytes")
        print("watching link events (Ctrl-C to stop)")
        async for msg in ring:
            print(f"event type {msg.type} group {msg.group} from pid {msg.sender_pid}: {link_name(msg)!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
    except KeyboardInterrupt:
        pass
