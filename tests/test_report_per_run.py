"""Per-run selection (selection.protocol: per_run): each seed's run picks its own epsilon by its English dev
accuracy, and the report shows the paper's reading (one epsilon per method, by the mean) beside it."""

from __future__ import annotations

import json

import pytest

from analysis.load import load_results
from analysis.report import ReportOptions, build_reports, render
from analysis.testing import Config, ExperimentSpec, write_experiment

BASE, A, B = (Config("baseline", "baseline-0", "baseline"), Config("rs_rp", "rs_rp-a", "rs_rp eps=0.1", 0.1),
              Config("rs_rp", "rs_rp-b", "rs_rp eps=0.01", 0.01))
DEV = {"baseline-0": [0.7, 0.7, 0.7], "rs_rp-a": [0.9, 0.5, 0.9], "rs_rp-b": [0.6, 0.8, 0.7]}  # by seed 0, 1, 2
TEST = {"baseline-0": [0.70, 0.70, 0.70], "rs_rp-a": [0.80, 0.70, 0.90], "rs_rp-b": [0.60, 0.95, 0.65]}


def experiment(root, protocol: str, skip=()):
    spec = ExperimentSpec(name="hand", task="pawsx", languages=("en", "de"), configs=(BASE, A, B), seeds=(0, 1, 2))
    write_experiment(root, spec, lambda cfg, seed, l1, l2: TEST[cfg.config_id][seed],
                     lambda cfg, seed: DEV[cfg.config_id][seed], skip=skip)
    document = json.loads((root / "experiment.json").read_text())
    (root / "experiment.json").write_text(json.dumps({**document, "protocol": protocol}))
    return root


def report_of(root, **options):
    (report,) = build_reports(load_results([root]), ReportOptions(n_resamples=500, example_level=False, **options))
    return report


def mean_of(report, method, column="en"):
    cells = report.table.cells
    return cells[(cells["method"] == method) & (cells["column"] == column)]["mean"].item()


def test_per_run_takes_each_seeds_chosen_run_and_shows_the_paper_reading_beside_it(tmp_path):
    report = report_of(experiment(tmp_path / "e", "per_run"))
    assert report.selection_rule == "per_run"
    # seed 0 picks A (0.9 > 0.6), seed 1 B (0.8 > 0.5), seed 2 A: test 0.80, 0.95, 0.90
    assert dict(zip(report.per_run["seed"], report.per_run["config_id"])) == {0: "rs_rp-a", 1: "rs_rp-b", 2: "rs_rp-a"}
    assert mean_of(report, "rs_rp") == pytest.approx(100 * (0.80 + 0.95 + 0.90) / 3)
    assert report.sensitivity is not None  # every configuration on every seed: the mean's choice (A) beside it
    sensitivity = report.sensitivity.cells
    assert sensitivity[(sensitivity["method"] == "rs_rp") & (sensitivity["column"] == "en")]["mean"].item() \
        == pytest.approx(100 * (0.80 + 0.70 + 0.90) / 3)
    text = render([report], "markdown")
    assert "| RS-RP | eps=0.1 (90.0) | eps=0.01 (80.0) | eps=0.1 (90.0) |" in text
    assert "### Selection sensitivity: the same results under selection by the mean over seeds" in text
    assert "| RS-RP (per-run) |" in text and "| RS-RP (eps=0.1) |" in text


def test_the_paper_protocol_keeps_its_table_and_adds_the_per_run_reading(tmp_path):
    report = report_of(experiment(tmp_path / "e", "paper"))
    assert report.selection_rule == "paper" and report.per_run is None
    assert mean_of(report, "rs_rp") == pytest.approx(100 * (0.80 + 0.70 + 0.90) / 3)  # A: mean dev 0.767 > 0.7
    assert "under per-run selection" in render([report], "markdown")
    assert report_of(tmp_path / "e", selection="per_run").selection_rule == "per_run"  # --selection overrides


def test_a_missing_seed_is_no_candidate_there_and_leaves_out_the_sensitivity_section(tmp_path):
    report = report_of(experiment(tmp_path / "e", "per_run", skip=[("rs_rp-a", 1), ("rs_rp-b", 0)]))
    # seed 0 has only A, seed 1 only B, seed 2 both (A: 0.9 > 0.7)
    assert dict(zip(report.per_run["seed"], report.per_run["config_id"])) == {0: "rs_rp-a", 1: "rs_rp-b", 2: "rs_rp-a"}
    assert report.sensitivity is None  # the two rules would not compare the same runs


def test_a_tie_on_a_seed_goes_to_the_smaller_config_id(tmp_path):
    DEV_TIE = {**DEV, "rs_rp-b": [0.9, 0.8, 0.7]}  # seed 0: 0.9 = 0.9
    root = tmp_path / "e"
    spec = ExperimentSpec(name="hand", task="pawsx", languages=("en", "de"), configs=(BASE, A, B), seeds=(0, 1, 2))
    write_experiment(root, spec, lambda cfg, seed, l1, l2: TEST[cfg.config_id][seed],
                     lambda cfg, seed: DEV_TIE[cfg.config_id][seed])
    report = report_of(root, selection="per_run")
    assert report.per_run.set_index("seed").loc[0, "config_id"] == "rs_rp-a"
