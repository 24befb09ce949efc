"""Telling a failed collective from any other error, against messages torch and gloo produce."""

from __future__ import annotations

from dct.runtime.peer_failure import describe

WRAPPED = (
    "Got the following error when running the callback: RuntimeError: "
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out "
    "waiting 3000ms for recv operation to complete\n\nAt:\n"
    "  /x/dct/comm/metered_allreduce.py(41): <lambda>"
)


def _engine_run_backward(message: str) -> None:
    """Named as autograd's frame that runs DDP's gradient all-reduce."""
    raise RuntimeError(message)


def raised(message: str) -> RuntimeError:
    try:
        _engine_run_backward(message)
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def test_a_gradient_all_reduce_timing_out_in_backward_is_a_peer_failure():
    line = describe(raised(WRAPPED), timeout_s=3)
    assert line is not None
    assert line.startswith(
        "a collective in backward (the gradient all-reduce) failed on this rank: Timed out "
        "waiting 3000ms for recv operation to complete. A peer died, hung longer than "
        "parallel.timeout_s=3 s"
    )
    assert "\n" not in line


def test_any_other_runtime_error_is_left_alone():
    assert describe(raised("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x4)"), 3) is None
    assert describe(RuntimeError("[some/other/place.cc:1] failed"), 3) is None
