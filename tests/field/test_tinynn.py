"""tinynn 0.1.1 (PyPI: tinynn) through gradcheck's public API, as a user would check it.

tinynn's layers keep parameters in ``layer.params`` and gradients in ``layer.grads``, and
initialise themselves on their first forward. The adapters below hand them the drawn
parameters (``_ready`` marks a layer initialised) and, where a layer's shapes are not
those of its arguments (RNN and LSTM stack their weights), split the weights into
arguments whose sizes a signature can name. Several layers compute in float32 whatever
they are given (``empty()`` allocates float32 buffers; Conv2D, MaxPool2D, RNN and LSTM
return a float32 dx): they were the false alarms of issue 14. gradcheck now measures the
precision such a forward computes in (`gradcheck.user.noise`) and derives the steps and
bounds of its finite differences from it; the checks pass and say so in their error
model ("as a float32 computation's are"). Outcomes: docs/field.md.
"""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest

import gradcheck

from . import confirm
from .outcomes import caught, failing_comparison, field_settings, no_false_alarm, passes

pytestmark = pytest.mark.field

layers = pytest.importorskip("tinynn.core.layer")
losses = pytest.importorskip("tinynn.core.loss")

DTYPES = ("float64", "float32")


def _ready(layer, **params):
    """A tinynn layer that will not re-initialise its parameters on forward."""
    layer._is_init = True
    if params:
        layer.params = dict(params)
    return layer


def _float64_layers() -> types.ModuleType:
    """tinynn.core.layer with its float32 buffers patched to float64 (what the issue calls
    "patched to float64"): the same source with np.float32 replaced by np.float64."""
    source = inspect.getsource(layers).replace("np.float32", "np.float64")
    module = types.ModuleType("tinynn_layer_float64")
    module.__file__ = layers.__file__
    exec(compile(source, layers.__file__, "exec"), module.__dict__)
    return module


# ---- dense, batch norm, activations: objects, checked with check_layer_object ------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense(dtype):
    passes(
        gradcheck.check_layer_object,
        lambda: _ready(layers.Dense(1)),
        parameters=["params.w", "params.b"],
        signature="(n,i),(i,j),(j)->(n,j)",
        dtypes=(dtype,),
        settings=field_settings(25),
    )


def test_batch_normalization_float64():
    passes(
        gradcheck.check_layer_object,
        lambda: _ready(layers.BatchNormalization()),
        parameters=["params.gamma", "params.beta"],
        signature="(n,j),(j),(j)->(n,j)",
        settings=field_settings(25),
    )


def test_batch_normalization_float32_returns_float64_dx():
    """Bug (numpy ≥ 2): backward computes (1.0 / N) with N = np.prod(...) an np.int64, so
    the factor is an np.float64 scalar and dx of a float32 batch comes back float64."""
    with pytest.raises(gradcheck.UserCodeError, match="in float64, but x is float32"):
        gradcheck.check_layer_object(
            lambda: _ready(layers.BatchNormalization()),
            parameters=["params.gamma", "params.beta"],
            signature="(n,j),(j),(j)->(n,j)",
            dtypes=("float32",),
            settings=field_settings(5),
        )
    # independent confirmation: a direct call
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer = _ready(
        layers.BatchNormalization(), gamma=np.ones(2, np.float32), beta=np.zeros(2, np.float32)
    )
    layer.forward(x)
    assert layer.backward(np.ones_like(x)).dtype == np.float64


SMOOTH_ACTIVATIONS = ("Sigmoid", "Softplus", "Tanh", "GELU")
KINKED_ACTIVATIONS = ("ReLU", "LeakyReLU")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SMOOTH_ACTIVATIONS + KINKED_ACTIVATIONS)
def test_activation(gradcheck, name, dtype):
    """Through the pytest plugin's fixture (its summary lists every layer checked)."""
    passes(
        gradcheck.check_layer_object,
        getattr(layers, name),
        parameters=[],
        signature="(n,j)->(n,j)",
        dtypes=(dtype,),
        settings=field_settings(25),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_derivative_is_wrong_for_negative_inputs(dtype):
    """Bug: ELU.derivative returns `x > 0.0 + (x < 0.0) * alpha * np.exp(x)`, which Python
    parses as x > (0.0 + (x < 0) α eˣ): a boolean, 0 for every x < 0 instead of α eˣ."""
    error = caught(
        gradcheck.check_layer_object,
        layers.ELU,
        parameters=[],
        signature="(n,j)->(n,j)",
        dtypes=(dtype,),
        settings=field_settings(25),
    )
    assert error.diagnosis == "wrong-activation-derivative", str(error)
    worst = failing_comparison(error)
    assert worst.hand_written == 0.0
    # independent confirmation: mpmath's derivative of α(eˣ - 1) at the shrunk point
    x = np.asarray(error.case.arguments[0], np.float64)
    dout = np.asarray(error.case.dout, np.float64)
    exact = confirm.mp_gradient(confirm.mp_elu, [x], dout, 0)
    layer = layers.ELU()
    layer.forward(x)
    hand = layer.backward(dout)
    negative = x < 0
    assert negative.any()
    assert np.all(hand[negative] == 0.0)
    assert np.allclose(exact[negative], (dout * np.exp(x))[negative], rtol=1e-14, atol=0)
    assert np.all(exact[negative] != 0.0)


# ---- convolution: float32 im2col, false alarms of issue 14 -------------------------------


def conv_same_forward(x, w, b):
    layer = _ready(layers.Conv2D(kernel=w.shape, padding="SAME"), w=w, b=b)
    return layer.forward(x)


def conv_same_backward(dout, x, w, b):
    layer = _ready(layers.Conv2D(kernel=w.shape, padding="SAME"), w=w, b=b)
    layer.forward(x)
    dx = layer.backward(dout)
    return dx.astype(x.dtype), layer.grads["w"].astype(w.dtype), layer.grads["b"].astype(b.dtype)


CONV_SAME = "(n,h,w,c),(p,q,c,k),(k)->(n,h,w,k)"
#: the shrunk case of the issue: every size 1, x = 3, w = b = dout = 1; exact dE/dx = 1
CONV_EXAMPLE = ([[[[3.0]]]], [[[[1.0]]]], [1.0]), [[[[1.0]]]]


def _example(example, dtype):
    arguments, dout = example
    return tuple(np.asarray(a, dtype) for a in arguments), np.asarray(dout, dtype)


def _charged_at_float32(summary):
    """The check passed because it measured the forward's float32 buffers and derived its
    differences from them, and says so in the forward's error model."""
    assert summary is not None and summary.examples == 1, summary
    (model,) = summary.error_models["forward"]
    assert "as a float32 computation's are" in model, model


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_same_example(dtype):
    summary = no_false_alarm(
        gradcheck.check_backward,
        conv_same_forward,
        conv_same_backward,
        signature=CONV_SAME,
        dtypes=(dtype,),
        example=_example(CONV_EXAMPLE, dtype),
    )
    _charged_at_float32(summary)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_same(dtype):
    no_false_alarm(
        gradcheck.check_backward,
        conv_same_forward,
        conv_same_backward,
        signature=CONV_SAME,
        dtypes=(dtype,),
        max_size=3,
        settings=field_settings(20, shrink=False),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_same_confirmed_correct(dtype):
    """Independent: mpmath's gradient of a SAME convolution equals tinynn's backward to
    float32 precision, and tinynn's forward is that convolution to float32 precision."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 3, 2)).astype(dtype)
    w = rng.normal(size=(2, 3, 2, 2)).astype(dtype)
    b = rng.normal(size=2).astype(dtype)
    dout = rng.normal(size=(2, 3, 3, 2)).astype(dtype)
    out = conv_same_forward(x, w, b)
    reference = confirm.mp_forward(confirm.mp_conv2d_same, [x, w, b])
    assert confirm.relative_gap(out, reference) < 1e-6
    hand = conv_same_backward(dout, x, w, b)
    for k in range(3):
        exact = confirm.mp_gradient(confirm.mp_conv2d_same, [x, w, b], dout, k)
        assert confirm.relative_gap(hand[k], exact) < 1e-6
    # the case: the exact dE/dx is 1, which tinynn returns
    (x1, w1, b1), d1 = _example(CONV_EXAMPLE, dtype)
    exact = confirm.mp_gradient(confirm.mp_conv2d_same, [x1, w1, b1], d1, 0)
    assert exact.item() == 1.0 == conv_same_backward(d1, x1, w1, b1)[0].item()


# ---- recurrent: RNN and LSTM, with their stacked weights split into named arguments -------


def _rnn(module, w_h, w_x, b):
    layer = module.RNN(num_hidden=w_h.shape[0])
    return _ready(layer, W=np.concatenate([w_h, w_x], axis=1), b=b)


def make_rnn(module):
    def rnn_forward(x, w_h, w_x, b):
        return _rnn(module, w_h, w_x, b).forward(x)

    def rnn_backward(dout, x, w_h, w_x, b):
        layer = _rnn(module, w_h, w_x, b)
        layer.forward(x)
        dx = layer.backward(dout)
        hidden = w_h.shape[0]
        dw = layer.grads["W"]
        return (
            dx.astype(x.dtype),
            dw[:, :hidden].astype(w_h.dtype),
            dw[:, hidden:].astype(w_x.dtype),
            layer.grads["b"].astype(b.dtype),
        )

    return rnn_forward, rnn_backward


def _lstm(module, wg_h, wg_x, bg, wc_h, wc_x, bc):
    hidden = wc_h.shape[0]
    layer = module.LSTM(num_hidden=hidden)
    return _ready(
        layer,
        W_g=np.concatenate([wg_h, wg_x], axis=2).reshape(3 * hidden, -1),
        b_g=bg.reshape(-1),
        W_c=np.concatenate([wc_h, wc_x], axis=1),
        b_c=bc,
    )


def make_lstm(module):
    """LSTM with W_g (3h × (h+d), gates o, i, f stacked) passed as (3, h, h) and (3, h, d)."""

    def lstm_forward(x, wg_h, wg_x, bg, wc_h, wc_x, bc):
        return _lstm(module, wg_h, wg_x, bg, wc_h, wc_x, bc).forward(x)

    def lstm_backward(dout, x, wg_h, wg_x, bg, wc_h, wc_x, bc):
        layer = _lstm(module, wg_h, wg_x, bg, wc_h, wc_x, bc)
        layer.forward(x)
        dx = layer.backward(dout)
        hidden = wc_h.shape[0]
        grads = layer.grads
        wg = grads["W_g"].reshape(3, hidden, -1)
        return tuple(
            g.astype(x.dtype)
            for g in (
                dx,
                wg[:, :, :hidden],
                wg[:, :, hidden:],
                grads["b_g"].reshape(3, hidden),
                grads["W_c"][:, :hidden],
                grads["W_c"][:, hidden:],
                grads["b_c"],
            )
        )

    return lstm_forward, lstm_backward


RNN_SIGNATURE = "(n,t,d),(h,h),(h,d),(h)->(n,h)"
LSTM_SIGNATURE = "(n,t,d),(3,h,h),(3,h,d),(3,h),(h,h),(h,d),(h)->(n,h)"
#: the shrunk case: tanh(4·1 + 1) = 0.99990920 is stored in float32; the exact
#: dE/dx = 4 sech²(5) = 7.2634e-4, the differences see no change at all ("reference 0")
RNN_EXAMPLE = ([[[1.0]]], [[1.0]], [[4.0]], [1.0]), [[1.0]]
LSTM_EXAMPLE = (
    (
        [[[1.0, 1.0, 1.0]]],
        [[[1.0]], [[1.0]], [[1.0]]],
        [[[2.0, 2.0, 2.0]], [[2.0, 2.0, 2.0]], [[2.0, 2.0, 2.0]]],
        [[1.0], [1.0], [1.0]],
        [[1.0]],
        [[1.0, 1.0, 1.0]],
        [1.0],
    ),
    [[1.0]],
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_example(dtype):
    forward, backward = make_rnn(layers)
    summary = no_false_alarm(
        gradcheck.check_backward,
        forward,
        backward,
        signature=RNN_SIGNATURE,
        dtypes=(dtype,),
        example=_example(RNN_EXAMPLE, dtype),
    )
    _charged_at_float32(summary)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_example(dtype):
    forward, backward = make_lstm(layers)
    summary = no_false_alarm(
        gradcheck.check_backward,
        forward,
        backward,
        signature=LSTM_SIGNATURE,
        dtypes=(dtype,),
        example=_example(LSTM_EXAMPLE, dtype),
    )
    _charged_at_float32(summary)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["rnn", "lstm"])
def test_recurrent(which, dtype):
    forward, backward = (make_rnn if which == "rnn" else make_lstm)(layers)
    no_false_alarm(
        gradcheck.check_backward,
        forward,
        backward,
        signature=RNN_SIGNATURE if which == "rnn" else LSTM_SIGNATURE,
        dtypes=(dtype,),
        max_size=3,
        settings=field_settings(20, shrink=False),
    )


@pytest.mark.parametrize("which", ["rnn", "lstm"])
def test_recurrent_confirmed_correct(which):
    """Independent: mpmath's gradients of tinynn's RNN/LSTM equations (h₋₁ = c₋₁ = 0,
    gates o, i, f) equal tinynn's backward to float32 precision (float32 buffers), and
    the float64-patched layer's to 1e-13."""
    rng = np.random.default_rng(5)
    n, t, d, hidden = 2, 3, 2, 2
    x = rng.normal(size=(n, t, d))
    if which == "rnn":
        arguments = [x, rng.normal(size=(hidden, hidden)), rng.normal(size=(hidden, d))]
        arguments.append(rng.normal(size=hidden))
        reference, make = confirm.mp_tinynn_rnn, make_rnn
    else:
        arguments = [
            x,
            rng.normal(size=(3, hidden, hidden)),
            rng.normal(size=(3, hidden, d)),
            rng.normal(size=(3, hidden)),
            rng.normal(size=(hidden, hidden)),
            rng.normal(size=(hidden, d)),
            rng.normal(size=hidden),
        ]
        reference, make = confirm.mp_tinynn_lstm, make_lstm
    dout = rng.normal(size=(n, hidden))
    exact = [confirm.mp_gradient(reference, arguments, dout, k) for k in range(len(arguments))]
    for module, tolerance in ((layers, 1e-5), (_float64_layers(), 1e-13)):
        forward, backward = make(module)
        out = forward(*arguments)
        assert confirm.relative_gap(out, confirm.mp_forward(reference, arguments)) < tolerance
        for hand, truth in zip(backward(dout, *arguments), exact, strict=True):
            assert confirm.relative_gap(hand, truth) < tolerance


#: A draw where the compact identity δ ⊙ B of the float64-patched LSTM misses: W_c's rows
#: reach every unit through h at later steps, but the cross-unit terms are below the
#: Jacobian's error, so the structure analysis calls W_c partitioned and the identity
#: drops them (the exact difference is what mpmath gives for the dropped terms).
LSTM_DENSE_EXAMPLE = (
    (
        [[[1.0], [1.0], [1.0]], [[1.0], [1.0], [1.0]]],
        [[[1.0] * 3] * 3] * 3,
        [[[1.0]] * 3] * 3,
        [[-6.120892910861481, 2.0, -0.6236638057905867], [2.0, 2.0, 2.0], [2.0, 2.0, 2.0]],
        [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0], [4.0, 4.0, 21.26187060933326]],
        [[1.0], [1.0], [1.0]],
        [2.0, 4.452951164826951, 1.0],
    ),
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
)


def test_lstm_float64_patched_dense_oracle():
    """The compact identity still runs on W_c (partitioned: every cross-unit entry is zero
    within its error) and holds, its bound now carrying the entries it drops."""
    forward, backward = make_lstm(_float64_layers())
    summary = no_false_alarm(
        gradcheck.check_backward,
        forward,
        backward,
        signature=LSTM_SIGNATURE,
        example=_example(LSTM_DENSE_EXAMPLE, "float64"),
    )
    assert summary.compact_identity == {"wc_h": "holds"}, summary.describe()


#: gradcheck's reference at wc_h[0, 1] in its mismatch on LSTM_DENSE_EXAMPLE (against the
#: hand-written 9.20008922e-10; error 2.38e-10, bound 4.17e-11)
DENSE_ORACLE_REFERENCE = 6.822239254422974e-10


def test_lstm_float64_patched_dense_oracle_confirmed():
    """Independent: mpmath's ∂E/∂W_c agrees with the patched layer's backward (to 1e-9 at
    the reported entry; to 1e-5 everywhere, the rest being the library's own rounding of
    saturated gates), while the part that flows through each row's own unit, which is all
    that δ ⊙ B sums, is gradcheck's reference: the dropped cross-unit terms are the miss."""
    arguments, dout = _example(LSTM_DENSE_EXAMPLE, "float64")
    arguments = list(arguments)
    _forward, backward = make_lstm(_float64_layers())
    hand = backward(dout, *arguments)[4]  # ∂E/∂wc_h
    exact = confirm.mp_gradient(confirm.mp_tinynn_lstm, arguments, dout, 4)
    assert np.all(np.abs(hand - exact) <= 1e-5 * np.abs(exact))
    assert abs(hand[0, 1] - exact[0, 1]) <= 1e-9 * abs(exact[0, 1])
    own = np.zeros_like(exact)
    for unit in range(exact.shape[0]):
        only = np.zeros_like(dout)
        only[:, unit] = dout[:, unit]
        own[unit] = confirm.mp_gradient(confirm.mp_tinynn_lstm, arguments, only, 4)[unit]
    assert abs(own[0, 1] - DENSE_ORACLE_REFERENCE) <= 1e-3 * DENSE_ORACLE_REFERENCE
    assert exact[0, 1] - own[0, 1] > 0.2 * exact[0, 1]  # 2.38e-10 through other units


# ---- shape layers: issue 15 (output sizes as expressions) -----------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten_fixed_sizes(dtype):
    """With literal sizes Flatten can be described today; its output is a view of x."""
    passes(
        gradcheck.check_layer_object,
        layers.Flatten,
        parameters=[],
        signature="(n,2,2,2)->(n,8)",
        dtypes=(dtype,),
        allow_aliases=True,
        settings=field_settings(10),
    )


def test_flatten():
    """Flatten described by its output size h*w*c (issue 15); its output is a view of x."""
    passes(
        gradcheck.check_layer_object,
        layers.Flatten,
        parameters=[],
        signature="(n,h,w,c)->(n,h*w*c)",
        allow_aliases=True,
        settings=field_settings(10),
    )


def test_max_pool():
    """MaxPool2D described by its output size h//2 (issue 15), without fake arguments. The
    check runs on the float64-patched module with two channels or more: the library's own
    float32 buffers and its crash on one channel are the bugs of the two tests below."""
    passes(
        gradcheck.check_layer_object,
        _float64_layers().MaxPool2D,
        parameters=[],
        signature="(n,h,w,c)->(n,h//2,w//2,c)",
        constraints=("c >= 2",),
        settings=field_settings(10),
    )


def test_max_pool_crashes_on_one_channel():
    """Bug: MaxPool2D.forward squeezes the argmax of a (batch, window, channels) pool, which
    drops the channel axis too when there is one channel: a batch of two single-channel
    images raises ValueError. gradcheck reports the forward's exception (float32 case)."""
    with pytest.raises(gradcheck.UserCodeError, match="could not broadcast"):
        gradcheck.check_layer_object(
            layers.MaxPool2D,
            parameters=[],
            signature="(n,4,4,1)->(n,2,2,1)",
            dtypes=("float32",),
            sizes={"n": 2},
            settings=field_settings(3),
        )
    with pytest.raises(ValueError, match="could not broadcast"):  # independent: a direct call
        layers.MaxPool2D().forward(np.random.default_rng(0).normal(size=(2, 4, 4, 1)))


def test_max_pool_float64_returns_float32_dx():
    """Bug: MaxPool2D.backward allocates dx as float32 whatever the input's dtype."""
    with pytest.raises(gradcheck.UserCodeError, match="in float32, but x is float64"):
        gradcheck.check_layer_object(
            layers.MaxPool2D,
            parameters=[],
            signature="(n,4,4,c)->(n,2,2,c)",
            sizes={"n": 1},
            settings=field_settings(3),
        )


def test_conv2d_valid():
    """VALID padding: output size h-p+1 (issue 15), float32 im2col (issue 14)."""

    def forward(x, w, b):
        layer = _ready(layers.Conv2D(kernel=w.shape, padding="VALID"), w=w, b=b)
        return layer.forward(x)

    def backward(dout, x, w, b):
        layer = _ready(layers.Conv2D(kernel=w.shape, padding="VALID"), w=w, b=b)
        layer.forward(x)
        dx = layer.backward(dout)
        return dx.astype(x.dtype), layer.grads["w"], layer.grads["b"]

    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,h,w,c),(p,q,c,k),(k)->(n,h-p+1,w-q+1,k)",
        settings=field_settings(10),
    )


def test_conv2d_strided():
    """Stride 2: output size (h-3)//2+1 (issue 15), float32 im2col (issue 14)."""

    def forward(x, w, b):
        layer = _ready(layers.Conv2D(kernel=w.shape, stride=(2, 2), padding="VALID"), w=w, b=b)
        return layer.forward(x)

    def backward(dout, x, w, b):
        layer = _ready(layers.Conv2D(kernel=w.shape, stride=(2, 2), padding="VALID"), w=w, b=b)
        layer.forward(x)
        dx = layer.backward(dout)
        return dx.astype(x.dtype), layer.grads["w"], layer.grads["b"]

    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,h,w,c),(3,3,c,k),(k)->(n,(h-3)//2+1,(w-3)//2+1,k)",
        settings=field_settings(10),
    )


# ---- losses ------------------------------------------------------------------------------------


def loss_adapter(loss):
    """forward(predictions, targets) -> the scalar loss; backward -> ∂E/∂predictions."""

    def forward(predictions, targets):
        return np.asarray(loss.loss(predictions, targets), dtype=predictions.dtype)

    def backward(dout, predictions, targets):
        return (dout * loss.grad(predictions, targets)).astype(predictions.dtype)

    forward.__qualname__ = f"{type(loss).__name__}.loss"
    return forward, backward


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["MSE", "MAE", "Huber", "SigmoidCrossEntropy"])
def test_regression_losses(name, dtype):
    forward, backward = loss_adapter(getattr(losses, name)())
    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j),(n,j)->()",
        wrt=["predictions"],
        dtypes=(dtype,),
        settings=field_settings(25),
    )


def _one_hot(n, j, dtype):
    """Fixed labels the adapter derives from the shape: example k is of class k mod j."""
    return np.eye(j, dtype=dtype)[np.arange(n) % j]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_fixed_labels(dtype):
    """Its grad softmax - labels is ∂L/∂logits only for labels that sum to 1 per row, so
    the labels cannot be drawn as floats: the adapter fixes one-hot labels."""
    loss = losses.SoftmaxCrossEntropy()

    def forward(logits):
        return np.asarray(loss.loss(logits, _one_hot(*logits.shape, logits.dtype)), logits.dtype)

    def backward(dout, logits):
        return (dout * loss.grad(logits, _one_hot(*logits.shape, logits.dtype))).astype(
            logits.dtype
        )

    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j)->()",
        dtypes=(dtype,),
        settings=field_settings(25),
    )


def test_softmax_cross_entropy_integer_labels():
    """Integer labels drawn in [0, j) and never differentiated (issue 15)."""
    loss = losses.SoftmaxCrossEntropy()

    def forward(logits, labels):
        return np.asarray(loss.loss(logits, np.eye(logits.shape[1])[labels]))

    def backward(dout, logits, labels):
        return dout * loss.grad(logits, np.eye(logits.shape[1])[labels])

    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j),(n)int[0,j)->()",
        wrt=["logits"],
        settings=field_settings(10),
    )
