"""What a new user meets in the first hour (issue 18): limits that do not overflow,
settings refused clearly, user text that cannot drive a terminal, reports that cannot
exhaust memory, the README's own examples, the names the README uses importable."""

from __future__ import annotations

import inspect
import re
import signal
import time
from pathlib import Path

import pytest
from hypothesis import find, given, settings

import gradcheck
from gradcheck import check_network
from gradcheck import strategies as gst
from gradcheck.report import (
    RATIO_BINS,
    Cell,
    OracleSummary,
    Report,
    render_html,
    render_markdown,
)
from gradcheck.user.summary import LayerCheck

SIGNATURE = "(n,i),(i,j)->(n,j)"


def forward(x, w):
    return x @ w


def backward(dout, x, w):
    return dout @ w.T, x.T @ dout


@pytest.mark.parametrize("timeout", [float("inf"), 1e10])
def test_an_unbounded_timeout_is_no_limit(timeout):
    before = signal.getsignal(signal.SIGALRM)
    summary = gradcheck.check_backward(
        forward, backward, signature=SIGNATURE, max_examples=3, timeout=timeout
    )
    assert summary.passed
    assert signal.getsignal(signal.SIGALRM) is before


def test_settings_that_are_not_settings_are_a_usage_error():
    with pytest.raises(gradcheck.UsageError, match=r"hypothesis\.settings"):
        gradcheck.check_backward(forward, backward, signature=SIGNATURE, settings="x")


@pytest.mark.parametrize("sizes", [{"n": (1, 2, 3)}, {"n": [1]}, {"n": (2, "x")}])
def test_sizes_that_are_not_a_size_or_a_range_are_a_usage_error(sizes):
    with pytest.raises(gradcheck.UsageError, match=r"sizes\['n'\]"):
        gradcheck.check_backward(forward, backward, signature=SIGNATURE, sizes=sizes)


def test_user_code_raising_gradchecks_own_usage_error_is_user_codes_error():
    def picky_forward(x, w):
        raise gradcheck.UsageError("my layer wants a square w")

    with pytest.raises(gradcheck.UserCodeError, match="my layer wants a square w") as raised:
        gradcheck.check_backward(picky_forward, backward, signature=SIGNATURE, max_examples=3)
    assert not isinstance(raised.value, gradcheck.UsageError)
    assert raised.value.function == "forward"


def test_ansi_escapes_from_user_code_are_shown_not_obeyed():
    check = LayerCheck("evil\x1b[2Jlayer", "functional", SIGNATURE)
    check.add_error(gradcheck.UserCodeError("boom \x1b[31mred\x1b[0m"), "float64")
    assert "\x1b" not in check.describe() and "\\x1b[31m" in check.describe()
    report = Report(cells=list(check.cells.values()), failures=[check.failure])
    markdown = render_markdown(report)
    assert "\x1b" not in markdown and "x1b" in markdown


def test_a_report_of_many_dtypes_renders_within_bounds():
    histogram = [0] * RATIO_BINS
    histogram[3] = 1
    summary = OracleSummary(comparisons=1, worst_ratio=1e-5, max_abs_error=1e-20,
                            histogram=histogram)  # fmt: skip
    cells = [
        Cell(layer_type=f"layer{k % 7}", activation=f"act{k % 5}", dtype=f"dtype{k:03d}",
             examples=1, verdicts={"pass": 1}, oracles={"autograd": summary})
        for k in range(200)
    ]  # fmt: skip
    started = time.perf_counter()
    html = render_html(Report(cells=cells))
    assert time.perf_counter() - started < 30
    assert "left out: 194 of 200 dtypes" in html
    assert len(html) < 3_000_000


# ---- the README's networks example --------------------------------------------------------


@given(gst.networks(max_layers=4))
def test_backprop(network):  # the README's example, word for word
    result = check_network(network)
    assert result.verdict.value in ("pass", "non-differentiable"), result.message


def test_networks_never_draw_what_the_checker_refuses():
    # An rbf layer whose outputs underflow to 0 under a cosine layer, and a sigmoid pushed
    # out of its domain, were drawn; the network now ends below such a layer.
    with pytest.raises(Exception, match="No examples found"):
        find(
            gst.networks(max_layers=4),
            lambda n: check_network(n).verdict.value == "invalid-input",
            settings=settings(max_examples=150, database=None, deadline=None),
        )


# ---- the README -------------------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_exception_the_readme_names_is_importable_from_gradcheck():
    names = set(re.findall(r"\b([A-Z][A-Za-z]*Error|GradientMismatch)\b", README.read_text()))
    names -= {"AssertionError", "ValueError", "OverflowError", "AttributeError", "TypeError"}
    assert {"UserOutputError", "NondeterministicError", "AliasedOutputError"} <= names
    for name in names:
        assert issubclass(getattr(gradcheck, name), Exception), name


def test_the_readme_documents_the_keys_of_a_spec():
    from gradcheck.user import api

    table = README.read_text().split("| style | check | required keys | optional keys |")[1]
    rows = [line for line in table.splitlines()[2:6]]
    functional = inspect.signature(api.check_backward).parameters
    optional_functional = {n for n, p in functional.items() if p.default is not p.empty}
    for row in rows:
        style, check, required, optional = (cell.strip() for cell in row.strip("|").split("|"))
        parameters = inspect.signature(getattr(api, check.strip("`"))).parameters
        optional, _, but = optional.partition(" but ")
        named = set(re.findall(r"`(\w+)`", required + optional))
        if "functional" in optional:
            named |= optional_functional
        named -= set(re.findall(r"`(\w+)`", but))
        assert set(re.findall(r"`(\w+)`", required)) == {
            n for n, p in parameters.items() if p.default is p.empty
        }, style
        assert named == set(parameters), (style, named ^ set(parameters))
