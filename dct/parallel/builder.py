"""The one place a config becomes this rank's parallel model: the model ``model.name`` names
(``models.zoo``), wrapped for the grid with its sharding plan, DP comm hook and MP codecs.

Embedding mode (``parallel.mp_mode=embedding``) shards the tables by the plan and replicates the
dense part (``dct.parallel.hybrid``); pipeline mode cuts the model at ``parallel.cuts``
(``dct.parallel.pipeline_model``). Both wrappers take any ``models.recommender`` model and are
told the comm hook (``dct.parallel.gradient_hooks``) and codec pair chosen here.
"""

from __future__ import annotations

import logging

import torch

from dct.comm.codec import IDENTITY, CodecPair, RowCodec
from dct.comm.dct_mp import dct_mp_codecs
from dct.comm.meter import ByteMeter
from dct.comm.quantized_codecs import CastRows, QuantizedRows
from dct.compression.wire_dtype import wire_dtype
from dct.config import DCTMPConfig, RunConfig, mp_codec_names
from dct.config.runtime_checks import check_fbgemm_installed
from dct.data.sources import feature_layout
from dct.embedding.fused import fbgemm_available
from dct.embedding.table_optimizers import bytes_per_row
from dct.parallel.gradient_hooks import GradientHooks
from dct.parallel.hybrid import HybridModel
from dct.parallel.parallel_model import ParallelModel
from dct.parallel.pipeline_model import PipelineModel
from dct.parallel.sharding import ShardingPlan, plan_sharding
from dct.parallel.topology import Topology
from models.zoo import dense_part, recommender

log = logging.getLogger(__name__)


def build_model(
    cfg: RunConfig, topology: Topology, meter: ByteMeter, device: torch.device
) -> ParallelModel:
    """This rank's part of the configured model on ``topology``, its bytes counted by ``meter``.

    Example::

        model = build_model(cfg, topology, ByteMeter(), torch.device("cpu"))
        loss_sum = model.train_step(batch)
    """
    layout = feature_layout(cfg.data)
    hooks = GradientHooks(cfg.dct.dp, cfg.dp_hook, cfg.seed)
    if cfg.parallel.mp_mode == "pipeline":
        return PipelineModel(
            recommender(cfg.model, cfg.data.num_dense, layout, cfg.seed),
            cfg.parallel.cuts,
            topology,
            meter,
            device,
            codecs=mp_codecs(cfg.dct.mp),
            microbatches=cfg.parallel.microbatches,
            hooks=hooks,
        )
    plan = sharding_plan(cfg, topology.mp_size)
    if topology.rank == 0:
        budget = cfg.parallel.memory_budget_gb
        log.info(
            "embedding plan (parallel.sharding=%s, memory budget %s per MP rank):\n%s",
            cfg.parallel.sharding,
            "none" if budget is None else f"{budget:g} GiB",
            plan.describe(),
        )
    return HybridModel(
        dense_part(cfg.model, cfg.data.num_dense, layout.num_features, cfg.seed),
        plan,
        cfg.model.embedding_dim,
        cfg.seed,
        topology,
        meter,
        device,
        codecs=embedding_codecs(cfg.dct.mp, cfg.model.embedding_dim),
        hooks=hooks,
        fused=_fused_tables(cfg, topology),
        dedup=cfg.dct.mp.dedup,
        features=layout,
    )


def sharding_plan(cfg: RunConfig, mp_size: int) -> ShardingPlan:
    """Where the tables' rows live, by ``parallel.sharding`` within ``memory_budget_gb``."""
    return plan_sharding(
        cfg.data.cardinalities,
        mp_size,
        bytes_per_row(cfg.optim.tables, cfg.model.embedding_dim),
        cfg.parallel.sharding,
        cfg.parallel.memory_budget_gb,
    )


def _fused_tables(cfg: RunConfig, topology: Topology) -> tuple[str, float, float] | None:
    """The fused kernel's optimizer (name, lr, eps) if ``model.table_kernel`` picks FBGEMM.

    Its optimizer runs inside backward, so no row gradient exists to average over replicas or
    to threshold: ``fbgemm`` there is refused by ``validate``, and ``fbgemm`` not installed here;
    ``auto`` falls back to ``torch``.
    """
    kernel = cfg.model.table_kernel
    replicated = topology.dp_size > 1
    available = fbgemm_available()
    check_fbgemm_installed(kernel, available)
    if kernel == "torch" or replicated or not available:
        return None
    optim = cfg.optim
    lr = cfg.train.lr if optim.tables_lr is None else optim.tables_lr
    return optim.tables, lr, optim.adagrad_eps


def mp_codecs(dct_mp: DCTMPConfig, segment: int | None = None) -> CodecPair:
    """The codec pair of a model-parallel transfer, as ``dct.mp.codec`` and ``grad_codec``
    name it (``dct.config.mp_codec_names``): DCT-MP's top-k pair, casts, row-wise quantization
    per row or per ``segment`` of a row, or the dense identity."""
    forward, backward = mp_codec_names(dct_mp)
    if forward == "topk":
        value_dtype = wire_dtype(dct_mp.value_dtype)
        grad_dtype = value_dtype if dct_mp.grad_dtype is None else wire_dtype(dct_mp.grad_dtype)
        return dct_mp_codecs(dct_mp.density, value_dtype, grad_dtype, segment)
    stochastic = dct_mp.grad_rounding == "stochastic"
    return CodecPair(_row_codec(forward, segment), _row_codec(backward, segment, stochastic))


def _row_codec(name: str, segment: int | None, stochastic: bool = False) -> RowCodec:
    if name == "dense":
        return IDENTITY
    if name in ("fp16", "bf16"):
        return CastRows(torch.float16 if name == "fp16" else torch.bfloat16)
    return QuantizedRows(8 if name == "int8" else 4, segment, stochastic)


def embedding_codecs(dct_mp: DCTMPConfig, dim: int) -> CodecPair:
    """The embedding all-to-all's pair: ``granularity=table`` selects within each table's
    ``dim`` values."""
    return mp_codecs(dct_mp, dim if dct_mp.granularity == "table" else None)
