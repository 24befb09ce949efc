"""DCTDPState without a process group: selection, error feedback, threshold schedule, settings.

A stand-in bucket offers what DDP's ``GradBucket`` offers the state (parameters, their
gradients, the buffer, ``is_last``), so every step can be checked against plain tensor arithmetic.
"""

from __future__ import annotations

import pytest
import torch

from dct import DCTDPState
from dct.compression.hard_threshold import target_count
from tests.unit.fake_bucket import FakeBucket

PARAMS = [torch.zeros(50, 4), torch.zeros(30)]


def grads_at(step: int, scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return [scale * torch.randn(p.shape, generator=g) for p in PARAMS]


def run_step(state: DCTDPState, grads: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    bucket = FakeBucket(PARAMS, grads)
    positions, values = state.select(bucket)
    state.maybe_increase_step(bucket)
    return positions, values


def residuals(state: DCTDPState) -> list[torch.Tensor]:
    layers = state.state_dict()["layers"]
    return [layers[f"param{i}"]["residual"] for i in range(len(PARAMS))]


def test_warmup_sends_every_nonzero_entry_exactly():
    state = DCTDPState(density=0.05, warmup_steps=2, value_dtype="float16")
    for step in range(2):
        grads = grads_at(step)
        grads[0][3] = 0.0
        positions, values = run_step(state, grads)
        flat = torch.cat([g.reshape(-1) for g in grads])
        assert torch.equal(positions, torch.nonzero(flat).squeeze(1))
        assert values.dtype == torch.float32 and torch.equal(values, flat[positions])


@pytest.mark.parametrize("upkeep", ["guard", "track"])
@pytest.mark.parametrize("value_dtype", ["float32", "float16", "bfloat16"])
def test_sent_plus_residual_equals_gradient_plus_previous_residual(value_dtype, upkeep):
    state = DCTDPState(density=0.05, update_every=3, value_dtype=value_dtype, upkeep=upkeep)
    previous = [torch.zeros(p.numel()) for p in PARAMS]
    for step in range(12):
        grads = grads_at(step)
        positions, values = run_step(state, grads)
        sent = torch.zeros(sum(p.numel() for p in PARAMS))
        sent[positions] = values.float()
        if step < 2:
            continue
        now, offset = residuals(state), 0
        for grad, before, after in zip(grads, previous, now):
            n = grad.numel()
            assert torch.equal(sent[offset : offset + n] + after, grad.reshape(-1) + before)
            offset += n
        previous = now


@pytest.mark.parametrize("upkeep", ["guard", "track"])
def test_threshold_is_reestimated_every_update_every_steps_and_on_guard_only(upkeep):
    """Tracking replaces the scheduled estimates: only the first is made."""
    state = DCTDPState(
        density=0.05, update_every=4, warmup_steps=2, guard_factor=1e9, upkeep=upkeep
    )
    estimates = []
    for step in range(15):
        run_step(state, grads_at(step))
        estimates.append(state.compression_stats()["threshold_estimates"])
    per_step = [b - a for a, b in zip([0, *estimates], estimates)]
    n = len(PARAMS)
    scheduled = n if upkeep == "guard" else 0
    assert per_step == [0, 0, n] + ([0, 0, 0, scheduled] * 3)
    assert state.compression_stats()["guard_over"] == 0


def test_guard_reestimates_when_far_more_than_the_target_pass():
    """The 200-entry layer (10 a step) is capped at once; the 30-entry one (2 a step) is judged
    over 16 steps (``tests/unit/test_density_guard.py``), so one burst of it is allowed."""
    state = DCTDPState(density=0.05, update_every=1000, guard_factor=2.0)
    for step in range(3):
        run_step(state, grads_at(step))
    before = state.compression_stats()
    tau = state.thresholds()["param0"]
    positions, _ = run_step(state, grads_at(3, scale=100.0))
    after = state.compression_stats()
    assert after["guard_over"] - before["guard_over"] == 1
    assert after["threshold_estimates"] - before["threshold_estimates"] == 1
    assert state.thresholds()["param0"] > tau
    assert (positions < PARAMS[0].numel()).sum() <= 2 * target_count(PARAMS[0].numel(), 0.05)


def test_state_dict_round_trip_continues_identically():
    def steps(state: DCTDPState, start: int, stop: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [run_step(state, grads_at(s)) for s in range(start, stop)]

    whole = DCTDPState(density=0.05, update_every=3, value_dtype="float16")
    expected = steps(whole, 0, 10)
    first = DCTDPState(density=0.05, update_every=3, value_dtype="float16")
    steps(first, 0, 5)
    resumed = DCTDPState(density=0.05, update_every=3, value_dtype="float16")
    resumed.load_state_dict(first.state_dict())
    for (p, v), (p_ref, v_ref) in zip(steps(resumed, 5, 10), expected[5:]):
        assert torch.equal(p, p_ref) and torch.equal(v, v_ref)
    assert resumed.compression_stats() == whole.compression_stats()


def test_layers_are_named_by_the_module_when_given():
    module = torch.nn.Linear(3, 2)
    state = DCTDPState(density=0.5, module=module)
    grads = [torch.ones_like(p) for p in module.parameters()]
    for _ in range(3):
        bucket = FakeBucket(list(module.parameters()), grads)
        state.select(bucket)
        state.maybe_increase_step(bucket)
    assert set(state.thresholds()) == {"weight", "bias"}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"density": 0.0}, "density=0.0 must be in (0, 1]"),
        ({"density": 1.5}, "density=1.5 must be in (0, 1]"),
        ({"update_every": 0}, "update_every=0 must be >= 1"),
        ({"warmup_steps": 1}, "warmup_steps=1 must be >= 2"),
        ({"guard_factor": 1.0}, "guard_factor=1.0 must be > 1"),
        ({"value_dtype": "int8"}, "value_dtype='int8'"),
        ({"threshold_sample_size": -1}, "threshold_sample_size must be >= 0"),
    ],
)
def test_impossible_settings_are_refused_with_the_fix(settings, message):
    with pytest.raises(ValueError) as error:
        DCTDPState(**settings)
    assert message in str(error.value)


def test_sampled_threshold_estimate_keeps_about_the_target():
    params = [torch.zeros(20_000)]
    state = DCTDPState(density=0.01, threshold_sample_size=2_000, guard_factor=1e9)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        bucket = FakeBucket(params, [torch.randn(20_000, generator=g)])
        positions, _ = state.select(bucket)
        state.maybe_increase_step(bucket)
    assert 100 <= positions.numel() <= 300
    assert state.compression_stats()["threshold_estimates"] == 1
