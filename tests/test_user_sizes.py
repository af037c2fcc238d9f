"""Sizes as expressions, constraints and typed inputs: what parses and what it means,
what is refused with which words (before any user code runs), and drawing by
construction: every drawn case meets every constraint, no draw is ever rejected, and a
failure shrinks to the smallest sizes the constraints allow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import gradcheck
from gradcheck.core.tolerance import Tracked, track
from gradcheck.errors import GradientMismatch, SignatureError, UsageError
from gradcheck.user.draw import decode, integers, make_plan
from gradcheck.user.expressions import Expression, evaluate, parse_constraint
from gradcheck.user.options import constraints_of
from gradcheck.user.outputs import OutputLayout
from gradcheck.user.signature import parse_signature
from gradcheck.user.types import UserLayer

VALID = "(n,c,h,w),(k,c,p,q),(k)->(n,k,h-p+1,w-q+1)"
STRIDED = "(n,c,h,w),(k,c,3,3),(k)->(n,k,(h-3)//2+1,(w-3)//2+1)"

# ---- parsing -----------------------------------------------------------------------------------


def test_output_sizes_are_integer_arithmetic_on_the_names():
    signature = parse_signature(VALID)
    assert signature.names == ("n", "c", "h", "w", "k", "p", "q")
    (output,) = signature.outputs
    assert output[:2] == ("n", "k") and isinstance(output[2], Expression)
    assert str(output[2]) == "h-p+1"
    sizes = {"n": 2, "c": 3, "h": 5, "w": 4, "k": 1, "p": 3, "q": 2}
    assert signature.output_shape(sizes) == (2, 1, 3, 3)
    strided = parse_signature(STRIDED)
    assert strided.inputs[1] == ("k", "c", 3, 3)
    shapes = [strided.output_shape({"n": 1, "k": 1, "h": h, "w": 3}) for h in (3, 4, 5, 6, 7)]
    assert [s[2] for s in shapes] == [1, 1, 2, 2, 3]


@pytest.mark.parametrize(
    ("text", "sizes", "shape"),
    [
        ("(n,c,h,w)->(n,c*h*w)", {"n": 2, "c": 3, "h": 4, "w": 5}, (2, 60)),
        ("(n,c,h,w)->(n,c,h//2,w//2)", {"n": 1, "c": 1, "h": 5, "w": 4}, (1, 1, 2, 2)),
        ("(n,h)->(n,(h-3)//2+1)", {"n": 1, "h": 2}, (1, 0)),  # floored: (-1)//2 = -1
        ("(n,h)->(n,h%3,-(-h//2))", {"n": 1, "h": 7}, (1, 1, 4)),  # ceil(h/2) = -(-h//2)
        ("(n,h)->(n, 2 * ( h + 1 ) - 1)", {"n": 1, "h": 2}, (1, 5)),
        ("(n,2*3)->(n,6)", {"n": 1}, (1, 6)),  # constants fold
    ],
)
def test_expressions_follow_pythons_integer_arithmetic(text, sizes, shape):
    assert parse_signature(text).output_shape(sizes) == shape


def test_inputs_may_be_computed_typed_and_several_outputs_share_a_unit_axis():
    lstm = parse_signature("(n,i),(n,h),(n,h),(i,4*h),(h,4*h),(4*h)->(n,h),(n,h)")
    assert lstm.input_shapes({"n": 2, "i": 3, "h": 5})[3] == (3, 20)
    assert len(lstm.outputs) == 2 and lstm.unit_name == "h"
    assert parse_signature("(n,i)->(n,i),(n)").unit_name is None  # last axes differ
    labels = parse_signature("(n,j),(n)int[0,j)->()")
    assert [t.kind for t in labels.types] == ["float", "int"] and labels.float_inputs == (0,)
    assert labels.types[1].limits({"n": 2, "j": 3}) == (0, 2)
    closed = parse_signature("(n)int[-1, 1],(n,t) bool,(n) float->(n)")
    assert [str(t) for t in closed.types] == ["int[-1,1]", "bool", "float"]
    assert closed.types[0].limits({}) == (-1, 1)
    bounded = parse_signature("()int[1,(j+1)//2),(j)->()")
    assert bounded.types[0].limits({"j": 5}) == (1, 2)


def test_a_constraint_is_one_comparison_per_link_of_its_chain():
    first, second = parse_constraint("1 <= p <= h", "c")
    assert (first.left, first.op, first.right) == (1, "<=", "p")
    assert (second.left, second.op, second.right) == ("p", "<=", "h")
    (parity,) = parse_constraint("h % 2 == 0", "c")
    columns = {"h": np.arange(1, 7)}
    assert parity.holds(columns).tolist() == [False, True, False, True, False, True]
    assert evaluate(parse_signature("(h)->(h//2)").outputs[0][0], columns).tolist() == [
        0,
        1,
        1,
        2,
        2,
        3,
    ]


def test_text_is_parsed_never_evaluated():
    with pytest.raises(SignatureError, match="cannot hold"):
        parse_signature("(n,__import__('os').getpid())->(n)")
    with pytest.raises(UsageError, match="cannot hold"):
        parse_constraint("h == (lambda: 1)()", "the constraint")


# ---- errors, each naming the part at fault -----------------------------------------------------


def never_called(*arguments):
    raise AssertionError("a signature that cannot hold must be refused before user code runs")


@pytest.mark.parametrize(
    ("signature", "options", "words"),
    [
        (
            "(n,h)->(n,h-8+1)",
            {},
            "the size 'h-8+1' (output 1, axis 1) of '(n,h)->(n,h-8+1)' is ≤ 0 for every "
            "drawable size (h in 1..4;",
        ),
        ("(n,h)->(n,h//0)", {}, "the dimension 'h//0' in output group 1"),
        ("(n,h)->(n,h//(1-1))", {}, "divides by zero"),
        (
            "(n,h),(p)->(n,h//(p-1))",
            {"sizes": {"p": 1}},
            "the divisor 'p-1' in the size 'h//(p-1)' (output 1, axis 1)",
        ),
        (
            "(n,h)->(n,h-q)",
            {},
            "the size 'h-q' in the output of '(n,h)->(n,h-q)' uses the name 'q'",
        ),
        ("(n)int[0,j)->()", {}, "the range int[0,j) of input 1"),
        ("(n,h)->(n,h)", {"constraints": ("h > 4",)}, "the constraint 'h > 4' holds for no"),
        ("(n,h)->(n,h)", {"constraints": "h > 4"}, "the constraint 'h > 4' holds for no"),
        ("(n,h)->(n,h)", {"constraints": ("h > r",)}, "the constraint 'h > r' names 'r'"),
        ("(n,h)->(n,h)", {"constraints": ("h",)}, "the constraint 'h' compares nothing"),
        ("(n,h)->(n,h)", {"constraints": ("h >",)}, "the constraint 'h >' ends too early"),
        (
            "(n,h),(p)->(n,h-p+1)",
            {"constraints": ("p > h",)},
            "no drawable sizes meet all of: the size 'h-p+1' (output 1, axis 1) of "
            "'(n,h),(p)->(n,h-p+1)'; the constraint 'p > h'",
        ),
        ("(n,j),(n)int[j,j)->()", {}, "the range int[j,j) of input 2 of"),
        ("(n,h)->(n,h/2)", {}, "integer division is //"),
        ("(n,h)->(n,h+)", {}, "ends too early"),
        ("(n,h)->(n,(h)", {}, "unclosed"),
        ("(n)int->()", {}, "has the type 'int'"),
        ("(n)int[0]->()", {}, "needs two bounds"),
        ("(n)->(n)bool", {}, "outputs are float arrays"),
        ("(n,h)->(n,h)", {"constraints": 3}, "constraints takes a sequence of strings"),
        (
            "(a),(b),(c),(d),(e)->(a+b+c+d+e)",
            {"max_size": 30},
            "the sizes a, b, c, d, e are linked by constraints and together allow more than",
        ),
    ],
)
def test_a_signature_that_cannot_hold_is_refused_naming_the_part_at_fault(
    signature, options, words
):
    with pytest.raises(UsageError) as raised:
        gradcheck.check_backward(never_called, never_called, signature=signature, **options)
    assert words in str(raised.value)


def test_only_float_arguments_are_differentiated_or_bounded():
    def forward(z, labels):
        return z[np.arange(len(labels)), labels]

    with pytest.raises(UsageError, match=r"wrt names 'labels', which the signature .* declares"):
        gradcheck.check_backward(forward, never_called, signature="(n,j),(n)int[0,j)->(n)", wrt=[1])
    with pytest.raises(UsageError, match="bounds for labels must be None"):
        gradcheck.check_backward(
            forward,
            never_called,
            signature="(n,j),(n)int[0,j)->(n)",
            bounds=[None, (0.0, 1.0)],
        )
    with pytest.raises(UsageError, match="no float argument: nothing to differentiate"):
        gradcheck.check_backward(forward, never_called, signature="(n)int[0,3),(n)bool->(n)")


# ---- drawing by construction -------------------------------------------------------------------


def _plan(signature, constraints=(), **options):
    parsed = parse_signature(signature)
    names = tuple(f"arg{k}" for k in range(len(parsed.inputs)))
    layer = UserLayer(
        "layer", "functional", never_called, never_called, parsed, names,
        parsed.float_inputs, (), (None,) * len(names),
    )  # fmt: skip
    options = {"min_size": 1, "max_size": 4, "sizes": None, **options}
    plan = make_plan(
        layer,
        ("float64", "float32"),
        options["min_size"],
        options["max_size"],
        options["sizes"],
        None,
        constraints_of(constraints, parsed),
    )
    return layer, plan


@pytest.mark.parametrize(
    ("signature", "constraints", "sizes"),
    [
        (VALID, ("h >= 2*p", "w % 2 == 0"), None),
        (STRIDED, (), {"h": (1, 9), "w": (1, 9)}),
        ("(n,c,h,w)->(n,c,h//2,w//2)", ("h % 2 == 0", "1 <= w - h <= 2"), None),
        ("(n,j),(n)int[0,j),(n,j)bool->()", ("j >= 3",), None),
        ("(a),(b),(c)->(a+b+c)", ("a + b + c == 9", "a != b"), {"a": (1, 8), "b": (1, 8)}),
    ],
)
def test_every_drawn_case_meets_every_constraint(signature, constraints, sizes):
    layer, plan = _plan(signature, constraints, sizes=sizes)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(300):
        case = decode(layer, plan, rng.bytes(plan.length))
        for requirement in plan.requirements:
            assert requirement.comparison.holds(case.sizes), (requirement.where, case.sizes)
        shapes = layer.signature.input_shapes(case.sizes)
        assert [a.shape for a in case.arguments] == shapes
        for argument, kind in zip(case.arguments, layer.signature.types, strict=True):
            if kind.kind == "int":
                low, high = kind.limits(case.sizes)
                assert argument.dtype == np.int64
                assert argument.size == 0 or low <= argument.min() <= argument.max() <= high
            elif kind.kind == "bool":
                assert argument.dtype == np.bool_
            else:
                assert argument.dtype == case.dtype
        seen.add(tuple(case.sizes.values()))
    assert len(seen) > 3  # the draws explore the feasible sizes


@pytest.mark.parametrize(
    ("signature", "constraints", "sizes", "smallest"),
    [
        (VALID, (), None, dict(n=1, c=1, h=1, w=1, k=1, p=1, q=1)),
        (VALID, ("p >= 2",), None, dict(n=1, c=1, h=2, w=1, k=1, p=2, q=1)),
        (STRIDED, (), {"h": (1, 9), "w": (1, 9)}, dict(n=1, c=1, h=3, w=3, k=1)),
        ("(n,c,h,w)->(n,c,h//2,w//2)", (), None, dict(n=1, c=1, h=2, w=2)),
        ("(n,h)->(n,h)", ("h % 3 == 2", "n > h"), None, dict(n=3, h=2)),
        (
            "(a),(b)->(a+b)",
            ("a + b == 31", "a % 7 == 3"),
            {"a": (1, 30), "b": (1, 30)},
            dict(a=3, b=28),
        ),
    ],
)
def test_the_zero_blob_is_the_smallest_feasible_case(signature, constraints, sizes, smallest):
    layer, plan = _plan(signature, constraints, sizes=sizes)
    case = decode(layer, plan, bytes(plan.length))
    assert dict(case.sizes) == smallest == plan.space.smallest()
    for argument, kind in zip(case.arguments, layer.signature.types, strict=True):
        assert np.all(argument == (1.0 if kind.is_float else 0))


def test_integers_shrink_towards_zero_within_their_range():
    assert integers(np.arange(5), 0, 4).tolist() == [0, 1, 2, 3, 4]
    assert integers(np.arange(3), -1, 1).tolist() == [0, 1, -1]
    assert integers(np.arange(6), -3, 1).tolist() == [0, 1, -1, -2, -3, 0]  # modulo the count
    assert integers(np.arange(4), -1, 2).tolist() == [0, 1, -1, 2]
    assert integers(np.arange(3), 2, 5).tolist() == [2, 3, 4]
    assert integers(np.arange(3), -5, -2).tolist() == [-2, -3, -4]


def split_forward(a, b):
    return np.concatenate([2.0 * a, b])


def split_backward(dout, a, b):
    return 2.0 * dout[: len(a)], dout[len(a) :].copy()


def split_backward_wrong(dout, a, b):
    return 2.0 * dout[: len(a)], -dout[len(a) :]


RARE = {
    "signature": "(a),(b)->(a+b)",
    "constraints": ("a + b == 31", "a % 7 == 3"),  # 4 of the 900 pairs of sizes
    "sizes": {"a": (1, 30), "b": (1, 30)},
}


def test_hypothesis_never_gives_up_on_rare_sizes_because_nothing_is_filtered():
    seen = []

    def forward(a, b):
        seen.append((len(a), len(b)))
        return split_forward(a, b)

    strict = settings(max_examples=12, suppress_health_check=[], derandomize=True, database=None)
    summary = gradcheck.check_backward(forward, split_backward, settings=strict, **RARE)
    assert summary.passed and summary.examples == 12 and summary.rejected == 0
    assert set(seen) <= {(3, 28), (10, 21), (17, 14), (24, 7)} and len(set(seen)) > 1


def test_a_failure_shrinks_to_the_smallest_sizes_the_constraints_allow():
    shrink = settings(derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(split_forward, split_backward_wrong, settings=shrink, **RARE)
    assert dict(raised.value.case.sizes) == {"a": 3, "b": 28}
    assert "constraints=('a + b == 31', 'a % 7 == 3')," in raised.value.reproduction
    with pytest.raises(GradientMismatch):
        exec(raised.value.reproduction, {})


# ---- several outputs joined -------------------------------------------------------------------


def test_outputs_join_along_their_unit_axis_or_flat_and_split_back():
    h, c = np.arange(6.0).reshape(2, 3), np.arange(6.0, 12.0).reshape(2, 3)
    by_units = OutputLayout(((2, 3), (2, 3)), True)
    joined = by_units.join([h, c])
    assert joined.shape == by_units.joined_shape == (4, 3)
    assert [a.tolist() for a in by_units.split(joined)] == [h.tolist(), c.tolist()]
    assert by_units.locate(7) == (1, (0, 1))
    flat = OutputLayout(((2, 3), ()), False)
    assert flat.join([h, np.array(5.0)]).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    tracked = by_units.join([track(h), track(c)])  # the error bounds travel along
    assert isinstance(tracked, Tracked) and tracked.shape == (4, 3)
    single = OutputLayout(((2, 3),), True)
    assert single.join([h]) is h and single.split(h)[0] is h
