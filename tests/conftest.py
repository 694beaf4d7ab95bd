"""Shared fixtures.

- Every async test runs twice: on asyncio's default loop and on uvloop
  (pytest-asyncio's ``pytest_asyncio_loop_factories`` hook parametrizes it).
- ``netns``: a throwaway network namespace with ``lo`` up, deleted after the
  test; tests never touch the host's own namespace.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop


def pytest_asyncio_loop_factories(config, item):  # type: ignore[no-untyped-def]
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def compiled_core() -> Any:
    """The compiled core (aionlmmap._speedups) for the twin differentials,
    imported directly so they run under AIONLMMAP_NO_EXTENSIONS=1 too. A
    missing build or one made from another checkout (its TWINS_VERSION is
    not this code's, as aionlmmap._extensions checks at import) fails the
    test with what to run, instead of an AttributeError on a missing twin."""
    from aionlmmap._extensions import TWINS_VERSION

    try:
        module = importlib.import_module("aionlmmap._speedups")
    except ImportError as exc:  # pragma: no cover - a broken checkout
        pytest.fail(f"the compiled core is not built ({exc}): run `pip install -e .` or `python setup.py build_ext --inplace`")
    built = getattr(module, "TWINS_VERSION", None)
    if built != TWINS_VERSION:  # pragma: no cover - a stale build
        pytest.fail(f"{module.__file__} has twins version {built}, this checkout needs {TWINS_VERSION}: rebuild it (`python setup.py build_ext --inplace`)")
    return module


def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, raising with its stderr when it fails."""
    result = subprocess.run(args, capture_output=True, text=True, input=input, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def ip(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip -n NETNS ...` (never the host namespace)."""
    return run("ip", "-n", netns, *args, check=check)


def dump_datagrams(netns: str, request: bytes) -> list[bytes]:
    """Every datagram the kernel answers ``request`` (a dump) with, read by a
    plain ``recv`` loop in ``netns``: the reference input for differential
    tests of the pure and compiled cores."""
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n"
        "s.bind((0, 0)); s.send(bytes.fromhex(sys.argv[1]))\n"
        "for _ in range(1 << 20):  # bounded: a dump ends with NLMSG_DONE or NLMSG_ERROR\n"
        "    d = s.recv(1 << 16); sys.stdout.write(d.hex() + '\\n')\n"
        "    if int.from_bytes(d[4:6], 'little') in (2, 3): break\n"
    )
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", script, request.hex()], capture_output=True, text=True, timeout=60, check=True)
    return [bytes.fromhex(line) for line in out.stdout.split()]


def _require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root as CI does")
    if shutil.which("ip") is None:
        pytest.fail("iproute2 is missing: run the README's test command, which installs it")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace named aionlmmap-test-XXXX with lo up."""
    _require_root_tools()
    name = f"aionlmmap-test-{uuid.uuid4().hex[:10]}"
    run("ip", "netns", "add", name)
    try:
        ip(name, "link", "set", "lo", "up")
        yield name
    finally:
        run("ip", "netns", "del", name, check=False)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair: 10.99.0.1/24 (veth0 in the first)
    and 10.99.0.2/24 (veth1 in the second), both up."""
    _require_root_tools()
    tag = uuid.uuid4().hex[:8]
    first, second = f"aionlmmap-a-{tag}", f"aionlmmap-b-{tag}"
    run("ip", "netns", "add", first)
    run("ip", "netns", "add", second)
    try:
        ip(first, "link", "set", "lo", "up")
        ip(second, "link", "set", "lo", "up")
        ip(first, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", second)
        ip(first, "addr", "add", "10.99.0.1/24", "dev", "veth0")
        ip(second, "addr", "add", "10.99.0.2/24", "dev", "veth1")
        ip(first, "link", "set", "veth0", "up")
        ip(second, "link", "set", "veth1", "up")
        yield first, second
    finally:
        run("ip", "netns", "del", first, check=False)
        run("ip", "netns", "del", second, check=False)
