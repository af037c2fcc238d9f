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

#: Above this many entries (N·J·J·P) the block-diagonal matrices are built sparse.
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


def dense_gradient(
    delta: np.ndarray, unit_jacobian: np.ndarray, *, budget: int = EXPLICIT_DENSE_BUDGET
) -> tuple[np.ndarray, str]:
    """∂E/∂θ = Σ_n δ_n · blockdiag(B_n), reshaped to (..., J, P), and how it was formed.

    Explicit matrices while they hold at most `budget` entries in all; above it, for each
    case one sparse (NJ × JP) matrix with the NJP nonzeros, so memory stays O(NJP) and
    the J × JP matrix is never materialised.
    """
    *lead, n, j, p = unit_jacobian.shape
    if unit_jacobian.size * j <= budget:
        product = np.einsum("...nj,...njk->...k", delta, block_diagonal(unit_jacobian))
        return product.reshape(*lead, j, p), "explicit"
    import scipy.sparse

    # Built in CSR form directly: row (n, j) holds its P nonzeros in columns j·P ... j·P + P - 1,
    # already sorted, so scipy need not sort or sum duplicates (as it would from COO).
    row_starts = np.arange(0, n * j * p + 1, p)
    columns = np.tile(np.arange(j * p), n)
    flat_jacobian = unit_jacobian.reshape(-1, n * j * p)
    flat_delta = delta.reshape(-1, n * j)
    products = []
    for values, weights in zip(flat_jacobian, flat_delta, strict=True):
        matrix = scipy.sparse.csr_matrix((values, columns, row_starts), shape=(n * j, j * p))
        products.append(matrix.T @ weights)
    product = np.asarray(products, dtype=unit_jacobian.dtype)
    return product.reshape(*lead, j, p), "sparse"
