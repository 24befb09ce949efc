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
BACKENDS = ("auto", "gloo", "nccl")
MP_CODECS = ("dense", "fp16", "bf16", "int8", "int4", "topk")
# Runs longer than this many steps checkpoint this often unless train.checkpoint_every says.
AUTO_CHECKPOINT_EVERY = 500


class ConfigError(ValueError):
    """A configuration the user can fix; the message says what to change."""


@dataclass
class ModelConfig:
    """DLRM shape. ``bottom_mlp`` ends at ``embedding_dim`` (the interaction needs equal widths);
    ``top_mlp`` lists hidden widths only: a final layer to one logit is always added.
    ``table_kernel``: ``torch`` (``SparseTable``, row gradients), ``fbgemm`` (FBGEMM's kernel,
    optimizer fused into backward: unreplicated tables only) or ``auto`` (``fbgemm`` where it is
    installed and allowed, else ``torch``). Where the model is cut into pipeline stages is a
    parallelism setting, ``parallel.cuts``."""

    name: str = "dlrm"
    embedding_dim: int = 16
    bottom_mlp: list[int] = field(default_factory=lambda: [64, 16])
    top_mlp: list[int] = field(default_factory=lambda: [64, 32])
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
    ``dct.parallel.sharding``. ``mp_mode=pipeline``: the model is cut into ``len(cuts) + 1``
    stages, one per rank, each batch in ``microbatches`` equal parts; ``cuts`` name the layers
    the stages end at, ``bottom_mlp.i`` or ``top_mlp.i`` (``models.dlrm_stages``), and must be
    empty in embedding mode. ``threads``: intra-op threads per process
    (``dct.runtime.threads``)."""

    mp_mode: str = "embedding"
    mp_size: int = 1
    sharding: str = "auto"
    memory_budget_gb: Optional[float] = None
    cuts: list[str] = field(default_factory=list)
    microbatches: int = 2
    backend: str = "auto"
    timeout_s: float = 300.0
    threads: Optional[int] = None


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
    dedup_all_to_all``), through whichever codec."""

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
    DCT-DP (``dct.comm.pytorch_compressors``). ``name``: ``allreduce`` (fp32, uncompressed),
    ``fp16`` (``fp16_compress_hook``) or ``powersgd`` (``powerSGD_hook``, error feedback and warm
    start on, seeded by the run's ``seed``). ``powersgd_rank``: rank of the low-rank factors;
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


def validate(cfg: RunConfig, world_size: int) -> None:
    """Raise ``ConfigError`` naming the setting to change if ``cfg`` can't run on ``world_size``:
    one line with the key, its value and what to do. The checks, one function per config group,
    are in ``dct.config_checks``.

    Example::

        validate(RunConfig(), world_size=4)
    """
    from dct.config_checks import check_run  # it imports this module's schemas

    check_run(cfg, world_size)


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
        return len(cfg.parallel.cuts) + 1
    return cfg.parallel.mp_size
