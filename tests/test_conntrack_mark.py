"""A zero conntrack mark, as conntrack-tools shows it.

The kernel puts CTA_MARK in an event only when the mark is set or the
event is about the mark (ctnetlink_conntrack_event -> ctnetlink_dump_mark:
``if (!mark && !dump) return 0``), and in every dumped entry. So:

- ``conntrack -E`` prints no ``mark=`` for a flow made by traffic, and
  ``mark=0`` for one made with ``conntrack -I`` (IPCT_MARK is among a
  created entry's events); ``monitor(resync=False)`` passes events through
  as they are, so its flows read the same (``mark`` None when left out);
- ``conntrack -L`` prints ``mark=0`` for every entry; ``monitor(resync=True)``
  keeps a view that equals it, so a left-out mark is 0 there (and a resync
  does not take the dumped 0 for a change of every entry learned from events).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from aionlmmap.families import conntrack
from aionlmmap.families.conntrack import TupleSpec
from tests.conftest import run
from tests.test_conntrack import _enable_conntrack, conntrack_xml

pytestmark = pytest.mark.integration

_TRAFFIC = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', {port}))"


def udp_traffic(netns: str, port: int) -> None:
    run("ip", "netns", "exec", netns, sys.executable, "-c", _TRAFFIC.format(port=port))


async def until(predicate: Any, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def tool_marks_of_new_events(xml_text: str) -> dict[int, int | None]:
    """``conntrack -E -o xml``'s "new" events: original dport -> mark (None when not printed)."""
    out: dict[int, int | None] = {}
    for line in xml_text.splitlines():
        if not line.startswith("<flow"):
            continue
        flow = ET.fromstring(line.split("</flow>")[0] + "</flow>")
        if flow.get("type") != "new":
            continue
        dport = int(flow.find("meta/layer4/dport").text)  # type: ignore[union-attr,arg-type]
        mark = flow.findtext("meta[@direction='independent']/mark")
        out[dport] = None if mark is None else int(mark)
    return out


async def test_raw_events_show_the_mark_as_conntrack_E_does(netns: str) -> None:
    _enable_conntrack(netns)
    tool = subprocess.Popen(["ip", "netns", "exec", netns, "timeout", "8", "conntrack", "-E", "-o", "xml"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ours: dict[int, int | None] = {}
    try:
        async with conntrack.open(netns=netns) as ct:
            events = ct.monitor(resync=False)
            first = asyncio.ensure_future(events.__anext__())
            await asyncio.sleep(0.5)  # both listeners have joined their groups
            udp_traffic(netns, 9999)  # a flow of traffic: mark 0, left out
            await ct.create(TupleSpec("192.0.2.7", "198.51.100.7", "udp", sport=5353, dport=53), timeout=60)  # IPCT_MARK: sent
            await ct.create(TupleSpec("192.0.2.8", "198.51.100.8", "udp", sport=5353, dport=54), timeout=60, mark=7)
            event = await asyncio.wait_for(first, 5)
            while True:
                if event.action == "new":
                    ours[event.obj.original.dport] = event.obj.to_json().get("mark")
                if len(ours) == 3:
                    break
                event = await asyncio.wait_for(events.__anext__(), 5)
            await events.aclose()
    finally:
        text, _ = tool.communicate(timeout=20)
    assert tool_marks_of_new_events(text) == ours == {9999: None, 53: 0, 54: 7}


async def test_a_resyncing_monitors_view_shows_a_zero_mark_as_conntrack_L(netns: str) -> None:
    _enable_conntrack(netns)
    udp_traffic(netns, 9000)  # in the first dump
    view: dict[Any, Any] = {}
    async with conntrack.open(netns=netns) as ct:
        events = ct.monitor(resync=True)

        async def consume() -> None:
            async for event in events:
                if event.action == "del":
                    view.pop(event.obj.key, None)
                else:
                    view[event.obj.key] = event.obj

        task = asyncio.ensure_future(consume())
        try:
            await until(lambda: any(flow.original.dport == 9000 for flow in view.values()))
            udp_traffic(netns, 9001)  # learned from a NEW event without CTA_MARK
            await until(lambda: any(flow.original.dport == 9001 for flow in view.values()))
            tool = conntrack_xml(netns)
            held = {flow.id: flow.to_json() for flow in view.values()}
            assert {flow_id: item.get("mark") for flow_id, item in held.items()} == {flow_id: item.get("mark") for flow_id, item in tool.items()}
            assert all(item["mark"] == 0 for item in held.values())
            # A fresh dump holds the same entries: no "change" to report.
            tracker_view = dict(view)
            assert [flow for flow in await ct.snapshot() if tracker_view.get(flow.key) != flow] == []
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await events.aclose()
