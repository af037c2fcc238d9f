"""Layers people write by hand, in plain NumPy (forwards in autograd.numpy, so that
autograd is an oracle too), each with a deliberately wrong backward.

Shapes follow the signatures of README.md's "Signatures of common layers" (NCHW images);
tests/test_user_layers.py checks them. Each wrong backward is a bug met in practice:
a sign, an off-by-one loop, a stride forgotten, kernel rows left out, a gradient routed
to the wrong window entry, the wrong averaging, a transposed reshape, an
assignment where a sum belongs, a path dropped, a term forgotten, a mask ignored.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

# ---- dense ------------------------------------------------------------------------------------


def dense_forward(x, w, b):
    return anp.dot(x, w) + b


def dense_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def dense_backward_wrong(dout, x, w, b):
    return -(dout @ w.T), x.T @ dout, dout.sum(axis=0)  # the sign of dx


# ---- convolution (cross-correlation, NCHW) ----------------------------------------------------


def _pad(x, ph, pw):
    return anp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant")


def convolution(x, w, b, stride=1, padding=(0, 0)):
    """out[n, k, r, s] = b[k] + Σ_c,i,j w[k, c, i, j] x_padded[n, c, stride r + i, stride s + j]."""
    _, _, h, width = x.shape
    _, _, p, q = w.shape
    padded = _pad(x, *padding)
    rows = (h + 2 * padding[0] - p) // stride + 1
    cols = (width + 2 * padding[1] - q) // stride + 1
    out = 0.0
    for i in range(p):
        for j in range(q):
            patch = padded[:, :, i : i + stride * rows : stride, j : j + stride * cols : stride]
            out = out + anp.einsum("nchw,kc->nkhw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def convolution_backward(
    dout, x, w, b, stride=1, padding=(0, 0), kernel_rows=None, row_stride=None
):
    """(dx, dw, db). kernel_rows and row_stride plant bugs: dw summed over those kernel
    rows only, dx scattered with another stride along the rows."""
    _, _, h, width = x.shape
    _, _, p, q = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    rows, cols = dout.shape[2:]
    dpadded = np.zeros_like(padded)
    dw = np.zeros_like(w)
    down = stride if row_stride is None else row_stride
    for i in range(p):
        for j in range(q):
            patch = padded[:, :, i : i + stride * rows : stride, j : j + stride * cols : stride]
            if kernel_rows is None or i in kernel_rows:
                dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dout, patch)
            window = (slice(None), slice(None))
            window += (slice(i, i + down * rows, down), slice(j, j + stride * cols, stride))
            dpadded[window] += np.einsum("nkhw,kc->nchw", dout, w[:, :, i, j])
    top, left = padding
    dx = dpadded[:, :, top : top + h, left : left + width].copy()
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_valid_forward(x, w, b):
    return convolution(x, w, b)


def conv_valid_backward(dout, x, w, b):
    return convolution_backward(dout, x, w, b)


def conv_valid_backward_wrong(dout, x, w, b):
    return convolution_backward(dout, x, w, b, kernel_rows=range(w.shape[2] - 1))  # p - 1


def conv_strided_forward(x, w, b):
    return convolution(x, w, b, stride=2)


def conv_strided_backward(dout, x, w, b):
    return convolution_backward(dout, x, w, b, stride=2)


def conv_strided_backward_wrong(dout, x, w, b):
    return convolution_backward(dout, x, w, b, stride=2, row_stride=1)  # forgotten on rows


def _same(w):
    return ((w.shape[2] - 1) // 2, (w.shape[3] - 1) // 2)


def conv_same_forward(x, w, b):
    return convolution(x, w, b, padding=_same(w))


def conv_same_backward(dout, x, w, b):
    return convolution_backward(dout, x, w, b, padding=_same(w))


def conv_same_backward_wrong(dout, x, w, b):
    """dw from the kernel's centre row only, as if the padding rows never met a tap."""
    centre = (w.shape[2] - 1) // 2
    return convolution_backward(dout, x, w, b, padding=_same(w), kernel_rows=(centre,))


# ---- pooling and flatten ----------------------------------------------------------------------


def _windows(x):
    n, c, h, w = x.shape
    cropped = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return anp.reshape(cropped, (n, c, h // 2, 2, w // 2, 2))


def _spread(x, per_window):
    """dx: per_window (n, c, h//2, 2, w//2, 2) into x's shape, zero where the windows crop."""
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    dx[:, :, : h // 2 * 2, : w // 2 * 2] = per_window.reshape(n, c, h // 2 * 2, w // 2 * 2)
    return dx


def max_pool_forward(x):
    return anp.max(_windows(x), axis=(3, 5))


def max_pool_backward(dout, x):
    windows = _windows(x)
    largest = windows == windows.max(axis=(3, 5), keepdims=True)  # ties are kinks: redrawn
    return _spread(x, largest * dout[:, :, :, None, :, None])


def max_pool_backward_wrong(dout, x):
    first = np.zeros(_windows(x).shape, dtype=x.dtype)
    first[:, :, :, 0, :, 0] = 1.0  # the top-left entry of each window, not the largest
    return _spread(x, first * dout[:, :, :, None, :, None])


def mean_pool_forward(x):
    return anp.mean(_windows(x), axis=(3, 5))


def mean_pool_backward(dout, x):
    return _spread(x, np.ones(_windows(x).shape, x.dtype) * dout[:, :, :, None, :, None] / 4)


def mean_pool_backward_wrong(dout, x):
    return _spread(x, np.ones(_windows(x).shape, x.dtype) * dout[:, :, :, None, :, None] / 2)


def flatten_forward(x):
    return anp.reshape(x, (x.shape[0], -1))  # a view of x: checked with allow_aliases=True


def flatten_backward(dout, x):
    return dout.reshape(x.shape)


def flatten_backward_wrong(dout, x):
    n, c, h, w = x.shape
    return dout.reshape(n, h, w, c).transpose(0, 3, 1, 2)  # as if x were channels-last


# ---- embedding --------------------------------------------------------------------------------


def embedding_forward(indices, w):
    return w[indices]


def embedding_backward(dout, indices, w):
    dw = np.zeros_like(w)
    np.add.at(dw, indices, dout)
    return dw  # one gradient: the indices are not differentiated


def embedding_backward_wrong(dout, indices, w):
    dw = np.zeros_like(w)
    dw[indices] = dout  # a repeated index keeps one of its rows instead of their sum
    return dw


# ---- recurrent cells ----------------------------------------------------------------------------


def rnn_forward(x, h, wx, wh, b):
    return anp.tanh(anp.dot(x, wx) + anp.dot(h, wh) + b)


def rnn_backward(dout, x, h, wx, wh, b):
    da = dout * (1.0 - np.tanh(x @ wx + h @ wh + b) ** 2)
    return da @ wx.T, da @ wh.T, x.T @ da, h.T @ da, da.sum(axis=0)


def _sigmoid(a):
    return 1.0 / (1.0 + anp.exp(-a))


def lstm_forward(x, h, c, wx, wh, b):
    """One LSTM step: gates i, f, o, g stacked along the last axis of wx, wh, b."""
    a = anp.dot(x, wx) + anp.dot(h, wh) + b
    units = h.shape[1]
    i, f, o = (_sigmoid(a[:, k * units : (k + 1) * units]) for k in range(3))
    g = anp.tanh(a[:, 3 * units :])
    c_next = f * c + i * g
    return o * anp.tanh(c_next), c_next


def lstm_backward(dh_next, dc_next, x, h, c, wx, wh, b, *, through_c=True):
    a = x @ wx + h @ wh + b
    units = h.shape[1]
    i, f, o = (_sigmoid(a[:, k * units : (k + 1) * units]) for k in range(3))
    g = np.tanh(a[:, 3 * units :])
    c_next = f * c + i * g
    dc = dh_next * o * (1.0 - np.tanh(c_next) ** 2)
    if through_c:
        dc = dc + dc_next
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),
            dc * c * f * (1.0 - f),
            dh_next * np.tanh(c_next) * o * (1.0 - o),
            dc * i * (1.0 - g * g),
        ],
        axis=1,
    )
    return da @ wx.T, da @ wh.T, dc * f, x.T @ da, h.T @ da, da.sum(axis=0)


def lstm_backward_wrong(dh_next, dc_next, x, h, c, wx, wh, b):
    return lstm_backward(dh_next, dc_next, x, h, c, wx, wh, b, through_c=False)  # dc dropped


# ---- softmax cross-entropy with integer labels -------------------------------------------------


def cross_entropy_forward(logits, labels):
    shifted = logits - anp.max(logits, axis=1, keepdims=True)
    log_probabilities = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    return -anp.mean(log_probabilities[np.arange(logits.shape[0]), labels])


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_backward(dout, logits, labels):
    p = _softmax(logits)
    p[np.arange(len(labels)), labels] -= 1.0
    return dout * p / len(labels)  # the labels get no gradient


def cross_entropy_backward_wrong(dout, logits, labels):
    return dout * _softmax(logits) / len(labels)  # the one-hot labels never subtracted


# ---- attention with a key mask -------------------------------------------------------------------

MASKED = -1e9  # a masked key's score: its weight underflows to exactly 0


def attention_forward(q, k, v, mask):
    """Scaled dot-product attention; mask[n, t] True hides key t from every query."""
    scores = anp.einsum("nsd,ntd->nst", q, k) / q.shape[2] ** 0.5
    scores = anp.where(mask[:, None, :], MASKED, scores)
    e = anp.exp(scores - anp.max(scores, axis=2, keepdims=True))
    return anp.einsum("nst,nte->nse", e / anp.sum(e, axis=2, keepdims=True), v)


def attention_backward(dout, q, k, v, mask, *, masked=True):
    scale = 1.0 / q.shape[2] ** 0.5
    scores = np.einsum("nsd,ntd->nst", q, k) * scale
    if masked:
        scores = np.where(mask[:, None, :], MASKED, scores)
    e = np.exp(scores - scores.max(axis=2, keepdims=True))
    weights = e / e.sum(axis=2, keepdims=True)
    dv = np.einsum("nst,nse->nte", weights, dout)
    dweights = np.einsum("nse,nte->nst", dout, v)
    dscores = weights * (dweights - np.sum(dweights * weights, axis=2, keepdims=True))
    if masked:
        dscores = np.where(mask[:, None, :], 0.0, dscores)
    dq = np.einsum("nst,ntd->nsd", dscores, k) * scale
    dk = np.einsum("nst,nsd->ntd", dscores, q) * scale
    return dq, dk, dv  # the mask gets no gradient


def attention_backward_wrong(dout, q, k, v, mask):
    return attention_backward(dout, q, k, v, mask, masked=False)  # the softmax as if unmasked
