"""TorchRec's DLRM_DCN trained on CPU (gloo): the peer of ``experiment=mlperf_dcnv2``.

Runs in a TorchRec virtualenv (``docs/models/dlrm_dcn.md`` has its install line), under
torchrun, started by ``benchmarks/mlperf_dcnv2.py``, which passes the shape. TorchRec's own
model (``torchrec.models.dlrm.DLRM_DCN``: its ``LowRankCrossNet`` interaction) with one table
per feature, each feature with its own bag size, tables placed table-wise by rows (the largest
to the least loaded rank), FBGEMM's fused kernel with Adagrad applied in the backward pass,
Adagrad for the dense part under DDP, as MLPerf's reference trains. Batches are generated once
before timing, uniform ids, as TorchRec's benchmark does. Rank 0 prints one JSON line: the
median step time over ranks and every rank's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise
from torchrec.distributed.types import ShardingPlan
from torchrec.models.dlrm import DLRM_DCN
from torchrec.modules.embedding_configs import PoolingType
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def placement(rows: list[int], world: int) -> list[int]:
    """Each table's rank: the largest tables first, each to the rank holding fewest rows."""
    load, owner = [0] * world, [0] * len(rows)
    for table in sorted(range(len(rows)), key=lambda t: -rows[t]):
        rank = min(range(world), key=lambda r: load[r])
        owner[table], load[rank] = rank, load[rank] + rows[table]
    return owner


def batches(args: argparse.Namespace, rank: int, keys: list[str]) -> list[tuple]:
    generator = torch.Generator().manual_seed(1000 + rank)
    made = []
    for _ in range(args.distinct_batches):
        b = args.batch_size
        lengths = torch.tensor([bag for bag in args.bag_sizes for _ in range(b)], dtype=torch.int32)
        values = torch.cat(
            [
                torch.randint(0, rows, (bag * b,), generator=generator)
                for rows, bag in zip(args.rows, args.bag_sizes)
            ]
        )
        kjt = KeyedJaggedTensor.from_lengths_sync(keys=keys, values=values, lengths=lengths)
        dense = torch.rand(b, args.dense_features, generator=generator)
        labels = torch.randint(0, 2, (b,), generator=generator).float()
        made.append((dense, kjt, labels))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=ints, required=True, help="each table's rows")
    parser.add_argument("--bag-sizes", type=ints, required=True, help="each feature's ids")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dense-features", type=int, default=13)
    parser.add_argument("--bottom-mlp", type=ints, default=[512, 256, 128])
    parser.add_argument("--top-mlp", type=ints, default=[1024, 1024, 512, 256, 1])
    parser.add_argument("--cross-layers", type=int, default=3)
    parser.add_argument("--cross-rank", type=int, default=512)
    parser.add_argument("--batch-size", type=int, required=True, help="per rank")
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--distinct-batches", type=int, default=4)
    args = parser.parse_args()
    dist.init_process_group(backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    keys = [f"f_{t}" for t in range(len(args.rows))]
    tables = [
        EmbeddingBagConfig(
            name=f"t_{t}",
            embedding_dim=args.dim,
            num_embeddings=rows,
            feature_names=[keys[t]],
            pooling=PoolingType.SUM,
        )
        for t, rows in enumerate(args.rows)
    ]
    model = DLRM_DCN(
        embedding_bag_collection=EmbeddingBagCollection(tables=tables, device=torch.device("meta")),
        dense_in_features=args.dense_features,
        dense_arch_layer_sizes=args.bottom_mlp,
        over_arch_layer_sizes=args.top_mlp,
        dcn_num_layers=args.cross_layers,
        dcn_low_rank_dim=args.cross_rank,
        dense_device=torch.device("cpu"),
    )
    apply_optimizer_in_backward(
        torch.optim.Adagrad, model.sparse_arch.parameters(), {"lr": args.lr, "eps": 1e-8}
    )
    sharder = EmbeddingBagCollectionSharder()
    owners = placement(args.rows, world)
    module_plan = construct_module_sharding_plan(
        model.sparse_arch.embedding_bag_collection,
        {
            f"t_{t}": table_wise(rank=owner, compute_kernel="fused")
            for t, owner in enumerate(owners)
        },
        sharder=sharder,
        local_size=world,
        world_size=world,
        device_type="cpu",
    )
    model = DistributedModelParallel(
        module=model,
        device=torch.device("cpu"),
        plan=ShardingPlan({"sparse_arch.embedding_bag_collection": module_plan}),
        sharders=[sharder],
    )
    dense = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(model.named_parameters())),
        lambda params: torch.optim.Adagrad(params, lr=args.lr, eps=1e-8),
    )
    optimizer = CombinedOptimizer([model.fused_optimizer, dense])
    data = batches(args, rank, keys)

    def step(i: int) -> None:
        features, kjt, labels = data[i % len(data)]
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(features, kjt).squeeze(-1), labels)
        loss.backward()
        optimizer.step()

    for i in range(args.warmup):
        step(i)
    dist.barrier()
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    mine = {
        "median_step_s": statistics.median(times),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    every = [None] * world
    dist.all_gather_object(every, mine)
    if rank == 0:
        print(
            json.dumps(
                {
                    "median_step_s": statistics.median(r["median_step_s"] for r in every),
                    "peak_rss_bytes": [r["peak_rss_bytes"] for r in every],
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
