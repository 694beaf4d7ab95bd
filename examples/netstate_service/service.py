"""The long-running part of the service: one monitor task feeding the view.

:class:`NetStateService` owns the :class:`~.state.NetState`, the
:class:`~.state.ChangeLog` and the :class:`~.broadcast.Broadcaster`, and one
task that iterates an *event source*: any async iterator of events with
``.action`` ("new"/"del"), ``.kind`` ("link", "address", ...) and ``.obj``
(``.key`` and ``.to_json()``), as ``rtnl.monitor(resync=True)`` yields them.
The HTTP layer (``app.py``) only reads from it.

The endpoints wait (bounded) for the initial state to be complete, so the
first request after start-up never sees half a dump. A source says so by
yielding :data:`SYNCED`; otherwise the initial state counts as complete the
first time the source has to *wait* after its first event. That fits
``rtnl.monitor(resync=True)``: it dumps everything, then yields the initial
events one after another without waiting for the kernel in between, and
waits only once it has to read notifications. If the source fails, the service keeps serving the last
state, reports the error in ``/api/status``, and reopens the source after a
delay; when the new source is synced, whatever it did not report again has
vanished meanwhile and is published as ``del``.

Example::

    service = NetStateService(lambda: rtnl_source(netns="blue"))
    await service.start()
    await service.wait_ready(5)
    service.state.links()
    await service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from .broadcast import Broadcaster
from .state import COLLECTIONS, ChangeLog, NetState

__all__ = ["SYNCED", "EventSource", "NetStateService"]

log = logging.getLogger("netstate_service")


class _Synced:
    """Marker an event source yields once its initial state is complete."""

    def __repr__(self) -> str:
        return "SYNCED"


SYNCED = _Synced()

#: A callable that opens a fresh event stream (called again after a failure).
EventSource = Callable[[], AsyncIterator[Any]]


class _Counts:
    """Ring counters by attribute (``counts.frames``), missing ones 0."""

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def __getattr__(self, name: str) -> int:
        return self._counts.get(name, 0)


class NetStateService:
    """State view + change log + fan-out, fed by one monitor task."""

    def __init__(
        self,
        source: EventSource,
        *,
        replay_capacity: int = 1024,
        queue_limit: int = 256,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        description: str = "",
    ) -> None:
        self._source = source
        self.description = description
        self.state = NetState()
        self.log = ChangeLog(replay_capacity)
        self.hub = Broadcaster(self.state, self.log, queue_limit=queue_limit)
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._failures_in_a_row = 0
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unconfirmed: set[tuple[str, str]] | None = None
        self._generation = 0  #: counts source (re)opens
        self._synced_generation = -1
        # counters for /api/status
        self.events = 0
        self.skipped_events = 0
        self.source_errors = 0
        self.last_error: str | None = None
        self.started_at = 0.0
        self.dropped_clients = 0  #: SSE clients cut off for accepting nothing (app.py)
        # Rings whose counters /metrics publishes, by role ("monitor", "stats", ...).
        self._rings: dict[str, Any] = {}
        self._retired: dict[str, dict[str, int]] = {}

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the service is already started")
        self.started_at = time.time()
        self._task = asyncio.create_task(self._run(), name="netstate-monitor")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the initial state; True if loaded."""
        if self._ready.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """End every SSE stream, cancel the monitor and close its source."""
        self.hub.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the monitor task ------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._generation += 1
            generation, waiting_armed = self._generation, False
            try:
                # aclosing: the source's own cleanup (closing its ring) runs
                # here, in this task, not later in an async-generator finalizer.
                async with contextlib.aclosing(self._source()) as events:  # type: ignore[type-var]
                    async for event in events:
                        self._handle(event)
                        if not waiting_armed:
                            # Runs when this task first suspends, i.e. when the
                            # source first waits: its initial burst is over.
                            waiting_armed = True
                            loop.call_soon(self._on_source_waiting, generation)
                # A finite source (a test feed): the state is as complete as it gets.
                if self._synced_generation != generation:
                    self._mark_synced()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the last state; report and retry
                self.source_errors += 1
                self._failures_in_a_row += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                # Back off (doubling, capped) so a namespace that is gone for
                # good costs a retry every max_retry_delay, not a busy loop.
                delay = min(self.retry_delay * 2 ** (self._failures_in_a_row - 1), self.max_retry_delay)
                log.warning("event source failed (%s); retrying in %.1f s", self.last_error, delay)
                # Requests keep being served from the last state (if there is
                # one yet). After a reconnect, what the new source does not
                # report again is gone.
                # Only the source's own kinds: the nf_tables and conntrack views
                # feed their objects through apply_external and keep them current.
                self._unconfirmed = {(kind, key) for kind, key in self.state.keys() if not kind.startswith("nft_") and kind != "conntrack"}
                await asyncio.sleep(delay)

    def apply_external(self, event: Any) -> None:
        """Apply an event from another feed than the source (the nf_tables
        view): same view, change log and fan-out."""
        self._handle(event)

    def _on_source_waiting(self, generation: int) -> None:
        if generation == self._generation and self._synced_generation != generation:
            self._mark_synced()

    def _handle(self, event: Any) -> None:
        if event is SYNCED:
            if self._synced_generation != self._generation:
                self._mark_synced()
            return
        self.events += 1
        try:
            action, kind, obj = event.action, event.kind, event.obj
            changed = self.state.apply(action, kind, obj)
            if self._unconfirmed is not None and action == "new":
                self._unconfirmed.discard((kind, self.state.key_of(kind, obj)))
        except Exception as exc:  # a malformed event: count it, keep the reader alive
            self.skipped_events += 1
            log.debug("skipped an event the view cannot apply: %s", exc)
            return
        if changed is not None:
            self.hub.publish(self.log.append(*changed))

    def _mark_synced(self) -> None:
        self._synced_generation = self._generation
        self._failures_in_a_row = 0
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        for kind, key in sorted(unconfirmed or ()):
            change = self.state.forget(kind, key)
            if change is not None:
                self.hub.publish(self.log.append(*change))
        self._ready.set()

    # -- ring counters for /metrics -----------------------------------------------------
    def register_ring(self, role: str, ring: Any) -> None:
        """Publish ``ring.stats`` under ``role``. A ring that replaces an
        earlier one of the same role (the source reopened) adds to the
        earlier ring's final counts, so the exported counters never go back."""
        previous = self._rings.get(role)
        if previous is not None and previous is not ring:
            retired = self._retired.setdefault(role, {})
            for name, value in attrs.asdict(previous.stats).items():
                retired[name] = retired.get(name, 0) + value
        self._rings[role] = ring

    def ring_stats(self) -> dict[str, Any]:
        """role -> the counters of every ring of that role so far (attribute access)."""
        out = {}
        for role, ring in self._rings.items():
            counts = dict(attrs.asdict(ring.stats))
            for name, value in self._retired.get(role, {}).items():
                counts[name] = counts.get(name, 0) + value
            out[role] = _Counts(counts)
        return out

    def status(self) -> dict[str, Any]:
        """Counters for ``/api/status``."""
        return {
            "description": self.description,
            "ready": self.ready,
            "running": self.running,
            "event_id": self.log.last_event_id,
            "events": self.events,
            "changes": self.log.seq,
            "skipped_events": self.skipped_events,
            "source_errors": self.source_errors,
            "last_error": self.last_error,
            "clients": len(self.hub),
            "lagged_clients": self.hub.lagged,
            "dropped_clients": self.dropped_clients,
            "counts": {name: self.state.count(kind) for kind, name in COLLECTIONS.items()},
        }
