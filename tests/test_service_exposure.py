"""Safe exposure: tokens, the loopback default, limits, and what an error
answer may reveal. The network parts run the service inside throwaway
namespaces (never on an address of the host)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conftest import ip, run

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # examples/ is not an installed package

from aionlmmap.families.rtnl_objects import Link  # noqa: E402
from examples.netstate_service import NetStateService, Settings, create_app, create_runner  # noqa: E402
from examples.netstate_service.__main__ import is_loopback, parse_arguments  # noqa: E402
from examples.netstate_service.metrics import StatsReader  # noqa: E402
from test_service_app import Event, ScriptedSource  # noqa: E402

TOKEN = "t0ken-" + "a" * 26
METRICS_TOKEN = "m3trics-" + "b" * 24
SECRET_NAME = "secret-uplink0"
INITIAL = [Event("new", "link", Link(1, "lo", flags=0x49, mtu=65536)), Event("new", "link", Link(7, SECRET_NAME, flags=0x1003, mtu=1500))]


class NoCounters(StatsReader):
    """A stats reader that dumps nothing (the scripted links are not real)."""

    async def read(self) -> dict[int, Any]:
        return {}

    async def conntrack(self) -> None:
        return None


@pytest.fixture
async def guarded():
    """A client of an app with a token and a metrics token, fed by scripted links."""
    clients = []

    async def start(**settings: Any) -> tuple[TestClient, NetStateService]:
        service = NetStateService(ScriptedSource(list(INITIAL)), retry_delay=0.05)
        options = {"token": TOKEN, "metrics_token": METRICS_TOKEN, "ready_timeout": 2.0, "ping_interval": 0.2, **settings}
        client = TestClient(TestServer(create_app(service, Settings(**options), NoCounters())))
        await client.start_server()
        clients.append(client)
        assert await service.wait_ready(2)
        return client, service

    yield start
    for client in clients:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


REFUSED = [
    {},
    bearer(""),
    bearer(TOKEN[:-1]),
    bearer(TOKEN + "x"),
    bearer(TOKEN.upper()),
    {"Authorization": TOKEN},
    {"Authorization": f"Token {TOKEN}"},
    basic(TOKEN[:-1]),
    {"Authorization": "Basic !!!notbase64"},
    bearer(METRICS_TOKEN),  # the metrics token opens /metrics only
]


@pytest.mark.parametrize("path", ["/", "/api/links", "/api/routes", "/api/status", "/api/events", "/static/app.js", "/nonexistent"])
@pytest.mark.parametrize("headers", REFUSED, ids=range(len(REFUSED)))
async def test_a_missing_or_wrong_token_gets_401_and_no_data(guarded, path, headers):
    client, _service = await guarded()
    async with client.get(path, headers=headers) as response:
        body = await response.text()
        assert response.status == 401
        assert "WWW-Authenticate" in response.headers
    assert SECRET_NAME not in body and "ifindex" not in body and "<html" not in body.lower()
    assert json.loads(body)["error"].startswith("authentication required")


@pytest.mark.parametrize("headers", [bearer(TOKEN), basic(TOKEN), basic(TOKEN, user="")], ids=["bearer", "basic", "basic-no-user"])
async def test_the_token_opens_every_route(guarded, headers):
    client, _service = await guarded()
    async with client.get("/api/links", headers=headers) as response:
        assert response.status == 200
        assert SECRET_NAME in await response.text()
    async with client.get("/", headers=headers) as response:
        assert response.status == 200
    async with client.get("/metrics", headers=headers) as response:
        assert response.status == 200


async def test_metrics_has_its_own_token_and_bearer_challenge(guarded):
    client, _service = await guarded()
    async with client.get("/metrics", headers=bearer(METRICS_TOKEN)) as response:
        assert response.status == 200
        text = await response.text()
    assert f'node_network_mtu_bytes{{device="{SECRET_NAME}"}} 1500' in text
    async with client.get("/metrics", headers=bearer("wrong-" + METRICS_TOKEN)) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "node_network" not in await response.text()


def test_tokens_are_compared_in_constant_time():
    """The comparison goes through hmac.compare_digest (no early exit)."""
    source = (REPO / "examples/netstate_service/app.py").read_text()
    assert "hmac.compare_digest(" in source
    assert "== expected" not in source and "expected ==" not in source


HOSTILE_QUERIES = [
    "unknown=1",
    "family=inet&family=inet6",
    "family=%00",
    "family=inet%0d%0aSet-Cookie:%20a=b",
    "family=<script>alert(1)</script>",
    "family=' OR 1=1 --",
    "table=-1",
    "table=99999999999999999999999999",
    "table=%D9%A3",  # an Arabic-Indic digit: str.isdigit says yes, the kernel would not
    "nud=all&nud=all",
    "%ff%fe=1",
    "family=" + "A" * 5000,
    "a=1&" * 400,
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
@pytest.mark.parametrize("path", ["/api/routes", "/api/neighbours", "/api/links", "/metrics", "/api/events"])
async def test_a_hostile_query_string_gets_400_without_internals(guarded, path, query):
    client, _service = await guarded()
    async with client.get(f"{path}?{query}", headers=bearer(TOKEN)) as response:
        body = await response.text()
        assert response.status == 400, body
    assert "Traceback" not in body and 'File "' not in body
    assert "error" in json.loads(body)
    assert "Set-Cookie" not in response.headers


async def test_an_unexpected_error_answers_500_without_a_stack_trace(guarded, monkeypatch, caplog):
    client, service = await guarded()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail /etc/secret")

    monkeypatch.setattr(service.state, "links", broken)
    with caplog.at_level(logging.ERROR, logger="netstate_service"):
        async with client.get("/api/links", headers=bearer(TOKEN)) as response:
            body = await response.text()
            assert response.status == 500
    assert "internal detail" not in body and "Traceback" not in body and "RuntimeError" not in body
    assert json.loads(body) == {"error": "internal error; see the service's log"}
    assert "internal detail" in caplog.text  # the operator still learns what happened


@pytest.mark.parametrize("path", ["/static/", "/static", "/static/..", "/static/%2e%2e/app.py", "/static/../__init__.py", "/static/%2e%2e%2fapp.py"])
async def test_no_directory_listing_and_no_escape_from_static(guarded, path):
    client, _service = await guarded()
    # Written on the socket as is: an HTTP client library would normalize the dots away.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
    async with asyncio.timeout(10):
        answer = (await reader.read()).decode(errors="replace")
    writer.close()
    status = int(answer.split()[1])
    assert status in (400, 403, 404), answer[:300]
    body = answer.partition("\r\n\r\n")[2]
    assert "app.js" not in body and "index.html" not in body and "import" not in body


async def test_event_stream_clients_are_capped(guarded):
    client, service = await guarded(max_clients=3)
    responses = [await client.get("/api/events", headers=bearer(TOKEN)) for _ in range(3)]
    try:
        async with asyncio.timeout(5):
            while len(service.hub) < 3:
                await asyncio.sleep(0.01)
        async with client.get("/api/events", headers=bearer(TOKEN)) as response:
            assert response.status == 503
            assert "too many" in (await response.json())["error"]
    finally:
        for response in responses:
            response.close()


async def test_a_connection_that_never_completes_its_request_is_closed(guarded):
    """idle_timeout bounds a slow (or silent) sender of request headers."""
    service = NetStateService(ScriptedSource(list(INITIAL)))
    app = create_app(service, Settings(idle_timeout=0.5), NoCounters())
    runner = create_runner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        for partial in (b"", b"GET /api/links HTTP/1.1\r\nHost: x\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(partial)
            started = time.monotonic()
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed by the server, nothing answered
            assert time.monotonic() - started < 3
            writer.close()
    finally:
        await runner.cleanup()


# -- command line: binding beyond loopback -----------------------------------------------
def token_file(tmp_path: Path, text: str = TOKEN, mode: int = 0o600) -> str:
    path = tmp_path / "token"
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.1", "fd00::1", "example.org", "127.0.0.1.nip.io"])
def test_a_non_loopback_address_without_a_token_is_refused(host, capsys):
    assert not is_loopback(host)
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(["--host", host])
    assert exit_info.value.code == 2
    assert "--token-file" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    assert parse_arguments(["--host", host]).token is None


def test_a_token_file_or_the_explicit_insecure_flag_allows_other_addresses(tmp_path):
    assert parse_arguments(["--host", "0.0.0.0", "--token-file", token_file(tmp_path)]).token == TOKEN
    assert parse_arguments(["--host", "0.0.0.0", "--insecure-no-auth"]).token is None


@pytest.mark.parametrize("content", ["", "   ", "short", "has space inside the token!", "ünïcode-token-that-is-long"])
def test_an_unusable_token_file_is_refused(tmp_path, content, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(["--host", "0.0.0.0", "--token-file", token_file(tmp_path, content)])
    assert "--token-file" in capsys.readouterr().err


def test_a_missing_token_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(["--token-file", str(tmp_path / "absent")])
    assert "cannot read" in capsys.readouterr().err


def start_in_namespace(netns: str | None, *arguments: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m examples.netstate_service`` run inside ``netns`` (or here,
    on loopback, when None); returns the process and the URL it printed."""
    prefix = ["ip", "netns", "exec", netns] if netns is not None else []
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "examples.netstate_service", "--port", "0", *arguments],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    readable, _, _ = select.select([process.stdout], [], [], 30)
    assert readable, "the service printed nothing within 30 s"
    line = process.stdout.readline()  # type: ignore[union-attr]
    assert "http://" in line, line + (process.stderr.read() if process.poll() is not None else "")  # type: ignore[union-attr]
    return process, line.split()[line.split().index("on") + 1]


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _stdout, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _stdout, stderr = process.communicate()
    return stderr


def curl(netns: str, url: str, *headers: str) -> tuple[int, str]:
    """GET from inside another namespace: (status, body)."""
    arguments = ["ip", "netns", "exec", netns, "curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"]
    for header in headers:
        arguments += ["-H", header]
    output = run(*arguments, url).stdout
    body, _, status = output.rpartition("\n")
    return int(status), body


def test_bound_to_a_management_address_it_answers_only_with_the_token(netns_pair, tmp_path):
    """The service on 10.99.0.1 inside one namespace, a client in the other:
    401 without the token, the links with it."""
    first, second = netns_pair
    process, url = start_in_namespace(first, "--host", "10.99.0.1", "--token-file", token_file(tmp_path))
    try:
        assert url.startswith("http://10.99.0.1:")
        status, body = curl(second, url + "api/links")
        assert status == 401 and "veth0" not in body
        status, body = curl(second, url + "api/links", f"Authorization: Bearer {TOKEN}")
        assert status == 200 and "veth0" in {link["ifname"] for link in json.loads(body)}
    finally:
        stderr = stop(process)
    assert process.returncode == 0, stderr
    assert "WITHOUT authentication" not in stderr


def test_insecure_no_auth_serves_but_warns_at_start(netns_pair):
    first, second = netns_pair
    process, url = start_in_namespace(first, "--host", "10.99.0.1", "--insecure-no-auth")
    try:
        status, body = curl(second, url + "api/links")
        assert status == 200 and "veth0" in body
    finally:
        stderr = stop(process)
    assert "WITHOUT authentication" in stderr


# -- memory with many clients, and with a client that never reads --------------------------
def rss_kib(pid: int) -> int:
    """Resident set of ``pid`` (the service runs under ``ip netns exec``, which execs it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def open_event_stream(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /api/events HTTP/1.1\r\nHost: netstate\r\n\r\n")
    return reader, writer


async def read_until(reader: asyncio.StreamReader, marker: bytes, limit: int = 1 << 20) -> None:
    seen = b""
    while marker not in seen:
        chunk = await reader.read(65536)
        assert chunk, "the stream ended"
        seen = (seen + chunk)[-limit:]


def test_a_thousand_event_stream_clients_hold_with_bounded_memory(netns):
    """1,000 SSE clients on loopback each get the snapshot and then a change;
    the service's RSS is measured before, with all connected, and after."""
    clients = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, clients + 200) if hard != resource.RLIM_INFINITY else clients + 200, hard))
    process, url = start_in_namespace(None, "--netns", netns, "--max-clients", str(clients + 10))
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    pid = process.pid

    async def scenario() -> tuple[int, int, int]:
        before = rss_kib(pid)
        streams = []
        try:
            for batch in range(0, clients, 100):  # connect in batches: the listen backlog is finite
                opened = await asyncio.gather(*(open_event_stream(host, int(port)) for _ in range(100)))
                async with asyncio.timeout(30):
                    await asyncio.gather(*(read_until(reader, b"event: resync") for reader, _ in opened))
                streams += opened
            connected = rss_kib(pid)
            await asyncio.to_thread(ip, netns, "link", "add", "veth-crowd", "type", "veth", "peer", "name", "veth-crowd-p")
            async with asyncio.timeout(60):
                await asyncio.gather(*(read_until(reader, b'"ifname":"veth-crowd"') for reader, _ in streams))
            return before, connected, rss_kib(pid)
        finally:
            for _, writer in streams:
                writer.close()

    try:
        before, connected, after = asyncio.run(scenario())
    finally:
        stderr = stop(process)
    print(f"service RSS: {before} KiB idle, {connected} KiB with {clients} SSE clients, {after} KiB after a change reached all")
    per_client = (max(connected, after) - before) / clients
    assert per_client < 64, f"{per_client:.1f} KiB per client"  # bounded: no per-client copy of the state
    assert process.returncode == 0, stderr


def test_a_client_that_never_reads_does_not_grow_the_service(netns):
    """A stalled client (4 KiB receive buffer, never reads) while thousands
    of link changes stream: the service's RSS stays flat, and the client is
    cut off after --send-timeout."""
    # 300 links make each resync snapshot ~200 KB, so a few of them fill
    # the stalled socket (the changes themselves coalesce into resyncs).
    run("ip", "-n", netns, "-batch", "-", input="".join(f"link add vs{n} type veth peer name vs{n}p\n" for n in range(150)))
    # netdev_state_change notifies only for a device that is up
    ip(netns, "link", "set", "vs0", "up")
    ip(netns, "link", "set", "vs1", "up")
    process, url = start_in_namespace(None, "--netns", netns, "--queue-limit", "16", "--send-timeout", "1")
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    batch = "".join(f"link set dev vs{round_ % 2} alias {'x' * 200}{round_}\n" for round_ in range(10000))

    def status() -> dict[str, Any]:
        return json.loads(run("curl", "-s", "-m", "10", url + "api/status").stdout)

    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: netstate\r\n\r\n")
        deadline = time.monotonic() + 10
        while status()["clients"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = rss_kib(process.pid)
        run("ip", "-n", netns, "-batch", "-", input=batch)
        deadline = time.monotonic() + 60
        while True:  # the last aliases reached the view (after any overrun, through a resync)
            aliases = {link["ifname"]: link.get("ifalias", "") for link in json.loads(run("curl", "-s", "-m", "10", url + "api/links").stdout)}
            if aliases.get("vs0", "").endswith("9998") and aliases.get("vs1", "").endswith("9999"):
                break
            assert time.monotonic() < deadline, status()
            time.sleep(0.1)
        peak = rss_kib(process.pid)
        deadline = time.monotonic() + 20
        while status()["clients"] > 0:  # cut off after the send timeout
            assert time.monotonic() < deadline, json.dumps(status())
            time.sleep(0.1)
        final = status()
        stalled.close()
    finally:
        stderr = stop(process)
    print(f"service RSS with a stalled client: {before} KiB before, {peak} KiB after {final['changes']} changes "
          f"({final['events']} events); lagged {final['lagged_clients']}, dropped {final['dropped_clients']}")
    assert final["dropped_clients"] == 1 and final["lagged_clients"] >= 1, final
    # Flat: the growth is the monitor's own churn, not a backlog (which the
    # queue limit and SO_SNDBUF cap at well under a megabyte).
    assert peak - before < 16 * 1024, f"RSS grew {peak - before} KiB; {final}"
    assert process.returncode == 0, stderr
