"""The msgpack message codec: round trips and every way a message can be bad."""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from runtime import codec
from runtime.errors import MessageError

NUMERIC_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="="),
    hnp.complex_number_dtypes(endianness="="),
    hnp.integer_dtypes(endianness=">"),
    hnp.floating_dtypes(endianness=">"),
)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(NUMERIC_DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0)))
def test_arrays_round_trip_with_dtype_shape_and_values(array):
    back = codec.unpack(codec.pack({"a": array}))["a"]
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("<") or back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2)), st.integers(0, 10**6))
def test_envelope_round_trip(array, round_):
    envelope = codec.Envelope("module001_vae", "module002_gmm", "backward", round_, array)
    back = codec.decode(codec.encode(envelope), receiver="module002_gmm", kind="backward")
    assert (back.sender, back.receiver, back.kind, back.round) == (
        "module001_vae", "module002_gmm", "backward", round_,
    )  # fmt: skip
    np.testing.assert_array_equal(back.payload, array)


@pytest.mark.parametrize("rows", [10, 10_000])
def test_messages_decode_from_what_ray_carries(rows):
    array = np.random.default_rng(0).random((rows, 4), dtype=np.float32)
    encoded = codec.encode(codec.Envelope("module000_obs", codec.BROADCAST, "forward", 0, array))
    wire = codec.to_wire(encoded)
    if rows == 10:  # small: bytes, which Ray passes inline
        assert wire is encoded
    else:  # large: an array, read in place from Ray's object store
        assert wire.dtype == np.uint8 and wire.ndim == 1 and not wire.flags.writeable
        assert np.shares_memory(wire, np.frombuffer(encoded, np.uint8))  # no copy made
    np.testing.assert_array_equal(codec.decode(wire, receiver="module001_vae").payload, array)


@pytest.mark.parametrize("rows", [10, 10_000])
def test_wire_encoding_is_the_encoding_as_ray_carries_it(rows):
    array = np.random.default_rng(0).random((rows, 4), dtype=np.float32)
    envelope = codec.Envelope("module001_vae", codec.BROADCAST, "forward", 2, array)
    wire = codec.encode_wire(envelope, block_bytes=4096)
    assert bytes(wire) == codec.encode(envelope, block_bytes=4096)
    if rows == 10:
        assert isinstance(wire, bytes)
    else:  # over msgpack's own buffer, read-only as to_wire's
        assert wire.dtype == np.uint8 and wire.ndim == 1 and not wire.flags.writeable
        raw = msgpack.unpackb(wire.tobytes(), ext_hook=lambda code, _payload: code)
        # a header, then 40 blocks of 256 rows (16 bytes each) or fewer
        assert raw["payload"] == [codec.ARRAY_BLOCKS_EXT] + [codec.NDARRAY_EXT] * 40
    np.testing.assert_array_equal(codec.decode(wire).payload, array)


@pytest.mark.parametrize("wrong", [np.zeros(8, np.float32), np.zeros((2, 4), np.uint8)])
def test_arrays_other_than_the_wire_form_are_refused(wrong):
    with pytest.raises(MessageError, match="expected bytes or a 1-D uint8 array"):
        codec.unpack(wrong)


def test_non_contiguous_arrays_travel_in_c_order():
    array = np.arange(24, dtype=np.int16).reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(codec.unpack(codec.pack(array)), array)


@pytest.mark.parametrize("dtype", [object, "U3", "S3", "V4"])
def test_non_numeric_arrays_are_refused(dtype):
    with pytest.raises(MessageError, match="only bool, integer, float and complex"):
        codec.pack(np.zeros(3, dtype=dtype))


def _message() -> bytes:
    payload = np.arange(12, dtype=np.float64).reshape(3, 4)
    return codec.encode(codec.Envelope("module001_vae", codec.BROADCAST, "forward", 1, payload))


def test_every_truncation_is_a_clear_error():
    data = _message()
    for cut in range(len(data)):
        with pytest.raises(MessageError):
            codec.decode(data[:cut])


@given(st.binary(max_size=256))
def test_random_bytes_never_decode_to_an_envelope(data):
    with pytest.raises(MessageError):
        codec.decode(data)


def test_array_claiming_more_bytes_than_it_carries():
    header = msgpack.packb(["<f8", [1000]])
    ext = msgpack.ExtType(
        codec.NDARRAY_EXT, len(header).to_bytes(4, "little") + header + b"\0" * 16
    )
    with pytest.raises(MessageError, match=r"claims 8000 bytes .* but carries 16"):
        codec.unpack(msgpack.packb(ext))


def test_array_with_object_dtype_in_header_is_refused():
    header = msgpack.packb(["|O", [1]])
    ext = msgpack.ExtType(codec.NDARRAY_EXT, len(header).to_bytes(4, "little") + header + b"\0" * 8)
    with pytest.raises(MessageError, match="refused dtype"):
        codec.unpack(msgpack.packb(ext))


def test_unknown_extension_type_is_refused():
    with pytest.raises(MessageError, match="unknown msgpack extension type 7"):
        codec.unpack(msgpack.packb(msgpack.ExtType(7, b"xx")))


def test_oversized_message_is_refused_on_both_sides():
    big = np.zeros(1000)
    with pytest.raises(MessageError, match="over the limit of 1000"):
        codec.pack(big, max_bytes=1000)
    data = codec.pack(big)
    with pytest.raises(MessageError, match="over the limit of 1000"):
        codec.unpack(data, max_bytes=1000)


def test_wrong_schema_version_is_named():
    fields = {"schema": 99, "sender": "a", "receiver": "b", "kind": "forward", "round": 1}
    data = msgpack.packb({**fields, "payload": None})
    with pytest.raises(MessageError, match="message from 'a' to 'b' has schema version 99"):
        codec.decode(data)


def test_misdelivered_and_wrong_kind_messages_name_the_parties():
    data = codec.encode(codec.Envelope("module002_gmm", "module001_vae", "backward", 3, None))
    with pytest.raises(
        MessageError, match=r"addressed to 'module001_vae'.*delivered to 'module009_x'"
    ):
        codec.decode(data, receiver="module009_x")
    with pytest.raises(MessageError, match="backward message where a forward message"):
        codec.decode(data, receiver="module001_vae", kind="forward")


def test_values_that_msgpack_cannot_hold_are_refused():
    with pytest.raises(MessageError, match="cannot encode a value of type set"):
        codec.pack({"a": {1, 2}})


def test_decoded_arrays_are_read_only_views():
    back = codec.unpack(codec.pack(np.ones(4)))
    assert not back.flags.writeable


def _top_level_exts(data: bytes) -> list[int]:
    """Extension codes of a packed value's top level, when it is a list of extensions."""
    value = msgpack.unpackb(data, ext_hook=lambda code, _payload: code)
    return value if isinstance(value, list) else [value]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(NUMERIC_DTYPES, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0)),
    st.integers(1, 64),
)
def test_arrays_over_the_block_size_travel_as_row_blocks(array, block_bytes):
    data = codec.pack(array, block_bytes=block_bytes)
    exts = _top_level_exts(data)
    if array.nbytes > block_bytes and len(array) > 1:
        assert exts[0] == codec.ARRAY_BLOCKS_EXT and len(exts) > 2
        assert set(exts[1:]) == {codec.NDARRAY_EXT}
    else:
        assert exts == [codec.NDARRAY_EXT]
    back = codec.unpack(data)
    assert back.shape == array.shape and not back.flags.writeable
    np.testing.assert_array_equal(back, array)


def _blocked(rows: int = 6) -> bytes:
    return codec.pack({"x": np.arange(rows * 2, dtype=np.int32).reshape(rows, 2)}, block_bytes=16)


def test_every_truncation_of_a_blocked_array_is_a_clear_error():
    data = _blocked()
    for cut in range(len(data)):
        with pytest.raises(MessageError):
            codec.unpack(data[:cut])


def _blocks(array: np.ndarray, block_rows: int) -> list[msgpack.ExtType]:
    """Extension-type-1 blocks of `array`, as the codec writes them."""
    return [
        msgpack.unpackb(codec.pack(array[i : i + block_rows]), ext_hook=msgpack.ExtType)
        for i in range(0, len(array), block_rows)
    ]


def _header(dtype: str, shape: list[int], blocks: int) -> msgpack.ExtType:
    return msgpack.ExtType(codec.ARRAY_BLOCKS_EXT, msgpack.packb([dtype, shape, blocks]))


ROWS = np.arange(12, dtype="<i4").reshape(6, 2)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([_header("<i4", [6, 2], 3), *_blocks(ROWS, 2)[:2]], "incomplete: 4 rows"),
        ([_header("<i4", [6, 2], 2), *_blocks(ROWS, 2)], "got a block .* after 4 rows"),
        ([_header("<i4", [6, 2], 3), *_blocks(ROWS.astype("<f4"), 2)], "got a block of dtype"),
        ([_header("<i4", [6, 2], 3), *_blocks(ROWS[:, :1], 2)], r"shape \(2, 1\)"),
        ([_header("<i4", [10**9, 2], 3), *_blocks(ROWS, 2)], "claims 8000000000 bytes"),
        ([_header("<i4", [6, 2], 0)], "header is invalid"),
        ([_header("|O", [6, 2], 3)], "refused dtype"),
        ([_header("|i1", [1, 1], 1), _header("|i1", [1, 1], 1)], "inside another"),
        ([_header("<i4", [6, 2], 1), [_blocks(ROWS, 6)[0]]], "other than its blocks"),
        ({"x": _header("|i1", [1, 1], 1)}, "not followed by its blocks"),
        ([1, _header("<i4", [6, 2], 1), *_blocks(ROWS, 6)], "not followed by its blocks"),
    ],
)
def test_bad_blocked_arrays_are_clear_errors(value, problem):
    with pytest.raises(MessageError, match=problem):
        codec.unpack(msgpack.packb(value))


def test_a_row_over_msgpacks_extension_limit_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(codec, "_EXT_MAX_BYTES", 1000)  # msgpack's is 4 GiB
    codec.pack(np.zeros((100, 100)), block_bytes=800)  # rows of 800 bytes: blocks fit
    with pytest.raises(MessageError, match="array row of 1600 bytes: one msgpack extension"):
        codec.pack(np.zeros((100, 200)), block_bytes=800)
