"""A REST request body parsed as TF Serving parses it, with rapidjson's error messages.

TF Serving's ``json_tensor.cc`` reads bodies with rapidjson (``kParseNanAndInfFlag``) from a
UTF-8 stream, which skips a UTF-8 byte-order mark and nothing else: no UTF-16 or UTF-32, no
number beyond double's range (Python's ``json`` reads both, the latter as infinity). Errors
carry rapidjson's message and byte offset. One deliberate difference: bytes that are not UTF-8
inside strings are refused here, where rapidjson passes them through unchecked.
"""

from __future__ import annotations

import json
import math
from typing import Any

from forgekit.serving.error_codes import invalid
from forgekit.serving.tensors import preview


class _TooBig(ValueError):
    """A number beyond double's range: rapidjson refuses it (Python would make it inf)."""


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _TooBig(text)
    return value


def _int(text: str) -> int | float:
    # rapidjson keeps integers that fit int64/uint64 and makes the others doubles (so Python's
    # limit on digits, with its sys.set_int_max_str_digits() hint, is never reached)
    if len(text) <= 20 + text.startswith("-"):
        value = int(text)
        if -(1 << 63) <= value < (1 << 64):
            return value
    return _float(text)


def parse_request(body: bytes) -> tuple[dict[str, Any], str]:
    """The request's JSON object and its ``signature_name`` ("" when absent)."""
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {preview(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(f"JSON Value: {preview(doc)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return doc, signature_name


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; ServingError(INVALID_ARGUMENT) with rapidjson's words."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    start = 0
    for mark in b"\xef\xbb\xbf":  # rapidjson's EncodedInputStream<UTF8> skips them one by one
        start += body[start] == mark if start < len(body) else 0
    bad = None
    try:
        text = body[start:].decode()
    except UnicodeDecodeError as exc:
        text, bad = body[start:].decode("utf-8", "surrogateescape"), start + exc.start

    def offset(pos: int) -> int:  # rapidjson counts bytes, Python characters
        return start + len(text[:pos].encode("utf-8", "surrogateescape"))

    try:
        doc = json.loads(text, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise invalid(f"JSON Parse error: {_parse_error(exc.msg)} at offset: "
                      f"{offset(exc.pos)}") from None
    except _TooBig as exc:
        raise invalid("JSON Parse error: Number too big to be stored in double. at offset: "
                      f"{offset(max(0, text.find(str(exc))))}") from None
    except RecursionError:  # absurdly deep nesting
        raise invalid("JSON Parse error: Document nested too deeply.") from None
    if bad is not None:
        raise invalid(f"JSON Parse error: Invalid encoding in string. at offset: {bad}")
    return doc


# Python's json messages -> rapidjson's (GetParseError_En), which TF Serving reports
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Expecting ',' delimiter": "Missing a comma or ']' after an array element, or a comma or "
                               "'}' after an object member.",
    "Extra data": "The document root must not be followed by other values.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Unexpected UTF-8 BOM (decode using utf-8-sig)": "Invalid value.",  # a second BOM
}


def _parse_error(message: str) -> str:
    return _PARSE_ERRORS.get(message, message)
