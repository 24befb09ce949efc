"""``docs/suite.md`` and its plots, from the results ``benchmarks/suite.py`` collected.

    python benchmarks/suite_report.py docs/suite

Rewrites ``OUT.md`` (``docs/suite.md`` for ``OUT=docs/suite``) and the PNGs in ``OUT``
from ``OUT/results.json`` alone, so the report can be redrawn without training again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Overrides = Sequence[str]


@dataclass(frozen=True)
class Place:
    """Where a run happens: ``loopback`` (processes on one machine) or ``cluster`` (simulated
    hosts whose links run at ``rate``)."""

    kind: str
    hosts: int
    rate: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.hosts}" + (f"-{self.rate}" if self.rate else "")

    @property
    def title(self) -> str:
        if self.kind == "loopback":
            return f"{self.hosts} processes on loopback"
        return f"simulated cluster, {self.hosts} hosts, {self.rate} links"


def run_key(place: Place, overrides: Overrides) -> str:
    return f"{place.key} {' '.join(overrides) or 'dense'}"


ROLES = ("loopback", "cluster", "scaling", "slow")


class Results:
    """The suite's runs, looked up by place and overrides, and the places' roles (``layout``:
    ``loopback``, ``cluster`` (the main one), ``scaling`` (fewer hosts), ``slow`` (slower links)."""

    def __init__(self, raw: dict) -> None:
        self.runs, self.machine = raw["runs"], raw["machine"]
        self.layout = {role: Place(**p) for role, p in raw["layout"].items() if p is not None}

    def get(self, place: Place, overrides: Overrides) -> dict | None:
        run = self.runs.get(run_key(place, overrides))
        if run is None:
            return None
        last = {f"last_{k}": v for k, v in run["last_interval"].items()}
        return run["metrics"] | last | {"wire": run.get("wire_tx_bytes_per_host")}

    def places(self) -> list[Place]:
        """The places that have runs, in the layout's order."""
        places = list(dict.fromkeys(self.layout[r] for r in ROLES if r in self.layout))
        return [p for p in places if any(k.startswith(p.key + " ") for k in self.runs)]


def per_step(m: dict, channel: str) -> float:
    return m[f"{channel}_bytes_sent"] / m["steps"]


def _ms(m: dict) -> float:
    return 1000 * m["step_time_median_s"]


def _density(m: dict) -> str:
    """DCT-DP's achieved density after warm-up; blank for the other compressors."""
    density = m.get("dp_achieved_density")
    return "" if density is None else f"{density:.5f}"


def method_table(results: Results, place: Place, methods: Mapping[str, Overrides]) -> str:
    dense = results.get(place, ())
    lines = [
        "| method | samples/s | step ms (median) | step time / dense | DP bytes/step | DP ratio "
        "| DP ratio, last steps | DP density sent | MP bytes/step | MP ratio | AUC | log-loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, overrides in methods.items():
        m = results.get(place, overrides)
        if m is None:
            continue
        relative = f"{_ms(m) / _ms(dense):.2f}" if dense else "n/a"
        lines.append(
            f"| {name} | {m['samples_per_sec']:,.0f} | {_ms(m):.1f} | {relative} "
            f"| {per_step(m, 'dp'):,.0f} | {m['dp_ratio']:.1f} | {m['last_dp_ratio']:,.1f} "
            f"| {_density(m)} "
            f"| {per_step(m, 'mp'):,.0f} "
            f"| {m['mp_ratio']:.1f} | {m['auc']:.4f} | {m['logloss']:.4f} |"
        )
    return "\n".join(lines)


def wire_table(results: Results, place: Place, methods: Mapping[str, Overrides]) -> str:
    lines = [
        "| method | metered bytes/rank (dp + mp + other) | interface bytes sent/host "
        "| wire / metered |",
        "|---|---:|---:|---:|",
    ]
    for name, overrides in methods.items():
        m = results.get(place, overrides)
        if m is None or m["wire"] is None:
            continue
        metered = sum(m[f"{c}_bytes_sent"] for c in ("dp", "mp", "other"))
        lines.append(f"| {name} | {metered:,.0f} | {m['wire']:,.0f} | {m['wire'] / metered:.3f} |")
    return "\n".join(lines)


def curve_table(results: Results, place: Place, points: Mapping[str, Overrides]) -> str:
    lines = [
        "| point | step ms (median) | DP ratio | MP ratio | AUC | log-loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, overrides in points.items():
        m = results.get(place, overrides)
        if m is not None:
            lines.append(
                f"| {label} | {_ms(m):.1f} | {m['dp_ratio']:.1f} | {m['mp_ratio']:.1f} "
                f"| {m['auc']:.4f} | {m['logloss']:.4f} |"
            )
    return "\n".join(lines)


def _fallbacks(a: dict, b: dict) -> str:
    """DCT-DP's exchanges sent as a dense all-reduce on rank 0, warm-up included; else blank."""
    counts = (a.get("dp_dense_fallbacks"), b.get("dp_dense_fallbacks"))
    return "" if None in counts else f"{counts[0]} → {counts[1]}"


def scaling_table(
    results: Results, small: Place, large: Place, methods: Mapping[str, Overrides]
) -> str:
    hosts = (small.hosts, large.hosts)
    lines = [
        f"| method | DP bytes/step ({hosts[0]} → {hosts[1]} hosts) | growth "
        f"| MP bytes/step ({hosts[0]} → {hosts[1]}) | growth | step ms ({hosts[0]} → {hosts[1]}) "
        f"| DCT-DP exchanges sent dense ({hosts[0]} → {hosts[1]}) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def growth(a: float, b: float) -> str:
        return f"{b / a:.2f}×" if a else "n/a"

    for name, overrides in methods.items():
        a, b = results.get(small, overrides), results.get(large, overrides)
        if a is None or b is None:
            continue
        dp, mp = (per_step(a, "dp"), per_step(b, "dp")), (per_step(a, "mp"), per_step(b, "mp"))
        lines.append(
            f"| {name} | {dp[0]:,.0f} → {dp[1]:,.0f} | {growth(*dp)} | {mp[0]:,.0f} → {mp[1]:,.0f} "
            f"| {growth(*mp)} | {_ms(a):.1f} → {_ms(b):.1f} | {_fallbacks(a, b)} |"
        )
    return "\n".join(lines)


def plot_step_times(results: Results, methods: Mapping[str, Overrides], path: Path) -> None:
    places = results.places()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(places)
    names = list(methods)
    for i, place in enumerate(places):
        times = [_ms(m) if (m := results.get(place, methods[n])) else 0 for n in names]
        ax.bar([x + i * width for x in range(len(names))], times, width, label=place.title)
    ax.set_xticks([x + width * (len(places) - 1) / 2 for x in range(len(names))], names)
    ax.tick_params(axis="x", rotation=30)
    plt.setp(ax.get_xticklabels(), ha="right")
    ax.set_ylabel("median step time (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_auc_vs_bytes(
    results: Results, place: Place, methods: Mapping[str, Overrides], path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, overrides in methods.items():
        m = results.get(place, overrides)
        if m is not None:
            total = per_step(m, "dp") + per_step(m, "mp")
            ax.scatter(total, m["auc"])
            ax.annotate(
                name, (total, m["auc"]), fontsize=8, xytext=(4, 2), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_xlabel("bytes sent per step per rank, DP + MP (log)")
    ax.set_ylabel("final AUC")
    ax.set_title(place.title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(
    results: Results, place: Place, curves: Mapping[str, Mapping[str, Overrides]], path: Path
) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4))
    for ax, (title, points) in zip(axes, curves.items()):
        found = [(label, m) for label, o in points.items() if (m := results.get(place, o))]
        labels = [label for label, _ in found]
        ax.plot(labels, [_ms(m) for _, m in found], "o-", color="tab:blue")
        ax.set_ylabel("median step time (ms)", color="tab:blue")
        ax.set_ylim(bottom=0)
        auc = ax.twinx()
        aucs = [m["auc"] for _, m in found]
        auc.plot(labels, aucs, "s--", color="tab:red")
        middle, half = (max(aucs) + min(aucs)) / 2, max((max(aucs) - min(aucs)) / 2 + 0.005, 0.03)
        auc.set_ylim(middle - half, middle + half)
        auc.set_ylabel("final AUC", color="tab:red")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


INTRO = """\
Every row is one training job of the DCT paper's DLRM (`model=dlrm_paper`: embedding dim 16,
bottom MLP 13-512-256-64-16, top MLP 512-256-1) on the built-in synthetic data, one process per
host: the 26 tables are sharded over all hosts (`parallel.mp_size` = hosts, exchanged with the
all-to-all, channel **MP**) and the dense tower is data-parallel over all hosts (DDP, channel
**DP**). Same seed, same batches (global batch 1024), same number of steps for every method; only
the compressor changes. DCT settings use fp16 values; DCT-DP uses `update_every=1000` unless the
row says otherwise.

- **bytes/step** are what one rank handed to the network per training step, from the byte meter
  (the whole run, warm-up steps included, divided by its steps); **ratio** is the fp32 dense
  exchange of the same data divided by that. A ring all-reduce is counted as a ring sends.
- **DP ratio, last steps** is the ratio of the last logging interval (`train.log_every`
  steps), the compression after warm-up; **DP density sent** is DCT-DP's achieved density
  (entries sent / entries) over its compressed steps.
- **step ms** is the median wall time of a training step (forward, backward, communication,
  optimizer), evaluation excluded. **AUC** and **log-loss** are on the held-out synthetic set
  after the last step.
- The simulated cluster is `launch/sim_cluster.sh`: one network namespace per host, veth pairs
  through a bridge, every link shaped with `tc` to the rate below in both directions. This
  machine's kernel has no `sch_netem`, so no latency is added: links have the rate limit and
  veth's own (microsecond) latency.
- PyTorch's PowerSGD hook runs here with each bucket's exchange waited for in the hook (with
  several buckets in flight it can order its all-reduces differently on different ranks and
  hang gloo), so PowerSGD's step times include communication that does not overlap backward.
- All hosts share this machine's cores, so compute is slower than on real hosts and the network's
  share of a step is smaller than on a real cluster of the same link speed.
"""

SCALING = """\
How the bytes grow with the number of hosts `n`, per rank and step, for a payload of `N` fp32
values: a ring all-reduce (dense, fp16, PowerSGD's factors) sends `2 (n-1)/n · N` values, nearly
flat in `n`; DCT-DP's sparse exchange sends its own selection to each of the `n-1` peers, so it
grows linearly: `(n-1) · density · N` values plus their Elias-Fano coded positions. The exchange
switches to a dense all-reduce of the selected values whenever the sparse form would send more;
with fp16 values and ~1.2 bytes of position per entry at density 0.5–1%, that crossover is at
about `n ≈ 2 · 4 / (3.2 · density)`, i.e. hundreds of hosts, so it never happens here outside the
exact warm-up steps, which take whichever form is smaller (the last column counts the dense
ones on rank 0). DCT-MP's all-to-all hands each peer its slice: with a fixed global batch a rank
pools `26/n` of the tables for the whole batch and keeps `1/n` of that, so its bytes go as
`(n-1)/n²` for dense and compressed alike, and the MP ratio does not depend on `n`.
"""


def _noise_note(results: Results, methods: Mapping[str, Overrides]) -> list[str]:
    """How far apart two runs end that differ only by rounding: the AUC columns' noise floor."""
    place = results.layout.get("loopback")
    dense, fp16 = (results.get(place, methods[name]) for name in ("dense", "fp16 hook"))
    if dense is None or fp16 is None:
        return []
    return [
        f"AUC after {results.machine['steps']} steps of one seed is noisy: dense and the fp16 hook "
        f"differ only by rounding the gradients, yet end {abs(dense['auc'] - fp16['auc']):.3f} "
        f"apart ({place.title}). Read smaller AUC differences as noise; accuracy is measured by "
        "the paired fidelity harness ([fidelity/README.md](fidelity/README.md)).\n"
    ]


def write(
    raw: dict,
    out: Path,
    methods: Mapping[str, Overrides],
    curves: Mapping[str, Mapping[str, Overrides]],
    regenerate: str,
) -> Path:
    """Write ``out.md`` and ``out/*.png``; returns the markdown's path."""
    results = Results(raw)
    machine, layout = results.machine, results.layout
    sections = [
        "# Benchmarks: DCT against dense and other compressors, same batches\n",
        f"Regenerate (root, about 40 minutes on 2 cores):\n\n```\n{regenerate}\n```\n",
        f"Measured on {machine['date']}: {machine['cpu']}, {machine['cores']} cores, Linux "
        f"{machine['kernel']}, Python {machine['python']}, torch {machine['torch']} (gloo); "
        f"{machine['steps']} steps, seed {machine['seed']}.\n",
        INTRO,
        *_noise_note(results, methods),
        f"![median step time per method]({out.name}/step_time.png)\n",
    ]
    places = results.places()
    for place in places:
        sections.append(f"## {place.title}\n\n{method_table(results, place, methods)}\n")
    main = layout.get("cluster")
    if main in places:
        sections += [
            f"![AUC against bytes]({out.name}/auc_vs_bytes.png)\n",
            "## The meter against the wire\n\nThe byte meter counts payloads; the cluster's "
            "interfaces count every byte that left each host (payload, TCP/IP headers, "
            f"rendezvous, evaluation), for the same runs ({main.title}):\n\n"
            f"{wire_table(results, main, methods)}\n",
            f"## The DCT paper's timing curves ({main.title})\n",
        ]
        sections += [
            f"### {title}\n\n{curve_table(results, main, pts)}\n" for title, pts in curves.items()
        ]
        sections.append(f"![timing curves]({out.name}/curves.png)\n")
        plot_auc_vs_bytes(results, main, methods, out / "auc_vs_bytes.png")
        plot_curves(results, main, curves, out / "curves.png")
    small = layout.get("scaling")
    if main in places and small in places:
        sections.append(
            f"## Scaling from {small.hosts} to {main.hosts} hosts ({main.rate} links)\n\n"
            f"{SCALING}\n{scaling_table(results, small, main, methods)}\n"
        )
    plot_step_times(results, methods, out / "step_time.png")
    markdown = out.with_suffix(".md")
    markdown.write_text("\n".join(sections))
    return markdown


if __name__ == "__main__":
    import suite

    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/suite")
    print(
        write(
            json.loads((directory / "results.json").read_text()),
            directory,
            suite.METHODS,
            suite.curves(),
            suite.REGENERATE,
        )
    )
