"""Decode a JSON request object whose one large array (``customers``, ``rows``) is decoded item by item.

``json.loads`` and pydantic's JSON parser hold the GIL for the whole body: for a maximal request, long enough
for every other request of the worker to wait visibly. Decoding
the large array one item at a time (the standard library's scanner, one call per item) lets other threads and
the event loop run between items, and lets the caller stop early (a size limit) or validate each item as it
comes. Everything else in the object is decoded as usual. The result equals ``json.loads`` on the same text,
except that a repeated key is an error here (``json.loads`` keeps the last value silently).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


STREAMED = object()  # stands in the result for the array that went to ``on_item``


class JsonSyntaxError(ValueError):
    """Text that is not the expected JSON; the message gives the problem and its line and column only."""


def _error(text: str, pos: int, problem: str) -> JsonSyntaxError:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return JsonSyntaxError(f"{problem} at line {line} column {column}")


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string at worst


def _value(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise _error(text, exc.pos, exc.msg) from None


def _array(text: str, pos: int, on_item: Callable[[int, Any], None]) -> int:
    """Decode the array starting at ``text[pos] == '['``, handing each item to ``on_item``; returns the end."""
    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        return pos + 1
    index = 0
    while True:
        item, pos = _value(text, pos)
        on_item(index, item)
        index += 1
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
        elif text.startswith("]", pos):
            return pos + 1
        else:
            raise _error(text, pos, "expecting ',' or ']'")


def decode_object(text: str, items_key: str | None, on_item: Callable[[int, Any], None]) -> dict[str, Any]:
    """Decode the JSON object in ``text``; the array under ``items_key`` goes to ``on_item(index, item)`` one item
    at a time instead of into the result (which holds :data:`STREAMED` in its place).

    Raises :class:`JsonSyntaxError`."""
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        if pos >= len(text):
            raise _error(text, pos, "expecting a JSON object, found an empty body")
        _value(text, pos)  # a syntax error is reported as such
        raise _error(text, pos, "expecting a JSON object")
    out: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        pos += 1
    else:
        while True:
            if not text.startswith('"', pos):
                raise _error(text, pos, "expecting a property name in double quotes")
            key, pos = _value(text, pos)
            if key in out:
                raise _error(text, pos, f"property {key!r} given twice" if key == items_key else "a repeated property")
            pos = _skip(text, pos)
            if not text.startswith(":", pos):
                raise _error(text, pos, "expecting ':'")
            pos = _skip(text, pos + 1)
            if key == items_key and text.startswith("[", pos):
                pos, out[key] = _array(text, pos, on_item), STREAMED
            else:
                out[key], pos = _value(text, pos)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
            elif text.startswith("}", pos):
                pos += 1
                break
            else:
                raise _error(text, pos, "expecting ',' or '}'")
    if _skip(text, pos) != len(text):
        raise _error(text, _skip(text, pos), "extra data after the JSON object")
    return out
