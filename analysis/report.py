"""The report: tables with significance marks, diagnostics, seeds needed, generalized matrices, the paper side
by side, and the figures, from one or more experiment directories.

Library entry point: `render_report(experiment_dirs, fmt=..., ...) -> str`.
CLI: `python -m sweeper report DIR... [--format csv|html|latex|markdown] [--out PATH] [--figures DIR]
[--baseline NAME] [--alpha 0.05] [--holm] [--gain 0.5] ...` calls `main(argv)`; also `python -m analysis.report`.
Bad input exits with code 2 and a message naming the file; nothing is written before all input is validated.
Every format but LaTeX and CSV is laid out from the same blocks (`task_blocks`): Markdown, the Markdown a
terminal shows (ANSI bold and underline, when standard output is one) and one self-contained HTML page with
the figures inline.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.aggregate import dev_means, m_ablation, seed_averages, seed_scores, summarize, summarize_all, table_material
from analysis.document import (Block, Grid, Heading, Image, Images, Items, Paragraph, render_html_blocks,
                               render_markdown_blocks, render_terminal_blocks)
from analysis.distances import Distances, experiment_distances, order_by_distance
from analysis.load import (AnalysisInputError, ExperimentInfo, Results, damaged_predictions, load_correctness,
                           load_results, planned_frame)
from analysis.names import AVG, display_name
from analysis.selection import per_run_choices, per_run_metrics, per_run_planned
from analysis.paper import PaperComparison, compare_with_paper, comparison_grid, interval_grid
from analysis.stats import example_bootstrap
from analysis.tables import (
    MARKUP,
    TableOptions,
    TaskTable,
    attach_example_level,
    build_task_table,
    difference_matrices,
    generalized_matrices,
    latex_document,
    legend,
    matrix_text,
    render_csv,
    render_latex,
    render_matrix_latex,
    text_grid,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("markdown", "latex", "csv", "html")
# The Markdown report as a terminal shows it (real bold and underline): printed instead of "markdown" when
# standard output is a terminal; never asked for by name.
TERMINAL = "terminal"


@dataclass(frozen=True)
class ReportOptions(TableOptions):
    """Everything the CLI can set: the table's options plus what the report adds.

    `baseline=None` takes each task's baseline from experiment.json.
    """

    baseline: str | None = None
    example_level: bool = True
    methods: tuple[str, ...] | None = None
    selection: str | None = None  # paper | per_run; None: what the experiments ran (experiment.json's protocol)

    def table_options(self, baseline: str, method_display: Mapping[str, str] | None = None) -> TableOptions:
        values = {f.name: getattr(self, f.name) for f in fields(TableOptions)}
        return TableOptions(**{**values, "baseline": baseline,
                               "method_display": method_display or self.method_display})


@dataclass(frozen=True)
class TaskReport:
    """Everything reported for one task."""

    table: TaskTable
    experiments: tuple[ExperimentInfo, ...]
    selection: pd.DataFrame
    generalized: Mapping[str, pd.DataFrame]
    differences: Mapping[str, pd.DataFrame]
    comparison: PaperComparison
    distances: Distances | None
    m_points: Mapping[str, pd.DataFrame]
    notes: tuple[str, ...] = field(default=())
    selection_rule: str = "paper"  # how the main table chose configurations: paper (by the mean) or per_run
    per_run: pd.DataFrame | None = None  # per_run: the configuration each seed's run chose
    sensitivity: TaskTable | None = None  # the main table under the other selection rule (complete grids)


# ---- building (pure, except the predictions read for the example-level supplement) ----------------

def task_baseline(infos: Sequence[ExperimentInfo], requested: str | None) -> str:
    """The baseline method for a task: the requested one, else the experiments' (which must agree)."""
    if requested is not None:
        return requested
    named = {info.baseline for info in infos}
    if len(named) != 1:
        raise AnalysisInputError(
            f"experiments of task {infos[0].task} name different baselines ({', '.join(sorted(named))}); pass --baseline"
        )
    return named.pop()


def selection_frame(metrics: pd.DataFrame, table: TaskTable) -> pd.DataFrame:
    """Per method: the chosen configuration and every candidate's mean English dev accuracy."""
    dev = dev_means(metrics)
    chosen = table.selection.set_index("method")
    rows = []
    for method in chosen.index:
        candidates = dev[(dev["method"] == method) & (dev["stage"] == chosen.loc[method, "stage"])].sort_values("dev_mean", ascending=False)
        listing = "; ".join(f"{label} {value:.2f}" for label, value in zip(candidates["config_label"], candidates["dev_mean"]))
        rows.append((chosen.loc[method, "row"], chosen.loc[method, "stage"], chosen.loc[method, "dev_mean"],
                     int(chosen.loc[method, "dev_n"]), listing))
    return pd.DataFrame(rows, columns=["row", "stage", "dev_mean", "dev_n", "candidates"])


def m_methods(metrics: pd.DataFrame) -> list[str]:
    """Methods whose configurations differ by m (Figure 3's x axis), as the results record them."""
    return list(dict.fromkeys(metrics.loc[metrics["m"].notna(), "method"]))


def m_points(metrics: pd.DataFrame, planned: pd.DataFrame, task: str, languages: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per m-method with at least two values of m: average accuracy per m (Figure 3's points)."""
    scores = seed_scores(metrics)
    methods = m_methods(scores)
    scores = scores[scores["method"].isin(methods) & scores["language"].isin(languages)]
    averages = summarize(seed_averages(scores, {task: languages}), planned)
    found = {}
    for method in methods:
        points = m_ablation(averages, method).sort_values("n", ascending=False).drop_duplicates("m").sort_values("m")
        if points["m"].nunique() >= 2:
            found[method] = points.reset_index(drop=True)
    return found


def seed_averaged_correctness(correctness: pd.DataFrame, languages: Sequence[str]) -> pd.DataFrame:
    """languages (+ avg) x examples: per-example correctness averaged over seeds, avg over languages."""
    matrix = correctness.groupby(["language", "example"])["correct"].mean().unstack("example")
    matrix = matrix.reindex(index=[lang for lang in languages if lang in matrix.index])
    if len(matrix.index) == len(languages):
        matrix.loc[AVG] = matrix.mean(axis=0)
    return matrix


def example_level_tests(correctness: pd.DataFrame, table: TaskTable) -> tuple[pd.DataFrame, list[str]]:
    """The example-level paired bootstrap for every method against the baseline (supplement)."""
    notes, frames = [], []
    chosen = table.selection
    methods = correctness["config_id"].map(dict(zip(chosen["config_id"], chosen["method"])))
    base = seed_averaged_correctness(correctness[methods == table.baseline], table.languages)
    for method in chosen["method"]:
        if method == table.baseline:
            continue
        treat = seed_averaged_correctness(correctness[methods == method], table.languages)
        rows = [r for r in treat.index if r in base.index]
        examples = treat.columns.intersection(base.columns)
        if len(examples) < max(len(treat.columns), len(base.columns)):
            notes.append(f"example-level test, {method}: only {len(examples)} example ids appear for both methods")
        result = example_bootstrap(treat.loc[rows, examples].to_numpy(), base.loc[rows, examples].to_numpy(),
                                   n_resamples=table.options.n_resamples, seed=table.options.seed)
        frames.append(pd.DataFrame({"method": method, "column": rows, "p_example": result.pvalue,
                                    "mean_diff_example": result.mean_difference * 100.0}))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "column", "p_example"])), notes


def read_correctness(results: Results, table: TaskTable, infos: Sequence[ExperimentInfo]) -> tuple[pd.DataFrame | None, str | None]:
    """Per-example correctness of the chosen groups' seeds, or why the supplement is skipped."""
    scores = seed_scores(results.metrics)
    groups = scores.merge(table.selection[["experiment", "config_id", "stage"]])[["experiment", "config_id", "stage", "seed"]].drop_duplicates()
    frames = []
    for info in infos:
        for stage, part in groups[groups["experiment"] == info.name].groupby("stage"):
            frame = load_correctness(info, part, stage=stage)
            frames.append(frame)
            found = frame[["config_id", "seed"]].drop_duplicates()
            if len(found) < len(part):
                damaged = damaged_predictions(info, part)
                why = f" ({len(damaged)} damaged, e.g. {damaged[0]})" if damaged else ""
                return None, (f"example-level test skipped: predictions.parquet missing for {len(part) - len(found)} "
                              f"chosen run(s) of {info.name}{why}")
    return (pd.concat(frames, ignore_index=True) if frames else None), None


def table_notes(table: TaskTable, planned: pd.DataFrame) -> list[str]:
    """Warnings a reader must see: unpaired seeds, groups not in plan.json, incomplete cells."""
    cells = table.cells
    notes = [
        f"{row}, {column}: seeds without a partner on the other side: {seeds} (never marked)"
        for row, column, seeds in zip(cells["row"], cells["column"], cells["unpaired_seeds"].fillna(""))
        if seeds
    ]
    if cells["N"].isna().any():
        rows = ", ".join(sorted(set(cells.loc[cells["N"].isna(), "row"])))
        notes.append(f"not in plan.json (planned seeds unknown, shown n/?): {rows}")
    incomplete = cells[(cells["n"] != cells["N"]) & cells["N"].notna()]
    if len(incomplete):
        notes.append(f"{len(incomplete)} cell(s) have fewer seeds than planned (shown n/N, never marked)")
    return notes


def build_task_report(results: Results, task: str, options: ReportOptions) -> TaskReport:
    """Tables, tests, matrices, comparison and figure data for one task."""
    infos = tuple(info for info in results.experiments if info.task == task)
    metrics = results.metrics[results.metrics["task"] == task]
    planned = planned_frame(infos)
    languages = infos[0].languages
    table_options = options.table_options(task_baseline(infos, options.baseline), results.method_display)
    rule = selection_rule(infos, options.selection)
    choices = per_run_choices(table_material(metrics))
    chosen_by = {"paper": (metrics, planned),
                 "per_run": (per_run_metrics(metrics, choices), per_run_planned(planned, choices, metrics))}
    metrics, planned = chosen_by[rule]
    table = build_task_table(metrics, planned, languages, table_options, options.methods)
    other = "paper" if rule == "per_run" else "per_run"
    sensitivity = (build_task_table(*chosen_by[other], languages, table_options, options.methods)
                   if complete_grid(table_material(results.metrics[results.metrics["task"] == task])) and len(choices)
                   else None)
    notes = [problem for info in infos for problem in info.problems] + table_notes(table, planned)
    if rule == "per_run" and len(choices) and options.example_level:
        notes.append("example-level test skipped: not computed for per-run selection (each seed's run differs)")
    elif options.example_level:
        correctness, skipped = read_correctness(results, table, infos)
        if correctness is not None:
            example, example_notes = example_level_tests(correctness, table)
            table = attach_example_level(table, example)
            notes += example_notes
        elif skipped:
            notes.append(skipped)
    distances = experiment_distances(infos[0])
    matrices = generalized_matrices(metrics, table.selection, order_by_distance(languages, distances))
    points = m_points(metrics, planned, task, languages)
    notes += missing_figure_notes(table, distances, matrices, points)
    return TaskReport(
        table=table, experiments=infos, selection=selection_frame(metrics, table), generalized=matrices,
        differences=difference_matrices(matrices, table.baseline), comparison=compare_with_paper(table.cells, task, languages),
        distances=distances, m_points=points, notes=tuple(notes), selection_rule=rule,
        per_run=choices if rule == "per_run" else None, sensitivity=sensitivity,
    )


def selection_rule(infos: Sequence[ExperimentInfo], requested: str | None) -> str:
    """The requested rule, else per_run where every experiment of the task ran that protocol, else paper."""
    if requested is not None:
        return requested
    return "per_run" if all(info.protocol == "per_run" for info in infos) else "paper"


def complete_grid(metrics: pd.DataFrame) -> bool:
    """Every configuration of each method has English dev results on the same seeds (both rules comparable)."""
    dev = metrics[metrics["split"] == "dev"]
    seeds = dev.groupby(["experiment", "method", "stage", "config_id"])["seed"].agg(frozenset)
    return bool(len(seeds)) and bool((seeds.groupby(level=[0, 1, 2]).nunique() == 1).all())


def missing_figure_notes(table: TaskTable, distances: Distances | None, matrices: Mapping, points: Mapping) -> list[str]:
    """Why a figure of the paper cannot be drawn from these results (instead of leaving it out silently)."""
    notes = []
    if distances is None:
        notes.append(f"Figure 2 needs distances from English: experiment.json has no language_distances and the "
                     f"shipped URIEL table lacks some of {', '.join(table.languages)}")
    if table.baseline not in matrices:
        notes.append("Figures 4-5 and the generalized matrices need generalized test pairs (lang1 != lang2) "
                     "of the baseline and another method: none found")
    present = set(table.selection["method"])
    selected = table.selection
    notes += [f"Figure 3 for {display(method, table)} needs at least two values of m: found fewer"
              for method in m_methods(selected) if method in present and method not in points]
    return notes


def build_reports(results: Results, options: ReportOptions) -> list[TaskReport]:
    """One TaskReport per task, in the order the tasks' experiments were given."""
    tasks = list(dict.fromkeys(info.task for info in results.experiments))
    table_rows = table_material(results.metrics)
    missing = [t for t in tasks if not (table_rows["task"] == t).any()]
    if missing:
        raise AnalysisInputError(f"no table results (stage grid or final) for task(s) {', '.join(missing)}")
    return [build_task_report(results, task, options) for task in tasks]


# ---- figures -------------------------------------------------------------------------------------

def display(method: str, table: TaskTable) -> str:
    return display_name(method, table.options.method_display)


def planned_figures(report: TaskReport) -> list[tuple[str, Callable[[], "Figure"]]]:
    """(file stem, builder) for every figure this task's data supports."""
    # matplotlib is imported only when figures are asked for: it doubles the CLI's start-up time.
    from analysis.figures import difference_heatmap_figure, gain_vs_distance_figure, gains_against_distance, m_ablation_figure

    table, task = report.table, report.table.task
    base = display(table.baseline, table)
    figures = []
    methods = [m for m in table.selection["method"] if m != table.baseline]
    if report.distances is not None:
        for method in methods:
            gains = gains_against_distance(table.cells, method, dict(report.distances.values))
            if len(gains):
                figures.append((f"{task}_fig2_gain_vs_distance_{method}", lambda g=gains, m=method: gain_vs_distance_figure(
                    g, method_label=display(m, table), baseline_label=base, distance_name=report.distances.name, task=task)))
    baseline_avg = table.cells.loc[(table.cells["method"] == table.baseline) & (table.cells["column"] == AVG), "mean"]
    for method, points in report.m_points.items():
        figures.append((f"{task}_fig3_m_ablation_{method}", lambda p=points, m=method: m_ablation_figure(
            p, method_label=display(m, table), task=task, baseline_mean=float(baseline_avg.iloc[0]) if len(baseline_avg) else None)))
    for method, difference in report.differences.items():
        title = f"{task}: {display(method, table)} - {base}, generalized setting (accuracy points)"
        figures.append((f"{task}_fig45_generalized_{method}_minus_{table.baseline}",
                        lambda d=difference, t=title: difference_heatmap_figure(d, title=t)))
    return figures


def draw_figures(report: TaskReport) -> list[tuple[str, "Figure"]]:
    """(file stem, figure) for every figure this task's data supports, drawn."""
    return [(stem, build()) for stem, build in planned_figures(report)]


def write_figures(reports: Sequence[TaskReport], out_dir: Path) -> list[Path]:
    """Every planned figure as PNG and PDF under out_dir."""
    from analysis.figures import save_figure

    return [path for report in reports for stem, build in planned_figures(report)
            for path in save_figure(build(), out_dir / stem)]


def save_figures(drawn: Mapping[str, Sequence[tuple[str, "Figure"]]], out_dir: Path) -> dict[str, list[str]]:
    """Drawn figures (per task) as PNG and PDF under out_dir; the paths per task, for the report's figure list."""
    from analysis.figures import save_figure

    return {task: [str(path) for stem, figure in pairs for path in save_figure(figure, out_dir / stem)]
            for task, pairs in drawn.items()}


# ---- rendering -----------------------------------------------------------------------------------

def _p(value) -> str:
    return "–" if pd.isna(value) else f"{value:.4f}"


def tests_grid(table: TaskTable) -> pd.DataFrame:
    """One line per tested cell: difference with its interval, the primary p and the diagnostics."""
    cells = table.cells[table.cells["method"] != table.baseline]
    d = table.options.decimals + 1
    rows = {
        "difference [95% CI]": [f"{m:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]" if pd.notna(m) else "–"
                                for m, lo, hi in zip(cells["mean_diff"], cells["ci_low"], cells["ci_high"])],
        "pairs": [f"{int(n)}" if pd.notna(n) else "0" for n in cells["n_pairs"]],
        "p (bootstrap)": [_p(v) for v in cells["p"]],
        "p (Holm)": [_p(v) for v in cells["p_holm"]],
        "p ttest_rel": [_p(v) for v in cells["p_ttest_rel"]],
        "p sign-flip": [_p(v) for v in cells["p_sign_flip"]],
        "p example-level": [_p(v) for v in cells.get("p_example", pd.Series(np.nan, index=cells.index))],
        "marked": ["yes" if s else "" for s in cells["significant"]],
    }
    frame = pd.DataFrame(rows)
    frame.index = [f"{r} / {c}" for r, c in zip(cells["row"], cells["column"])]
    return frame


def kept_rows_grid(infos: Sequence[ExperimentInfo]) -> pd.DataFrame | None:
    """Per experiment and split/language: rows, and those with an empty or a placeholder ("NS") sentence; None
    where there are none (or the sweep did not count them)."""
    rows = {f"{info.name} / {name}": counts for info in infos for name, counts in info.kept_rows.items()
            if counts.get("empty", 0) or counts.get("placeholder", 0)}
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index")[["rows", "empty", "placeholder"]]
    return frame.astype(str)


def per_run_grid(report: TaskReport) -> pd.DataFrame:
    """methods x seeds: the configuration each run chose (its label and English dev accuracy)."""
    choices = report.per_run
    text = [f"{label.split(' ', 1)[-1]} ({100 * dev:.1f})" for label, dev in zip(choices["config_label"], choices["dev"])]
    grid = choices.assign(text=text).pivot_table(index="method", columns="seed", values="text", aggfunc="first")
    grid.index = [display(m, report.table) for m in grid.index]
    grid.columns = [f"seed {c}" for c in grid.columns]
    return grid.fillna("–")


def sensitivity_summary(table: TaskTable, other: TaskTable) -> str:
    """One sentence: do the marks (underlines) move between the two rules?"""
    def marked(t: TaskTable) -> set[tuple[str, str]]:
        cells = t.cells[t.cells["significant"]]
        return set(zip(cells["method"], cells["column"]))

    only_main, only_other = marked(table) - marked(other), marked(other) - marked(table)
    if not only_main and not only_other:
        return "The significance marks are the same under both rules."
    listing = lambda cells: ", ".join(f"{display(m, table)} {c}" for m, c in sorted(cells)) or "none"  # noqa: E731
    return (f"The marks differ: underlined only in the main table: {listing(only_main)}; only here: "
            f"{listing(only_other)}.")


def seeds_grid(table: TaskTable) -> pd.DataFrame:
    """rows x columns of "seeds needed (sd of the paired differences)"."""
    cells = table.cells[table.cells["method"] != table.baseline]
    text = [("–" if pd.isna(n) else (f">{1000}" if np.isinf(n) else f"{int(n)}")) + ("" if pd.isna(sd) else f" (sd {sd:.2f})")
            for n, sd in zip(cells["seeds_needed"], cells["sd_diff"])]
    grid = cells.assign(text=text).pivot(index="row", columns="column", values="text")
    rows = [r for r in table.rows if r in grid.index]
    return grid.reindex(index=rows, columns=list(table.columns)).fillna("–")


# Plain text (headings, prose, the diagnostic tables' texts) as each layout takes it: Markdown and the terminal
# print it as it is (as the Markdown report always has), HTML escapes it. Marks go through MARKUP[fmt].
PROSE: Mapping[str, Callable[[str], str]] = {"markdown": str, "terminal": str, "html": html.escape}


def grid_block(frame: pd.DataFrame, corner: str, kind: str, fmt: str, *, marked: bool = False) -> Grid:
    """A table of texts for the layout: plain texts escaped; `marked` cells (written through MARKUP[fmt]) kept."""
    prose = PROSE[fmt]
    values = frame.to_numpy() if marked else frame.map(lambda v: prose(str(v))).to_numpy()
    index = [prose(str(i)) for i in frame.index]
    return Grid(pd.DataFrame(values, index=index, columns=[prose(str(c)) for c in frame.columns]), prose(corner), kind)


def marked_table(table: TaskTable, fmt: str, kind: str) -> list[Block]:
    """A main table (bold best, underlined significant gains, (n/N)) and its legend."""
    grid = text_grid(table, fmt)  # row labels already escaped by MARKUP[fmt]
    frame = pd.DataFrame(grid.to_numpy(), index=grid.index, columns=[PROSE[fmt](str(c)) for c in grid.columns])
    return [Grid(frame, "Method", kind), Paragraph(legend(table, fmt))]


def task_blocks(report: TaskReport, fmt: str, figures: Sequence[str] = (), images: Sequence[Image] = ()) -> list[Block]:
    """One task's section: `figures` the paths of figure files written, `images` the figures themselves."""
    table, opts, prose = report.table, report.table.options, PROSE[fmt]
    names = ", ".join(info.name for info in report.experiments)
    parts: list[Block] = [Heading(2, prose(f"{table.task} (experiments: {names})")), *marked_table(table, fmt, "results")]
    selection = report.selection.set_index("row")[["stage", "dev_mean", "dev_n", "candidates"]]
    selection["dev_mean"] = selection["dev_mean"].map(lambda v: f"{v:.2f}")
    selection.columns = ["stage", "dev accuracy", "seeds", "candidates (dev accuracy)"]
    if report.selection_rule == "per_run":
        parts += [Heading(3, prose("Configuration chosen by each run's own English dev accuracy (per-run selection)")),
                  Paragraph(prose("Each seed's run picks its epsilon (or m) by its own English dev accuracy; ties go to "
                                  "the smaller config_id, and a seed chooses among the configurations finished on it.")),
                  grid_block(per_run_grid(report), "Method", "per-run", fmt)]
    else:
        parts += [Heading(3, prose("Configuration chosen by mean English dev accuracy (%)")),
                  grid_block(selection, "Method", "selection", fmt)]
    parts += [Heading(3, prose(f"Paired tests against {display(table.baseline, table)} (points; p one-sided)")),
              grid_block(tests_grid(table), "Cell", "tests", fmt),
              Paragraph(prose("Primary test: bootstrapped paired t-test on per-seed accuracies (seeds paired by id). "
                              "Diagnostics: scipy ttest_rel (greater), exact sign-flip permutation, example-level "
                              "paired bootstrap on per-example correctness averaged over seeds (supplement, not used "
                              "for marks)."))]
    kept = kept_rows_grid(report.experiments)
    if kept is not None:
        parts += [Heading(3, prose("Rows with an empty or placeholder sentence (kept and scored, as the paper's scripts "
                                   "keep them)")),
                  grid_block(kept, "Experiment / set", "kept-rows", fmt)]
    if report.sensitivity is not None:
        other = report.sensitivity
        title = "per-run selection" if report.selection_rule == "paper" else "selection by the mean over seeds"
        parts += [Heading(3, prose(f"Selection sensitivity: the same results under {title}")),
                  Paragraph(prose("Section 4.1 can be read as choosing epsilon (or m) once per method, by the mean "
                                  "English dev accuracy over seeds (the table above), or inside each run by its own dev "
                                  "accuracy; every configuration ran on every seed here, so both can be shown.")),
                  *marked_table(other, fmt, "sensitivity"), Paragraph(prose(sensitivity_summary(table, other)))]
    parts += [Heading(3, prose(f"Seeds needed to detect +{opts.gain:g} points (one-sided paired t-test, alpha "
                               f"{opts.alpha:g}, power {opts.power:g})")),
              grid_block(seeds_grid(table), "Method", "seeds-needed", fmt)]
    for method, matrix in report.generalized.items():
        parts += [Heading(3, prose(f"Generalized setting: {display(method, table)} (rows: sentence-1 language, "
                                   "columns: sentence-2 language)")),
                  grid_block(matrix_text(matrix, opts.decimals), "lang1 \\ lang2", "generalized", fmt)]
    for method, matrix in report.differences.items():
        parts += [Heading(3, prose(f"Generalized setting: {display(method, table)} - {display(table.baseline, table)}")),
                  grid_block(matrix_text(matrix, opts.decimals, signed=True), "lang1 \\ lang2", "difference", fmt)]
    parts.append(Heading(3, prose("Against the paper (ours / paper (difference), points; underlined: significant "
                                  "improvement)")))
    if len(report.comparison.frame):
        comparison = comparison_grid(report.comparison, opts.decimals, MARKUP[fmt].underline)  # numbers and marks
        frame = report.comparison.frame
        known = frame["ours_low"].notna()
        parts += [grid_block(comparison, "Method", "paper", fmt, marked=True),
                  Paragraph(prose(f"Our 95% interval over seeds (t, n - 1 degrees of freedom) and whether the paper's "
                                  f"number lies in it: {int(frame.loc[known, 'inside'].sum())} of {int(known.sum())} "
                                  "inside.")),
                  grid_block(interval_grid(report.comparison, opts.decimals), "Method", "paper-interval", fmt)]
    if report.comparison.note:
        parts.append(Paragraph(prose(report.comparison.note)))
    if figures or images:
        parts.append(Heading(3, "Figures"))
        if images:
            parts.append(Images(tuple(images)))
        if figures:
            parts.append(Items(tuple(map(prose, figures))))
    if report.notes:
        parts += [Heading(3, "Notes"), Items(tuple(map(prose, report.notes)))]
    return parts


def report_blocks(reports: Sequence[TaskReport], fmt: str, figures: Mapping[str, Sequence[str]],
                  images: Mapping[str, Sequence[Image]] | None = None) -> list[Block]:
    images = images or {}
    return [Heading(1, "Results"), *(block for r in reports for block in
                                     task_blocks(r, fmt, figures.get(r.table.task, ()), images.get(r.table.task, ())))]


def render_markdown_report(reports: Sequence[TaskReport], figures: Mapping[str, Sequence[str]]) -> str:
    return render_markdown_blocks(report_blocks(reports, "markdown", figures))


def render_terminal_report(reports: Sequence[TaskReport], figures: Mapping[str, Sequence[str]]) -> str:
    """The Markdown report for a terminal: real bold and underline, aligned columns."""
    return render_terminal_blocks(report_blocks(reports, "terminal", figures))


def render_html_report(reports: Sequence[TaskReport], figures: Mapping[str, Sequence[str]],
                       drawn: Mapping[str, Sequence[tuple[str, "Figure"]]] | None = None) -> str:
    """One self-contained page: every table of the Markdown report and every figure inline (PNG)."""
    from analysis.figures import png_bytes

    drawn = drawn if drawn is not None else {r.table.task: draw_figures(r) for r in reports}
    images = {task: [Image(stem, png_bytes(figure)) for stem, figure in pairs] for task, pairs in drawn.items()}
    title = "Results: " + "; ".join(f"{r.table.task} ({', '.join(i.name for i in r.experiments)})" for r in reports)
    return render_html_blocks(report_blocks(reports, "html", figures, images), title)


def render_latex_report(reports: Sequence[TaskReport], standalone: bool) -> str:
    """Main tables and generalized matrices as LaTeX (notes as % comments)."""
    parts = []
    for report in reports:
        task = report.table.task
        parts.append(render_latex(report.table, label=f"tab:{task}"))
        for method, matrix in report.generalized.items():
            parts.append(render_matrix_latex(matrix, f"{task}: generalized setting, {display(method, report.table)} (rows: sentence 1, columns: sentence 2)."))
        parts += [f"% {note}" for note in report.notes]
        if report.comparison.note:
            parts.append(f"% {report.comparison.note}")
    body = "\n\n".join(parts)
    return latex_document(body) if standalone else "% requires \\usepackage{booktabs}\n" + body + "\n"


def render(reports: Sequence[TaskReport], fmt: str, *, figures: Mapping[str, Sequence[str]] | None = None,
           standalone: bool = False, drawn: Mapping[str, Sequence[tuple[str, "Figure"]]] | None = None) -> str:
    """The whole report in one of FORMATS (or TERMINAL); html draws the figures unless `drawn` holds them."""
    renderers: Mapping[str, Callable[[], str]] = {
        "markdown": lambda: render_markdown_report(reports, figures or {}),
        TERMINAL: lambda: render_terminal_report(reports, figures or {}),
        "latex": lambda: render_latex_report(reports, standalone),
        "csv": lambda: render_csv([r.table for r in reports]),
        "html": lambda: render_html_report(reports, figures or {}, drawn),
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return renderers[fmt]()


def render_report(
    experiment_dirs: Iterable[str | Path],
    *,
    fmt: str = "markdown",
    baseline: str | None = "baseline",
    alpha: float = 0.05,
    holm: bool = False,
    figures_dir: str | Path | None = None,
    standalone: bool = False,
    **options,
) -> str:
    """The significance-marked report as text; `baseline=None` uses experiment.json's baseline.

    Further keyword options are ReportOptions fields (n_resamples, seed, gain, power, decimals,
    example_level, methods). Raises AnalysisInputError on bad input.
    """
    report_options = ReportOptions(baseline=baseline, alpha=alpha, holm=holm, **options)
    reports = build_reports(load_results(experiment_dirs), report_options)
    drawn = {r.table.task: draw_figures(r) for r in reports} if figures_dir is not None or fmt == "html" else None
    written = save_figures(drawn, Path(figures_dir)) if figures_dir is not None else {}
    return render(reports, fmt, figures=written, standalone=standalone, drawn=drawn)


def write_report_folder(experiment_dirs: Iterable[str | Path], out_dir: Path,
                        options: ReportOptions = ReportOptions()) -> list[Path]:
    """The whole report as files in `out_dir` (an existing folder): report.html (self-contained), report.md,
    report.tex, table.csv, summary.csv and figures/; what a tracking service stores as the run's artifacts.

    Raises AnalysisInputError when there is nothing to report (no finished cell).
    """
    results = load_results(experiment_dirs)
    reports = build_reports(results, options)
    drawn = {report.table.task: draw_figures(report) for report in reports}
    figures = save_figures(drawn, out_dir / "figures")
    texts = {
        "report.html": render(reports, "html", drawn=drawn),
        "report.md": render(reports, "markdown", figures={task: [os.path.relpath(path, out_dir) for path in paths]
                                                          for task, paths in figures.items()}),
        "report.tex": render(reports, "latex", standalone=True),
        "table.csv": render(reports, "csv"),
        "summary.csv": configuration_summary(results).to_csv(index=False, float_format="%.6g"),
    }
    for name, text in texts.items():
        write_atomically(out_dir / name, text)
    return [out_dir / name for name in texts] + [Path(path) for paths in figures.values() for path in paths]


def printed_format(stream) -> str:
    """TERMINAL where `stream` is a terminal (and NO_COLOR is unset or empty), else "markdown": piped or
    redirected output stays plain Markdown."""
    isatty = getattr(stream, "isatty", None)
    return TERMINAL if callable(isatty) and isatty() and not os.environ.get("NO_COLOR") else "markdown"


def configuration_summary(results: Results) -> pd.DataFrame:
    """Every configuration's mean/sd/n/N per language pair and avg, in points (the --summary CSV)."""
    languages = {info.task: info.languages for info in results.experiments}
    return summarize_all(results.metrics, planned_frame(results.experiments), languages)


# ---- CLI -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper report",
        description="Tables 1-3 with significance marks, diagnostics, seeds needed, generalized matrices, "
        "the paper side by side and the figures, from experiment directories.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="experiment directories (or a storage folder of them)")
    parser.add_argument("--format", choices=FORMATS, default="markdown",
                        help="output format (default: markdown; printed to a terminal with real bold and underline); "
                             "html: one self-contained page with every table and the figures inline")
    parser.add_argument("--out", type=Path, help="write the report here (atomically) instead of printing it")
    parser.add_argument("--figures", type=Path, metavar="DIR", help="write the figures (PNG and PDF) into DIR")
    parser.add_argument("--baseline", help="baseline method (default: experiment.json's)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    parser.add_argument("--holm", action="store_true", help="Holm-adjust p across the languages of each row")
    parser.add_argument("--gain", type=float, default=0.5, help="gain in points for the seeds-needed report (default: 0.5)")
    parser.add_argument("--power", type=float, default=0.8, help="target power for the seeds-needed report (default: 0.8)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's Generator (default: 0)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD",
                        help="rows to show, by the results' method names (the baseline is always shown)")
    parser.add_argument("--selection", choices=("paper", "per_run"),
                        help="how the main table chooses each method's epsilon/m: by the mean English dev accuracy "
                             "over seeds (paper) or inside each seed's run (per_run); default: the experiments' "
                             "selection.protocol")
    parser.add_argument("--no-example-level", action="store_true", help="skip the example-level supplement (reads predictions)")
    parser.add_argument("--standalone", action="store_true", help="LaTeX: a complete compilable document")
    parser.add_argument("--summary", type=Path, metavar="CSV",
                        help="also write mean/sd/n/N of every configuration and language pair to this CSV")
    return parser


def check_arguments(args: argparse.Namespace) -> str | None:
    """A message for the first bad option value, None when all are usable."""
    checks = [
        (0 < args.alpha < 1, f"--alpha must lie in (0, 1), got {args.alpha}"),
        (0 < args.power < 1, f"--power must lie in (0, 1), got {args.power}"),
        (args.gain > 0, f"--gain must be positive, got {args.gain}"),
        (args.resamples >= 1, f"--resamples must be at least 1, got {args.resamples}"),
        (args.out is None or not args.out.is_dir(), f"--out: {args.out} is a folder; name the report's file"),
        (args.out is None or args.out.parent.is_dir(), f"--out: folder {args.out.parent if args.out else ''} does not exist"),
        (args.summary is None or not args.summary.is_dir(), f"--summary: {args.summary} is a folder; name the CSV file"),
        (args.summary is None or args.summary.parent.is_dir(),
         f"--summary: folder {args.summary.parent if args.summary else ''} does not exist"),
        (args.figures is None or args.figures.is_dir() or _creatable(args.figures),
         f"--figures: {args.figures} cannot be created (a file is in the way)"),
        (args.figures is None or not args.figures.exists() or args.figures.is_dir(), f"--figures: {args.figures} is not a folder"),
    ]
    return next((message for ok, message in checks if not ok), None)


def _creatable(folder: Path) -> bool:
    """A folder that does not exist yet and whose nearest existing ancestor is a folder."""
    from trainables.results import existing_ancestor

    return not folder.exists() and existing_ancestor(folder).is_dir()


def write_atomically(path: Path, text: str) -> None:
    """Write text through a temporary file in the same folder, then os.replace."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def options_from(args: argparse.Namespace) -> ReportOptions:
    return ReportOptions(baseline=args.baseline, alpha=args.alpha, holm=args.holm, n_resamples=args.resamples,
                         seed=args.seed, gain=args.gain, power=args.power, example_level=not args.no_example_level,
                         methods=tuple(args.methods) if args.methods else None, selection=args.selection)


def write_outputs(args: argparse.Namespace, results: Results, reports: Sequence[TaskReport]) -> None:
    """Summary CSV, figures, then the report itself (to --out atomically, or to stdout: Markdown printed to a
    terminal shows its marks as real bold and underline)."""
    if args.summary is not None:
        write_atomically(args.summary, configuration_summary(results).to_csv(index=False, float_format="%.6g"))
    needed = args.figures is not None or args.format == "html"
    drawn = {report.table.task: draw_figures(report) for report in reports} if needed else None
    figures = save_figures(drawn, args.figures) if args.figures is not None else {}
    fmt = printed_format(sys.stdout) if args.out is None and args.format == "markdown" else args.format
    text = render(reports, fmt, figures=figures, standalone=args.standalone, drawn=drawn)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomically(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The `report` command; returns the exit code (2 on bad input, with a message on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    problem = check_arguments(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        results = load_results(args.dirs)
        unknown = sorted(set(args.methods or ()) - set(results.metrics["method"]))
        if unknown:
            raise AnalysisInputError(f"--methods: no results for {', '.join(unknown)}; the results have: "
                                     f"{', '.join(sorted(set(results.metrics['method'])))}")
        reports = build_reports(results, options_from(args))
    except AnalysisInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_outputs(args, results, reports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
