"""Reports of user layers read as user layers; colours and labels that cannot mislead;
report.md always lists cells (issue 18)."""

from __future__ import annotations

from gradcheck.report import (
    RATIO_BINS,
    Cell,
    Counterexample,
    Failure,
    OracleSummary,
    Report,
    figures,
    ratio_bin,
    render_html,
    render_markdown,
)


def cell(layer: str, activation: str, ratio: float, **verdicts: int) -> Cell:
    histogram = [0] * RATIO_BINS
    histogram[ratio_bin(ratio)] = 1
    summary = OracleSummary(
        comparisons=1, worst_ratio=ratio, max_abs_error=ratio * 1e-16, histogram=histogram
    )
    counts = {"pass": 1, **{k.replace("_", "-"): v for k, v in verdicts.items()}}
    return Cell(
        layer_type=layer,
        activation=activation,
        dtype="float64",
        examples=sum(counts.values()),
        verdicts=counts,
        oracles={"autograd": summary},
    )


def user_report() -> Report:
    failure = Failure(
        layer_type="my_layers.affine",
        activation="functional",
        dtype="float64",
        verdict="mismatch",
        message="mismatch: the gradient of b (argument 2 of forward) disagrees",
        case=Counterexample.of(
            activation="functional", z=[[1.0]], theta=[[[1.0, 2.0]], [3.0]], delta=[[1.0]]
        ),
        reproduction="gradcheck.check_backward(...)",
    )
    return Report(
        cells=[cell("my_layers.affine", "functional", 3.0, mismatch=1)], failures=[failure]
    )


def test_a_user_layer_report_says_layer_style_and_arguments():
    report = user_report()
    assert report.user_layers and report.axes == ("layer", "style")
    markdown = render_markdown(report)
    assert "| layer | style | dtype |" in markdown and "activation" not in markdown
    assert "first argument 1×1, other arguments 2 arrays, dout 1×1" in markdown
    assert "θ" not in markdown.split("## Failures")[1] and "ragged" not in markdown
    html = render_html(report)
    assert "<th>layer</th><th>style</th>" in html and "θ:" not in html and "ragged" not in html
    assert "other arguments: 2 arrays" in html


def test_long_names_are_not_shortened_into_one():
    names = [f"my_project.losses.cross_entropy_with_label_smoothing_{k}" for k in "abc"]
    labels = figures.labels(names)
    assert len(set(labels)) == 3
    assert figures.labels(["a" * 40, "b"])[0].startswith("aaa")  # still shortened when apart


def test_a_passing_cell_is_never_drawn_in_the_colour_beyond_the_bound():
    for ratio in (0.5, 0.9, 0.998, 0.9999, 1.0):
        red, _, blue, _ = figures.cell_colour(ratio)
        assert blue > red, ratio
    for ratio in (1.0001, 1.01, 3.0, float("nan")):
        red, _, blue, _ = figures.cell_colour(ratio)
        assert red > blue, ratio


def test_report_md_lists_cells_when_nothing_failed():
    report = Report(cells=[cell("dense", a, r) for a, r in (("tanh", 0.1), ("relu", 0.5))])
    markdown = render_markdown(report, max_cells=1)
    cells = markdown.split("## Cells")[1]
    assert "| dense | relu |" in cells  # the one closest to its bound
    assert "1 more cells" in cells


def test_non_differentiable_cells_are_marked():
    marks = []

    class Axes:
        def text(self, x, y, text, **style):
            marks.append(text)

        def add_patch(self, patch):
            pass

    figures._mark(Axes(), cell("abs", "x", 0.1, non_differentiable=3), 0, 0, None)
    assert marks == ["n"]
