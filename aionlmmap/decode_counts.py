"""What a family's decoders skipped instead of failing: attributes of a type
they do not know (a newer kernel sends more than we declare) and messages
too malformed to decode. Clients keep one (``client.counts``) and report it;
neither is ever fatal."""

from __future__ import annotations

__all__ = ["DecodeCounts"]


class DecodeCounts:
    """``unknown_attributes``: attributes skipped for their type;
    ``malformed``: messages skipped whole (counted by the client)."""

    __slots__ = ("unknown_attributes", "malformed")

    def __init__(self) -> None:
        self.unknown_attributes = 0
        self.malformed = 0

    def __repr__(self) -> str:
        return f"DecodeCounts(unknown_attributes={self.unknown_attributes}, malformed={self.malformed})"
