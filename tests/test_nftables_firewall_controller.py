"""End to end: examples/firewall_controller.py protects a namespace; a flood
from the other end of the veth gets its source blocked for real."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys

import pytest

from conftest import run
from test_nfqueue import PORT, Sink, send_udp

pytestmark = pytest.mark.integration
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "firewall_controller.py"


async def test_the_controller_blocks_a_flooding_source(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--netns", receiver, "--port", str(PORT), "--threshold", "20", "--window", "30",
        "--duration", "8", "--status-interval", "0.5", "--json", "--keep", stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))  # the table is in place by now
        assert first["blocked"] == []
        async with Sink(receiver, 1000, idle=1.5) as sink:
            await send_udp(sender, 200)
            await asyncio.sleep(1.0)  # the block commits within the batch interval
            await send_udp(sender, 100)  # all of these hit the blocklist
            received = (await sink.result())["seqs"]
        statuses = [json.loads(line) for line in (await asyncio.wait_for(proc.stdout.read(), 20)).splitlines()]
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
    final = statuses[-1]
    assert final["final"] is True
    assert final["blocked"] == ["10.99.0.1"]
    assert final["transactions"] == 2  # setup + one batched block
    assert 20 <= len(received) <= 200  # the first wave passed (it outruns the 0.2 s commit), the second not at all
    assert all(seq < 200 for seq in received)
    listing = json.loads(run("ip", "netns", "exec", receiver, "nft", "-j", "list", "set", "inet", "aionlmmap_fw", "blocklist").stdout)
    (nft_set,) = [item["set"] for item in listing["nftables"] if "set" in item]
    assert [element["elem"]["val"] for element in nft_set["elem"]] == ["10.99.0.1"]
