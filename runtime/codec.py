"""msgpack encoding of messages, configurations and results; numpy arrays as an extension.

Nothing that crosses a process boundary or lands on disk is pickled: every value goes
through `pack`/`unpack` here. An ndarray travels as msgpack extension type 1 whose payload
is a 4-byte little-endian header length, a msgpack header ``[dtype, shape]`` and the raw
little-endian, C-ordered bytes. Object, string and void dtypes are refused: they cannot be
read back without trusting the sender.

An array over `BLOCK_BYTES` travels as row blocks: a msgpack list of an extension type 2
(``[dtype, shape, block count]``) and then the blocks, each an extension type 1. One
extension holds at most 4 GiB, and a million 784-pixel float32 rows are 3.1 GB; the
receiver copies each block into the whole array as it is read, so besides that array it
holds one block's bytes, not a second copy of the data.

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
ARRAY_BLOCKS_EXT = 2
BLOCK_BYTES = 64 * 1024**2
_EXT_MAX_BYTES = 2**32 - 1  # msgpack's 32-bit extension length
# A message is held twice while it is decoded (encoded and decoded): the limit bounds
# that, and lets ten million 784-pixel float32 rows (29 GiB) travel.
DEFAULT_MAX_BYTES = 32 * 1024**3
BROADCAST = "*"  # receiver of a forward message: every module connected above the sender

_HEADER_LEN = struct.Struct("<I")
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex
MessageKind = Literal["forward", "backward"]


# An encoded message: msgpack bytes, or the uint8 array `to_wire` makes of them.
Wire = bytes | bytearray | memoryview | np.ndarray


# Ray passes smaller objects inline in its replies, where bytes cost less than an array.
_INLINE_BYTES = 100 * 1024


def to_wire(data: bytes | memoryview) -> bytes | np.ndarray:
    """Encoded bytes as Ray should carry them between processes.

    Ray copies a bytes object into the memory of every process that reads it, while an
    array in its object store reaches readers as a read-only view. So a large message
    goes as a uint8 array (no copy made here): for the observations, as large as the
    data set, one copy less per module reading them and per update; 100 MB messages
    arrived 7-23 % sooner here (`serket-ray bench-messages`). Small ones stay bytes.
    """
    if len(data) < _INLINE_BYTES:
        return data if isinstance(data, bytes) else bytes(data)
    wire = np.frombuffer(data, dtype=np.uint8)
    wire.flags.writeable = False  # a view of msgpack's buffer is writable; readers must not
    return wire


def _array_ext(little: np.ndarray) -> msgpack.ExtType:
    header = msgpack.packb([little.dtype.str, list(little.shape)])
    if _HEADER_LEN.size + len(header) + little.nbytes > _EXT_MAX_BYTES:
        raise MessageError(
            f"cannot encode an array row of {little.nbytes} bytes: one msgpack extension "
            "holds at most 4 GiB"
        )
    # One copy of the data: join reads the array's buffer directly (no tobytes()).
    data = memoryview(little.reshape(-1)).cast("B") if little.size else b""
    return msgpack.ExtType(NDARRAY_EXT, b"".join([_HEADER_LEN.pack(len(header)), header, data]))


@dataclass(frozen=True)
class _Rows:
    """A block of an array's rows, turned into its extension only when msgpack packs it:
    so one block's bytes are held at a time, not a copy of the whole array."""

    array: np.ndarray


def _encode_array(array: np.ndarray, block_bytes: int) -> msgpack.ExtType | list[Any]:
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise MessageError(
            f"cannot encode an array of dtype {array.dtype}: only bool, integer, float and "
            "complex arrays can travel (object, string and void arrays are refused)"
        )
    little = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
    if little.nbytes <= block_bytes or little.ndim == 0 or len(little) < 2:
        return _array_ext(little)
    rows = max(1, block_bytes // (little.nbytes // len(little)))
    starts = range(0, len(little), rows)
    header = msgpack.packb([little.dtype.str, list(little.shape), len(starts)])
    blocks = (_Rows(little[start : start + rows]) for start in starts)
    return [msgpack.ExtType(ARRAY_BLOCKS_EXT, header), *blocks]


def _default(value: Any, block_bytes: int) -> Any:
    if isinstance(value, _Rows):
        return _array_ext(value.array)
    if isinstance(value, np.ndarray):
        return _encode_array(value, block_bytes)
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
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MessageError(f"array extension has an unreadable header: {exc}") from None
    dtype, shape = _dtype_and_shape(dtype_str, shape)
    expected = math.prod(shape) * dtype.itemsize
    carried = len(view) - start
    if expected != carried:
        raise MessageError(
            f"array extension claims {expected} bytes (dtype {dtype_str}, shape {shape}) "
            f"but carries {carried}"
        )
    return np.frombuffer(view[start:], dtype=dtype).reshape(shape)


def _dtype_and_shape(dtype_str: Any, shape: Any) -> tuple[np.dtype, list[int]]:
    """A header's dtype and shape, if they are ones this codec writes."""
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"array extension has an unreadable header: {exc}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.byteorder == ">":
        raise MessageError(f"array extension has a refused dtype {dtype_str!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise MessageError(f"array extension has an invalid shape {shape!r}")
    return dtype, shape


class _BlockedArray:
    """A row-blocked array being read: each block is copied in as it arrives."""

    def __init__(self, payload: bytes, message_bytes: int) -> None:
        try:
            dtype_str, shape, blocks = msgpack.unpackb(payload)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise MessageError(f"blocked array has an unreadable header: {exc}") from None
        dtype, shape = _dtype_and_shape(dtype_str, shape)
        if not shape or not isinstance(blocks, int) or not 1 <= blocks <= shape[0]:
            raise MessageError(f"blocked array header is invalid: shape {shape}, {blocks} blocks")
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > message_bytes:  # checked before allocating what a header claims
            raise MessageError(
                f"blocked array claims {claimed} bytes but the message carries {message_bytes}"
            )
        # Over a bytearray rather than np.empty: numpy asks the kernel for huge pages for
        # large arrays, and where the kernel compacts memory to find them (THP defrag
        # "madvise", a common default) filling a fresh 0.9 GB array took 2.2 s here
        # against 0.45 s.
        self.array = np.frombuffer(bytearray(claimed), dtype).reshape(shape)
        self.blocks_left = blocks
        self.rows = 0

    def add(self, block: np.ndarray) -> None:
        whole = self.array
        if (
            self.blocks_left == 0
            or block.dtype != whole.dtype
            or block.shape[1:] != whole.shape[1:]
            or self.rows + len(block) > len(whole)
        ):
            raise MessageError(
                f"blocked array of dtype {whole.dtype} and shape {whole.shape} got a block "
                f"of dtype {block.dtype} and shape {block.shape} after {self.rows} rows"
            )
        whole[self.rows : self.rows + len(block)] = block
        self.rows += len(block)
        self.blocks_left -= 1

    def finished(self, items: list[Any]) -> np.ndarray:
        """The array, once the list that carried it (header, then blocks) is read."""
        if self.blocks_left or self.rows != len(self.array):
            raise MessageError(
                f"blocked array of shape {self.array.shape} is incomplete: {self.rows} rows"
            )
        if any(item is not _BLOCK_READ for item in items[1:]):
            raise MessageError("blocked array's list holds something other than its blocks")
        self.array.flags.writeable = False  # as a decoded array that is not blocked
        return self.array


_BLOCK_READ = object()  # what a block decodes to: its rows are in the blocked array


class _Decoder:
    """msgpack hooks that rebuild arrays, blocked ones block by block."""

    def __init__(self, message_bytes: int) -> None:
        self._message_bytes = message_bytes
        self._open: _BlockedArray | None = None  # the blocked array whose blocks come next

    def ext_hook(self, code: int, payload: bytes) -> Any:
        if code == NDARRAY_EXT:
            if self._open is None:
                return _decode_array(payload)
            self._open.add(_decode_array(payload))
            return _BLOCK_READ
        if code == ARRAY_BLOCKS_EXT:
            if self._open is not None:
                raise MessageError("blocked array begins inside another blocked array")
            self._open = _BlockedArray(payload, self._message_bytes)
            return self._open
        raise MessageError(f"unknown msgpack extension type {code}")

    def list_hook(self, items: list[Any]) -> Any:
        if not items or not isinstance(items[0], _BlockedArray):
            return items
        blocked, self._open = items[0], None
        return blocked.finished(items)

    @property
    def unfinished(self) -> bool:
        """A blocked array began and its list never closed."""
        return self._open is not None


def _packed(value: Any, max_bytes: int, block_bytes: int) -> memoryview:
    """msgpack's own buffer, without the copy into a bytes object that packb makes."""
    packer = msgpack.Packer(
        default=lambda v: _default(v, block_bytes), use_bin_type=True, autoreset=False
    )
    packer.pack(value)
    data = packer.getbuffer()
    if len(data) > max_bytes:
        raise MessageError(f"encoded value is {len(data)} bytes, over the limit of {max_bytes}")
    return data


def pack(
    value: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, block_bytes: int = BLOCK_BYTES
) -> bytes:
    """Encode a tree of dicts, lists, scalars, strings and numeric ndarrays; arrays over
    `block_bytes` as row blocks."""
    return bytes(_packed(value, max_bytes, block_bytes))


def pack_wire(
    value: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, block_bytes: int = BLOCK_BYTES
) -> bytes | np.ndarray:
    """`to_wire(pack(value))` without pack's copy: a large message's array is a view of
    msgpack's buffer, so encoding holds the message once, not twice."""
    return to_wire(_packed(value, max_bytes, block_bytes))


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
    decoder = _Decoder(len(data))
    try:
        value = msgpack.unpackb(
            data,
            ext_hook=decoder.ext_hook,
            list_hook=decoder.list_hook,
            raw=False,
            strict_map_key=True,
        )
    except MessageError:
        raise
    except msgpack.ExtraData:
        raise MessageError("malformed message: extra bytes after the value") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MessageError(f"malformed message: truncated or not msgpack ({exc})") from None
    if decoder.unfinished:
        raise MessageError("malformed message: a blocked array is not followed by its blocks")
    return value


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


def _fields(envelope: Envelope) -> dict[str, Any]:
    return {name: getattr(envelope, name) for name in _ENVELOPE_FIELDS}


def encode(
    envelope: Envelope, *, max_bytes: int = DEFAULT_MAX_BYTES, block_bytes: int = BLOCK_BYTES
) -> bytes:
    """Encode an envelope; the payload may hold ndarrays."""
    return pack(_fields(envelope), max_bytes=max_bytes, block_bytes=block_bytes)


def encode_wire(
    envelope: Envelope, *, max_bytes: int = DEFAULT_MAX_BYTES, block_bytes: int = BLOCK_BYTES
) -> bytes | np.ndarray:
    """`encode`, as Ray should carry it (`pack_wire`)."""
    return pack_wire(_fields(envelope), max_bytes=max_bytes, block_bytes=block_bytes)


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
