"""What the service's live views share: follow a piece of kernel state until
cancelled, reopen after failures with a growing delay, and say when the
first complete state is in.

A view (``NftablesView``, ``ConntrackView``) implements ``_follow()``: open
its rings, load the state, set ``self._ready`` once it is complete, then
apply changes until something fails. ``run()`` turns each failure into
``last_error``, calls ``_failed()`` (a view that must not serve stale state
empties itself there) and retries after ``retry_delay``, doubling up to
``max_retry_delay``; a ``_follow()`` that returns resets the delay.

Example::

    view = NftablesView(service, netns="blue")
    task = asyncio.create_task(view.run())
    if await view.wait_ready(5):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import attrs

__all__ = ["LiveView", "ViewEvent"]

log = logging.getLogger("netstate_service")


@attrs.frozen
class ViewEvent:
    """One change a view hands to ``NetStateService.apply_external``."""

    action: str  #: "new" or "del"
    kind: str
    obj: Any


class LiveView:
    """See the module docstring. ``service`` receives the change events."""

    #: how log lines name the view ("nf_tables view failed (...)")
    name = "live view"

    def __init__(self, service: Any, netns: Any = None, *, retry_delay: float = 1.0, max_retry_delay: float = 30.0) -> None:
        self.service = service
        self.netns = netns
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.last_error: str | None = None
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        """True once the first complete state is in (False after ``timeout`` s)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self._ready.is_set()

    async def run(self) -> None:
        """Follow the state until cancelled (reopening after failures)."""
        failures = 0
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._failed()
                delay = min(self.retry_delay * 2 ** (failures - 1), self.max_retry_delay)
                log.warning("%s failed (%s); retrying in %.1f s", self.name, self.last_error, delay)
                await asyncio.sleep(delay)
            else:
                failures = 0

    async def _follow(self) -> None:
        raise NotImplementedError

    def _failed(self) -> None:
        """Called after each failure, before the delay (default: keep the state)."""
