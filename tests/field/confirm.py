"""Independent confirmations for the field corpus: never gradcheck.

Every outcome in docs/field.md that is not a plain pass rests on a computation from this
module, written for the corpus and sharing no code with gradcheck:

- `mp_gradient`: ∂E/∂x entry by entry for E written with mpmath on object arrays of
  `mpmath.mpf` (an independent re-implementation of the layer's mathematics), by
  `mpmath.diff` at `DIGITS` significant digits. The re-implementation is tied to the
  library by `mp_forward` (its output must match the library's forward to the library's
  working precision), so the value confirms the gradient of what the library computes.
- `complex_step_gradient`: Im⟨δ, f(x + i·h·e_k)⟩ / h with h = 1e-150 on the library's own
  forward, for code that is complex-analytic in x (no abs, max, comparisons or float32
  buffers on the perturbed values): no subtraction, so exact to float64 rounding.
- `longdouble_richardson`: central differences in np.longdouble (x86's 80-bit extended,
  u = 5.4e-20) at steps h, h/2, h/4 with Richardson extrapolation, on the library's own
  forward when it computes in the dtype it is given.

The helpers take and return plain numpy float64 arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    import mpmath
except ImportError:  # the field extra installs it; without it the corpus is skipped
    import pytest

    pytest.skip("the field corpus needs mpmath", allow_module_level=True)

#: Significant digits of every mpmath computation.
DIGITS = 50

MpArray = np.ndarray  # object arrays of mpmath.mpf


def mp_array(values: Any) -> MpArray:
    """An object array of mpf holding the float values exactly."""
    array = np.asarray(values, dtype=np.float64)
    flat = [mpmath.mpf(float(v)) for v in array.reshape(-1)]
    result = np.empty(len(flat), dtype=object)
    result[:] = flat
    return result.reshape(array.shape)


def mp_map(function: Callable[[Any], Any], array: MpArray) -> MpArray:
    """function applied to every entry of an object array (mpmath.tanh, mpmath.exp ...)."""
    result = np.empty(array.shape, dtype=object)
    for index in np.ndindex(array.shape):
        result[index] = function(array[index])
    return result


def mp_sigmoid(x: Any) -> Any:
    return 1 / (1 + mpmath.exp(-x))


def to_float(array: MpArray) -> np.ndarray:
    return np.vectorize(float, otypes=[np.float64])(array) if array.shape else np.float64(array)


def mp_forward(forward: Callable[..., MpArray], arrays: Sequence[Any]) -> np.ndarray:
    """The mpmath re-implementation's output, rounded to float64."""
    with mpmath.workdps(DIGITS):
        out = forward(*[mp_array(a) for a in arrays])
        return to_float(np.asarray(out, dtype=object))


def mp_energy(
    forward: Callable[..., MpArray], arrays: Sequence[MpArray], dout: MpArray
) -> mpmath.mpf:
    out = np.asarray(forward(*arrays), dtype=object)
    return mpmath.fsum(np.asarray(out * dout, dtype=object).reshape(-1))


def mp_gradient(
    forward: Callable[..., MpArray],
    arrays: Sequence[Any],
    dout: Any,
    which: int,
) -> np.ndarray:
    """∂E/∂arrays[which] for E = ⟨dout, forward(*arrays)⟩, forward written with mpmath on
    object arrays, by mpmath.diff at DIGITS digits entry by entry (float64 result)."""
    with mpmath.workdps(DIGITS):
        args = [mp_array(a) for a in arrays]
        weights = mp_array(dout)
        x = args[which]
        result = np.empty(x.shape, dtype=np.float64)
        for index in np.ndindex(x.shape):

            def energy(t: Any, index: tuple[int, ...] = index) -> Any:
                moved = x.copy()
                moved[index] = t
                full = list(args)
                full[which] = moved
                return mp_energy(forward, full, weights)

            result[index] = float(mpmath.diff(energy, x[index]))
        return result


def complex_step_gradient(
    forward: Callable[..., Any],
    arrays: Sequence[Any],
    dout: Any,
    which: int,
    h: float = 1e-150,
) -> np.ndarray:
    """Im⟨dout, forward(x + i h e_k)⟩ / h per entry of arrays[which], on the library's own
    forward (which must be complex-analytic in that argument)."""
    args = [np.asarray(a, dtype=np.complex128) for a in arrays]
    weights = np.asarray(dout, dtype=np.float64)
    x = args[which]
    result = np.empty(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        moved = x.copy()
        moved[index] += 1j * h
        full = list(args)
        full[which] = moved
        out = np.asarray(forward(*full))
        result[index] = float(np.sum(weights * out.imag)) / h
    return result


def longdouble_richardson(
    forward: Callable[..., Any],
    arrays: Sequence[Any],
    dout: Any,
    which: int,
    step: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of E in np.longdouble at steps h, h/2, h/4 (h = step·max(1,|x|)),
    extrapolated twice (Richardson); returns (estimate, spread) in float64, the spread
    being |R(h/2) - R(h)|, a pessimistic estimate of the error of the result."""
    wide = np.longdouble
    args = [np.asarray(a).astype(wide) for a in arrays]
    weights = np.asarray(dout).astype(wide)
    x = args[which]
    estimate = np.empty(x.shape, dtype=np.float64)
    spread = np.empty(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        h0 = wide(step) * max(wide(1), abs(x[index]))
        quotients = []
        for k in range(3):
            h = h0 / wide(2**k)
            values = []
            for sign in (1, -1):
                moved = x.copy()
                moved[index] += sign * h
                full = list(args)
                full[which] = moved
                values.append(np.sum(weights * np.asarray(forward(*full)).astype(wide)))
            quotients.append((values[0] - values[1]) / (2 * h))
        first = [(4 * quotients[k + 1] - quotients[k]) / 3 for k in range(2)]
        second = (16 * first[1] - first[0]) / 15
        estimate[index] = float(second)
        spread[index] = float(abs(first[1] - first[0]))
    return estimate, spread


def relative_gap(value: Any, exact: Any) -> float:
    """max |value - exact| / max |exact| (the error relative to the gradient's scale)."""
    value, exact = np.asarray(value, np.float64), np.asarray(exact, np.float64)
    scale = float(np.max(np.abs(exact))) if exact.size else 0.0
    gap = float(np.max(np.abs(value - exact))) if exact.size else 0.0
    return gap / scale if scale > 0 else gap


def mp_zeros(shape: tuple[int, ...]) -> MpArray:
    result = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        result[index] = mpmath.mpf(0)
    return result


# ---- re-implementations of library layers, in mpmath ----------------------------------------


def mp_elu(x: MpArray, alpha: float = 1.0) -> MpArray:
    """ELU(x) = x for x > 0, α(eˣ - 1) otherwise (tinynn, numpy-ml)."""
    return mp_map(lambda v: v if v > 0 else alpha * (mpmath.exp(v) - 1), x)


def mp_conv2d_same(x: MpArray, w: MpArray, b: MpArray) -> MpArray:
    """tinynn's Conv2D, stride 1, padding SAME: x (n, h, w, c), w (p, q, c, k), b (k); the
    k - 1 padded rows go half before, the rest after (get_padding_2d)."""
    n, height, width, _ = x.shape
    p, q, _, k = w.shape
    top, left = (p - 1) // 2, (q - 1) // 2
    padded = mp_zeros((n, height + p - 1, width + q - 1, x.shape[3]))
    padded[:, top : top + height, left : left + width, :] = x
    out = mp_zeros((n, height, width, k))
    for i in range(height):
        for j in range(width):
            patch = padded[:, i : i + p, j : j + q, :].reshape(n, -1)
            out[:, i, j, :] = patch @ w.reshape(-1, k) + b
    return out


def mp_tinynn_rnn(x: MpArray, w_h: MpArray, w_x: MpArray, b: MpArray) -> MpArray:
    """h_t = tanh(W_h h_(t-1) + W_x x_t + b), h_(-1) = 0; the output is the last h."""
    h = mp_zeros((x.shape[0], w_h.shape[0]))
    for t in range(x.shape[1]):
        h = mp_map(mpmath.tanh, h @ w_h.T + x[:, t] @ w_x.T + b)
    return h


def mp_tinynn_lstm(
    x: MpArray,
    wg_h: MpArray,
    wg_x: MpArray,
    bg: MpArray,
    wc_h: MpArray,
    wc_x: MpArray,
    bc: MpArray,
) -> MpArray:
    """tinynn's LSTM: gates (o, i, f) = σ(W_g [h, x_t] + b_g), ĉ = tanh(W_c [h, x_t] + b_c),
    c = f c + i ĉ, h = o tanh(c), from h = c = 0; the output is the last h."""
    n, hidden = x.shape[0], wc_h.shape[0]
    h, c = mp_zeros((n, hidden)), mp_zeros((n, hidden))
    for t in range(x.shape[1]):
        xt = x[:, t]
        o, i, f = (mp_map(mp_sigmoid, h @ wg_h[g].T + xt @ wg_x[g].T + bg[g]) for g in range(3))
        candidate = mp_map(mpmath.tanh, h @ wc_h.T + xt @ wc_x.T + bc)
        c = f * c + i * candidate
        h = o * mp_map(mpmath.tanh, c)
    return h
