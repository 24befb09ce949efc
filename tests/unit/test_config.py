import dataclasses
import math
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from dct.config import (
    AUTO_CHECKPOINT_EVERY,
    DATA_SOURCES,
    ConfigError,
    CriteoDataConfig,
    RunConfig,
    SyntheticDataConfig,
    checkpoint_every,
    model_parallel_size,
    mp_codec_names,
    validate,
)
from dct.config.help import help_text, leaf_keys
from dct.config.store import register_schemas, unknown_data_key
from models.dlrm import DLRM
from models.stages import cut_names

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# What a group file leaves to the user, given so that the file can be validated alone.
NEEDS = {"data=criteo": ["data.path=/data/criteo"], "data=tabular": ["data.path=/data/tabular"]}
# configs/ subdirectories that are not Hydra groups: feature schemas read by dct-preprocess
NOT_GROUPS = {"schemas"}


def with_changes(**groups):
    cfg = RunConfig()
    for group, changes in groups.items():
        setattr(cfg, group, dataclasses.replace(getattr(cfg, group), **changes))
    return cfg


def with_dct_mp(**changes):
    cfg = RunConfig()
    cfg.dct.mp = dataclasses.replace(cfg.dct.mp, **changes)
    return cfg


def with_dp_hook(dct_dp_enabled=False, **changes):
    cfg = RunConfig()
    cfg.dct.dp = dataclasses.replace(cfg.dct.dp, enabled=dct_dp_enabled)
    cfg.dp_hook = dataclasses.replace(cfg.dp_hook, **changes)
    return cfg


def pipeline(cuts=("bottom_mlp.0",), **parallel):
    return with_changes(parallel={"mp_mode": "pipeline", "cuts": list(cuts), **parallel})


def with_settings(settings):
    """``RunConfig()`` with ``{"group.key": value}`` set, in order; ``data.name`` set to a known
    source swaps in that source's schema, as ``data=<source>`` does."""
    cfg = RunConfig()
    for key, value in settings.items():
        if key == "data.name" and value in DATA_SOURCES:
            cfg.data = DATA_SOURCES[value]()
            continue
        *path, name = key.split(".")
        node = cfg
        for part in path:
            node = getattr(node, part)
        setattr(node, name, value)
    return cfg


def setting_keys(node, prefix=""):
    for item in dataclasses.fields(node):
        value = getattr(node, item.name)
        if dataclasses.is_dataclass(value):
            yield from setting_keys(value, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}"


def composed(*overrides):
    """The run config ``launch/train.py`` would get from ``overrides``."""
    register_schemas(ConfigStore.instance(), CONFIGS)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=list(overrides)))


def raises_config_error(message):
    return pytest.raises(ConfigError, match=re.escape(message))


def test_defaults_are_valid():
    validate(RunConfig(), world_size=4)
    validate(with_dp_hook(name="fp16"), world_size=2)
    validate(with_dp_hook(name="powersgd", powersgd_rank=4, powersgd_start_step=2), world_size=2)
    validate(pipeline(cuts=["bottom_mlp.0", "top_mlp.0"]), world_size=3)


PIPELINE = {"parallel.mp_mode": "pipeline", "parallel.cuts": ["bottom_mlp.1"]}
CRITEO = {"data.name": "criteo", "data.path": "/data/criteo"}
TABULAR = {"data.name": "tabular", "data.path": "/data/mine"}
# One impossible value of a setting, the other settings it needs (if any), and the message.
SWEEP = [
    ("seed", -1, {}, "seed=-1 must be >= 0"),
    ("model.name", "dcn", {}, "model.name='dcn': use one of dlrm, dlrm_dcn, deepfm"),
    ("model.cross_layers", 0, {}, "model.cross_layers=0 must be >= 1"),
    ("model.cross_rank", 0, {}, "model.cross_rank=0 must be >= 1"),
    ("model.cross_rank", 8, {}, "model.cross_rank=8 is read by model=dlrm_dcn only"),
    ("model.embedding_dim", 0, {}, "model.embedding_dim=0 must be >= 1"),
    (
        "model.bottom_mlp",
        [64, 8],
        {},
        "model.bottom_mlp=[64, 8] must end at model.embedding_dim=16",
    ),
    ("model.bottom_mlp", [], {}, "model.bottom_mlp=[] must end at model.embedding_dim=16"),
    ("model.bottom_mlp", [0, 16], {}, "model.bottom_mlp=[0, 16]: every layer's width must be >= 1"),
    ("model.top_mlp", [64, 0], {}, "model.top_mlp=[64, 0]: every layer's width must be >= 1"),
    ("model.top_mlp", [-2], {}, "model.top_mlp=[-2]: every layer's width must be >= 1"),
    ("model.table_kernel", "cuda", {}, "model.table_kernel='cuda': use one of auto, torch, fbgemm"),
    ("data.name", "tsv", {}, "data.name='tsv' is unknown; use data=synthetic or data=criteo"),
    ("data.name", "criteo", {}, "data=criteo needs data.path=DIR"),
    ("data.seed", -1, {}, "data.seed=-1 must be >= 0, or null to follow seed"),
    ("data.path", "", {"data.name": "criteo"}, "data=criteo needs data.path=DIR"),
    ("data.eval_path", "", CRITEO, "data.eval_path='' must be a directory, or null"),
    ("data.eval_fraction", 1.0, CRITEO, "data.eval_fraction=1.0 must be in (0, 1)"),
    ("data.eval_fraction", 0.0, CRITEO, "data.eval_fraction=0.0 must be in (0, 1)"),
    ("data.num_dense", 0, {}, "data.num_dense=0 must be >= 1"),
    ("data.cardinalities", [], {}, "data.cardinalities=[] needs at least one table"),
    ("data.cardinalities", [10, 0], {}, "data.cardinalities[1]=0 must be >= 1"),
    ("data.ids_per_feature", 0, {}, "data.ids_per_feature=0 must be >= 1"),
    ("data.bag_sizes", [1, 2], {}, "data.bag_sizes=[1, 2] must give one bag size per table: 26"),
    (
        "data.bag_sizes",
        [3, 0],
        {"data.cardinalities": [10, 20]},
        "data.bag_sizes[1]=0 must be >= 1 (the ids of a bag)",
    ),
    ("data.max_rows", 0, {}, "data.max_rows=0 must be >= 1, or null to keep data.cardinalities"),
    ("data.zipf_exponent", -0.5, {}, "data.zipf_exponent=-0.5 must be >= 0 (0: uniform ids)"),
    ("data.teacher_dim", 0, {}, "data.teacher_dim=0 must be >= 1"),
    ("data.teacher_scale", math.inf, {}, "data.teacher_scale=inf must be a finite number"),
    ("data.eval_size", 0, {}, "data.eval_size=0 must be >= 1"),
    ("data.eval_size", 0, CRITEO, "data.eval_size=0 must be >= 1"),
    ("data.eval_size", None, {}, "data.eval_size=null means the whole eval split, which synthetic"),
    ("parallel.mp_mode", "tensor", {}, "parallel.mp_mode='tensor': use embedding (tables sharded"),
    ("parallel.mp_size", 0, {}, "parallel.mp_size=0 must be >= 1"),
    ("parallel.sharding", "rows", {}, "parallel.sharding='rows': use one of auto, table, row"),
    ("parallel.memory_budget_gb", 0.0, {}, "parallel.memory_budget_gb=0.0 must be > 0, or null"),
    ("parallel.cuts", ["top_mlp.0"], {}, "parallel.cuts=['top_mlp.0'] needs parallel.mp_mode=pip"),
    (
        "parallel.cuts",
        [],
        {"parallel.mp_mode": "pipeline"},
        "parallel.mp_mode=pipeline needs parallel.cuts, e.g. parallel.cuts=[bottom_mlp.1]",
    ),
    ("parallel.microbatches", 0, {}, "parallel.microbatches=0 must be >= 1"),
    ("parallel.backend", "mpi", {}, "parallel.backend='mpi': use one of auto, gloo, nccl"),
    ("parallel.timeout_s", 0.0, {}, "parallel.timeout_s=0.0 must be > 0 (seconds)"),
    ("parallel.timeout_s", -5.0, {}, "parallel.timeout_s=-5.0 must be > 0 (seconds)"),
    ("parallel.timeout_s", math.inf, {}, "parallel.timeout_s=inf must be a finite number"),
    ("parallel.threads", 0, {}, "parallel.threads=0 must be at least 1, or null"),
    ("optim.name", "adam", {}, "optim='adam': use sgd or adagrad"),
    ("optim.adagrad_eps", -1e-8, {}, "optim.adagrad_eps=-1e-08 must be >= 0"),
    ("optim.tables", "adam", {}, "optim.tables='adam': use one of sgd, adagrad, rowwise_adagrad"),
    ("optim.tables_lr", 0.0, {}, "optim.tables_lr=0.0 must be > 0, or null to follow train.lr"),
    ("train.steps", 0, {}, "train.steps=0 must be >= 1"),
    ("train.epochs", 0, CRITEO, "train.epochs=0 must be >= 1 (passes over the train split)"),
    ("train.epochs", 2, {}, "train.epochs=2 counts passes over a train split, which synthetic"),
    (
        "train.epochs",
        2,
        {**CRITEO, "train.steps": 100},
        "train.steps=100 and train.epochs=2: give one of them (set the other to null)",
    ),
    ("train.batch_size", 0, {}, "train.batch_size=0 must be >= 1"),
    ("train.batch_size", 0, PIPELINE, "train.batch_size=0 must be >= 1"),
    ("train.lr", -1.0, {}, "train.lr=-1.0 must be > 0"),
    ("train.lr", math.nan, {}, "train.lr=nan must be a finite number"),
    ("train.eval_every", 0, {}, "train.eval_every=0 must be >= 1"),
    ("train.patience", -1, {}, "train.patience=-1 must be >= 0 (0: never stop early)"),
    ("data.valid_fraction", 1.0, TABULAR, "data.valid_fraction=1.0 must be in [0, 1)"),
    ("data.valid_fraction", -0.1, TABULAR, "data.valid_fraction=-0.1 must be in [0, 1)"),
    ("train.log_every", 0, {}, "train.log_every=0 must be >= 1"),
    ("train.checkpoint_every", -10, {}, "train.checkpoint_every=-10 must be a multiple of"),
    ("train.checkpoint_every", 15, {}, "train.checkpoint_every=15 must be a multiple of train.lo"),
    ("train.checkpoint_dir", "", {}, "train.checkpoint_dir='' must be a directory, or null"),
    ("train.keep_checkpoints", 0, {}, "train.keep_checkpoints=0 must be >= 1"),
    ("train.resume", "", {}, "train.resume='' must be auto, never or a checkpoint's path"),
    ("dct.dp.density", 0.0, {}, "dct.dp.density=0.0 must be in (0, 1]"),
    ("dct.dp.density", 2.0, {}, "dct.dp.density=2.0 must be in (0, 1]"),
    ("dct.dp.update_every", 0, {}, "dct.dp.update_every=0 must be >= 1"),
    ("dct.dp.warmup_steps", 1, {}, "dct.dp.warmup_steps=1 must be >= 2"),
    ("dct.dp.value_dtype", "int8", {}, "dct.dp.value_dtype='int8': use float32, float16 or bf"),
    ("dct.dp.guard_factor", 1.0, {}, "dct.dp.guard_factor=1.0 must be > 1"),
    ("dct.dp.guard_window", 0, {}, "dct.dp.guard_window=0 must be >= 1"),
    ("dct.dp.threshold_sample_size", -5, {}, "dct.dp.threshold_sample_size=-5 must be >= 0"),
    ("dct.dp.upkeep", "often", {}, "dct.dp.upkeep='often': use one of guard, track"),
    ("dct.dp.table_residual_rows", -1, {}, "dct.dp.table_residual_rows=-1 must be >= 0"),
    ("dct.mp.density", 0.0, {}, "dct.mp.density=0.0 must be in (0, 1]"),
    ("dct.mp.density", 1.5, {}, "dct.mp.density=1.5 must be in (0, 1]"),
    ("dct.mp.value_dtype", "int8", {}, "dct.mp.value_dtype='int8': use float32"),
    ("dct.mp.grad_dtype", "half", {}, "dct.mp.grad_dtype='half': use float32"),
    ("dct.mp.granularity", "row", {}, "dct.mp.granularity='row': use sample"),
    ("dct.mp.codec", "int2", {}, "dct.mp.codec='int2': use one of dense, fp16, bf16"),
    ("dct.mp.grad_codec", "fp8", {}, "dct.mp.grad_codec='fp8': use one of dense"),
    ("dct.mp.grad_rounding", "up", {}, "dct.mp.grad_rounding='up': use nearest or stochastic"),
    (
        "dct.mp.dedup",
        True,
        PIPELINE,
        "dct.mp.dedup=true de-duplicates the embedding all-to-all, which pipeline mode",
    ),
    ("dp_hook.name", "topk", {}, "dp_hook.name='topk': use allreduce, fp16 or powersgd"),
    ("dp_hook.powersgd_rank", 0, {}, "dp_hook.powersgd_rank=0 must be >= 1"),
    ("dp_hook.powersgd_start_step", 1, {}, "dp_hook.powersgd_start_step=1 must be >= 2"),
    ("output.log_level", "verbose", {}, "output.log_level='verbose': use one of debug, info, war"),
]
# Settings no value of which is impossible alone (switches).
FREE = {
    "dct.dp.enabled",
    "dct.mp.enabled",
    "output.tensorboard",
    "output.progress_bar",
}


@pytest.mark.parametrize(
    "key, value, context, message",
    SWEEP,
    ids=[f"{key}={value}" + ("+context" if context else "") for key, value, context, _ in SWEEP],
)
def test_impossible_setting_is_named(key, value, context, message):
    cfg = with_settings({**context, key: value})
    with raises_config_error(message) as error:
        validate(cfg, world_size=2 if context.get("parallel.mp_mode") == "pipeline" else 1)
    assert "\n" not in str(error.value)


def test_every_setting_is_swept_or_free():
    """A new setting gets a case in ``SWEEP`` (and its check), or a place in ``FREE``."""
    keys = {
        key for source in DATA_SOURCES.values() for key in setting_keys(RunConfig(data=source()))
    }
    assert keys == {key for key, *_ in SWEEP} | FREE


@pytest.mark.parametrize(
    "cfg, world, message",
    [
        (with_changes(train={"batch_size": 1000}), 3, "must be a positive multiple of the world"),
        (pipeline(mp_size=3), 2, "parallel.mp_size=3, but parallel.cuts=['bottom_mlp.0'] make 2"),
        (pipeline(), 3, "3 processes for 2 pipeline stages: launch a multiple of 2"),
        (pipeline(microbatches=3), 2, "does not split into 1 replica(s) x parallel.microbatches=3"),
        (pipeline(microbatches=384), 4, "does not split into 2 replica(s) x parallel.microbatch"),
        (with_dp_hook(True, name="fp16"), 1, "dct.dp.enabled=true and dp_hook.name=fp16: pick"),
        (with_dp_hook(True, name="powersgd"), 1, "and dp_hook.name=powersgd: pick one gradient"),
        (with_dct_mp(codec="topk", grad_codec="int8"), 1, "topk pairs only with topk"),
        (with_dct_mp(codec="int8", grad_codec="topk"), 1, "topk pairs only with topk"),
    ],
)
def test_impossible_combination_is_named(cfg, world, message):
    with raises_config_error(message):
        validate(cfg, world_size=world)


@pytest.mark.parametrize(
    "overrides",
    [[]]
    + [
        [f"{path.parent.name}={path.stem}", *NEEDS.get(f"{path.parent.name}={path.stem}", [])]
        for path in sorted(CONFIGS.glob("*/*.yaml"))
        if path.parent.name not in NOT_GROUPS
    ],
    ids=lambda overrides: overrides[0] if overrides else "defaults",
)
def test_every_config_file_validates(overrides):
    """Each YAML file composes over the defaults and runs on one replica and on two."""
    cfg = composed(*overrides)
    for replicas in (1, 2):
        validate(cfg, world_size=replicas * model_parallel_size(cfg))


def test_paper_model_is_a_shape_for_any_mode():
    cfg = composed("model=dlrm_paper")
    assert (cfg.model.bottom_mlp, cfg.model.top_mlp) == ([512, 256, 64, 16], [512, 256])
    assert cfg.parallel.cuts == []
    validate(cfg, world_size=1)
    validate(composed("model=dlrm_paper", "parallel.mp_size=2"), world_size=2)


@pytest.mark.parametrize(
    "overrides, cuts",
    [
        ([], ["bottom_mlp.1"]),
        (["parallel.cuts=[bottom_mlp.1,top_mlp.1]"], ["bottom_mlp.1", "top_mlp.1"]),
    ],
)
def test_pipeline_experiment_cuts_the_paper_model_where_the_paper_does(overrides, cuts):
    """The paper's 2-worker split, and its 3-worker one as the experiment's comment gives it."""
    cfg = composed("experiment=pipeline_paper", *overrides)
    assert cfg.model == composed("model=dlrm_paper").model
    assert (cfg.parallel.mp_mode, cfg.parallel.cuts) == ("pipeline", cuts)
    validate(cfg, world_size=len(cuts) + 1)
    paper = DLRM(13, cfg.model.bottom_mlp, [10] * 26, cfg.model.top_mlp, seed=0)
    assert set(cuts) <= set(cut_names(paper))


def test_cuts_are_no_longer_a_model_setting():
    with pytest.raises(ConfigCompositionException, match="model.cuts"):
        composed("model.cuts=[bottom_mlp.1]")


@pytest.mark.parametrize(
    "steps, log_every, every, expected",
    [
        (AUTO_CHECKPOINT_EVERY, 10, None, 0),
        (AUTO_CHECKPOINT_EVERY + 1, 10, None, AUTO_CHECKPOINT_EVERY),
        (5000, 300, None, 600),
        (100, 10, 20, 20),
        (5000, 10, 0, 0),
    ],
)
def test_checkpoint_interval(steps, log_every, every, expected):
    """Unset, runs longer than AUTO_CHECKPOINT_EVERY steps checkpoint about that often, at a
    logging step."""
    cfg = with_changes(train={"steps": steps, "log_every": log_every, "checkpoint_every": every})
    assert checkpoint_every(cfg.train) == expected


@pytest.mark.parametrize(
    "changes, names",
    [
        ({}, ("dense", "dense")),
        ({"enabled": True}, ("topk", "topk")),
        ({"codec": "int8"}, ("int8", "int8")),
        ({"codec": "int4", "grad_codec": "dense"}, ("int4", "dense")),
        ({"enabled": True, "codec": "fp16"}, ("fp16", "fp16")),
        ({"codec": "dense", "grad_codec": "bf16"}, ("dense", "bf16")),
    ],
)
def test_mp_codec_names(changes, names):
    """``dct.mp.codec`` decides; unset, ``enabled`` means DCT-MP's top-k, as it always has."""
    assert mp_codec_names(with_dct_mp(**changes).dct.mp) == names


@pytest.mark.parametrize(
    "overrides, schema",
    [
        ([], SyntheticDataConfig),
        (["data=synthetic_kaggle"], SyntheticDataConfig),
        (["data=criteo", "data.path=/data/criteo"], CriteoDataConfig),
    ],
)
def test_each_data_file_composes_its_own_schema(overrides, schema):
    """A source's config holds its own keys, typed by its schema, and no other source's."""
    data = composed(*overrides).data
    assert type(data) is schema
    assert [item.name for item in dataclasses.fields(data)] == [
        item.name for item in dataclasses.fields(schema)
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["data=criteo", "data.num_dense=1"],
            "data.num_dense is not a key of data=criteo (its keys: name, eval_size, path, "
            "eval_path, eval_fraction)",
        ),
        (
            ["data=criteo", "data.cardinalities=[4,5]"],
            "data.cardinalities is not a key of data=cri",
        ),
        (["data.path=/data/criteo"], "data.path is not a key of data=synthetic (its keys: name, "),
        (["data=synthetic_kaggle", "data.eval_fraction=0.5"], "data.eval_fraction is not a key of"),
    ],
)
def test_a_key_of_another_data_source_is_refused_naming_key_and_source(overrides, message):
    with pytest.raises(ConfigCompositionException) as error:
        composed(*overrides)
    assert message in (unknown_data_key(error.value) or "")


def test_a_key_added_with_plus_is_refused_too():
    """Hydra's ``+key=value`` adds a key the schema lacks; OmegaConf keeps it as an attribute."""
    cfg = composed("data=criteo", "data.path=/data/criteo", "+data.num_dense=1")
    with raises_config_error("data.num_dense is not a key of data=criteo (its keys: name, "):
        validate(cfg, world_size=1)
    with raises_config_error("train.stpes is not a key of train (its keys: steps, epochs, batch"):
        validate(composed("+train.stpes=5"), world_size=1)


def test_another_error_is_not_taken_for_a_data_key():
    with pytest.raises(ConfigCompositionException) as error:
        composed("train.stpes=5")
    assert unknown_data_key(error.value) is None


def test_data_name_is_not_how_a_source_is_chosen():
    cfg = RunConfig(data=SyntheticDataConfig(name="criteo"))
    with raises_config_error("data.name='criteo' with the settings of another source: pick the"):
        validate(cfg, world_size=1)


@pytest.mark.parametrize(
    "cfg, world, message",
    [
        (pipeline(cuts=["bottom_mlp.0", "bottom_mlp.0"]), 3, "name a layer twice"),
        (with_changes(parallel={"mp_size": 3}), 4, "parallel.mp_size=3 does not divide the world"),
        (
            with_changes(parallel={"mp_size": 4, "sharding": "table"}, data={"cardinalities": [5]}),
            4,
            "parallel.mp_size=4 exceeds the number of embedding tables (1)",
        ),
        (
            with_changes(model={"table_kernel": "fbgemm"}),
            2,
            "model.table_kernel=fbgemm updates tables inside backward, but replicas (dp_size=2)",
        ),
    ],
)
def test_rules_that_need_the_world_size_run_in_validate(cfg, world, message):
    """Checked before the process group starts, not where the grid or the tables are built."""
    with raises_config_error(message):
        validate(cfg, world_size=world)


def test_fbgemm_tables_without_replicas_are_valid():
    validate(with_changes(model={"table_kernel": "fbgemm"}, parallel={"mp_size": 2}), 2)


def test_help_describes_every_key_of_every_source_and_every_experiment():
    text = help_text(CONFIGS)
    lines = text.splitlines()
    schemas = [RunConfig(data=source()) for source in DATA_SOURCES.values()]
    for key, _, about in (key for cfg in schemas for key in leaf_keys(cfg)):
        assert about, f"{key} has no help"
        assert any(line.split()[:1] == [key] and line.endswith(about) for line in lines), key
    for group in ("model", "data", "parallel", "optim", "train", "dct", "dp_hook"):
        options = sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))
        assert f"({group}={', '.join(options)})" in text
    for path in (CONFIGS / "experiment").glob("*.yaml"):
        first = next(
            line
            for line in path.read_text().splitlines()
            if line.startswith("# ") and "@" not in line
        )
        entry = next(line for line in lines if line.startswith(f"  {path.stem}: "))
        assert entry.startswith(f"  {path.stem}: {first[2:]}") and entry.endswith(".")


def test_the_configuration_page_names_every_key():
    """docs/configuration.md lists each key in its group's row, as `key` (`dp.density` in dct)."""
    page = (CONFIGS.parent / "docs" / "configuration.md").read_text()
    schemas = [RunConfig(data=source()) for source in DATA_SOURCES.values()]
    for key, _, _ in (key for cfg in schemas for key in leaf_keys(cfg)):
        short = key.split(".", 1)[-1]
        assert f"`{short}`" in page, key


def test_tabular_data_brings_its_own_training_defaults_and_overrides_still_win():
    """``data=tabular`` selects ``train=tabular`` (256 rows at 0.01; docs/data.md measures why);
    every other source keeps ``train=default``; keys given, or ``train=default``, win."""
    tabular = ["data=tabular", "data.path=/data/mine"]
    shaped = composed(*tabular).train
    assert (shaped.batch_size, shaped.lr) == (256, 0.01)
    assert dataclasses.replace(shaped, batch_size=1024, lr=0.05) == composed().train
    assert composed("data=criteo", "data.path=/d").train == composed().train
    given = composed(*tabular, "train.batch_size=64", "train.lr=0.3").train
    assert (given.batch_size, given.lr) == (64, 0.3)
    assert composed(*tabular, "train=default").train == composed().train
