"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG data URIs.

matplotlib is imported when a figure is drawn, never on import. Figures are made with
`matplotlib.figure.Figure` directly, not pyplot: no global state, no backend switching,
nothing left open. Dollar signs in labels from user code are escaped, so that a layer
named ``cost$1$`` is drawn as written instead of being parsed as math text.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from gradcheck.report.model import ORACLES, RATIO_BIN_EDGES, RATIO_BINS, Cell, Report

# Colours: blue shades below the bound, red above it, purple for coupled layers.
PASS_LIGHT, PASS_DARK = "#e8f0fa", "#1f4f96"
MISS_LIGHT, MISS_DARK = "#f6a482", "#a50f15"
COUPLED = "#c9b8e0"
ERROR = "#57606a"  # a cell whose user code raised
EMPTY = "#f2f2f2"
_LOW, _HIGH = RATIO_BIN_EDGES[0], RATIO_BIN_EDGES[-1]
# The bound (ratio 1) sits this far along the log colour scale from _LOW to _HIGH.
_BOUND_AT = (0.0 - math.log10(_LOW)) / (math.log10(_HIGH) - math.log10(_LOW))
_LABEL_LENGTH = 28
# Colours are looked up in _COLOURS steps, a multiple of the decades shown, so that the
# bound is a step's edge; a passing ratio is shown just below the bound.
_COLOURS = 250
_PASS_SHOWN = 0.999
_CSS_DPI = 100  # CSS pixels per inch of figure
_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
_DTYPE_ORDER = {"float64": 0, "float32": 1}


@contextmanager
def _style() -> Iterator[Any]:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(cast(Any, _STYLE)):
        yield Figure


@dataclass(frozen=True)
class Image:
    """A PNG as a data URI, with the size in CSS pixels to show it at."""

    uri: str
    width: int
    height: int


def _image(figure: Any) -> Image:
    buffer = io.BytesIO()
    # Drawn at twice the display resolution, so that it stays sharp on high-density screens.
    figure.savefig(buffer, format="png", dpi=2 * _CSS_DPI, metadata={"Software": None})
    width, height = figure.get_size_inches()
    return Image(
        uri="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
        width=round(width * _CSS_DPI),
        height=round(height * _CSS_DPI),
    )


def _label(text: str) -> str:
    """A tick label from user code: shortened in the middle (the start names the module,
    the end the layer), and with $ escaped (not math text)."""
    if len(text) > _LABEL_LENGTH:
        head = (_LABEL_LENGTH - 1) // 3
        text = text[:head] + "…" + text[len(text) - (_LABEL_LENGTH - 1 - head) :]
    return text.replace("$", r"\$")


def labels(names: list[str]) -> list[str]:
    """Tick labels for distinct names: shortened while that keeps them apart, else whole
    (long names that shorten alike would make different layers read the same)."""
    short = [_label(name) for name in names]
    if len(set(short)) == len(set(names)):
        return short
    return [name.replace("$", r"\$") for name in names]


def shown_ratio(ratio: float) -> float:
    """The ratio a heat-map square is coloured by: within [_LOW, _HIGH], NaN as _HIGH,
    and a ratio within the bound (≤ 1, a pass) kept below it, so that no passing cell is
    drawn in a colour of the far side of the bound."""
    if math.isnan(ratio):
        return _HIGH
    if ratio <= 1.0:
        return min(max(ratio, _LOW), _PASS_SHOWN)
    return min(max(ratio, _LOW), _HIGH)


def cell_colour(ratio: float) -> tuple[float, float, float, float]:
    """The RGBA colour the heat map gives a cell of this worst error/bound."""
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=_LOW, vmax=_HIGH, clip=True)
    colour: tuple[float, float, float, float] = ratio_colormap()(norm(shown_ratio(ratio)))
    return colour


def ratio_colormap() -> Any:
    """Blue shades up to the bound (ratio 1), red shades beyond it, on a log scale."""
    from matplotlib.colors import ListedColormap, to_rgb

    def between(start: str, end: str, t: float) -> tuple[float, ...]:
        return tuple(a + (b - a) * t for a, b in zip(to_rgb(start), to_rgb(end), strict=True))

    # Step k covers [k/N, (k+1)/N) and takes the colour of its centre, blue below the
    # bound and red above: the bound is a step's edge, so no step blends the two sides (a
    # smooth map sampled at N points would draw a ratio of 0.998 orange).
    edge = round(_BOUND_AT * _COLOURS)
    steps = [
        between(PASS_LIGHT, PASS_DARK, (k + 0.5) / edge)
        if k < edge
        else between(MISS_LIGHT, MISS_DARK, (k + 0.5 - edge) / (_COLOURS - edge))
        for k in range(_COLOURS)
    ]
    return ListedColormap(steps, name="gradcheck-ratio")


#: The most dtype panels, layer rows and activation columns a heat map draws: its size
#: (and the memory to draw it) grows with their product, and report.json is free-form.
MAX_PANELS, MAX_ROWS, MAX_COLUMNS = 6, 80, 80


def heat_map_axes(report: Report) -> tuple[list[str], list[str], list[str]]:
    """The layer types, activations and dtypes the heat map shows: every one up to
    MAX_ROWS, MAX_COLUMNS and MAX_PANELS, the first in order beyond (float64 and float32
    first); `heat_map_note` says what was left out."""
    layers = sorted({c.layer_type for c in report.cells})[:MAX_ROWS]
    activations = sorted({c.activation for c in report.cells})[:MAX_COLUMNS]
    dtypes = sorted({c.dtype for c in report.cells}, key=lambda d: (_DTYPE_ORDER.get(d, 2), d))
    return layers, activations, dtypes[:MAX_PANELS]


def heat_map_note(report: Report) -> str | None:
    """What the heat map leaves out (the table of cells has every cell), or None."""
    shown = heat_map_axes(report)
    every = (
        {c.layer_type for c in report.cells},
        {c.activation for c in report.cells},
        {c.dtype for c in report.cells},
    )
    left = [
        f"{len(all_) - len(some)} of {len(all_)} {name}"
        for name, some, all_ in zip(("rows", "columns", "dtypes"), shown, every, strict=True)
        if len(all_) > len(some)
    ]
    if not left:
        return None
    return (
        f"The heat map shows at most {MAX_PANELS} dtypes, {MAX_ROWS} rows and {MAX_COLUMNS} "
        f"columns; left out: {', '.join(left)} (the table of cells below has every cell)."
    )


def heat_map(report: Report) -> Image | None:
    """Layer type × activation, a panel per dtype, coloured by the worst error/bound.

    Cells with a mismatch are marked ×, with an error E, with invalid input !, with
    non-differentiable draws n; coupled-only cells are drawn
    in purple (their ratios measure the coupling, not a bug); grey is not run or nothing
    compared. None when the report has no cells.
    """
    if not report.cells:
        return None
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    layers, activations, dtypes = heat_map_axes(report)
    cells = {c.key: c for c in report.cells}
    norm = LogNorm(vmin=_LOW, vmax=_HIGH, clip=True)
    colormap = ratio_colormap().with_extremes(bad=EMPTY)
    width = min(16.0, 2.6 + 0.34 * len(activations))
    panel = 0.9 + 0.3 * len(layers)
    with _style() as figure_class:
        figure = figure_class(figsize=(width, panel * len(dtypes) + 0.4), layout="constrained")
        axes = figure.subplots(len(dtypes), 1, squeeze=False)[:, 0]
        image = None
        for ax, dtype in zip(axes, dtypes, strict=True):
            values = np.full((len(layers), len(activations)), np.nan)
            for i, layer in enumerate(layers):
                for j, activation in enumerate(activations):
                    cell = cells.get((layer, activation, dtype))
                    if cell is not None and cell.worst_ratio is not None and not cell.coupled_only:
                        values[i, j] = shown_ratio(cell.worst_ratio)
            image = ax.imshow(
                np.ma.masked_invalid(values), cmap=colormap, norm=norm, aspect="auto",
                interpolation="nearest",
            )  # fmt: skip
            for i, layer in enumerate(layers):
                for j, activation in enumerate(activations):
                    _mark(ax, cells.get((layer, activation, dtype)), i, j, Rectangle)
            ax.set_title(_label(dtype), loc="left")
            ax.set_xticks(range(len(activations)), labels(activations),
                          rotation=50, ha="right", rotation_mode="anchor")  # fmt: skip
            ax.set_yticks(range(len(layers)), labels(layers))
            ax.set_ylabel(report.axes[0])
            ax.set_xlabel(report.axes[1])
            ax.set_xticks(np.arange(len(activations) + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(len(layers) + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="white", linewidth=1.5)
            ax.tick_params(which="minor", length=0)
            ax.tick_params(which="major", length=0)
            for side in ax.spines.values():
                side.set_visible(False)
        bar = figure.colorbar(image, ax=list(axes), shrink=min(1.0, 3.0 / len(dtypes) + 0.2),
                              pad=0.01, aspect=30)  # fmt: skip
        bar.set_label("worst error / bound (log scale; above 1 is a mismatch)")
        bar.ax.axhline(1.0, color="black", linewidth=1.2)
        return _image(figure)


def _mark(ax: Any, cell: Cell | None, i: int, j: int, rectangle: Any) -> None:
    if cell is None:
        return
    if cell.coupled_only:
        ax.add_patch(rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=COUPLED, edgecolor="none"))
        ax.text(j, i, "C", ha="center", va="center", fontsize=8, color="#4b2c7a")
    if cell.verdicts["mismatch"]:
        ax.add_patch(rectangle((j - 0.44, i - 0.44), 0.88, 0.88, fill=False,
                               edgecolor="black", linewidth=1.6))  # fmt: skip
        ax.text(j, i, "×", ha="center", va="center", fontsize=11, fontweight="bold",
                color="white")  # fmt: skip
    elif cell.verdicts["error"]:  # the user's code raised: nothing to colour, a mark
        ax.add_patch(rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=ERROR, edgecolor="none"))
        ax.text(j, i, "E", ha="center", va="center", fontsize=9, fontweight="bold",
                color="white")  # fmt: skip
    elif cell.verdicts["invalid-input"]:
        ax.text(j, i, "!", ha="center", va="center", fontsize=10, fontweight="bold",
                color="#7f2704")  # fmt: skip
    elif cell.verdicts["non-differentiable"]:
        ax.text(j, i, "n", ha="center", va="center", fontsize=8, color="#5a4a00")


def bin_labels() -> list[str]:
    """A short label per histogram bin: its upper edge, with ≤ and > at the ends."""
    edges = [f"1e{round(math.log10(e))}" for e in RATIO_BIN_EDGES]
    return [f"≤{edges[0]}", *edges[1:], f">{edges[-1]}"]


def histograms(report: Report) -> Image | None:
    """Per oracle, how many examples reached each error/bound, summed over the cells;
    coupled-only cells stacked apart in purple. None when nothing was compared."""
    partitioned = {o: [0] * RATIO_BINS for o in ORACLES}
    coupled = {o: [0] * RATIO_BINS for o in ORACLES}
    for cell in report.cells:
        target = coupled if cell.coupled_only else partitioned
        for oracle in ORACLES:
            for k, count in enumerate(cell.oracles[oracle].histogram):
                target[oracle][k] += count
    oracles = [o for o in ORACLES if sum(partitioned[o]) + sum(coupled[o])]
    if not oracles:
        return None
    bound = RATIO_BIN_EDGES.index(1.0)  # bins 0 … bound are within the bound
    labels = bin_labels()
    positions = list(range(RATIO_BINS))
    with _style() as figure_class:
        figure = figure_class(figsize=(4.1 * len(oracles), 3.2), layout="constrained")
        axes = figure.subplots(1, len(oracles), squeeze=False, sharey=True)[0]
        for ax, oracle in zip(axes, oracles, strict=True):
            below = partitioned[oracle]
            colours = [PASS_DARK if k <= bound else MISS_DARK for k in positions]
            ax.bar(positions, below, color=colours, width=0.8)
            ax.bar(positions, coupled[oracle], bottom=below, color=COUPLED, width=0.8)
            for k in positions:
                total = below[k] + coupled[oracle][k]
                if total:
                    ax.text(k, total * 1.15, str(total), ha="center", va="bottom", fontsize=7)
            ax.axvline(bound + 0.5, color="black", linestyle="--", linewidth=1)
            ax.text(bound + 0.6, 0.97, "bound", transform=ax.get_xaxis_transform(),
                    ha="left", va="top", fontsize=8)  # fmt: skip
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.7)
            ax.set_title(oracle, loc="left")
            ax.set_xticks(positions, labels, rotation=60, ha="right", rotation_mode="anchor",
                          fontsize=8)  # fmt: skip
            ax.set_xlabel("worst error / bound per example")
        axes[0].set_ylabel("examples")
        _, top = axes[0].get_ylim()
        axes[0].set_ylim(0.7, top * 3)  # room for the counts above the tallest bar
        from matplotlib.patches import Patch

        figure.legend(
            handles=[Patch(color=PASS_DARK, label="within the bound"),
                     Patch(color=MISS_DARK, label="beyond the bound"),
                     Patch(color=COUPLED, label="coupled layers (expected beyond)")],
            loc="outside lower center", ncols=3, frameon=False,
        )  # fmt: skip
        return _image(figure)


def cost_plot(report: Report) -> Image | None:
    """Time and memory of compact A = δ ⊙ B against the dense block-diagonal product,
    against J·P, log-log; a line per batch size. None without cost points."""
    if not report.cost:
        return None
    batches = sorted({p.batch for p in report.cost})
    with _style() as figure_class:
        figure = figure_class(figsize=(10, 3.6), layout="constrained")
        axes = figure.subplots(1, 2)
        for ax, what, unit in ((axes[0], "seconds", "seconds"), (axes[1], "bytes", "bytes")):
            for batch in batches:
                points = sorted((p for p in report.cost if p.batch == batch),
                                key=lambda p: p.parameters)  # fmt: skip
                suffix = f", N = {batch}" if len(batches) > 1 else ""
                for side, style, colour in (("compact", "o-", PASS_DARK),
                                            ("dense", "s--", MISS_DARK)):  # fmt: skip
                    pairs = [(p.parameters, getattr(p, f"{side}_{what}")) for p in points]
                    pairs = [
                        (x, y) for x, y in pairs if y is not None and y > 0 and math.isfinite(y)
                    ]
                    if pairs:
                        xs, ys = zip(*pairs, strict=True)
                        ax.plot(xs, ys, style, color=colour, label=f"{side}{suffix}",
                                markersize=4, alpha=1.0 if len(batches) == 1 else 0.8)  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("parameters J·P")
            ax.set_ylabel(unit)
            ax.set_title(f"{what}: compact vs dense", loc="left")
            ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
            ax.legend(frameon=False, fontsize=8)
        return _image(figure)
