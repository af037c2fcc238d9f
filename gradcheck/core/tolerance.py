"""The error model: every bound gradcheck compares against is derived here, none is tuned.

A hand-written gradient g, computed in the case's dtype, is held against a reference r
computed in float64. A correct g can still differ from r by rounding, so each comparison
allows, entry by entry,

    |g - r|  <=  rounding(g) + error(r)

**rounding(g)** is a running error bound (Wilkinson's running error analysis). The
hand-written rules are evaluated on `Tracked` arrays, which carry beside every value a
first-order bound on its absolute error and propagate it operation by operation, with
u = eps/2 the unit roundoff of the result's dtype and γ_m = m·u / (1 - m·u):

    x ± y        e_x + e_y + u|x ± y|
    x · y        |y| e_x + |x| e_y + e_x e_y + u'|x||y|         u' = u (1 + 2u) >= u
    x / y        (e_x + |x/y| e_y) / (|y| - e_y) + u|x/y|
    φ(x)         |φ'(x)| e_x + c_φ · eps · |φ(x)|     c_φ: the library's accuracy in ulps
    Σ_k x_k      Σ_k e_k + γ_(K-1) Σ_k |x_k|          (any summation order; Higham 4.2)
    x·y (dot)    Σ_k (|x_k| e_y + e_x |y_k|) + γ_K Σ_k |x_k y_k|   (Higham 3.1)

A rounding that may underflow adds η, the smallest subnormal, beside these (Higham's model
fl(x op y) = (x op y)(1 + δ) + η); a function accurate to c ulps adds c·η, since an ulp
of a subnormal result is η. The product's rounding is charged to the operands'
magnitudes rather than to the result's (u'|x||y| bounds u|x y| and, but for u η/2, also
u|fl(x y)|; see `_multiply`), so that each factor of its bound has the shape of an
operand: a product that broadcasts its operands to a larger result, such as the outer
products B_n = u_n v_nᵀ of the dense layers, keeps its error bound and the magnitude bound
(1 + 2u)|x||y| + η as those factors, and a contraction of it (einsum, np.dot, tensordot)
contracts the factors instead of |B| and e_B. Neither is formed at the result's size
unless something reads the error.

Inputs are exact (their error is 0): the float64 references see the very same numbers.
Transcendental functions are charged 4 ulps: numpy documents its SIMD float32 and float64
loops for exp, log, sin, cos and tanh at under 4 ulp, glibc's libm tables list at most
3 ulp for the functions used here on x86-64, and Cephes' erf (used by SciPy) has a peak
relative error of 3.7e-16 in float64 (under 2 ulp).

**error(r)** depends on the oracle and is computed in `gradcheck.core.oracles`:

- autograd evaluates the chain rule for the same forward in float64, on Tracked arrays:
  it is charged the running error bound of its own evaluation, by the same rules.
- finite differences (`gradcheck.core.differences`): R = D₁ + (D₁ - D₂)/3 from the
  central differences at steps h and 2h (h = cbrt(u)·max(1, |x|)), with the error

      Σ_o |δ_o| |D₁,o - D₂,o|                     truncation, output by output
    + (4/3) ρ₁/s₁ + (1/3) ρ₂/s₂                    rounding of the differenced values
    + γ₇ (|D₁| + (|D₁| + |D₂|)/3) + 4η              arithmetic of the quotients and of R

  where ρ_k = Σ_o |δ_o| (e_o(x₊ₖ) + e_o(x₋ₖ)) + γ_(K+1) Σ_o |δ_o| |f_o(x₊ₖ) - f_o(x₋ₖ)| + Kη
  is charged where the differences are taken: a first look uses the forward's running
  bound e_o at x, and an entry that misses its bound there is differenced again with
  e_o evaluated at its stencil points before it counts as a mismatch. Per output,
  because the truncation of different outputs cancels in E while their errors do not.
  An entry whose stencil, estimate or bound is not finite (an overflow within 2h) is not
  resolved: its error is inf and `gradcheck.core.comparison.compare` does not compare it.
- the dense product shares B with the compact form; only the order of the sums differs,
  so the two can differ by at most 2 γ_(N+J) Σ_n |δ_nj| |B_njp| (see `summation_bound`).
  The seed's outer product (δ ⊙ u) vᵀ rounds other products than δ ⊙ fl(u v): the two
  differ by at most 2 γ_(N+2) Σ_n |δ_nj u_nj| |v_np| + η Σ_n ((1 + u)(|δ_nj| + |v_np|)/2 + 1),
  the second term for products that underflow, whose lost η comes back multiplied by
  the other factor (`gradcheck.catalogue.hand_written.rank_one_reference`).

The same `Tracked` arithmetic also finds non-differentiable points: evaluated with an
error equal to the finite-difference step instead of rounding, an activation's declared
kink, a tie between maxout pieces or a norm at zero that falls inside the uncertainty is
recorded as an `Event`, and the checker reports the case as non-differentiable.

**Code the rules do not cover.** A running bound is rigorous only while every operation
goes through a rule. Operations without one raise TypeError; a conversion to a plain
array (``np.asarray`` on a Tracked value whose error is not zero, or assigning one into a
plain array) drops the error, and is recorded as an event of kind "untracked" so that a
caller knows the bound is incomplete. `gradcheck.user.api` runs hand-written code of users
on Tracked arrays first and, where that fails or is lossy, falls back to a documented
model instead (see "The fallback model for user code" below).

**The fallback model for user code** (an assumption, not a theorem; `gradcheck.user.api`
says in every result which model each side used). When a user's backward, or autograd's
evaluation of a user's forward, cannot be bounded by running it on Tracked arrays, the
side without a running bound is charged the sum of

- the running bound of the other side, re-scaled to its own dtype (u_dtype / u_other):
  both evaluate the same chain rule for the same forward, so they meet the same
  magnitudes and cancellations;
- γ_m(dtype) · M, with M_k = Σ_o |δ_o| |∂f_o/∂x_k| the magnitude of the terms summed into
  gradient entry k (the Jacobian from central differences) and m the number of forward
  inputs and outputs, a generous count of the roundings one entry's chain rule adds up;
- for the hand-written side, its rounding as measured by running the same code in a
  higher precision (float64 for float32, x86's 80-bit long double for float64, where
  numpy has it): |g - g_hi| / (1 - u_hi/u), which bounds the error of g if the error of
  g_hi is u_hi/u times as large (the same operations in both precisions).

A forward without a running bound (finite differences need its rounding) is charged
γ_m(float64) · |f| per output plus its measured rounding, the same way, evaluated at every
point the differences take from the outputs there. The precision it really computes in
is measured (`gradcheck.user.noise`: residuals of polynomial fits through random points
along a random direction, and whether its outputs lie on a float32 grid where the
inputs do not); where the model falls short, the forward is charged the model scaled to
the precision that covers what was measured (a power of two up to 2¹⁰ for a float64
computation with more roundings than counted; u_p/u₆₄ for float32, float16 or bfloat16
buffers inside a float64 call), its differences step by cbrt(u_p)·max(1, |x|), and its
backward is charged at u_p too (plus u_p|g| for storing in it). A forward noisier than
bfloat16 cannot be resolved by differences: the example is redrawn and says so. Where the
hand-written side does have a running bound, it is charged the larger of that bound and
the measured rounding: a constant rounded to float32 in a plain array
(``np.where(x > 0, 1.0, 0.1).astype(np.float32)``) is invisible to the running bound,
while the references use the float64 constant of the same code.

**The compact identity of a user's layer** (δ ⊙ B with B the per-unit blocks of the
finite-difference Jacobian, for a parameter the structure analysis finds partitioned)
carries, besides the error of the blocks it sums, Σ_(o outside e's unit) |δ_o| (|J_oe| +
err_oe): "partitioned" means every cross-unit entry is zero within its error, not zero.

Where the pieces live: `rounding` (u, γ_m, η, `summation_bound`), `events` (kinks and
ties met while evaluating), `ufunc_rules` and `array_rules` (one rule per numpy
function), `tracked` (the Tracked type), `expansions` (outer-product error factors);
`gradcheck.core.differences` the finite differences' error model.
This module gathers them: import the error model from here. Free of I/O, hypothesis and
pytest.
"""

from __future__ import annotations

# Importing array_rules fills Tracked's table of array-function rules.
from gradcheck.core import array_rules  # noqa: F401
from gradcheck.core.events import Event, record, recording
from gradcheck.core.rounding import (
    CORRECTLY_ROUNDED_ULPS,
    TRANSCENDENTAL_ULPS,
    FloatArray,
    gamma,
    summation_bound,
    underflow,
    unit_roundoff,
)
from gradcheck.core.tracked import Tracked, track, value_of

__all__ = [
    "CORRECTLY_ROUNDED_ULPS",
    "TRANSCENDENTAL_ULPS",
    "Event",
    "FloatArray",
    "Tracked",
    "gamma",
    "record",
    "recording",
    "summation_bound",
    "track",
    "underflow",
    "unit_roundoff",
    "value_of",
]
