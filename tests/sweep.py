"""The magnitude sweep of issue 14 (test-only helper, also read by benchmarks/false_alarms.py).

Every unit-partitioned cell of the catalogue (layer type × activation × dtype, as
`gradcheck run` has them) is drawn as the campaign draws it (`gradcheck.strategies`,
kinks avoided where the layer can place its pre-activations, else allowed and checked by
the subgradient test), and each drawn case is checked again with θ, z, δ, and all three,
scaled by 10^k: k in -12 … 12 for float64, -6 … 6 for float32. The catalogue is correct,
so a mismatch is a false alarm, and every other non-pass verdict must name its cause.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed

from gradcheck import strategies
from gradcheck.campaign import NETWORK, CellSpec, cells
from gradcheck.catalogue.activations import ACTIVATIONS
from gradcheck.catalogue.cases import Case
from gradcheck.catalogue.checker import check_many
from gradcheck.catalogue.layers import LAYER_TYPES
from gradcheck.core.results import CheckResult, Verdict

#: What is scaled: each array alone, and all three together.
SCALED = ("theta", "z", "delta", "all")
#: A non-pass verdict names its cause: its message goes on past the verdict's name.
CAUSE = re.compile(r"^(invalid input|non-differentiable): \S.{15,}", re.S)


def exponents(dtype: str) -> range:
    return range(-12, 13) if dtype == "float64" else range(-6, 7)


def unit_partitioned_cells() -> list[CellSpec]:
    return [
        spec
        for spec in cells()
        if spec.layer_type != NETWORK and not LAYER_TYPES[spec.layer_type].coupled
    ]


def kink_modes(spec: CellSpec) -> tuple[str, str]:
    """How the campaign draws and checks a cell: ("avoid", "report") where the layer can
    place its pre-activations off the activation's kinks, else ("allow", "subgradient")."""
    layer, activation = LAYER_TYPES[spec.layer_type], ACTIVATIONS[spec.activation]
    placeable = layer.clear_of_kinks is not None or not activation.kinks
    return ("avoid", "report") if placeable else ("allow", "subgradient")


#: Cases per drawn stack (one vectorised pass of check_many for each scaling).
STACK = 4


def drawn(spec: CellSpec, stacks: int, seed: int) -> list[Case]:
    """`stacks` × STACK cases of the cell as the campaign draws them (the same for the
    same seed): hypothesis's first draw is its simplest (every value 1), the others
    random."""
    generate, _ = kink_modes(spec)
    found: list[Case] = []

    @fixed_seed(zlib.crc32(f"{seed}/{spec.key}".encode()))
    @settings(
        max_examples=stacks,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        strategies.case_stacks(
            layer_types=[spec.layer_type],
            activations=[spec.activation],
            dtypes=(spec.dtype,),
            min_size=STACK,
            max_size=STACK,
            kinks=generate,
        )
    )
    def draw(stack: list[Case]) -> None:
        found.extend(stack)

    draw()
    return found


@dataclass(frozen=True)
class Scaled:
    exponent: int
    scaled: str
    case: Case
    result: CheckResult

    @property
    def problem(self) -> str | None:
        """Why this result breaks the sweep's rule (None when it keeps it)."""
        verdict = self.result.verdict
        if verdict is Verdict.PASS:
            return None
        if verdict is Verdict.MISMATCH:
            return f"false alarm: {self.result.message}"
        if verdict is Verdict.COUPLED:
            return f"a unit-partitioned layer called coupled: {self.result.message}"
        if not CAUSE.match(self.result.message):
            return f"a {verdict} verdict that names no cause: {self.result.message!r}"
        return None


def scalings(case: Case, dtype: str) -> Iterator[tuple[int, str, Case]]:
    for k in exponents(dtype):
        factor = 10.0**k
        for which in SCALED:
            arrays = {
                name: np.asarray(getattr(case, name), dtype=np.float64)
                for name in ("z", "theta", "delta")
            }
            for name in arrays:
                if which in (name, "all"):
                    arrays[name] = arrays[name] * factor
            with np.errstate(over="ignore", under="ignore"):
                typed = {name: value.astype(dtype) for name, value in arrays.items()}
            yield (
                k,
                which,
                Case(layer_type=case.layer_type, activation=case.activation, **typed),
            )


def sweep_cell(spec: CellSpec, *, stacks: int = 2, seed: int = 0) -> list[Scaled]:
    """Every scaling of the cases of `stacks` drawn stacks of the cell, checked."""
    _, kinks = kink_modes(spec)
    scaled = [item for case in drawn(spec, stacks, seed) for item in scalings(case, spec.dtype)]
    results = check_many([case for _, _, case in scaled], kinks=kinks)
    return [
        Scaled(k, which, case, result)
        for (k, which, case), result in zip(scaled, results, strict=True)
    ]
