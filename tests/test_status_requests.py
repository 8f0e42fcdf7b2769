"""`status` and the report's loading at scale: a listing says which files exist, the reads that remain go in parallel.

On S3 every filesystem call is a request of tens of ms: an experiment of thousands of cells read one call at a
time takes minutes. A counting filesystem (pyarrow's PyFileSystem over a real LocalFileSystem) shows how many
calls of each kind the code makes, and that the count grows no faster than the cells.
"""

from __future__ import annotations

import time

import pandas as pd
import pyarrow.fs as pafs
import pytest

from analysis.load import Location, damaged_predictions, load_correctness, load_experiment
from storage_helpers import CountingHandler, count_calls, experiment_of
from sweeper.status import cell_state, listed_cell_state, status_table
from trainables import results


def test_status_makes_one_listing_and_no_existence_check_per_cell(tmp_path, monkeypatch):
    counted, calls = count_calls(monkeypatch), {}
    for configs in (10, 20):
        experiment = str(experiment_of(tmp_path / f"exp{configs}", configs))
        counted.calls.clear()
        table = status_table(experiment, stale_after=60)
        assert table.state.value_counts().to_dict() == {"done": 2 * configs, "running": 1, "failed": 1, "stopped": 1,
                                                        "damaged": 2, "missing": 1}
        calls[configs] = dict(counted.calls)
    for configs, made in calls.items():
        assert made.get("list") == 1, made  # the whole results/ folder, once
        assert "get_file_info" not in made, made  # no existence check of what the listing answered
        assert made["open"] <= 2 * configs + 2 * 6 + 1, made  # a footer per done cell, the JSON that remains, plan
    assert calls[20]["open"] - calls[10]["open"] == 2 * 10  # twice the cells: exactly the new cells' footers


def test_status_table_says_what_each_cell_folder_alone_says(tmp_path):
    """The one-listing table and the per-folder state agree on every cell, damaged files named the same."""
    experiment = str(experiment_of(tmp_path / "exp", 3))
    now = time.time()
    table = status_table(experiment, stale_after=60, now=now)
    alone = [cell_state(results.cell_dir(experiment, c, s), 60, now) for c, s in zip(table.config_id, table.seed)]
    assert list(zip(table.state, table.detail)) == alone
    details = dict(zip(table.config_id, table.detail))
    assert details["rs_rp-other3"].startswith(f"{experiment}/results/rs_rp-other3/seed-0/metrics.parquet: not a "
                                              "readable Parquet file")
    assert details["rs_rp-other4"].startswith(f"{experiment}/results/rs_rp-other4/seed-0/status.json: not valid JSON")
    assert "50%" in details["rs_rp-other0"] and details["rs_rp-other5"] == ""


def test_status_reads_the_cells_in_parallel(tmp_path, monkeypatch):
    experiment = str(experiment_of(tmp_path / "exp", 10))
    handler = count_calls(monkeypatch, delay=0.02)
    status_table(experiment)
    assert handler.most_at_once > 1


def test_a_cell_that_finished_after_the_listing_is_done(tmp_path):
    cell = str(tmp_path / "cell")
    results.write_status(cell, "running")
    listed = results.CellFiles.listed(cell)
    table = results.metrics_table({"experiment": "exp", "task": "pawsx", "method": "baseline", "config_id": "c",
                                   "seed": 0, "stage": "grid"},
                                  [{"split": "dev", "lang1": "en", "lang2": "en", "accuracy": 0.5, "n": 4}])
    results.write_results(cell, table, table, {})
    results.write_status(cell, "done")  # after the results, as the trainable writes them
    assert listed_cell_state(listed, 60, time.time()) == ("done", "")  # not "status 'done' without results"


def test_report_loading_reads_each_footer_once_and_checks_no_file_it_listed(tmp_path):
    calls = {}
    for configs in (10, 20):
        root = experiment_of(tmp_path / f"exp{configs}", configs)
        handler = CountingHandler(pafs.LocalFileSystem())
        location = Location(pafs.PyFileSystem(handler), str(root))
        frame, info = load_experiment(location)
        assert frame[["config_id", "seed"]].drop_duplicates().shape[0] == 2 * configs
        assert any("rs_rp-other3" in problem for problem in info.problems)
        groups = frame[["config_id", "seed"]].drop_duplicates()
        correctness = load_correctness(info, groups, stage="grid")
        assert len(correctness) == 2 * configs * 2 * 8 and damaged_predictions(info, groups) == []
        calls[configs] = dict(handler.calls)
    for configs, made in calls.items():
        assert made["list"] == 3, made  # results/ for the metrics, then for the predictions (twice)
        assert made.get("get_file_info", 0) <= 3, made  # experiment.json and plan.json: O(1)
        # per done cell: metrics footer and data, predictions footer and data, and footer again for the damaged check
        assert made["open"] <= 5 * 2 * configs + 6, made
    assert calls[20]["open"] - calls[10]["open"] == 5 * 2 * 10, calls


def test_parallel_map_keeps_the_order_and_raises_what_a_call_raised():
    assert results.parallel_map(lambda x: x * x, range(100)) == [x * x for x in range(100)]

    def fail(x):
        raise results.DamagedFile(f"f{x}", "bad")

    with pytest.raises(results.DamagedFile, match="f0: bad"):
        results.parallel_map(fail, [0])
    assert pd.Series(results.parallel_map(str, [3, 1, 2])).tolist() == ["3", "1", "2"]
