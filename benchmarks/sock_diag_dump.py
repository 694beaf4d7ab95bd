"""``python3 -m benchmarks.sock_diag_dump [--sockets 10000 50000] [--repeat 3] [--cores compiled pure]``

N open TCP sockets in a throwaway namespace (N/2 connections over
loopback: each client and its accepted socket; worker processes hold them,
under the fd limit), then the same dump by each contestant, best of
``--repeat``, one JSON line per contestant:

- ``ss -tanH``: process wall time (``ip netns exec NS ss -tanH > /dev/null``)
- ``aionlmmap dump sockets -t --json``: process wall time, the same way
  (aionlmmap._entry reads the line without argparse; sock_diag.oneshot reads the
  dump without an event loop, TCP of both families in one TCPDIAG_GETSOCK walk),
  of an *installed* copy, as a user runs it: the ``aionlmmap`` script of a
  fresh venv where ``pip install`` put this tree (byte-compiled, no
  PYTHONDONTWRITEBYTECODE), or of ``--python VENV/bin/python``'s venv. The
  dev venv's editable install is not what users run: its finder (a .pth
  file) imports pathlib, urllib and ipaddress at every start (~13 ms).
  ``python -c pass`` of the same interpreter is the floor.
- ``aionlmmap sock_diag.inet("tcp")``: in-process time to stream every
  socket into InetSocket objects (and with ``to_json()``)
- pyroute2 ``DiagSocket.get_sock_stats``: in-process time, the same dump

The in-process contestants use this tree (PYTHONPATH), byte-compiled
first (``compileall``). Each core in ``--cores`` gets a block of its own
(ss measured again in it, so its ratios are within one block); each
record names the core in use (``AIONLMMAP_NO_EXTENSIONS=1`` selects pure
Python) and the CLI record the interpreter it ran.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from .netns import namespace, require_root

_HOLDER = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port)); listener.listen(4096)
keep = []
for index in range(count):
    client = socket.socket(); client.connect(("127.0.0.1", port)); keep.append(client)
    keep.append(listener.accept()[0])
print("ready", flush=True)
sys.stdin.read()
"""

_IN_PROCESS = r"""
import asyncio, gc, json, socket, sys, time
which, repeat = sys.argv[1], int(sys.argv[2])
best = {}
def record(name, seconds, count):
    if name not in best or seconds < best[name][0]:
        best[name] = (seconds, count)
if which == "aionlmmap":
    from aionlmmap.families import sock_diag
    async def run():
        async with sock_diag.open() as sd:
            for _ in range(repeat):
                gc.collect()
                started = time.perf_counter()
                count = 0
                async for sock in sd.inet("tcp"):
                    count += 1
                record("aionlmmap sock_diag.inet('tcp') objects", time.perf_counter() - started, count)
                started = time.perf_counter()
                items = [sock.to_json() async for sock in sd.inet("tcp")]
                record("aionlmmap sock_diag.inet('tcp') + to_json()", time.perf_counter() - started, len(items))
    asyncio.run(run())
else:
    from pyroute2 import DiagSocket
    with DiagSocket() as ds:
        ds.bind()
        for _ in range(repeat):
            gc.collect()
            started = time.perf_counter()
            count = len(ds.get_sock_stats(family=socket.AF_INET)) + len(ds.get_sock_stats(family=socket.AF_INET6))
            record("pyroute2 DiagSocket.get_sock_stats", time.perf_counter() - started, count)
print(json.dumps(best))
"""


def wall(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env)
        best = min(best, time.perf_counter() - started)
    return best


def _core(env: dict[str, str], python: str = sys.executable) -> str:
    return subprocess.run([python, "-c", "from aionlmmap import _extensions; print(_extensions.CORE)"], capture_output=True, text=True, env=env, check=True).stdout.strip()


def _user_env() -> dict[str, str]:
    """The environment a user's shell has: no PYTHONDONTWRITEBYTECODE (set
    in CI), no PYTHONPATH to this tree."""
    return {name: value for name, value in os.environ.items() if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}


def install(root: str, directory: str) -> str:
    """``python -m venv DIR && DIR/bin/pip install ROOT``: the interpreter of
    a copy installed as a user installs it (pip byte-compiles it)."""
    subprocess.run([sys.executable, "-m", "venv", directory], check=True, env=_user_env())
    python = os.path.join(directory, "bin", "python")
    subprocess.run([python, "-m", "pip", "install", "-q", root], check=True, env=_user_env(), stdout=subprocess.DEVNULL)
    return python


def run_size(total: int, repeat: int, python: str, cores: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with namespace("sd") as ns:
        connections = total // 2
        per_worker = 6000
        holders = []
        try:
            for index, first in enumerate(range(0, connections, per_worker)):
                count = min(per_worker, connections - first)
                holder = subprocess.Popen([*ns.exec_prefix(), sys.executable, "-c", _HOLDER, str(20000 + index), str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                holders.append(holder)
                assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            listed = subprocess.run([*ns.exec_prefix(), "ss", "-tanH"], capture_output=True, text=True, check=True).stdout.count("\n")
            for core in cores:
                # each core's block measures ss again: ratios within a block
                selection = {"AIONLMMAP_NO_EXTENSIONS": "1" if core == "pure" else ""}
                records += _run_core(ns, total, listed, repeat, python, selection)
        finally:
            for holder in holders:
                if holder.stdin:
                    holder.stdin.close()
                holder.wait(30)
    return records


def _run_core(ns: Any, total: int, listed: int, repeat: int, python: str, selection: dict[str, str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    env = dict(os.environ, PYTHONPATH=os.getcwd(), **selection)
    base = {"sockets": total, "listed_by_ss": listed, "core": _core(env)}
    ss_seconds = wall([*ns.exec_prefix(), "ss", "-tanH"], repeat)
    records.append({**base, "contestant": "ss -tanH (process wall)", "seconds": round(ss_seconds, 4)})
    user = {**_user_env(), **selection}
    script = os.path.join(os.path.dirname(python), "aionlmmap")
    installed = {"python": python, "core": _core(user, python)}
    cli_seconds = wall([*ns.exec_prefix(), script, "dump", "sockets", "-t", "--json"], repeat, user)
    records.append({**base, **installed, "contestant": "aionlmmap dump sockets -t --json (installed, process wall)", "seconds": round(cli_seconds, 4), "vs_ss": round(cli_seconds / ss_seconds, 2)})
    bare_seconds = wall([*ns.exec_prefix(), python, "-c", "pass"], repeat, user)
    records.append({**base, **installed, "contestant": "python -c pass (same interpreter, process wall)", "seconds": round(bare_seconds, 4), "vs_ss": round(bare_seconds / ss_seconds, 2)})
    results: dict[str, Any] = {}
    for which in ("aionlmmap", "pyroute2"):
        out = subprocess.run([*ns.exec_prefix(), sys.executable, "-c", _IN_PROCESS, which, str(repeat)], capture_output=True, text=True, env=env, timeout=1800)
        if out.returncode != 0:
            records.append({**base, "contestant": which, "error": out.stderr.strip()[-500:]})
            continue
        results.update(json.loads(out.stdout))
    pyroute2 = results.get("pyroute2 DiagSocket.get_sock_stats", (None, 0))[0]
    for name, (seconds, count) in results.items():
        record = {**base, "contestant": name, "seconds": round(seconds, 4), "count": count, "vs_ss": round(seconds / ss_seconds, 2)}
        if pyroute2 and not name.startswith("pyroute2"):
            record["speedup_vs_pyroute2"] = round(pyroute2 / seconds, 1)
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", help="interpreter of a venv where aionlmmap is installed (default: pip install this tree into a fresh venv)")
    parser.add_argument("--cores", nargs="+", choices=["compiled", "pure"], default=["compiled", "pure"], help="the cores to measure, each with its own ss figure (pure: AIONLMMAP_NO_EXTENSIONS=1)")
    args = parser.parse_args(argv)
    require_root()
    import aionlmmap

    compileall.compile_dir(os.path.dirname(aionlmmap.__file__), quiet=1)
    with tempfile.TemporaryDirectory(prefix="aionlmmap-bench-venv-") as directory:
        python = args.python or install(os.path.dirname(os.path.dirname(os.path.abspath(aionlmmap.__file__))), directory)
        for total in args.sockets:
            for record in run_size(total, args.repeat, python, args.cores):
                print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
