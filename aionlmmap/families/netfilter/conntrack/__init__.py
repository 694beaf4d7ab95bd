"""Connection tracking (ctnetlink, the NFNL_SUBSYS_CTNETLINK subsystem of
NETLINK_NETFILTER): the table as ``conntrack -L`` shows it, filtered in the
kernel; get, create, update, delete and flush; per-CPU statistics and the
table count; expectations; and a live monitor that resyncs after overruns.

>>> from aionlmmap.families import conntrack
>>> async with conntrack.open(netns="blue") as ct:
...     async for flow in ct.flows(4, mark=1):
...         print(flow.to_json())
...     async for event in ct.monitor():
...         print(event.action, event.obj.to_json())
"""

from __future__ import annotations

from .client import ConntrackClient, MonitorStats, open
from .codec import DecodeCounts, TupleSpec
from .objects import Counters, CpuStats, Expectation, Flow, TableCount, Tuple, status_names

__all__ = [
    "open",
    "ConntrackClient",
    "MonitorStats",
    "DecodeCounts",
    "TupleSpec",
    "Flow",
    "Tuple",
    "Counters",
    "Expectation",
    "CpuStats",
    "TableCount",
    "status_names",
]
