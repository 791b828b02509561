"""Integer arrays as JSON text: little-endian bytes, zlib-compressed, base64-encoded.

How the geo service sends the arrays a client copies (the lookup grid's cells, the rings'
vertices): a few hundred kB for millions of values with long runs or small steps.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np


def pack(values: np.ndarray, dtype: str, level: int = 6) -> str:
    """The array as `dtype` (a little-endian numpy type string, e.g. "<i4") in packed text;
    `level` trades zlib's time for size."""
    raw = np.ascontiguousarray(values, dtype=np.dtype(dtype)).tobytes()
    return base64.b64encode(zlib.compress(raw, level)).decode("ascii")


def unpack(text: Any, dtype: str, length: int) -> np.ndarray:
    """Inverse of pack, in native byte order: exactly `length` values or ValueError."""
    if not isinstance(text, str):
        raise ValueError("a packed array must be text")
    try:
        raw = zlib.decompress(base64.b64decode(text, validate=True))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"not a packed array: {exc}") from exc
    kind = np.dtype(dtype)
    if len(raw) != length * kind.itemsize:
        raise ValueError(f"expected {length} values of {dtype}, got {len(raw)} bytes")
    return np.frombuffer(raw, dtype=kind).astype(kind.newbyteorder("="))
