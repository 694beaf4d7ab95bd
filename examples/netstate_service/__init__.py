"""netstate_service: live netlink state over HTTP and server-sent events.

Run it (read-only, 127.0.0.1 by default)::

    python -m examples.netstate_service --netns blue --port 8080

or embed it::

    from examples.netstate_service import NetStateService, create_app, rtnl_source
    app = create_app(NetStateService(lambda: rtnl_source(netns="blue")))

Layers: ``state`` (pure view, change log, query parsing), ``broadcast``
(bounded per-client fan-out), ``service`` (the monitor task), ``source``
(rtnl.monitor as an event source), ``metrics`` (``/metrics`` for
Prometheus), ``app`` (aiohttp routes, authentication, limits). See
docs/service.md.
"""

from .app import Settings, create_app, create_runner
from .metrics import StatsReader
from .nft_view import NftablesView
from .service import SYNCED, NetStateService
from .source import rtnl_source

__all__ = ["SYNCED", "NetStateService", "NftablesView", "Settings", "StatsReader", "create_app", "create_runner", "rtnl_source"]
