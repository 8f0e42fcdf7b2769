"""Reading experiment directories: the tidy frame and clear errors naming the file at fault."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import AnalysisInputError, load_correctness, load_results, planned_frame
from fixtures_analysis import BASELINE, RS_RP_BIG, write_hand_experiment, write_world_experiment


def rewrite_metrics(path, **changes):
    """Rewrite one metrics.parquet with some columns replaced (keeping the schema)."""
    table = pq.read_table(path)
    for column, values in changes.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
    pq.write_table(table, path)


def metrics_path(root, config_id, seed):
    return root / "results" / config_id / f"seed-{seed}" / "metrics.parquet"


def test_tidy_frame_has_every_row_with_fractions_and_sources(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    results = load_results([root])
    metrics = results.metrics
    # 3 configs x 3 seeds x (1 dev + 2 test rows)
    assert len(metrics) == 27
    assert set(metrics["split"]) == {"dev", "test"}
    row = metrics[(metrics["config_id"] == BASELINE.config_id) & (metrics["seed"] == 1) & (metrics["lang1"] == "de") & (metrics["split"] == "test")]
    assert row["accuracy"].item() == pytest.approx(0.72)
    assert row["source"].item().endswith(f"results/{BASELINE.config_id}/seed-1/metrics.parquet")
    assert metrics["m"].isna().all() and metrics["epsilon"].dtype == np.float64
    info = results.experiment("hand")
    assert info.languages == ("en", "de") and info.baseline == "baseline"
    assert info.planned[(RS_RP_BIG.config_id, "grid")] == 3
    assert set(planned_frame(results.experiments)["N"]) == {3}


def test_storage_folder_expands_to_its_experiments(tmp_path):
    write_hand_experiment(tmp_path / "store" / "a", name="a")
    write_hand_experiment(tmp_path / "store" / "b", name="b", task="xnli")
    results = load_results([tmp_path / "store"])
    assert [info.name for info in results.experiments] == ["a", "b"]
    assert set(results.metrics["task"]) == {"pawsx", "xnli"}


def test_file_in_the_wrong_seed_folder_is_refused(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    copy = root / "results" / BASELINE.config_id / "seed-9" / "metrics.parquet"
    copy.parent.mkdir()
    shutil.copy(metrics_path(root, BASELINE.config_id, 1), copy)
    with pytest.raises(AnalysisInputError, match="seed-9/metrics.parquet: row 0: .*do not match the folder"):
        load_results([root])


def test_duplicate_rows_name_the_file(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    path = metrics_path(root, BASELINE.config_id, 1)
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(2, 1)]), path)
    with pytest.raises(AnalysisInputError, match=rf"duplicate metrics rows for .*seed=1, split=test, lang1=de.* in: {path}"):
        load_results([root])


def test_nan_accuracy_names_file_and_row(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    path = metrics_path(root, RS_RP_BIG.config_id, 2)
    rewrite_metrics(path, accuracy=[0.86, float("nan"), 0.76])
    with pytest.raises(AnalysisInputError, match=rf"{path}: row 1: accuracy is null/NaN"):
        load_results([root])


def test_a_config_id_used_by_two_methods_is_refused(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    rewrite_metrics(metrics_path(root, BASELINE.config_id, 0), method=["mbert_plus"] * 3)
    with pytest.raises(AnalysisInputError, match=rf"config_id {BASELINE.config_id!r} is used by several methods"):
        load_results([root])


def test_a_method_never_heard_of_is_reported_under_its_name_with_a_note(tmp_path):
    """A method added in a later version (or a plugin not installed here) is analysed, not refused."""
    root = write_hand_experiment(tmp_path / "hand")
    for seed in (0, 1, 2):
        rewrite_metrics(metrics_path(root, RS_RP_BIG.config_id, seed), method=["mbert_plus"] * 3)
    results = load_results([root])
    assert set(results.metrics["method"]) == {"baseline", "mbert_plus", "rs_rp"}
    assert "mbert_plus" not in results.method_display  # shown as itself (analysis.names.display_name)
    (note,) = [p for p in results.experiments[0].problems if "mbert_plus" in p]
    assert note.endswith("experiment.json: shown under its own name")


def test_display_names_come_from_the_experiment_json_of_the_run(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    for seed in (0, 1, 2):
        rewrite_metrics(metrics_path(root, RS_RP_BIG.config_id, seed), method=["mbert_plus"] * 3)
    document = json.loads((root / "experiment.json").read_text())
    document["methods"] = {"mbert_plus": {"display": "mBERT+", "grid_axis": "epsilon"}}
    (root / "experiment.json").write_text(json.dumps(document))
    results = load_results([root])
    assert results.method_display["mbert_plus"] == "mBERT+" and results.method_display["rs_rp"] == "RS-RP"
    assert not [p for p in results.experiments[0].problems if "mbert_plus" in p]


def test_percentages_are_refused(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    rewrite_metrics(metrics_path(root, BASELINE.config_id, 0), accuracy=[85.0, 80.0, 70.0])
    with pytest.raises(AnalysisInputError, match="outside \\[0, 1\\].*fraction"):
        load_results([root])


def test_missing_column_names_the_file(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    path = metrics_path(root, BASELINE.config_id, 0)
    pq.write_table(pq.read_table(path).drop_columns(["best_step"]), path)
    with pytest.raises(AnalysisInputError, match=rf"{path}: missing column\(s\) best_step"):
        load_results([root])


def test_language_outside_experiment_json_is_refused(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    rewrite_metrics(metrics_path(root, BASELINE.config_id, 0), lang1=["en", "en", "it"], lang2=["en", "en", "it"])
    with pytest.raises(AnalysisInputError, match="lang1 'it' is not one of the languages"):
        load_results([root])


def test_metadata_errors_name_the_file_and_field(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    (root / "plan.json").write_text("{\n  \"cells\": [\n", encoding="utf-8")
    # a damaged plan.json leaves the planned seed counts unknown (shown n/?) and says why; it refuses nothing
    info = load_results([root]).experiments[0]
    assert info.planned == {} and "plan.json: line 3: invalid JSON" in info.problems[0]
    document = json.loads((root / "experiment.json").read_text())
    del document["languages"]
    (root / "experiment.json").write_text(json.dumps(document))
    with pytest.raises(AnalysisInputError, match="experiment.json: missing field 'languages'"):
        load_results([root])
    with pytest.raises(AnalysisInputError, match="not an experiment directory"):
        load_results([tmp_path / "nowhere"])


def test_experiment_without_finished_trials(tmp_path):
    root = write_hand_experiment(tmp_path / "hand")
    shutil.rmtree(root / "results")
    with pytest.raises(AnalysisInputError, match="no finished trials"):
        load_results([root])


def test_same_task_with_different_languages_is_refused(tmp_path):
    a = write_hand_experiment(tmp_path / "a", name="a")
    b = write_hand_experiment(tmp_path / "b", name="b", languages=("de", "en"))
    with pytest.raises(AnalysisInputError, match="languages .* differ"):
        load_results([a, b])


def test_correctness_is_read_for_the_standard_test_setting(tmp_path):
    root = write_world_experiment(tmp_path / "world", seeds=(0, 1))
    results = load_results([root])
    info = results.experiment("world")
    groups = results.metrics[(results.metrics["method"] == "baseline")][["config_id", "seed"]].drop_duplicates()
    correctness = load_correctness(info, groups, stage="grid")
    assert len(correctness) == 2 * 4 * 200  # seeds x languages x examples, no generalized pairs
    metrics = results.metrics
    expected = metrics[(metrics["method"] == "baseline") & (metrics["seed"] == 1) & (metrics["lang1"] == "xc") & (metrics["lang2"] == "xc") & (metrics["split"] == "test")]
    observed = correctness[(correctness["seed"] == 1) & (correctness["language"] == "xc")]["correct"].mean()
    assert observed == pytest.approx(expected["accuracy"].item())


def test_experiments_are_read_through_filesystem_uris(tmp_path):
    root = write_hand_experiment(tmp_path / "store" / "hand")
    by_path = load_results([root]).metrics
    by_uri = load_results([f"file://{tmp_path / 'store'}"])
    assert by_uri.experiments[0].name == "hand"
    assert by_uri.metrics.drop(columns="source").equals(by_path.drop(columns="source"))
