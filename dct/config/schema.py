"""Typed schemas of every config group, and what follows from them.

Plain dataclasses, importable without Hydra; ``launch/`` registers them in Hydra's ConfigStore
(``dct.config.store``) so that a misspelt key or override fails at start. Each setting is
declared with ``setting(default, help)``: its one-line help lives in the field's metadata
(``metadata["help"]``), the one source ``--help`` and the docs' key list are drawn from
(``dct.config.help``). Class docstrings say how a group's settings work together.
``dct.config.checks`` catches the values and combinations a type cannot.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, replace
from typing import Any, Callable, Optional

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

MODELS = ("dlrm", "dlrm_dcn", "deepfm")
TABLE_OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad")
SHARDING_MODES = ("auto", "table", "row")
TABLE_KERNELS = ("auto", "torch", "fbgemm")
WIRE_DTYPE_NAMES = ("float32", "float16", "bfloat16")
DP_HOOK_NAMES = ("allreduce", "fp16", "powersgd")
BACKENDS = ("auto", "gloo", "nccl")
MP_CODECS = ("dense", "fp16", "bf16", "int8", "int4", "topk")
LOG_LEVELS = ("debug", "info", "warning")
DP_UPKEEPS = ("guard", "track")
# Runs longer than this many steps checkpoint this often unless train.checkpoint_every says.
AUTO_CHECKPOINT_EVERY = 500
# Training steps when neither train.steps nor train.epochs is given.
DEFAULT_STEPS = 300
# With a validation split and neither steps nor epochs given: at most this many passes, early
# stopping (train.patience) ending the run where the validation log-loss stops falling.
DEFAULT_MAX_EPOCHS = 20
# With a validation split and no eval_every: evaluations a pass over the train split.
EVALS_PER_EPOCH = 4
DEFAULT_EVAL_EVERY = 100


class ConfigError(ValueError):
    """A configuration the user can fix; the message says what to change."""


def setting(
    default: Any = MISSING, help: str = "", factory: Optional[Callable[[], Any]] = None
) -> Any:
    """A config field with its one-line ``help`` (``--help`` prints it); ``factory`` makes a
    mutable default, and a field given neither has no default (``DataConfig.name``)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    """The model (``models.zoo``) and its shape. Every model's bottom MLP turns the dense
    features into one more vector beside the embeddings, so ``bottom_mlp`` ends at
    ``embedding_dim``. Where the model is cut into pipeline stages is a parallelism setting,
    ``parallel.cuts``."""

    name: str = setting("dlrm", "the model: dlrm, dlrm_dcn (DLRM-DCNv2) or deepfm")
    embedding_dim: int = setting(16, "width of every embedding vector")
    bottom_mlp: list[int] = setting(
        help="widths of the dense features' MLP; the last equals embedding_dim",
        factory=lambda: [64, 16],
    )
    top_mlp: list[int] = setting(
        help="hidden widths of the MLP after the interaction; a final layer to one logit is added",
        factory=lambda: [64, 32],
    )
    cross_layers: int = setting(3, "dlrm_dcn: the number of low-rank cross layers")
    cross_rank: int = setting(64, "dlrm_dcn: the rank of each cross layer")
    table_kernel: str = setting(
        "auto",
        "torch (row gradients), fbgemm (FBGEMM's fused kernel, unreplicated tables only) or "
        "auto (fbgemm where installed and allowed, else torch)",
    )


@dataclass
class DataConfig:
    """Where samples come from: one dataclass per source, chosen by the ``data`` group file
    (``data=synthetic``, ``data=criteo``, ``data=tabular``), each holding only its own keys.
    Every source leaves ``num_dense`` and ``cardinalities`` to the model once
    ``dct.data.sources.with_data_shape`` has read them (the synthetic source's are settings,
    the others' come from their files).

    Evaluation scores exactly ``eval_size`` rows, the first of the eval split: the last global
    batch is padded with rows from the split's start and the padding left out of every metric
    (``dct.train.evaluation``). A file source's ``eval_size`` is at most its eval split, and
    ``null`` (its default) is the whole split."""

    name: str = setting(help="the source; pick it with data=<file>, not this key")
    eval_size: Optional[int] = setting(
        None, "rows evaluated (the eval split's first), every one scored; null: the whole split"
    )


@dataclass
class SyntheticDataConfig(DataConfig):
    """Criteo-like clicks labelled by a hidden teacher (``dct.data.synthetic``). ``seed`` fixes
    the synthetic world (the teacher and every sample) apart from the run's ``seed``, which
    also initialises the model: set it to train several models on the same data."""

    name: str = setting("synthetic", "the source; pick it with data=<file>, not this key")
    eval_size: int = setting(16384, "rows evaluated, every one scored (the eval stream has no end)")
    seed: Optional[int] = setting(
        None, "seed of the synthetic world (teacher and samples); null: the run's seed"
    )
    num_dense: int = setting(13, "dense (count) features per sample")
    cardinalities: list[int] = setting(
        help="rows of each embedding table, one table per sparse feature",
        factory=lambda: list(DEFAULT_CARDINALITIES),
    )
    ids_per_feature: int = setting(1, "ids in each sparse feature's bag (multi-hot when > 1)")
    bag_sizes: Optional[list[int]] = setting(
        None,
        "each sparse feature's own bag size (ids per sample), one per table; null: "
        "ids_per_feature for every one",
    )
    max_rows: Optional[int] = setting(
        None, "caps every table's rows (null: cardinalities as given)"
    )
    zipf_exponent: float = setting(1.05, "skew of the ids' Zipf law (0: uniform ids)")
    teacher_dim: int = setting(4, "width of the hidden teacher's id vectors")
    teacher_scale: float = setting(
        1.0, "multiplies the teacher's logit (higher: labels less noisy)"
    )


@dataclass
class CriteoDataConfig(DataConfig):
    """Preprocessed Criteo files (``dct.data.criteo``, written by ``python -m
    dct.data.criteo_preprocess``). The feature counts and table sizes come from the files'
    manifest; the eval split is the last ``eval_fraction`` of ``path``'s rows, or ``eval_path``."""

    name: str = setting("criteo", "the source; pick it with data=<file>, not this key")
    path: Optional[str] = setting(None, "the preprocessed directory (required)")
    eval_path: Optional[str] = setting(
        None,
        "a second preprocessed directory (same options) as the eval split; null: split path",
    )
    eval_fraction: float = setting(
        1 / 7, "with eval_path null: the share of path's last rows kept for evaluation"
    )


@dataclass
class TabularDataConfig(DataConfig):
    """A team's own data, preprocessed by ``dct-preprocess`` (``dct.data.tabular``) from the
    features a schema file declares. The feature counts, table sizes and the train and eval
    splits come from the directory's manifest."""

    name: str = setting("tabular", "the source; pick it with data=<file>, not this key")
    path: Optional[str] = setting(None, "the dct-preprocess output directory (required)")
    valid_fraction: float = setting(
        0.1,
        "the train split's last rows held out as validation, to choose when to stop "
        "(train.patience), never trained on; 0: none",
    )


# Each data source's schema by its name (``data.name``).
DATA_SOURCES: dict[str, type[DataConfig]] = {
    "synthetic": SyntheticDataConfig,
    "criteo": CriteoDataConfig,
    "tabular": TabularDataConfig,
}


@dataclass
class ParallelConfig:
    """``mp_mode=embedding``: ``mp_size`` ranks share out the tables, ``world_size / mp_size``
    replicas of each shard; ``sharding`` and ``memory_budget_gb`` steer the planner in
    ``dct.parallel.sharding``. ``mp_mode=pipeline``: the model is cut into ``len(cuts) + 1``
    stages, one per rank, each batch in ``microbatches`` equal parts; ``cuts`` name the layers
    the stages end at (``models.stages``) and must be empty in embedding mode."""

    mp_mode: str = setting(
        "embedding", "embedding (tables sharded over MP ranks) or pipeline (model cut in stages)"
    )
    mp_size: int = setting(1, "ranks that share out the tables (embedding mode)")
    sharding: str = setting(
        "auto", "table (whole tables), row (row blocks) or auto (row blocks for big tables)"
    )
    memory_budget_gb: Optional[float] = setting(
        None, "GiB per rank for tables and their optimizer state; null: no limit"
    )
    cuts: list[str] = setting(
        help="pipeline mode: layers the stages end at, bottom_mlp.i or top_mlp.i", factory=list
    )
    microbatches: int = setting(2, "pipeline mode: equal parts each batch is split into")
    backend: str = setting("auto", "process group backend: gloo, nccl or auto (nccl on a GPU)")
    timeout_s: float = setting(300.0, "seconds a collective may wait for its peers")
    threads: Optional[int] = setting(
        None, "intra-op threads per process; null: OMP_NUM_THREADS if set, else 1"
    )


@dataclass
class OptimConfig:
    """The dense tower's optimizer at ``train.lr``, and the embedding tables' own."""

    name: str = setting("adagrad", "the dense tower's optimizer: sgd or adagrad")
    adagrad_eps: float = setting(1e-8, "added to the denominator of both Adagrads")
    tables: str = setting(
        "rowwise_adagrad",
        "the tables' optimizer: sgd, adagrad (a state per entry) or rowwise_adagrad (per row)",
    )
    tables_lr: Optional[float] = setting(None, "the tables' learning rate; null: train.lr")


@dataclass
class TrainConfig:
    """``batch_size`` is global: every rank trains on ``batch_size / world_size`` samples a step.
    Checkpoints (``dct.checkpoint.manager``) are taken at logging steps and at the last step;
    ``checkpoint_every=null`` means every ``AUTO_CHECKPOINT_EVERY`` steps for runs longer than
    that, else never. The run's length is ``steps`` or, for file data, ``epochs`` (not both):
    ``resolve_steps`` turns either into the step count every part of the run sees. With a
    validation split (``data=tabular``'s ``valid_fraction``) each evaluation also scores it, and
    ``patience`` evaluations without a lower validation log-loss end the run
    (``dct.train.early_stopping``)."""

    steps: Optional[int] = setting(
        None, f"training steps; null: {DEFAULT_STEPS}, or as many as epochs make"
    )
    epochs: Optional[int] = setting(
        None,
        "file data, instead of steps: passes over the train split, "
        "ceil(epochs x train rows / batch_size) steps",
    )
    batch_size: int = setting(1024, "samples a step, over all ranks")
    lr: float = setting(0.05, "learning rate of the dense tower (and of tables by default)")
    eval_every: Optional[int] = setting(
        None,
        f"steps between evaluations; null: {DEFAULT_EVAL_EVERY}, or with a validation split "
        f"{EVALS_PER_EPOCH} a pass over the train split",
    )
    patience: int = setting(
        8,
        "with a validation split (data.valid_fraction): evaluations without a lower validation "
        "log-loss before training stops, the best evaluation's weights restored; 0: never stop "
        "early",
    )
    log_every: int = setting(10, "steps between logged metrics")
    checkpoint_every: Optional[int] = setting(
        None, "steps between checkpoints, a multiple of log_every; 0: never; null: automatic"
    )
    checkpoint_dir: Optional[str] = setting(None, "where checkpoints go; null: RUN_DIR/checkpoints")
    keep_checkpoints: int = setting(2, "newest checkpoints kept")
    resume: str = setting(
        "auto", "auto (newest complete checkpoint, if any), never, or a checkpoint's path"
    )


@dataclass
class DCTDPConfig:
    """DCT-DP: hard-threshold compression of the gradient all-reduce (``dct.comm.dct_dp``)."""

    enabled: bool = setting(False, "compress the gradient all-reduce with DCT-DP")
    density: float = setting(0.01, "target fraction of gradient entries sent, in (0, 1]")
    update_every: int = setting(
        1000, "steps between threshold estimates (upkeep=guard; track corrects every step)"
    )
    warmup_steps: int = setting(2, "first steps all-reduced plainly (at least 2)")
    value_dtype: str = setting("float32", "wire dtype of values: float32, float16 or bfloat16")
    guard_factor: float = setting(
        1.5, "re-estimate when the density leaves [target / f, target * f] (f > 1)"
    )
    guard_window: int = setting(1, "steps the density must stay outside the band")
    threshold_sample_size: int = setting(0, "entries sampled to estimate a threshold; 0: exact")
    table_residual_rows: int = setting(
        65536, "rows of table gradients kept as residual, per table (pooled over a rank's)"
    )
    upkeep: str = setting(
        "guard",
        "guard (thresholds change by estimates only) or track (also corrected every step from"
        " the count sent: estimates become rare)",
    )


@dataclass
class DCTMPConfig:
    """Compressing model-parallel transfers: DCT-MP's per-sample top-k (``dct.comm.dct_mp``) or
    another codec (``dct.comm.quantized_codecs``); ``codec=null`` follows ``enabled``."""

    enabled: bool = setting(False, "compress model-parallel transfers with DCT-MP's top-k")
    density: float = setting(0.05, "top-k: fraction of activations sent, in (0, 1]")
    value_dtype: str = setting("float32", "top-k: wire dtype of values sent")
    grad_dtype: Optional[str] = setting(
        None, "top-k: wire dtype of the gradients sent back; null: value_dtype"
    )
    granularity: str = setting(
        "table", "top-k over each table's vector (table) or all of a sample's tables (sample)"
    )
    codec: Optional[str] = setting(
        None,
        "dense, fp16, bf16, int8, int4 or topk; null: topk if enabled, else dense",
    )
    grad_codec: Optional[str] = setting(
        None, "codec of the gradients sent back; null: as codec (topk pairs only with topk)"
    )
    grad_rounding: str = setting(
        "nearest", "rounding of quantized gradients: nearest or stochastic (unbiased)"
    )
    dedup: bool = setting(
        False, "send each distinct pooled vector once per destination (lossless; embedding mode)"
    )


@dataclass
class DCTConfig:
    """The two Dynamic Communication Thresholding methods, both off by default."""

    dp: DCTDPConfig = setting(help="DCT-DP: thresholded gradient all-reduce", factory=DCTDPConfig)
    mp: DCTMPConfig = setting(help="DCT-MP and other model-parallel codecs", factory=DCTMPConfig)


@dataclass
class DPHookConfig:
    """PyTorch's gradient compressors, run instead of the plain all-reduce as baselines for
    DCT-DP (``dct.comm.pytorch_compressors``); PowerSGD keeps error feedback and warm start on,
    seeded by the run's ``seed``."""

    name: str = setting(
        "allreduce", "allreduce (fp32), fp16 (fp16_compress_hook) or powersgd (powerSGD_hook)"
    )
    powersgd_rank: int = setting(1, "rank of PowerSGD's low-rank factors")
    powersgd_start_step: int = setting(
        2, "first steps all-reduced plainly (start_powerSGD_iter, at least 2)"
    )


@dataclass
class OutputConfig:
    """What a run writes besides ``metrics.json`` and what it prints."""

    tensorboard: bool = setting(True, "write TensorBoard events to RUN_DIR/tensorboard")
    progress_bar: bool = setting(True, "show a progress bar on rank 0")
    log_level: str = setting(
        "info",
        "debug, info or warning; third-party libraries log at WARNING unless debug",
    )


@dataclass
class RunConfig:
    """Every setting of a training run, one field per config group."""

    seed: int = setting(0, "initialises the model and training (and the data, unless data.seed)")
    model: ModelConfig = setting(help="the model's shape", factory=ModelConfig)
    data: DataConfig = setting(
        help="where samples come from; each source has its own keys", factory=SyntheticDataConfig
    )
    parallel: ParallelConfig = setting(
        help="how ranks share the model: the grid, table sharding, pipeline stages",
        factory=ParallelConfig,
    )
    optim: OptimConfig = setting(
        help="the dense tower's and the tables' optimizers", factory=OptimConfig
    )
    train: TrainConfig = setting(
        help="steps, batches, evaluation, checkpoints", factory=TrainConfig
    )
    dct: DCTConfig = setting(
        help="DCT-DP (dct.dp.*) and DCT-MP (dct.mp.*) compression, both off", factory=DCTConfig
    )
    dp_hook: DPHookConfig = setting(
        help="PyTorch's gradient compressors as baselines for DCT-DP", factory=DPHookConfig
    )
    output: OutputConfig = setting(help="what a run writes and logs", factory=OutputConfig)


def data_seed(cfg: RunConfig) -> int:
    """The seed of the synthetic data (``data=synthetic``): ``data.seed``, else the run's
    ``seed``."""
    return cfg.seed if cfg.data.seed is None else cfg.data.seed


def mp_codec_names(mp: DCTMPConfig) -> tuple[str, str]:
    """The codecs (``MP_CODECS``) of model-parallel activations and of their gradients."""
    forward = mp.codec or ("topk" if mp.enabled else "dense")
    return forward, mp.grad_codec or forward


def resolve_steps(
    train: TrainConfig, train_rows: Optional[int] = None, validation: bool = False
) -> TrainConfig:
    """``train`` with ``steps`` and ``eval_every`` settled. ``steps``: as given; for ``epochs``,
    enough global batches to pass ``epochs`` times over the ``train_rows`` rows of a file
    source's train split, ``ceil(epochs * train_rows / batch_size)`` (the last batch may run
    into the next pass, as batches wrap around the split's end); else ``DEFAULT_STEPS``, or with
    a ``validation`` split ``DEFAULT_MAX_EPOCHS`` passes. ``eval_every``: as given; else
    ``DEFAULT_EVAL_EVERY``, or with a validation split ``EVALS_PER_EPOCH`` a pass. ``epochs``
    is cleared once counted, so the result is a valid config too (``validate`` refuses both at
    once), and resolving it again changes nothing.

    Raises ``ConfigError`` for ``epochs`` without ``train_rows`` (synthetic data has no end).

    Example::

        resolve_steps(TrainConfig(epochs=2, batch_size=64), train_rows=1000).steps  # 32
    """
    if train.eval_every is None:
        every = DEFAULT_EVAL_EVERY
        if validation and train_rows is not None:
            every = max(1, -(-train_rows // (train.batch_size * EVALS_PER_EPOCH)))
        train = replace(train, eval_every=every)
    if train.steps is not None:
        return train
    epochs = train.epochs
    if epochs is None and validation:
        epochs = DEFAULT_MAX_EPOCHS
    if epochs is None:
        return replace(train, steps=DEFAULT_STEPS)
    if train_rows is None:
        raise ConfigError(epochs_need_file_data(epochs))
    steps = -(-epochs * train_rows // train.batch_size)  # integer ceil: exact at any size
    return replace(train, steps=steps, epochs=None)


def epochs_need_file_data(epochs: int) -> str:
    """The line for ``train.epochs`` where no train split has a size (synthetic data)."""
    return (
        f"train.epochs={epochs} counts passes over a train split, which synthetic data does not "
        "have (its stream never ends): use train.steps, or data=criteo / data=tabular"
    )


def checkpoint_every(train: TrainConfig) -> int:
    """Steps between checkpoints, 0 for none (``train.checkpoint_every``, ``None`` resolved)."""
    if train.checkpoint_every is not None:
        return train.checkpoint_every
    if resolve_steps(train).steps <= AUTO_CHECKPOINT_EVERY:
        return 0
    return -(-AUTO_CHECKPOINT_EVERY // train.log_every) * train.log_every


def model_parallel_size(cfg: RunConfig) -> int:
    """Ranks per model replica: ``parallel.mp_size``, or the number of pipeline stages."""
    if cfg.parallel.mp_mode == "pipeline":
        return len(cfg.parallel.cuts) + 1
    return cfg.parallel.mp_size
