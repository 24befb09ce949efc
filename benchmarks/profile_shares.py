"""Where a training step's time goes: each dct function's share of the training loop's samples.

Reads a raw profile written by py-spy (``pip install py-spy``) of a whole torchrun job and prints,
for every function of ``dct/`` and ``models/`` on the stack, the share of the samples taken inside
the training loop (``dct/train/loop.py``) that had it on the stack, over all ranks::

    py-spy record --subprocesses --format raw --rate 200 -o dense.txt -- \\
        torchrun --standalone --nproc_per_node=2 launch/train.py train.steps=600
    python benchmarks/profile_shares.py dense.txt --top 30

Shares compare two runs of the same model; absolute times do not survive the profiler, which
pauses each process to sample it.
"""

from __future__ import annotations

import argparse
import collections
import re

FRAME = re.compile(r"\s*(\S+) \(((?:dct|models)/\S+?):\d+\)")


def loop_shares(lines: list[str]) -> tuple[int, collections.Counter[str]]:
    """Samples inside the training loop, and per ``dct``/``models`` function how many of them
    had it on the stack (counted once per stack)."""
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        if not any("(dct/train/loop.py:" in frame for frame in frames):
            continue
        total += int(count)
        functions = {f"{m[1]} ({m[2]})" for m in map(FRAME.match, frames) if m}
        for function in functions:
            inside[function] += int(count)
    return total, inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=30, help="functions to print")
    args = parser.parse_args()
    with open(args.profile) as file:
        total, inside = loop_shares(file.readlines())
    print(f"{total} samples inside the training loop")
    for function, count in inside.most_common(args.top):
        print(f"{100 * count / total:5.1f} %  {function}")


if __name__ == "__main__":
    main()
