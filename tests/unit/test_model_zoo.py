"""Every model against a plain PyTorch implementation written here from its paper's formula,
and every model's steps (``DenseArch.layers``, what pipeline stages run) against its forward.

The references read the model's weights by name and compute with nothing of ``models/``: the
forward pass and the gradients of every weight (and of the pooled embeddings) must agree.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from dct.checkpoint.meta import model_config
from dct.config import ModelConfig
from models.feature_tables import FeatureTables
from models.recommender import Recommender
from models.stages import cut_names, split_model
from models.zoo import dense_part, recommender

NUM_DENSE, NUM_FEATURES, DIM, N = 5, 4, 8, 7


def relu_mlp(x: Tensor, weights: list[tuple[Tensor, Tensor]], last_relu: bool) -> Tensor:
    for i, (weight, bias) in enumerate(weights):
        x = x @ weight.T + bias
        if last_relu or i < len(weights) - 1:
            x = torch.clamp(x, min=0.0)
    return x


def linears(params: dict[str, Tensor], prefix: str) -> list[tuple[Tensor, Tensor]]:
    """The (weight, bias) pairs named ``prefix<k>.weight`` / ``.bias``, in order of ``k``."""
    indices = sorted(
        {int(name[len(prefix) :].split(".")[0]) for name in params if name.startswith(prefix)}
    )
    return [(params[f"{prefix}{k}.weight"], params[f"{prefix}{k}.bias"]) for k in indices]


def reference_dcn(params: dict[str, Tensor], dense: Tensor, pooled: Tensor, layers: int) -> Tensor:
    """x_{l+1} = x_0 * (U_l (V_l x_l) + b_l) + x_l between the bottom and top MLPs."""
    bottom = relu_mlp(dense, linears(params, "bottom_mlp."), last_relu=True)
    x0 = torch.cat([bottom, pooled.reshape(pooled.shape[0], -1)], dim=1)
    x = x0
    for layer in range(layers):
        v = params[f"interaction.cross.down.{layer}.weight"]
        u = params[f"interaction.cross.up.{layer}.weight"]
        b = params[f"interaction.cross.up.{layer}.bias"]
        x = x0 * ((x @ v.T) @ u.T + b) + x
    return relu_mlp(x, linears(params, "top_mlp."), last_relu=False).squeeze(1)


def reference_deepfm(params: dict[str, Tensor], dense: Tensor, pooled: Tensor) -> Tensor:
    """First order + the sum over field pairs of their dot products + the deep MLP."""
    bottom = relu_mlp(dense, linears(params, "bottom_mlp."), last_relu=True)
    fields = [bottom, *pooled.unbind(1)]
    flat = torch.cat(fields, dim=1)
    first = (
        flat @ params["interaction.first_order.weight"].T + params["interaction.first_order.bias"]
    )
    fm = sum((a * b).sum(dim=1) for a, b in itertools.combinations(fields, 2))
    deep_names = sorted(
        {name.rsplit(".", 1)[0] for name in params if name.startswith("top_mlp.")},
        key=lambda name: int(name.split(".")[1]),
    )
    deep = [(params[f"{name}.weight"], params[f"{name}.bias"]) for name in deep_names]
    return first.squeeze(1) + fm + relu_mlp(flat, deep, last_relu=False).squeeze(1)


def built(name: str, **keys) -> nn.Module:
    cfg = ModelConfig(name=name, embedding_dim=DIM, bottom_mlp=[6, DIM], top_mlp=[9, 5], **keys)
    return dense_part(cfg, NUM_DENSE, NUM_FEATURES, seed=1)


def inputs() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(4)
    dense = torch.randn(N, NUM_DENSE, generator=generator, dtype=torch.float64)
    pooled = torch.randn(N, NUM_FEATURES, DIM, generator=generator, dtype=torch.float64)
    return dense, pooled


@pytest.mark.parametrize(
    "name, keys, reference",
    [
        (
            "dlrm_dcn",
            {"cross_layers": 3, "cross_rank": 4},
            lambda p, d, e: reference_dcn(p, d, e, 3),
        ),
        (
            "dlrm_dcn",
            {"cross_layers": 1, "cross_rank": 50},
            lambda p, d, e: reference_dcn(p, d, e, 1),
        ),
        ("deepfm", {}, reference_deepfm),
    ],
)
def test_forward_and_backward_equal_the_formula(name, keys, reference):
    tower = built(name, **keys).double()
    dense, pooled = inputs()
    pooled_model = pooled.clone().requires_grad_()
    pooled_ref = pooled.clone().requires_grad_()
    params = {n: p.detach().clone().requires_grad_() for n, p in tower.named_parameters()}
    logits = tower(dense, pooled_model)
    expected = reference(params, dense, pooled_ref)
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    weights = torch.linspace(-1.0, 1.0, N, dtype=torch.float64)
    (logits * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(pooled_model.grad, pooled_ref.grad, rtol=1e-12, atol=1e-12)
    for param_name, param in tower.named_parameters():
        torch.testing.assert_close(param.grad, params[param_name].grad, rtol=1e-12, atol=1e-12)


def test_the_reference_sees_every_parameter():
    """The references above read every weight, so none escapes the comparison."""
    dcn = {n for n, _ in built("dlrm_dcn", cross_layers=2, cross_rank=3).named_parameters()}
    assert dcn == {
        *(f"bottom_mlp.{k}.{w}" for k in (0, 2) for w in ("weight", "bias")),
        *(f"interaction.cross.down.{layer}.weight" for layer in (0, 1)),
        *(f"interaction.cross.up.{layer}.{w}" for layer in (0, 1) for w in ("weight", "bias")),
        *(f"top_mlp.{k}.{w}" for k in (0, 2, 4) for w in ("weight", "bias")),
    }
    deepfm = {n for n, _ in built("deepfm").named_parameters()}
    assert deepfm == {
        *(f"bottom_mlp.{k}.{w}" for k in (0, 2) for w in ("weight", "bias")),
        "interaction.first_order.weight",
        "interaction.first_order.bias",
        *(f"top_mlp.{k}.block.0.{w}" for k in (0, 1, 2) for w in ("weight", "bias")),
    }


def test_the_fm_term_is_the_sum_over_pairs():
    """With every weight but the FM's zero, the logit is the sum of the fields' pairwise dots."""
    tower = built("deepfm").double()
    with torch.no_grad():
        for param in tower.parameters():
            param.zero_()
    dense, pooled = inputs()
    pairs = sum(
        (pooled[:, i] * pooled[:, j]).sum(dim=1)
        for i, j in itertools.combinations(range(NUM_FEATURES), 2)
    )
    # The bottom MLP outputs zeros: its field adds nothing.
    torch.testing.assert_close(tower(dense, pooled), pairs)


def model(name: str) -> Recommender:
    cfg = ModelConfig(name=name, embedding_dim=DIM, bottom_mlp=[6, DIM], top_mlp=[9, 5])
    return recommender(cfg, NUM_DENSE, FeatureTables.one_per_feature([11, 3, 20, 7]), seed=2)


def batch_of(n: int = N):
    from dct.data.batch import Batch, SparseFeatures

    generator = torch.Generator().manual_seed(5)
    sizes = [11, 3, 20, 7]
    values = [torch.randint(0, size, (2 * n,), generator=generator) for size in sizes]
    offsets = [torch.arange(0, 2 * n + 1, 2) for _ in sizes]
    return Batch(
        dense=torch.randn(n, NUM_DENSE, generator=generator),
        sparse=SparseFeatures(values=values, offsets=offsets),
        labels=torch.zeros(n),
    )


@pytest.mark.parametrize("name", ["dlrm", "dlrm_dcn", "deepfm"])
def test_the_steps_are_the_forward_pass_bit_for_bit(name):
    net, batch = model(name), batch_of()
    pooled = net.sparse_arch(batch.sparse)
    x = batch.dense
    for step in net.dense_tower.layers():
        x = step.module(x, pooled) if step.reads_embeddings else step.module(x)
        assert x.shape == (N, step.width)
    assert torch.equal(x.squeeze(1), net(batch))


@pytest.mark.parametrize("name", ["dlrm", "dlrm_dcn", "deepfm"])
def test_every_cut_splits_into_stages_that_compute_the_forward_pass(name):
    net, batch = model(name), batch_of()
    assert cut_names(net) == ["bottom_mlp.0", "bottom_mlp.1", "top_mlp.0", "top_mlp.1"]
    for count in (1, 2):
        for cuts in itertools.combinations(cut_names(net), count):
            x = None
            for stage in split_model(net, list(cuts)):
                x = stage(x, batch.dense, batch.sparse)
            assert torch.equal(x, net(batch)), cuts


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        ModelConfig(name="deepfm", top_mlp=[8]),
        ModelConfig(name="dlrm_dcn", cross_layers=2, cross_rank=5),
    ],
)
def test_a_checkpoint_fingerprint_rebuilds_the_same_model(cfg):
    from dct.checkpoint.meta import fingerprint
    from dct.config import RunConfig

    shape = fingerprint(RunConfig(model=cfg))
    rebuilt = model_config(shape)
    assert (rebuilt.name, rebuilt.bottom_mlp, rebuilt.top_mlp) == (
        cfg.name,
        cfg.bottom_mlp,
        cfg.top_mlp,
    )
    if cfg.name == "dlrm_dcn":
        assert (rebuilt.cross_layers, rebuilt.cross_rank) == (2, 5)
    # A DLRM's fingerprint is what it was before other models existed.
    assert ("model.name" in shape) == (cfg.name != "dlrm")
