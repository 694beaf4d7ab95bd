"""The aiohttp application: read-only JSON endpoints, SSE, and the page.

Routes (all GET; nothing here changes the system):

- ``/api/links``                       like ``ip -j link show``
- ``/api/addresses?family=``           like ``ip -j address show`` (links with addr_info)
- ``/api/routes?family=&table=``       like ``ip -j route show [table T]``
- ``/api/neighbours?family=&nud=all``  like ``ip -j neigh show [nud all]``
- ``/api/rules?family=``               like ``ip -j rule show``
- ``/api/nftables``                    the nf_tables ruleset as ``nft -j list
  ruleset`` prints it (when the app has an NftablesView); its changes
  stream on ``/api/events`` as ``nft_*`` kinds
- ``/api/conntrack?limit=&family=&protocol=&state=&src=&dst=&sport=&dport=&mark=&zone=``
                                       the connection tracking table (when
  the app has a ConntrackView): a summary and the matching entries as
  ``conntrack -L`` shows them; changes stream as kind ``conntrack``
- ``/api/status``                      readiness and counters
- ``/metrics``                         Prometheus text format: node_exporter's
  network metrics plus ``aionlmmap_*`` (see metrics.py)
- ``/api/events``                      server-sent events: ``resync`` (whole
  state) then one ``change`` per change; ``Last-Event-ID`` replays
- ``/``                                the live page (static, no build step)

Every answer comes from the in-memory view that the monitor task keeps
current; no request re-dumps (``/metrics`` runs one RTM_GETSTATS dump for
the counters). Unknown query parameters or values get a 400 that names what
is accepted.

Exposure (see docs/service.md): with ``Settings.token`` every route wants
``Authorization: Bearer <token>`` (or HTTP Basic with the token as the
password, which lets a browser's EventSource authenticate), compared in
constant time; ``/metrics`` also accepts ``Settings.metrics_token``. A
missing or wrong token gets 401 and nothing else. Errors never carry a
stack trace; the number of SSE clients is capped (503 past it).

Example::

    app = create_app(NetStateService(lambda: rtnl_source(netns="blue")))
    web.run_app(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from .broadcast import Resync, Subscription
from .metrics import CONTENT_TYPE, NetworkMetrics, StatsReader, render_metrics
from .conntrack_view import ConntrackQueryError, ConntrackView, parse_conntrack_query
from .nft_view import NftablesView
from .service import NetStateService
from .state import QueryError, parse_family, parse_nud, parse_table

__all__ = ["CONNTRACK", "SERVICE", "SETTINGS", "Settings", "create_app", "create_runner"]

STATIC_DIR = Path(__file__).with_name("static")
log = logging.getLogger("netstate_service")


@attrs.frozen(kw_only=True)
class Settings:
    """Knobs of the HTTP layer (tests shorten the timers)."""

    ready_timeout: float = 10.0  #: how long a request waits for the initial state
    ping_interval: float = 10.0  #: SSE comment pings; also how fast a vanished client is noticed
    send_timeout: float = 30.0  #: a client that accepts nothing for this long is disconnected
    retry_ms: int = 1000  #: the browser's EventSource reconnect delay
    token: str | None = attrs.field(default=None, repr=False)  #: bearer token every route wants (None: no auth)
    metrics_token: str | None = attrs.field(default=None, repr=False)  #: a token that opens /metrics only
    max_clients: int = 1024  #: SSE clients at once; more get 503
    send_buffer: int = 256 * 1024  #: SO_SNDBUF of an SSE connection (the kernel's share of a client's backlog)
    idle_timeout: float = 15.0  #: a connection that sends no complete request for this long is closed
    max_query_length: int = 1024  #: longer query strings get 400


SERVICE = web.AppKey("netstate_service", NetStateService)
SETTINGS = web.AppKey("netstate_settings", Settings)
STATS = web.AppKey("netstate_stats", StatsReader)
NETWORK = web.AppKey("netstate_network_metrics", NetworkMetrics)
NFTABLES = web.AppKey("netstate_nftables", NftablesView | None)  # type: ignore[arg-type]
CONNTRACK = web.AppKey("netstate_conntrack", ConntrackView | None)  # type: ignore[arg-type]


def create_runner(app: web.Application, *, shutdown_timeout: float = 5.0) -> web.AppRunner:
    """An AppRunner with the app's limits: ``idle_timeout`` closes a
    connection that has not sent a complete request in that time (aiohttp's
    keep-alive timer runs from the connection's start since aiohttp 3.14,
    so it bounds a silent or slow header sender too; the service extra asks
    for that version and tests/test_service_exposure.py checks it); request
    lines and header fields over 8 KiB get 400."""
    settings = app[SETTINGS]
    return web.AppRunner(
        app,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=settings.idle_timeout,
        max_line_size=8190,
        max_field_size=8190,
        max_headers=64,
        access_log=None,
    )


def create_app(
    service: NetStateService,
    settings: Settings | None = None,
    stats_reader: StatsReader | None = None,
    nftables: NftablesView | None = None,
    conntrack: ConntrackView | None = None,
) -> web.Application:
    """An aiohttp app serving ``service``; starting the app starts the
    service's monitor, cleaning it up stops it (and ends every SSE stream).
    ``stats_reader`` reads the counters ``/metrics`` publishes (default: a
    reader of this process's namespace); ``nftables`` (optional) follows
    the ruleset for ``/api/nftables``; ``conntrack`` (optional) the
    connection tracking table for ``/api/conntrack``."""
    stats_reader = stats_reader or StatsReader()
    settings = settings or Settings()
    for name in ("token", "metrics_token"):
        value = getattr(settings, name)
        if value is not None and (not value or not value.isascii() or not value.isprintable()):
            raise ValueError(f"Settings.{name} must be non-empty printable ASCII (it travels in an HTTP header)")
    app = web.Application(middlewares=[_guard])
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[STATS] = stats_reader
    app[NETWORK] = NetworkMetrics()
    app[NFTABLES] = nftables
    app[CONNTRACK] = conntrack
    app.cleanup_ctx.append(_service_lifetime)
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/", _index)
    app.router.add_get("/api/links", _collection_handler("links", ()))
    app.router.add_get("/api/addresses", _collection_handler("addresses", ("family",)))
    app.router.add_get("/api/routes", _collection_handler("routes", ("family", "table")))
    app.router.add_get("/api/neighbours", _collection_handler("neighbours", ("family", "nud")))
    app.router.add_get("/api/rules", _collection_handler("rules", ("family",)))
    app.router.add_get("/api/nftables", _nftables)
    app.router.add_get("/api/conntrack", _conntrack)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/metrics", _metrics)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    return app


async def _service_lifetime(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    app[STATS].register_ring = service.register_ring
    await service.start()
    views = {"nftables": app[NFTABLES], "conntrack": app[CONNTRACK]}
    tasks = [asyncio.create_task(view.run(), name=f"netstate-{name}") for name, view in views.items() if view is not None]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.stop()
        await app[STATS].aclose()


async def _end_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for handlers to finish: ending
    # the subscriptions lets every SSE handler return promptly.
    app[SERVICE].hub.close()


# -- authentication, limits, errors -------------------------------------------------------
def _presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return credentials.strip()
    if scheme == "basic":
        # A browser asked by WWW-Authenticate: Basic sends user:password on
        # every same-origin request, EventSource included; the password is
        # the token, the user name is ignored.
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _token_matches(presented: str | None, expected: str | None) -> bool:
    if presented is None or expected is None:
        return False
    # hmac.compare_digest takes time independent of where the strings
    # differ; comparing digests also hides the token's length.
    presented_digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(presented_digest, hashlib.sha256(expected.encode()).digest())


def _unauthorized(request: web.Request) -> web.HTTPUnauthorized:
    # Basic for the page (the browser then prompts once and reuses it),
    # Bearer for /metrics (Prometheus' authorization config).
    challenge = 'Bearer realm="netstate"' if request.path == "/metrics" else 'Basic realm="netstate", charset="UTF-8"'
    return web.HTTPUnauthorized(
        text='{"error": "authentication required: send Authorization: Bearer <token>"}',
        content_type="application/json",
        headers={"WWW-Authenticate": challenge},
    )


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Auth first (nothing is read before it passes), then bounds on the
    query, then the handler, whose unexpected errors become a bare 500."""
    settings = request.app[SETTINGS]
    if settings.token is not None or (settings.metrics_token is not None and request.path == "/metrics"):
        presented = _presented_token(request)
        allowed = _token_matches(presented, settings.token)
        if request.path == "/metrics":
            allowed = _token_matches(presented, settings.metrics_token) or allowed
        if not allowed:
            raise _unauthorized(request)
    if len(request.query_string) > settings.max_query_length:
        raise _bad_request(f"query string longer than {settings.max_query_length} characters")
    try:
        request.query  # noqa: B018  (decoding a malformed query raises here, not in a handler)
    except (UnicodeDecodeError, ValueError):
        raise _bad_request("malformed query string") from None
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        # Logged with the traceback here; the client learns only that it failed.
        log.exception("request %s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error; see the service's log"}, status=500)


# -- JSON endpoints ----------------------------------------------------------------------
def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _check_parameters(request: web.Request, allowed: tuple[str, ...]) -> None:
    for name in request.query:
        if name not in allowed:
            accepted = ", ".join(allowed) if allowed else "none"
            raise _bad_request(f"unknown query parameter {name!r} for {request.path} (accepted: {accepted})")
    for name in allowed:
        if len(request.query.getall(name, ())) > 1:
            raise _bad_request(f"query parameter {name!r} given more than once")


async def _require_ready(request: web.Request) -> NetStateService:
    service = request.app[SERVICE]
    if not await service.wait_ready(request.app[SETTINGS].ready_timeout):
        message = "the initial netlink state is still loading; retry in a moment"
        if service.last_error:
            message = f"the netlink state cannot be read yet ({service.last_error}); the service keeps retrying"
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": message}), content_type="application/json", headers={"Retry-After": "1"})
    return service


def _collection_handler(name: str, allowed: tuple[str, ...]) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        _check_parameters(request, allowed)
        try:
            family = parse_family(request.query.get("family"))
            table = parse_table(request.query.get("table")) if "table" in allowed else None
            every_state = parse_nud(request.query.get("nud")) if "nud" in allowed else False
        except QueryError as exc:
            raise _bad_request(str(exc)) from None
        state = (await _require_ready(request)).state
        if name == "links":
            body = state.links()
        elif name == "routes":
            assert table is not None
            body = state.routes(family=family, table=table)
        elif name == "neighbours":
            body = state.neighbours(family=family, every_state=every_state)
        else:
            body = getattr(state, name)(family=family)
        return web.json_response(body)

    handler.__name__ = f"get_{name}"
    return handler


async def _nftables(request: web.Request) -> web.Response:
    _check_parameters(request, ())
    view = request.app[NFTABLES]
    if view is None:
        raise web.HTTPNotFound(text='{"error": "the nf_tables view is not enabled in this service"}', content_type="application/json")
    if not await view.wait_ready(request.app[SETTINGS].ready_timeout) or view.ruleset is None:
        message = "the nf_tables ruleset is still loading; retry in a moment"
        if view.last_error:
            message = f"the nf_tables ruleset cannot be read yet ({view.last_error}); the service keeps retrying"
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": message}), content_type="application/json", headers={"Retry-After": "1"})
    return web.json_response({"nftables": view.ruleset})


async def _conntrack(request: web.Request) -> web.Response:
    try:
        query = parse_conntrack_query(request.query)
    except ConntrackQueryError as exc:
        raise _bad_request(str(exc)) from None
    view = request.app[CONNTRACK]
    if view is None:
        raise web.HTTPNotFound(text='{"error": "the conntrack view is not enabled in this service"}', content_type="application/json")
    if not await view.wait_ready(request.app[SETTINGS].ready_timeout):
        message = "the conntrack table is still loading; retry in a moment"
        if view.last_error:
            message = f"the conntrack table cannot be read yet ({view.last_error}); the service keeps retrying"
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": message}), content_type="application/json", headers={"Retry-After": "1"})
    summary = view.summary()
    matched, entries = view.select(query)
    # Counted before the await: the kernel's figure is the only one that may
    # be a moment newer than the entries.
    table_entries = await view.table_entries()
    summary["table_entries"] = table_entries
    summary["truncated"] = view.turned_away > 0 and (table_entries is None or table_entries > summary["count"])
    return web.json_response({"summary": summary, "matched": matched, "entries": entries})


async def _status(request: web.Request) -> web.Response:
    _check_parameters(request, ())
    status = request.app[SERVICE].status()
    view = request.app[NFTABLES]
    if view is not None:
        status["nftables"] = view.status()
    conntrack = request.app[CONNTRACK]
    if conntrack is not None:
        status["conntrack"] = conntrack.status()
    return web.json_response(status)


async def _metrics(request: web.Request) -> web.Response:
    _check_parameters(request, ())
    service = request.app[SERVICE]
    try:
        body = await render_metrics(service, request.app[STATS], request.app[NETWORK])
    except OSError as exc:
        log.warning("reading interface counters failed: %s", exc)
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": "the interface counters cannot be read right now"}), content_type="application/json") from None
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# -- server-sent events -----------------------------------------------------------------
async def _events(request: web.Request) -> web.StreamResponse:
    """``resync`` first (unless ``Last-Event-ID`` can be replayed), then one
    ``change`` per change. A client that falls behind gets ``resync`` again;
    one that accepts nothing for ``send_timeout`` seconds is disconnected."""
    _check_parameters(request, ())
    service = await _require_ready(request)
    settings = request.app[SETTINGS]
    if service.hub.closed:
        raise web.HTTPServiceUnavailable(text='{"error": "the service is shutting down"}', content_type="application/json")
    if len(service.hub) >= settings.max_clients:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": f"too many event-stream clients (limit {settings.max_clients}); retry later"}),
            content_type="application/json",
            headers={"Retry-After": "5"},
        )
    _bound_send_buffer(request, settings.send_buffer)
    subscription = service.hub.subscribe(request.headers.get("Last-Event-ID"))
    stream = EventSourceResponse(ping_interval=settings.ping_interval)
    watcher: asyncio.Task[None] | None = None
    try:
        await stream.prepare(request)
        # The ping task ends when a ping fails (the client went away): end
        # the subscription then, even if no change is coming to notice it.
        watcher = asyncio.create_task(_close_when_gone(stream, subscription))
        retry: int | None = settings.retry_ms  # sent once: the browser's reconnect delay
        while (item := await subscription.next()) is not None:
            if isinstance(item, Resync):
                await _send(stream, item.data, item.event_id, "resync", settings, retry)
            else:
                for change in item:
                    await _send(stream, change.data, service.log.event_id(change.seq), "change", settings, retry)
                    retry = None
            retry = None
    except ConnectionResetError:
        pass  # the client left
    except TimeoutError:
        # A peer that never drains its window would hold this handler (and
        # its queued snapshot) forever: cut it off.
        service.dropped_clients += 1
        if request.transport is not None:
            request.transport.abort()
    finally:
        subscription.close()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if stream.prepared:
            stream.stop_streaming()
            await stream.wait()
    return stream


def _bound_send_buffer(request: web.Request, size: int) -> None:
    # A stream's backlog lives in three places: the subscription queue
    # (queue_limit changes), aiohttp's writer (it drains past 64 KiB) and the
    # kernel's send buffer, which TCP autotuning lets grow to tcp_wmem's
    # maximum (4 MiB by default) per socket. Capping SO_SNDBUF bounds the
    # last, and makes a client that stops reading block the writer soon, so
    # it is resynced or, after send_timeout, dropped.
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def _send(stream: EventSourceResponse, data: str, event_id: str | None, event: str, settings: Settings, retry: int | None = None) -> None:
    async with asyncio.timeout(settings.send_timeout):
        await stream.send(data, id=event_id, event=event, retry=retry)


async def _close_when_gone(stream: EventSourceResponse, subscription: Subscription) -> None:
    await stream.wait()
    subscription.close()
