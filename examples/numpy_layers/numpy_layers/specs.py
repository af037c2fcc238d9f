"""The library's layers as gradcheck layer specs, for the command line:

gradcheck check numpy_layers.specs:AFFINE
gradcheck check numpy_layers.specs:SOFTMAX     # wrong on purpose: exits 1
"""

from __future__ import annotations

from numpy_layers.functional import (
    affine_backward,
    affine_forward,
    softmax_backward,
    softmax_forward,
)

AFFINE = {
    "forward": affine_forward,
    "backward": affine_backward,
    "signature": "(n,i),(i,j),(j)->(n,j)",
}

SOFTMAX = {
    "forward": softmax_forward,
    "backward": softmax_backward,
    "signature": "(n,j)->(n,j)",
}
