"""Standard normals addressed by integer keys, computed on demand instead of stored.

A teacher that gives each of 33.76M ids a weight and a vector would need gigabytes as arrays;
here entry ``i`` of stream ``key`` is a pure function of ``(key, i)``: two SplitMix64 outputs
(Steele et al., 2014) at counters ``2i`` and ``2i + 1`` turned into a normal by Box-Muller. Any
subset of entries costs the same whatever the stream's length.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_UNIT = 2.0**-53


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser; uint64 arithmetic wraps modulo 2**64, as the algorithm wants."""
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))


def stream_key(*parts: int) -> np.uint64:
    """A stream key from non-negative integers (a seed, a table, a purpose)."""
    key = np.zeros(1, dtype=np.uint64)
    for part in parts:
        key = _mix(key + _GOLDEN * np.array([part + 1], dtype=np.uint64))
    return key[0]


def _uniform(key: np.uint64, counter: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1) from the top 53 bits of SplitMix64 at ``counter``."""
    with np.errstate(over="ignore"):
        bits = _mix(key + _GOLDEN * (counter + np.uint64(1)))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * _UNIT


def hashed_normal(key: np.uint64, index: np.ndarray) -> np.ndarray:
    """Standard normals, entry ``index`` of stream ``key`` (``index``: non-negative int64)."""
    counter = index.astype(np.uint64) * np.uint64(2)
    radius = np.sqrt(-2.0 * np.log(_uniform(key, counter)))
    return radius * np.cos(2.0 * np.pi * _uniform(key, counter + np.uint64(1)))
