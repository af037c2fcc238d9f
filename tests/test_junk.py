"""Random junk at the public API: only the documented outcomes come out.

check() answers a bad case with an invalid-input verdict and bad usage with a
GradcheckError; the strategies raise hypothesis's InvalidArgument; the command exits with
a usage code. Nothing else: no traceback from deep inside, no silent pass.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra.numpy import array_shapes, arrays, scalar_dtypes

from gradcheck import Case, GradcheckError, GradientMismatch, Verdict, check, cli
from gradcheck import strategies as gst

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=2)), max_size=4),
    st.lists(st.lists(st.floats(), max_size=3), max_size=3),  # possibly ragged
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    arrays(scalar_dtypes(), array_shapes(min_dims=0, max_dims=3, max_side=3)),
)
names = st.one_of(junk, st.sampled_from(["dense", "tanh", "relu", "maxout", "softmax_dense"]))
arrays_or_junk = st.one_of(
    junk,
    arrays(
        st.sampled_from([np.float32, np.float64]), array_shapes(min_dims=1, max_dims=3, max_side=4)
    ),
)

JUNK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@JUNK
@given(
    layer_type=names, activation=names, z=arrays_or_junk, theta=arrays_or_junk, delta=arrays_or_junk
)
def test_check_answers_junk_with_invalid_input_or_a_gradcheck_error(
    layer_type, activation, z, theta, delta
):
    case = Case(layer_type=layer_type, activation=activation, z=z, theta=theta, delta=delta)
    try:
        result = check(case)
    except GradcheckError:
        return
    assert result.verdict in (
        Verdict.INVALID_INPUT,
        Verdict.PASS,
        Verdict.COUPLED,
        Verdict.NON_DIFFERENTIABLE,
    )
    if result.verdict is Verdict.INVALID_INPUT:
        assert result.message.startswith("invalid input: ")


@JUNK
@given(case=junk, oracles=junk, finite_differences=junk, probes=junk, kinks=junk)
def test_check_options_junk_raises_gradcheck_error(
    case, oracles, finite_differences, probes, kinks
):
    with pytest.raises(GradcheckError):
        check(
            case, oracles=oracles, finite_differences=finite_differences, probes=probes, kinks=kinks
        )


ARGUMENTS = [
    "layer_types",
    "activations",
    "dtypes",
    "coupled",
    "min_inputs",
    "max_inputs",
    "min_units",
    "max_units",
    "min_batch",
    "max_batch",
    "kinks",
]


@JUNK
@given(argument=st.sampled_from(ARGUMENTS), value=junk)
def test_strategies_answer_junk_with_invalid_argument(argument, value):
    try:
        strategy = gst.cases(**{argument: value})
    except InvalidArgument:
        return
    # Accepted values must give a working strategy.
    strategy.validate()


@JUNK
@given(
    argv=st.lists(
        st.one_of(
            st.text(max_size=8),
            st.sampled_from(
                [
                    "run",
                    "list",
                    "report",
                    "--examples",
                    "--seed",
                    "--shard",
                    "--layer-types",
                    "--format",
                    "-x",
                    "--out",
                ]
            ),
        ),
        max_size=4,
    )
)
def test_the_command_answers_junk_with_a_usage_code(argv, tmp_path_factory, capsys):
    if argv[:1] == ["run"]:
        argv = [
            *argv,
            "--out",
            str(tmp_path_factory.mktemp("junk")),
            "--examples",
            "1",
            "--dtypes",
            "",
        ]
    code = cli.main(argv)
    capsys.readouterr()
    assert code in (cli.OK, cli.USAGE_ERROR, cli.NOTHING_CHECKED)


def _affine(x, w, b):
    return x @ w + b


def _affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


USER_OPTIONS = [
    "signature",
    "wrt",
    "bounds",
    "dtypes",
    "min_size",
    "max_size",
    "sizes",
    "max_examples",
    "kinks",
    "autograd",
    "timeout",
    "allow_aliases",
    "name",
    "example",
]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from(USER_OPTIONS), value=junk)
def test_check_backward_answers_junk_options_with_gradcheck_errors(option, value):
    import gradcheck

    options = {"signature": "(n,i),(i,j),(j)->(n,j)", "max_examples": 3, option: value}
    # Documented: usage errors and user-code errors derive from GradcheckError.
    with contextlib.suppress(GradcheckError):
        gradcheck.check_backward(_affine, _affine_backward, **options)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(forward=junk, backward=junk)
def test_check_backward_answers_junk_functions_with_gradcheck_errors(forward, backward):
    import gradcheck

    with pytest.raises(GradcheckError):
        gradcheck.check_backward(forward, backward, signature="(n,i)->(n,i)", max_examples=2)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(result=st.one_of(junk, st.tuples(junk, junk, junk)))
def test_a_backward_returning_junk_is_a_user_code_error(result):
    import gradcheck
    from gradcheck.errors import UserCodeError

    with pytest.raises((UserCodeError, GradientMismatch)):
        gradcheck.check_backward(
            _affine, lambda *a: result, signature="(n,i),(i,j),(j)->(n,j)", max_examples=2
        )
