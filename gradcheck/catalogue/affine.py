"""The algebra many rows of the layer table start from: [z, 1], a = θʲ·[z, 1], ‖x‖.

Shared by the unit-partitioned rules (`gradcheck.catalogue.layers`) and the coupled
controls built on dense outputs (`gradcheck.catalogue.coupled_layers`). Written with
autograd.numpy, so that autograd differentiates the forwards, and broadcast over leading
axes of z and θ, as every rule of the table is.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp


def augmented(z: Any) -> Any:
    """[z, 1]: the input with a constant 1 appended, so that θʲ·[z, 1] = wʲ·z + b_j."""
    return anp.concatenate([z, anp.ones_like(z[..., :1])], axis=-1)


def affine(z: Any, theta: Any) -> Any:
    """a_nj = θʲ·[z_n, 1], broadcast over leading axes of z and θ (a matrix product,
    which BLAS makes several times faster than einsum on large layers)."""
    return anp.matmul(augmented(z), anp.swapaxes(theta, -1, -2))


def euclidean_norm(x: Any) -> Any:
    """‖x‖ over the last axis."""
    return anp.sqrt(anp.sum(x * x, axis=-1))
