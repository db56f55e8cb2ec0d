"""The few protobuf fields detection needs, decoded from the wire format itself.

Importing TensorFlow's generated protobuf classes would import all of TensorFlow (seconds).
"""

from __future__ import annotations

from typing import Any


def fields(buf: bytes | memoryview) -> dict[int, list[Any]]:
    """Decode one protobuf message: field number -> values (ints, or bytes for length-delimited).

    Raises ``ValueError`` on bytes that are not a well-formed message (truncated, random).
    """
    data = memoryview(buf)
    found: dict[int, list[Any]] = {}
    i, n = 0, len(data)
    while i < n:
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire in (1, 5):
            value, i = data[i : i + (8 if wire == 1 else 4)], i + (8 if wire == 1 else 4)
        else:  # groups (3, 4) are not used by these messages; 6 and 7 do not exist
            raise ValueError(f"unexpected wire type {wire} at byte {i}")
        if i > n or number == 0:
            raise ValueError(f"truncated message (field {number} ends past byte {n})")
        found.setdefault(number, []).append(value)
    return found


def varint(data: memoryview, i: int) -> tuple[int, int]:
    """The varint starting at byte ``i``, and the index after it."""
    result = shift = 0
    while i < len(data) and shift < 64:
        byte = data[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return result, i
        shift += 7
    raise ValueError(f"truncated or overlong varint at byte {i}")


def text(value: bytes | memoryview) -> str:
    """A string field's value."""
    return bytes(value).decode("utf-8")

