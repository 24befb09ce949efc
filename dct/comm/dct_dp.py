"""DCT-DP: the DDP comm hook that sends only gradient entries above a rarely refreshed threshold.

Per parameter tensor (layer-wise, as in Gupta et al., KDD 2021), every step::

    acc = grad + residual
    if (step - warmup_steps) % update_every == 0:  tau = ceil(density * n)-th largest |acc|
    send acc where |acc| >= tau;  residual = acc - sent             # nothing is lost
    if the layer's sending left the density band:  re-estimate tau and select again
    gradient handed to the optimizer = (sum over ranks of what they sent) / world_size

The first ``warmup_steps`` steps are exact (every nonzero entry, fp32): DDP rebuilds its buckets
after the first step and the earliest gradients are the largest, so compression starts once both
have settled. A two-sided guard (``dct.compression.density_guard``) re-estimates a layer's ``tau``
early when what it sends leaves ``[density / guard_factor, density * guard_factor]``: at once when
one step sends too much, after ``guard_window`` steps that sent too little. With
``upkeep="track"`` every step instead corrects ``tau`` from the count it sent
(``dct.compression.threshold_tracking``), in place of the scheduled estimates, with the guard as
a backstop over whole windows, so full estimates stay rare. A bucket's layers are thresholded
together (one comparison over the bucket, then a few scalar operations per layer). State is
keyed by parameter, not by bucket, so it survives bucket rebuilds and loads into a fresh DDP with
another bucket layout. (No postponed annotations in this file: DDP checks the hook's ``bucket``
annotation at registration.)
"""

import itertools
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dct.comm.meter import ByteMeter
from dct.comm.sparse_all_reduce import SparseSum, sparse_all_reduce
from dct.compression.density_guard import OVER, UNDER, DensityGuard, DensityWindow
from dct.compression.hard_threshold import (
    at_or_above,
    estimate_threshold,
    feed_back,
    take,
    target_count,
)
from dct.compression.threshold_tracking import PROBE, TrackedCounts
from dct.compression.wire_dtype import wire_dtype
from dct.config.schema import DP_UPKEEPS

log = logging.getLogger(__name__)

MIN_WARMUP_STEPS = 2
# With tracking the guard is a backstop: it judges a window this long, never one step alone...
TRACKED_GUARD_WINDOW = 10
# ...once the first steps after warm-up, where gradients shrink fastest, are behind: the guard
# judges those as without tracking.
TRACKING_SETTLES_STEPS = 20


@dataclass
class _Layer:
    residual: Optional[Tensor] = None
    threshold: Optional[float] = None
    window: DensityWindow = field(default_factory=DensityWindow)
    tracked: TrackedCounts = field(default_factory=TrackedCounts)


@dataclass
class _Counters:
    entries: int = 0
    entries_sent: int = 0
    threshold_estimates: int = 0
    guard_over: int = 0
    guard_under: int = 0
    dense_fallbacks: int = 0
    bytes_sent: int = 0
    bytes_dense: int = 0


class DCTDPState:
    """Settings, per-layer residuals and thresholds, and counters of the DCT-DP hook.

    Args:
        process_group: the data-parallel group (``None``: the default group).
        density: target fraction of each layer's entries sent, in ``(0, 1]``; 1.0 sends every
            nonzero entry (the exact average, as plain all-reduce).
        update_every: steps between threshold re-estimates (the paper's ``L``; thousands);
            with ``upkeep="track"`` none is scheduled: the correction every step replaces them.
        warmup_steps: exact steps before compression starts (at least 2).
        value_dtype: wire dtype of the sent values: float32, float16 or bfloat16.
        guard_factor: the density band ``[density / f, density * f]`` (f > 1) outside which a
            layer's threshold is re-estimated early.
        guard_window: the fewest steps a shortfall is judged over (>= 1); see
            ``dct.compression.density_guard``.
        threshold_sample_size: 0 for an exact top-k; otherwise estimate from this many sampled
            entries of layers larger than that.
        upkeep: ``guard`` (thresholds change only by estimates: scheduled, or the guard's) or
            ``track`` (also corrected every step from the count sent; estimates become rare).
        module: the wrapped module, to name layers by parameter name in ``state_dict`` and
            ``thresholds()``; without it layers are named by the order DDP first hands them over.
        meter: records bytes on ``channel``.

    Example::

        state = DCTDPState(process_group=None, density=0.01, update_every=1000)
        ddp.register_comm_hook(state, dct_dp_hook)
    """

    def __init__(
        self,
        process_group: Optional[dist.ProcessGroup] = None,
        density: float = 0.01,
        update_every: int = 1000,
        warmup_steps: int = MIN_WARMUP_STEPS,
        value_dtype: Union[str, torch.dtype] = torch.float32,
        guard_factor: float = 1.5,
        guard_window: int = 1,
        threshold_sample_size: int = 0,
        upkeep: str = "guard",
        module: Optional[nn.Module] = None,
        meter: Optional[ByteMeter] = None,
        channel: str = "dp",
    ) -> None:
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density={density} must be in (0, 1]: the fraction of entries sent")
        if update_every < 1:
            raise ValueError(f"update_every={update_every} must be >= 1 (steps between estimates)")
        if warmup_steps < MIN_WARMUP_STEPS:
            raise ValueError(
                f"warmup_steps={warmup_steps} must be >= {MIN_WARMUP_STEPS}: DDP settles its "
                "buckets during the first step"
            )
        if threshold_sample_size < 0:
            raise ValueError("threshold_sample_size must be >= 0 (0: exact top-k)")
        if upkeep not in DP_UPKEEPS:
            raise ValueError(f"upkeep={upkeep!r} must be one of {', '.join(DP_UPKEEPS)}")
        self.process_group = process_group
        self.density = density
        self.update_every = update_every
        self.warmup_steps = warmup_steps
        self.value_dtype = wire_dtype(value_dtype)
        self.guard = DensityGuard(guard_factor, guard_window)
        self.backstop = DensityGuard(
            guard_factor, max(guard_window, TRACKED_GUARD_WINDOW), at_once=False
        )
        self.threshold_sample_size = threshold_sample_size
        self.upkeep = upkeep
        self.meter = meter
        self.channel = channel
        self.step = 0
        self._names = {id(p): name for name, p in module.named_parameters()} if module else {}
        self._layer_of: dict[int, str] = {}
        self._layers: dict[str, _Layer] = {}
        self._buckets: dict[tuple[str, ...], Tensor] = {}
        self._counters = _Counters()
        # Wall time spent selecting (thresholds, estimates, residuals), this process only: a
        # cost report, not state, so a resumed run times its own steps.
        self._select_seconds = self._pack_seconds = 0.0
        self._timed_steps = 0

    def state_dict(self) -> dict[str, Any]:
        """Step, residuals (on CPU), thresholds, guard windows, tracked counts and counters; no
        process group."""
        return {
            "step": self.step,
            "layers": {
                name: {
                    "residual": None if layer.residual is None else layer.residual.cpu().clone(),
                    "threshold": layer.threshold,
                    "window": vars(layer.window).copy(),
                    "tracked": vars(layer.tracked).copy(),
                }
                for name, layer in self._layers.items()
            },
            "counters": vars(self._counters).copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``; residuals move to the gradients' device on first use."""
        self.step = int(state["step"])
        self._layers = {
            name: _Layer(
                entry["residual"],
                entry["threshold"],
                DensityWindow(**entry["window"]),
                TrackedCounts(**entry.get("tracked", {})),
            )
            for name, entry in state["layers"].items()
        }
        self._buckets = {}
        self._counters = _Counters(**state["counters"])

    def compression_stats(self) -> dict[str, float]:
        """Totals since the start: entries and bytes, achieved density, estimates, fallbacks.

        ``achieved_density`` and ``entries*`` cover compressed steps only (warm-up is exact);
        ``estimates_per_1k_steps`` is the threshold estimates of all layers (scheduled and guard)
        per 1,000 compressed steps, the guard's cost.
        """
        c = self._counters
        compressed_steps = max(self.step - self.warmup_steps, 0)
        return {
            "step": self.step,
            **vars(c),
            "estimates_per_1k_steps": (
                1000 * c.threshold_estimates / compressed_steps if compressed_steps else 0.0
            ),
            "achieved_density": c.entries_sent / c.entries if c.entries else 0.0,
            "ratio": c.bytes_dense / c.bytes_sent if c.bytes_sent else 1.0,
        }

    def select_ms_per_step(self) -> float:
        """Wall time a compressed step spent selecting (thresholds, estimates included), in
        this process since it started: a measurement of the machine, not saved in checkpoints."""
        return 1000 * self._select_seconds / self._timed_steps if self._timed_steps else 0.0

    def pack_ms_per_step(self) -> float:
        """Wall time a compressed step spent packing and unpacking payloads (coding positions,
        summing what arrived), measured as ``select_ms_per_step``."""
        return 1000 * self._pack_seconds / self._timed_steps if self._timed_steps else 0.0

    def thresholds(self) -> dict[str, float]:
        """Each layer's current threshold (layers not yet estimated are left out)."""
        return {
            n: layer.threshold for n, layer in self._layers.items() if layer.threshold is not None
        }

    @property
    def compressing(self) -> bool:
        return self.step >= self.warmup_steps

    def select(self, bucket: dist.GradBucket) -> tuple[Tensor, Tensor]:
        """The bucket's entries to send, as flat ``(positions, values)``; updates residuals."""
        buffer = bucket.buffer()
        # Named from the first step on: without a module, by the order DDP first hands them over.
        names = [self._layer_name(p) for p in bucket.parameters()]
        if not self.compressing:  # exact: every nonzero entry, fp32
            positions = buffer.nonzero().squeeze(1)
            return positions, buffer[positions]
        started = time.perf_counter()
        sizes = [g.numel() for g in bucket.gradients()]
        acc = self._bucket_residual(names, sizes, buffer).add_(buffer)
        chosen = take(acc, self.threshold_segments(names, acc, sizes), self.value_dtype)
        feed_back(acc, chosen)
        self.add_select_time(time.perf_counter() - started)
        return chosen.positions, chosen.values

    def maybe_increase_step(self, bucket: dist.GradBucket) -> None:
        """A step ends with DDP's last bucket."""
        if bucket.is_last():
            self.end_step()

    def end_step(self) -> None:
        if self.compressing:
            self._timed_steps += 1
        self.step += 1

    def record(self, exchange: SparseSum) -> None:
        self._counters.dense_fallbacks += int(exchange.dense_fallback)
        self.record_bytes(exchange.bytes_sent, exchange.bytes_dense)

    def _layer_name(self, param: Tensor) -> str:
        key = id(param)
        if key not in self._layer_of:
            self._layer_of[key] = self._names.get(key, f"param{len(self._layer_of)}")
        return self._layer_of[key]

    def _bucket_residual(self, names: list[str], sizes: list[int], like: Tensor) -> Tensor:
        """One flat residual for the bucket's layers, each layer's ``residual`` a view into it
        (what a layer held before, under another bucket layout or from a checkpoint, moved in)."""
        key = tuple(names)
        flat = self._buckets.get(key)
        if flat is not None:
            return flat
        flat = torch.zeros_like(like)
        for name, part in zip(names, flat.split(sizes)):
            layer = self._layers.setdefault(name, _Layer())
            if layer.residual is not None:
                part.copy_(layer.residual.reshape(-1))
            layer.residual = part
        self._buckets[key] = flat
        return flat

    def threshold_segments(
        self, names: list[str], acc: Tensor, sizes: list[int], width: int = 1
    ) -> Tensor:
        """The positions (ascending) of the entries of flat ``acc`` that go out: ``acc`` is
        layers ``names`` laid end to end, ``sizes`` entries each (multiples of ``width``: a
        table's rows); each sends the entries at or above its threshold, about
        ``density * size`` of them. One comparison over all of them, then per layer a few
        scalar operations (tracking, the guard) and, rarely, an estimate."""
        magnitude = acc.abs()
        ends = list(itertools.accumulate(sizes))
        spans = [(end - size, end) for size, end in zip(sizes, ends)]
        targets = [target_count(size, self.density) for size in sizes]
        taus = [
            self._threshold_for_step(name, magnitude[a:b]) if b > a else 0.0
            for name, (a, b) in zip(names, spans)
        ]
        tau = torch.tensor(taus, dtype=acc.dtype, device=acc.device).repeat_interleave(
            torch.tensor(sizes, device=acc.device) // width, output_size=acc.numel() // width
        )
        keep = at_or_above(magnitude.view(-1, width), tau.unsqueeze(1))
        positions = keep.view(-1).nonzero().squeeze(1)
        # Only sent entries can be above the probe: counted among them, not over acc.
        probed = positions[magnitude[positions] >= tau[positions // width] * PROBE]
        bounds = torch.tensor([0, *ends], device=acc.device)
        counts = torch.stack(
            [torch.searchsorted(positions, bounds), torch.searchsorted(probed, bounds)]
        )
        sent_above = counts.diff(dim=1).t().tolist()
        redone = []
        for name, (a, b), target, (sent, above) in zip(names, spans, targets, sent_above):
            if b == a:  # nothing touched: nothing to judge or send
                continue
            if self._judge(name, sent, target):
                tau_now = self._reestimate(name, magnitude[a:b])
                chosen = at_or_above(magnitude[a:b], tau_now).nonzero().squeeze(1)
                sent = chosen.numel()
                above = int((magnitude[a:b][chosen] >= tau_now * PROBE).sum())
                redone.append((a, b, chosen + a))
            self._settle(name, sent, above, b - a)
        for a, b, chosen in redone:  # rare: the guard's fresh estimates replace those layers'
            outside = (positions < a) | (positions >= b)
            positions = torch.cat([positions[outside], chosen]).sort().values
        return positions

    def _threshold_for_step(self, name: str, magnitude: Tensor) -> float:
        """Layer ``name``'s threshold this step: estimated from its entries' ``magnitude`` when
        it has none yet or, without tracking (which replaces it), its scheduled estimate is due."""
        layer = self._layers.setdefault(name, _Layer())
        due = (self.step - self.warmup_steps) % self.update_every == 0
        if layer.threshold is None or (due and self.upkeep == "guard"):
            self._reestimate(name, magnitude)
        return layer.threshold

    def _judge(self, name: str, sent: int, target: int) -> bool:
        """Record that layer ``name`` selected ``sent`` entries for ``target`` at its threshold;
        whether the guard calls for a fresh estimate (then ``_reestimate`` and select again)."""
        layer = self._layers[name]
        tracking = self.upkeep == "track"
        if tracking:
            layer.tracked.record(sent, target)
        settled = self.step - self.warmup_steps >= TRACKING_SETTLES_STEPS
        guard = self.backstop if tracking and settled else self.guard
        verdict = guard.verdict(layer.window, sent, target)
        if verdict == UNDER and layer.threshold == 0.0:
            # Every nonzero entry already goes out: a lower threshold cannot send more.
            layer.window.restart()
            verdict = None
        if verdict is not None and tracking and settled and self._recently_in_band(layer):
            # The window's excess is history the correction has already acted on.
            layer.window.restart()
            verdict = None
        if verdict is None:
            return False
        self._counters.guard_over += verdict == OVER
        self._counters.guard_under += verdict == UNDER
        log.debug("DCT-DP guard, step %d, %s: %s the band", self.step, name, verdict)
        return True

    def _reestimate(self, name: str, magnitude: Tensor) -> float:
        """Layer ``name``'s threshold estimated afresh: the ``ceil(density * n)``-th largest of
        its entries' ``magnitude``."""
        layer = self._layers[name]
        self._counters.threshold_estimates += 1
        seed = self.step * 1_000_003 + zlib.crc32(name.encode())
        layer.threshold = estimate_threshold(
            magnitude, self.density, self.threshold_sample_size, seed
        )
        layer.window.restart()
        return layer.threshold

    def _settle(self, name: str, sent: int, above_probe: int, entries: int) -> None:
        """Count the ``sent`` entries of ``entries``; with tracking, correct the threshold for
        the next step from ``sent`` and ``above_probe`` (those at ``threshold * PROBE``)."""
        if self.upkeep == "track":
            layer = self._layers[name]
            layer.threshold = layer.tracked.next_threshold(layer.threshold, sent, above_probe)
        self._counters.entries += entries
        self._counters.entries_sent += sent

    def add_select_time(self, seconds: float) -> None:
        self._select_seconds += seconds

    def add_pack_time(self, seconds: float) -> None:
        if self.compressing:
            self._pack_seconds += seconds

    def _recently_in_band(self, layer: _Layer) -> bool:
        ratio = layer.tracked.recent_ratio()
        return 1 / self.guard.factor <= ratio <= self.guard.factor

    def record_bytes(self, sent: int, dense: int) -> None:
        self._counters.bytes_sent += sent
        self._counters.bytes_dense += dense


def dct_dp_hook(state: DCTDPState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket's thresholded gradients over ``state.process_group``.

    Example::

        ddp.register_comm_hook(DCTDPState(density=0.005, value_dtype="float16"), dct_dp_hook)
    """
    buffer = bucket.buffer()
    positions, values = state.select(bucket)
    exchange = sparse_all_reduce(
        positions, values, buffer, state.process_group, state.meter, state.channel,
        state.add_pack_time,
    )  # fmt: skip
    state.record(exchange)
    state.maybe_increase_step(bucket)
    world = dist.get_world_size(state.process_group)
    return exchange.future.then(lambda fut: fut.value().div_(world))
