"""The paper's figures with matplotlib's object API (Agg canvas, no pyplot state), saved as PNG and PDF.

Figure 2: per-language gain of a method over the baseline against distance from English, with a
least-squares line. Figure 3: average accuracy against m. Figures 4-5: heatmaps of a method's
generalized matrix minus the baseline's. Builders take plain DataFrames and return a Figure;
`save_figure` writes both formats atomically, `png_bytes` gives the PNG for an HTML page.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from analysis.names import AVG

FORMATS = ("png", "pdf")


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def freeze_layout(figure: Figure) -> None:
    """Lay out once and freeze it: constrained layout would otherwise be recomputed for every format."""
    figure.canvas.draw()
    figure.set_layout_engine("none")


def save_figure(figure: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write `stem.png` and `stem.pdf`, each through a temporary file in the same folder and os.replace."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    freeze_layout(figure)
    written = []
    for fmt in formats:
        target = stem.with_name(f"{stem.name}.{fmt}")
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                figure.savefig(stream, format=fmt, dpi=150)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


def png_bytes(figure: Figure, dpi: int = 120) -> bytes:
    """The figure as PNG bytes, for a page that holds its figures inline."""
    freeze_layout(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def gains_against_distance(cells: pd.DataFrame, method: str, distances: dict) -> pd.DataFrame:
    """Per language (no avg): the method's mean gain over the baseline (points) and its distance from English."""
    rows = cells[(cells["method"] == method) & (cells["column"] != AVG) & cells["column"].isin(list(distances))]
    frame = pd.DataFrame({"language": rows["column"], "gain": rows["mean_diff"], "significant": rows["significant"]})
    frame["distance"] = frame["language"].map(distances).astype(float)
    return frame.dropna(subset=["gain"]).sort_values("distance").reset_index(drop=True)


def least_squares(x: np.ndarray, y: np.ndarray):
    """scipy's least-squares line, or None when x has fewer than two distinct values."""
    if len(np.unique(x)) < 2:
        return None
    return scipy_stats.linregress(x, y)


def gain_vs_distance_figure(gains: pd.DataFrame, *, method_label: str, baseline_label: str, distance_name: str, task: str) -> Figure:
    """Figure 2: gain (points) of a method over the baseline per language against distance from English."""
    figure = _new_figure(5.0, 3.6)
    axes = figure.add_subplot()
    significant = gains["significant"].fillna(False).astype(bool).to_numpy()
    for mask, colour, label in ((significant, "tab:orange", "significant gain"), (~significant, "tab:blue", "not significant")):
        if mask.any():
            axes.scatter(gains["distance"][mask], gains["gain"][mask], c=colour, zorder=3, label=label)
    for language, x, y in zip(gains["language"], gains["distance"], gains["gain"]):
        axes.annotate(language, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    fit = least_squares(gains["distance"].to_numpy(), gains["gain"].to_numpy())
    if fit is not None:
        xs = np.linspace(gains["distance"].min(), gains["distance"].max(), 50)
        axes.plot(xs, fit.intercept + fit.slope * xs, color="tab:red",
                  label=f"least squares: slope {fit.slope:+.2f}, r = {fit.rvalue:.2f}")
    axes.legend(loc="best", fontsize=8)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel(distance_name)
    axes.set_ylabel(f"{method_label} - {baseline_label} (accuracy points)")
    axes.set_title(f"{task}: {method_label} gain over {baseline_label} by language", fontsize=9)
    return figure


def m_ablation_figure(points: pd.DataFrame, *, method_label: str, task: str, baseline_mean: float | None = None) -> Figure:
    """Figure 3: average test accuracy (mean +- sd over seeds) against m."""
    figure = _new_figure(4.6, 3.4)
    axes = figure.add_subplot()
    axes.errorbar(points["m"], points["mean"], yerr=points["std"].fillna(0.0), marker="o", capsize=3, label=method_label)
    if baseline_mean is not None and not np.isnan(baseline_mean):
        axes.axhline(baseline_mean, color="grey", linestyle="--", label="baseline")
    axes.set_xlabel("m (augmented copies per example)")
    axes.set_ylabel("average test accuracy (%)")
    axes.set_xticks(sorted(points["m"].unique()))
    axes.set_title(f"{task}: {method_label} over m", fontsize=9)
    axes.legend(loc="best", fontsize=8)
    return figure


def difference_heatmap_figure(difference: pd.DataFrame, *, title: str, decimals: int = 1) -> Figure:
    """Figures 4-5: (method - baseline) per (sentence-1, sentence-2) language pair, diverging around 0."""
    matrix = difference.drop(index=AVG, columns=AVG, errors="ignore")
    values = matrix.to_numpy(dtype="float64")
    size = 0.45 * max(len(matrix.columns), 4) + 1.5
    figure = _new_figure(size + 1.0, size)
    axes = figure.add_subplot()
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    limit = limit if limit > 0 else 1.0
    image = axes.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    axes.set_xticks(range(len(matrix.columns)), labels=list(matrix.columns))
    axes.set_yticks(range(len(matrix.index)), labels=list(matrix.index))
    axes.set_xlabel("sentence-2 language")
    axes.set_ylabel("sentence-1 language")
    fontsize = 7 if len(matrix.columns) > 8 else 9
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            axes.text(j, i, f"{value:.{decimals}f}", ha="center", va="center", fontsize=fontsize)
    figure.colorbar(image, ax=axes, label="difference (accuracy points)")
    axes.set_title(title, fontsize=9)
    return figure
