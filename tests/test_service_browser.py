"""The netstate page in a real browser: headless Debian Chromium driven over
the DevTools protocol (aiohttp speaks its websocket), server on 127.0.0.1.

Checks that a link added in the namespace appears in the page's DOM without
a reload (a marker set on ``window`` before the change survives it), and
that a deleted link disappears; likewise an nft rule and set.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from conftest import ip, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service import NetStateService, NftablesView, Settings, create_app, rtnl_source  # noqa: E402


def nft(netns: str, script: str) -> None:
    run("ip", "netns", "exec", netns, "nft", "-f", "-", input=script)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",  # no internet here: no update checks, no safe browsing
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # the browser picks a port and writes it to DevToolsActivePort
    "--window-size=1200,900",
]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is missing: run the README's test command (scripts/test.sh), which apt-installs chromium")


class DevTools:
    """The few DevTools protocol calls this test needs, over one websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._socket.send_json({"id": call_id, "method": method, "params": params})
        async with asyncio.timeout(30):
            async for message in self._socket:
                reply = json.loads(message.data)
                if reply.get("id") == call_id:
                    if "error" in reply:
                        raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                    return reply.get("result", {})
        raise RuntimeError(f"DevTools connection closed during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll a page expression until it is truthy (bounded)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                dom = await self.evaluate("document.body.innerText")
                raise AssertionError(f"{what} within {timeout} s; the page shows:\n{dom}")
            await asyncio.sleep(0.1)


class Browser:
    """Headless Chromium with a fresh profile, stopped and removed on exit."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="netstate-chromium-")
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Browser:
        with open(self.log_path, "wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self.session = aiohttp.ClientSession()
        return self

    async def page(self) -> DevTools:
        port_file = Path(self.profile, "DevToolsActivePort")
        async with asyncio.timeout(60):
            while not port_file.exists() or not port_file.read_text().strip():
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"chromium exited ({self.process.returncode}): {self.log_tail()}")
                await asyncio.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            assert self.session is not None
            while True:
                async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = [target for target in await response.json() if target["type"] == "page"]
                if targets:
                    break
                await asyncio.sleep(0.1)
            socket = await self.session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        return DevTools(socket)

    def log_tail(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


async def start_server(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/"


async def test_a_link_added_in_the_netns_appears_in_the_page_without_reload(netns, tmp_path):
    service = NetStateService(lambda: rtnl_source(netns=netns), description=f"netns {netns}")
    runner, url = await start_server(create_app(service, Settings(ping_interval=2.0)))
    try:
        async with Browser() as browser:
            page = await browser.page()
            await page.call("Page.navigate", url=url)
            await page.wait_for("document.querySelector('#links tr[data-ifname=\"lo\"]') !== null", 30, "lo did not appear")
            await page.wait_for("document.getElementById('connection').dataset.state === 'live'", 10, "the stream is not live")
            await page.evaluate("window.__before_change = 'same page'; true")

            ip(netns, "link", "add", "veth-browser", "type", "veth", "peer", "name", "veth-browser-p")
            ip(netns, "addr", "add", "10.77.0.1/24", "dev", "veth-browser")
            ip(netns, "link", "set", "veth-browser", "up")
            row = await page.wait_for(
                "(() => { const r = document.querySelector('#links tr[data-ifname=\"veth-browser\"]'); return r && r.innerText; })()",
                10,
                "the new link did not appear",
            )
            assert "veth-browser" in row
            await page.wait_for("document.querySelector('#addresses tbody').innerText.includes('10.77.0.1/24')", 10, "the address did not appear")
            await page.wait_for("document.querySelector('#routes tbody').innerText.includes('10.77.0.0/24')", 10, "the connected route did not appear")
            assert await page.evaluate("window.__before_change") == "same page"  # no reload happened
            assert await page.evaluate("document.body.dataset.resyncs") == "1"  # one snapshot, then only changes

            screenshot = await page.call("Page.captureScreenshot", format="png")
            (tmp_path / "netstate.png").write_bytes(base64.b64decode(screenshot["data"]))

            ip(netns, "link", "del", "veth-browser")
            await page.wait_for("document.querySelector('#links tr[data-ifname=\"veth-browser\"]') === null", 10, "the deleted link stayed")
            assert await page.evaluate("window.__before_change") == "same page"
    finally:
        await runner.cleanup()


async def test_an_nft_rule_added_in_the_netns_appears_in_the_page_without_reload(netns):
    service = NetStateService(lambda: rtnl_source(netns=netns), description=f"netns {netns}")
    runner, url = await start_server(create_app(service, Settings(ping_interval=2.0), None, NftablesView(service, netns)))
    try:
        async with Browser() as browser:
            page = await browser.page()
            await page.call("Page.navigate", url=url)
            await page.wait_for("document.querySelector('#links tr[data-ifname=\"lo\"]') !== null", 30, "lo did not appear")
            await page.wait_for("document.getElementById('connection').dataset.state === 'live'", 10, "the stream is not live")
            await page.evaluate("window.__before_change = 'same page'; true")

            nft(netns, 'add table inet page\nadd chain inet page input { type filter hook input priority 0; policy accept; }\n'
                       'add set inet page blocked { type ipv4_addr; elements = { 10.1.2.3, 10.1.2.4 }; }\n'
                       'add rule inet page input tcp dport 2222 ip saddr @blocked counter drop comment "from-the-browser-test"\n')  # fmt: skip
            row = await page.wait_for(
                "(() => { const r = [...document.querySelectorAll('#nft_rules tbody tr')].find(r => r.innerText.includes('from-the-browser-test')); return r && r.innerText; })()",
                10,
                "the nft rule did not appear",
            )
            assert "tcp dport 2222" in row and "ip saddr @blocked" in row and "drop" in row
            await page.wait_for(
                "(() => { const r = [...document.querySelectorAll('#nft_sets tbody tr')].find(r => r.innerText.includes('blocked')); return r && r.innerText.trim().endsWith('2'); })()",
                10,
                "the set and its two elements did not appear",
            )
            assert await page.evaluate("window.__before_change") == "same page"  # no reload happened
            assert await page.evaluate("document.body.dataset.resyncs") == "1"

            nft(netns, "delete table inet page\n")
            await page.wait_for("document.querySelector('#nft_rules tbody').children.length === 0", 10, "the deleted rule stayed")
            assert await page.evaluate("window.__before_change") == "same page"
    finally:
        await runner.cleanup()
