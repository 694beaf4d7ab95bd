"""Fan-out of state changes to SSE clients, with bounded memory per client.

The monitor task calls :meth:`Broadcaster.publish` for each change; it never
awaits a client. Each client has a :class:`Subscription`: a queue bounded at
``queue_limit`` changes. A client that falls that far behind (slow reader,
stalled TCP window) has its queue dropped and gets one ``resync`` instead: a
snapshot of the whole state built at the moment its writer asks for it. So
memory per client is at most ``queue_limit`` references (the payloads are
shared) plus one snapshot, and no client ever slows another or the monitor.

Example::

    hub = Broadcaster(state, log, queue_limit=256)
    subscription = hub.subscribe(request.headers.get("Last-Event-ID"))
    try:
        while (item := await subscription.next()) is not None:
            ...  # a list of Change, or a Resync
    finally:
        subscription.close()
"""

from __future__ import annotations

import asyncio
import json
from collections import deque

import attrs

from .state import Change, ChangeLog, NetState

__all__ = ["Broadcaster", "Resync", "Subscription"]


@attrs.frozen
class Resync:
    """Replace everything you know with ``data`` (a snapshot of the whole
    state, JSON), whose event id is ``event_id``. ``reason`` says why:
    ``connect`` (no usable Last-Event-ID), ``lagged`` (the client fell
    behind), ``expired`` (its Last-Event-ID is older than the replay
    buffer), ``unknown-id`` (another epoch or a malformed id)."""

    event_id: str
    reason: str
    data: str


class Subscription:
    """One client's bounded queue of changes (see the module docstring)."""

    __slots__ = ("_hub", "_pending", "_limit", "_resync_reason", "_wakeup", "_closed", "lagged")

    def __init__(self, hub: Broadcaster, limit: int, backlog: list[Change], resync_reason: str | None) -> None:
        self._hub = hub
        self._limit = limit
        self._pending: deque[Change] = deque(backlog)
        self._resync_reason = resync_reason
        self._wakeup = asyncio.Event()
        self._closed = False
        self.lagged = 0  #: times this client fell behind and was resynced
        if backlog or resync_reason:
            self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Changes queued and not yet taken by the writer."""
        return len(self._pending)

    def offer(self, change: Change) -> None:
        """Queue a change without ever blocking; past the limit, drop the
        queue and ask for a resync (the snapshot supersedes every change)."""
        if self._closed:
            return
        if self._resync_reason is None:
            if len(self._pending) >= self._limit:
                self._pending.clear()
                self._resync_reason = "lagged"
                self.lagged += 1
                self._hub.lagged += 1
            else:
                self._pending.append(change)
        self._wakeup.set()

    async def next(self) -> list[Change] | Resync | None:
        """The next batch of changes, a :class:`Resync`, or None once closed.

        A Resync is built after the last await, in the same step that empties
        the queue, so the snapshot and the changes that follow it line up
        exactly (everything before is in the snapshot, nothing after is)."""
        while not self._closed:
            if self._resync_reason is not None:
                reason, self._resync_reason = self._resync_reason, None
                self._pending.clear()
                return self._hub.resync(reason)
            if self._pending:
                batch = list(self._pending)
                self._pending.clear()
                return batch
            self._wakeup.clear()
            await self._wakeup.wait()
        return None

    def close(self) -> None:
        """Stop this subscription (idempotent); a waiting :meth:`next` returns None."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            self._hub._discard(self)
            self._wakeup.set()


class Broadcaster:
    """Publishes :class:`Change` objects to every :class:`Subscription`."""

    def __init__(self, state: NetState, log: ChangeLog, *, queue_limit: int = 256) -> None:
        if queue_limit < 1:
            raise ValueError("queue_limit must be at least 1")
        self.state = state
        self.log = log
        self.queue_limit = queue_limit
        self._subscriptions: set[Subscription] = set()
        self.lagged = 0  #: resyncs forced on slow clients, over all clients
        self.closed = False
        self._resyncs: dict[str, Resync] = {}  #: by reason, for the change number in _resyncs_seq
        self._resyncs_seq = -1

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, last_event_id: str | None = None) -> Subscription:
        """A new client. With a ``Last-Event-ID`` still in the replay buffer
        it first gets the changes it missed; otherwise a Resync."""
        if self.closed:
            raise RuntimeError("the broadcaster is closed (the service is shutting down)")
        backlog = self.log.since(last_event_id)
        if backlog is None:
            reason = "connect" if not last_event_id else self._why_not_replayable(last_event_id)
            subscription = Subscription(self, self.queue_limit, [], reason)
        elif len(backlog) > self.queue_limit:
            subscription = Subscription(self, self.queue_limit, [], "lagged")
        else:
            subscription = Subscription(self, self.queue_limit, backlog, None)
        self._subscriptions.add(subscription)
        return subscription

    def _why_not_replayable(self, last_event_id: str) -> str:
        epoch, _, number = last_event_id.strip().partition("-")
        if epoch == self.log.epoch and number.isascii() and number.isdigit() and int(number) <= self.log.seq:
            return "expired"
        return "unknown-id"

    def publish(self, change: Change) -> None:
        """Hand a change to every client (never blocks)."""
        for subscription in tuple(self._subscriptions):
            subscription.offer(change)

    def resync(self, reason: str) -> Resync:
        """A snapshot of the whole state, stamped with the current event id.

        The state's JSON is made once per change number and shared: a
        thousand clients connecting (or lagging) between two changes cost
        one serialization and one string, not a thousand."""
        seq = self.log.seq
        if self._resyncs_seq != seq:
            self._resyncs, self._resyncs_seq = {}, seq
        resync = self._resyncs.get(reason)
        if resync is None:
            data = json.dumps({"reason": reason, "state": self.state.snapshot()}, separators=(",", ":"))
            resync = self._resyncs[reason] = Resync(self.log.last_event_id, reason, data)
        return resync

    def close(self) -> None:
        """End every subscription (their writers see None and finish)."""
        self.closed = True
        for subscription in tuple(self._subscriptions):
            subscription.close()

    def _discard(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
