"""Counts the bytes every collective hands to the network, per channel, next to a dense reference.

Channels: ``dp`` (dense-gradient sync), ``mp`` (model-parallel transfers), ``other`` (evaluation
gathers, loss and metric reductions). "Sent" is what this rank hands to the network for the
payload actually exchanged, its own slice excluded; "dense" is what a plain fp32 exchange of the
same data would hand over. Collectives whose per-rank traffic depends on the algorithm are counted
as a bandwidth-optimal (ring) algorithm sends, for the real and the dense payload alike, so the
ratio compares like with like.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

CHANNELS = ("dp", "mp", "other")
FP32_BYTES = 4


@dataclass(frozen=True)
class ChannelBytes:
    sent: int = 0
    dense: int = 0

    def __add__(self, other: ChannelBytes) -> ChannelBytes:
        return ChannelBytes(self.sent + other.sent, self.dense + other.dense)

    def __sub__(self, other: ChannelBytes) -> ChannelBytes:
        return ChannelBytes(self.sent - other.sent, self.dense - other.dense)

    @property
    def ratio(self) -> float:
        """Dense bytes per byte sent; 1.0 when nothing crossed the network at all."""
        if self.sent == 0:
            return 1.0 if self.dense == 0 else float("inf")
        return self.dense / self.sent


def ring_all_reduce_bytes(payload_bytes: int, group_size: int) -> int:
    """Bytes one rank sends in a ring all-reduce: reduce-scatter plus all-gather."""
    return 2 * (group_size - 1) * payload_bytes // group_size


def all_gather_bytes(payload_bytes: int, group_size: int) -> int:
    """Bytes one rank sends so that every other rank gets its ``payload_bytes``."""
    return (group_size - 1) * payload_bytes


class ByteMeter:
    """Thread-safe running totals; DDP comm hooks may record from autograd's threads.

    Example::

        meter = ByteMeter()
        meter.record("dp", sent=1024, dense=4096)
        meter.totals()["dp"].ratio  # 4.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = {channel: ChannelBytes() for channel in CHANNELS}

    def record(self, channel: str, sent: int, dense: int) -> None:
        if channel not in self._totals:
            raise ValueError(f"unknown channel {channel!r}; channels are {CHANNELS}")
        with self._lock:
            self._totals[channel] += ChannelBytes(int(sent), int(dense))

    def totals(self) -> dict[str, ChannelBytes]:
        with self._lock:
            return dict(self._totals)
