"""What a network check returns, and the blame: which layer is wrong, and what in it.

`gradcheck.catalogue.network_comparisons` fills, for every layer ℓ, two lists of
comparisons: the recursion's (A^ℓ and δ^(ℓ-1) as the hand-written backprop propagated
them) and the layer's own (the same rules fed autograd's δ^ℓ). This module reads them:

- a layer whose own checks fail is *wrong*, and `judge` names the part: its input
  Jacobian, its unit Jacobian B, or its compaction (A is not δ ⊙ B of its own B: the
  dense product disagrees); a layer whose own checks pass while the recursion's fail
  only *inherits a wrong δ* from above;
- `blame` picks the first wrong thing from the output down: the loss rule, else the
  wrong layer nearest the output;
- `network_result` gives the verdict, in the order of `gradcheck.catalogue.network_checker`.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradcheck.catalogue.network import StackedNetworks
from gradcheck.core.comparison import disagreement
from gradcheck.core.results import Comparison, Verdict

_PARTS = {"parameters": "unit Jacobian B", "inputs": "input Jacobian"}
_SYMBOLS = {"parameters": "∂E/∂θ", "inputs": "∂E/∂z (formula 1)", "outputs": "∂E/∂z^L"}


@dataclass(frozen=True)
class LayerResult:
    """The checks of layer ℓ (1-based, from the input) of a network.

    comparisons hold the hand-written recursion: A^ℓ, formed from the propagated δ^ℓ,
    against each oracle, and δ^(ℓ-1) against autograd (and finite differences for ℓ = 1).
    own holds the layer checked alone, from autograd's δ^ℓ: its compaction of its B
    (target "parameters") and its input Jacobian (target "inputs"). wrong names what
    this layer gets wrong: "input Jacobian", "unit Jacobian B", "compaction" (A is not
    δ ⊙ B of its own B: the dense product disagrees). status is "pass", "wrong",
    "inherits a wrong δ" (only comparisons fed by the propagated δ fail) or "coupled"
    (a coupled layer type: A = δ ⊙ B is not its gradient; formula 1 is checked).
    """

    index: int
    layer_type: str
    activation: str
    inputs: int
    units: int
    parameters_per_unit: int
    comparisons: tuple[Comparison, ...]
    own: tuple[Comparison, ...]
    wrong: tuple[str, ...]
    status: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons + self.own)


@dataclass(frozen=True)
class NetworkResult:
    """The outcome of one network check.

    loss_comparisons hold δ^L from the loss rule against autograd's ∂E/∂z^L; layers one
    LayerResult per layer, ℓ = 1 (next to the input) first. blamed_layer is the first
    wrong layer from the output (None when nothing, or only the loss rule, is wrong);
    blamed_part what is wrong there: "loss rule", "input Jacobian", "unit Jacobian B",
    "compaction", or "δ recursion" when only propagated values disagree.
    """

    verdict: Verdict
    message: str
    loss: str
    dtype: str
    batch: int
    widths: tuple[int, ...]
    loss_comparisons: tuple[Comparison, ...] = ()
    layers: tuple[LayerResult, ...] = ()
    blamed_layer: int | None = None
    blamed_part: str | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        """Every comparison: the loss rule's, then each layer's recursion and own checks."""
        every = list(self.loss_comparisons)
        for layer in self.layers:
            every += list(layer.comparisons) + list(layer.own)
        return tuple(every)

    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)


# ---- judging a layer, blaming a network ------------------------------------------------------


def layer_result(
    stack: StackedNetworks, index: int, chain: Sequence[Comparison], own: Sequence[Comparison]
) -> LayerResult:
    """Layer index (0-based) of one stacked network, judged from its comparisons."""
    layer, phi = stack.rows[index]
    wrong, status = judge(tuple(chain), tuple(own), layer.coupled)
    units, parameters = stack.thetas[index].shape[1:]
    return LayerResult(
        index + 1, layer.name, phi.label, stack.widths[index], units, parameters,
        tuple(chain), tuple(own), wrong, status,
    )  # fmt: skip


def judge(
    chain: tuple[Comparison, ...], own: tuple[Comparison, ...], coupled: bool
) -> tuple[tuple[str, ...], str]:
    """What a layer gets wrong, and its status (see `LayerResult`)."""
    wrong = []
    for target in ("inputs", "parameters"):  # formula 1 first: it misleads the layers below
        if any(c.target == target and not c.passed for c in own):
            wrong.append(_PARTS[target])
    if any(c.oracle == "dense" and not c.passed for c in chain):
        # A is not δ ⊙ B of the layer's own B: the algebra is wrong, not (only) B.
        wrong = [part for part in wrong if part != _PARTS["parameters"]] + ["compaction"]
    if wrong:
        status = "wrong"
    elif not all(c.passed for c in chain + own):
        status = "inherits a wrong δ"
    else:
        status = "coupled" if coupled else "pass"
    return tuple(wrong), status


def worst(comparisons: Sequence[Comparison]) -> Comparison:
    return max(comparisons, key=lambda c: c.worst_ratio)


def blame(
    loss_comparisons: tuple[Comparison, ...], layers: list[LayerResult]
) -> tuple[int | None, str | None, Comparison | None]:
    """The first wrong thing from the output down: the loss rule, else the layer nearest
    the output whose own checks fail, else (only propagated values disagree, which a
    consistent error model does not produce) the highest layer with a failure."""
    failures = [c for c in loss_comparisons if not c.passed]
    if failures:
        return None, "loss rule", worst(failures)
    for layer in reversed(layers):
        if layer.wrong:
            failing = [c for c in layer.own + layer.comparisons if not c.passed]
            return layer.index, layer.wrong[0], worst(failing)
    for layer in reversed(layers):
        failing = [c for c in layer.comparisons + layer.own if not c.passed]
        if failing:
            return layer.index, "δ recursion", worst(failing)
    return None, None, None


def network_result(
    stack: StackedNetworks,
    seconds: Mapping[str, float],
    invalid: str | None,
    non_differentiable: str | None,
    loss_comparisons: tuple[Comparison, ...],
    layers: list[LayerResult],
) -> NetworkResult:
    """The verdict of one stacked network: invalid-input, non-differentiable, mismatch
    (with the blame), coupled, pass."""
    common: dict[str, Any] = {
        "loss": stack.loss.name,
        "dtype": stack.z.dtype.name,
        "batch": stack.batch,
        "widths": stack.widths,
        "seconds": seconds,
    }
    if invalid is not None:
        return NetworkResult(Verdict.INVALID_INPUT, f"invalid input: {invalid}", **common)
    if non_differentiable is not None:
        return NetworkResult(Verdict.NON_DIFFERENTIABLE, non_differentiable, **common)
    blamed_layer, blamed_part, culprit = blame(loss_comparisons, layers)
    details: dict[str, Any] = {
        "loss_comparisons": loss_comparisons,
        "layers": tuple(layers),
        "blamed_layer": blamed_layer,
        "blamed_part": blamed_part,
    }
    if culprit is not None:
        message = mismatch_message(stack, blamed_layer, str(blamed_part), culprit, layers)
        return NetworkResult(Verdict.MISMATCH, message, **common, **details)
    coupled = [index for index, (layer, _) in enumerate(stack.rows, 1) if layer.coupled]
    if coupled:
        message = (
            f"coupled: layer {coupled[0]} ({stack.rows[coupled[0] - 1][0].name}) breaks "
            "the block-diagonal precondition, so A = δ ⊙ B is not its parameter "
            "gradient; formula 1 holds at every layer"
        )
        return NetworkResult(Verdict.COUPLED, message, **common, **details)
    every = [c for layer in layers for c in layer.comparisons + layer.own]
    every += loss_comparisons
    detail = ""
    if every:
        closest = worst(every)
        detail = f" (closest: {closest.oracle} at {closest.worst_ratio:.2g} of its bound)"
    message = f"pass: {len(every)} comparisons over {stack.depth} layers agree{detail}"
    return NetworkResult(Verdict.PASS, message, **common, **details)


def mismatch_message(
    stack: StackedNetworks,
    blamed_layer: int | None,
    part: str,
    culprit: Comparison,
    layers: list[LayerResult],
) -> str:
    """The blamed part, the comparison that fails worst there, and the layers below that
    only inherit the wrong δ."""
    depth = stack.depth
    if blamed_layer is None:
        subject = f"the loss rule ∂E/∂z^{depth} of {stack.loss.name} is wrong"
    else:
        layer = layers[blamed_layer - 1]
        subject = (
            f"layer {blamed_layer} of {depth} ({layer.layer_type}, {layer.activation}) "
            f"is wrong: its {part}"
        )
    below = [layer.index for layer in layers if layer.status == "inherits a wrong δ"]
    inherited = f"; layers {below} only inherit the wrong δ" if below else ""
    return (
        f"mismatch: {subject}: {culprit.oracle} ({culprit.method}) disagrees on "
        f"{_SYMBOLS[culprit.target]} {disagreement(culprit)}{inherited}"
    )
