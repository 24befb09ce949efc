"""What DCT-DP and DCT-MP did: TensorBoard scalars per log interval, ``metrics.json`` entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from dct.comm.codec import CodecPair
from dct.comm.dct_dp import DCTDPState
from dct.comm.dct_mp import KeptCounter, TopKRows
from dct.parallel.parallel_model import ParallelModel

DPStats = dict[str, dict[str, float]]
# The DCT-DP hooks a model may have: table replicas and dense tower (embedding mode), or a
# pipeline stage's replicas; each gets its own ``metrics.json`` keys, ``null`` when absent.
DP_HOOKS = ("tables", "tower", "stage")


@dataclass(frozen=True)
class Snapshot:
    """Running counters at one moment: per DCT-DP hook state, and DCT-MP's (offered, kept)."""

    dp: DPStats
    mp: tuple[int, int] | None


def snapshot(model: ParallelModel) -> Snapshot:
    return Snapshot(_dp_stats(model.dp_states), _mp_counts(model.codecs))


def interval_scalars(model: ParallelModel, before: Snapshot) -> dict[str, float]:
    """Scalars for the interval since ``before``; none for a compressor that is off."""
    return {
        **_dp_interval_scalars(model.dp_states, before.dp),
        **_mp_interval_scalars(model.codecs, before.mp),
    }


def summary(model: ParallelModel) -> dict[str, object]:
    """This rank's totals; ``None`` values for a compressor that is off."""
    return {
        **_dp_summary(model.dp_states),
        **_mp_summary(model.codecs),
        **_dedup_summary(getattr(model, "dedup_counter", None)),
    }


def _dp_stats(states: Mapping[str, DCTDPState]) -> DPStats:
    return {name: state.compression_stats() for name, state in states.items()}


def _dp_interval_scalars(states: Mapping[str, DCTDPState], before: DPStats) -> dict[str, float]:
    """Per hook state (``tables``, ``tower``): density and ratio since ``before``, counts so far,
    and each layer's threshold."""
    scalars: dict[str, float] = {}
    for name, state in states.items():
        now, then = state.compression_stats(), before[name]
        entries = now["entries"] - then["entries"]
        sent_bytes = now["bytes_sent"] - then["bytes_sent"]
        if entries:
            scalars[f"dct_dp/{name}/achieved_density"] = (
                now["entries_sent"] - then["entries_sent"]
            ) / entries
        if sent_bytes:
            scalars[f"dct_dp/{name}/ratio"] = (
                now["bytes_dense"] - then["bytes_dense"]
            ) / sent_bytes
        for counter in ("threshold_estimates", "guard_over", "guard_under", "dense_fallbacks"):
            scalars[f"dct_dp/{name}/{counter}"] = now[counter]
        for layer, tau in state.thresholds().items():
            scalars[f"dct_dp_threshold/{name}/{layer}"] = tau
    return scalars


def _dp_summary(states: Mapping[str, DCTDPState]) -> dict[str, object]:
    """Totals over the hooks, then each hook's achieved density, estimates per 1,000 steps and
    milliseconds a step spent selecting."""
    by_hook = _dp_stats(states)
    stats = list(by_hook.values())
    entries = sum(s["entries"] for s in stats)
    summary: dict[str, object] = {
        "dp_achieved_density": sum(s["entries_sent"] for s in stats) / entries if entries else 0.0,
        "dp_threshold_estimates": sum(s["threshold_estimates"] for s in stats),
        "dp_guard_over": sum(s["guard_over"] for s in stats),
        "dp_guard_under": sum(s["guard_under"] for s in stats),
        "dp_dense_fallbacks": sum(s["dense_fallbacks"] for s in stats),
    }
    if not stats:
        summary = dict.fromkeys(summary)
    for hook in DP_HOOKS:
        hook_stats = by_hook.get(hook, {})
        for key in ("achieved_density", "estimates_per_1k_steps"):
            summary[f"dp_{hook}_{key}"] = hook_stats.get(key)
        summary[f"dp_{hook}_select_ms_per_step"] = (
            states[hook].select_ms_per_step() if hook in states else None
        )
        summary[f"dp_{hook}_pack_ms_per_step"] = (
            states[hook].pack_ms_per_step() if hook in states else None
        )
    return summary


def _mp_counts(codecs: CodecPair) -> tuple[int, int] | None:
    """Activations offered to and kept by the DCT-MP forward codec so far."""
    if not isinstance(codecs.forward, TopKRows):
        return None
    counter = codecs.forward.counter
    return counter.offered, counter.kept


def _mp_interval_scalars(codecs: CodecPair, before: tuple[int, int] | None) -> dict[str, float]:
    now = _mp_counts(codecs)
    if now is None or before is None or now[0] == before[0]:
        return {}
    return {"dct_mp/kept_fraction": (now[1] - before[1]) / (now[0] - before[0])}


def _mp_summary(codecs: CodecPair) -> dict[str, object]:
    counts = _mp_counts(codecs)
    offered, kept = counts or (0, 0)
    return {"mp_kept_fraction": kept / offered if offered else None}


def _dedup_summary(counter: KeptCounter | None) -> dict[str, object]:
    """The share of the embedding rows bound for other ranks that de-duplication did not send
    (``dct.mp.dedup``; ``None`` when off)."""
    if counter is None or not counter.offered:
        return {"mp_dedup_share": None}
    return {"mp_dedup_share": 1.0 - counter.kept / counter.offered}
