"""``rtnl.monitor(resync=True)`` as the service's event source.

Example::

    async for event in rtnl_source(netns="blue"):
        print(event.action, event.kind, event.obj.key)   # current state first, then live changes
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["rtnl_source"]


async def rtnl_source(
    netns: Any = None,
    *,
    neighbours: bool = True,
    rules: bool = False,
    register_ring: Callable[[str, Any], None] | None = None,
) -> AsyncIterator[Any]:
    """Monitor events for links, addresses, routes (and neighbours, rules):
    the current state as "new" events, then every change; after an overrun
    the monitor re-dumps and yields only the differences, so the view never
    goes stale. The service treats the initial state as complete when this
    first waits (see service.py). ``register_ring("monitor", ring)`` is
    called with the monitor's ring (for /metrics), e.g.
    ``NetStateService.register_ring``."""
    import aionlmmap
    from aionlmmap import rtnl

    async with rtnl.open(netns=netns) as nl:
        # The monitor's own ring, opened here so its counters can be read.
        ring = aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns)
        if register_ring is not None:
            register_ring("monitor", ring)
        try:
            async for event in nl.monitor(links=True, addresses=True, routes=True, neighbours=neighbours, rules=rules, resync=True, ring=ring):
                yield event
        finally:
            await ring.aclose()  # the monitor closes it too; this covers a failure before it entered
