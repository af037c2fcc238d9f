"""The bug zoo: wrong backward passes in plain NumPy, each beside its correct twin.

Every entry re-creates a gradient bug reported in a public project's issue tracker (or a
well-known textbook mistake); the comment above it names the source. The code is written
here from the description of the bug, not copied. An entry holds the forward, the WRONG
backward, the CORRECT backward, the signature and options for `gradcheck.check_backward`,
and the diagnosis class (see /work/shared/DESIGN.md, "Diagnosis classes") that a checker
should name for the wrong one.

Forwards are written with `autograd.numpy` where they can be (so that autograd is one of
the oracles), and in plain NumPy where the original layer was (finite differences only);
each forward says which. Backward passes are plain NumPy and follow the calling
convention of `check_backward`: backward(dout, *arguments) -> one gradient per argument
(or per `wrt` argument).

This module is data: it imports nothing of gradcheck but the names of the diagnosis
classes (`gradcheck.DIAGNOSIS_CLASSES`, cheap: no numpy behind it), and not pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np

from gradcheck import DIAGNOSIS_CLASSES

#: The diagnosis classes, in their order of precedence (gradcheck/diagnosis/classes.py).
CLASSES = DIAGNOSIS_CLASSES


@dataclass(frozen=True)
class Bug:
    """One entry of the zoo.

    options are keyword arguments of `gradcheck.check_backward` (bounds=, wrt=, dtypes=,
    sizes=, max_size=, max_examples=, ...). probe, when given, draws arguments for the
    zoo's own independent check (rng, shapes) -> list of arrays: for entries whose bug
    shows only in a regime ordinary random values do not reach. known_false_alarm and
    known_miss hold the reason when gradcheck is known to fail the correct twin, or to
    pass the wrong backward (the tests mark those xfail with it).
    """

    name: str
    expected: str
    source: str
    forward: Callable[..., Any]
    wrong: Callable[..., Any]
    right: Callable[..., Any]
    signature: str
    options: Mapping[str, Any] = field(default_factory=dict)
    probe: Callable[[np.random.Generator, list[tuple[int, ...]]], list[np.ndarray]] | None = None
    known_false_alarm: str | None = None
    known_miss: str | None = None

    def __post_init__(self) -> None:
        assert self.expected in CLASSES, self.expected


# ---- shared pieces -------------------------------------------------------------------------------

EPS = 1e-5  # the normalisation layers' epsilon


def sigmoid(a):
    """The logistic function in a form that neither overflows nor stops autograd."""
    return 0.5 * (anp.tanh(0.5 * a) + 1.0)


def softmax(a):
    e = anp.exp(a - anp.max(a, axis=-1, keepdims=True))
    return e / anp.sum(e, axis=-1, keepdims=True)


def log_softmax(a):
    shifted = a - anp.max(a, axis=-1, keepdims=True)
    return shifted - anp.log(anp.sum(anp.exp(shifted), axis=-1, keepdims=True))


def one_hot(rows: int, classes: int, dtype: Any) -> np.ndarray:
    """Fixed one-hot targets (row r is of class (3r + 1) mod classes): integer labels are
    not drawable, so the losses build their targets from the shape."""
    return np.eye(classes, dtype=dtype)[(3 * np.arange(rows) + 1) % classes]


def binary_targets(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Fixed 0/1 targets alternating over the entries."""
    return (np.arange(int(np.prod(shape))) % 2).reshape(shape).astype(dtype)


def softmax_vjp(p, dp):
    """The full softmax Jacobian-vector product: p ⊙ (dp - Σ_k dp_k p_k)."""
    return p * (dp - np.sum(dp * p, axis=-1, keepdims=True))


def softmax_vjp_diagonal(p, dp):
    """Only the diagonal of the softmax Jacobian, p ⊙ (1 - p): the cross terms dropped."""
    return dp * p * (1.0 - p)


def dense_grads(slope, x, w):
    """The gradients of an affine map a = x w + b given ∂E/∂a."""
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)


def dense_sigmoid(x, w, b):
    return sigmoid(anp.dot(x, w) + b)


def dense_tanh(x, w, b):
    return anp.tanh(anp.dot(x, w) + b)


def dense_softmax(x, w, b):
    return softmax(anp.dot(x, w) + b)


def affine(x, w, b):
    return anp.dot(x, w) + b


def dense_tanh_right(dout, x, w, b):
    t = dense_tanh(x, w, b)
    return dense_grads(dout * (1.0 - t * t), x, w)


def attention(q, k, v):
    """Single-head scaled dot-product attention softmax(q kᵀ / √d) v."""
    scale = 1.0 / float(np.sqrt(q.shape[-1]))  # a Python float keeps float32 float32
    return anp.dot(softmax(anp.dot(q, k.T) * scale), v)


def attention_backward(dout, q, k, v, *, vjp=softmax_vjp, scaled=True):
    scale = 1.0 / float(np.sqrt(q.shape[-1]))
    p = softmax(q @ k.T * scale)
    dv = p.T @ dout
    ds = vjp(p, dout @ v.T)
    factor = scale if scaled else 1.0
    return ds @ k * factor, ds.T @ q * factor, dv


def batchnorm(x, gamma, beta):
    """Batch normalisation in training mode: statistics over the batch axis 0."""
    mu = anp.mean(x, axis=0)
    centred = x - mu
    var = anp.mean(centred * centred, axis=0)
    return gamma * centred / anp.sqrt(var + EPS) + beta


def layernorm(x, gamma, beta):
    """Layer normalisation: statistics over the feature axis 1 of each row."""
    mu = anp.mean(x, axis=1, keepdims=True)
    centred = x - mu
    var = anp.mean(centred * centred, axis=1, keepdims=True)
    return gamma * centred / anp.sqrt(var + EPS) + beta


def norm_parts(x, axis):
    """x̂ and 1/σ of a normalisation over `axis`."""
    mu = x.mean(axis=axis, keepdims=True)
    centred = x - mu
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=axis, keepdims=True) + EPS)
    return centred * inv, inv


def norm_input_grad(dxhat, xhat, inv, axis):
    """∂E/∂x of x̂ = (x - μ)/σ given ∂E/∂x̂, with the paths through μ and σ."""
    return inv * (
        dxhat
        - dxhat.mean(axis=axis, keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)
    )


def batchnorm_backward(dout, x, gamma, beta):
    xhat, inv = norm_parts(x, 0)
    dx = norm_input_grad(dout * gamma, xhat, inv, 0)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_backward(dout, x, gamma, beta):
    xhat, inv = norm_parts(x, 1)
    dx = norm_input_grad(dout * gamma, xhat, inv, 1)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def conv1d_same(x, w):
    """Single-channel cross-correlation with a 3-tap kernel and zero padding ("same"):
    y[t] = Σ_k x[t + k - 1] w[k]. Plain NumPy (finite differences only)."""
    padded = np.pad(x, ((0, 0), (1, 1)))
    length = x.shape[1]
    return sum(padded[:, k : k + length] * w[k] for k in range(3))


def conv1d_same_backward(dout, x, w, *, tap=lambda k: k):
    padded = np.pad(x, ((0, 0), (1, 1)))
    length = x.shape[1]
    dpadded = np.zeros_like(padded)
    for k in range(3):
        dpadded[:, k : k + length] += dout * w[tap(k)]
    dw = np.array([np.sum(padded[:, k : k + length] * dout) for k in range(3)], dtype=w.dtype)
    return dpadded[:, 1:-1], dw


def conv1d_channels(x, w):
    """Multi-channel cross-correlation, 3 taps, "same" padding: y[n, t, o] =
    Σ_k Σ_c x[n, t + k - 1, c] w[k, c, o]. Plain NumPy (finite differences only)."""
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    length = x.shape[1]
    return sum(padded[:, k : k + length] @ w[k] for k in range(3))


def conv1d_channels_backward(dout, x, w, *, swap=True):
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    length = x.shape[1]
    dpadded = np.zeros_like(padded)
    for k in range(3):
        kernel = w[k].T if swap else w[k]
        dpadded[:, k : k + length] += dout @ kernel
    dw = np.stack([np.einsum("ntc,nto->co", padded[:, k : k + length], dout) for k in range(3)])
    return dpadded[:, 1:-1], dw


GELU_C = float(np.sqrt(2.0 / np.pi))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + anp.tanh(GELU_C * (x + 0.044715 * x**3)))


def gelu_tanh_constants_wrong(dout, x, digits=5):
    if digits == 5:
        c, k3, h, h3 = 0.79788, 0.035677, 0.39894, 0.053516
    else:
        c, k3, h, h3 = 0.797885, 0.0356774, 0.398942, 0.0535161
    t = np.tanh(c * x + k3 * x**3)
    return (dout * (0.5 + (h * x + h3 * x**3) * (1.0 - t * t) + 0.5 * t),)


def gelu_tanh_right(dout, x):
    return (dout * gelu_tanh_derivative(x),)


def gelu_tanh_derivative(x, c=GELU_C, k=0.044715):
    u = c * (x + k * x**3)
    t = np.tanh(u)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * k * x * x)


def _large(scale: float):
    """A probe for the independent check: normal values times `scale`."""

    def probe(rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        return [rng.normal(size=shape) * scale for shape in shapes]

    return probe


ZOO: list[Bug] = []


def bug(**fields: Any) -> None:
    ZOO.append(Bug(**fields))


# ==== non-finite ==================================================================================

# snntorch (jeshraghian/snntorch#427, fixed in #433): the sigmoid surrogate's backward
# computed slope·exp(-slope·x)/(exp(-slope·x) + 1)²; with the default slope 25 the exponential
# overflows in float32 once x < -3.5 and the gradient is inf/inf = NaN.
SLOPE = 25.0


def surrogate(x):
    return sigmoid(SLOPE * x)


def surrogate_wrong(dout, x):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-SLOPE * x)
        return (dout * SLOPE * e / (e + 1.0) ** 2,)


def surrogate_right(dout, x):
    s = surrogate(x)
    return (dout * SLOPE * s * (1.0 - s),)


bug(
    name="sigmoid_surrogate_exp_overflow",
    expected="non-finite",
    source="jeshraghian/snntorch#427 (fixed in #433)",
    forward=surrogate,
    wrong=surrogate_wrong,
    right=surrogate_right,
    signature="(n,i)->(n,i)",
    options={"dtypes": ("float32",)},
    probe=_large(8.0),
)


# candle (huggingface/candle#1722): the sigmoid's backward gave NaN for large negative
# arguments in f32 (exp(-a) overflows; inf/inf). Here inside a dense sigmoid layer.
def dense_sigmoid_exp_wrong(dout, x, w, b):
    a = x @ w + b
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-a)
        slope = dout * e / (1.0 + e) ** 2
    return dense_grads(slope, x, w)


def dense_sigmoid_right(dout, x, w, b):
    s = dense_sigmoid(x, w, b)
    return dense_grads(dout * s * (1.0 - s), x, w)


bug(
    name="dense_sigmoid_exp_overflow",
    expected="non-finite",
    source="huggingface/candle#1722",
    forward=dense_sigmoid,
    wrong=dense_sigmoid_exp_wrong,
    right=dense_sigmoid_right,
    signature="(n,i),(i,j),(j)->(n,j)",
    # the overflow needs a pre-activation below -88: with values from the small table only
    # the derandomized search met one after 60-80 examples (found at 80, missed at 60);
    # drawn over the whole domain (issue 16) it is met within the zoo's default examples
    options={"dtypes": ("float32",)},
    probe=_large(12.0),
)


# DyNet (clab/dynet#218): the log-softmax backward weighted the upstream gradient by
# exp(y)·d/exp(y), which is d except where exp(y) underflows to 0 and it is 0/0 = NaN
# (a log-probability below about -104 in float32). Here after a linear map.
def dense_log_softmax(x, w):
    return log_softmax(anp.dot(x, w))


def dense_log_softmax_ratio_wrong(dout, x, w):
    y = dense_log_softmax(x, w)
    with np.errstate(under="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(y)
        weighted = e * dout / e
        da = dout - e * weighted.sum(axis=-1, keepdims=True)
    return da @ w.T, x.T @ da


def dense_log_softmax_right(dout, x, w):
    p = np.exp(dense_log_softmax(x, w))
    da = dout - p * dout.sum(axis=-1, keepdims=True)
    return da @ w.T, x.T @ da


bug(
    name="log_softmax_exp_ratio_nan",
    expected="non-finite",
    source="clab/dynet#218",
    forward=dense_log_softmax,
    wrong=dense_log_softmax_ratio_wrong,
    right=dense_log_softmax_right,
    signature="(n,i),(i,j)->(n,j)",
    options={"dtypes": ("float32",)},
    probe=_large(12.0),
)


# ==== coupling-ignored ============================================================================

# libnd4j (deeplearning4j/libnd4j#440): "we only implement one part of this: output * (1 -
# output), for the diagonal. We are missing the sum and i != j case."


def softmax_layer(x):
    return softmax(x)


def softmax_diagonal_wrong(dout, x):
    return (softmax_vjp_diagonal(softmax(x), dout),)


def softmax_right(dout, x):
    return (softmax_vjp(softmax(x), dout),)


bug(
    name="softmax_jacobian_diagonal_only",
    expected="coupling-ignored",
    source="deeplearning4j/libnd4j#440",
    forward=softmax_layer,
    wrong=softmax_diagonal_wrong,
    right=softmax_right,
    signature="(n,j)->(n,j)",
)


# DeepLearningFrameworkFromScratchCpp (Apiquet/DeepLearningFrameworkFromScratchCpp#1): the
# softmax backward of a dense layer used only s(1 - s), "the first part" of the gradient.
def dense_softmax_diagonal_wrong(dout, x, w, b):
    return dense_grads(softmax_vjp_diagonal(dense_softmax(x, w, b), dout), x, w)


def dense_softmax_right(dout, x, w, b):
    return dense_grads(softmax_vjp(dense_softmax(x, w, b), dout), x, w)


bug(
    name="dense_softmax_jacobian_diagonal_only",
    expected="coupling-ignored",
    source="Apiquet/DeepLearningFrameworkFromScratchCpp#1",
    forward=dense_softmax,
    wrong=dense_softmax_diagonal_wrong,
    right=dense_softmax_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# dlsys homework (kcxain/dlsys#5, "hw2 logsoftmax"): differentiating LogSoftmax(z) = z -
# LogSumExp(z) term by term as (1 - softmax(z)) · out_grad, "the hacked chain rule" that is
# valid only for a diagonal Jacobian; the answer in the thread is out_grad - softmax(z) ·
# sum(out_grad). Forward in plain NumPy.
def log_softmax_np(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_elementwise_wrong(dout, x):
    return (dout * (1.0 - np.exp(log_softmax_np(x))),)


def log_softmax_right(dout, x):
    return (dout - np.exp(log_softmax_np(x)) * dout.sum(axis=-1, keepdims=True),)


bug(
    name="log_softmax_elementwise_derivative",
    expected="coupling-ignored",
    source="kcxain/dlsys#5",
    forward=log_softmax_np,
    wrong=log_softmax_elementwise_wrong,
    right=log_softmax_right,
    signature="(n,j)->(n,j)",
)


# RubixML (RubixML/ML#438, "Fix Softmax", review): differentiate() was changed to return
# s(1 - s), which the activation layer multiplies elementwise with the upstream gradient:
# "silently drops the cross-class contributions". Here on a softmax over the last axis of
# a sequence of distributions (n × t × j).
def softmax_sequence_diagonal_wrong(dout, x):
    return (softmax_vjp_diagonal(softmax(x), dout),)


bug(
    name="softmax_sequence_jacobian_diagonal_only",
    expected="coupling-ignored",
    source="RubixML/ML#438",
    forward=softmax_layer,
    wrong=softmax_sequence_diagonal_wrong,
    right=softmax_right,
    signature="(n,t,j)->(n,t,j)",
    options={"max_size": 3},
)


# ==== transpose ===================================================================================


# deeplearning_ai_books (fengdu78/deeplearning_ai_books#21): the notes wrote dw[l] = dz[l]·a[l-1]
# where a[l-1] "needs a transpose". Getting the orientation of that product wrong gives,
# for a square layer, the transpose of the true weight gradient.
def dense_weight_transposed_wrong(dout, x, w, b):
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def affine_right(dout, x, w, b):
    return dense_grads(dout, x, w)


bug(
    name="dense_weight_grad_transposed",
    expected="transpose",
    source="fengdu78/deeplearning_ai_books#21",
    forward=affine,
    wrong=dense_weight_transposed_wrong,
    right=affine_right,
    signature="(n,i),(i,i),(i)->(n,i)",
)


# pytorch-examples (jcjohnson/pytorch-examples#28, #29): readers asked why the backward
# of a linear layer multiplies by w.t(); the answer (the CS231n linear-backprop handout)
# is that the input gradient is δ wᵀ. Written as δ w, a square linear layer's input
# gradient is the product with its Jacobian instead of the Jacobian's transpose. (With an
# activation after the linear map, (δ ⊙ φ') w is *not* that product: only dx would be
# wrong in no recognisable way, so the entry keeps the layer linear.)
bug(
    name="dense_input_grad_untransposed_weight",
    expected="transpose",
    source="jcjohnson/pytorch-examples#28, #29 (CS231n linear-backprop handout)",
    forward=affine,
    wrong=lambda dout, x, w, b: (dout @ w, x.T @ dout, dout.sum(axis=0)),
    right=affine_right,
    signature="(n,i),(i,i),(i)->(n,i)",
)


# diffusers (huggingface/diffusers#14338, fixed by #14341): the native-flash attention
# backward transposed K and V a second time, returning their gradients in the wrong
# layout. With square K and V (t = d) the gradients come out transposed.
def attention_kv_transposed_wrong(dout, q, k, v):
    dq, dk, dv = attention_backward(dout, q, k, v)
    return dq, dk.T, dv.T


bug(
    name="attention_kv_grads_transposed",
    expected="transpose",
    source="huggingface/diffusers#14338 (fixed by #14341)",
    forward=attention,
    wrong=attention_kv_transposed_wrong,
    right=attention_backward,
    signature="(s,d),(d,d),(d,d)->(s,d)",
    options={"max_size": 3},
)


# numpy-ml (ddbourgin/numpy-ml#27, "is the weights need to be rotated?") and DeepLearnToolbox
# (rasmusbergpalm/DeepLearnToolbox#169, "how to understand rot180"): the input gradient of a
# cross-correlation layer is the full convolution of δ with the kernel rotated by 180°.
# Leaving the rotation out, a "same" 1-D layer multiplies δ by its Jacobian instead of the
# Jacobian's transpose. Plain NumPy forward.
bug(
    name="conv1d_input_grad_kernel_not_flipped",
    expected="transpose",
    source="ddbourgin/numpy-ml#27; rasmusbergpalm/DeepLearnToolbox#169",
    forward=conv1d_same,
    wrong=lambda dout, x, w: conv1d_same_backward(dout, x, w, tap=lambda k: 2 - k),
    right=conv1d_same_backward,
    signature="(n,l),(3)->(n,l)",
)


# ==== sign ========================================================================================


# PyTorchStepByStep (dvgodoy/PyTorchStepByStep#21, "negative sign for gradients"): the book
# wrote the MSE gradient with two conventions, error = ŷ - y with 2·error and error = y - ŷ
# with -2·error. Mixing them (the flipped error with the unflipped formula) makes the
# gradient point the wrong way.
def mse_mean(yhat, y):
    d = yhat - y
    return anp.sum(d * d) / d.size


def mse_error_flipped_wrong(dout, yhat, y):
    error = y - yhat
    return dout * 2.0 * error / error.size, -dout * 2.0 * error / error.size


def mse_mean_right(dout, yhat, y):
    error = yhat - y
    return dout * 2.0 * error / error.size, -dout * 2.0 * error / error.size


bug(
    name="mse_error_flipped",
    expected="sign",
    source="dvgodoy/PyTorchStepByStep#21",
    forward=mse_mean,
    wrong=mse_error_flipped_wrong,
    right=mse_mean_right,
    signature="(n,k),(n,k)->()",
)


# Epita-SCIA-OCVX (bashardudin/Epita-SCIA-OCVX#1): the gradient of the L1 norm did not keep
# the sign, so it was always positive. Plain NumPy forward.
def l1_norm(x):
    return np.abs(x).sum()


bug(
    name="l1_gradient_sign_dropped",
    expected="sign",
    source="bashardudin/Epita-SCIA-OCVX#1",
    forward=l1_norm,
    wrong=lambda dout, x: (dout * np.ones_like(x),),
    right=lambda dout, x: (dout * np.sign(x),),
    signature="(n,i)->()",
)


# peterroelants.github.io (peterroelants/peterroelants.github.io#24): the derivation of the
# softmax cross-entropy gradient lost a negative sign: y - p instead of p - y.
def softmax_cross_entropy_mean(z):
    y = one_hot(z.shape[0], z.shape[1], z.dtype)
    return -anp.sum(y * log_softmax(z)) / z.shape[0]


def softmax_ce_sign_wrong(dout, z):
    y = one_hot(z.shape[0], z.shape[1], z.dtype)
    return (dout * (y - softmax(z)) / z.shape[0],)


def softmax_ce_mean_right(dout, z):
    y = one_hot(z.shape[0], z.shape[1], z.dtype)
    return (dout * (softmax(z) - y) / z.shape[0],)


bug(
    name="softmax_cross_entropy_sign_lost",
    expected="sign",
    source="peterroelants/peterroelants.github.io#24",
    forward=softmax_cross_entropy_mean,
    wrong=softmax_ce_sign_wrong,
    right=softmax_ce_mean_right,
    signature="(n,k)->()",
)


# mistnet (davharris/mistnet#29, "make sure the sign is correct on cross entropy"): the
# binary cross-entropy gradient with respect to the probabilities, with the wrong sign.
def binary_cross_entropy(p):
    y = binary_targets(p.shape, p.dtype)
    return -anp.sum(y * anp.log(p) + (1.0 - y) * anp.log(1.0 - p)) / p.size


def bce_sign_wrong(dout, p):
    y = binary_targets(p.shape, p.dtype)
    return (dout * (y / p - (1.0 - y) / (1.0 - p)) / p.size,)


def bce_right(dout, p):
    y = binary_targets(p.shape, p.dtype)
    return (dout * ((1.0 - y) / (1.0 - p) - y / p) / p.size,)


bug(
    name="binary_cross_entropy_sign",
    expected="sign",
    source="davharris/mistnet#29",
    forward=binary_cross_entropy,
    wrong=bce_sign_wrong,
    right=bce_right,
    signature="(n,k)->()",
    options={"bounds": [(0.0, 1.0)]},
    probe=lambda rng, shapes: [rng.uniform(0.05, 0.95, size=shapes[0])],
)


# ==== batch-mean-vs-sum ===========================================================================

# MXNet (apache/mxnet#2215, "Fix softmax gradient"): with the cross-entropy averaged over
# the batch, the gradient p - y "should be divided by n"; it was not.
bug(
    name="softmax_cross_entropy_missing_batch_mean",
    expected="batch-mean-vs-sum",
    source="apache/mxnet#2215",
    forward=softmax_cross_entropy_mean,
    wrong=lambda dout, z: (dout * (softmax(z) - one_hot(z.shape[0], z.shape[1], z.dtype)),),
    right=softmax_ce_mean_right,
    signature="(n,k)->()",
)


# kvfrans/notes (kvfrans/notes#5): "d_b1 = jnp.mean(d_h2, axis=1) should be jnp.sum": the bias
# gradient averaged over the batch where the loss sums it.
def dense_tanh_bias_mean_wrong(dout, x, w, b):
    t = dense_tanh(x, w, b)
    slope = dout * (1.0 - t * t)
    return slope @ w.T, x.T @ slope, slope.mean(axis=0)


bug(
    name="dense_bias_grad_mean_over_batch",
    expected="batch-mean-vs-sum",
    source="kvfrans/notes#5",
    forward=dense_tanh,
    wrong=dense_tanh_bias_mean_wrong,
    right=dense_tanh_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# creative_ml (acids-ircam/creative_ml#6, "MSE should be defined as a mean"): the notebook
# defines the MSE as a sum in one place and as a mean in another; the gradient of the sum
# used for the loss averaged over the batch is N times too large. Only ŷ is differentiated.
def mse_batch_mean(yhat, y):
    d = yhat - y
    return anp.sum(d * d) / d.shape[0]


bug(
    name="mse_batch_mean_gradient_summed",
    expected="batch-mean-vs-sum",
    source="acids-ircam/creative_ml#6",
    forward=mse_batch_mean,
    wrong=lambda dout, yhat, y: (dout * 2.0 * (yhat - y),),
    right=lambda dout, yhat, y: (dout * 2.0 * (yhat - y) / yhat.shape[0],),
    signature="(n,k),(n,k)->()",
    options={"wrt": ["yhat"]},
)


# fetchai ledger (fetchai/ledger#1580, "fix crossentropy loss"): the review of the fix
# called dividing the cross-entropy gradient by the batch size incorrect ("Please just
# remove that division from incorrect gradient"): a loss summed over the batch with a
# gradient averaged over it.
def softmax_cross_entropy_sum(z):
    y = one_hot(z.shape[0], z.shape[1], z.dtype)
    return -anp.sum(y * log_softmax(z))


bug(
    name="cross_entropy_sum_gradient_averaged",
    expected="batch-mean-vs-sum",
    source="fetchai/ledger#1580",
    forward=softmax_cross_entropy_sum,
    wrong=lambda dout, z: (
        dout * (softmax(z) - one_hot(z.shape[0], z.shape[1], z.dtype)) / z.shape[0],
    ),
    right=lambda dout, z: (dout * (softmax(z) - one_hot(z.shape[0], z.shape[1], z.dtype)),),
    signature="(n,k)->()",
)


# ==== scale-constant ==============================================================================


# dlib (davisking/dlib#1169, "Is loss_mean_square gradient correct?"; the same in
# ooples/AiDotNet#481): the gradient of Σ (ŷ - y)² was written without its factor 2 ("it
# doesn't matter" for training, said the maintainer; against the loss as computed, it is a
# factor 2).
def squared_error(yhat, y):
    d = yhat - y
    return anp.sum(d * d)


bug(
    name="squared_error_missing_factor_two",
    expected="scale-constant",
    source="davisking/dlib#1169; ooples/AiDotNet#481",
    forward=squared_error,
    wrong=lambda dout, yhat, y: (dout * (yhat - y), -dout * (yhat - y)),
    right=lambda dout, yhat, y: (2.0 * dout * (yhat - y), -2.0 * dout * (yhat - y)),
    signature="(n,k),(n,k)->()",
)


# Goodfellow, Bengio & Courville, Deep Learning, §7.1.1: with the penalty (α/2)‖w‖² the
# gradient is α w; the textbook slip is to write α w for the penalty α‖w‖².
DECAY = 0.01


def weight_decay(w):
    return DECAY * anp.sum(w * w)


bug(
    name="weight_decay_gradient_missing_two",
    expected="scale-constant",
    source="Goodfellow et al., Deep Learning, §7.1.1",
    forward=weight_decay,
    wrong=lambda dout, w: (dout * DECAY * w,),
    right=lambda dout, w: (dout * 2.0 * DECAY * w,),
    signature="(i,j)->()",
)


# MLC LLM (mlc-ai/mlc-llm#3426) and cntkx (delzac/cntkx#10): the 1/√d of scaled dot-product
# attention was missing on one code path and present on another. Here the forward scales
# and the backward forgets the scale on the query and key gradients: with d = 4, both are
# twice the truth.
bug(
    name="attention_backward_missing_scale",
    expected="scale-constant",
    source="mlc-ai/mlc-llm#3426; delzac/cntkx#10",
    forward=attention,
    wrong=lambda dout, q, k, v: attention_backward(dout, q, k, v, scaled=False),
    right=attention_backward,
    signature="(s,d),(t,d),(t,e)->(s,e)",
    options={"sizes": {"d": 4, "s": (1, 3), "t": (1, 3), "e": (1, 3)}},
)


# CS231n notes, "Neural Networks Part 2", inverted dropout: the forward divides the kept
# units by the keep probability, so the backward must too; without it every kept unit's
# gradient is half the truth at keep = 0.5. The mask is a fixed pattern (a drawn one
# would not be repeatable). Plain NumPy forward.
KEEP = 0.5


def dropout_mask(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return ((np.arange(int(np.prod(shape))) * 7) % 3 != 0).reshape(shape).astype(dtype)


def inverted_dropout(x):
    return x * dropout_mask(x.shape, x.dtype) / KEEP


bug(
    name="inverted_dropout_missing_rescale",
    expected="scale-constant",
    source="CS231n notes, Neural Networks Part 2 (inverted dropout)",
    forward=inverted_dropout,
    wrong=lambda dout, x: (dout * dropout_mask(x.shape, x.dtype),),
    right=lambda dout, x: (dout * dropout_mask(x.shape, x.dtype) / KEEP,),
    signature="(n,i)->(n,i)",
)


# ==== bias-only ===================================================================================


# mlpack (mlpack/mlpack#3679, "Fix batch handling for Add::Gradient()"): the bias layer's
# gradient was `gradient = error`, right only for a batch of one. As NumPy: the first row.
def add_bias(x, b):
    return x + b


bug(
    name="bias_grad_first_example_only",
    expected="bias-only",
    source="mlpack/mlpack#3679",
    forward=add_bias,
    wrong=lambda dout, x, b: (dout.copy(), dout[0].copy()),
    right=lambda dout, x, b: (dout.copy(), dout.sum(axis=0)),
    signature="(n,j),(j)->(n,j)",
)


# PyTorch (pytorch/pytorch#2330, "[BatchNorm1d] Question on the gradient of bias"): the
# reporter saw the shift's gradient computed as input.sum(0) instead of gradOutput.sum(0).
def batchnorm_beta_from_input_wrong(dout, x, gamma, beta):
    dx, dgamma, _ = batchnorm_backward(dout, x, gamma, beta)
    return dx, dgamma, x.sum(axis=0)


bug(
    name="batchnorm_beta_grad_from_input",
    expected="bias-only",
    source="pytorch/pytorch#2330",
    forward=batchnorm,
    wrong=batchnorm_beta_from_input_wrong,
    right=batchnorm_backward,
    signature="(n,d),(d),(d)->(n,d)",
    options={"sizes": {"n": (2, 4)}},
)


# Deeplearning.ai NLP specialization notebook (rust0258/Deeplearning.ai-Natural-Language-
# Processing-Specialization#62, #64): the bias gradient was written as
# np.sum((1/m) * np.dot(l1, x.T), axis=1), the weight gradient summed over the inputs. It
# equals the bias gradient only when every input column sums to 1 (the averaged one-hot
# contexts of that CBOW model, which is why the thread found it "correct"); for a general
# input only the bias gradient is wrong. Here in a dense tanh layer.
def dense_tanh_bias_from_weight_grad_wrong(dout, x, w, b):
    t = dense_tanh(x, w, b)
    slope = dout * (1.0 - t * t)
    dw = x.T @ slope
    return slope @ w.T, dw, dw.sum(axis=0)


bug(
    name="dense_bias_grad_from_weight_grad",
    expected="bias-only",
    source="rust0258/Deeplearning.ai-Natural-Language-Processing-Specialization#62",
    forward=dense_tanh,
    wrong=dense_tanh_bias_from_weight_grad_wrong,
    right=dense_tanh_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# ==== input-gradient-only =========================================================================


# Knet.jl (denizyuret/Knet.jl#288, "Batchnorm backward on cpu doesn't seem to take care
# about scales"): dy was multiplied by the scale g for the parameters' gradients but the
# input gradient was formed from dy alone.
def batchnorm_dx_without_gamma_wrong(dout, x, gamma, beta):
    xhat, inv = norm_parts(x, 0)
    dx = norm_input_grad(dout, xhat, inv, 0)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


bug(
    name="batchnorm_input_grad_missing_gamma",
    expected="input-gradient-only",
    source="denizyuret/Knet.jl#288",
    forward=batchnorm,
    wrong=batchnorm_dx_without_gamma_wrong,
    right=batchnorm_backward,
    signature="(n,d),(d),(d)->(n,d)",
    options={"sizes": {"n": (2, 4)}},
)


# deepcourse (arthurdouillard/deepcourse#6, "switch grad_h by grad_htilde"): the MLP's
# backward passed on the gradient before the activation's derivative instead of after.
def dense_tanh_dx_before_derivative_wrong(dout, x, w, b):
    t = dense_tanh(x, w, b)
    slope = dout * (1.0 - t * t)
    return dout @ w.T, x.T @ slope, slope.sum(axis=0)


bug(
    name="dense_input_grad_before_activation_derivative",
    expected="input-gradient-only",
    source="arthurdouillard/deepcourse#6",
    forward=dense_tanh,
    wrong=dense_tanh_dx_before_derivative_wrong,
    right=dense_tanh_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# CNN-Numpy (wuziheng/CNN-Numpy#2): the base convolution's backward flipped the kernel but
# "is missing a swapaxes" of the channel axes, so the input gradient mixes the channels the
# wrong way (the weight gradient is right). Square channels, or it would not even run.
bug(
    name="conv1d_input_grad_channels_not_swapped",
    expected="input-gradient-only",
    source="wuziheng/CNN-Numpy#2",
    forward=conv1d_channels,
    wrong=lambda dout, x, w: conv1d_channels_backward(dout, x, w, swap=False),
    right=conv1d_channels_backward,
    signature="(n,l,c),(3,c,c)->(n,l,c)",
    options={"sizes": {"c": (2, 3), "l": (2, 4), "n": (1, 3)}},
)


# CrypTen (facebookresearch/CrypTen#143) again, on the layer as CrypTen had it, with scale
# and shift: the statistics are treated as constants, but the parameters' gradients are
# right, so the table's precedence names this input-gradient-only (the missing-term entry
# of the same bug, without parameters, is below).
def batchnorm_statistics_constant_wrong(dout, x, gamma, beta):
    xhat, inv = norm_parts(x, 0)
    return dout * gamma * inv, (dout * xhat).sum(axis=0), dout.sum(axis=0)


bug(
    name="batchnorm_affine_statistics_treated_as_constants",
    expected="input-gradient-only",
    source="facebookresearch/CrypTen#143",
    forward=batchnorm,
    wrong=batchnorm_statistics_constant_wrong,
    right=batchnorm_backward,
    signature="(n,d),(d),(d)->(n,d)",
    options={"sizes": {"n": (2, 4)}},
)


# ==== wrong-activation-derivative =================================================================


# interviews.ai (BoltzmannEntropy/interviews.ai#15): Sigmoid.backward used self.x·(1 - self.x)
# with self.x the *input*, where σ(x)(1 - σ(x)) is needed.
def sigmoid_layer(x):
    return sigmoid(x)


bug(
    name="sigmoid_derivative_of_input",
    expected="wrong-activation-derivative",
    source="BoltzmannEntropy/interviews.ai#15",
    forward=sigmoid_layer,
    wrong=lambda dout, x: (dout * x * (1.0 - x),),
    right=lambda dout, x: (dout * sigmoid(x) * (1.0 - sigmoid(x)),),
    signature="(n,i)->(n,i)",
)


# DeepLearnToolbox (rasmusbergpalm/DeepLearnToolbox#165, "derivative of sigmoid at nnbp.m"):
# the change proposed there, d_act = sigm(nn.a) .* (1 - sigm(nn.a)), applies the sigmoid to
# nn.a, which already holds the activated output: σ(s)(1 - σ(s)) instead of s(1 - s).
def dense_sigmoid_twice_wrong(dout, x, w, b):
    s = dense_sigmoid(x, w, b)
    slope = dout * sigmoid(s) * (1.0 - sigmoid(s))
    return dense_grads(slope, x, w)


bug(
    name="dense_sigmoid_derivative_of_activated_output",
    expected="wrong-activation-derivative",
    source="rasmusbergpalm/DeepLearnToolbox#165",
    forward=dense_sigmoid,
    wrong=dense_sigmoid_twice_wrong,
    right=dense_sigmoid_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# neural-network-from-scratch (gy910210/neural-network-from-scratch#2): "(tan x)' = sec² x =
# 1 + tan² x", applied to tanh: the derivative written as 1 + tanh² instead of 1 - tanh².
# Label: where tanh saturates the true derivative is 0 and the row has no factor; the
# implied φ' (2) beside the true one (0) is still a wrong derivative, not unknown.
def tanh_layer(x):
    return anp.tanh(x)


bug(
    name="tanh_derivative_one_plus_square",
    expected="wrong-activation-derivative",
    source="gy910210/neural-network-from-scratch#2",
    forward=tanh_layer,
    wrong=lambda dout, x: (dout * (1.0 + np.tanh(x) ** 2),),
    right=lambda dout, x: (dout * (1.0 - np.tanh(x) ** 2),),
    signature="(n,i)->(n,i)",
)


# DeepLearning-500-questions (scutan90/DeepLearning-500-questions#544): the table gives
# tanh'(x) = -(tanh x)², the 1 dropped. Here in a dense tanh layer.
def dense_tanh_minus_square_wrong(dout, x, w, b):
    t = dense_tanh(x, w, b)
    return dense_grads(dout * -(t * t), x, w)


bug(
    name="dense_tanh_derivative_minus_square",
    expected="wrong-activation-derivative",
    source="scutan90/DeepLearning-500-questions#544",
    forward=dense_tanh,
    wrong=dense_tanh_minus_square_wrong,
    right=dense_tanh_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# facial-expression-recognition (lazyprogrammer/facial-expression-recognition#2): the tanh
# derivative 1 - Z² takes the layer's *output* Z; the issue proposed evaluating it on the
# pre-activation X W + b instead, 1 - a².
def dense_tanh_preactivation_wrong(dout, x, w, b):
    a = x @ w + b
    return dense_grads(dout * (1.0 - a * a), x, w)


bug(
    name="dense_tanh_derivative_of_preactivation",
    expected="wrong-activation-derivative",
    source="lazyprogrammer/facial-expression-recognition#2",
    forward=dense_tanh,
    wrong=dense_tanh_preactivation_wrong,
    right=dense_tanh_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# PyTorch (pytorch/pytorch#31938, "leaky_relu_ wrong gradient with negative slope"): the
# in-place version took the mask from the output; with slope -2 every output is positive,
# so the gradient is 1 where it should be -2.
# Label: the entries that differ are all off by -0.5, but the others are right, so no one
# factor fits every entry (the table's "g = c·r for one constant c"): each row has its own
# factor (1 or -0.5), a wrong derivative.
NEGATIVE_SLOPE = -2.0


def leaky_relu_negative(x):
    return anp.where(x > 0, x, NEGATIVE_SLOPE * x)


bug(
    name="leaky_relu_mask_from_output_negative_slope",
    expected="wrong-activation-derivative",
    source="pytorch/pytorch#31938",
    forward=leaky_relu_negative,
    wrong=lambda dout, x: (np.where(leaky_relu_negative(x) > 0, dout, NEGATIVE_SLOPE * dout),),
    right=lambda dout, x: (np.where(x > 0, dout, NEGATIVE_SLOPE * dout),),
    signature="(n,i)->(n,i)",
)


# deeplearning4j (deeplearning4j/deeplearning4j#8178, "leaky relu backprop is incorrect"): the
# backprop op did not take the alpha parameter, giving the ReLU derivative 0 on the
# negative side. Here in a dense layer with alpha 0.2.
ALPHA = 0.2


def dense_leaky_relu(x, w, b):
    a = anp.dot(x, w) + b
    return anp.where(a > 0, a, ALPHA * a)


def dense_leaky_relu_backward(dout, x, w, b, *, alpha=ALPHA):
    a = x @ w + b
    return dense_grads(np.where(a > 0, dout, alpha * dout), x, w)


bug(
    name="dense_leaky_relu_backward_ignores_alpha",
    expected="wrong-activation-derivative",
    source="deeplearning4j/deeplearning4j#8178",
    forward=dense_leaky_relu,
    wrong=lambda dout, x, w, b: dense_leaky_relu_backward(dout, x, w, b, alpha=0.0),
    right=dense_leaky_relu_backward,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# mlpack (mlpack/mlpack#1540, "Fixed bug in the derivative of the exponential linear unit";
# the same formula questioned in hughperkins/DeepCL#46): the derivative f(x) + α on the
# negative side was computed from the input, x + α.
def elu(x):
    return anp.where(x > 0, x, anp.exp(anp.minimum(x, 0.0)) - 1.0)


bug(
    name="elu_derivative_from_input",
    expected="wrong-activation-derivative",
    source="mlpack/mlpack#1540; hughperkins/DeepCL#46",
    forward=elu,
    wrong=lambda dout, x: (dout * np.where(x > 0, 1.0, x + 1.0),),
    right=lambda dout, x: (dout * np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))),),
    signature="(n,i)->(n,i)",
)


# nanonn (zserge/nanonn#4, "An error in the derivative of the softplus function"): the
# softplus derivative σ(x) was evaluated on the layer's output instead of its input.
def softplus(x):
    return anp.logaddexp(0.0, x)


bug(
    name="softplus_derivative_of_output",
    expected="wrong-activation-derivative",
    source="zserge/nanonn#4",
    forward=softplus,
    wrong=lambda dout, x: (dout * sigmoid(softplus(x)),),
    right=lambda dout, x: (dout * sigmoid(x),),
    signature="(n,i)->(n,i)",
)


# PyTorch (pytorch/pytorch#55587, "Softplus forward and backward discrepancy"): the forward
# reverts to the identity where input·β > threshold, the backward tested output·β >
# threshold. With β = 3 and threshold 1 (the values of pytorch/pytorch#61568) inputs in
# (0.18, 1/3] get slope 1 instead of σ(3x). Plain NumPy forward.
BETA, THRESHOLD = 3.0, 1.0


def softplus_thresholded(x):
    return np.where(x * BETA > THRESHOLD, x, np.logaddexp(0.0, BETA * x) / BETA)


def softplus_threshold_wrong(dout, x):
    out = softplus_thresholded(x)
    return (dout * np.where(out * BETA > THRESHOLD, 1.0, sigmoid(BETA * x)),)


def softplus_threshold_right(dout, x):
    return (dout * np.where(x * BETA > THRESHOLD, 1.0, sigmoid(BETA * x)),)


bug(
    name="softplus_threshold_tested_on_output",
    expected="wrong-activation-derivative",
    source="pytorch/pytorch#55587",
    forward=softplus_thresholded,
    wrong=softplus_threshold_wrong,
    right=softplus_threshold_right,
    signature="(n,i)->(n,i)",
    options={"bounds": [(0.0, 0.34)]},
    probe=lambda rng, shapes: [rng.uniform(0.19, 0.33, size=shapes[0])],
)


# cs249r_book (harvard-edge/cs249r_book#1399, "fix: GELU gradient mismatch"): the forward used
# the sigmoid approximation x σ(1.702 x), the backward the derivative of the tanh
# approximation, "up to 22% divergence".
def gelu_sigmoid(x):
    return x * sigmoid(1.702 * x)


def gelu_sigmoid_right(dout, x):
    s = sigmoid(1.702 * x)
    return (dout * (s + 1.702 * x * s * (1.0 - s)),)


bug(
    name="gelu_sigmoid_forward_tanh_backward",
    expected="wrong-activation-derivative",
    source="harvard-edge/cs249r_book#1399",
    forward=gelu_sigmoid,
    wrong=lambda dout, x: (dout * gelu_tanh_derivative(x),),
    right=gelu_sigmoid_right,
    signature="(n,i)->(n,i)",
)


# DeepLearningZeroToAll (hunkim/DeepLearningZeroToAll#113, and #25 it points to): with
# sigmoid + cross-entropy the gradient with respect to the logit is σ(z) - y; multiplying
# it once more by σ'(z) (right only for sigmoid + squared error) is a wrong derivative.
# The loss is per entry (reduction "none").
def bce_with_logits(z):
    y = binary_targets(z.shape, z.dtype)
    return anp.logaddexp(0.0, z) - y * z


def bce_logits_extra_derivative_wrong(dout, z):
    s = sigmoid(z)
    return (dout * (s - binary_targets(z.shape, z.dtype)) * s * (1.0 - s),)


bug(
    name="bce_with_logits_extra_sigmoid_derivative",
    expected="wrong-activation-derivative",
    source="hunkim/DeepLearningZeroToAll#113",
    forward=bce_with_logits,
    wrong=bce_logits_extra_derivative_wrong,
    right=lambda dout, z: (dout * (sigmoid(z) - binary_targets(z.shape, z.dtype)),),
    signature="(n,k)->(n,k)",
)


# candle (huggingface/candle#1160): the tanh-GELU derivative with six-digit constants, checked
# in float64, where a relative error of 2e-7 is far beyond rounding: each entry is δ times
# a function of x that is not φ' (see the float32 precision entry below).
# Label: a relative error of 2e-7 is also about what float32 rounding would give, which
# the precision class accepts in a float64 check; but the table gives a failure the first
# class whose pattern it shows, and a factor per row comes before precision.
bug(
    name="gelu_tanh_derivative_six_digit_constants",
    expected="wrong-activation-derivative",
    source="huggingface/candle#1160",
    forward=gelu_tanh,
    wrong=lambda dout, x: gelu_tanh_constants_wrong(dout, x, digits=6),
    right=gelu_tanh_right,
    signature="(n,i)->(n,i)",
)


# ==== missing-term ================================================================================

# Normalisation without an affine part: when its input gradient is wrong nothing else can
# be, so "input-gradient-only" (which comes first in the table) cannot claim these.


def batchnorm_plain(x):
    """Batch normalisation without scale and shift (affine=False)."""
    mu = anp.mean(x, axis=0)
    centred = x - mu
    return centred / anp.sqrt(anp.mean(centred * centred, axis=0) + EPS)


def layernorm_plain(x):
    """Layer normalisation without scale and shift."""
    mu = anp.mean(x, axis=1, keepdims=True)
    centred = x - mu
    return centred / anp.sqrt(anp.mean(centred * centred, axis=1, keepdims=True) + EPS)


def batchnorm_plain_right(dout, x):
    xhat, inv = norm_parts(x, 0)
    return (norm_input_grad(dout, xhat, inv, 0),)


# CrypTen (facebookresearch/CrypTen#143, "Fix batchnorm input gradient"): in training mode
# "the backward() implementation ignores the fact that the mean and variance are a
# function of the input".
bug(
    name="batchnorm_statistics_treated_as_constants",
    expected="missing-term",
    source="facebookresearch/CrypTen#143",
    forward=batchnorm_plain,
    wrong=lambda dout, x: (dout * norm_parts(x, 0)[1],),
    right=batchnorm_plain_right,
    signature="(n,d)->(n,d)",
    options={"sizes": {"n": (2, 4)}},
)


# functorch (pytorch/functorch#807): "the saved mean and rstd don't propagate the gradients
# from the input"; a layer-norm backward built on them treats the row statistics as
# constants.
def layernorm_plain_right(dout, x):
    xhat, inv = norm_parts(x, 1)
    return (norm_input_grad(dout, xhat, inv, 1),)


bug(
    name="layernorm_statistics_treated_as_constants",
    expected="missing-term",
    source="pytorch/functorch#807",
    forward=layernorm_plain,
    wrong=lambda dout, x: (dout * norm_parts(x, 1)[1],),
    right=layernorm_plain_right,
    signature="(n,d)->(n,d)",
    options={"sizes": {"d": (2, 4)}},
)


# ladder (abhiskk/ladder#2, "Normalization variance calculation backprop"): the variance was
# computed from a detached tensor, so only the path through the mean reaches the input.
def batchnorm_variance_detached_wrong(dout, x):
    inv = norm_parts(x, 0)[1]
    return (inv * (dout - dout.mean(axis=0, keepdims=True)),)


bug(
    name="batchnorm_variance_detached",
    expected="missing-term",
    source="abhiskk/ladder#2",
    forward=batchnorm_plain,
    wrong=batchnorm_variance_detached_wrong,
    right=batchnorm_plain_right,
    signature="(n,d)->(n,d)",
    options={"sizes": {"n": (2, 4)}},
)


# Salimans & Kingma, "Weight Normalization" (2016), §2.1: with w = g v/‖v‖ the gradient of v
# is (g/‖v‖)(∇w - (v·∇w) v/‖v‖²); the projection term is the one dropped when ‖v‖ is treated
# as a constant. One norm per output unit (column of v).
def weight_normalized_dense(x, v, g):
    norm = anp.sqrt(anp.sum(v * v, axis=0))
    return anp.dot(x, v * (g / norm))


def weight_norm_backward(dout, x, v, g, *, projection=True):
    norm = np.sqrt(np.sum(v * v, axis=0))
    w = v * (g / norm)
    dw = x.T @ dout
    dg = np.sum(dw * v, axis=0) / norm
    dv = dw * (g / norm)
    if projection:
        dv = dv - v * (g * dg / norm**2)
    return dout @ w.T, dv, dg


bug(
    name="weight_norm_norm_treated_as_constant",
    expected="missing-term",
    source="Salimans & Kingma, Weight Normalization (2016), §2.1",
    forward=weight_normalized_dense,
    wrong=lambda dout, x, v, g: weight_norm_backward(dout, x, v, g, projection=False),
    right=weight_norm_backward,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# Zhang & Sennrich, "Root Mean Square Layer Normalization" (2019), §3: the gradient of
# x / RMS(x) carries a term through the RMS statistic; treating the statistic as a
# constant (as pytorch/functorch#807 does for layer norm) drops it.
def rmsnorm_plain(x):
    return x / anp.sqrt(anp.mean(x * x, axis=1, keepdims=True) + EPS)


def rmsnorm_backward(dout, x, *, through_rms=True):
    rms = np.sqrt(np.mean(x * x, axis=1, keepdims=True) + EPS)
    dx = dout / rms
    if through_rms:
        dx = dx - x * np.mean(dout * x, axis=1, keepdims=True) / rms**3
    return (dx,)


bug(
    name="rmsnorm_statistic_treated_as_constant",
    expected="missing-term",
    source="Zhang & Sennrich, RMSNorm (2019), §3; cf. pytorch/functorch#807",
    forward=rmsnorm_plain,
    wrong=lambda dout, x: rmsnorm_backward(dout, x, through_rms=False),
    right=rmsnorm_backward,
    signature="(n,d)->(n,d)",
    options={"sizes": {"d": (2, 4)}},
)


# ==== precision ===================================================================================

# The table's class for float32 rounding, not logic. A correct formula evaluated with
# narrower arithmetic than the check asks for.


# candle (huggingface/candle#1160, "derivative for GELU") wrote the tanh-GELU derivative with
# six-digit constants (0.797885, 0.0356774, 0.398942, 0.0535161) beside a forward that uses
# √(2/π) and 0.044715. At six digits float32 cannot tell (error/bound 0.45 on the zoo's
# draws; the float64 entry below catches it). Hand-written GELUs with five-digit constants
# (0.79788, 0.035677, 0.39894, 0.053516) are common; checked in float32 their error is a
# small multiple of float32 rounding: the implied φ' differs from φ' by about as much as
# rounding explains, which is the precision class, not a wrong derivative.
bug(
    name="gelu_tanh_derivative_five_digit_constants_float32",
    expected="precision",
    source="huggingface/candle#1160 (six digits there; five here)",
    forward=gelu_tanh,
    wrong=gelu_tanh_constants_wrong,
    right=gelu_tanh_right,
    signature="(n,i)->(n,i)",
    options={"dtypes": ("float32",)},
)


# FlagGems (flagos-ai/FlagGems#4295, "Accumulate ... low-precision gradients in float32"): a
# backward that accumulates in a narrower type than its inputs. Here a float64 layer whose
# weight gradient is accumulated in a float32 buffer: right formula, float32 rounding.
# Label: 1e6 times the float64 bound, which the table's "within a small factor of the
# bound (float32 rounding, not logic)" reads, in a float64 check, as the bound the same
# gradient would have in float32 (gradcheck/diagnosis/classes.py says so): precision.
def affine_float32_buffer_wrong(dout, x, w, b):
    dw = np.zeros(w.shape, dtype=np.float32)
    dw += x.T @ dout
    return dout @ w.T, dw.astype(x.dtype), dout.sum(axis=0)


bug(
    name="dense_weight_grad_float32_buffer",
    expected="precision",
    source="flagos-ai/FlagGems#4295",
    forward=affine,
    wrong=affine_float32_buffer_wrong,
    right=affine_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# The same accumulation written as an explicit round trip through float32.
def affine_float32_round_trip_wrong(dout, x, w, b):
    dw = (x.T.astype(np.float32) @ dout.astype(np.float32)).astype(x.dtype)
    return dout @ w.T, dw, dout.sum(axis=0)


bug(
    name="dense_weight_grad_float32_round_trip",
    expected="precision",
    source="flagos-ai/FlagGems#4295",
    forward=affine,
    wrong=affine_float32_round_trip_wrong,
    right=affine_right,
    signature="(n,i),(i,j),(j)->(n,j)",
)


# ==== unknown =====================================================================================

# oneDNN (uxlfoundation/oneDNN#616, "Backward pass of the logsoftmax primitive seems to be
# incorrect"): diff_src = diff_dst - Σ(diff_dst · dst), weighting by the log-probabilities
# themselves where exp(dst) · Σ diff_dst is needed. Plain NumPy forward.
bug(
    name="log_softmax_weighted_by_log_output",
    expected="unknown",
    source="uxlfoundation/oneDNN#616",
    forward=log_softmax_np,
    wrong=lambda dout, x: (dout - np.sum(dout * log_softmax_np(x), axis=-1, keepdims=True),),
    right=log_softmax_right,
    signature="(n,j)->(n,j)",
)


# OneFlow (Oneflow-Inc/oneflow#6149, "fix backward index for gamma beta"): layer norm's
# weight and bias gradients came out swapped.
# Label: γ is a 1-D parameter but a scale, not a bias, and its gradient differs too, so
# bias-only ("only the gradient of a 1-D bias parameter differs") does not apply; the
# table has no class for two swapped gradients: unknown.
def layernorm_swapped_wrong(dout, x, gamma, beta):
    dx, dgamma, dbeta = layernorm_backward(dout, x, gamma, beta)
    return dx, dbeta, dgamma


bug(
    name="layernorm_gamma_beta_grads_swapped",
    expected="unknown",
    source="Oneflow-Inc/oneflow#6149",
    forward=layernorm,
    wrong=layernorm_swapped_wrong,
    right=layernorm_backward,
    signature="(n,d),(d),(d)->(n,d)",
    options={"sizes": {"d": (2, 4)}},
)


# Goodfellow et al., Deep Learning, §6.5.7, as translated in exacity/deeplearningbook-chinese
# #127: the ReLU's backward zeroes the gradient where the *input* was negative, not where the
# gradient itself is negative. Plain NumPy forward.
# Label: dout ⊙ [dout > 0] is not linear in dout, so it is no Jacobian, let alone one with a
# wrong derivative; where only entries with dout < 0 differ it looks like a dropped term,
# but draws with dout > 0 where x < 0 contradict that: unknown.
def relu(x):
    return np.maximum(x, 0.0)


bug(
    name="relu_mask_from_upstream_gradient",
    expected="unknown",
    source="exacity/deeplearningbook-chinese#127 (Goodfellow et al. §6.5.7)",
    forward=relu,
    wrong=lambda dout, x: (dout * (dout > 0),),
    right=lambda dout, x: (dout * (x > 0),),
    signature="(n,i)->(n,i)",
)


# AiDotNet.Tensors (ooples/AiDotNet.Tensors#49): the engine's attention backward returned
# "swapped/incorrect values" for dQ/dK/dV. Re-created as dQ and dK swapped (Q and K of
# the same shape).
def attention_qk_swapped_wrong(dout, q, k, v):
    dq, dk, dv = attention_backward(dout, q, k, v)
    return dk, dq, dv


bug(
    name="attention_query_key_grads_swapped",
    expected="unknown",
    source="ooples/AiDotNet.Tensors#49",
    forward=attention,
    wrong=attention_qk_swapped_wrong,
    right=attention_backward,
    signature="(s,d),(s,d),(s,e)->(s,e)",
    options={"max_size": 3},
)


# AiDotNet.Tensors (ooples/AiDotNet.Tensors#49): the attention backward must push dP
# through the full softmax Jacobian-vector product; here it keeps only the diagonal
# p(1 - p), the libnd4j#440 mistake inside attention. The coupling is ignored *inside*
# the layer (between the scores), not in the layer's own Jacobian, which shows no
# diagonal-kept pattern to a checker that sees only the layer: by the table's observable
# patterns this is unknown. (Label kept after review: the table defines coupling-ignored on
# the layer's own Jacobian, which here keeps its cross terms, only wrong ones.)
bug(
    name="attention_softmax_diagonal_only",
    expected="unknown",
    source="ooples/AiDotNet.Tensors#49; deeplearning4j/libnd4j#440",
    forward=attention,
    wrong=lambda dout, q, k, v: attention_backward(dout, q, k, v, vjp=softmax_vjp_diagonal),
    right=attention_backward,
    signature="(s,d),(t,d),(t,e)->(s,e)",
    options={"max_size": 3},
)


# mlpack (mlpack/mlpack#2360, "error in backward function in log softmax"; again in #3468):
# for the input (0.1, 0.9) and gy = (1, 1) the layer's backward gave (1.31003, 1.68997)
# where (0.3799, -0.3799) is right, "adds gy in place of the Kronecker delta". Those are
# exp(y) + gy: the probabilities added to the upstream gradient. Plain NumPy forward.
bug(
    name="log_softmax_backward_adds_probabilities",
    expected="unknown",
    source="mlpack/mlpack#2360",
    forward=log_softmax_np,
    wrong=lambda dout, x: (dout + np.exp(log_softmax_np(x)),),
    right=log_softmax_right,
    signature="(n,j)->(n,j)",
)


# numpy_neural_network (yizt/numpy_neural_network#6, on the tanh backward; the author confirmed
# it was written wrong): tanh_backward(next_dz) returned 1 - tanh(next_dz)², the derivative
# evaluated at the upstream gradient and never multiplied by it; not even linear in δ.
bug(
    name="tanh_backward_of_upstream_gradient",
    expected="unknown",
    source="yizt/numpy_neural_network#6",
    forward=tanh_layer,
    wrong=lambda dout, x: (1.0 - np.tanh(dout) ** 2,),
    right=lambda dout, x: (dout * (1.0 - np.tanh(x) ** 2),),
    signature="(n,i)->(n,i)",
)


# ---- numbers the reports quote ------------------------------------------------------------------

#: For entries whose report quotes concrete numbers: (arguments, dout, dtype, what the
#: buggy code gave, what is right), one gradient per argument, NaN where it gave NaN.
#: tests/test_zoo.py checks that the re-created backward passes give the same numbers.
REPORTED_NUMBERS: dict[str, tuple[Any, ...]] = {
    # "Backward: 1.31003 1.68997" against PyTorch's "tensor([ 0.3799, -0.3799])"
    "log_softmax_backward_adds_probabilities": (
        ([[0.1, 0.9]],),
        [[1.0, 1.0]],
        "float64",
        ([[1.31003, 1.68997]],),
        ([[0.3799, -0.3799]],),
    ),
    # a = [-1., 1.], slope -2: "Output is tensor([1., 1.])", "Expected ... tensor([-2., 1.])"
    "leaky_relu_mask_from_output_negative_slope": (
        ([[-1.0, 1.0]],),
        [[1.0, 1.0]],
        "float64",
        ([[1.0, 1.0]],),
        ([[-2.0, 1.0]],),
    ),
    # pytorch/pytorch#61568 (the same bug, per the thread): input 0.2736, beta 3, threshold
    # 1: "The expected gradient for input is 0.69440615, compared with 1.0"
    "softplus_threshold_tested_on_output": (
        ([[0.2736]],),
        [[1.0]],
        "float64",
        ([[1.0]],),
        ([[0.69440615]],),
    ),
    # "with e.g. an input of -5, exp(125) is being calculated ... for torch this is inf"
    "sigmoid_surrogate_exp_overflow": (
        ([[-5.0]],),
        [[1.0]],
        "float32",
        ([[np.nan]],),
        ([[25.0 * float(np.exp(-125.0))]],),
    ),
    # the first input of the report, -548.3162 in f32, "gives ... NaN" for the gradient
    "dense_sigmoid_exp_overflow": (
        ([[-548.3162]], [[1.0]], [0.0]),
        [[1.0]],
        "float32",
        ([[np.nan]], [[np.nan]], [np.nan]),
        ([[0.0]], [[0.0]], [0.0]),
    ),
}


BY_NAME: dict[str, Bug] = {entry.name: entry for entry in ZOO}
assert len(BY_NAME) == len(ZOO), "zoo entry names must be unique"
assert set(REPORTED_NUMBERS) <= set(BY_NAME)
