"""netstate_service: live netlink state over HTTP and server-sent events.

Run it (read-only, 127.0.0.1 by default; another address needs
``--token-file``)::

    python -m examples.netstate_service --netns blue --port 8080

or embed it::

    from examples.netstate_service import NetStateService, NftablesView, StatsReader, create_app, rtnl_source
    service = NetStateService(lambda: rtnl_source(netns="blue", register_ring=service.register_ring))
    app = create_app(service, stats_reader=StatsReader("blue"), nftables=NftablesView(service, "blue"))

Layers: ``state`` (pure view, change log, query parsing), ``broadcast``
(bounded per-client fan-out), ``service`` (the monitor task), ``source``
(rtnl.monitor as an event source), ``metrics`` (``/metrics`` for
Prometheus), ``nft_json`` (pure: the ruleset as ``nft -j`` prints it),
``nft_view`` (the ruleset kept live), ``conntrack_view`` (the
connection tracking table kept live), ``app`` (aiohttp routes,
authentication, limits). See docs/service.md.
"""

from .app import Settings, create_app, create_runner
from .conntrack_view import ConntrackView
from .metrics import StatsReader
from .nft_view import NftablesView
from .service import SYNCED, NetStateService
from .source import rtnl_source

__all__ = ["SYNCED", "ConntrackView", "NetStateService", "NftablesView", "Settings", "StatsReader", "create_app", "create_runner", "rtnl_source"]
