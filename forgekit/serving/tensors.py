"""JSON <-> numpy for TF Serving's REST predict API, with TF Serving's rules and messages.

Requests come as rows (``"instances"``: one item per example, objects when the signature has
several inputs) or columns (``"inputs"``: one tensor, or an object of named tensors). Values
are checked against the signature's dtypes the way TF Serving's ``util/json_tensor.cc`` does:
no strings for numbers, no fractions for integers, no integer a float cannot hold exactly,
no ragged lists. Responses mirror the request's format: ``"predictions"`` or ``"outputs"``,
unnamed when the signature has a single output.

Only numpy is needed here, so the REST client can use the same code without TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from forgekit.serving.error_codes import ServingError, invalid

# TF DataType name -> numpy dtype (strings are object arrays of bytes)
DTYPES: dict[str, Any] = {
    "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
    "DT_INT8": np.int8, "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64,
    "DT_UINT8": np.uint8, "DT_UINT16": np.uint16, "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64, "DT_BOOL": np.bool_, "DT_STRING": object,
}
# the names tensorflow::DataTypeString() prints, used in TF Serving's error messages
TYPE_NAMES = {
    "DT_FLOAT": "float", "DT_DOUBLE": "double", "DT_HALF": "half", "DT_INT8": "int8",
    "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64", "DT_UINT8": "uint8",
    "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64", "DT_BOOL": "bool",
    "DT_STRING": "string",
}
_FLOAT_DIGITS = {"DT_FLOAT": 24, "DT_DOUBLE": 53, "DT_HALF": 11}  # mantissa bits
_SEQ = (list, tuple)
_MAX_RANK = 32


@dataclass(frozen=True)
class InputInfo:
    """What a signature expects for one input: TF dtype name and shape (-1 = any size)."""

    dtype: str
    shape: tuple[int, ...] | None = None  # None: unknown rank


def dtype_for(name: str) -> Any:
    """The numpy dtype for a TF DataType name such as ``DT_FLOAT``."""
    if name not in DTYPES:
        raise ServingError("UNIMPLEMENTED", f"Conversion of JSON values to type: {name}")
    return DTYPES[name]


def json_type(value: Any) -> str:
    """rapidjson's name for a JSON value's type, as TF Serving prints it."""
    if value is None:
        return "Null"
    if value is True or value is False:
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, _SEQ):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def preview(value: Any, limit: int = 120) -> str:
    """A short JSON rendering of a client value for error messages (never the whole body)."""

    def walk(v: Any, depth: int) -> str:
        if isinstance(v, dict):
            if depth > 3:
                return "{...}"
            items = [f"{json.dumps(str(k))}: {walk(x, depth + 1)}" for k, x in list(v.items())[:4]]
            return "{" + ", ".join(items) + (", ..." if len(v) > 4 else "") + "}"
        if isinstance(v, _SEQ):
            if depth > 3:
                return "[...]"
            items = [walk(x, depth + 1) for x in v[:6]]
            return "[" + ", ".join(items) + (", ..." if len(v) > 6 else "") + "]"
        try:
            return json.dumps(v)
        except (TypeError, ValueError):
            return repr(v)

    text = walk(value, 0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_b64(value: Any) -> bool:
    """``{"b64": "<base64>"}``: TF Serving's encoding of binary strings."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


class _Ragged(ServingError):
    """A batch whose lists do not form one dense tensor (rows are re-checked one by one)."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_ARGUMENT", message)


def _type_error(value: Any, dtype: str) -> ServingError:
    return invalid(f"JSON Value: {preview(value)} Type: {json_type(value)} is not of expected "
                   f"type: {TYPE_NAMES.get(dtype, dtype)}")


def _flatten(value: Any) -> tuple[list[int], list]:
    """Shape and leaves of a nested list, level by level (C-speed set/map/chain per level)."""
    shape: list[int] = []
    level = [value]
    while True:
        types = set(map(type, level))
        if not types & {list, tuple}:
            return shape, level
        if not types <= {list, tuple}:
            odd = next(v for v in level if not isinstance(v, _SEQ))
            raise _Ragged(f"JSON Value: {preview(odd)} found at incorrect level: "
                          f"{len(shape) + 1} in the JSON DOM (lists and values mixed at the "
                          "same depth)")
        sizes = list(map(len, level))
        expected = sizes[0]
        if sizes.count(expected) != len(sizes):
            other = next(s for s in sizes if s != expected)
            raise _Ragged(f"Encountered list at unexpected size: {other} at level: "
                          f"{len(shape)} expected size: {expected}")
        shape.append(expected)
        if len(shape) > _MAX_RANK:
            raise invalid(f"Tensor nested deeper than {_MAX_RANK} levels")
        if expected == 0:
            return shape, []
        level = list(chain.from_iterable(level))


def to_array(value: Any, dtype: str) -> np.ndarray:
    """Convert a JSON value (scalar or nested lists) to an array of TF dtype ``dtype``.

    Raises ServingError(INVALID_ARGUMENT) with TF Serving's wording when a value does not fit.
    """
    np_dtype = dtype_for(dtype)
    if isinstance(value, np.ndarray):
        return _from_ndarray(value, dtype, np_dtype)
    shape, leaves = _flatten(value)
    if not leaves:
        return np.zeros(shape, dtype=np_dtype)
    types = set(map(type, leaves))
    if dtype in _FLOAT_DIGITS:
        flat = _floats(leaves, types, dtype, np_dtype)
    elif dtype == "DT_BOOL":
        if types != {bool}:
            raise _type_error(next(v for v in leaves if type(v) is not bool), dtype)
        flat = np.array(leaves, dtype=np.bool_)
    elif dtype == "DT_STRING":
        flat = _strings(leaves, types, dtype)
    else:  # integers
        if types != {int}:
            raise _type_error(next(v for v in leaves if type(v) is not int), dtype)
        info = np.iinfo(np_dtype)
        low, high = min(leaves), max(leaves)
        if low < info.min or high > info.max:
            raise _type_error(low if low < info.min else high, dtype)
        flat = np.array(leaves, dtype=np_dtype)
    return flat.reshape(shape)


def _floats(leaves: list, types: set, dtype: str, np_dtype: Any) -> np.ndarray:
    if not types <= {int, float}:
        raise _type_error(next(v for v in leaves if type(v) not in (int, float)), dtype)
    target = TYPE_NAMES[dtype]
    if int in types:  # TF Serving refuses integers the float type cannot represent exactly
        limit = (1 << _FLOAT_DIGITS[dtype]) - 1
        big = next((v for v in leaves if type(v) is int and abs(v) > limit), None)
        if big is not None:
            raise invalid(f"Cannot convert JSON value: {preview(big)} to {target} without "
                          "loss of precision.")
    wide = np.array(leaves, dtype=np.float64)
    if np_dtype is not np.float64:
        finite = wide[np.isfinite(wide)]
        if finite.size and np.abs(finite).max() > np.finfo(np_dtype).max:
            bad = float(finite[np.argmax(np.abs(finite))])
            raise invalid(f"Cannot convert JSON value: {bad!r} to {target} without loss of "
                          "precision.")
        return wide.astype(np_dtype)
    return wide


def _strings(leaves: list, types: set, dtype: str) -> np.ndarray:
    if not types <= {str, dict}:
        raise _type_error(next(v for v in leaves if type(v) not in (str, dict)), dtype)
    out = np.empty(len(leaves), dtype=object)
    for i, v in enumerate(leaves):
        if type(v) is str:
            out[i] = v.encode("utf-8", "surrogatepass")
        elif is_b64(v):
            try:
                out[i] = base64.b64decode(v["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
        else:
            raise invalid(f"JSON Value: {preview(v)} not formatted correctly for base64 data")
    return out


def _from_ndarray(value: np.ndarray, dtype: str, np_dtype: Any) -> np.ndarray:
    """The numpy fast path (gRPC client): the same type rules as for JSON values."""
    kind = value.dtype.kind
    if dtype == "DT_STRING":
        flat = value.ravel().tolist() if kind in "OSU" else [value.flat[0]]
        bad = next((v for v in flat if not isinstance(v, (str, bytes))), None)
        if bad is not None:
            raise _type_error(bad, dtype)
        out = np.empty(len(flat), dtype=object)
        out[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in flat]
        return out.reshape(value.shape)
    allowed = "b" if dtype == "DT_BOOL" else "fiu" if dtype in _FLOAT_DIGITS else "iu"
    if kind not in allowed:
        raise invalid(f"array of dtype {value.dtype} is not of expected type: "
                      f"{TYPE_NAMES.get(dtype, dtype)}")
    if dtype in _FLOAT_DIGITS and kind in "iu" and value.size:
        limit = (1 << _FLOAT_DIGITS[dtype]) - 1
        if np.abs(value.astype(np.float64)).max() > limit:
            raise invalid(f"Cannot convert integers above {limit} to "
                          f"{TYPE_NAMES[dtype]} without loss of precision.")
    if kind in "iu" and dtype not in _FLOAT_DIGITS and value.size:
        info = np.iinfo(np_dtype)
        if value.min() < info.min or value.max() > info.max:
            raise invalid(f"array values out of range for {TYPE_NAMES.get(dtype, dtype)}")
    return value.astype(np_dtype, copy=False)


# --------------------------------------------------------------------------- requests


def parse_inputs(doc: Mapping[str, Any], infos: Mapping[str, InputInfo]
                 ) -> tuple[bool, dict[str, np.ndarray]]:
    """Tensors from a predict body; returns (row_format, {input name: array}).

    ``doc`` is the parsed JSON object; ``infos`` the signature's inputs. The rules and most
    messages follow ``FillPredictRequestFromJson`` in TF Serving.
    """
    if not infos:
        raise invalid("Failed to get input map for signature")
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows and has_cols:
        raise invalid(f"JSON Value: {preview(doc)} Not formatted correctly expecting only one "
                      "of 'inputs' or 'instances' keys to exist ")
    if has_rows:
        return True, _from_rows(doc["instances"], doc, infos)
    if has_cols:
        return False, _from_columns(doc["inputs"], infos)
    raise invalid("Missing 'inputs' or 'instances' key")


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64(value)


def _from_rows(rows: Any, doc: Mapping[str, Any], infos: Mapping[str, InputInfo]
               ) -> dict[str, np.ndarray]:
    # The odd wording ("Excepting") is TF Serving's own, kept so messages match.
    if isinstance(rows, np.ndarray) and rows.ndim and len(infos) == 1:
        if not len(rows):
            raise invalid("No values in 'instances' array")
        ((name, info),) = infos.items()
        return {name: to_array(rows, info.dtype)}  # one input, already batched
    if not isinstance(rows, _SEQ):
        raise invalid(f"JSON Value: {preview(doc)} Excepting 'instances' to be an list/array")
    if not rows:
        raise invalid(f"JSON Value: {preview(doc)} No values in 'instances' array")
    objects = _is_object(rows[0])
    if not objects and len(infos) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    if not objects:
        for i, row in enumerate(rows):
            if _is_object(row):
                raise invalid(f"Expecting value/list but got object at item {i} of input list")
        (name,) = infos
        return {name: _column(name, rows, infos[name])}
    names = set(infos)
    for i, row in enumerate(rows):
        if not _is_object(row):
            raise invalid(f"Expecting object but got list at item {i} of input list")
        if row.keys() != names:
            extra = sorted(set(row) - names)
            if extra:
                raise invalid(f"Failed to process element: {i} key: {preview(extra[0])} of "
                              "'instances' list. Error: INVALID_ARGUMENT: JSON object: does not "
                              f"have named input: {preview(extra[0])}")
            raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                          f"{preview(row)} keys must be equal to: {','.join(sorted(names))}")
    return {name: _column(name, [row[name] for row in rows], info, keyed=True)
            for name, info in infos.items()}


def _column(name: str, values: list, info: InputInfo, keyed: bool = False) -> np.ndarray:
    try:
        return to_array(values, info.dtype)
    except _Ragged:
        # TF Serving converts instance by instance: say which one differs, and how
        where = f" key: {name}" if keyed else ""
        for i, message in _instance_errors(values):
            raise invalid(f"Failed to process element: {i}{where} of 'instances' list. Error: "
                          f"INVALID_ARGUMENT: {message}") from None
        raise
    except ServingError as err:
        if err.code != "INVALID_ARGUMENT":
            raise
        raise invalid(f"Failed to process 'instances' for input: {name}. Error: "
                      f"{err.message}") from None


def _instance_errors(values: list):
    """(index, message) of the first instance that breaks the batch, in TF Serving's words."""
    first: tuple[int, list[int]] | None = None
    for i, item in enumerate(values):
        shape = _first_path_shape(item)
        problem = _dense_problem(item, shape, 0)
        if problem:
            yield i, problem
            return
        size = math.prod(shape)
        if first is None:
            first = (size, shape)
        elif first[0] != size:
            yield i, f"Expecting tensor size: {first[0]} but got: {size}"
            return
        elif first[1] != shape:
            yield i, f"Expecting shape {_shape_text(first[1])} but got: {_shape_text(shape)}"
            return


def _first_path_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, _SEQ) and len(shape) <= _MAX_RANK:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _dense_problem(value: Any, shape: list[int], level: int) -> str | None:
    if not isinstance(value, _SEQ):
        if level != len(shape):
            return (f"JSON Value: {preview(value)} found at incorrect level: {level + 1} in "
                    f"the JSON DOM. Expected at level: {len(shape)}")
        return None
    if level >= len(shape):
        return f"Encountered list at unexpected level: {level} expected < {len(shape)}"
    if len(value) != shape[level]:
        return (f"Encountered list at unexpected size: {len(value)} at level: {level} "
                f"expected size: {shape[level]}")
    for item in value:
        problem = _dense_problem(item, shape, level + 1)
        if problem:
            return problem
    return None


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _from_columns(value: Any, infos: Mapping[str, InputInfo]) -> dict[str, np.ndarray]:
    if not _is_object(value):
        if len(infos) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                          "input tensors required as per tensorinfo_map")
        ((name, info),) = infos.items()
        return {name: to_array(value, info.dtype)}
    arrays = {}
    for name, info in infos.items():  # extra keys are ignored, as TF Serving does
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = to_array(value[name], info.dtype)
    return arrays


# --------------------------------------------------------------------------- responses


def array_to_json(array: np.ndarray, name: str = "") -> Any:
    """A tensor as nested JSON lists.

    float32/float16 values are written with the shortest digits that round-trip to the same
    value (TF Serving also avoids float64 noise such as 0.20000000298023224). String tensors
    whose name ends in ``_bytes`` are written as ``{"b64": ...}``, like TF Serving.
    """
    kind = array.dtype.kind
    if kind == "f":
        if array.dtype == np.float64:
            return array.tolist()
        return _shortest(array).tolist()
    if kind in "iub":
        return array.tolist()
    if kind in "OSU":
        as_b64 = name.endswith("_bytes")
        flat = [_string_json(v, as_b64) for v in array.ravel().tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    if array.dtype.name == "bfloat16":
        return _shortest(array.astype(np.float32)).tolist()
    raise invalid(f"Failed to write JSON value for tensor type: {array.dtype}")


_CHUNK = 1 << 16


def _shortest(array: np.ndarray) -> np.ndarray:
    """float64 values whose repr is the shortest decimal that round-trips ``array``'s values.

    Through text, in chunks: ``astype(str)`` makes 128-byte strings, which for a large output
    in one go would take more memory than everything else in the request.
    """
    flat = array.ravel()
    out = np.empty(flat.size, np.float64)
    for start in range(0, flat.size, _CHUNK):
        out[start:start + _CHUNK] = flat[start:start + _CHUNK].astype(str).astype(np.float64)
    return out.reshape(array.shape)


def _string_json(value: Any, as_b64: bool) -> Any:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if as_b64:
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8", "replace")


def outputs_to_json(outputs: Mapping[str, np.ndarray], row: bool) -> dict[str, Any]:
    """``{"predictions": ...}`` for a row request, ``{"outputs": ...}`` for a columnar one."""
    return json.loads(outputs_json_bytes(outputs, row))


def outputs_json_bytes(outputs: Mapping[str, np.ndarray], row: bool) -> bytes:
    """The answer's JSON text (see :func:`outputs_to_json`), built slice by slice.

    A large answer (hundreds of thousands of rows) as one tree of Python lists and floats
    takes several times the memory of its text; encoding slices of the batch in turn keeps
    only one slice's objects alive at a time.
    """
    names = _output_names(outputs, row)
    if row and len(names) > 1:
        batch = len(outputs[names[0]])
        step = _rows_per_slice(outputs[names[0]])
        parts = []
        for start in range(0, batch, step):
            columns = [array_to_json(outputs[n][start:start + step], n) for n in names]
            rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
            parts.append(json.dumps(rows).encode()[1:-1])
        return b'{"predictions": [' + b", ".join(parts) + b"]}"
    key = b'{"predictions": ' if row else b'{"outputs": '
    if len(names) == 1:
        return key + _array_json_bytes(outputs[names[0]], names[0]) + b"}"
    return key + b"{" + b", ".join(json.dumps(n).encode() + b": " + _array_json_bytes(
        outputs[n], n) for n in names) + b"}}"


def _rows_per_slice(array: np.ndarray) -> int:
    return max(1, _CHUNK // max(1, math.prod(array.shape[1:])))


def _array_json_bytes(array: np.ndarray, name: str) -> bytes:
    if array.ndim == 0 or array.size <= _CHUNK:
        return json.dumps(array_to_json(array, name)).encode()
    step = _rows_per_slice(array)
    return b"[" + b", ".join(json.dumps(array_to_json(array[start:start + step], name)
                                        ).encode()[1:-1]
                             for start in range(0, len(array), step)) + b"]"


def _output_names(outputs: Mapping[str, np.ndarray], row: bool) -> list[str]:
    """The output names in answer order, after TF Serving's checks for the row format."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if not row:
        return names
    batch = None
    for n in names:
        shape = np.shape(outputs[n])
        if not shape:
            raise invalid(f"Tensor name: {n} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise invalid(f"Tensor name: {n} has inconsistent batch size: {shape[0]} "
                          f"expecting: {batch}")
        batch = shape[0]
    return names
