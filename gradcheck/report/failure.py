"""A failure kept whole: the case as plain data, the worst entries, the code to rerun it.

No I/O, no numpy: arrays arrive as anything with ``tolist()`` or as nested lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradcheck.core.results import CheckResult, WorstEntry
from gradcheck.errors import GradcheckError
from gradcheck.report._values import (
    Fields,
    array_shape,
    check_count,
    check_oracle,
    check_text,
    check_verdict,
    decode_array,
    encode_float,
    plain_array,
)

_ARRAYS = ("z", "theta", "delta")


def _copied(shape: list[int] | None) -> list[int] | None:
    return None if shape is None else list(shape)


@dataclass(kw_only=True)
class Counterexample:
    """A failing case as plain data: z, theta, delta as nested lists, their shapes (None
    for a ragged array) and the activation's label (``leaky_relu(0.2)``)."""

    activation: str
    z: Any
    theta: Any
    delta: Any
    shapes: dict[str, list[int] | None]

    @classmethod
    def of(cls, *, activation: str, z: Any, theta: Any, delta: Any) -> Counterexample:
        """The counterexample of arrays (numpy arrays or nested lists, even invalid ones)."""
        arrays = {"z": plain_array(z), "theta": plain_array(theta), "delta": plain_array(delta)}
        return cls(
            activation=activation,
            shapes={name: array_shape(value) for name, value in arrays.items()},
            **{name: decode_array(value, name) for name, value in arrays.items()},
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "shapes": {name: _copied(self.shapes.get(name)) for name in _ARRAYS},
            **{name: plain_array(getattr(self, name)) for name in _ARRAYS},
        }

    @classmethod
    def from_json_dict(cls, data: Any, where: str = "case") -> Counterexample:
        fields = Fields(data, where)
        shapes = fields.mapping("shapes")
        decoded: dict[str, list[int] | None] = {}
        for name in _ARRAYS:
            shape = shapes.get(name)
            if shape is not None:
                shape = [check_count(n, shapes.path(name)) for n in shapes.array(name)]
            decoded[name] = shape
        return cls(
            activation=fields.text("activation"),
            shapes=decoded,
            **{name: decode_array(fields.get(name), fields.path(name)) for name in _ARRAYS},
        )


def worst_entry_to_json(row: WorstEntry) -> dict[str, Any]:
    return {
        "target": row.target,
        "entry": dict(row.entry),
        "hand_written": encode_float(row.hand_written),
        "references": {o: encode_float(v) for o, v in row.references.items()},
        "ratio": encode_float(row.ratio),
    }


def worst_entry_from_json(data: Any, where: str = "row") -> WorstEntry:
    fields = Fields(data, where)
    entry, references = fields.mapping("entry"), fields.mapping("references")
    for oracle in references.data:
        check_oracle(oracle, "a worst entry's references")
    return WorstEntry(
        target=fields.text("target"),
        entry={k: entry.count(k) for k in entry.data},
        hand_written=fields.number("hand_written"),
        references={o: references.number(o) for o in references.data},
        ratio=fields.number("ratio"),
    )


@dataclass(kw_only=True)
class Failure:
    """One case that did not pass, kept whole: the key of its cell, verdict, message,
    diagnosis (a class of the design's table, or None), exception (for the verdict
    "error": the class of the exception the user's code raised), the case, the table of worst
    entries and `reproduction`, Python code that checks the case again."""

    layer_type: str
    activation: str
    dtype: str
    verdict: str
    message: str
    diagnosis: str | None = None
    exception: str | None = None
    case: Counterexample
    worst_entries: list[WorstEntry] = field(default_factory=list)
    reproduction: str

    def __post_init__(self) -> None:
        self.verdict = check_verdict(self.verdict, "a failure")
        for name in ("layer_type", "activation", "dtype", "message", "reproduction"):
            check_text(getattr(self, name), f"a failure's {name}")
        check_text(self.diagnosis, "a failure's diagnosis", optional=True)
        check_text(self.exception, "a failure's exception", optional=True)

    @property
    def key(self) -> tuple[str, str, str]:
        """The key of the cell the failure belongs to."""
        return (self.layer_type, self.activation, self.dtype)

    @classmethod
    def from_check_result(
        cls,
        result: CheckResult,
        *,
        z: Any,
        theta: Any,
        delta: Any,
        reproduction: str,
        diagnosis: str | None = None,
        layer_type: str | None = None,
        activation: str | None = None,
    ) -> Failure:
        """The failure of a checked case, given the case's arrays and code to rerun it.

        The layer type, activation and dtype come from the result's case; layer_type and
        activation, when given, name the cell instead. A result of invalid input rejected
        before its sizes were known has no case: then both must be given, and the dtype
        is read from z.
        """
        case = result.case
        if case is not None:
            layer_type = layer_type or case.layer_type
            activation = activation or case.activation
            dtype = case.dtype
        elif layer_type is None or activation is None:
            raise GradcheckError(
                "this result has no case summary (its input was rejected before it was "
                "understood): pass layer_type= and activation="
            )
        else:
            dtype = str(getattr(getattr(z, "dtype", None), "name", type(z).__name__))
        return cls(
            layer_type=layer_type,
            activation=activation,
            dtype=dtype,
            verdict=str(result.verdict),
            message=result.message,
            diagnosis=diagnosis,
            case=Counterexample.of(activation=activation, z=z, theta=theta, delta=delta),
            worst_entries=result.worst_entries(),
            reproduction=reproduction,
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "layer_type": self.layer_type,
            "activation": self.activation,
            "dtype": self.dtype,
            "verdict": self.verdict,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "exception": self.exception,
            "case": self.case.to_json_dict(),
            "worst_entries": [worst_entry_to_json(row) for row in self.worst_entries],
            "reproduction": self.reproduction,
        }

    @classmethod
    def from_json_dict(cls, data: Any, where: str = "failure") -> Failure:
        fields = Fields(data, where)
        rows = fields.array("worst_entries")
        return cls(
            layer_type=fields.text("layer_type"),
            activation=fields.text("activation"),
            dtype=fields.text("dtype"),
            verdict=fields.text("verdict"),
            message=fields.text("message"),
            diagnosis=fields.text("diagnosis", optional=True),
            exception=fields.text("exception", optional=True),
            case=Counterexample.from_json_dict(fields.get("case"), fields.path("case")),
            worst_entries=[
                worst_entry_from_json(row, f"{where}.worst_entries[{i}]")
                for i, row in enumerate(rows)
            ],
            reproduction=fields.text("reproduction"),
        )
