"""``aionlmmap dump sockets [--json] [-t] [-u] [-x] [-4|-6] [state S]``:
the sockets ``ss -tanux`` lists, as JSON objects (keys in docs/sock_diag.md)
or as ss's columns. One dump read without an event loop (:mod:`.oneshot`):
the command starts and ends like ss."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from . import oneshot
from .codec import state_mask

if TYPE_CHECKING:
    import argparse

__all__ = ["dump", "parse_filter"]


def parse_filter(words: list[str]) -> list[str] | None:
    """``state S [state S ...]`` -> the state words (validated)."""
    if not words:
        return None
    states = []
    it = iter(words)
    for word in it:
        if word != "state":
            raise ValueError(f"unknown filter {word!r}: use `state NAME` (established, listening, connected, ...)")
        name = next(it, None)
        if name is None:
            raise ValueError("`state` needs a state name")
        state_mask(name)
        states.append(name)
    return states


def dump(args: argparse.Namespace, out: TextIO) -> int:
    states = parse_filter(list(args.filter))
    options = {"tcp": args.tcp, "udp": args.udp, "unix": args.unix, "family": args.family, "states": states, "netns": args.netns}
    if args.json:
        # One JSON array, a datagram's sockets at a time, as UTF-8 bytes
        # straight to stdout's binary buffer: each kernel datagram (up to
        # 32 KiB of messages) becomes one write of ~50 KiB of text.
        out.flush()
        binary = getattr(out, "buffer", None)
        write = binary.write if binary is not None else (lambda data: out.write(data.decode()))
        separator = b"["
        for chunk in oneshot.json_chunks(**options):
            if chunk:
                write(separator)
                write(chunk)
                separator = b","
        write(b"[]\n" if separator == b"[" else b"]\n")
        if binary is not None:
            binary.flush()
    else:
        for chunk in oneshot.socket_chunks(**options):
            for sock in chunk:
                out.write(_line(sock.to_json()) + "\n")
    out.flush()
    return 0


def _endpoint(item: dict[str, Any], side: str) -> str:
    address, port = item[f"{side}_address"], item[f"{side}_port"]
    if item["family"] == "unix":
        return f"{address} {port}"
    if item["family"] == "inet6":
        address = f"[{address}]"
    elif address == "0.0.0.0" and side == "local":
        address = "0.0.0.0"
    return f"{address}:{port if port else '*'}"


def _line(item: dict[str, Any]) -> str:
    return f"{item['netid']:<5} {item['state']:<10} {item['recv_q']:<6} {item['send_q']:<6} {_endpoint(item, 'local')} {_endpoint(item, 'peer')}"
