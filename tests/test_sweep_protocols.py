"""The selection protocols on a real (in-process) Ray: two-stage with ASHA, Optuna over seed groups."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import ray

from sweep_helpers import all_metrics, statuses, write_config
from sweeper.config import load_config
from sweeper.run import RunOptions, run_sweep
from sweeper.selection import best_configurations, select_configurations
from sweeper.status import status_table

pytestmark = pytest.mark.slow

FAST = {"epochs": 3, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1, "eval_every": 3}


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def sweep(config, out, resume=False):
    return run_sweep(load_config(config), RunOptions(str(out), resume=resume, out=open(os.devnull, "w")))


def test_two_stage_selects_on_search_seeds_then_runs_the_choice_on_all_seeds(tiny_world, tmp_path, local_ray):
    config = write_config(
        tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
        methods={"baseline": {}, "rs_rp": {"epsilon": [0.01, 0.5]}}, seeds=3, training=FAST,
        selection={"protocol": "two_stage", "search_seeds": 1}, asha={"grace_period": 1, "reduction_factor": 2},
    )
    out = tmp_path / "runs" / "exp"
    assert sweep(config, out) == 0
    metrics = all_metrics(out)
    search = metrics[metrics.stage == "search"]
    final = metrics[metrics.stage == "final"]
    assert set(search.seed) == {0} and set(search.method) == {"rs_rp"}  # the epsilon not chosen: one seed
    chosen = select_configurations(str(out), "final")  # only the chosen configurations reach the final stage
    assert set(final.method) == {"baseline", "rs_rp"} and set(final.config_id) == set(chosen.values())
    for config_id, group in final.groupby("config_id"):
        assert sorted(set(group.seed)) == [0, 1, 2]  # all seeds; seed 0 reused from the search stage
    assert search.config_id.nunique() == 1 and search.config_id.iloc[0] not in set(chosen.values())
    plan = json.loads((out / "plan.json").read_text())
    assert {c["stage"] for c in plan["cells"]} == {"search", "final"}
    attempts = [s["attempt"] for s in statuses(out).values()]
    assert attempts and max(attempts) == 1  # the reused search seed was relabelled, not retrained
    # resuming the finished experiment selects the same configurations again (their search seed now
    # reads `final`), so it plans and trains nothing new
    assert sweep(config, out, resume=True) == 0
    assert json.loads((out / "plan.json").read_text()) == plan
    assert max(s["attempt"] for s in statuses(out).values()) == 1
    pd.testing.assert_frame_equal(all_metrics(out), metrics)


@pytest.mark.parametrize("seeds_per_trial", [1, 2], ids=["one seed per trial", "seed ensembles"])
def test_optuna_samples_configurations_each_over_all_seeds(tiny_world, tmp_path, local_ray, seeds_per_trial):
    config = write_config(
        tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
        methods={"rs_rp": {}}, seeds=2, training=FAST,
        search={"algorithm": "optuna", "num_samples": 2, "seed": 3,
                "space": {"epsilon": {"loguniform": [0.001, 1.0]}, "learning_rate": {"choice": [1e-3, 3e-3]}}},
        execution={"seeds_per_trial": seeds_per_trial},
    )
    out = tmp_path / "runs" / "exp"
    assert sweep(config, out) == 0
    metrics = all_metrics(out)
    dev = metrics[metrics.split == "dev"]
    assert dev.config_id.nunique() == 2  # two sampled configurations ...
    for _, group in dev.groupby("config_id"):
        assert sorted(group.seed) == [0, 1]  # ... each run as a paired seed group
        assert group.epsilon.nunique() == 1 and 0.001 <= group.epsilon.iloc[0] <= 1.0
    infos = [json.loads(p.read_text()) for p in out.glob("results/*/seed-*/trial.json")]
    assert {i["spec"]["training"]["learning_rate"] for i in infos} <= {1e-3, 3e-3}
    assert all((i.get("ensemble") == {"seeds": [0, 1]}) == (seeds_per_trial == 2) for i in infos)
    trials = [p for p in (out / "tune-grid-rs_rp").iterdir() if p.is_dir()]
    assert len(trials) == 4 // seeds_per_trial  # Optuna's two configurations, each one trial per seed block
    plan = json.loads((out / "plan.json").read_text())
    assert plan["optuna"] == [{"method": "rs_rp", "stage": "grid", "configurations": 2, "seeds": [0, 1]}]
    assert isinstance(pd.DataFrame(plan["cells"]), pd.DataFrame)


def test_asha_stopped_cells_end_by_design_and_do_not_compete(tiny_world, tmp_path, local_ray):
    # one trial at a time (2 CPUs each), so ASHA has seen epsilon 0.01 (dev 0.75) at every rung before
    # epsilon 50 (noise that drowns the input: dev 0.25) reaches its first one, and stops it there
    config = write_config(
        tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
        methods={"baseline": {}, "rs_rp": {"epsilon": [0.01, 50.0]}}, seeds=2, training=FAST, resources={"cpu": 2},
        selection={"protocol": "two_stage", "search_seeds": 1}, asha={"grace_period": 1, "reduction_factor": 2},
    )
    out = tmp_path / "runs" / "exp"
    assert sweep(config, out) == 0  # a stopped cell is not a missing one
    table = status_table(str(out), stale_after=1e9)
    stopped = table[table.state == "stopped"]
    assert list(stopped.config_label) == ["rs_rp eps=50"] and list(stopped.stage) == ["search"]
    assert "early by ASHA after evaluation 1 (best dev 0.250)" in stopped.detail.iloc[0]
    assert set(table.state) == {"done", "stopped"}
    metrics = all_metrics(out)
    assert "rs_rp eps=50" not in set(metrics.config_label)
    final = metrics[metrics.stage == "final"]
    assert set(final.config_label) == {"baseline", "rs_rp eps=0.01"} and set(final.seed) == {0, 1}
    attempts = {key: s["attempt"] for key, s in statuses(out).items()}
    assert sweep(config, out, resume=True) == 0  # resuming runs nothing again, the stopped cell included
    assert {key: s["attempt"] for key, s in statuses(out).items()} == attempts


def test_asha_stops_a_seed_block_as_a_whole_and_every_member_reads_stopped(tiny_world, tmp_path, local_ray):
    """Search seeds 0 and 1 as one seed ensemble per configuration: ASHA compares blocks by their members' mean dev
    accuracy, and the block it stops leaves both member cells `stopped` (never missing, never rerun)."""
    config = write_config(
        tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
        methods={"baseline": {}, "rs_rp": {"epsilon": [0.01, 50.0]}}, seeds=3, training=FAST, resources={"cpu": 2},
        selection={"protocol": "two_stage", "search_seeds": 2}, asha={"grace_period": 1, "reduction_factor": 2},
        execution={"seeds_per_trial": 2},
    )
    out = tmp_path / "runs" / "exp"
    assert sweep(config, out) == 0
    table = status_table(str(out), stale_after=1e9)
    stopped = table[table.state == "stopped"]
    assert sorted(stopped.seed) == [0, 1] and set(stopped.config_label) == {"rs_rp eps=50"}
    assert set(table.state) == {"done", "stopped"}
    final = all_metrics(out)
    final = final[final.stage == "final"]
    assert set(final.config_label) == {"baseline", "rs_rp eps=0.01"} and set(final.seed) == {0, 1, 2}
    attempts = {key: s["attempt"] for key, s in statuses(out).items()}
    assert sweep(config, out, resume=True) == 0
    assert {key: s["attempt"] for key, s in statuses(out).items()} == attempts


def test_a_configuration_asha_stopped_on_a_seed_does_not_win_on_its_surviving_seeds():
    dev = pd.DataFrame({"method": ["rs_rp"] * 3 + ["adv"] * 2, "config_id": ["a", "b", "b", "c", "d"],
                        "accuracy": [0.90, 0.80, 0.82, 0.70, 0.60]})
    assert best_configurations(dev, stopped=set()) == {"rs_rp": "a", "adv": "c"}
    assert best_configurations(dev, stopped={"a"}) == {"rs_rp": "b", "adv": "c"}  # a lost a seed to ASHA
    assert best_configurations(dev, stopped={"c", "d"}) == {"adv": "c", "rs_rp": "a"}  # all stopped: best mean


def test_per_run_runs_the_full_grid_reports_each_seeds_choice_and_resumes(tiny_world, tmp_path, local_ray):
    from analysis.report import render_report
    from analysis.selection import per_run_choices

    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          methods={"baseline": {}, "rs_rp": {"epsilon": [0.01, 0.5]}}, seeds=2, training=FAST,
                          selection={"protocol": "per_run"})
    out = tmp_path / "runs" / "exp"
    assert sweep(config, out) == 0
    metrics = all_metrics(out)
    assert set(metrics.stage) == {"grid"} and metrics.config_id.nunique() == 3  # every configuration, every seed
    assert json.loads((out / "experiment.json").read_text())["protocol"] == "per_run"
    table = status_table(str(out))
    assert len(table) and set(table["state"]) == {"done"}
    choices = per_run_choices(metrics.assign(experiment="sweep-test"))
    dev = metrics[(metrics.split == "dev") & (metrics.method == "rs_rp")]
    for seed, chosen in zip(choices.seed, choices.config_id):  # each seed's choice is its own best dev run
        runs = dev[dev.seed == seed].sort_values(["accuracy", "config_id"], ascending=[False, True])
        assert chosen == runs.config_id.iloc[0]
    assert sorted(choices.seed) == [0, 1]
    text = render_report([str(out)], n_resamples=200, example_level=False)
    assert "| RS-RP (per-run) |" in text and "each run's own English dev accuracy" in text
    assert "### Selection sensitivity" in text
    assert sweep(config, out, resume=True) == 0
    assert max(s["attempt"] for s in statuses(out).values()) == 1  # nothing trained again
