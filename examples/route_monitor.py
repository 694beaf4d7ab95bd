"""Keep a dict of routes current with the rtnl monitor.

    python examples/route_monitor.py [--netns NAME]

Prints the number of routes it starts with, then one line per change
("+ dst ..." added or changed, "- dst ..." removed) until Ctrl-C. The dict,
keyed by ``route.key``, holds exactly the kernel's routes: ``ip route
replace`` shows as "-" for the replaced route and "+" for the new one, and
routes the kernel drops without a notification (a link going down, its last
address removed) leave it too, because the monitor dumps again what such a
change touches; after a socket overrun it dumps everything again and yields
only the differences.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from aionlmmap import rtnl


def describe(route: rtnl.Route) -> str:
    item = route.to_json()
    via = f" via {item['gateway']}" if "gateway" in item else ""
    dev = f" dev {item['dev']}" if "dev" in item else ""
    table = f" table {item['table']}" if "table" in item else ""
    return f"{item['dst']}{via}{dev}{table}"


async def follow(netns: str | None) -> None:
    routes: dict[Any, rtnl.Route] = {}
    async with rtnl.open(netns=netns) as nl:
        events = nl.monitor(links=False, addresses=False, routes=True)
        # The monitor starts with the current routes as "new" events; take
        # them all before reporting (the same dump the monitor starts with
        # says how many).
        initial = len((await nl.snapshot(["route"]))["route"])
        if not initial:
            print("routes: 0", flush=True)
        async for event in events:
            if event.action == "new":
                routes[event.obj.key] = event.obj
            else:
                routes.pop(event.obj.key, None)
            if initial:
                initial -= 1
                if not initial:
                    print(f"routes: {len(routes)}", flush=True)
                continue
            sign = "+" if event.action == "new" else "-"
            print(f"{sign} {describe(event.obj)}   ({len(routes)} routes)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", help="network namespace name (default: this one)")
    args = parser.parse_args()

    async def run() -> None:
        task = asyncio.ensure_future(follow(args.netns))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
