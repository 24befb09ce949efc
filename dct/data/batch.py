"""The in-memory form of a batch of click samples, shared by every data source and the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class SparseFeatures:
    """Jagged categorical ids, one (values, offsets) pair per feature (the ids of the table it
    looks up: ``models.feature_tables``).

    ``offsets[f]`` has ``n + 1`` entries: sample ``i`` of feature ``f`` owns
    ``values[f][offsets[f][i]:offsets[f][i + 1]]`` (``EmbeddingBag`` with
    ``include_last_offset=True``), so single-hot and multi-hot inputs share one form.
    """

    values: tuple[Tensor, ...]
    offsets: tuple[Tensor, ...]

    @property
    def num_features(self) -> int:
        return len(self.values)

    @property
    def num_samples(self) -> int:
        return self.offsets[0].numel() - 1 if self.offsets else 0

    def rows(self, start: int, stop: int) -> SparseFeatures:
        """Samples ``start:stop`` of every feature."""
        values, offsets = [], []
        for vals, offs in zip(self.values, self.offsets):
            window = offs[start : stop + 1]
            values.append(vals[window[0] : window[-1]])
            offsets.append(window - window[0])
        return SparseFeatures(tuple(values), tuple(offsets))

    def features(self, indices: Sequence[int]) -> SparseFeatures:
        """Only the features named by ``indices``, in that order (one may come twice)."""
        return SparseFeatures(
            tuple(self.values[i] for i in indices), tuple(self.offsets[i] for i in indices)
        )

    def concatenated(self) -> tuple[Tensor, Tensor]:
        """Every feature's bags one after another, as one ``(values, offsets)``: bag
        ``f * n + i`` is sample ``i`` of feature ``f``."""
        bases = [0]
        for vals in self.values[:-1]:
            bases.append(bases[-1] + vals.numel())
        tail = [offs[1:] + base for offs, base in zip(self.offsets, bases)]
        return torch.cat(self.values), torch.cat([self.offsets[0][:1] * 0, *tail])

    def to(self, device: torch.device) -> SparseFeatures:
        return SparseFeatures(
            tuple(v.to(device) for v in self.values), tuple(o.to(device) for o in self.offsets)
        )


@dataclass(frozen=True)
class Batch:
    """``n`` samples: dense features ``[n, num_dense]`` (float32), ids, labels ``[n]``.

    ``click_prob`` is the true click probability where the source knows it (synthetic data),
    else ``None``; it is never shown to the model, only used to report the Bayes AUC.
    ``groups`` (int64) is each sample's group where the data declares one (a schema's
    ``group``), for grouped AUC; never shown to the model either.
    """

    dense: Tensor
    sparse: SparseFeatures
    labels: Tensor
    click_prob: Tensor | None = None
    groups: Tensor | None = None

    @property
    def num_samples(self) -> int:
        return self.labels.numel()

    def rows(self, start: int, stop: int) -> Batch:
        """Samples ``start:stop``."""
        prob = None if self.click_prob is None else self.click_prob[start:stop]
        groups = None if self.groups is None else self.groups[start:stop]
        return Batch(
            self.dense[start:stop],
            self.sparse.rows(start, stop),
            self.labels[start:stop],
            prob,
            groups,
        )

    def to(self, device: torch.device) -> Batch:
        prob = None if self.click_prob is None else self.click_prob.to(device)
        groups = None if self.groups is None else self.groups.to(device)
        return Batch(
            self.dense.to(device), self.sparse.to(device), self.labels.to(device), prob, groups
        )
