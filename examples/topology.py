"""Build a small topology with rtnl and ping across it.

    sudo python examples/topology.py

Two throwaway network namespaces ("left" and "right") joined by a veth
pair; each side gets an address, the right side a loopback service address
(10.0.2.1/32) that the left side reaches through a route via the veth. The
namespaces are deleted at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from aionlmmap import rtnl


async def build(left: str, right: str) -> None:
    async with rtnl.open(netns=left) as nl:
        await nl.link_add("veth-l", "veth", peer="veth-r")
        await nl.link_set("veth-r", netns=right)  # the peer moves to the other namespace
        await nl.address_add("veth-l", "10.0.1.1/24")
        await nl.link_set("veth-l", up=True)
        await nl.link_set("lo", up=True)
        await nl.route_add("10.0.2.0/24", gateway="10.0.1.2")  # the service network behind "right"
    async with rtnl.open(netns=right) as nr:
        await nr.address_add("veth-r", "10.0.1.2/24")
        await nr.address_add("lo", "10.0.2.1/32")
        await nr.link_set("veth-r", up=True)
        await nr.link_set("lo", up=True)
        async for route in nr.routes():
            print("right:", route.to_json())
    async with rtnl.open(netns=left) as nl:
        async for route in nl.routes():
            print("left: ", route.to_json())


def main() -> int:
    tag = uuid.uuid4().hex[:6]
    left, right = f"topo-left-{tag}", f"topo-right-{tag}"
    subprocess.run(["ip", "netns", "add", left], check=True)
    subprocess.run(["ip", "netns", "add", right], check=True)
    try:
        asyncio.run(build(left, right))
        ping = subprocess.run(["ip", "netns", "exec", left, "ping", "-c", "1", "-W", "2", "10.0.2.1"], capture_output=True, text=True)
        if ping.returncode != 0:
            print("ping failed:", ping.stdout, ping.stderr)
            return 1
        print("ping ok: left reaches 10.0.2.1 in right through the veth and the route")
        return 0
    finally:
        subprocess.run(["ip", "netns", "del", left], check=False)
        subprocess.run(["ip", "netns", "del", right], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
