"""A small server-sent-events reader for aiohttp client responses.

For scripts and tests that follow ``/api/events`` without a browser. It
follows the WHATWG "event stream" parsing rules that matter here: fields
``event``, ``data`` (joined by newlines), ``id``, ``retry``; comment lines
(``:``) skipped; an event ends at a blank line; lines end with CRLF, LF or
CR.

Example::

    async with aiohttp.ClientSession() as session:
        async with session.get("http://127.0.0.1:8080/api/events") as response:
            async for event in read_events(response):
                print(event.event, event.id, event.json())
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs

__all__ = ["ServerSentEvent", "read_events"]


@attrs.frozen
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def read_events(response: Any, *, max_line: int = 64 * 1024 * 1024) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of an ``text/event-stream`` response until it ends.

    Reads chunks rather than ``readline()``: aiohttp's readline refuses
    lines past its buffer limit (128 KiB), and a resync snapshot is one line.
    """
    event, data, event_id, retry = "message", [], None, None
    async for line in _lines(response, max_line):
        if not line:
            if data:
                yield ServerSentEvent(event, "\n".join(data), event_id, retry)
            event, data, retry = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


async def _lines(response: Any, max_line: int) -> AsyncIterator[str]:
    pending = bytearray()
    async for chunk in response.content.iter_any():
        searched = max(len(pending) - 1, 0)  # bytes already known to hold no line end (but a trailing CR)
        pending += chunk
        start = 0
        while True:
            cut = _line_end(pending, max(start, searched))
            if cut is None:
                break
            end, resume = cut
            yield pending[start:end].decode("utf-8")
            start = resume
        del pending[:start]
        if len(pending) > max_line:
            raise ValueError(f"server-sent event line longer than {max_line} bytes")


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(end of line, start of next) for the first CRLF, LF or CR at or after ``start``."""
    newline, carriage = buffer.find(b"\n", start), buffer.find(b"\r", start)
    if carriage == -1 or (newline != -1 and newline < carriage):
        return None if newline == -1 else (newline, newline + 1)
    if carriage + 1 == len(buffer):
        return None  # wait: the LF of a CRLF may be in the next chunk
    return (carriage, carriage + 2) if buffer[carriage + 1] == 0x0A else (carriage, carriage + 1)
