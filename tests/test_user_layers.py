"""The layers of README.md's "Signatures of common layers", written in plain NumPy
(tests/user_layers.py): each correct one passes with the README's signature and options,
each deliberately wrong one is caught and shrinks to the smallest sizes the constraints
allow; the README's code blocks of that section run as they are; several outputs and
integer inputs work in every style."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import user_layers as layers
from hypothesis import HealthCheck, settings

import gradcheck
from gradcheck.errors import GradientMismatch, UsageError, UserOutputError

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Signatures of common layers"

#: Shrinking is deterministic under these settings, whatever the test profile.
SHRINK = settings(
    derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def _options(cell: str) -> dict:
    """`constraints=("p % 2 == 1",)` -> {"constraints": ("p % 2 == 1",)}."""
    cell = cell.strip().strip("`")
    if not cell:
        return {}
    call = ast.parse(f"f({cell})", mode="eval").body
    assert isinstance(call, ast.Call)
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def readme_table() -> dict[str, tuple[str, dict]]:
    """The README's table: layer -> (signature, options)."""
    rows = {}
    for line in _section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`("):
            rows[cells[0]] = (cells[1].strip("`"), _options(cells[2]))
    return rows


TABLE = readme_table()

#: README row -> (functions in tests/user_layers.py, the sizes the wrong one shrinks to).
LAYERS = {
    # a sign: every size at its smallest
    "dense": ("dense", {"n": 1, "i": 1, "j": 1}),
    # an off-by-one over the kernel rows: shows at the smallest kernel, h - p + 1 ≥ 1
    "convolution, VALID": ("conv_valid", dict(n=1, c=1, h=1, w=1, k=1, p=1, q=1)),
    # kernel rows left out of dw: shows once a padding row meets a tap, p odd skips 2
    "convolution, SAME": ("conv_same", dict(n=1, c=1, h=2, w=1, k=1, p=3, q=1)),
    # a stride forgotten along the rows: shows from two output rows, h = 5; w ≥ 3
    "convolution 3×3, stride 2": ("conv_strided", dict(n=1, c=1, h=5, w=3, k=1)),
    # gradient to each window's first entry: the smallest window, h // 2 ≥ 1
    "max pooling 2×2": ("max_pool", dict(n=1, c=1, h=2, w=2)),
    "mean pooling 2×2": ("mean_pool", dict(n=1, c=1, h=2, w=2)),
    # a transposed reshape: see test_a_wrong_flatten_is_caught_with_two_channels
    "flatten": ("flatten", None),
    # an assignment where a sum belongs: a repeated index, t = 2 (v = 1: every index is 0)
    "embedding": ("embedding", dict(n=1, t=2, v=1, d=1)),
    "RNN cell": ("rnn", None),
    # the path through c dropped: every size at its smallest
    "LSTM cell": ("lstm", dict(n=1, i=1, h=1)),
    # the labels never subtracted: j ≥ 2 by the constraint
    "softmax cross-entropy": ("cross_entropy", dict(n=1, j=2)),
    # the mask ignored: two keys, one of them masked
    "attention with a key mask": ("attention", dict(n=1, s=1, d=1, t=2, e=1)),
}


#: Narrower ranges for sizes the bug does not need, so that the search and its shrinking
#: stay fast (the conv layers evaluate a loop of einsums per kernel tap).
FAST = {
    "convolution, SAME": {"max_size": 3},
    "convolution 3×3, stride 2": {"max_size": 2, "sizes": {"h": (3, 5), "w": (3, 5)}},
    "max pooling 2×2": {"max_size": 3},
    "flatten": {"max_size": 3},
}


def test_the_readme_table_is_the_list_of_layers_checked_here():
    assert set(TABLE) == set(LAYERS)
    assert TABLE["max pooling 2×2"] == ("(n,c,h,w)->(n,c,h//2,w//2)", {})
    assert TABLE["softmax cross-entropy"][1] == {"constraints": ("j >= 2",)}


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_each_correct_layer_passes(row):
    signature, options = TABLE[row]
    stem, _ = LAYERS[row]
    summary = gradcheck.check_backward(
        getattr(layers, f"{stem}_forward"),
        getattr(layers, f"{stem}_backward"),
        signature=signature,
        dtypes=("float64", "float32"),
        max_examples=8,
        **options,
    )
    assert summary.passed and summary.examples >= 8
    assert summary.oracles.get("autograd", 0) > 0  # the forwards are written with autograd


@pytest.mark.parametrize("row", sorted(r for r, (_, shrunk) in LAYERS.items() if shrunk))
def test_each_wrong_layer_is_caught_and_shrinks_to_the_smallest_sizes_allowed(row):
    signature, options = TABLE[row]
    stem, shrunk = LAYERS[row]
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            getattr(layers, f"{stem}_forward"),
            getattr(layers, f"{stem}_backward_wrong"),
            signature=signature,
            settings=SHRINK,
            **{**options, **FAST.get(row, {})},
        )
    assert dict(raised.value.case.sizes) == shrunk


def test_a_wrong_flatten_is_caught_with_two_channels():
    """A reshape in the wrong order permutes dout: it shows only where two different
    values trade places, which needs two channels (c = 1 keeps the order) and a batch of
    one suffices. The shrinker cannot always carry a differing value to a smaller h·w."""
    signature, options = TABLE["flatten"]
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            layers.flatten_forward,
            layers.flatten_backward_wrong,
            signature=signature,
            settings=SHRINK,
            **{**options, **FAST["flatten"]},
        )
    sizes = raised.value.case.sizes
    assert sizes["n"] == 1 and sizes["c"] == 2 and sizes["h"] * sizes["w"] >= 2


def test_the_shrunk_cases_hold_the_simplest_integers_and_masks():
    _, options = TABLE["softmax cross-entropy"]
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(
            layers.cross_entropy_forward,
            layers.cross_entropy_backward_wrong,
            signature=TABLE["softmax cross-entropy"][0],
            settings=SHRINK,
            **options,
        )
    logits, labels = raised.value.case.arguments
    assert labels.dtype == np.int64 and labels.tolist() == [0]  # shrunk towards 0
    assert np.all(logits == 1.0)
    assert "labels = np.array([0], dtype=np.int64)" in raised.value.reproduction
    with pytest.raises(GradientMismatch):
        exec(raised.value.reproduction, {})
    with pytest.raises(GradientMismatch) as masked:
        gradcheck.check_backward(
            layers.attention_forward,
            layers.attention_backward_wrong,
            signature=TABLE["attention with a key mask"][0],
            settings=SHRINK,
        )
    mask = masked.value.case.arguments[3]
    assert mask.dtype == np.bool_ and mask.tolist() == [[False, True]]  # one key hidden


def _code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _section(), flags=re.DOTALL)


def test_the_readme_examples_of_the_section_run():
    blocks = _code_blocks()
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(block, namespace)  # each check raises if its layer is wrong


def test_the_readme_names_the_errors_it_shows():
    section = " ".join(_section().split())
    for signature, options in [
        ("(n,h)->(n,h-8+1)", {}),
        ("(n,h)->(n,h//0)", {}),
        ("(n,h)->(n,h-q)", {}),
        ("(n,h)->(n,h)", {"constraints": ("h > 4",)}),
    ]:
        with pytest.raises(UsageError) as raised:
            gradcheck.check_backward(lambda x: x, lambda d, x: d, signature=signature, **options)
        message = str(raised.value)
        shown = {
            "(n,h)->(n,h-8+1)": message,
            "(n,h)->(n,h//0)": "divides by zero",
            "(n,h)->(n,h-q)": "'q', which no input has",
        }.get(signature, "holds for no drawable size")
        assert shown in message and shown in section


# ---- several outputs and integer inputs in every style ---------------------------------------


def lstm_cached_forward(x, h, c, wx, wh, b):
    h_next, c_next = layers.lstm_forward(x, h, c, wx, wh, b)
    return h_next, c_next, (x, h, c, wx, wh, b)


def lstm_cached_backward(dh, dc, cache):
    return layers.lstm_backward(dh, dc, *cache)


def lstm_cached_backward_wrong(dh, dc, cache):
    return layers.lstm_backward_wrong(dh, dc, *cache)


LSTM = TABLE["LSTM cell"][0]


def test_several_outputs_in_the_cached_style():
    summary = gradcheck.check_backward_cached(
        lstm_cached_forward, lstm_cached_backward, signature=LSTM, max_examples=8
    )
    assert summary.passed
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward_cached(
            lstm_cached_forward, lstm_cached_backward_wrong, signature=LSTM, settings=SHRINK
        )
    assert dict(raised.value.case.sizes) == {"n": 1, "i": 1, "h": 1}
    snippet = raised.value.reproduction
    assert "example=((x, h, c, wx, wh, b), (dout0, dout1))," in snippet
    assert "dout1 = np.array([[1.0]], dtype=np.float64)" in snippet
    with pytest.raises(GradientMismatch):
        exec(snippet, {})


def test_a_cached_forward_with_the_wrong_number_of_items_is_named():
    def forward(x, w):
        return x @ w, (x, w)  # one output and the cache, where two outputs were declared

    with pytest.raises(UserOutputError, match=r"\(2 outputs, then cache\)"):
        gradcheck.check_backward_cached(
            forward, lambda da, db, cache: cache, signature="(n,i),(i,j)->(n,j),(n,j)"
        )


class TwoHeads:
    """A layer object with two outputs: a = x W and tanh(a); backward(da, dt) -> dx."""

    def __init__(self):
        self.W = None

    def forward(self, x):
        self.x = x
        a = x @ self.W
        return a, np.tanh(a)

    def backward(self, da, dt):
        g = da + dt * (1.0 - np.tanh(self.x @ self.W) ** 2)
        self.dW = self.x.T @ g
        return g @ self.W.T


class Embedding:
    """A layer object whose input is integer indices: backward stores dW, returns None."""

    def __init__(self):
        self.W = None

    def forward(self, indices):
        self.indices = indices
        return self.W[indices]

    def backward(self, dout):
        self.dW = np.zeros_like(self.W)
        np.add.at(self.dW, self.indices, dout)


def test_several_outputs_and_integer_inputs_in_the_object_style():
    two = gradcheck.check_layer_object(
        TwoHeads, parameters=["W"], signature="(n,i),(i,j)->(n,j),(n,j)", max_examples=8
    )
    assert two.passed and two.structure == {"W": "partitioned along axis 1"}
    embedding = gradcheck.check_layer_object(
        Embedding, parameters=["W"], signature=TABLE["embedding"][0], max_examples=8
    )
    assert embedding.passed and embedding.oracles["finite-differences"] == 8


def test_the_unit_jacobian_style_refuses_what_it_cannot_check():
    def forward(z, theta):
        return z @ theta.T

    with pytest.raises(UsageError, match="has one output"):
        gradcheck.check_unit_jacobian(forward, forward, signature="(n,i),(j,i)->(n,j),(n,j)")
    with pytest.raises(UsageError, match="two float arrays"):
        gradcheck.check_unit_jacobian(forward, forward, signature="(n,i),(j,i)int[0,2)->(n,j)")


def test_a_forward_returning_the_wrong_outputs_is_named():
    def one(x, w):
        return x @ w

    def wrong_shape(x, w):
        return x @ w, (x @ w)[:, :1]

    def backward(da, db, x, w):
        return da @ w.T, x.T @ da

    signature = "(n,i),(i,j)->(n,j),(n,j)"
    with pytest.raises(UserOutputError, match="declares 2 outputs: return them as a tuple"):
        gradcheck.check_backward(one, backward, signature=signature)
    with pytest.raises(UserOutputError, match="output 1 as an array of shape"):
        gradcheck.check_backward(wrong_shape, backward, signature=signature, sizes={"j": 2})


def test_the_backward_of_a_layer_with_labels_returns_only_the_float_gradients():
    def backward_with_labels(dout, logits, labels):
        return layers.cross_entropy_backward(dout, logits, labels), np.zeros(labels.shape)

    with pytest.raises(UserOutputError) as raised:
        gradcheck.check_backward(
            layers.cross_entropy_forward,
            backward_with_labels,
            signature=TABLE["softmax cross-entropy"][0],
        )
    assert "expected 1 (dlogits), one per differentiated argument; labels (int[0,j)) gets none" in (
        str(raised.value)
    )
    with pytest.raises(UsageError, match="only float arguments are differentiated"):
        gradcheck.check_backward(
            layers.cross_entropy_forward,
            layers.cross_entropy_backward,
            signature=TABLE["softmax cross-entropy"][0],
            wrt=["logits", "labels"],
        )


def test_an_example_with_integers_out_of_range_is_refused():
    logits = np.ones((2, 3))
    with pytest.raises(UsageError, match=r"integers in int\[0,j\), that is 0..2"):
        gradcheck.check_backward(
            layers.cross_entropy_forward,
            layers.cross_entropy_backward,
            signature=TABLE["softmax cross-entropy"][0],
            example=((logits, np.array([0, 3])), np.array(1.0)),
        )
    with pytest.raises(UsageError, match="break the constraint 'j >= 2'"):
        gradcheck.check_backward(
            layers.cross_entropy_forward,
            layers.cross_entropy_backward,
            signature=TABLE["softmax cross-entropy"][0],
            constraints=("j >= 2",),
            example=((np.ones((2, 1)), np.array([0, 0])), np.array(1.0)),
        )
