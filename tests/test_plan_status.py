"""The plan (paired cells, stable ids, estimates), cell status from files, and the progress line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sweep_helpers import write_config
from sweeper import plan as planning
from sweeper.config import load_config
from sweeper.experiment import add_to_plan, read_plan
from sweeper.status import cell_state, render_status, status_table
from sweeper.tuning import progress_line
from sweeper.throughput import ASSUMED
from trainables import results


@pytest.fixture
def resolved(tiny_world, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          methods={"baseline": {}, "adv": {"epsilon": [0.01, 0.1]}, "rs_syntax": {"m": [2, 4]}},
                          seeds=[3, 5])
    return planning.resolve(load_config(config), str(tmp_path / "runs" / "exp"))


def test_cells_pair_every_configuration_with_every_seed(resolved):
    cells = planning.grid_cells(resolved, "grid", resolved.sweep.seed_list)
    assert len(cells) == 5 * 2
    by_config = {}
    for cell in cells:
        by_config.setdefault(cell.config_id, set()).add(cell.seed)
    assert all(seeds == {3, 5} for seeds in by_config.values())
    labels = sorted({c.config_label for c in cells})
    assert labels == ["adv eps=0.01", "adv eps=0.1", "baseline", "rs_syntax m=2", "rs_syntax m=4"]


def test_config_id_ignores_seed_and_location_but_not_hyperparameters(resolved, tmp_path):
    a = planning.make_cell(resolved, "adv", {"epsilon": 0.1, "pgd_steps": 1}, resolved.sweep.training.model_dump(), 0,
                           "grid")
    b = planning.make_cell(resolved, "adv", {"epsilon": 0.1, "pgd_steps": 1}, resolved.sweep.training.model_dump(), 7,
                           "search")
    moved = planning.Resolved(**{**resolved.__dict__, "experiment_dir": str(tmp_path / "elsewhere")})
    c = planning.make_cell(moved, "adv", {"epsilon": 0.1, "pgd_steps": 1}, resolved.sweep.training.model_dump(), 0,
                           "grid")
    d = planning.make_cell(resolved, "adv", {"epsilon": 0.1, "pgd_steps": 2}, resolved.sweep.training.model_dump(), 0,
                           "grid")
    assert a.config_id == b.config_id == c.config_id != d.config_id
    assert a.config_id.startswith("adv-")


def test_estimate_scales_with_method_cost(resolved):
    sizes = planning.Sizes(train=1000, dev=100, test=100)
    training = {"epochs": 2, "per_device_batch_size": 8, "gradient_accumulation": 4, "eval_every": 10}
    base = planning.trial_hours("baseline", {}, training, sizes, 3, resolved.sweep, ASSUMED)
    adv = planning.trial_hours("adv", {"pgd_steps": 2}, training, sizes, 3, resolved.sweep, ASSUMED)
    rs_da = planning.trial_hours("rs_da", {"m": 10, "keep_original": False}, training, sizes, 3, resolved.sweep, ASSUMED)
    train_seconds = 2000 / 250  # examples / the assumed 250 ex/s
    eval_seconds = ((2000 / 32 // 10 + 1) * 100 + 300) / 2000  # ceil(62.5/10)+1 = 8 dev passes + 3 test sets
    assert base == pytest.approx((train_seconds + eval_seconds) / 3600, rel=0.02)
    assert adv > 2.9 * base - eval_seconds / 3600 and rs_da > 9 * base


def test_dry_run_description_lists_every_configuration(resolved):
    text = planning.describe(resolved)
    assert "total: 10 trials" in text and "rs_syntax m=4" in text and "CPU-trial-hours" in text
    assert "48 train / 12 dev / 16 test pairs" in text


def test_plan_file_is_idempotent(resolved, tmp_path):
    cells = planning.grid_cells(resolved, "grid", [0, 1])
    add_to_plan(str(tmp_path), "exp", cells)
    add_to_plan(str(tmp_path), "exp", cells[:3])
    assert len(read_plan(str(tmp_path))["cells"]) == len(cells)


def test_cell_state_from_its_own_files(tmp_path):
    now = time.time()
    cell = str(tmp_path / "cell")
    assert cell_state(cell, 60, now) == ("missing", "")
    results.write_status(cell, "running", attempt=1, host="h", pid=42, progress=0.5)
    state, detail = cell_state(cell, 60, time.time())
    assert state == "running" and "50%" in detail and "pid 42" in detail
    assert cell_state(cell, 60, time.time() + 120)[0] == "failed"  # no heartbeat: interrupted
    assert "interrupted" in cell_state(cell, 60, time.time() + 120)[1]
    results.write_status(cell, "failed", attempt=2, error="RuntimeError: boom")
    assert cell_state(cell, 60, time.time()) == ("failed", "attempt 2: RuntimeError: boom")
    results.write_status(cell, "running", attempt=1, progress=0.25)  # a stale heartbeat, but the driver says:
    results.mark_stopped(cell, by="ASHA", evaluation=3, best_dev_accuracy=0.5)
    assert cell_state(cell, 60, time.time() + 600) == ("stopped", "early by ASHA after evaluation 3 (best dev 0.500)")
    (tmp_path / "cell" / "metrics.parquet").write_bytes(b"")  # what a full disk can leave
    state, detail = cell_state(cell, 60, time.time())
    assert state == "damaged" and "metrics.parquet: not a readable Parquet file" in detail
    write_done_marker(tmp_path / "cell")
    assert cell_state(cell, 60, time.time())[0] == "done"
    (tmp_path / "cell" / "status.json").write_text('{"state": "runn')  # truncated, next to good results
    assert cell_state(cell, 60, time.time())[0] == "done"
    (tmp_path / "cell" / "metrics.parquet").unlink()
    (tmp_path / "cell" / "stopped.json").unlink()
    state, detail = cell_state(cell, 60, time.time())
    assert state == "damaged" and "status.json: not valid JSON" in detail


def write_done_marker(cell: Path) -> None:
    """A readable metrics.parquet of one dev row: what marks a cell done."""
    table = results.metrics_table({"experiment": "exp", "task": "pawsx", "method": "baseline", "config_id": "c",
                                   "seed": 0, "stage": "grid"},
                                  [{"split": "dev", "lang1": "en", "lang2": "en", "accuracy": 0.5, "n": 4}])
    results.write_bytes(str(cell / "metrics.parquet"), results._parquet_bytes(table))


def test_status_table_groups_seeds_and_counts(resolved, tmp_path):
    out = tmp_path / "exp"
    cells = planning.grid_cells(resolved, "grid", [0, 1])[:4]
    add_to_plan(str(out), "exp", cells)
    first = results.cell_dir(str(out), cells[0].config_id, cells[0].seed)
    results.write_status(first, "done")
    write_done_marker(tmp_path / "exp" / "results" / cells[0].config_id / f"seed-{cells[0].seed}")
    results.write_status(results.cell_dir(str(out), cells[1].config_id, cells[1].seed), "failed", attempt=3,
                         error="ValueError: x")
    table = status_table(str(out))
    assert table.state.tolist().count("done") == 1 and table.state.tolist().count("failed") == 1
    assert table.state.tolist().count("missing") == 2
    text = render_status(table, str(out))
    assert "total: 1 done, 0 stopped, 0 running, 1 failed, 0 damaged, 2 missing of 4 cells" in text


def test_progress_line_counts_and_eta():
    line = progress_line("demo", 10, ["TERMINATED", "TERMINATED", "RUNNING", "ERROR", "PENDING"],
                         {"a": 1.0, "b": 1.0, "c": 0.5, "d": 0.5}, elapsed=90)
    assert line == "[demo] done 2/10 running 1 failed 1 pending 6 | elapsed 1:30 | ETA 3:30"  # 3 of 10 units in 90 s
    assert progress_line("x", 3, [], {}, 5).endswith("ETA --:--")
    assert json.dumps(line)  # a single printable line


def test_grid_times_learning_rate_choices(tiny_world, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          methods={"baseline": {}, "rs_rp": {"epsilon": [0.1]}},
                          search={"algorithm": "grid", "space": {"learning_rate": {"choice": [1e-4, 3e-4, 1e-3]}}})
    sweep = load_config(config)
    configs = planning.configurations(sweep)
    assert [(m, t["learning_rate"]) for m, _, t in configs] == [
        ("baseline", 1e-4), ("baseline", 3e-4), ("baseline", 1e-3), ("rs_rp", 1e-4), ("rs_rp", 3e-4), ("rs_rp", 1e-3)]
    cells = planning.grid_cells(planning.resolve(sweep, str(tmp_path / "exp")), "grid", sweep.seed_list)
    assert len({c.config_id for c in cells}) == 6 and len(cells) == 18
    assert "baseline lr=0.0003" in planning.describe(planning.resolve(sweep, str(tmp_path / "exp")))


def test_resume_accepts_a_stored_config_from_before_a_new_setting_but_not_a_changed_one(resolved, tmp_path):
    from sweeper.schema import dump_config
    from sweeper.experiment import ExperimentError, claim_experiment_dir

    sweep, experiment = resolved.sweep, tmp_path / "exp"
    experiment.mkdir()
    older = "".join(line for line in dump_config(sweep).splitlines(keepends=True)
                    if not line.startswith("checkpoint_every:"))  # written before the setting existed
    assert older != dump_config(sweep)
    (experiment / "sweep.yaml").write_text(older)
    claim_experiment_dir(sweep, str(experiment), resume=True)
    # how to run may change on resume (more retries, other resources); what is run may not
    (experiment / "sweep.yaml").write_text(older.replace("max_failures: 2", "max_failures: 3")
                                           .replace("cpu: 1.0", "cpu: 2.0"))
    claim_experiment_dir(sweep, str(experiment), resume=True)
    assert "  per_seed: false" in older
    (experiment / "sweep.yaml").write_text(older.replace("  per_seed: false", "  per_seed: true"))
    with pytest.raises(ExperimentError, match="differs from the configuration given"):
        claim_experiment_dir(sweep, str(experiment), resume=True)
    (experiment / "sweep.yaml").write_text("seeds: [unclosed")
    with pytest.raises(ExperimentError, match="sweep.yaml: damaged"):
        claim_experiment_dir(sweep, str(experiment), resume=True)


def test_a_cell_is_its_trial_spec_from_the_plan_to_the_trainable(resolved):
    from types import SimpleNamespace

    from sweeper.tuning import _trial_name, trial_spec
    from trainables.spec import TrialSpec

    cell = planning.grid_cells(resolved, "grid", resolved.sweep.seed_list)[-1]
    assert isinstance(cell.spec, TrialSpec)
    assert (cell.method, cell.seed, cell.stage, cell.config_id) == \
        (cell.spec.method, cell.spec.seed, cell.spec.stage, cell.spec.config_id)
    config = {"trial": cell.spec.to_dict()}  # what Tune's grid hands each trial
    assert trial_spec(config) == cell.spec
    assert _trial_name(SimpleNamespace(config=config, trial_id="x_00001")) == f"{cell.method}-s{cell.seed}-x_00001"
    repeated = {**config, "__seeds__": [11, 12], "__trial_index__": 1}  # Optuna + Repeater
    assert trial_spec(repeated).seed == 12 and trial_spec(repeated).config_id == cell.config_id
    assert _trial_name(SimpleNamespace(config=repeated, trial_id="x_00002")) == f"{cell.method}-s1-x_00002"


def test_seed_blocks_group_a_configurations_seeds_and_leave_methods_that_do_not_vectorize_alone(tiny_world, tmp_path,
                                                                                               monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from sweeper.stages import _seed_major
    from sweeper.tuning import _trial_name, cells_of, trial_spec

    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          methods={"baseline": {}, "adv": {"epsilon": [0.1]}, "r3f": {}}, seeds=[4, 1, 9, 2, 7],
                          execution={"seeds_per_trial": 2})
    resolved = planning.resolve(load_config(config), str(tmp_path / "runs" / "exp"))
    # every shipped method vectorizes; a plugin that does not is played here by r3f
    monkeypatch.setattr(planning, "DESCRIPTORS", {**planning.DESCRIPTORS,
                                                  "r3f": replace(planning.DESCRIPTORS["r3f"], vectorizes=False)})
    cells = _seed_major(planning.grid_cells(resolved, "grid", resolved.sweep.seed_list))
    trials = planning.trials(cells, 2)
    blocks = [(t.method, t.seeds or (t.seed,)) for t in trials]
    # seed blocks in the order of their first seed; r3f (vectorizes=False) one seed per trial
    assert blocks == [("baseline", (1, 2)), ("adv", (1, 2)), ("r3f", (1,)), ("r3f", (2,)), ("baseline", (4, 7)),
                      ("adv", (4, 7)), ("r3f", (4,)), ("r3f", (7,)), ("baseline", (9,)), ("adv", (9,)), ("r3f", (9,))]
    assert sorted((m.config_id, m.seed) for t in trials for m in t.members()) == sorted((c.config_id, c.seed)
                                                                                     for c in cells)
    assert planning.trials(cells, 1) == [c.spec for c in cells]
    block = trials[0]
    config = {"trial": block.to_dict()}
    assert trial_spec(config) == block and block.config_id == cells[0].config_id
    assert [Path(c).name for c in cells_of(config)] == ["seed-1", "seed-2"]
    assert _trial_name(SimpleNamespace(config=config, trial_id="x_1")) == "baseline-s1x2-x_1"
    repeated = {"trial": cells[0].spec.to_dict(), "__seeds__": [[4, 1], [9, 2], [7]], "__trial_index__": 1}
    assert trial_spec(repeated).seeds == (9, 2) and trial_spec(repeated).seed == 9  # Optuna + Repeater, blocks
    assert trial_spec({**repeated, "__trial_index__": 2}).seeds == ()
    plan = planning.describe(resolved)
    assert ("execution: up to 2 seeds per trial as one seed ensemble (baseline, adv; one seed per trial: r3f): "
            "11 Tune trials") in plan
    import re

    named = re.findall(r"benchmarks/[\w.]+\.py", plan)
    assert named and all((Path(__file__).parents[1] / name).is_file() for name in named), named


def test_seeds_per_trial_left_at_its_default_keeps_an_older_experiments_identity(tiny_world, tmp_path):
    """An experiment started before `execution` existed must still resume: its identity has no such key."""
    from sweeper.schema import experiment_identity

    plain = load_config(write_config(tmp_path / "a.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache"))
    assert "execution" not in experiment_identity(plain)
    blocks = load_config(write_config(tmp_path / "b.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                                      execution={"seeds_per_trial": 3}))
    assert "seeds_per_trial: 3" in experiment_identity(blocks)  # a resume with other blocks is refused


def test_a_trial_config_saved_before_the_one_form_spec_still_reads(resolved):
    """Tune state written by the previous layout (common fields with a placeholder baseline at seed 0, the cell's
    own fields under `cell`) restores after an upgrade: the trainable reads the same spec from either form."""
    from sweeper.tuning import trial_spec

    for cell in planning.grid_cells(resolved, "grid", [3]):
        common = planning.trial_config(resolved, "baseline", {}, resolved.sweep.training.model_dump(), 0, "grid")
        cell_fields = {k: cell.spec.to_dict()[k] for k in ("method", "method_options", "training", "seed", "stage")}
        old = {**common, "cell": cell_fields}
        assert trial_spec(old) == trial_spec({"trial": cell.spec.to_dict()}) == cell.spec
        assert trial_spec(old).config_id == cell.config_id
    optuna_old = {**cell.spec.to_dict(), "__seeds__": [5, 6], "__trial_index__": 1}
    assert trial_spec(optuna_old).seed == 6


def test_per_run_protocol_runs_every_configuration_on_every_seed_and_says_so(tiny_world, tmp_path):
    """per_run chooses inside each seed's run at report time: the sweep itself is the paper's full grid."""
    from sweeper.experiment import write_experiment_json
    from sweeper.stages import stage_order

    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          methods={"baseline": {}, "adv": {"epsilon": [0.01, 0.1]}}, seeds=[3, 5],
                          selection={"protocol": "per_run"})
    sweep = load_config(config)
    resolved = planning.resolve(sweep, str(tmp_path / "runs" / "exp"))
    assert stage_order(sweep) == ["grid"] and planning.first_stage(sweep) == "grid"
    cells = planning.grid_cells(resolved, "grid", sweep.seed_list)
    assert sorted((c.config_label, c.seed) for c in cells) == [
        ("adv eps=0.01", 3), ("adv eps=0.01", 5), ("adv eps=0.1", 3), ("adv eps=0.1", 5), ("baseline", 3),
        ("baseline", 5)]
    write_experiment_json(resolved)
    assert json.loads((tmp_path / "runs" / "exp" / "experiment.json").read_text())["protocol"] == "per_run"
    with pytest.raises(ValueError, match="asha stops some seeds early"):
        load_config(write_config(tmp_path / "asha.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                                 selection={"protocol": "per_run"}, asha={"grace_period": 1}))
