"""The checks behind ``validate``: one function per rule, each failing with a ``ConfigError`` of
one line that names the setting, its value and what to do instead.

``validate`` needs only the config and the world size, so it runs before the process group
starts (``dct.runtime.entry``). The few rules that need a fact known later (a CUDA device, an
installed FBGEMM, the built model's layers, the data files' size) are in
``dct.config.runtime_checks``, called where the fact is known. A rule that a library function
also relies on (``check_backend``, ``check_sharding``, ``check_threads``, ``check_mp_size``) is
called from there too, rather than checked again in other words.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any, Optional, Sequence

from dct.config.schema import (
    BACKENDS,
    DATA_SOURCES,
    DP_HOOK_NAMES,
    DP_UPKEEPS,
    LOG_LEVELS,
    MODELS,
    MP_CODECS,
    SHARDING_MODES,
    TABLE_KERNELS,
    TABLE_OPTIMIZERS,
    WIRE_DTYPE_NAMES,
    ConfigError,
    CriteoDataConfig,
    DataConfig,
    DCTDPConfig,
    DCTMPConfig,
    DPHookConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    RunConfig,
    SyntheticDataConfig,
    TabularDataConfig,
    TrainConfig,
    epochs_need_file_data,
    mp_codec_names,
)


def validate(cfg: RunConfig, world_size: int) -> None:
    """Raise ``ConfigError`` for the first setting of ``cfg`` that can't run on ``world_size``
    ranks.

    Example::

        validate(RunConfig(), world_size=4)
    """
    require(cfg.seed >= 0, f"seed={cfg.seed} must be >= 0")
    _check_known_keys(cfg)
    _check_finite(cfg)
    _check_model(cfg.model)
    _check_data(cfg.data)
    _check_parallel(cfg, world_size)
    _check_optim(cfg.optim)
    _check_dct_dp(cfg.dct.dp)
    _check_dp_hook(cfg.dp_hook, cfg.dct.dp)
    _check_dct_mp(cfg.dct.mp)
    _check_train(cfg.train, cfg.parallel.mp_mode, world_size)
    _check_run_length(cfg.train, cfg.data)
    _check_output(cfg.output)


def require(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def check_backend(backend: str) -> None:
    """``parallel.backend`` is one the process group knows."""
    _one_of("parallel.backend", backend, BACKENDS)


def check_sharding(mode: str) -> None:
    """``parallel.sharding`` is one the planner knows."""
    _one_of("parallel.sharding", mode, SHARDING_MODES)


def check_threads(threads: Optional[int]) -> None:
    """``parallel.threads`` is a thread count or null."""
    require(
        threads is None or threads >= 1, f"parallel.threads={threads} must be at least 1, or null"
    )


def check_mp_size(mp_size: int, world_size: int) -> None:
    """``parallel.mp_size`` ranks make whole groups of the ``world_size`` ranks."""
    _at_least("parallel.mp_size", mp_size, 1)
    divisors = [d for d in range(1, world_size + 1) if world_size % d == 0]
    require(
        world_size % mp_size == 0,
        f"parallel.mp_size={mp_size} does not divide the world size {world_size}: choose an "
        f"mp_size among {divisors} or launch a multiple of {mp_size} processes",
    )


def check_tables_per_rank(mp_size: int, num_tables: int, whole_tables: bool) -> None:
    """With whole tables (``parallel.sharding=table``) every MP rank needs one."""
    require(
        not whole_tables or mp_size <= num_tables,
        f"parallel.mp_size={mp_size} exceeds the number of embedding tables ({num_tables}) "
        f"with parallel.sharding=table: use mp_size <= {num_tables}, or parallel.sharding=auto "
        "to cut tables into row blocks",
    )


def _at_least(key: str, value: float, low: float, note: str = "") -> None:
    require(value >= low, f"{key}={value} must be >= {low}{note}")


def _one_of(key: str, value: Any, choices: Sequence[str]) -> None:
    require(value in choices, f"{key}={value!r}: use one of {', '.join(choices)}")


def not_a_key(key: str, node: Any) -> str:
    """The line for ``key`` (``group.name``), which the schema of ``node`` does not have."""
    group = key.rpartition(".")[0] or "the run config"
    where = f"data={node.name}" if isinstance(node, DataConfig) else group
    keys = ", ".join(item.name for item in fields(node))
    return f"{key} is not a key of {where} (its keys: {keys})"


def _check_known_keys(node: Any, prefix: str = "") -> None:
    """No attribute beyond the schema's fields: OmegaConf keeps a key added with Hydra's ``+``
    (``+data.num_dense=1`` with ``data=criteo``) as a plain attribute that nothing would read."""
    names = {item.name for item in fields(node)}
    extra = sorted(set(vars(node)) - names)
    require(not extra, not_a_key(f"{prefix}{extra[0]}", node) if extra else "")
    for item in fields(node):
        value = getattr(node, item.name)
        if is_dataclass(value):
            _check_known_keys(value, f"{prefix}{item.name}.")


def _check_finite(node: Any, prefix: str = "") -> None:
    """Every float setting is a number: ``inf`` would pass a lower bound, ``nan`` mean nothing."""
    for item in fields(node):
        value, key = getattr(node, item.name), f"{prefix}{item.name}"
        if is_dataclass(value):
            _check_finite(value, f"{key}.")
        elif isinstance(value, float):
            require(math.isfinite(value), f"{key}={value} must be a finite number")


_DEFAULT_MODEL = {
    "cross_layers": ModelConfig().cross_layers,
    "cross_rank": ModelConfig().cross_rank,
}


def _check_model(model: ModelConfig) -> None:
    _one_of("model.name", model.name, MODELS)
    _at_least("model.embedding_dim", model.embedding_dim, 1)
    _at_least("model.cross_layers", model.cross_layers, 1)
    _at_least("model.cross_rank", model.cross_rank, 1)
    cross = {"cross_layers": model.cross_layers, "cross_rank": model.cross_rank}
    unread = [
        f"model.{key}={value}" for key, value in cross.items() if value != _DEFAULT_MODEL[key]
    ]
    require(
        model.name == "dlrm_dcn" or not unread,
        f"{', '.join(unread)} is read by model=dlrm_dcn only, not model.name={model.name!r}",
    )
    _one_of("model.table_kernel", model.table_kernel, TABLE_KERNELS)
    for key, widths in (("model.bottom_mlp", model.bottom_mlp), ("model.top_mlp", model.top_mlp)):
        require(
            all(width >= 1 for width in widths),
            f"{key}={list(widths)}: every layer's width must be >= 1",
        )
    require(
        len(model.bottom_mlp) >= 1 and model.bottom_mlp[-1] == model.embedding_dim,
        f"model.bottom_mlp={list(model.bottom_mlp)} must end at model.embedding_dim="
        f"{model.embedding_dim}: its output is one more vector beside the embeddings",
    )


def _check_data(data: DataConfig) -> None:
    source = DATA_SOURCES.get(data.name)
    require(
        source is not None,
        f"data.name={data.name!r} is unknown; use "
        + " or ".join(f"data={name}" for name in DATA_SOURCES),
    )
    require(
        isinstance(data, source),
        f"data.name={data.name!r} with the settings of another source: pick the source with "
        f"data={data.name}, not data.name",
    )
    if data.eval_size is not None:
        _at_least("data.eval_size", data.eval_size, 1)
    if isinstance(data, CriteoDataConfig):
        _check_criteo(data)
    elif isinstance(data, TabularDataConfig):
        _check_tabular(data)
    else:
        _check_synthetic(data)


def _check_criteo(data: CriteoDataConfig) -> None:
    require(
        bool(data.path),
        "data=criteo needs data.path=DIR: a directory written by "
        "'python -m dct.data.criteo_preprocess DIR FILE...'",
    )
    require(
        data.eval_path != "",
        "data.eval_path='' must be a directory, or null for the last data.eval_fraction of "
        "data.path",
    )
    require(
        0.0 < data.eval_fraction < 1.0, f"data.eval_fraction={data.eval_fraction} must be in (0, 1)"
    )


def _check_tabular(data: TabularDataConfig) -> None:
    require(
        bool(data.path),
        "data=tabular needs data.path=DIR: a directory written by "
        "'dct-preprocess --schema SCHEMA.yaml --out DIR FILE...'",
    )
    require(
        0 <= data.valid_fraction < 1,
        f"data.valid_fraction={data.valid_fraction} must be in [0, 1): the share of the train "
        "split held out as validation (0: none)",
    )


def _check_synthetic(data: SyntheticDataConfig) -> None:
    require(
        data.eval_size is not None,
        "data.eval_size=null means the whole eval split, which synthetic data does not have "
        "(its stream never ends): give a row count, e.g. data.eval_size=16384",
    )
    require(
        data.seed is None or data.seed >= 0,
        f"data.seed={data.seed} must be >= 0, or null to follow seed",
    )
    _at_least("data.num_dense", data.num_dense, 1)
    require(len(data.cardinalities) >= 1, "data.cardinalities=[] needs at least one table")
    for table, rows in enumerate(data.cardinalities):
        _at_least(f"data.cardinalities[{table}]", rows, 1, " (the rows of a table)")
    _at_least("data.ids_per_feature", data.ids_per_feature, 1)
    if data.bag_sizes is not None:
        require(
            len(data.bag_sizes) == len(data.cardinalities),
            f"data.bag_sizes={data.bag_sizes} must give one bag size per table: "
            f"{len(data.cardinalities)} (data.cardinalities), or null for data.ids_per_feature",
        )
        for table, size in enumerate(data.bag_sizes):
            _at_least(f"data.bag_sizes[{table}]", size, 1, " (the ids of a bag)")
    if data.max_rows is not None:
        _at_least("data.max_rows", data.max_rows, 1, ", or null to keep data.cardinalities")
    _at_least("data.zipf_exponent", data.zipf_exponent, 0, " (0: uniform ids)")
    _at_least("data.teacher_dim", data.teacher_dim, 1, " (the width of the teacher's id vectors)")


def _check_parallel(cfg: RunConfig, world_size: int) -> None:
    parallel = cfg.parallel
    require(
        parallel.mp_mode in ("embedding", "pipeline"),
        f"parallel.mp_mode={parallel.mp_mode!r}: use embedding (tables sharded over the MP "
        "group) or pipeline (the model cut into stages at parallel.cuts)",
    )
    _at_least("parallel.mp_size", parallel.mp_size, 1)
    check_sharding(parallel.sharding)
    require(
        parallel.memory_budget_gb is None or parallel.memory_budget_gb > 0,
        f"parallel.memory_budget_gb={parallel.memory_budget_gb} must be > 0, or null for no limit",
    )
    _at_least("parallel.microbatches", parallel.microbatches, 1)
    check_backend(parallel.backend)
    require(
        parallel.timeout_s > 0, f"parallel.timeout_s={parallel.timeout_s} must be > 0 (seconds)"
    )
    check_threads(parallel.threads)
    require(
        parallel.mp_mode == "embedding" or not cfg.dct.mp.dedup,
        "dct.mp.dedup=true de-duplicates the embedding all-to-all, which pipeline mode does "
        "not have: set dct.mp.dedup=false or parallel.mp_mode=embedding",
    )
    _check_cuts(cfg, world_size)
    if parallel.mp_mode == "embedding":
        _check_embedding_grid(cfg, world_size)


def _check_cuts(cfg: RunConfig, world_size: int) -> None:
    """Cuts belong to pipeline mode, and its stages and micro-batches must fit the launch."""
    parallel, cuts = cfg.parallel, list(cfg.parallel.cuts)
    if parallel.mp_mode == "embedding":
        require(
            not cuts,
            f"parallel.cuts={cuts} needs parallel.mp_mode=pipeline; for embedding mode set "
            "parallel.cuts=[]",
        )
        return
    stages = len(cuts) + 1
    require(
        bool(cuts),
        "parallel.mp_mode=pipeline needs parallel.cuts, e.g. parallel.cuts=[bottom_mlp.1] "
        "(or experiment=pipeline_paper)",
    )
    require(len(set(cuts)) == len(cuts), f"parallel.cuts={cuts}: cuts {cuts} name a layer twice")
    require(
        parallel.mp_size in (1, stages),
        f"parallel.mp_size={parallel.mp_size}, but parallel.cuts={cuts} make {stages} stages: "
        "in pipeline mode the stages are the model-parallel ranks; leave mp_size at 1",
    )
    require(
        world_size % stages == 0,
        f"{world_size} processes for {stages} pipeline stages: launch a multiple of {stages} "
        "(replicas x stages), or change parallel.cuts",
    )
    replicas = world_size // stages
    require(
        cfg.train.batch_size % (replicas * parallel.microbatches) == 0,
        f"train.batch_size={cfg.train.batch_size} does not split into {replicas} replica(s) x "
        f"parallel.microbatches={parallel.microbatches} equal micro-batches",
    )


def _check_embedding_grid(cfg: RunConfig, world_size: int) -> None:
    """The MP groups fit the launch; whole tables (synthetic data: their number is known before
    the files are read) go one or more to each MP rank; FBGEMM's fused tables are unreplicated."""
    parallel = cfg.parallel
    check_mp_size(parallel.mp_size, world_size)
    if isinstance(cfg.data, SyntheticDataConfig):
        whole = parallel.sharding == "table"
        check_tables_per_rank(parallel.mp_size, len(cfg.data.cardinalities), whole)
    replicas = world_size // parallel.mp_size
    require(
        cfg.model.table_kernel != "fbgemm" or replicas == 1,
        "model.table_kernel=fbgemm updates tables inside backward, but replicas "
        f"(dp_size={replicas}) must average row gradients first: use model.table_kernel=torch, "
        "or parallel.mp_size equal to the world size",
    )


def _check_optim(optim: OptimConfig) -> None:
    require(optim.name in ("sgd", "adagrad"), f"optim={optim.name!r}: use sgd or adagrad")
    _one_of("optim.tables", optim.tables, TABLE_OPTIMIZERS)
    require(
        optim.tables_lr is None or optim.tables_lr > 0,
        f"optim.tables_lr={optim.tables_lr} must be > 0, or null to follow train.lr",
    )
    _at_least("optim.adagrad_eps", optim.adagrad_eps, 0, " (added to Adagrad's denominator)")


def _check_train(train: TrainConfig, mp_mode: str, world_size: int) -> None:
    if train.steps is not None:
        _at_least("train.steps", train.steps, 1)
    if train.epochs is not None:
        _at_least("train.epochs", train.epochs, 1, " (passes over the train split)")
    _at_least("train.batch_size", train.batch_size, 1, " (samples a step, over all ranks)")
    require(train.lr > 0, f"train.lr={train.lr} must be > 0")
    if train.eval_every is not None:
        _at_least("train.eval_every", train.eval_every, 1)
    _at_least("train.patience", train.patience, 0, " (0: never stop early)")
    _at_least("train.log_every", train.log_every, 1)
    require(
        train.checkpoint_every is None
        or (train.checkpoint_every >= 0 and train.checkpoint_every % train.log_every == 0),
        f"train.checkpoint_every={train.checkpoint_every} must be a multiple of train.log_every="
        f"{train.log_every} (checkpoints are taken at logging steps), 0 for none, or null",
    )
    require(
        train.checkpoint_dir != "",
        "train.checkpoint_dir='' must be a directory, or null for RUN_DIR/checkpoints",
    )
    _at_least("train.keep_checkpoints", train.keep_checkpoints, 1)
    require(train.resume != "", "train.resume='' must be auto, never or a checkpoint's path")
    if mp_mode != "pipeline":
        require(
            train.batch_size % world_size == 0,
            f"train.batch_size={train.batch_size} must be a positive multiple of the world size "
            f"({world_size}): every rank trains on an equal slice of each global batch",
        )


def _check_run_length(train: TrainConfig, data: DataConfig) -> None:
    """A run's length is given once: ``train.steps`` or, for file data, ``train.epochs``."""
    if train.epochs is None:
        return
    require(
        train.steps is None,
        f"train.steps={train.steps} and train.epochs={train.epochs}: give one of them "
        "(set the other to null)",
    )
    require(not isinstance(data, SyntheticDataConfig), epochs_need_file_data(train.epochs))


def _require_wire_dtype(key: str, value: str) -> None:
    require(value in WIRE_DTYPE_NAMES, f"{key}={value!r}: use float32, float16 or bfloat16")


def _check_dct_dp(dp: DCTDPConfig) -> None:
    require(
        0.0 < dp.density <= 1.0,
        f"dct.dp.density={dp.density} must be in (0, 1]: the fraction of gradient entries sent",
    )
    _at_least("dct.dp.update_every", dp.update_every, 1, " (steps between estimates)")
    require(
        dp.warmup_steps >= 2,
        f"dct.dp.warmup_steps={dp.warmup_steps} must be >= 2: DDP settles its buckets first",
    )
    _require_wire_dtype("dct.dp.value_dtype", dp.value_dtype)
    require(
        dp.guard_factor > 1.0,
        f"dct.dp.guard_factor={dp.guard_factor} must be > 1 (a multiple of the target)",
    )
    _at_least("dct.dp.guard_window", dp.guard_window, 1, " (steps)")
    _at_least("dct.dp.threshold_sample_size", dp.threshold_sample_size, 0, " (0: exact)")
    _at_least("dct.dp.table_residual_rows", dp.table_residual_rows, 0, " (rows)")
    _one_of("dct.dp.upkeep", dp.upkeep, DP_UPKEEPS)


def _check_dp_hook(hook: DPHookConfig, dct_dp: DCTDPConfig) -> None:
    require(
        hook.name in DP_HOOK_NAMES,
        f"dp_hook.name={hook.name!r}: use allreduce, fp16 or powersgd",
    )
    _at_least("dp_hook.powersgd_rank", hook.powersgd_rank, 1)
    require(
        hook.powersgd_start_step >= 2,
        f"dp_hook.powersgd_start_step={hook.powersgd_start_step} must be >= 2: DDP settles its "
        "buckets first",
    )
    require(
        hook.name == "allreduce" or not dct_dp.enabled,
        f"dct.dp.enabled=true and dp_hook.name={hook.name}: pick one gradient compressor "
        "(dct.dp.enabled=false, or dp_hook.name=allreduce)",
    )


def _check_dct_mp(mp: DCTMPConfig) -> None:
    require(
        0.0 < mp.density <= 1.0,
        f"dct.mp.density={mp.density} must be in (0, 1]: the fraction of activations sent",
    )
    _require_wire_dtype("dct.mp.value_dtype", mp.value_dtype)
    if mp.grad_dtype is not None:
        _require_wire_dtype("dct.mp.grad_dtype", mp.grad_dtype)
    require(
        mp.granularity in ("sample", "table"),
        f"dct.mp.granularity={mp.granularity!r}: use sample (top-k over a sample's tables on a "
        "rank) or table (top-k within each table's vector)",
    )
    for key, value in (("dct.mp.codec", mp.codec), ("dct.mp.grad_codec", mp.grad_codec)):
        require(
            value is None or value in MP_CODECS,
            f"{key}={value!r}: use one of {', '.join(MP_CODECS)}",
        )
    forward, backward = mp_codec_names(mp)
    require(
        (forward == "topk") == (backward == "topk"),
        f"dct.mp.codec={forward} with dct.mp.grad_codec={backward}: top-k gradients go back "
        "at the positions top-k activations were sent from, so topk pairs only with topk",
    )
    require(
        mp.grad_rounding in ("nearest", "stochastic"),
        f"dct.mp.grad_rounding={mp.grad_rounding!r}: use nearest or stochastic",
    )


def _check_output(output: OutputConfig) -> None:
    _one_of("output.log_level", output.log_level, LOG_LEVELS)
