"""Users' own layers in every style: a correct layer passes, a planted bug fails with a
shrunk counterexample, and misbehaving code is reported for what it is."""

from __future__ import annotations

import contextlib
import signal
from dataclasses import replace

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive

import gradcheck
from gradcheck.core.values import VALUE_DRAWS
from gradcheck.errors import (
    AliasedOutputError,
    CoupledLayerError,
    GradcheckError,
    GradientMismatch,
    InputMutationError,
    NondeterministicError,
    NonFiniteOutputError,
    UsageError,
    UserCodeError,
    UserOutputError,
    UserTimeoutError,
)
from gradcheck.user.api import collect

AFFINE = "(n,i),(i,j),(j)->(n,j)"
FEW = 30  # examples per passing check: each example already checks every entry


# ---- functional layers -------------------------------------------------------------------------


def affine_forward(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_mean_bias(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)  # the bias gradient averaged: wrong


def affine_backward_sign(dout, x, w, b):
    return dout @ w.T, -(x.T @ dout), dout.sum(axis=0)


def affine_backward_dx_sign(dout, x, w, b):
    return -(dout @ w.T), x.T @ dout, dout.sum(axis=0)


def tanh_dense_forward(x, w, b):  # traceable: written with autograd.numpy
    return anp.tanh(anp.dot(x, w) + b)


def tanh_dense_backward(dout, x, w, b):
    y = np.tanh(np.dot(x, w) + b)
    da = dout * (1.0 - y * y)
    return np.dot(da, w.T), np.dot(x.T, da), da.sum(axis=0)


def log_forward(x):
    with np.errstate(invalid="ignore"):  # outside its domain it returns NaN, which is reported
        return np.log(x)


def log_backward(dout, x):
    return dout / x


def shifted_relu_forward(x):
    return np.maximum(0.0, x - 1.0)  # its kink sits at x = 1, a value the draws favour


def shifted_relu_backward(dout, x):
    return dout * (x > 1.0)


def scaled_forward(x, w, s):
    return s * (x @ w)


def scaled_backward(dout, x, w, s):
    return s * (dout @ w.T), s * (x.T @ dout), np.sum(dout * (x @ w))


def softmax_dense_forward(x, w):  # W shared by every unit through the normalisation
    a = x @ w
    e = np.exp(a - np.max(a, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_dense_backward(dout, x, w):
    p = softmax_dense_forward(x, w)
    da = p * (dout - np.sum(dout * p, axis=1, keepdims=True))
    return da @ w.T, x.T @ da


def untracked_affine_backward(dout, x, w, b):
    dx = np.zeros(x.shape, dtype=x.dtype)
    dx[...] = dout @ w.T  # into a plain array: the running bound is lost
    return dx, x.T @ dout, dout.sum(axis=0)


def untracked_affine_backward_sign(dout, x, w, b):
    dx, dw, db = untracked_affine_backward(dout, x, w, b)
    return dx, dw, -db


def test_a_correct_affine_layer_passes_against_every_oracle():
    summary = gradcheck.check_backward(
        affine_forward,
        affine_backward,
        signature=AFFINE,
        dtypes=("float64", "float32"),
        max_examples=FEW,
    )
    assert summary.passed and summary.examples == FEW
    assert summary.worst_ratio is not None and 0.0 < summary.worst_ratio <= 1.0
    assert set(summary.cells) <= {"float64", "float32"}
    assert summary.error_models["backward"] == {"running": FEW}


def test_an_averaged_bias_gradient_fails_and_shrinks_to_two_rows_of_ones():
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(affine_forward, affine_backward_mean_bias, signature=AFFINE)
    error = raised.value
    # A batch of one hides the bug, so N = 2 is the smallest case; everything else is 1.
    assert error.case.sizes == {"n": 2, "i": 1, "j": 1}
    for value in (*error.case.arguments, error.case.dout):
        assert np.all(value == 1.0)
    assert {c.target for c in error.result.failures()} == {"b"}
    message = str(error)
    assert "the gradient of b" in message
    assert "autograd" in message and "finite-differences" in message  # the oracles that ran
    assert "sizes n=2, i=1, j=1" in message
    assert "hand-written 1, reference 2" in message  # the worst entry: mean against sum
    assert "example=((x, w, b), dout)" in message  # the reproduction


def test_the_reproduction_rebuilds_the_case_and_fails_the_same_way():
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(affine_forward, affine_backward_sign, signature=AFFINE)
    assert raised.value.case.sizes == {"n": 1, "i": 1, "j": 1}
    snippet = raised.value.reproduction
    assert f"from {__name__} import affine_backward_sign" in snippet
    with pytest.raises(GradientMismatch) as again:
        exec(snippet, {})
    assert again.value.case.sizes == raised.value.case.sizes
    for first, second in zip(again.value.case.arguments, raised.value.case.arguments, strict=True):
        assert first.tobytes() == second.tobytes() and first.dtype == second.dtype


def identity_backward_returning_dout(dout, x):
    return dout  # right, but the caller's dout and dx are now one array


def flatten_forward(x):
    return x.reshape(x.shape[0], -1)  # a view of x


def test_a_gradient_that_is_the_callers_dout_is_refused_unless_views_are_allowed():
    with pytest.raises(AliasedOutputError) as raised:
        gradcheck.check_backward(
            lambda x: 1.0 * x, identity_backward_returning_dout, signature="(n)->(n)"
        )
    message = str(raised.value)
    assert "backward returned its output sharing memory with its argument dout" in message
    assert "allow_aliases=True" in message and raised.value.function == "backward"
    summary = gradcheck.check_backward(
        lambda x: 1.0 * x,
        identity_backward_returning_dout,
        signature="(n)->(n)",
        allow_aliases=True,
        max_examples=FEW,
    )
    assert summary.passed


def test_a_forward_that_returns_a_view_of_its_input_is_refused_unless_allowed():
    def flatten_backward(dout, x):
        return dout.copy()

    with pytest.raises(AliasedOutputError, match="forward returned its output sharing memory"):
        gradcheck.check_backward(flatten_forward, flatten_backward, signature="(n,i)->(n,i)")
    assert gradcheck.check_backward(
        flatten_forward,
        flatten_backward,
        signature="(n,i)->(n,i)",
        allow_aliases=True,
        max_examples=FEW,
    ).passed


def bias_gradient_of_the_first_row(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout[0]  # a view of dout, and wrong for N > 1


def test_a_wrong_gradient_is_reported_before_an_alias_and_the_snippet_keeps_the_options():
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            affine_forward,
            bias_gradient_of_the_first_row,
            signature=AFFINE,
            kinks="subgradient",
        )
    assert raised.value.case.sizes["n"] == 2  # N = 1 hides the bug (and only aliases)
    snippet = raised.value.reproduction
    assert "kinks='subgradient'," in snippet and "allow_aliases" not in snippet
    with pytest.raises(GradientMismatch) as allowed:
        gradcheck.check_backward(
            affine_forward, bias_gradient_of_the_first_row, signature=AFFINE, allow_aliases=True
        )
    assert "allow_aliases=True," in allowed.value.reproduction
    with pytest.raises(GradientMismatch):
        exec(allowed.value.reproduction, {})


def test_autograd_runs_when_the_forward_is_written_with_autograd_numpy():
    summary = gradcheck.check_backward(
        tanh_dense_forward, tanh_dense_backward, signature=AFFINE, max_examples=FEW
    )
    assert summary.oracles["autograd"] == FEW and "autograd" not in summary.skipped
    assert summary.oracles["finite-differences"] == FEW


def test_autograd_is_skipped_for_a_plain_numpy_forward_and_the_result_says_why():
    def plain_forward(x, w, b):
        return np.dot(x, w) + b  # np.dot cannot see through autograd's boxes

    summary = gradcheck.check_backward(
        plain_forward, affine_backward, signature=AFFINE, max_examples=FEW
    )
    assert "autograd" not in summary.oracles
    assert "not traceable" in summary.skipped["autograd"]
    assert "autograd skipped" in summary.describe()
    with pytest.raises(UsageError, match="autograd=True"):
        gradcheck.check_backward(
            plain_forward, affine_backward, signature=AFFINE, autograd=True, max_examples=FEW
        )


def test_a_bug_is_found_without_autograd_by_finite_differences():
    def plain_forward(x, w, b):
        return np.dot(x, w) + b

    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(plain_forward, affine_backward_sign, signature=AFFINE)
    assert {c.oracle for c in raised.value.result.failures()} >= {"finite-differences"}
    assert "autograd skipped" in str(raised.value)


def test_structure_of_an_affine_layer_is_partitioned_along_the_unit_axis():
    summary = gradcheck.check_backward(
        affine_forward, affine_backward, signature=AFFINE, max_examples=FEW
    )
    assert summary.structure == {"w": "partitioned along axis 1", "b": "partitioned along axis 0"}
    assert summary.compact_identity == {"w": "holds", "b": "holds"}
    assert summary.oracles["dense"] > 0  # δ ⊙ B from per-unit blocks, held against dW and db


def test_structure_reports_a_scalar_and_a_normalised_weight_as_shared():
    scaled = gradcheck.check_backward(
        scaled_forward, scaled_backward, signature="(n,i),(i,j),()->(n,j)", max_examples=FEW
    )
    assert scaled.structure == {"w": "partitioned along axis 1", "s": "shared"}
    assert "s" not in scaled.compact_identity
    softmax = gradcheck.check_backward(
        softmax_dense_forward,
        softmax_dense_backward,
        signature="(n,i),(i,j)->(n,j)",
        max_examples=FEW,
    )
    assert softmax.structure == {"w": "shared"}


def test_bounds_keep_a_log_layer_in_its_domain():
    summary = gradcheck.check_backward(
        log_forward, log_backward, signature="(n)->(n)", bounds=[(0.0, np.inf)], max_examples=FEW
    )
    assert summary.passed
    with pytest.raises(NonFiniteOutputError, match="pass bounds="):
        gradcheck.check_backward(log_forward, log_backward, signature="(n)->(n)")


def test_a_finite_interval_bounds_every_drawn_value():
    seen = []

    def recording_forward(x):
        seen.append(x.copy())
        return np.arcsin(x)

    def arcsin_backward(dout, x):
        return dout / np.sqrt(1.0 - x * x)

    gradcheck.check_backward(
        recording_forward,
        arcsin_backward,
        signature="(n)->(n)",
        bounds=[(-1.0, 1.0)],
        max_examples=FEW,
    )
    assert seen and all(np.all((x > -1.0) & (x < 1.0)) for x in seen)


def test_a_draw_at_a_kink_is_redrawn_and_the_subgradient_check_accepts_it():
    redrawn = gradcheck.check_backward(
        shifted_relu_forward, shifted_relu_backward, signature="(n)->(n)", max_examples=FEW
    )
    assert redrawn.passed and redrawn.rejected > 0
    at_kinks = gradcheck.check_backward(
        shifted_relu_forward,
        shifted_relu_backward,
        signature="(n)->(n)",
        max_examples=FEW,
        kinks="subgradient",
    )
    assert at_kinks.passed and at_kinks.rejected == 0


def test_without_a_running_bound_the_fallback_model_is_used_and_said():
    summary = gradcheck.check_backward(
        affine_forward,
        untracked_affine_backward,
        signature=AFFINE,
        dtypes=("float64", "float32"),
        max_examples=FEW,
    )
    assert summary.passed
    assert list(summary.error_models["backward"]) == [
        "fallback model: the backward it met untracked events"
    ]
    with pytest.raises(GradientMismatch, match="fallback model"):
        gradcheck.check_backward(affine_forward, untracked_affine_backward_sign, signature=AFFINE)


# ---- cached, object and unit-Jacobian styles -----------------------------------------------------


def affine_forward_cached(x, w, b):
    return x @ w + b, (x, w)


def affine_backward_cached(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def tanh_forward_cached(x, w):
    y = np.tanh(x @ w)
    return y, (x, w, y)


def tanh_backward_cached_without_slope(dout, cache):
    x, w, _ = cache
    da = dout  # forgets tanh' = 1 - y²
    return da @ w.T, x.T @ da


def test_cached_style_passes_and_a_planted_bug_fails_with_a_shrunk_case():
    summary = gradcheck.check_backward_cached(
        affine_forward_cached, affine_backward_cached, signature=AFFINE, max_examples=FEW
    )
    assert summary.passed and summary.style == "cached"
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward_cached(
            tanh_forward_cached, tanh_backward_cached_without_slope, signature="(n,i),(i,j)->(n,j)"
        )
    assert raised.value.case.sizes == {"n": 1, "i": 1, "j": 1}
    assert all(np.all(a == 1.0) for a in raised.value.case.arguments)
    assert {c.target for c in raised.value.result.failures()} == {"x", "w"}
    assert "check_backward_cached(" in raised.value.reproduction


def test_a_cached_forward_that_returns_no_cache_is_told_so():
    with pytest.raises(UserOutputError, match=r"returns \(out, cache\)"):
        gradcheck.check_backward_cached(affine_forward, affine_backward_cached, signature=AFFINE)


class Affine:
    """A layer object that accumulates its gradients, as many frameworks do."""

    def __init__(self):
        self.W = np.ones((3, 2))
        self.b = np.zeros(2)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW += self.x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


class AffineMeanBias(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = self.db / self.x.shape[0]
        return dx


class TanhDense:
    """Parameters and gradients in dictionaries, CS231n's model style."""

    def __init__(self):
        self.params = {"W": np.ones((2, 2))}
        self.grads = {}

    def forward(self, x):
        self.x, self.y = x, anp.tanh(x @ self.params["W"])
        return self.y

    def backward(self, dout):
        da = dout * (1.0 - self.y**2)
        self.grads["W"] = self.x.T @ da
        return da @ self.params["W"].T


def test_object_style_resets_accumulated_gradients_and_passes():
    instance = Affine()  # one object for every call: accumulation must be reset
    summary = gradcheck.check_layer_object(
        instance, parameters=["W", "b"], signature=AFFINE, max_examples=FEW
    )
    assert summary.passed and summary.style == "object"
    assert summary.structure == {"W": "partitioned along axis 1", "b": "partitioned along axis 0"}
    nested = gradcheck.check_layer_object(
        TanhDense,
        parameters=["params.W"],
        signature="(n,i),(i,j)->(n,j)",
        max_examples=FEW,
        dtypes=("float64", "float32"),
    )
    assert nested.passed and nested.oracles.get("autograd") == FEW


def test_object_style_planted_bug_fails_with_a_shrunk_case():
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_layer_object(AffineMeanBias, parameters=["W", "b"], signature=AFFINE)
    assert raised.value.case.sizes == {"n": 2, "i": 1, "j": 1}
    assert "the gradient of b" in str(raised.value)
    assert "check_layer_object(" in raised.value.reproduction


def test_object_style_says_where_a_gradient_is_missing():
    with pytest.raises(UserOutputError, match="gradients="):
        gradcheck.check_layer_object(
            Affine, parameters=["W", "b"], gradients={"W": "grad_W"}, signature=AFFINE
        )
    with pytest.raises(UsageError, match="list x first"):
        gradcheck.check_layer_object(Affine, parameters=["W"], signature=AFFINE)


def unit_forward(z, theta):  # f_j = tanh(wʲ·z + b_j), θʲ = (wʲ, b_j)
    return anp.tanh(anp.dot(z, theta[:, :-1].T) + theta[:, -1])


def unit_jacobian(z, theta):
    slope = 1.0 - np.tanh(z @ theta[:, :-1].T + theta[:, -1]) ** 2  # (N, J)
    inputs = np.concatenate([z, np.ones((z.shape[0], 1), dtype=z.dtype)], axis=1)
    return slope[:, :, None] * inputs[:, None, :]


def unit_jacobian_without_slope(z, theta):
    inputs = np.concatenate([z, np.ones((z.shape[0], 1), dtype=z.dtype)], axis=1)
    return np.ones((z.shape[0], theta.shape[0], 1), dtype=z.dtype) * inputs[:, None, :]


def input_jacobian(z, theta):
    slope = 1.0 - np.tanh(z @ theta[:, :-1].T + theta[:, -1]) ** 2
    return slope[:, :, None] * theta[None, :, :-1]


def softmax_units(z, theta):
    a = anp.dot(z, theta.T)
    e = anp.exp(a - anp.max(a, axis=1, keepdims=True))
    return e / anp.sum(e, axis=1, keepdims=True)


def softmax_diagonal_blocks(z, theta):
    p = softmax_units(z, theta)
    return (p * (1.0 - p))[:, :, None] * z[:, None, :]


def test_unit_jacobian_style_checks_b_against_every_oracle_and_the_dense_product():
    summary = gradcheck.check_unit_jacobian(
        unit_forward,
        unit_jacobian,
        input_jacobian=input_jacobian,
        parameters_per_unit=lambda inputs: inputs + 1,
        max_examples=FEW,
    )
    assert summary.passed and summary.style == "unit-jacobian"
    assert set(summary.oracles) == {"autograd", "finite-differences", "dense"}
    assert summary.structure == {"theta": "partitioned along axis 0"}


def test_unit_jacobian_style_planted_bug_fails_with_a_shrunk_case():
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_unit_jacobian(
            unit_forward, unit_jacobian_without_slope, parameters_per_unit=lambda i: i + 1
        )
    assert raised.value.case.sizes == {"n": 1, "i": 1, "j": 1, "p": 2}
    assert {c.target for c in raised.value.result.failures()} == {"theta"}


def test_unit_jacobian_style_refuses_a_coupled_layer():
    with pytest.raises(CoupledLayerError, match="compact form"):
        gradcheck.check_unit_jacobian(
            softmax_units, softmax_diagonal_blocks, signature="(n,i),(j,i)->(n,j)"
        )


# ---- user code that misbehaves ------------------------------------------------------------------


def test_a_nondeterministic_forward_is_reported_as_such():
    rng = np.random.default_rng()

    def dropout_forward(x):
        return x * (rng.random(x.shape) < 0.5) * 2.0

    with pytest.raises(NondeterministicError, match="deterministic"):
        gradcheck.check_backward(dropout_forward, lambda dout, x: dout, signature="(n)->(n)")


def test_a_mismatch_is_reported_only_after_more_calls_of_the_forward_agree():
    # A dropout forward can agree with itself on the three calls every example makes (one
    # in four on one output) and then fool finite differences: before a mismatch is
    # reported, CONFIRMING_CALLS more calls must agree too.
    from gradcheck.user.calls import CONFIRMING_CALLS, confirm_deterministic
    from gradcheck.user.signature import parse_signature
    from gradcheck.user.types import UserCase, UserLayer

    calls = []

    def forward(x):
        calls.append(1)
        return x * (1.0 + (len(calls) > 5))  # the same for five calls, then not

    layer = UserLayer(
        "drifting", "functional", forward, lambda dout, x: dout, parse_signature("(n)->(n)"),
        ("x",), (0,), (), (None,),
    )  # fmt: skip
    case = UserCase({"n": 2}, (np.ones(2),), np.ones(2), ("x",))
    confirm_deterministic(replace(layer, forward=lambda x: 2.0 * x), case)  # agrees: silent
    with pytest.raises(NondeterministicError, match="different outputs"):
        confirm_deterministic(layer, case)
    assert 5 < len(calls) <= CONFIRMING_CALLS + 1


def test_functions_that_change_their_inputs_are_reported():
    def doubling_forward(x):
        x *= 2.0
        return x

    with pytest.raises(InputMutationError, match="changed its argument x"):
        gradcheck.check_backward(doubling_forward, lambda dout, x: 2.0 * dout, signature="(n)->(n)")

    def scaling_backward(dout, x):
        dout *= 2.0
        return dout

    with pytest.raises(InputMutationError, match="backward changed its argument dout"):
        gradcheck.check_backward(lambda x: 2.0 * x, scaling_backward, signature="(n)->(n)")


@pytest.mark.parametrize(
    ("backward", "dtypes", "words"),
    [
        (
            lambda dout, x, w: (dout @ w.T,),
            ("float64",),
            "returned 1 gradient; expected 2 (dx, dw)",
        ),
        (
            lambda dout, x, w: (dout @ w.T, (x.T @ dout).T),
            ("float64",),
            "gradient of w (output 1) with shape",
        ),
        (
            lambda dout, x, w: (dout @ w.T, np.asarray(x.T @ dout, np.float64)),
            ("float32",),
            "w is float32",
        ),
        (
            lambda dout, x, w: (dout @ w.T, (x.T @ dout).tolist()),
            ("float64",),
            "returned a list as the gradient of w",
        ),
        (lambda dout, x, w: dout @ w.T, ("float64",), "expected a tuple (dx, dw)"),
    ],
)
def test_bad_backward_outputs_raise_a_user_output_error_naming_the_argument(
    backward, dtypes, words
):
    with pytest.raises(UserOutputError) as raised:
        gradcheck.check_backward(
            lambda x, w: x @ w, backward, signature="(n,i),(i,j)->(n,j)", dtypes=dtypes
        )
    assert words in str(raised.value)
    assert "sizes" in str(raised.value)  # the case that caused it
    assert isinstance(raised.value, GradcheckError)


def test_a_forward_of_the_wrong_shape_is_told_what_the_signature_promises():
    with pytest.raises(
        UserOutputError, match=r"shape \(1, 1, 1\); the signature .* promises \(1, 1\)"
    ):
        gradcheck.check_backward(
            lambda x, w: (x @ w)[:, :, None], lambda d, x, w: (d, d), signature="(n,i),(i,j)->(n,j)"
        )


def test_an_exception_in_user_code_is_reported_with_its_traceback_and_case():
    def broken_backward(dout, x):
        raise ValueError("the cache is empty")

    with pytest.raises(UserCodeError) as raised:
        gradcheck.check_backward(lambda x: 2.0 * x, broken_backward, signature="(n)->(n)")
    message = str(raised.value)
    assert "backward raised ValueError: the cache is empty" in message
    assert "in broken_backward" in message and "sizes n=1" in message
    assert isinstance(raised.value.__cause__, ValueError)


def _hanging_backward(dout, x):
    while True:  # a loop that never ends, hidden from `except Exception` as in real code
        with contextlib.suppress(Exception):
            sum(range(1000))


def test_a_backward_that_never_returns_is_stopped_by_the_timeout_and_named():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(UserTimeoutError) as raised:
        gradcheck.check_backward(
            lambda x: 2.0 * x, _hanging_backward, signature="(n)->(n)", timeout=0.2
        )
    message = str(raised.value)
    assert "longer than timeout=0.2 s" in message and "sizes n=" in message
    assert isinstance(raised.value, GradcheckError)
    assert signal.getsignal(signal.SIGALRM) is before  # the user's own handler is put back


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"bounds": [(0, 1)]}, "one (low, high) pair or None per argument"),
        ({"bounds": [(1, 0), None, None]}, "low < high"),
        ({"wrt": ["v"]}, "not an argument"),
        ({"dtypes": ("float16",)}, "float64 or float32"),
        ({"min_size": 0}, "min_size must be an integer ≥ 1"),
        ({"max_size": 2, "min_size": 3}, "at least min_size"),
        ({"sizes": {"k": 2}}, "does not"),
        ({"kinks": "ignore"}, "'redraw' or 'subgradient'"),
        ({"max_examples": 0}, "positive integer"),
        ({"max_size": 40}, "lower max_size"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"timeout": "5"}, "timeout must be a positive number"),
        ({"timeout": True}, "timeout must be a positive number"),
        ({"allow_aliases": "yes"}, "allow_aliases must be True or False"),
    ],
)
def test_bad_options_raise_a_usage_error_naming_them(options, words):
    with pytest.raises(UsageError) as raised:
        gradcheck.check_backward(affine_forward, affine_backward, signature=AFFINE, **options)
    assert words in str(raised.value)


def test_wrt_checks_only_the_named_arguments_and_sizes_can_be_fixed():
    def only_weights(dout, x, w, b):
        return x.T @ dout, dout.sum(axis=0)

    summary = gradcheck.check_backward(
        affine_forward,
        only_weights,
        signature=AFFINE,
        wrt=["w", "b"],
        sizes={"n": 3},
        max_examples=FEW,
    )
    assert summary.passed
    assert {k.split()[-1] for k in (summary.worst,)} <= {"∂E/∂w", "∂E/∂b"}


def test_collect_gathers_every_summary_passed_or_failed():
    with collect() as checks:
        gradcheck.check_backward(affine_forward, affine_backward, signature=AFFINE, max_examples=5)
        with pytest.raises(GradientMismatch):
            gradcheck.check_backward(affine_forward, affine_backward_sign, signature=AFFINE)
    assert [c.outcome for c in checks] == ["passed", "failed"]
    assert checks[1].failure is not None and checks[1].failure.verdict == "mismatch"
    assert checks[1].failure.worst_entries[0].target == "w"


# ---- precision, large arguments, losses ----------------------------------------------------------


def leaky_relu_forward(x):
    return np.where(x > 0, x, 0.1 * x)


def leaky_relu_backward(dout, x):
    return dout * np.where(x > 0, 1.0, 0.1).astype(x.dtype)  # 0.1 rounded in a plain array


def leaky_relu_backward_wrong_slope(dout, x):
    return dout * np.where(x > 0, 1.0, 0.2).astype(x.dtype)


def test_a_float32_constant_rounded_outside_the_error_model_is_no_false_alarm():
    summary = gradcheck.check_backward(
        leaky_relu_forward,
        leaky_relu_backward,
        signature="(n,d)->(n,d)",
        dtypes=("float32",),
        max_examples=200,
    )
    assert summary.passed and summary.worst_ratio <= 1.0
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            leaky_relu_forward,
            leaky_relu_backward_wrong_slope,
            signature="(n,d)->(n,d)",
            dtypes=("float32",),
        )
    case = raised.value.case
    assert case.sizes["d"] == 1 and case.sizes["n"] <= 2  # one negative entry suffices
    assert np.any(case.arguments[0] < 0)  # the negative side, where the slope is


def test_large_arguments_are_probed_along_random_directions():
    sizes = {"n": (9, 9), "i": (8, 8)}  # x has 72 entries: more than entry by entry allows
    summary = gradcheck.check_backward(
        tanh_dense_forward, tanh_dense_backward, signature=AFFINE, sizes=sizes, max_examples=10
    )
    assert summary.passed
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            affine_forward,
            affine_backward_dx_sign,
            signature=AFFINE,
            sizes=sizes,
            max_examples=10,
            autograd=False,
        )
    (failure,) = raised.value.result.failures()
    assert failure.target == "x" and "probes" in failure.method and "probe" in failure.worst_entry


def softmax_cross_entropy(scores):
    """Mean cross-entropy of row-wise softmax against class n mod C: a scalar loss."""
    rows, classes = scores.shape
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(rows), np.arange(rows) % classes].sum() / rows


def softmax_cross_entropy_backward(dout, scores):
    rows, classes = scores.shape
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(rows), np.arange(rows) % classes] -= 1.0
    return dout * p / rows


def test_a_scalar_loss_layer_is_checked_through_its_gradient():
    summary = gradcheck.check_backward(
        softmax_cross_entropy,
        softmax_cross_entropy_backward,
        signature="(n,c)->()",
        dtypes=("float64", "float32"),
        max_examples=FEW,
    )
    assert summary.passed and summary.error_models["backward"] == {"running": FEW}


def test_a_given_example_at_a_kink_is_redrawn_or_checked_as_a_subgradient():
    def relu_dense_forward(x, w, b):
        return np.maximum(0.0, x @ w + b)

    def relu_dense_backward(dout, x, w, b):
        da = dout * (x @ w + b > 0)
        return da @ w.T, x.T @ da, da.sum(axis=0)

    at_zero = ((np.ones((1, 1)), np.ones((1, 1)), -np.ones(1)), np.ones((1, 1)))  # 1·1 - 1 = 0
    skipped = gradcheck.check_backward(
        relu_dense_forward, relu_dense_backward, signature=AFFINE, example=at_zero
    )
    assert skipped.rejected == 1 and skipped.examples == 0
    assert "one-sided differences of E disagree" in skipped.message
    checked = gradcheck.check_backward(
        relu_dense_forward,
        relu_dense_backward,
        signature=AFFINE,
        example=at_zero,
        kinks="subgradient",
    )
    assert checked.examples == 1 and checked.passed
    assert "autograd" in checked.skipped


@primitive
def cube(x):
    return x**3


defvjp(cube, lambda ans, x: lambda g: g * 2.0 * x * x)  # a wrong rule: 2x² instead of 3x²


def test_autograd_that_disagrees_with_finite_differences_is_no_reference():
    # The small table's values: at a tiny x (the domain's tiny regime) the differences
    # cannot judge (gradcheck.user.finite.blind_below_step), and autograd's 2x² and the
    # true 3x² both underflow to 0 there, so autograd is right where nothing can test it.
    token = VALUE_DRAWS.set("table")
    try:
        summary = gradcheck.check_backward(
            cube, lambda dout, x: dout * 3.0 * x * x, signature="(n)->(n)", max_examples=FEW
        )
    finally:
        VALUE_DRAWS.reset(token)
    assert summary.passed and "autograd" not in summary.oracles
    assert "disagrees with the finite differences" in summary.skipped["autograd"]
