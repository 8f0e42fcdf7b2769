"""Tracking in MLflow and W&B (issue 11, item 1): what a trial logs, the refusals before anything is written,
a service that stops answering, no tracking packages without `tracking:`, and a real sweep (killed and
resumed) read back through MLflow's own client and W&B's offline run files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep_helpers import REPO, driver_env, free_port, run_driver, start_driver, stop_tree, wait_for, write_config
from sweeper import tracking
from sweeper.cli import main
from sweeper.config import load_config
from sweeper.yaml_errors import ConfigError, Where
from trainables.spec import TrainingSpec, TrialSpec

pytest.importorskip("mlflow")
pytest.importorskip("wandb")


def sweep_file(tmp_path: Path, world, tracking_settings, name: str = "sweep.yaml") -> Path:
    return write_config(tmp_path / name, world, tmp_path / "runs", tmp_path / "cache", tracking=tracking_settings)


# ------------------------------------------------------------------------------- what is logged
def test_trial_params_name_the_configuration_in_the_papers_terms():
    spec = TrialSpec(experiment="e", experiment_dir="/x", task="pawsx", model="m", method="rs_rp", seed=3,
                     method_options={"epsilon": 0.1}, training=TrainingSpec(learning_rate=1e-4), stage="final")
    params = tracking.trial_params(spec)
    assert params["method"] == "rs_rp" and params["epsilon"] == 0.1 and params["seed"] == 3
    assert params["config_id"] == spec.config_id and params["stage"] == "final"
    assert params["training/learning_rate"] == 1e-4 and params["training/gradient_accumulation"] == 4
    assert set(params) >= {f"training/{f}" for f in vars(TrainingSpec())}


def test_trial_metrics_keep_the_loops_numbers_and_the_test_accuracies_only():
    result = {"evaluation": 2, "dev_accuracy": 0.5, "train_loss": 0.7, "test/en-en": 0.6, "test/de-fr": 0.4,
              "test_avg_accuracy": 0.55, "time_total_s": 3.0, "config": {"trial": {}}, "trial_id": "a_1",
              "done": False, "pid": 12, "finished": 1.0}
    assert tracking.trial_metrics(result) == {"evaluation": 2.0, "dev_accuracy": 0.5, "train_loss": 0.7,
                                              "test/en-en": 0.6, "test/de-fr": 0.4, "test_avg_accuracy": 0.55}
    assert tracking.outcome({"finished": 1.0}, False) == "done"
    assert tracking.outcome({"evaluation": 1}, False) == "stopped" and tracking.outcome(None, True) == "failed"


def test_a_seed_block_is_one_run_with_each_members_figures_under_its_seed(tmp_path):
    """A seed ensemble is one Tune trial: one run named by its seeds, its members' figures under seed/<seed>/, and
    the evaluations a killed driver never handed over rebuilt from every member's saved history."""
    from dataclasses import replace

    from sweeper.tracking.common import run_name, saved_evaluations
    from trainables import results

    spec = TrialSpec(experiment="e", experiment_dir=str(tmp_path), task="pawsx", model="m", method="rs_rp", seed=3,
                     method_options={"epsilon": 0.1}, seeds=(3, 5))
    assert tracking.trial_params(spec)["seeds"] == "3,5" and "seeds" not in tracking.trial_params(replace(spec, seeds=()))
    assert run_name(spec) == "rs_rp eps=0.1 s3-5" and run_name(replace(spec, seeds=())) == "rs_rp eps=0.1 s3"
    assert tracking.trial_metrics({"dev_accuracy": 0.5, "seed/3/dev_accuracy": 0.25, "seed/5/dev_accuracy": 0.75}) == \
        {"dev_accuracy": 0.5, "seed/3/dev_accuracy": 0.25, "seed/5/dev_accuracy": 0.75}
    assert saved_evaluations(spec) == []  # nothing saved yet
    for member, accuracies in zip(spec.members(), ([0.5, 0.75], [1.0, 0.25])):
        cell = results.cell_dir(member.experiment_dir, member.config_id, member.seed)
        Path(cell).mkdir(parents=True)
        history = [{"update": 2 * n, "train_loss": 0.5, "dev_accuracy": a} for n, a in enumerate(accuracies, 1)]
        Path(cell, results.TRIAL_INFO).write_text(json.dumps({"dev_history": history}))
    saved = saved_evaluations(spec)
    assert [(e["evaluation"], e["dev_accuracy"], e["seed/3/dev_accuracy"], e["seed/5/dev_accuracy"]) for e in saved] \
        == [(1.0, 0.75, 0.5, 1.0), (2.0, 0.5, 0.75, 0.25)]


# -------------------------------------------------------------------------- a service that fails
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_service_is_warned_about_once_skipped_for_a_while_then_tried_again(capsys):
    guard, clock, calls = tracking.Guard(), Clock(), []
    guard.guard_setup("exp tune-grid", sys.stdout, clock)

    def call(fail: bool):
        calls.append(fail)
        if fail:
            raise ConnectionError("server gone\nmore detail")
        return "ok"

    assert guard.guarded("log a result", lambda: call(True)) is None
    assert guard.guarded("log a result", lambda: call(False)) is None  # skipped: paused
    clock.now = guard.pause_s - 1
    assert guard.guarded("log a result", lambda: call(False)) is None
    clock.now = guard.pause_s + 1
    assert guard.guarded("log a result", lambda: call(False)) == "ok"
    assert calls == [True, False]
    guard.guard_summary()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("[exp tune-grid] warning: tracking could not log a result (ConnectionError: server gone); "
                      "the sweep goes on, tracking calls are skipped for 300s")
    assert "1 call(s) failed and 2 were skipped" in out[1] and len(out) == 2


# ----------------------------------------------------------------------- refusals in the config
@pytest.mark.parametrize("settings, field, words", [
    ({"mlflow": {"tracking_uri": "http://ann:secret@host:5000"}}, "tracking.mlflow.tracking_uri",
     "user name or password"),
    ({"mlflow": {"tracking_token": "abc"}}, "tracking.mlflow.tracking_token", "MLFLOW_TRACKING_TOKEN"),
    ({"wandb": {"api_key": "abc"}}, "tracking.wandb.api_key", "WANDB_API_KEY"),
    ({"mlflow": None}, "tracking.mlflow", "a bare `mlflow:` is null"),
    ({"wandb": {"mode": "offlne"}}, "tracking.wandb.mode", "allowed: online, offline"),
    ({"neptune": {}}, "tracking.neptune", ""),
])
def test_tracking_settings_are_refused_with_their_line(tmp_path, tiny_world, settings, field, words):
    path = sweep_file(tmp_path, tiny_world, settings)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    lines = path.read_text().splitlines()
    start = lines.index("tracking:")
    line = next(n for n in range(start, len(lines)) if lines[n].strip().startswith(field.split(".")[-1] + ":")) + 1
    assert f"{field}:" in message and words in message and f"{path}:{line}:" in message
    assert "secret" not in message and "abc" not in message  # a credential is never echoed


# ------------------------------------------------------------------ refusals against the machine
def _closed_port_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: refused at once


def _netrc(tmp_path: Path, host: str | None) -> dict[str, str]:
    path = tmp_path / "netrc"
    path.write_text(f"machine {host} login user password k3y\n" if host else "")
    path.chmod(0o600)
    return {"NETRC": str(path)}


@pytest.mark.parametrize("settings, env, words", [
    ({"mlflow": {}}, {}, "MLFLOW_TRACKING_URI is not set"),
    ({"mlflow": {"tracking_uri": "sqlite:///{blocker}/sub/mlflow.db"}}, {}, "is a file"),
    ({"mlflow": {"tracking_uri": "{closed}"}}, {}, "cannot reach the MLflow server"),
    ({"wandb": {"mode": "online"}}, "no key", "online needs a W&B API key"),
    ({"wandb": {"mode": "online"}}, "other host", "online needs a W&B API key"),
    ({"wandb": {"mode": "offline", "dir": "{blocker}/wandb"}}, {}, "W&B's run files cannot go to"),
])
def test_tracking_that_cannot_work_here_is_refused_before_anything_is_written(
        tmp_path, tiny_world, monkeypatch, settings, env, words):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    text = json.dumps(settings).replace("{blocker}", str(blocker)).replace("{closed}", _closed_port_uri())
    path = sweep_file(tmp_path, tiny_world, json.loads(text))
    for key in ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_SETUP_API_KEY_HOOK", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    if env == "no key":
        env = _netrc(tmp_path, None)
    elif env == "other host":
        env = _netrc(tmp_path, "example.invalid")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sweep = load_config(path)
    with pytest.raises(ConfigError) as refused:
        tracking.check(sweep, Where.of(path))
    assert words in str(refused.value) and f"{path}:" in str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_a_missing_package_is_named_with_how_to_install_it(tmp_path, tiny_world, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    path = sweep_file(tmp_path, tiny_world, {"wandb": {"mode": "offline"}})
    with pytest.raises(ConfigError, match=r"tracking\.wandb: needs the wandb package.*\[tracking\]"):
        tracking.check(load_config(path), Where.of(path))


@pytest.mark.parametrize("env, source", [
    ({"WANDB_API_KEY": "k"}, "WANDB_API_KEY"),
    ("netrc", "(wandb login)"),
])
def test_online_wandb_with_a_key_from_the_environment_passes(tmp_path, tiny_world, monkeypatch, env, source):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    for key, value in (_netrc(tmp_path, "api.wandb.ai") if env == "netrc" else env).items():
        monkeypatch.setenv(key, value)
    path = sweep_file(tmp_path, tiny_world, {"wandb": {"project": "p"}})
    [line] = tracking.check(load_config(path), Where.of(path))
    assert line.startswith("tracking: W&B online") and source in line and "'p'" in line and "k3y" not in line


def test_run_with_an_unreachable_mlflow_server_exits_2_and_writes_nothing(tmp_path, tiny_world, capsys):
    path = sweep_file(tmp_path, tiny_world, {"mlflow": {"tracking_uri": _closed_port_uri()}})
    code = main(["run", str(path), "--output", str(tmp_path / "runs" / "exp"), "--num-cpus", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the MLflow server" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------ no tracking, no imports
def test_without_tracking_no_tracking_package_is_imported(tmp_path, tiny_world):
    path = sweep_file(tmp_path, tiny_world, {})
    probe = ("import sys, io; from sweeper.config import load_config; from sweeper import plan, tuning; "
             "from sweeper.run import RunOptions, check_inputs; from sweeper.yaml_errors import Where; "
             "import trainables.trial; "
             "sweep = load_config(sys.argv[1]); resolved = plan.resolve(sweep, sys.argv[2]); "
             "check_inputs(resolved, RunOptions(sys.argv[2], num_cpus=2), Where.of(sys.argv[1])); "
             "made = tuning._callbacks(resolved, 'tune-grid', 6, tuning.Driver(io.StringIO(), 60.0, False), None); "
             "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'wandb') "
             "or m.startswith('ray.air.integrations')); "
             "print(len(made), loaded)")
    done = subprocess.run([sys.executable, "-c", probe, str(path), str(tmp_path / "exp")], cwd=REPO,
                          env=driver_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "2 []"


# ----------------------------------------------------------------------------- a real sweep
def mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=1000)


def test_a_killed_and_resumed_sweep_is_tracked_once_per_trial_in_mlflow_and_wandb(tmp_path, tiny_world):
    uri = f"sqlite:///{tmp_path}/mlflow/runs.db"
    (tmp_path / "mlflow").mkdir()
    settings = {"mlflow": {"tracking_uri": uri, "experiment_name": "tracked"},
                "wandb": {"mode": "offline", "project": "xlt", "dir": str(tmp_path / "wb")}}
    config = sweep_file(tmp_path, tiny_world, settings)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    args = ["run", str(config), "--output", str(out), "--num-cpus", "2"]
    proc = start_driver(args, log)
    try:  # the driver is killed once some trial has logged evaluations and none has finished
        wait_for(lambda: any(json.loads(p.read_text()).get("evaluation", 0) >= 3 for p in out.glob(
            "results/*/*/status.json")), timeout=240, what="a trial three evaluations in", proc=proc, log=log)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_tree(proc.pid)
    assert run_driver([*args, "--resume"], tmp_path / "resume.log") == 0, (tmp_path / "resume.log").read_text()[-3000:]
    resumed_log = (tmp_path / "resume.log").read_text()
    assert "tracking: the report" in resumed_log and "logged to MLflow run" in resumed_log
    assert "logged to W&B run" in resumed_log and "warning" not in resumed_log

    metrics = pd.concat(pd.read_parquet(p) for p in out.glob("results/*/*/metrics.parquet"))
    trials = {(row.method, row.seed): row for row in metrics[metrics.split == "dev"].itertuples()}
    histories = {(j["spec"]["method"], j["spec"]["seed"]): j["dev_history"] for j in
                 (json.loads(p.read_text()) for p in out.glob("results/*/*/trial.json"))}
    assert len(trials) == len(histories) == 6

    client, runs = mlflow_runs(uri, "tracked")
    trial_runs = [r for r in runs if r.data.tags.get("sweeper.kind") == "trial"]
    assert len(trial_runs) == 6  # one run per trial: the resumed trials continued theirs
    for run in trial_runs:
        params, key = run.data.params, (run.data.params["method"], int(run.data.params["seed"]))
        assert run.info.status == "FINISHED" and run.data.tags["outcome"] == "done"
        assert params["config_id"] == trials[key].config_id and params["training/learning_rate"] == "0.001"
        assert params.get("epsilon") == ("0.1" if key[0] == "rs_rp" else None)
        history = client.get_metric_history(run.info.run_id, "dev_accuracy")
        dev = {m.step: m.value for m in history}
        assert len(history) == len(dev)  # evaluations replayed after the resume are not logged twice
        assert dev == {n: h["dev_accuracy"] for n, h in enumerate(histories[key], 1)}
        tests = metrics[(metrics.split == "test") & (metrics.method == key[0]) & (metrics.seed == key[1])]
        for row in tests.itertuples():
            assert run.data.metrics[f"test/{row.lang1}-{row.lang2}"] == pytest.approx(row.accuracy, abs=1e-12)
        assert run.data.metrics["best_dev_accuracy"] == pytest.approx(trials[key].accuracy, abs=1e-12)
    [report_run] = [r for r in runs if r.data.tags.get("sweeper.kind") == "report"]
    stored = {a.path for a in client.list_artifacts(report_run.info.run_id, "report")}
    # a local store keeps its artifacts beside it, not in a `mlruns/` of whatever folder the driver ran in
    assert report_run.info.artifact_uri.startswith((tmp_path / "mlflow" / "mlartifacts").as_uri())
    assert {"report/report.html", "report/table.csv", "report/report.md", "report/summary.csv"} <= stored
    from analysis.report import render_report

    table = Path(client.download_artifacts(report_run.info.run_id, "report/table.csv", str(tmp_path)))
    assert table.read_text() == render_report([str(out)], fmt="csv")

    from wandb_records import read_run

    # the killed driver's run files may hold no record at all: W&B had not flushed them
    offline = [run for run in (read_run(p) for p in sorted((tmp_path / "wb" / "wandb").glob(
        "offline-run-*/run-*.wandb"))) if run.run]
    by_trial: dict[str, list] = {}
    for run in offline:
        by_trial.setdefault(run.run["id"], []).append(run)
    reports = [runs for runs in by_trial.values() if runs[0].run["job_type"] == "report"]
    assert len(reports) == 1 and reports[0][0].artifacts[0]["type"] == "report"
    assert "report.html" in reports[0][0].artifacts[0]["files"]
    trial_files = {i: runs for i, runs in by_trial.items() if runs[0].run["job_type"] != "report"}
    assert len(trial_files) == 6 and all(r.run["project"] == "xlt" and r.run["group"] == "sweep-test"
                                         for runs in trial_files.values() for r in runs)
    for runs in trial_files.values():
        config = runs[-1].config
        key = (config["method"], config["seed"])
        logged = {h["evaluation"]: h["dev_accuracy"] for r in runs for h in r.history if "dev_accuracy" in h}
        assert logged == {n: h["dev_accuracy"] for n, h in enumerate(histories[key], 1)}
        final = [h for h in runs[-1].history if "test_avg_accuracy" in h]
        assert final and config["config_id"] == trials[key].config_id


@pytest.mark.parametrize("uri, expected", [
    ("sqlite:////data/mlflow/runs.db", "file:///data/mlflow/mlartifacts"),
    ("sqlite:////data/my%20runs/runs.db?timeout=20", "file:///data/my%20runs/mlartifacts"),
    ("file:///data/mlruns", None),
    ("http://127.0.0.1:5000", None),
    (None, None),
])
def test_a_local_sqlite_store_keeps_its_artifacts_beside_it(uri, expected):
    assert tracking.mlflow_artifact_location(uri) == expected


def test_wandb_run_files_never_go_into_the_experiment_folder(tmp_path, monkeypatch):
    """`run` and `demo --fresh` refuse an experiment folder holding files they did not write."""
    from sweeper.schema import WandbTracking

    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tracking.wandb_dir(WandbTracking(), "exp") == tmp_path / "home" / ".cache" / "robust-xlt" / "wandb" / "exp"
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w"))
    assert tracking.wandb_dir(WandbTracking(), "exp") == tmp_path / "w"
    assert tracking.wandb_dir(WandbTracking(dir=str(tmp_path / "d")), "exp") == tmp_path / "d"


@pytest.mark.parametrize("settings", [{}, {"mlflow": {"tracking_uri": "sqlite:///m.db"}}, {"wandb": {"mode": "offline"}}])
def test_a_dumped_configuration_with_tracking_loads_back(tmp_path, tiny_world, settings):
    from sweeper.schema import dump_config

    sweep = load_config(sweep_file(tmp_path, tiny_world, settings))
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(sweep))
    assert load_config(again) == sweep
