"""The aiohttp application: read-only JSON endpoints, SSE, and the page.

Routes (all GET; nothing here changes the system):

- ``/api/links``                       like ``ip -j link show``
- ``/api/addresses?family=``           like ``ip -j address show`` (links with addr_info)
- ``/api/routes?family=&table=``       like ``ip -j route show [table T]``
- ``/api/neighbours?family=&nud=all``  like ``ip -j neigh show [nud all]``
- ``/api/rules?family=``               like ``ip -j rule show``
- ``/api/status``                      readiness and counters
- ``/api/events``                      server-sent events: ``resync`` (whole
  state) then one ``change`` per change; ``Last-Event-ID`` replays
- ``/``                                the live page (static, no build step)

Every answer comes from the in-memory view that the monitor task keeps
current; no request re-dumps. Unknown query parameters or values get a 400
that names what is accepted.

Example::

    app = create_app(NetStateService(lambda: rtnl_source(netns="blue")))
    web.run_app(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from .broadcast import Resync, Subscription
from .service import NetStateService
from .state import QueryError, parse_family, parse_nud, parse_table

__all__ = ["SERVICE", "SETTINGS", "Settings", "create_app"]

STATIC_DIR = Path(__file__).with_name("static")


@attrs.frozen(kw_only=True)
class Settings:
    """Knobs of the HTTP layer (tests shorten the timers)."""

    ready_timeout: float = 10.0  #: how long a request waits for the initial state
    ping_interval: float = 10.0  #: SSE comment pings; also how fast a vanished client is noticed
    send_timeout: float = 30.0  #: a client that accepts nothing for this long is disconnected
    retry_ms: int = 1000  #: the browser's EventSource reconnect delay


SERVICE = web.AppKey("netstate_service", NetStateService)
SETTINGS = web.AppKey("netstate_settings", Settings)


def create_app(service: NetStateService, settings: Settings | None = None) -> web.Application:
    """An aiohttp app serving ``service``; starting the app starts the
    service's monitor, cleaning it up stops it (and ends every SSE stream)."""
    app = web.Application()
    app[SERVICE] = service
    app[SETTINGS] = settings or Settings()
    app.cleanup_ctx.append(_service_lifetime)
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/", _index)
    app.router.add_get("/api/links", _collection_handler("links", ()))
    app.router.add_get("/api/addresses", _collection_handler("addresses", ("family",)))
    app.router.add_get("/api/routes", _collection_handler("routes", ("family", "table")))
    app.router.add_get("/api/neighbours", _collection_handler("neighbours", ("family", "nud")))
    app.router.add_get("/api/rules", _collection_handler("rules", ("family",)))
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/events", _events)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    return app


async def _service_lifetime(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    await service.start()
    try:
        yield
    finally:
        await service.stop()


async def _end_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for handlers to finish: ending
    # the subscriptions lets every SSE handler return promptly.
    app[SERVICE].hub.close()


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


async def _status(request: web.Request) -> web.Response:
    _check_parameters(request, ())
    return web.json_response(request.app[SERVICE].status())


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


async def _send(stream: EventSourceResponse, data: str, event_id: str | None, event: str, settings: Settings, retry: int | None = None) -> None:
    async with asyncio.timeout(settings.send_timeout):
        await stream.send(data, id=event_id, event=event, retry=retry)


async def _close_when_gone(stream: EventSourceResponse, subscription: Subscription) -> None:
    await stream.wait()
    subscription.close()
