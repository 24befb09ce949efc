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
# The dp channel by part of the model: table replicas' row exchange, the dense tower's (or a
# pipeline stage's dense layers') all-reduce. The mp channel by direction: activations forward,
# gradients backward, and the sample index of a de-duplicated exchange.
PARTS = ("dp_tables", "dp_tower", "mp_forward", "mp_backward", "mp_index")
REPORTED = CHANNELS + PARTS
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

    A record may name its ``part`` (``PARTS``: ``tables``/``tower`` of ``dp``, ``forward``/
    ``backward``/``index`` of ``mp``): ``totals()`` then also breaks the channel down by part.
    ``part(name)`` is a meter to hand to code that records without knowing which part it serves.

    Example::

        meter = ByteMeter()
        meter.record("dp", sent=1024, dense=4096, part="tower")
        meter.part("tables").record("dp", sent=10, dense=40)
        meter.totals()["dp"]  # ChannelBytes(sent=1034, dense=4136)
        meter.totals()["dp_tables"]  # ChannelBytes(sent=10, dense=40)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = {key: ChannelBytes() for key in REPORTED}

    def record(self, channel: str, sent: int, dense: int, part: str | None = None) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; channels are {CHANNELS}")
        keys = [channel]
        if part is not None:
            keys.append(f"{channel}_{part}")
            if keys[1] not in PARTS:
                raise ValueError(f"unknown part {part!r} of channel {channel!r}: {PARTS}")
        bytes_ = ChannelBytes(int(sent), int(dense))
        with self._lock:
            for key in keys:
                self._totals[key] += bytes_

    def part(self, name: str) -> PartMeter:
        return PartMeter(self, name)

    def totals(self) -> dict[str, ChannelBytes]:
        """Per channel, then per part (``REPORTED``)."""
        with self._lock:
            return dict(self._totals)

    def state_dict(self) -> dict[str, list[int]]:
        """The totals as ``[sent, dense]`` per channel and part."""
        return {key: [total.sent, total.dense] for key, total in self.totals().items()}

    def load_state_dict(self, state: dict[str, list[int]]) -> None:
        """Continue counting from ``state`` (a resumed run's)."""
        with self._lock:
            self._totals = {
                key: ChannelBytes(*state[key]) if key in state else ChannelBytes()
                for key in REPORTED
            }


class PartMeter(ByteMeter):
    """A ``ByteMeter`` whose records all go to ``meter`` as part ``name``."""

    def __init__(self, meter: ByteMeter, name: str) -> None:
        self._meter, self._name = meter, name

    def record(self, channel: str, sent: int, dense: int, part: str | None = None) -> None:
        self._meter.record(channel, sent, dense, part or self._name)

    def part(self, name: str) -> PartMeter:
        return PartMeter(self._meter, name)

    def totals(self) -> dict[str, ChannelBytes]:
        return self._meter.totals()
