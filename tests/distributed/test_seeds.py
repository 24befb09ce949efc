"""``data.seed`` fixes the synthetic world, ``seed`` the model: each varies alone.

On one gloo rank, through the training path's own builders (``open_source`` for the samples,
``build_model`` for the weights), against each other: a fixed ``data.seed`` with another ``seed``
gives the same samples and other weights, and the reverse; ``data.seed`` left null follows
``seed``, as every run did before the two were separated.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dct.comm.meter import ByteMeter
from dct.config import RunConfig
from dct.data.sources import open_source
from dct.parallel.builder import build_model
from dct.parallel.topology import GridShape, Topology
from tests.distributed.spawn import run_ranks

COMBINATIONS = {"base": (0, 5), "other_seed": (1, 5), "other_data": (0, 6), "follow": (5, None)}


def samples_and_weights() -> dict[str, tuple[torch.Tensor, ...]]:
    out = {}
    for name, (seed, data_seed) in COMBINATIONS.items():
        cfg = RunConfig(seed=seed)
        cfg.data.seed = data_seed
        batch = open_source(cfg).samples("train", 0, 64)
        topology = Topology(GridShape(dist.get_world_size(), 1, len(cfg.data.cardinalities)), "cpu")
        model = build_model(cfg, topology, ByteMeter(), torch.device("cpu"))
        weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        out[name] = (batch.dense, batch.sparse.values[0], batch.labels, weights)
    return out


def test_data_seed_and_seed_vary_apart(tmp_path):
    runs = run_ranks(1, samples_and_weights, tmp_dir=tmp_path)[0]
    base, other_seed, other_data, follow = (runs[n] for n in COMBINATIONS)
    same = lambda a, b, parts: all(torch.equal(a[i], b[i]) for i in parts)  # noqa: E731
    samples, weights = (0, 1, 2), (3,)
    assert same(base, other_seed, samples) and not same(base, other_seed, weights)
    assert same(base, other_data, weights)
    assert not any(torch.equal(base[i], other_data[i]) for i in samples)
    assert same(base, follow, samples)  # data.seed null: the data of seed=5
