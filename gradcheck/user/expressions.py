"""Size expressions: integer arithmetic on the named sizes of a signature, parsed by hand.

A size in a signature is a name (``n``, drawn), an integer literal (``3``) or an
expression on them: ``h-p+1``, ``h//2``, ``c*h*w``, ``(h-3)//2+1``. Constraints compare
two expressions: ``h >= p``, ``h % 2 == 0``, ``1 <= p <= h`` (a chain is the conjunction
of its links). The grammar, with Python's precedence and Python's integer semantics
(``//`` floors, ``%`` takes the divisor's sign):

    constraint := expression (COMPARISON expression)+    COMPARISON: == != < <= > >=
    expression := term (("+" | "-") term)*
    term       := factor (("*" | "//" | "%") factor)*
    factor     := ("+" | "-") factor | NAME | INTEGER | "(" expression ")"

Nothing here calls eval: text becomes a tree of `Expression` nodes, which `evaluate`
computes on a mapping of names to ints or to numpy integer arrays alike (operators only,
so this module does not import numpy, and parsing a signature stays cheap). A divisor of
0 is replaced by 1 during evaluation; whoever evaluates must also require
`divisors(...) != 0` (the size space does, as an implied constraint).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gradcheck.errors import UsageError

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+)|(?P<name>[A-Za-z_]\w*)|(?P<op>//|==|!=|<=|>=|[-+*%()<>]))"
)
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "//": lambda a, b: a // (b + (b == 0)),  # a zero divisor is an implied constraint
    "%": lambda a, b: a % (b + (b == 0)),
}
_TESTS: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Expression:
    """A compound size: op is one of + - * // % (binary) or "neg" (unary minus).
    Equal expressions are equal trees (the text they came from does not count)."""

    op: str
    operands: tuple[Dimension, ...]
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or render(self)


#: A dimension: a drawn name, a fixed size, or an expression on them.
Dimension = str | int | Expression


@dataclass(frozen=True)
class Comparison:
    """One link of a constraint: left op right."""

    left: Dimension
    op: str
    right: Dimension
    text: str

    @property
    def names(self) -> tuple[str, ...]:
        return _unique((*names_of(self.left), *names_of(self.right)))

    def holds(self, sizes: Mapping[str, Any]) -> Any:
        """Whether it holds (a bool, or a boolean array for array-valued sizes); a zero
        divisor makes it fail."""
        verdict = _TESTS[self.op](evaluate(self.left, sizes), evaluate(self.right, sizes))
        for divisor in (*divisors(self.left), *divisors(self.right)):
            verdict = verdict & (evaluate(divisor, sizes) != 0)
        return verdict


def evaluate(dimension: Dimension, sizes: Mapping[str, Any]) -> Any:
    """The value of a dimension for the given sizes (ints or integer arrays)."""
    if isinstance(dimension, int):
        return dimension
    if isinstance(dimension, str):
        return sizes[dimension]
    if dimension.op == "neg":
        return -evaluate(dimension.operands[0], sizes)
    left, right = (evaluate(d, sizes) for d in dimension.operands)
    return _OPERATORS[dimension.op](left, right)


def names_of(dimension: Dimension) -> tuple[str, ...]:
    """The names a dimension uses, in order of first appearance."""
    if isinstance(dimension, str):
        return (dimension,)
    if isinstance(dimension, int):
        return ()
    return _unique(name for operand in dimension.operands for name in names_of(operand))


def divisors(dimension: Dimension) -> tuple[Dimension, ...]:
    """The right operands of every // and % in a dimension (each must not be 0)."""
    if not isinstance(dimension, Expression):
        return ()
    own = (dimension.operands[1],) if dimension.op in ("//", "%") else ()
    return own + tuple(d for operand in dimension.operands for d in divisors(operand))


def render(dimension: Dimension) -> str:
    """Source text for a dimension (fully parenthesised where it matters)."""
    if not isinstance(dimension, Expression):
        return str(dimension)
    if dimension.op == "neg":
        return f"-{_wrapped(dimension.operands[0])}"
    left, right = dimension.operands
    return f"{_wrapped(left)}{dimension.op}{_wrapped(right)}"


def _wrapped(dimension: Dimension) -> str:
    text = render(dimension)
    return f"({text})" if isinstance(dimension, Expression) else text


def _unique(names: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


# ---- parsing --------------------------------------------------------------------------------


def _tokens(text: str, where: str, error: type[UsageError]) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            bad = stripped[position:].lstrip()[:1]
            hint = "; integer division is //" if bad == "/" else ""
            raise error(
                f"{where} has {bad!r}, which a size expression cannot hold: sizes are names, "
                f"integers, + - * // % and parentheses{hint}"
            )
        tokens.append(match.group(match.lastgroup or "op"))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, where: str, error: type[UsageError]) -> None:
        self.text = text
        self.where = where
        self.error = error
        self.tokens = _tokens(text, where, error)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error(f"{self.where} ends too early: an operand is missing")
        self.position += 1
        return token

    def fail(self, token: str | None) -> UsageError:
        found = "the end" if token is None else repr(token)
        return self.error(
            f"{self.where} cannot be read at {found}: a size is a name, an integer or an "
            "expression such as h-p+1, h//2, c*h*w or (h-3)//2+1"
        )

    def expression(self) -> Dimension:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _combine(op, value, self.term(), self)
        return value

    def term(self) -> Dimension:
        value = self.factor()
        while self.peek() in ("*", "//", "%"):
            op = self.take()
            value = _combine(op, value, self.factor(), self)
        return value

    def factor(self) -> Dimension:
        token = self.take()
        if token in ("+", "-"):
            operand = self.factor()
            if token == "+":
                return operand
            return -operand if isinstance(operand, int) else Expression("neg", (operand,))
        if token == "(":
            value = self.expression()
            if self.peek() != ")":
                raise self.fail(self.peek())
            self.take()
            return value
        if token.isdigit():
            return int(token)
        if token[0].isalpha() or token[0] == "_":
            return token
        raise self.fail(token)


def _combine(op: str, left: Dimension, right: Dimension, parser: _Parser) -> Dimension:
    if op in ("//", "%") and right == 0:
        raise parser.error(f"{parser.where} divides by zero ({render(left)}{op}0)")
    if isinstance(left, int) and isinstance(right, int):
        return int(_OPERATORS[op](left, right))  # constants fold
    return Expression(op, (left, right))


def _with_text(dimension: Dimension, text: str) -> Dimension:
    if isinstance(dimension, Expression):
        return Expression(dimension.op, dimension.operands, text.strip())
    return dimension


def parse_dimension(text: str, where: str, error: type[UsageError] = UsageError) -> Dimension:
    """One size: a name, an integer, or an expression (constants fold to an int).
    Errors are raised as `error` (SignatureError for a signature) and name `where`."""
    if not text.strip():
        raise error(f"{where} is empty")
    parser = _Parser(text, where, error)
    value = parser.expression()
    if parser.peek() is not None:
        raise parser.fail(parser.peek())
    return _with_text(value, text)


def parse_constraint(text: str, where: str) -> tuple[Comparison, ...]:
    """``"h >= p"``, ``"h % 2 == 0"``, ``"1 <= p <= h"``: one Comparison per link."""
    if not isinstance(text, str):
        raise UsageError(f"{where} must be a string such as 'h >= p', got {text!r}")
    parser = _Parser(text, where, UsageError)
    sides = [parser.expression()]
    ops: list[str] = []
    while parser.peek() in _COMPARISONS:
        ops.append(parser.take())
        sides.append(parser.expression())
    if parser.peek() is not None:
        raise parser.fail(parser.peek())
    if not ops:
        raise UsageError(
            f"{where} compares nothing: a constraint is two sizes and one of == != < <= > >=, "
            "such as 'h >= p' or 'h % 2 == 0'"
        )
    return tuple(
        Comparison(left, op, right, text.strip())
        for left, op, right in zip(sides, ops, sides[1:], strict=False)
    )
