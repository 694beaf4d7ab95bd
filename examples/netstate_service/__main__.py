"""``python -m examples.netstate_service --netns NAME --port 8080``"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import stat
import sys

from aiohttp import web

from .app import Settings, create_app, create_runner
from .metrics import StatsReader
from .conntrack_view import DEFAULT_LIMIT, ConntrackView
from .nft_view import NftablesView
from .service import NetStateService
from .source import rtnl_source

log = logging.getLogger("netstate_service")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.netstate_service",
        description="Serve live netlink state (links, addresses, routes, neighbours) as JSON and server-sent events.",
    )
    parser.add_argument("--netns", default=None, help="network namespace name (ip netns) or path; default: this process's namespace")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: local clients only); any other address needs --token-file or --insecure-no-auth",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0 picks a free one; default 8080)")
    parser.add_argument("--replay", type=int, default=1024, help="changes kept for Last-Event-ID replay (default 1024)")
    parser.add_argument("--queue-limit", type=int, default=256, help="changes queued per SSE client before it is resynced (default 256)")
    parser.add_argument("--no-neighbours", action="store_true", help="do not follow the neighbour table")
    parser.add_argument("--no-nftables", action="store_true", help="do not follow the nf_tables ruleset (/api/nftables)")
    parser.add_argument("--no-conntrack", action="store_true", help="do not follow the connection tracking table (/api/conntrack)")
    parser.add_argument(
        "--conntrack-limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"conntrack entries the service holds (default {DEFAULT_LIMIT}); past it new entries are not held and /api/conntrack says truncated",
    )
    parser.add_argument("--token-file", help="file holding the bearer token every request must send (Authorization: Bearer TOKEN)")
    parser.add_argument("--metrics-token-file", help="file holding a token that opens /metrics only (for Prometheus' authorization config)")
    parser.add_argument("--insecure-no-auth", action="store_true", help="allow a non-loopback --host without a token (anyone who can reach it reads the host's network state)")
    parser.add_argument("--max-clients", type=int, default=1024, help="event-stream clients at once (default 1024; more get 503)")
    parser.add_argument("--send-timeout", type=float, default=30.0, help="seconds a client may accept nothing before it is dropped (default 30)")
    parser.add_argument("--idle-timeout", type=float, default=15.0, help="seconds a connection may go without a complete request (default 15)")
    parser.add_argument("--verbose", "-v", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.conntrack_limit < 1:
        parser.error("--conntrack-limit must be positive")
    if arguments.max_clients < 1 or arguments.send_timeout <= 0 or arguments.idle_timeout <= 0:
        parser.error("--max-clients, --send-timeout and --idle-timeout must be positive")
    try:
        arguments.token = read_token(arguments.token_file, "--token-file") if arguments.token_file else None
        arguments.metrics_token = read_token(arguments.metrics_token_file, "--metrics-token-file") if arguments.metrics_token_file else None
    except ValueError as exc:
        parser.error(str(exc))
    if not is_loopback(arguments.host) and arguments.token is None and not arguments.insecure_no_auth:
        parser.error(
            f"--host {arguments.host} is reachable from other machines: give --token-file FILE (clients send "
            "Authorization: Bearer TOKEN), or --insecure-no-auth to serve without authentication"
        )
    return arguments


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; every other name or
    address (0.0.0.0 and :: included) may be reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token(path: str, option: str) -> str:
    """The token in ``path`` (surrounding whitespace stripped); refuses an
    empty or unreadable file, or a token that cannot travel in a header."""
    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc}") from None
    if not token:
        raise ValueError(f"{option}: {path} is empty")
    if not (token.isascii() and token.isprintable()) or any(character.isspace() for character in token):
        raise ValueError(f"{option}: the token in {path} must be printable ASCII without spaces")
    if len(token) < 16:
        raise ValueError(f"{option}: the token in {path} is {len(token)} characters; use at least 16 (e.g. openssl rand -hex 32)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: %s is readable by other users (chmod 600 it)", option, path)
    return token


def raise_file_limit(wanted: int) -> None:
    """Each SSE client holds a socket: lift the soft RLIMIT_NOFILE (often
    1024) towards ``wanted``, within the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("only %d file descriptors allowed (hard limit); --max-clients %d may not be reachable", target, wanted - 256)


async def serve(arguments: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    raise_file_limit(arguments.max_clients + 256)
    netns = arguments.netns
    if arguments.insecure_no_auth and arguments.token is None and not is_loopback(arguments.host):
        log.warning("serving %s WITHOUT authentication (--insecure-no-auth): anyone who reaches it reads this host's network state", arguments.host)
    service = NetStateService(
        lambda: rtnl_source(netns=netns, neighbours=not arguments.no_neighbours, register_ring=service.register_ring),
        replay_capacity=arguments.replay,
        queue_limit=arguments.queue_limit,
        description=f"netns {netns}" if netns else "this process's network namespace",
    )
    settings = Settings(
        token=arguments.token,
        metrics_token=arguments.metrics_token,
        max_clients=arguments.max_clients,
        send_timeout=arguments.send_timeout,
        idle_timeout=arguments.idle_timeout,
    )
    nftables = None if arguments.no_nftables else NftablesView(service, netns)
    conntrack = None if arguments.no_conntrack else ConntrackView(service, netns, limit=arguments.conntrack_limit)
    app = create_app(service, settings, StatsReader(netns), nftables, conntrack)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = create_runner(app, shutdown_timeout=5.0)
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
