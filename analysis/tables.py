"""The paper's Tables 1-3 (and the generalized matrices of Tables 4-9) from seed-level results.

`build_task_table` computes every cell as data (mean, std, n, N, paired tests, marks); the
`render_*` functions only lay it out: CSV (explicit columns so the marks can be checked), LaTeX
(booktabs, \\textbf for the best per column, \\underline for significant improvements) and Markdown
(**bold**, <u>underline</u>); `MARKUP` also writes the marks for a terminal (ANSI) and for HTML. Rows
are methods, baseline first; columns the task's languages in the paper's order plus avg.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.aggregate import generalized_matrix, restrict_to, seed_averages, seed_matrix, seed_scores, select_configurations, summarize
from analysis.load import AnalysisInputError
from analysis.names import AVG, METHOD_DISPLAY, configuration_display, display_name, method_order
from analysis.power import seeds_needed
from analysis.stats import holm, is_significant, pair_by_seed, paired_bootstrap_batch, sign_flip_pvalue, ttest_rel_pvalue


@dataclass(frozen=True)
class TableOptions:
    """How cells are tested and shown."""

    baseline: str = "baseline"
    alpha: float = 0.05
    holm: bool = False
    n_resamples: int = 10_000
    seed: int = 0
    decimals: int = 1
    gain: float = 0.5
    power: float = 0.8
    method_display: Mapping[str, str] = field(default_factory=lambda: METHOD_DISPLAY)  # Results.method_display


@dataclass(frozen=True)
class TaskTable:
    """One task's table as data: `cells` has one row per (method, column), baseline included."""

    task: str
    languages: tuple[str, ...]
    baseline: str
    cells: pd.DataFrame
    selection: pd.DataFrame
    options: TableOptions

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.languages, AVG)

    @property
    def rows(self) -> list[str]:
        """Row labels in table order (baseline first, then the paper's method order)."""
        return list(self.selection["row"])


@dataclass(frozen=True)
class PairedCell:
    method: str
    column: str
    seeds: tuple[int, ...]
    treatment: np.ndarray
    baseline: np.ndarray
    unpaired: tuple[int, ...]


def _with_row_labels(chosen: pd.DataFrame, displays: Mapping[str, str]) -> pd.DataFrame:
    labels = [configuration_display(m, l, displays) for m, l in zip(chosen["method"], chosen["config_label"])]
    return chosen.assign(row=labels)


def choose_rows(metrics: pd.DataFrame, planned: pd.DataFrame, baseline: str, methods: Sequence[str] | None,
                displays: Mapping[str, str] = METHOD_DISPLAY) -> pd.DataFrame:
    """The configuration shown for each method, baseline first; an error if the baseline has no results."""
    chosen = select_configurations(metrics, planned)
    if methods is not None:
        chosen = chosen[chosen["method"].isin([*methods, baseline])]
    if baseline not in set(chosen["method"]):
        task = metrics["task"].iloc[0] if len(metrics) else "?"
        raise AnalysisInputError(
            f"task {task}: no table results for the baseline method {baseline!r} "
            f"(methods found: {', '.join(sorted(set(chosen['method']))) or 'none'}); use --baseline NAME"
        )
    order = chosen["method"].map(lambda m: -1 if m == baseline else method_order(m))
    ordered = chosen.assign(order=order).sort_values("order", kind="stable").drop(columns="order")
    return _with_row_labels(ordered.reset_index(drop=True), displays)


def table_scores(metrics: pd.DataFrame, chosen: pd.DataFrame, task: str, languages: Sequence[str]) -> pd.DataFrame:
    """Per-seed scores of the chosen groups for every language column plus the per-seed avg."""
    scores = seed_scores(metrics)
    scores = scores[scores["language"].isin(languages)]
    scores = restrict_to(scores, chosen)
    return pd.concat([scores, seed_averages(scores, {task: languages})], ignore_index=True)


def paired_cells(scores: pd.DataFrame, baseline: str, columns: Sequence[str]) -> list[PairedCell]:
    """For every non-baseline method and column: its seeds paired with the baseline's by seed id."""
    base = seed_matrix(scores[scores["method"] == baseline]).reindex(columns=list(columns))
    cells = []
    for method, group in scores[scores["method"] != baseline].groupby("method", sort=False):
        matrix = seed_matrix(group).reindex(columns=list(columns))
        for column in columns:
            pairing = pair_by_seed(matrix[column].dropna(), base[column].dropna())
            unpaired = pairing.unpaired_treatment + pairing.unpaired_baseline
            cells.append(PairedCell(method, column, pairing.seeds, pairing.treatment, pairing.baseline, unpaired))
    return cells


def _test_bucket(bucket: list[PairedCell], options: TableOptions) -> pd.DataFrame:
    treatment = np.array([c.treatment for c in bucket]).reshape(len(bucket), -1)
    baseline = np.array([c.baseline for c in bucket]).reshape(len(bucket), -1)
    differences = treatment - baseline
    batch = paired_bootstrap_batch(differences, n_resamples=options.n_resamples, seed=options.seed)
    n = differences.shape[1]
    sd = differences.std(axis=1, ddof=1) if n >= 2 else np.full(len(bucket), np.nan)
    return pd.DataFrame(
        {
            "method": [c.method for c in bucket],
            "column": [c.column for c in bucket],
            "n_pairs": n,
            "unpaired_seeds": [" ".join(map(str, c.unpaired)) for c in bucket],
            "mean_diff": batch.mean_difference,
            "ci_low": batch.ci_low,
            "ci_high": batch.ci_high,
            "sd_diff": sd,
            "t": batch.statistic,
            "p": batch.pvalue,
            "p_ttest_rel": ttest_rel_pvalue(treatment, baseline) if n >= 2 else np.nan,
            "p_sign_flip": sign_flip_pvalue(differences, seed=options.seed),
        }
    )


TEST_COLUMNS = ["method", "column", "n_pairs", "unpaired_seeds", "mean_diff", "ci_low", "ci_high", "sd_diff", "t", "p",
                "p_ttest_rel", "p_sign_flip"]


def run_tests(cells: list[PairedCell], options: TableOptions) -> pd.DataFrame:
    """Every paired cell tested; cells with the same number of pairs share one vectorized batch."""
    buckets: dict[int, list[PairedCell]] = {}
    for cell in cells:
        buckets.setdefault(len(cell.seeds), []).append(cell)
    frames = [_test_bucket(bucket, options) for bucket in buckets.values()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TEST_COLUMNS)


def holm_within_rows(tests: pd.DataFrame, languages: Sequence[str]) -> pd.Series:
    """Holm-adjusted p across the languages of each method's row (avg is its own single test)."""
    adjusted = pd.Series(np.nan, index=tests.index)
    in_family = tests["column"].isin(languages)
    for _, group in tests[in_family].groupby("method", sort=False):
        adjusted.loc[group.index] = holm(group["p"].to_numpy())
    adjusted[~in_family] = tests.loc[~in_family, "p"]
    return adjusted


def _complete(cells: pd.DataFrame, baseline_counts: pd.DataFrame) -> pd.Series:
    merged = cells[["column"]].merge(baseline_counts, on="column", how="left")
    own = (cells["n"] == cells["N"]).to_numpy()
    base = (merged["n_base"] == merged["N_base"]).to_numpy()
    unpaired = cells["unpaired_seeds"].fillna("").to_numpy() != ""
    return pd.Series(own & base & ~unpaired & cells["N"].notna().to_numpy(), index=cells.index)


def with_corrections(tests: pd.DataFrame, languages: Sequence[str], options: TableOptions) -> pd.DataFrame:
    """Add the Holm-adjusted p and the seeds a paired test needs for the options' gain and power."""
    if tests.empty:
        return tests.assign(p_holm=pd.Series(dtype="float64"), seeds_needed=pd.Series(dtype="float64"))
    needed = seeds_needed(tests["sd_diff"].to_numpy(dtype="float64"), options.gain, alpha=options.alpha, power=options.power)
    return tests.assign(p_holm=holm_within_rows(tests, languages), seeds_needed=needed)


def mark_cells(cells: pd.DataFrame, options: TableOptions) -> pd.DataFrame:
    """Add `significant` (underline) and `best` (bold) to the cells."""
    base = cells[cells["method"] == options.baseline][["column", "n", "N"]].rename(columns={"n": "n_base", "N": "N_base"})
    cells = cells.assign(complete=_complete(cells, base))
    p_used = cells["p_holm"] if options.holm else cells["p"]
    significant = is_significant(p_used, cells["mean_diff"], options.alpha, cells["complete"])
    cells = cells.assign(significant=significant & (cells["method"] != options.baseline).to_numpy())
    shown = cells["mean"].round(options.decimals)
    return cells.assign(best=shown == shown.groupby(cells["column"]).transform("max"))


def build_task_table(
    metrics: pd.DataFrame,
    planned: pd.DataFrame,
    languages: Sequence[str],
    options: TableOptions = TableOptions(),
    methods: Sequence[str] | None = None,
) -> TaskTable:
    """One task's Table 1/2/3 as data from its metrics rows (one task; several experiments allowed)."""
    tasks = metrics["task"].unique()
    if len(tasks) != 1:
        raise ValueError(f"build_task_table needs the rows of exactly one task, got {list(tasks)}")
    task = str(tasks[0])
    chosen = choose_rows(metrics, planned, options.baseline, methods, options.method_display)
    scores = table_scores(metrics, chosen, task, languages)
    columns = (*languages, AVG)
    summary = summarize(scores, planned).merge(chosen[["experiment", "config_id", "stage", "row"]])
    tests = with_corrections(run_tests(paired_cells(scores, options.baseline, columns), options), languages, options)
    cells = summary.rename(columns={"language": "column"}).merge(tests, on=["method", "column"], how="left")
    cells = mark_cells(cells, options)
    order = {row: i for i, row in enumerate(chosen["row"])}
    column_order = {c: i for i, c in enumerate(columns)}
    cells = cells.sort_values(by=["row", "column"], key=lambda s: s.map(order if s.name == "row" else column_order))
    return TaskTable(task, tuple(languages), options.baseline, cells.reset_index(drop=True), chosen, options)


def attach_example_level(table: TaskTable, example_level: pd.DataFrame) -> TaskTable:
    """Merge the supplementary example-level p-values (columns method, column, p_example) into the cells."""
    cells = table.cells.drop(columns=[c for c in ("p_example", "mean_diff_example") if c in table.cells])
    return replace(table, cells=cells.merge(example_level, on=["method", "column"], how="left"))


def generalized_matrices(
    metrics: pd.DataFrame, chosen: pd.DataFrame, languages: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Per method (chosen configuration): mean accuracy per (sentence-1, sentence-2 language) with averages."""
    scores = restrict_to(seed_scores(metrics, generalized=True), chosen)
    matrices = {}
    for method in chosen["method"]:
        rows = scores[scores["method"] == method]
        if rows[["lang1", "lang2"]].drop_duplicates().shape[0] > rows["lang1"].nunique():
            matrices[method] = generalized_matrix(rows, languages)
    return matrices


def difference_matrices(matrices: Mapping[str, pd.DataFrame], baseline: str) -> dict[str, pd.DataFrame]:
    """Each method's generalized matrix minus the baseline's (the paper's Figures 4-5)."""
    if baseline not in matrices:
        return {}
    base = matrices[baseline]
    return {m: matrix - base for m, matrix in matrices.items() if m != baseline}


# ---- layout -----------------------------------------------------------------------------------------

def format_number(value: float, decimals: int, missing: str = "–") -> str:
    return missing if value is None or pd.isna(value) else f"{value:.{decimals}f}"


def format_count(n, N) -> str:
    """"(n/N)" for an incomplete cell, "" for a complete one."""
    planned = "?" if pd.isna(N) else str(int(N))
    return "" if planned != "?" and int(n) == int(N) else f" ({int(n)}/{planned})"


@dataclass(frozen=True)
class Markup:
    """How a format writes bold, underline, "<=" and a missing number, and escapes plain text."""

    bold: Callable[[str], str]
    underline: Callable[[str], str]
    escape: Callable[[str], str]
    less_equal: str
    missing: str


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a label."""
    replacements = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(replacements.get(ch, ch) for ch in text)


def markdown_escape(text: str) -> str:
    return text.replace("|", r"\|")


MARKUP: Mapping[str, Markup] = {
    "markdown": Markup(lambda s: f"**{s}**", lambda s: f"<u>{s}</u>", markdown_escape, "<=", "–"),
    # the Markdown layout printed to a terminal: ANSI SGR bold (1/22) and underline (4/24) instead of ** and <u>
    "terminal": Markup(lambda s: f"\x1b[1m{s}\x1b[22m", lambda s: f"\x1b[4m{s}\x1b[24m", markdown_escape, "<=", "–"),
    "html": Markup(lambda s: f"<strong>{s}</strong>", lambda s: f"<u>{s}</u>", html.escape, "≤", "–"),
    "latex": Markup(lambda s: rf"\textbf{{{s}}}", lambda s: rf"\underline{{{s}}}", latex_escape, r"$\le$", "--"),
    "plain": Markup(lambda s: s, lambda s: s, lambda s: s, "<=", "-"),
}


def cell_text(cell: pd.Series, markup: Markup, decimals: int) -> str:
    """A cell's mean with its marks, plus (n/N) when fewer seeds than planned were found."""
    text = format_number(cell["mean"], decimals, markup.missing)
    if cell["significant"]:
        text = markup.underline(text)
    if cell["best"]:
        text = markup.bold(text)
    return text + format_count(cell["n"], cell["N"])


def text_grid(table: TaskTable, fmt: str) -> pd.DataFrame:
    """rows x columns of formatted cell texts (row labels escaped for the format)."""
    markup = MARKUP[fmt]
    texts = table.cells.assign(text=[cell_text(c, markup, table.options.decimals) for _, c in table.cells.iterrows()])
    grid = texts.pivot(index="row", columns="column", values="text").reindex(index=table.rows, columns=list(table.columns))
    grid.index = [markup.escape(r) for r in grid.index]
    return grid.fillna(markup.missing)


def markdown_grid(frame: pd.DataFrame, corner: str) -> str:
    """A DataFrame (already text) as a GitHub Markdown table."""
    header = [corner, *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in zip(frame.index, frame.to_numpy())]
    return "\n".join(lines)


def legend(table: TaskTable, fmt: str = "markdown") -> str:
    """What bold, underline and (n/N) mean for this table, written for the format."""
    markup = MARKUP[fmt]
    correction = ", Holm-adjusted across the languages of each row" if table.options.holm else ""
    base = display_name(table.baseline, table.options.method_display)
    before = f"Test accuracy (%), mean over seeds. Bold: best per column. Underline: improvement over {base} with p "
    after = (
        f" {table.options.alpha:g} (bootstrapped paired t-test, one-sided, {table.options.n_resamples:,} "
        f"resamples, seed {table.options.seed}{correction}) and complete seed pairs. "
        "A value followed by (n/N): only n of N planned seeds finished."
    )
    return markup.escape(before) + markup.less_equal + markup.escape(after)


def render_markdown(table: TaskTable) -> str:
    """The table as GitHub Markdown (bold **x**, underline <u>x</u>) followed by its legend."""
    return markdown_grid(text_grid(table, "markdown"), "Method") + "\n\n" + legend(table)


def latex_blocks(columns: Sequence[str], max_columns: int = 9) -> list[list[str]]:
    """Split wide tables into stacked blocks of at most `max_columns` columns, as the paper's Table 2."""
    if len(columns) <= max_columns:
        return [list(columns)]
    half = math.ceil(len(columns) / 2)
    return [list(columns[:half]), list(columns[half:])]


def render_latex(table: TaskTable, *, caption: str | None = None, label: str | None = None) -> str:
    """The table as a LaTeX table environment (needs \\usepackage{booktabs})."""
    grid = text_grid(table, "latex")
    blocks = latex_blocks(list(table.columns))
    width = max(len(b) for b in blocks)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * width + "}", r"\toprule"]
    for index, block in enumerate(blocks):
        if index:
            lines.append(r"\midrule")
        lines.append(" & ".join(["Model", *map(latex_escape, block)]) + r" \\")
        lines.append(r"\midrule")
        lines += [" & ".join([row, *grid.loc[row, block]]) + r" \\" for row in grid.index]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines.append(r"\caption{" + (latex_escape(caption) if caption else latex_escape(f"{table.task}: ") + legend(table, "latex")) + "}")
    lines.append(r"\label{" + (label or f"tab:{table.task}") + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def latex_document(body: str) -> str:
    """A standalone, compilable LaTeX document around table(s)."""
    return "\n".join(
        [r"\documentclass{article}", r"\usepackage[utf8]{inputenc}",
         r"\usepackage{booktabs}", r"\begin{document}", body, r"\end{document}", ""]
    )


CSV_COLUMNS = [
    "task", "method", "row", "column", "mean", "std", "n", "N", "mean_diff", "ci_low", "ci_high", "n_pairs",
    "unpaired_seeds", "p", "p_holm", "p_ttest_rel", "p_sign_flip", "p_example", "significant", "best", "complete",
    "sd_diff", "seeds_needed", "experiment", "config_id", "stage",
]


def cells_frame(tables: Sequence[TaskTable]) -> pd.DataFrame:
    """Every cell of the tables in long form with explicit columns (the CSV export)."""
    frames = [t.cells.reindex(columns=CSV_COLUMNS) for t in tables]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CSV_COLUMNS)


def render_csv(tables: Sequence[TaskTable]) -> str:
    return cells_frame(tables).to_csv(index=False, float_format="%.6g")


def matrix_text(matrix: pd.DataFrame, decimals: int, signed: bool = False, missing: str = "–") -> pd.DataFrame:
    """Numbers of a generalized matrix as text (signed for difference matrices)."""
    spec = f"{{:+.{decimals}f}}" if signed else f"{{:.{decimals}f}}"
    return matrix.map(lambda v: missing if pd.isna(v) else spec.format(v))


def render_matrix_latex(matrix: pd.DataFrame, caption: str, decimals: int = 1, signed: bool = False) -> str:
    """A generalized matrix (rows sentence-1, columns sentence-2 language) as a booktabs table."""
    text = matrix_text(matrix, decimals, signed, MARKUP["latex"].missing)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "c" * len(text.columns) + "}", r"\toprule"]
    lines.append(" & ".join(["", *map(latex_escape, map(str, text.columns))]) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join([latex_escape(str(i)), *row]) + r" \\" for i, row in zip(text.index, text.to_numpy())]
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + latex_escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines)
