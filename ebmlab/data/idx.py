"""Reading the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type code, ``NN`` the
number of dimensions), then ``NN`` big-endian uint32 sizes, then the elements in C order,
big-endian. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike) -> bytes:
    """Contents of ``path``, gunzipped when they start with the gzip magic ``1f 8b``."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from exc


def md5_hex(raw: bytes) -> str:
    """Hex md5 digest of ``raw``."""
    return hashlib.md5(raw).hexdigest()


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian array of the declared dtype and shape.

    ``source`` names the file in error messages. Raises ``ValueError`` for a bad magic number,
    unknown type code, or a data section that is shorter (truncated) or longer than declared.
    """
    if len(raw) < 4:
        raise ValueError(f"{source}: truncated IDX file ({len(raw)} bytes, header needs 4)")
    zero_a, zero_b, code, ndim = raw[:4]
    if zero_a or zero_b or ndim == 0:
        raise ValueError(
            f"{source}: not an IDX file (magic number 0x{raw[:4].hex()}, "
            "expected 0x0000TTNN with NN >= 1 dimensions)"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{source}: unknown IDX type code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{source}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    expected, found = count * dtype.itemsize, len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(
            f"{source}: IDX file {problem}: shape {shape} of {dtype.name} needs {expected} "
            f"data bytes, found {found}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (possibly gzipped) IDX file into a numpy array."""
    return parse_idx(read_bytes(path), os.fspath(path))
