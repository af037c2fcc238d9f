"""The seed's identity: the parameter gradient as A = δ ⊙ B instead of a block-diagonal product.

For one example, with δ (J) the upstream gradient and B (J × P) the unit Jacobian
(row j = ∂f_j/∂θʲ), the parameter gradient is δ · ∂f/∂θ with the J × JP block-diagonal
matrix ∂f/∂θ = blockdiag(B_1, ..., B_J). Stored compactly:

    A = diag(δ) B = δ ⊙ B            (numpy: delta[:, None] * B)

and over a batch of N examples A = Σ_n diag(δ_n) B_n. When every B_n has rank one,
B_n = u_n v_nᵀ, this collapses to the outer products of the seed's special case:

    A = Σ_n (δ_n ⊙ u_n) v_nᵀ

Formula 1, the input gradient, is the plain product δ_in,n = δ_n · ∂f/∂z_n.

Everything here works on numpy arrays and on `Tracked` arrays alike, and broadcasts over
leading axes (a stack of cases).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Above this many entries (N·J·J·P) the block-diagonal product is formed block by block.
EXPLICIT_DENSE_BUDGET = 1 << 20


def compact_gradient(delta: Any, unit_jacobian: Any) -> Any:
    """A = Σ_n diag(δ_n) B_n:  A_jp = Σ_n δ_nj B_njp  (J × P)."""
    return np.einsum("...nj,...njp->...jp", delta, unit_jacobian)


def rank_one_gradient(delta: Any, u: Any, v: Any) -> Any:
    """A = Σ_n (δ_n ⊙ u_n) v_nᵀ for B_n = u_n v_nᵀ:  A_jp = Σ_n δ_nj u_nj v_np."""
    return np.einsum("...nj,...np->...jp", delta * u, v)


def input_gradient(delta: Any, input_jacobian: Any) -> Any:
    """Formula 1: δ_in,ni = Σ_j δ_nj ∂f_nj/∂z_ni  (N × I)."""
    return np.einsum("...nj,...nji->...ni", delta, input_jacobian)


def block_diagonal(unit_jacobian: np.ndarray) -> np.ndarray:
    """∂f/∂θ as the explicit J × JP block-diagonal matrix, one per example: (..., N, J, JP).

    Row j holds B_nj in columns j·P ... j·P + P - 1 and zeros elsewhere.
    """
    *lead, j, p = unit_jacobian.shape
    dense = np.zeros((*lead, j, j, p), dtype=unit_jacobian.dtype)
    units = np.arange(j)
    dense[..., units, units, :] = unit_jacobian
    return dense.reshape(*lead, j, j * p)


def diagonal_block_products(delta: Any, unit_jacobian: Any) -> Any:
    """Σ_n δ_n · blockdiag(B_n) formed one diagonal block at a time: (..., J, P).

    Row j of δ_n · blockdiag(B_n) has only block j nonzero, δ_nj B_nj; summed over the
    batch it is the product δ_:jᵀ B_:j of a 1 × N row and an N × P block, computed for every
    j at once as a stack of matrix products. Neither the J × JP matrix nor its zeros exist.
    """
    rows = np.swapaxes(delta, -1, -2)[..., :, None, :]  # (..., J, 1, N)
    blocks = np.swapaxes(unit_jacobian, -3, -2)  # (..., J, N, P)
    return np.matmul(rows, blocks)[..., 0, :]


def dense_gradient(
    delta: np.ndarray, unit_jacobian: np.ndarray, *, budget: int = EXPLICIT_DENSE_BUDGET
) -> tuple[np.ndarray, str]:
    """∂E/∂θ = Σ_n δ_n · blockdiag(B_n), reshaped to (..., J, P), and how it was formed.

    Explicit matrices while they hold at most `budget` entries in all; above it, block by
    block (`diagonal_block_products`), so memory stays O(NJP) and the J × JP matrix is
    never materialised.
    """
    lead, (j, p) = unit_jacobian.shape[:-3], unit_jacobian.shape[-2:]
    if unit_jacobian.size * j <= budget:
        product = np.einsum("...nj,...njk->...k", delta, block_diagonal(unit_jacobian))
        return product.reshape(*lead, j, p), "explicit"
    return diagonal_block_products(delta, unit_jacobian), "block by block"
