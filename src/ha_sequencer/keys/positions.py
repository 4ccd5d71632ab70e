"""Where a JSON path starts in the source text (line, column), so schema problems point at a line too."""

from __future__ import annotations

import re
from collections.abc import Callable
from json import decoder
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_PATH_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_$][A-Za-z0-9_$-]*)")

Path = tuple[Any, ...]

# json's own string scanner (C-accelerated; typeshed does not declare it): a key as json.loads reads it
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(decoder, "scanstring")  # noqa: B009


def value_offsets(text: str) -> dict[Path, int]:
    """The offset of every value of a (valid) JSON text, keyed by its path of keys and list indices."""
    offsets: dict[Path, int] = {}
    _value(text, _skip(text, 0), (), offsets)
    return offsets


def parse_json_path(path: str) -> Path | None:
    """`validators[0].attester.eth` → ("validators", 0, "attester", "eth"); None when it cannot be mapped."""
    if path == "(root)":
        return ()
    parts: list[Any] = []
    position = 0
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if not match or match.end() == position:
            return None
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
        position = match.end()
    return tuple(parts)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(text: str, json_path: str) -> tuple[int, int] | None:
    """Line and column where the value at `json_path` starts (or its closest existing parent)."""
    path = parse_json_path(json_path)
    if path is None:
        return None
    try:
        offsets = value_offsets(text)
    except (ValueError, IndexError, RecursionError):
        return None
    while path not in offsets and path:
        path = path[:-1]  # a missing field: point at the object that lacks it
    return line_col(text, offsets[path]) if path in offsets else None


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()  # type: ignore[union-attr]


def _value(text: str, i: int, path: Path, out: dict[Path, int]) -> int:
    out[path] = i
    char = text[i]
    if char == "{":
        i = _skip(text, i + 1)
        if text[i] == "}":
            return i + 1
        while True:
            key, i = _scanstring(text, i + 1)
            i = _skip(text, i)
            i = _skip(text, i + 1)  # past ':'
            i = _skip(text, _value(text, i, (*path, key), out))
            if text[i] == "}":
                return i + 1
            i = _skip(text, i + 1)  # past ','
    if char == "[":
        i = _skip(text, i + 1)
        if text[i] == "]":
            return i + 1
        index = 0
        while True:
            i = _skip(text, _value(text, i, (*path, index), out))
            index += 1
            if text[i] == "]":
                return i + 1
            i = _skip(text, i + 1)
    if char == '"':
        return _scanstring(text, i + 1)[1]
    match = _SCALAR.match(text, i)
    if not match:
        raise ValueError(f"unexpected character at {i}")
    return match.end()
