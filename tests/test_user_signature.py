"""Signatures: what parses, what each part means, and what is refused with which words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gradcheck.errors import GradcheckError, SignatureError, UsageError
from gradcheck.user.signature import parse_signature


def test_a_dense_layer_signature_names_its_sizes_and_unit_axis():
    signature = parse_signature("(n,i),(i,j),(j)->(n,j)")
    assert signature.inputs == (("n", "i"), ("i", "j"), ("j",))
    assert signature.output == ("n", "j")
    assert signature.names == ("n", "i", "j")
    assert signature.unit_name == "j"
    sizes = {"n": 2, "i": 3, "j": 4}
    assert signature.input_shapes(sizes) == [(2, 3), (3, 4), (4,)]
    assert signature.output_shape(sizes) == (2, 4)


def test_spaces_scalars_and_fixed_sizes_are_understood():
    signature = parse_signature(" ( n , 3 ) , ( ) -> ( n , 3 ) ")
    assert signature.inputs == (("n", 3), ())
    assert signature.output_shape({"n": 5}) == (5, 3)
    assert signature.axis_names(0) == ("n", "axis1")


def test_a_scalar_output_has_no_unit_axis():
    assert parse_signature("(n,c)->()").unit_name is None


def test_a_name_repeated_within_one_argument_gets_distinct_axis_names():
    signature = parse_signature("(n,n)->(n)")
    assert signature.axis_names(0) == ("n", "n'")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("(n,i)(i,j)->(n,j)", "separated by commas"),
        ("(n,i),(i,j)", "exactly one '->'"),
        ("(n,i)->(n,i)->(n)", "exactly one '->'"),
        ("(n,i)->(n,k)", "'k', which no input has"),
        ("(n,2i)->(n)", "'2i'"),
        ("(n,i?)->(n)", "'i?'"),
        ("(n,,i)->(n)", "empty dimension"),
        ("(n,0)->(n)", "fixed size 0"),
        ("n,i->n", "no parenthesised group"),
        ("(n,i) x->(n)", "is followed by 'x'"),
    ],
)
def test_invalid_signatures_raise_a_signature_error_naming_the_problem(text, words):
    with pytest.raises(SignatureError) as raised:
        parse_signature(text)
    assert words in str(raised.value)
    assert text in str(raised.value)
    assert isinstance(raised.value, UsageError) and isinstance(raised.value, GradcheckError)


def test_a_signature_that_is_not_a_string_is_refused():
    with pytest.raises(SignatureError, match="a string"):
        parse_signature(["(n)->(n)"])  # type: ignore[arg-type]


def test_parsing_a_signature_loads_nothing_heavy():
    code = (
        "import sys\n"
        "from gradcheck.user.signature import parse_signature\n"
        "parse_signature('(n,i),(i,j)->(n,j)')\n"
        "print(sorted(m for m in ('numpy', 'autograd', 'hypothesis') if m in sys.modules))\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
