"""``aionlmmap dump sockets [--json] [-t] [-u] [-x] [-4|-6] [state S]``:
the sockets ``ss -tanux`` lists, as JSON objects (keys in docs/sock_diag.md)
or as ss's columns. One dump read without an event loop (:mod:`.oneshot`):
the command starts and ends like ss."""

from __future__ import annotations

from . import oneshot
from .codec import state_mask

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace
    from typing import Any, TextIO

__all__ = ["dump", "parse_filter", "parse_argv"]


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


#: the flags ``dump sockets`` takes, as argparse spells them in aionlmmap.cli
_FLAGS = {"-t": "tcp", "--tcp": "tcp", "-u": "udp", "--udp": "udp", "-x": "unix", "--unix": "unix", "--json": "json"}


def parse_argv(words: list[str]) -> SimpleNamespace | None:
    """The words after ``aionlmmap dump sockets``, read as
    :func:`aionlmmap.cli.build_parser` reads them, for the plain spellings
    only: ``-t``/``--tcp``, ``-u``/``--udp``, ``-x``/``--unix``,
    ``--json``, one of ``-4``/``-6``, ``--netns NAME``/``--netns=NAME``, and
    words (the ``state S`` filter), in any order. None for anything else
    (``-h``, ``--``, abbreviations, ``-tu``, other options, ``-4`` with
    ``-6``, ``--netns`` without a name): the caller hands those to argparse,
    which answers them as it always did."""
    from types import SimpleNamespace

    args = SimpleNamespace(tcp=False, udp=False, unix=False, json=False, family=None, netns=None, filter=[])
    index = 0
    while index < len(words):
        word = words[index]
        if word in _FLAGS:
            setattr(args, _FLAGS[word], True)
        elif word == "-4" or word == "-6":
            if args.family is not None:
                return None
            args.family = int(word[1])
        elif word == "--netns":
            index += 1
            if index == len(words) or words[index].startswith("-"):
                return None
            args.netns = words[index]
        elif word.startswith("--netns="):
            args.netns = word[len("--netns=") :]
        elif word.startswith("-"):
            return None
        else:
            args.filter.append(word)
        index += 1
    return args


def dump(args: argparse.Namespace | SimpleNamespace, out: TextIO) -> int:
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
