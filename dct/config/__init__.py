"""The run's configuration: typed schemas (``schema``), the checks of what a type cannot say
(``checks``, and ``runtime_checks`` for rules that need facts known once the run started), the
``--help`` text (``help``) and the Hydra ConfigStore entries (``store``, for ``launch/``: the one
module here that needs OmegaConf; none imports Hydra).

Example::

    from dct.config import RunConfig, validate

    validate(RunConfig(), world_size=4)
"""

from dct.config.checks import validate
from dct.config.schema import (
    AUTO_CHECKPOINT_EVERY,
    BACKENDS,
    DATA_SOURCES,
    DEFAULT_CARDINALITIES,
    DEFAULT_STEPS,
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
    DCTConfig,
    DCTDPConfig,
    DCTMPConfig,
    DPHookConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    ParallelConfig,
    RunConfig,
    SyntheticDataConfig,
    TabularDataConfig,
    TrainConfig,
    checkpoint_every,
    data_seed,
    model_parallel_size,
    mp_codec_names,
    resolve_steps,
)

__all__ = [
    "AUTO_CHECKPOINT_EVERY",
    "BACKENDS",
    "DATA_SOURCES",
    "DEFAULT_CARDINALITIES",
    "DEFAULT_STEPS",
    "DP_HOOK_NAMES",
    "DP_UPKEEPS",
    "LOG_LEVELS",
    "MODELS",
    "MP_CODECS",
    "SHARDING_MODES",
    "TABLE_KERNELS",
    "TABLE_OPTIMIZERS",
    "WIRE_DTYPE_NAMES",
    "ConfigError",
    "CriteoDataConfig",
    "DataConfig",
    "DCTConfig",
    "DCTDPConfig",
    "DCTMPConfig",
    "DPHookConfig",
    "ModelConfig",
    "OptimConfig",
    "OutputConfig",
    "ParallelConfig",
    "RunConfig",
    "SyntheticDataConfig",
    "TabularDataConfig",
    "TrainConfig",
    "checkpoint_every",
    "data_seed",
    "model_parallel_size",
    "mp_codec_names",
    "resolve_steps",
    "validate",
]
