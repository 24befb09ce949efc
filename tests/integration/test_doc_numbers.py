"""Numbers the docs show, checked against the commands next to them, run as written.

The numbers are parsed out of the markdown, so a change that moves one fails here until the page
says what the command now prints. Each command runs in ``tmp_path`` as its working directory (its
relative ``data/`` and ``outputs/`` paths land there), with ``launch/train.py`` and the console
commands resolved to this checkout and this interpreter. The runs are deterministic on one
machine, but another kind of CPU rounds differently in its math kernels: the quick start printed
AUC 0.7253 / 0.7255 / 0.7268 / 0.7249 and dp ratio 57.72 / 57.58 / 57.61 / 57.75 on two machines
and with ``ATEN_CPU_CAPABILITY=default`` or ``MKL_CBWR=AVX2``. So a number matches its text
within ``SCORE_SLACK`` (AUC, log-loss) or ``COUNT_SLACK`` (bytes, ratios, relative): wide enough
for rounding, far too narrow for drift (a page that said 0.647 where the command gives 0.614).
The failure says which numbers to update.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.time_limit import scaled

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DATA_DOC = REPO / "docs" / "data.md"
# The console commands a page may use, as this interpreter runs them.
PROGRAMS = {
    "python": [sys.executable],
    "torchrun": [sys.executable, "-m", "torch.distributed.run"],
    "dct-preprocess-criteo": [sys.executable, "-m", "dct.data.criteo_preprocess"],
    "dct-make-criteo-sample": [sys.executable, "-m", "dct.data.criteo_sample"],
}
FINAL_LINE = re.compile(
    r"auc (?P<auc>\S+) \(bayes auc (?P<bayes_auc>[^)]+)\), logloss (?P<logloss>\S+) \| "
    r"bytes per rank: dp (?P<dp_sent>\d+) sent / (?P<dp_dense>\d+) dense, "
    r"mp (?P<mp_sent>\d+) sent / (?P<mp_dense>\d+) dense "
    r"\(ratios (?P<dp_ratio>\S+), (?P<mp_ratio>[^)]+)\) \| \S+ samples/s"
)
EVAL_LINE = re.compile(r"step (\d+): eval auc (\S+) logloss (\S+)")
SCORES = {"auc", "bayes_auc", "logloss"}
SCORE_SLACK = 0.003
COUNT_SLACK = 0.01


def section(page: Path, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of its level."""
    text = page.read_text()
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = text.find(f"\n{level} ", start)
    return text[start : end if end >= 0 else None]


def bash_blocks(text: str) -> list[list[str]]:
    """The non-empty lines of each ```bash block, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def run(command: str, cwd: Path) -> str:
    """Run one documented command line in ``cwd``; its stdout and stderr."""
    words = shlex.split(command)
    words = PROGRAMS.get(words[0], words[:1]) + words[1:]
    words = [str(REPO / w) if w == "launch/train.py" else w for w in words]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run(
        words, cwd=cwd, env=env, capture_output=True, text=True, timeout=scaled(300)
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command}\n{output[-3000:]}"
    return output


def agrees(key: str, written: str, value: float) -> bool:
    """Whether ``value`` is what the page's ``written`` number for ``key`` says, within slack."""
    if key in SCORES:
        return abs(float(written) - value) <= SCORE_SLACK
    return abs(float(written) - value) <= COUNT_SLACK * max(abs(value), 1.0)


def test_the_quick_start_prints_the_numbers_the_readme_shows(tmp_path):
    text = section(README, "## Quick start")
    command = bash_blocks(text)[0][0].split(" && ")[-1]
    assert command.startswith("torchrun ") and "experiment=quickstart" in command
    output = run(command, tmp_path)

    shown = FINAL_LINE.search(text).groupdict()
    printed = FINAL_LINE.search(output).groupdict()
    differ = {
        key: (shown[key], printed[key])
        for key in shown
        if not agrees(key, shown[key], float(printed[key]))
    }
    assert not differ, (
        f"README.md's Quick start line (shown, printed): {differ}; show what the command prints"
    )

    metrics = json.loads(next(tmp_path.glob("outputs/*/metrics.json")).read_text())
    prose = dict(re.findall(r"`(dp_\w+_ratio)` (\d+\.\d+)", text))
    prose["dp_ratio"] = re.search(r"(\d+) times fewer gradient bytes", text).group(1)
    assert set(prose) == {"dp_ratio", "dp_tables_ratio", "dp_tower_ratio"}
    for key, written in prose.items():
        assert agrees(key, written, metrics[key]), (
            f"README.md's Quick start says {key} {written}; metrics.json has {metrics[key]}"
        )


def test_the_criteo_sample_prints_the_numbers_of_docs_data_md(tmp_path):
    text = section(DATA_DOC, "### A sample to try it on")
    commands = bash_blocks(text)[0]
    readme_blocks = bash_blocks(section(README, "## Real Criteo data"))
    assert commands in readme_blocks, "README.md's sample commands are docs/data.md's"
    output = "".join(run(command, tmp_path) for command in commands)

    table = re.findall(r"^\| (\d+) \| (\d\.\d+) \| (\d\.\d+) \|$", text, flags=re.M)
    printed = EVAL_LINE.findall(output)
    assert len(table) >= 2 and len(table) == len(printed), (table, printed)
    matches = [
        step == at and agrees("auc", auc, float(got_auc)) and agrees("logloss", ll, float(got_ll))
        for (step, auc, ll), (at, got_auc, got_ll) in zip(table, printed)
    ]
    assert all(matches), (
        f"docs/data.md's table (step, AUC, log-loss) {table}; the commands print {printed}"
    )

    train_rows, split, shown = re.search(
        r"first ([\d,]+) rows and evaluates on every one of the last ([\d,]+) \(its\s+log says "
        r"`evaluating (\d+) of the \3 eval rows`",
        text,
    ).groups()
    evaluated = re.search(r"evaluating (\d+) of the (\d+) eval rows", output)
    rows = json.loads((tmp_path / "data" / "criteo_sample" / "manifest.json").read_text())["rows"]
    written = [int(n.replace(",", "")) for n in (train_rows, split, shown)]
    assert evaluated[1] == evaluated[2], "every eval row is evaluated"
    assert written == [rows - int(evaluated[2]), int(evaluated[2]), int(evaluated[1])]
