"""Typed schemas of every config group.

Plain dataclasses, importable without Hydra; ``launch/`` registers them in Hydra's ConfigStore so
a misspelt key or override fails at start. ``validate()`` catches the combinations a type cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DEFAULT_CARDINALITIES = [
    1460,
    583,
    10131,
    2202,
    305,
    24,
    12517,
    633,
    3,
    9379,
    5721,
    8351,
    3194,
    27,
    14992,
    5461,
    10,
    5652,
    2173,
    4,
    7046,
    18,
    15,
    2862,
    105,
    1428,
]

TABLE_OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad")
SHARDING_MODES = ("auto", "table", "row")
TABLE_KERNELS = ("auto", "torch", "fbgemm")
WIRE_DTYPE_NAMES = ("float32", "float16", "bfloat16")
DP_HOOK_NAMES = ("allreduce", "fp16", "powersgd")
MP_CODECS = ("dense", "fp16", "bf16", "int8", "int4", "topk")
# Runs longer than this many steps checkpoint this often unless train.checkpoint_every says.
AUTO_CHECKPOINT_EVERY = 500


class ConfigError(ValueError):
    """A configuration the user can fix; the message says what to change."""


@dataclass
class ModelConfig:
    """DLRM shape. ``bottom_mlp`` ends at ``embedding_dim`` (the interaction needs equal widths);
    ``top_mlp`` lists hidden widths only: a final layer to one logit is always added. ``cuts``
    (pipeline mode): layers after which the model is split into stages, ``bottom_mlp.i`` or
    ``top_mlp.i`` (``models.dlrm_stages``). ``table_kernel``: ``torch`` (``SparseTable``, row
    gradients), ``fbgemm`` (FBGEMM's kernel, optimizer fused into backward: unreplicated tables
    only) or ``auto`` (``fbgemm`` where it is installed and allowed, else ``torch``)."""

    name: str = "dlrm"
    embedding_dim: int = 16
    bottom_mlp: list[int] = field(default_factory=lambda: [64, 16])
    top_mlp: list[int] = field(default_factory=lambda: [64, 32])
    cuts: list[str] = field(default_factory=list)
    table_kernel: str = "auto"


@dataclass
class DataConfig:
    """``synthetic``: Criteo-like clicks labelled by a hidden teacher (``dct.data.synthetic``).
    ``criteo``: preprocessed Criteo files in ``path`` (``dct.data.criteo``); the eval split is
    the last ``eval_fraction`` of its rows, or the directory ``eval_path``. With ``criteo`` the
    feature counts and ``cardinalities`` come from the files, and the ``synthetic``-only
    settings are ignored. ``seed`` fixes the synthetic world (the teacher and every sample);
    ``None`` means the run's ``seed``, which also initialises the model. Set it apart to train
    several models on the same data."""

    name: str = "synthetic"
    seed: Optional[int] = None
    path: Optional[str] = None
    eval_path: Optional[str] = None
    eval_fraction: float = 1 / 7
    num_dense: int = 13
    cardinalities: list[int] = field(default_factory=lambda: list(DEFAULT_CARDINALITIES))
    ids_per_feature: int = 1
    zipf_exponent: float = 1.05
    teacher_dim: int = 4
    teacher_scale: float = 1.0
    eval_size: int = 16384


@dataclass
class ParallelConfig:
    """``mp_mode=embedding``: ``mp_size`` ranks share out the tables, ``world_size / mp_size``
    replicas of each shard; ``sharding`` (``auto``, ``table``, ``row``) and ``memory_budget_gb``
    (per rank, tables and their optimizer state; ``None``: no limit) steer the planner in
    ``dct.parallel.sharding``. ``mp_mode=pipeline``: the model is cut into ``len(model.cuts) + 1``
    stages, one per rank, each batch in ``microbatches`` equal parts."""

    mp_mode: str = "embedding"
    mp_size: int = 1
    sharding: str = "auto"
    memory_budget_gb: Optional[float] = None
    microbatches: int = 2
    backend: str = "auto"
    timeout_s: float = 300.0


@dataclass
class OptimConfig:
    """``name``: the dense tower's optimizer, ``sgd`` or ``adagrad``, at ``train.lr``.
    ``tables``: the embedding tables' own, ``sgd``, ``adagrad`` (an accumulator per entry) or
    ``rowwise_adagrad`` (one per row), at ``tables_lr`` (``None``: ``train.lr``). Both Adagrads
    use ``adagrad_eps``."""

    name: str = "adagrad"
    adagrad_eps: float = 1e-8
    tables: str = "rowwise_adagrad"
    tables_lr: Optional[float] = None


@dataclass
class TrainConfig:
    """``batch_size`` is global: every rank trains on ``batch_size / world_size`` samples a step.

    Checkpoints (``dct.train.checkpointing``): ``checkpoint_every`` steps (a multiple of
    ``log_every``; 0: never; ``None``: every ``AUTO_CHECKPOINT_EVERY`` steps for runs longer
    than that, else never) and at the last step, into ``checkpoint_dir`` (``None``:
    ``RUN_DIR/checkpoints``), keeping the newest ``keep_checkpoints``. ``resume``: ``auto``
    (the newest complete checkpoint of ``checkpoint_dir``, if any), ``never``, or a checkpoint's
    path.
    """

    steps: int = 300
    batch_size: int = 1024
    lr: float = 0.05
    eval_every: int = 100
    log_every: int = 10
    checkpoint_every: Optional[int] = None
    checkpoint_dir: Optional[str] = None
    keep_checkpoints: int = 2
    resume: str = "auto"


@dataclass
class DCTDPConfig:
    """DCT-DP: hard-threshold compression of the gradient all-reduce (``dct.comm.dct_dp``)."""

    enabled: bool = False
    density: float = 0.01
    update_every: int = 1000
    warmup_steps: int = 2
    value_dtype: str = "float32"
    guard_factor: float = 1.5
    guard_window: int = 1
    threshold_sample_size: int = 0
    table_residual_rows: int = 65536


@dataclass
class DCTMPConfig:
    """Compressing model-parallel transfers: DCT-MP's per-sample top-k (``dct.comm.dct_mp``) or
    another codec.

    ``grad_dtype`` is the wire dtype of the gradients sent back (``None``: ``value_dtype``);
    ``granularity`` is ``sample`` (top-k over all of a rank's tables for a sample) or ``table``
    (top-k within each table's pooled vector).

    ``codec`` picks the compressor of model-parallel transfers, one of ``MP_CODECS``: ``topk``
    (DCT-MP, the settings above), ``fp16``/``bf16`` casts, row-wise ``int8``/``int4``
    (``dct.comm.quantized_codecs``; ``granularity=table`` gives every table's vector its own
    scale), or ``dense``; ``None`` follows ``enabled`` (``topk`` if true, else ``dense``).
    ``grad_codec`` compresses the gradients sent back (``None``: as ``codec``; ``topk`` pairs
    only with itself), rounding quantized ones as ``grad_rounding`` says (``nearest`` or the
    unbiased ``stochastic``). ``dedup`` sends each distinct pooled vector of the embedding
    all-to-all once per destination, with a sample index (lossless; ``dct.comm.
    distinct_all_to_all``), through whichever codec."""

    enabled: bool = False
    density: float = 0.05
    value_dtype: str = "float32"
    grad_dtype: Optional[str] = None
    granularity: str = "table"
    codec: Optional[str] = None
    grad_codec: Optional[str] = None
    grad_rounding: str = "nearest"
    dedup: bool = False


@dataclass
class DCTConfig:
    dp: DCTDPConfig = field(default_factory=DCTDPConfig)
    mp: DCTMPConfig = field(default_factory=DCTMPConfig)


@dataclass
class DPHookConfig:
    """PyTorch's gradient compressors, run instead of the plain all-reduce as baselines for
    DCT-DP (``dct.comm.torch_hooks``). ``name``: ``allreduce`` (fp32, uncompressed), ``fp16``
    (``fp16_compress_hook``) or ``powersgd`` (``powerSGD_hook``, error feedback and warm start
    on, seeded by the run's ``seed``). ``powersgd_rank``: rank of the low-rank factors;
    ``powersgd_start_step``: the first this many steps all-reduce plainly (PowerSGD's
    ``start_powerSGD_iter``, at least 2)."""

    name: str = "allreduce"
    powersgd_rank: int = 1
    powersgd_start_step: int = 2


@dataclass
class OutputConfig:
    tensorboard: bool = True
    progress_bar: bool = True


@dataclass
class RunConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dct: DCTConfig = field(default_factory=DCTConfig)
    dp_hook: DPHookConfig = field(default_factory=DPHookConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: RunConfig, world_size: int) -> None:
    """Raise ``ConfigError`` naming the setting to change if ``cfg`` can't run on ``world_size``."""
    model, data, train = cfg.model, cfg.data, cfg.train
    _require(
        model.name == "dlrm", f"model.name={model.name!r} is unknown; the only model is 'dlrm'"
    )
    _require(model.embedding_dim >= 1, "model.embedding_dim must be >= 1")
    _require(
        model.table_kernel in TABLE_KERNELS,
        f"model.table_kernel={model.table_kernel!r}: use one of {', '.join(TABLE_KERNELS)}",
    )
    _require(
        len(model.bottom_mlp) >= 1 and model.bottom_mlp[-1] == model.embedding_dim,
        f"model.bottom_mlp={list(model.bottom_mlp)} must end at model.embedding_dim="
        f"{model.embedding_dim}: the interaction takes dot products of equal-width vectors",
    )
    _require(all(w >= 1 for w in [*model.bottom_mlp, *model.top_mlp]), "MLP widths must be >= 1")
    _require(
        data.name in ("synthetic", "criteo"),
        f"data.name={data.name!r} is unknown; use data=synthetic or data=criteo",
    )
    _require(
        data.name != "criteo" or data.path is not None,
        "data=criteo needs data.path=DIR: a directory written by "
        "'python -m dct.data.criteo_preprocess DIR FILE...'",
    )
    _require(0.0 < data.eval_fraction < 1.0, "data.eval_fraction must be in (0, 1)")
    _require(len(data.cardinalities) >= 1, "data.cardinalities needs at least one table")
    _require(all(c >= 1 for c in data.cardinalities), "data.cardinalities must all be >= 1")
    _require(data.num_dense >= 1, "data.num_dense must be >= 1")
    _require(data.ids_per_feature >= 1, "data.ids_per_feature must be >= 1")
    _require(data.zipf_exponent >= 0, "data.zipf_exponent must be >= 0 (0: uniform ids)")
    _require(data.eval_size >= 1, "data.eval_size must be >= 1")
    _require(cfg.seed >= 0, f"seed={cfg.seed} must be >= 0")
    _require(
        data.seed is None or data.seed >= 0,
        f"data.seed={data.seed} must be >= 0, or null to follow seed",
    )
    _require(cfg.parallel.timeout_s > 0, "parallel.timeout_s must be > 0 (seconds)")
    _require(
        cfg.parallel.sharding in SHARDING_MODES,
        f"parallel.sharding={cfg.parallel.sharding!r}: use one of {', '.join(SHARDING_MODES)}",
    )
    _require(
        cfg.parallel.memory_budget_gb is None or cfg.parallel.memory_budget_gb > 0,
        f"parallel.memory_budget_gb={cfg.parallel.memory_budget_gb} must be > 0, or null for "
        "no limit",
    )
    _validate_pipeline(cfg, world_size)
    _require(cfg.optim.name in ("sgd", "adagrad"), f"optim={cfg.optim.name!r}: use sgd or adagrad")
    _require(
        cfg.optim.tables in TABLE_OPTIMIZERS,
        f"optim.tables={cfg.optim.tables!r}: use one of {', '.join(TABLE_OPTIMIZERS)}",
    )
    _require(
        cfg.optim.tables_lr is None or cfg.optim.tables_lr > 0,
        f"optim.tables_lr={cfg.optim.tables_lr} must be > 0, or null to follow train.lr",
    )
    _validate_dct_dp(cfg.dct.dp)
    _validate_dp_hook(cfg.dp_hook, cfg.dct.dp)
    _validate_dct_mp(cfg.dct.mp)
    _require(train.steps >= 1, "train.steps must be >= 1")
    _require(train.lr > 0, "train.lr must be > 0")
    _require(train.eval_every >= 1, "train.eval_every must be >= 1")
    _require(train.log_every >= 1, "train.log_every must be >= 1")
    _require(
        train.checkpoint_every is None
        or (train.checkpoint_every >= 0 and train.checkpoint_every % train.log_every == 0),
        f"train.checkpoint_every={train.checkpoint_every} must be a multiple of train.log_every="
        f"{train.log_every} (checkpoints are taken at logging steps), 0 for none, or null",
    )
    _require(train.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
    _require(train.resume != "", "train.resume must be auto, never or a checkpoint's path")
    if cfg.parallel.mp_mode != "pipeline":
        _require(
            train.batch_size >= world_size and train.batch_size % world_size == 0,
            f"train.batch_size={train.batch_size} must be a positive multiple of the world size "
            f"({world_size}): every rank trains on an equal slice of each global batch",
        )


def data_seed(cfg: RunConfig) -> int:
    """The seed of the synthetic data: ``data.seed``, else the run's ``seed``."""
    return cfg.seed if cfg.data.seed is None else cfg.data.seed


def mp_codec_names(mp: DCTMPConfig) -> tuple[str, str]:
    """The codecs (``MP_CODECS``) of model-parallel activations and of their gradients."""
    forward = mp.codec or ("topk" if mp.enabled else "dense")
    return forward, mp.grad_codec or forward


def checkpoint_every(train: TrainConfig) -> int:
    """Steps between checkpoints, 0 for none (``train.checkpoint_every``, ``None`` resolved)."""
    if train.checkpoint_every is not None:
        return train.checkpoint_every
    if train.steps <= AUTO_CHECKPOINT_EVERY:
        return 0
    return -(-AUTO_CHECKPOINT_EVERY // train.log_every) * train.log_every


def model_parallel_size(cfg: RunConfig) -> int:
    """Ranks per model replica: ``parallel.mp_size``, or the number of pipeline stages."""
    if cfg.parallel.mp_mode == "pipeline":
        return len(cfg.model.cuts) + 1
    return cfg.parallel.mp_size


def _validate_pipeline(cfg: RunConfig, world_size: int) -> None:
    parallel, cuts = cfg.parallel, list(cfg.model.cuts)
    _require(
        parallel.mp_mode in ("embedding", "pipeline"),
        f"parallel.mp_mode={parallel.mp_mode!r}: use embedding (tables sharded over the MP "
        "group) or pipeline (the model cut into stages at model.cuts)",
    )
    _require(
        parallel.mp_mode == "embedding" or not cfg.dct.mp.dedup,
        "dct.mp.dedup=true de-duplicates the embedding all-to-all, which pipeline mode does "
        "not have: set dct.mp.dedup=false or parallel.mp_mode=embedding",
    )
    if parallel.mp_mode == "embedding":
        _require(
            not cuts,
            f"model.cuts={cuts} needs parallel.mp_mode=pipeline; for embedding mode set "
            "model.cuts=[]",
        )
        return
    stages = len(cuts) + 1
    _require(cuts, "parallel.mp_mode=pipeline needs model.cuts, e.g. model.cuts=[bottom_mlp.1]")
    _require(
        parallel.mp_size in (1, stages),
        f"parallel.mp_size={parallel.mp_size}, but model.cuts={cuts} make {stages} stages: "
        "in pipeline mode the stages are the model-parallel ranks; leave mp_size at 1",
    )
    _require(
        world_size % stages == 0,
        f"{world_size} processes for {stages} pipeline stages: launch a multiple of {stages} "
        "(replicas x stages), or change model.cuts",
    )
    replicas = world_size // stages
    _require(parallel.microbatches >= 1, "parallel.microbatches must be >= 1")
    _require(
        cfg.train.batch_size % (replicas * parallel.microbatches) == 0,
        f"train.batch_size={cfg.train.batch_size} does not split into {replicas} replica(s) x "
        f"parallel.microbatches={parallel.microbatches} equal micro-batches",
    )


def _require_wire_dtype(setting: str, value: str) -> None:
    _require(value in WIRE_DTYPE_NAMES, f"{setting}={value!r}: use float32, float16 or bfloat16")


def _validate_dct_dp(dp: DCTDPConfig) -> None:
    _require(
        0.0 < dp.density <= 1.0,
        f"dct.dp.density={dp.density} must be in (0, 1]: the fraction of gradient entries sent",
    )
    _require(dp.update_every >= 1, "dct.dp.update_every must be >= 1 (steps between estimates)")
    _require(
        dp.warmup_steps >= 2,
        f"dct.dp.warmup_steps={dp.warmup_steps} must be >= 2: DDP settles its buckets first",
    )
    _require_wire_dtype("dct.dp.value_dtype", dp.value_dtype)
    _require(dp.guard_factor > 1.0, "dct.dp.guard_factor must be > 1 (a multiple of the target)")
    _require(dp.guard_window >= 1, "dct.dp.guard_window must be >= 1 (steps)")
    _require(dp.threshold_sample_size >= 0, "dct.dp.threshold_sample_size must be >= 0 (0: exact)")
    _require(dp.table_residual_rows >= 0, "dct.dp.table_residual_rows must be >= 0 (rows)")


def _validate_dp_hook(hook: DPHookConfig, dct_dp: DCTDPConfig) -> None:
    _require(
        hook.name in DP_HOOK_NAMES,
        f"dp_hook.name={hook.name!r}: use allreduce, fp16 or powersgd",
    )
    _require(hook.powersgd_rank >= 1, "dp_hook.powersgd_rank must be >= 1")
    _require(
        hook.powersgd_start_step >= 2,
        f"dp_hook.powersgd_start_step={hook.powersgd_start_step} must be >= 2: DDP settles its "
        "buckets first",
    )
    _require(
        hook.name == "allreduce" or not dct_dp.enabled,
        f"dct.dp.enabled=true and dp_hook.name={hook.name}: pick one gradient compressor "
        "(dct.dp.enabled=false, or dp_hook.name=allreduce)",
    )


def _validate_dct_mp(mp: DCTMPConfig) -> None:
    _require(
        0.0 < mp.density <= 1.0,
        f"dct.mp.density={mp.density} must be in (0, 1]: the fraction of activations sent",
    )
    _require_wire_dtype("dct.mp.value_dtype", mp.value_dtype)
    if mp.grad_dtype is not None:
        _require_wire_dtype("dct.mp.grad_dtype", mp.grad_dtype)
    _require(
        mp.granularity in ("sample", "table"),
        f"dct.mp.granularity={mp.granularity!r}: use sample (top-k over a sample's tables on a "
        "rank) or table (top-k within each table's vector)",
    )
    for setting, value in (("dct.mp.codec", mp.codec), ("dct.mp.grad_codec", mp.grad_codec)):
        _require(
            value is None or value in MP_CODECS,
            f"{setting}={value!r}: use one of {', '.join(MP_CODECS)}",
        )
    forward, backward = mp_codec_names(mp)
    _require(
        (forward == "topk") == (backward == "topk"),
        f"dct.mp.codec={forward} with dct.mp.grad_codec={backward}: top-k gradients go back "
        "at the positions top-k activations were sent from, so topk pairs only with topk",
    )
    _require(
        mp.grad_rounding in ("nearest", "stochastic"),
        f"dct.mp.grad_rounding={mp.grad_rounding!r}: use nearest or stochastic",
    )
