"""How fast the analysis turns a full sweep into the paper's tables and figures.

1. Full report: 2 tasks (PAWS-X 7 languages, XNLI 15) x 5 methods x 4 configurations x 10 seeds, every
   language and every generalized language pair, written as schema-conformant results; then loading,
   tables (selection, 10,000-resample bootstrapped paired t-tests, diagnostics, seeds needed,
   generalized matrices, paper comparison), rendering in three formats, and all figures are timed.
   Target: tables in under 5 seconds.
2. Example-level paired bootstrap at XNLI size: 5,010 examples x 15 languages, 10,000 resamples,
   in memory and end to end from predictions.parquet (2 methods x 10 seeds).

Prints a table and appends it with a machine description to BENCHMARKS.md.
Usage: python benchmarks/bench_analysis.py [--no-append]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.load import load_results  # noqa: E402
from analysis.report import (  # noqa: E402
    ReportOptions,
    build_reports,
    example_level_tests,
    read_correctness,
    render,
    write_figures,
)
from analysis.stats import example_bootstrap  # noqa: E402
from analysis.testing import Config, ExperimentSpec, config, write_experiment  # noqa: E402
from trainables.tasks import TASKS  # noqa: E402

from common import append_section, markdown_table  # noqa: E402  (benchmarks/ is on sys.path)

HEADING = "## Analysis: tables, tests and figures (analysis/)"
SEEDS = tuple(range(10))
GAINS = {"baseline": 0.0, "adv": 0.004, "rs_rp": 0.01, "rs_da": 0.02, "rs_syntax": 0.005}
XNLI_EXAMPLES = 5010


def four_configs(method: str) -> tuple[Config, ...]:
    """Four configurations per method, as in the paper's grids (the baseline varies its learning rate)."""
    if method in ("adv", "rs_rp"):
        return tuple(config(method, epsilon=eps) for eps in (0.001, 0.01, 0.1, 1.0))
    if method in ("rs_da", "rs_syntax"):
        return tuple(config(method, m=m) for m in (1, 3, 5, 10))
    return tuple(Config(method, f"baseline-lr{lr}", f"baseline lr={lr}") for lr in ("1e-5", "2e-5", "3e-5", "5e-5"))


def sweep_accuracy(languages):
    distance = {lang: i / (len(languages) - 1) for i, lang in enumerate(languages)}

    def accuracy(cfg: Config, seed: int, lang1: str, lang2: str) -> float:
        d = (distance[lang1] + distance[lang2]) / 2
        noise = np.random.default_rng([seed, len(cfg.config_id), ord(lang1[0]), ord(lang2[-1])]).normal(0, 0.004)
        return 0.85 - 0.2 * d + GAINS[cfg.method] * (1 + d) + 0.003 * (seed % 3) + noise

    return accuracy


def write_sweep(root: Path) -> list[Path]:
    """The two tasks' results directories of the full-report benchmark."""
    dirs = []
    for task in ("pawsx", "xnli"):
        languages = TASKS[task].languages
        configs = tuple(c for method in GAINS for c in four_configs(method))
        spec = ExperimentSpec(name=f"bench-{task}", task=task, languages=languages, configs=configs, seeds=SEEDS,
                              generalized=True, n_examples=XNLI_EXAMPLES if task == "xnli" else 2000)
        dev = lambda cfg, seed: 0.8 + 0.001 * len(cfg.config_id) + 0.0001 * seed  # noqa: E731
        dirs.append(write_experiment(root / task, spec, sweep_accuracy(languages), dev))
    return dirs


@dataclass(frozen=True)
class Timing:
    """Wall and process-CPU seconds: on shared cores the CPU seconds show the work itself."""

    wall: float
    cpu: float

    def __add__(self, other: "Timing") -> "Timing":
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


def timed(function, *args, **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    value = function(*args, **kwargs)
    return value, Timing(time.perf_counter() - start, time.process_time() - cpu)


def full_report(root: Path) -> list[tuple[str, Timing, str]]:
    dirs, write_t = timed(write_sweep, root)
    results, load_t = timed(load_results, dirs)
    reports, tables_t = timed(build_reports, results, ReportOptions(example_level=False))
    rendered = {fmt: timed(render, reports, fmt)[1] for fmt in ("markdown", "latex", "csv")}
    figures, figures_t = timed(write_figures, reports, root / "figures")
    rows = len(results.metrics)
    cells = sum(len(r.table.cells) for r in reports)
    return [
        ("write fake results (400 trials)", write_t, f"{rows:,} metrics rows (not part of the analysis)"),
        ("load + validate (pyarrow dataset)", load_t, f"{rows:,} rows from 400 metrics.parquet"),
        ("tables: selection, tests, matrices, paper", tables_t, f"{cells} cells, 10,000 resamples each"),
        ("load + tables", load_t + tables_t, "target < 5 s"),
        *((f"render {fmt}", timing, "") for fmt, timing in rendered.items()),
        ("figures (PNG + PDF)", figures_t, f"{len(figures)} files"),
    ]


def example_level(root: Path) -> list[tuple[str, Timing, str]]:
    languages = TASKS["xnli"].languages
    rng = np.random.default_rng(0)
    treatment = rng.binomial(10, 0.70, size=(len(languages), XNLI_EXAMPLES)) / 10
    baseline = rng.binomial(10, 0.69, size=(len(languages), XNLI_EXAMPLES)) / 10
    _, memory_t = timed(example_bootstrap, treatment, baseline, n_resamples=10_000, seed=0)
    configs = (config("baseline"), config("rs_da", m=3))
    spec = ExperimentSpec(name="bench-examples", task="xnli", languages=languages, configs=configs, seeds=SEEDS,
                          predictions=True, n_examples=XNLI_EXAMPLES, num_labels=3)
    write_experiment(root / "examples", spec, sweep_accuracy(languages), lambda cfg, seed: 0.8)
    results = load_results([root / "examples"])
    (report,) = build_reports(results, ReportOptions(example_level=False))
    (correctness, _), read_t = timed(read_correctness, results, report.table, results.experiments)
    _, test_t = timed(example_level_tests, correctness, report.table)
    return [
        ("example bootstrap in memory", memory_t, f"{len(languages)} languages x {XNLI_EXAMPLES:,} examples, 10,000 resamples"),
        ("read predictions (2 methods x 10 seeds)", read_t, f"{len(correctness):,} rows"),
        ("example-level tests from predictions", test_t, "per-example correctness averaged over seeds"),
    ]


def table(rows, peak_mib: float) -> str:
    body = [(name, f"{t.wall:.2f}", f"{t.cpu:.2f}", note) for name, t, note in rows]
    body.append(("peak resident memory", "", "", f"{peak_mib:.0f} MiB"))
    return markdown_table(("step", "wall s", "CPU s", "note"), body, align="lrrl")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as folder:
        rows = full_report(Path(folder)) + example_level(Path(folder))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = table(rows, peak)
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_analysis.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
