"""What DCT-DP did, as TensorBoard scalars per log interval and as ``metrics.json`` entries."""

from __future__ import annotations

from typing import Mapping

from dct.comm.dct_dp import DCTDPState

Snapshot = dict[str, dict[str, float]]


def dp_snapshot(states: Mapping[str, DCTDPState]) -> Snapshot:
    return {name: state.compression_stats() for name, state in states.items()}


def dp_interval_scalars(states: Mapping[str, DCTDPState], before: Snapshot) -> dict[str, float]:
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
        for counter in ("threshold_estimates", "guard_refreshes", "dense_fallbacks"):
            scalars[f"dct_dp/{name}/{counter}"] = now[counter]
        for layer, tau in state.thresholds().items():
            scalars[f"dct_dp_threshold/{name}/{layer}"] = tau
    return scalars


def dp_summary(states: Mapping[str, DCTDPState]) -> dict[str, object]:
    """This rank's totals over all hook states; ``None`` values when DCT-DP is off."""
    stats = list(dp_snapshot(states).values())
    entries = sum(s["entries"] for s in stats)
    summary: dict[str, object] = {
        "dp_achieved_density": sum(s["entries_sent"] for s in stats) / entries if entries else 0.0,
        "dp_threshold_estimates": sum(s["threshold_estimates"] for s in stats),
        "dp_guard_refreshes": sum(s["guard_refreshes"] for s in stats),
        "dp_dense_fallbacks": sum(s["dense_fallbacks"] for s in stats),
    }
    return summary if stats else dict.fromkeys(summary)
