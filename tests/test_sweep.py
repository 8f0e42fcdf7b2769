"""Real sweeps on Ray (loopback, 2 CPUs): paired seeds, crashes of trials, nodes and the driver, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pandas as pd
import pytest
import ray

from sweep_helpers import (
    all_metrics,
    ray_cluster,
    cells,
    descendants,
    done,
    run_driver,
    start_driver,
    statuses,
    stop_tree,
    wait_for,
    write_config,
)
from sweeper import recovery
from sweeper import status as status_module

pytestmark = pytest.mark.slow


@pytest.fixture
def reference(reference_experiment):
    """An uninterrupted sweep (conftest, once per session): what every crash-and-recover run must end with."""
    return reference_experiment


def test_sweep_writes_one_result_set_per_cell_with_paired_seeds(reference):
    plan = json.loads((reference / "plan.json").read_text())
    assert len(plan["cells"]) == 6
    assert done(reference) == {(c["config_id"], c["seed"]) for c in plan["cells"]}
    metrics = all_metrics(reference)
    seeds = metrics.groupby("method").seed.apply(lambda s: sorted(set(s)))
    assert seeds["baseline"] == seeds["rs_rp"] == [0, 1, 2]  # every comparison is paired
    per_cell = metrics.groupby(["config_id", "seed"]).size()
    assert (per_cell == 1 + 3).all()  # one dev row + one test row per language (en, xa, xb)
    experiment = json.loads((reference / "experiment.json").read_text())
    assert experiment["languages"] == ["en", "xa", "xb"] and experiment["seeds"] == [0, 1, 2]


def test_killed_trial_is_retried_from_its_checkpoint(tiny_world, reference, tmp_path):
    # a checkpoint at every third of the 20 dev evaluations: the kill (at evaluation 3 to 10) finds one
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          checkpoint_every=3)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log)
    try:
        victim = wait_for(lambda: next((s for s in statuses(out).values()
                                        if s["state"] == "running" and 0.15 <= s.get("progress", 0) <= 0.5), None),
                          timeout=180, what="a trial a fifth of the way in", proc=proc, log=log)
        os.kill(victim["pid"], signal.SIGKILL)  # the Ray worker process running that trial
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        stop_tree(proc.pid)
    final = statuses(out)
    resumed = [s for s in final.values() if s["attempt"] == 2]
    assert len(resumed) == 1 and resumed[0]["resumed_from_checkpoint"] and resumed[0]["state"] == "done"
    assert all(s["attempt"] == 1 for s in final.values() if s is not resumed[0])
    assert len(cells(out)) == 6 and len(done(out)) == 6  # nothing missing, nothing duplicated
    checkpointed = [sum(json.loads(line)["checkpoint_dir_name"] is not None for line in open(path))
                    for path in (out / "tune-grid").glob("*/result.json")]
    assert checkpointed.count(6) >= 5  # evaluations 3, 6, ..., 18 (the killed trial may have repeated some)
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference))


def test_driver_killed_then_resume_reruns_nothing_finished(tiny_world, reference, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache")
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc, tree = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log), []
    try:
        # a running cell far from its end, so that it cannot finish before the kill lands
        wait_for(lambda: len(done(out)) >= 2 and any(s["state"] == "running" and s.get("progress", 0) < 0.7
                                                     for s in statuses(out).values()),
                 timeout=240, what="two finished cells and a running one", proc=proc, log=log)
        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_tree(proc.pid, tree)  # the local Ray the driver started, and its workers
    finished = {key: (d / "metrics.parquet").stat().st_mtime_ns for key, d in cells(out).items()
                if (d / "metrics.parquet").exists()}
    attempts = {key: s["attempt"] for key, s in statuses(out).items()}

    # status right after the crash: done, interrupted (failed) and never started (missing) cells
    time.sleep(1.5)
    table = status_module.status_table(str(out), stale_after=1.0)
    state = {(r.config_id, r.seed): r.state for r in table.itertuples()}
    assert {k for k, v in state.items() if v == "done"} == set(finished)
    interrupted = {k for k, v in state.items() if v == "failed"}
    assert interrupted and all("interrupted" in d for d in table[table.state == "failed"].detail)
    assert set(state) == {(c["config_id"], c["seed"]) for c in json.loads((out / "plan.json").read_text())["cells"]}
    assert {k for k, v in state.items() if v == "missing"} == set(state) - set(finished) - interrupted

    code = run_driver(["run", str(config), "--output", str(out), "--num-cpus", "2", "--resume"],
                      tmp_path / "resume.log")
    assert code == 0, (tmp_path / "resume.log").read_text()[-3000:]
    after = statuses(out)
    for key, mtime in finished.items():  # finished cells were not trained or written again
        assert (cells(out)[key] / "metrics.parquet").stat().st_mtime_ns == mtime
        assert after[key]["attempt"] == attempts[key]
    assert len(done(out)) == 6
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference))


def test_ctrl_c_ends_the_run_with_its_state_saved_and_resume_finishes_it(tiny_world, reference, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache")
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log)
    try:
        wait_for(lambda: done(out) and any(s["state"] == "running" and s.get("progress", 0) < 0.7
                                           for s in statuses(out).values()),
                 timeout=240, what="a finished cell and a running one", proc=proc, log=log)
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        stop_tree(proc.pid)
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "the grid stage was interrupted with" in text and "--resume" in text
    assert "all cells done" not in text and len(done(out)) < 6
    code = run_driver(["run", str(config), "--output", str(out), "--num-cpus", "2", "--resume"],
                      tmp_path / "resume.log")
    assert code == 0, (tmp_path / "resume.log").read_text()[-3000:]
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference))


def test_resume_when_tune_state_names_deleted_checkpoints(tiny_world, reference, tmp_path):
    """The race CI hit: Tune deleted a trial's older checkpoint, then the driver died before the
    experiment state naming the newer one reached storage. Reproduced exactly by putting back a
    state snapshot taken earlier; a second trial loses every checkpoint and must start over."""
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache")
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    tune_dir, snapshot = out / "tune-grid", tmp_path / "snapshot"

    def two_trials_with_checkpoints():
        try:
            expected = recovery.expected_checkpoints(str(tune_dir))
            live = {t: c for t, c in expected.items() if (tune_dir / t / c / "state.json").exists()}
            if len(live) < 2 or min(live.values()) > "checkpoint_000010":  # of 20: newer ones are still to come
                return None
            snapshot.mkdir(exist_ok=True)
            for path in tune_dir.iterdir():
                if path.is_file():
                    shutil.copy2(path, snapshot / path.name)
            return live if recovery.expected_checkpoints(str(snapshot)) == expected else None
        except Exception:  # Tune was rewriting its state files: look again
            return None

    proc, tree = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log), []
    try:
        stale = wait_for(two_trials_with_checkpoints, timeout=240, what="a state naming two checkpoints",
                         proc=proc, log=log)
        first, second = sorted(stale, key=stale.get)[:2]
        wait_for(lambda: not (tune_dir / first / stale[first]).exists(), timeout=120,
                 what=f"{first} replacing {stale[first]}", proc=proc, log=log)
        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_tree(proc.pid, tree)
    for path in tune_dir.iterdir():
        if path.is_file():
            path.unlink()
    for path in snapshot.iterdir():
        shutil.copy2(path, tune_dir / path.name)
    for path in (tune_dir / second).glob("checkpoint_*"):
        shutil.rmtree(path)
    assert recovery.expected_checkpoints(str(tune_dir)).items() >= stale.items()
    assert not (tune_dir / first / stale[first]).exists() and not (tune_dir / second / stale[second]).exists()

    resume_log = tmp_path / "resume.log"
    code = run_driver(["run", str(config), "--output", str(out), "--num-cpus", "2", "--resume"], resume_log)
    text = resume_log.read_text()
    assert code == 0, text[-3000:]
    assert f"{first}: {stale[first]} is gone" in text and "resuming from the newer checkpoint_" in text
    assert f"{second}: {stale[second]} is gone and no complete checkpoint is left" in text
    assert len(done(out)) == 6
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference))


def test_resume_refuses_a_changed_configuration(tiny_world, reference, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache", seeds=4)
    code = run_driver(["run", str(config), "--output", str(reference), "--resume"], tmp_path / "log")
    assert code == 2
    assert "differs from the configuration given" in (tmp_path / "log").read_text()


def test_removing_a_worker_node_mid_sweep_still_completes(tiny_world, tmp_path):
    # trials twice as long as elsewhere, so that the worker's trial cannot finish between the moment
    # it is seen early in training and the node's removal (a race seen once under load)
    training = {"epochs": 80, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1,
                "eval_every": 12}
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          training=training)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc = None
    with ray_cluster(num_cpus=1) as cluster:
        try:
            worker = cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            proc = start_driver(["run", str(config), "--output", str(out), "--address", cluster.address], log)
            # one CPU per node: two trials running at once means one of them runs on the worker node
            wait_for(lambda: sum(s["state"] == "running" and 0.05 < s.get("progress", 0) < 0.5
                                 for s in statuses(out).values()) == 2,
                     timeout=240, what="two trials running, one per node", proc=proc, log=log)
            cluster.remove_node(worker, allow_graceful=False)
            assert proc.wait(timeout=400) == 0, log.read_text()[-3000:]
        finally:
            if proc is not None:
                stop_tree(proc.pid)
    assert "seen by all 2 node(s)" in log.read_text()  # the storage probe ran on both nodes
    assert len(done(out)) == 6
    assert any(s["attempt"] == 2 for s in statuses(out).values())  # the trial on the removed node ran again


def test_quarter_gpu_trials_run_four_at_a_time(tiny_world, tmp_path):
    from sweeper.config import load_config
    from sweeper.run import RunOptions, run_sweep

    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                          seeds=4, resources={"cpu": 0.5, "gpu": 0.25})
    out = tmp_path / "runs" / "exp"
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert run_sweep(load_config(config), RunOptions(str(out), out=open(os.devnull, "w"))) == 0
    finally:
        ray.shutdown()
    spans = [(s["started"], s["updated"]) for s in statuses(out).values()]
    assert len(spans) == 8
    overlap = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert overlap == 4  # one logical GPU, 0.25 each: four trials share it, never a fifth


def test_resume_takes_the_resources_given_now(tiny_world, tmp_path):
    # after a placement refusal the README says: fix `resources` and --resume; Tune must place the restored
    # trials with the new request (2 CPUs each on 2 CPUs: one at a time), not the stored one (two at a time)
    config = write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache", seeds=4)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc, tree = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log), []
    try:
        wait_for(lambda: len(done(out)) >= 1, timeout=240, what="a finished cell", proc=proc, log=log)
        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_tree(proc.pid, tree)
    wider = write_config(tmp_path / "wider.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache", seeds=4,
                         resources={"cpu": 2})
    resumed_at = time.time()
    assert run_driver(["run", str(wider), "--output", str(out), "--num-cpus", "2", "--resume"],
                      tmp_path / "resume.log") == 0, (tmp_path / "resume.log").read_text()[-3000:]
    spans = [(s["started"], s["updated"]) for s in statuses(out).values() if s["started"] > resumed_at]
    assert len(spans) >= 2 and len(done(out)) == 8
    assert max(sum(start <= t < end for start, end in spans) for t, _ in spans) == 1
