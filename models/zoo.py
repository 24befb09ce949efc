"""The models a config names (``model.name``), built from its ``model`` settings.

The one place that maps a name to a dense part: training (``dct.parallel.builder``), export and
``dct-predict`` (``dct.checkpoint.meta.model_config`` rebuilds the settings a checkpoint was
trained with) all build through it. Every model shares the sparse part
(``models.sparse_arch``), so only the dense part differs.
"""

from __future__ import annotations

from dct.config import MODELS, ModelConfig
from models.deepfm import DeepFMTower
from models.dlrm import DenseTower
from models.dlrm_dcn import DCNTower
from models.feature_tables import FeatureTables
from models.recommender import DenseArch, Recommender
from models.sparse_arch import SparseArch


def dense_part(model: ModelConfig, num_dense: int, num_features: int, seed: int) -> DenseArch:
    """The dense part ``model.name`` names, for ``num_dense`` dense and ``num_features``
    sparse features, initialised from ``seed``."""
    if model.name == "dlrm":
        return DenseTower(num_dense, model.bottom_mlp, num_features, model.top_mlp, seed)
    if model.name == "dlrm_dcn":
        return DCNTower(
            num_dense,
            model.bottom_mlp,
            num_features,
            model.top_mlp,
            model.cross_layers,
            model.cross_rank,
            seed,
        )
    if model.name == "deepfm":
        return DeepFMTower(num_dense, model.bottom_mlp, num_features, model.top_mlp, seed)
    raise ValueError(f"model.name={model.name!r} is unknown; the models are {list(MODELS)}")


def recommender(
    model: ModelConfig, num_dense: int, features: FeatureTables, seed: int
) -> Recommender:
    """The single-process model: ``features``' tables and ``model.name``'s dense part.

    Example::

        net = recommender(ModelConfig(name="deepfm"), 13, FeatureTables.one_per_feature(sizes), 0)
        logits = net(batch)
    """
    return Recommender(
        SparseArch(features, model.embedding_dim, seed),
        dense_part(model, num_dense, features.num_features, seed),
    )
