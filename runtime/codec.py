"""msgpack encoding of messages, configurations and results; numpy arrays as an extension.

Nothing that crosses a process boundary or lands on disk is pickled: every value goes
through `pack`/`unpack` here. An ndarray travels as msgpack extension type 1 whose payload
is a 4-byte little-endian header length, a msgpack header ``[dtype, shape]`` and the raw
little-endian, C-ordered bytes. Object, string and void dtypes are refused: they cannot be
read back without trusting the sender.

`Envelope` is the one inter-module message: schema version, sender, receiver, kind
(forward or backward), the sender's round and the payload.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Literal

import msgpack
import numpy as np

from runtime.errors import MessageError

SCHEMA_VERSION = 1
NDARRAY_EXT = 1
# A message's bytes are held in memory twice (encoded and decoded); 2 GiB keeps that
# bounded while letting a million 784-pixel float32 rows travel in shards of ~600k rows.
DEFAULT_MAX_BYTES = 2 * 1024**3
BROADCAST = "*"  # receiver of a forward message: every module connected above the sender

_HEADER_LEN = struct.Struct("<I")
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex
MessageKind = Literal["forward", "backward"]


# An encoded message: msgpack bytes, or the uint8 array `to_wire` makes of them.
Wire = bytes | bytearray | memoryview | np.ndarray


# Ray passes smaller objects inline in its replies, where bytes cost less than an array.
_INLINE_BYTES = 100 * 1024


def to_wire(data: bytes) -> bytes | np.ndarray:
    """Encoded bytes as Ray should carry them between processes.

    Ray copies a bytes object into the memory of every process that reads it, while an
    array in its object store reaches readers as a read-only view. So a large message
    goes as a uint8 array (no copy made here): for the observations, as large as the
    data set, one copy less per module reading them and per update; 100 MB messages
    arrived 7-23 % sooner here (`serket-ray bench-messages`). Small ones stay bytes.
    """
    return data if len(data) < _INLINE_BYTES else np.frombuffer(data, dtype=np.uint8)


def _encode_array(array: np.ndarray) -> msgpack.ExtType:
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise MessageError(
            f"cannot encode an array of dtype {array.dtype}: only bool, integer, float and "
            "complex arrays can travel (object, string and void arrays are refused)"
        )
    little = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
    header = msgpack.packb([little.dtype.str, list(little.shape)])
    # One copy of the data: join reads the array's buffer directly (no tobytes()).
    data = memoryview(little.reshape(-1)).cast("B") if little.size else b""
    return msgpack.ExtType(NDARRAY_EXT, b"".join([_HEADER_LEN.pack(len(header)), header, data]))


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.generic):
        return value.item()
    raise MessageError(f"cannot encode a value of type {type(value).__name__}")


def _decode_array(payload: bytes) -> np.ndarray:
    view = memoryview(payload)
    if len(view) < _HEADER_LEN.size:
        raise MessageError("array extension is truncated: no header length")
    (header_len,) = _HEADER_LEN.unpack_from(view)
    start = _HEADER_LEN.size + header_len
    if start > len(view):
        raise MessageError(
            f"array extension is truncated: header claims {header_len} bytes, "
            f"{len(view) - _HEADER_LEN.size} present"
        )
    try:
        dtype_str, shape = msgpack.unpackb(view[_HEADER_LEN.size : start])
        dtype = np.dtype(dtype_str)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MessageError(f"array extension has an unreadable header: {exc}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.byteorder == ">":
        raise MessageError(f"array extension has a refused dtype {dtype_str!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise MessageError(f"array extension has an invalid shape {shape!r}")
    expected = math.prod(shape) * dtype.itemsize
    carried = len(view) - start
    if expected != carried:
        raise MessageError(
            f"array extension claims {expected} bytes (dtype {dtype_str}, shape {shape}) "
            f"but carries {carried}"
        )
    return np.frombuffer(view[start:], dtype=dtype).reshape(shape)


def _ext_hook(code: int, payload: bytes) -> np.ndarray:
    if code != NDARRAY_EXT:
        raise MessageError(f"unknown msgpack extension type {code}")
    return _decode_array(payload)


def pack(value: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Encode a tree of dicts, lists, scalars, strings and numeric ndarrays."""
    data = msgpack.packb(value, default=_default, use_bin_type=True)
    if len(data) > max_bytes:
        raise MessageError(f"encoded value is {len(data)} bytes, over the limit of {max_bytes}")
    return data


def unpack(data: Wire, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Decode what `pack` wrote (as bytes or `to_wire`'s array); arrays come back
    read-only."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise MessageError(
                f"expected bytes or a 1-D uint8 array, got an array of dtype {data.dtype} "
                f"and shape {data.shape}"
            )
        data = memoryview(data)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MessageError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MessageError(f"message is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)
    except MessageError:
        raise
    except msgpack.ExtraData:
        raise MessageError("malformed message: extra bytes after the value") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MessageError(f"malformed message: truncated or not msgpack ({exc})") from None


@dataclass(frozen=True)
class Envelope:
    """One message from a module (or observation) to another."""

    sender: str
    receiver: str
    kind: MessageKind
    round: int
    payload: Any
    schema: int = SCHEMA_VERSION


_ENVELOPE_FIELDS = ("schema", "sender", "receiver", "kind", "round", "payload")


def encode(envelope: Envelope, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Encode an envelope; the payload may hold ndarrays."""
    return pack({name: getattr(envelope, name) for name in _ENVELOPE_FIELDS}, max_bytes=max_bytes)


def decode(
    data: Wire,
    *,
    receiver: str | None = None,
    kind: MessageKind | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Envelope:
    """Decode and check an envelope; `receiver` and `kind`, when given, must match it."""
    value = unpack(data, max_bytes=max_bytes)
    if not isinstance(value, dict) or set(value) != set(_ENVELOPE_FIELDS):
        found = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise MessageError(
            f"not a message envelope: expected fields {_ENVELOPE_FIELDS}, got {found}"
        )
    parties = f"message from {value['sender']!r} to {receiver or value['receiver']!r}"
    if value["schema"] != SCHEMA_VERSION:
        raise MessageError(
            f"{parties} has schema version {value['schema']!r}; "
            f"this runtime reads version {SCHEMA_VERSION}"
        )
    if value["kind"] not in ("forward", "backward"):
        raise MessageError(f"{parties} has unknown kind {value['kind']!r}")
    envelope = Envelope(**value)
    if receiver is not None and envelope.receiver not in (receiver, BROADCAST):
        raise MessageError(
            f"message from {envelope.sender!r} is addressed to {envelope.receiver!r}, "
            f"but was delivered to {receiver!r}"
        )
    if kind is not None and envelope.kind != kind:
        raise MessageError(
            f"message from {envelope.sender!r} to {receiver or envelope.receiver!r} is a "
            f"{envelope.kind} message where a {kind} message was expected"
        )
    return envelope
