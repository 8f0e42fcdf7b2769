"""The paper's reported Tables 1-3 (shipped as package data) and a side-by-side comparison with ours.

`analysis/data/paper_reported.csv` is the project's own copy of the paper's numbers: one row per
(table, task, model, language) with the 10-seed mean test accuracy (%) and whether the paper
underlined it. Methods map to the paper's model names through `analysis.names.PAPER_MODEL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Sequence

import pandas as pd

from analysis.names import AVG, PAPER_MODEL

PAPER_FILE = "paper_reported.csv"
PAPER_COLUMNS = ("table", "task", "model", "lang", "accuracy", "significant_vs_mBERT")


@lru_cache(maxsize=1)
def _paper_numbers() -> pd.DataFrame:
    with resources.files("analysis").joinpath("data", PAPER_FILE).open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle)
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"analysis/data/{PAPER_FILE}: missing column(s) {', '.join(missing)}")
    return frame


def paper_numbers() -> pd.DataFrame:
    """All reported numbers (a copy: callers may modify it)."""
    return _paper_numbers().copy()


def paper_results(task: str) -> pd.DataFrame:
    """One row per (model, language) for a task, from the first paper table that reports the model.

    PAWS-X's baseline and RS-DA appear in Tables 1 and 3 with the same means; Table 1 is used.
    Columns: model, lang, paper, paper_significant, table.
    """
    rows = _paper_numbers()
    rows = rows[rows["task"] == task].sort_values("table", kind="stable")
    rows = rows.drop_duplicates(["model", "lang"], keep="first")
    return rows.rename(columns={"accuracy": "paper", "significant_vs_mBERT": "paper_significant"})[
        ["model", "lang", "paper", "paper_significant", "table"]
    ].reset_index(drop=True)


def paper_languages(task: str) -> tuple[str, ...]:
    """The languages the paper reports for a task (table order), without avg."""
    langs = paper_results(task)["lang"]
    return tuple(dict.fromkeys(lang for lang in langs if lang != AVG))


@dataclass(frozen=True)
class PaperComparison:
    """Our cells next to the paper's, or the reason there is nothing to compare."""

    task: str
    frame: pd.DataFrame  # method, row, column, ours, paper, difference, significant, paper_significant, model
    note: str | None


def compare_with_paper(cells: pd.DataFrame, task: str, languages: Sequence[str]) -> PaperComparison:
    """Side by side with the paper when every language of ours is one the paper reports for the task.

    avg is compared only when the language sets are equal. Languages the paper does not report (a
    synthetic world's "xa", ...) mean a different setting altogether: the comparison is then empty,
    with a note saying so instead of an error (its English is not the paper's English either).
    """
    reported = paper_results(task)
    known = paper_languages(task)
    foreign = [lang for lang in languages if lang not in known]
    if foreign or not known:
        note = (f"No paper numbers to compare for task {task!r}: the paper has none for "
                f"{', '.join(foreign or languages)} (its {task} languages: {', '.join(known) or 'none'}).")
        return PaperComparison(task, pd.DataFrame(columns=_COMPARISON_COLUMNS), note)
    shared = list(languages)
    columns = shared + ([AVG] if set(languages) == set(known) else [])
    ours = cells[cells["column"].isin(columns)].assign(model=lambda f: f["method"].map(PAPER_MODEL))
    merged = ours.merge(reported, left_on=["model", "column"], right_on=["model", "lang"], how="inner")
    merged = merged.rename(columns={"mean": "ours"}).assign(difference=lambda f: f["ours"] - f["paper"])
    merged = with_intervals(merged)
    note = None if columns[-1:] == [AVG] else (
        f"Only {', '.join(shared)} are compared: the paper's {task} languages are {', '.join(known)}."
    )
    return PaperComparison(task, merged[_COMPARISON_COLUMNS].reset_index(drop=True), note)


_COMPARISON_COLUMNS = ["method", "row", "model", "column", "ours", "paper", "difference", "significant", "paper_significant",
                       "ours_low", "ours_high", "inside"]


def with_intervals(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Our mean's t-interval over seeds (sd with ddof 1, n - 1 degrees of freedom) and whether the paper's
    number lies inside it; NaN / False where fewer than two seeds (or no sd) are known."""
    from scipy import stats

    n = frame["n"] if "n" in frame else pd.Series(float("nan"), index=frame.index)
    sd = frame["std"] if "std" in frame else pd.Series(float("nan"), index=frame.index)
    valid = n > 1
    df = n.where(valid, 2) - 1
    half = pd.Series(stats.t.ppf(0.5 + level / 2, df), index=frame.index) * sd / n.where(valid).pow(0.5)
    low, high = frame["ours"] - half, frame["ours"] + half
    return frame.assign(ours_low=low, ours_high=high, inside=(frame["paper"] >= low) & (frame["paper"] <= high))


def interval_grid(comparison: PaperComparison, decimals: int = 1) -> pd.DataFrame:
    """rows x columns of "[low, high] in|out": does the paper's number lie inside our 95% interval?"""
    frame = comparison.frame
    text = ["–" if pd.isna(lo) else f"[{lo:.{decimals}f}, {hi:.{decimals}f}] {'in' if inside else 'out'}"
            for lo, hi, inside in zip(frame["ours_low"], frame["ours_high"], frame["inside"])]
    grid = frame.assign(text=text).pivot(index="row", columns="column", values="text")
    return grid.reindex(index=list(dict.fromkeys(frame["row"])), columns=list(dict.fromkeys(frame["column"]))).fillna("–")


def comparison_grid(comparison: PaperComparison, decimals: int = 1, underline: Callable[[str], str] = str) -> pd.DataFrame:
    """rows x columns of "ours / paper (difference)" texts, each side underlined where it was significant."""
    frame = comparison.frame

    def side(value: float, significant) -> str:
        text = f"{value:.{decimals}f}"
        return underline(text) if bool(significant) else text

    text = [
        f"{side(o, os_)} / {side(p, ps)} ({d:+.{decimals}f})"
        for o, os_, p, ps, d in zip(frame["ours"], frame["significant"], frame["paper"], frame["paper_significant"], frame["difference"])
    ]
    rows = list(dict.fromkeys(frame["row"]))
    columns = list(dict.fromkeys(frame["column"]))
    grid = frame.assign(text=text).pivot(index="row", columns="column", values="text")
    return grid.reindex(index=rows, columns=columns).fillna("–")
