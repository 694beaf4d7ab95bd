"""``python -m examples.netstate_service --netns NAME --port 8080``"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from .app import Settings, create_app
from .service import NetStateService
from .source import rtnl_source


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.netstate_service",
        description="Serve live netlink state (links, addresses, routes, neighbours) as JSON and server-sent events.",
    )
    parser.add_argument("--netns", default=None, help="network namespace name (ip netns) or path; default: this process's namespace")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: local clients only)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0 picks a free one; default 8080)")
    parser.add_argument("--replay", type=int, default=1024, help="changes kept for Last-Event-ID replay (default 1024)")
    parser.add_argument("--queue-limit", type=int, default=256, help="changes queued per SSE client before it is resynced (default 256)")
    parser.add_argument("--no-neighbours", action="store_true", help="do not follow the neighbour table")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    netns = arguments.netns
    service = NetStateService(
        lambda: rtnl_source(netns=netns, neighbours=not arguments.no_neighbours),
        replay_capacity=arguments.replay,
        queue_limit=arguments.queue_limit,
        description=f"netns {netns}" if netns else "this process's network namespace",
    )
    app = create_app(service, Settings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, arguments.host, arguments.port)
        await site.start()
        for address in runner.addresses:
            host, port = address[0], address[1]
            print(f"serving {service.description} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        await stop.wait()
    finally:
        # Closes the listening socket, ends every SSE stream (on_shutdown),
        # waits for handlers, then stops the monitor and closes its ring.
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.DEBUG if arguments.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(arguments))
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
