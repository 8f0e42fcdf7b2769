"""Seed blocks in real sweeps (execution.seeds_per_trial): the one-seed sweep's results, per-seed status, and a
killed block resumed from its checkpoint to the same results."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest

from sweep_helpers import all_metrics, cells, done, run_driver, start_driver, statuses, stop_tree, wait_for, write_config
from sweeper import status as status_module

pytestmark = pytest.mark.slow


def block_config(tiny_world, tmp_path, **overrides):
    return write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                        execution={"seeds_per_trial": 3}, **overrides)


def tune_trials(out):
    return sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in (out / "tune-grid").iterdir()
                  if p.is_dir() and (p / "result.json").exists())


def test_a_sweep_of_seed_blocks_ends_with_the_one_seed_sweeps_results(tiny_world, reference_experiment, tmp_path):
    config = block_config(tiny_world, tmp_path)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    code = run_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log)
    assert code == 0, log.read_text()[-3000:]
    assert tune_trials(out) == ["baseline-s0x3", "rs_rp-s0x3"]  # two trials, each of three seeds
    assert len(done(out)) == 6
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference_experiment))
    for key, state in statuses(out).items():
        assert state["state"] == "done" and state["ensemble"] == [0, 1, 2], key
        info = json.loads((cells(out)[key] / "trial.json").read_text())
        assert info["ensemble"] == {"seeds": [0, 1, 2]} and info["spec"]["seed"] == key[1]
    table = status_module.status_table(str(out))
    assert set(table.state) == {"done"} and len(table) == 6
    last = [json.loads(line) for line in open(next((out / "tune-grid").glob("rs_rp-*/result.json")))][-1]
    assert last["finished"] == 1.0 and {f"seed/{s}/test_avg_accuracy" for s in (0, 1, 2)} <= set(last)
    assert last["test_avg_accuracy"] == pytest.approx(sum(last[f"seed/{s}/test_avg_accuracy"] for s in (0, 1, 2)) / 3)


def test_a_killed_seed_block_is_retried_from_its_checkpoint_to_the_same_results(tiny_world, reference_experiment,
                                                                               tmp_path):
    config = block_config(tiny_world, tmp_path, checkpoint_every=3)
    out, log = tmp_path / "runs" / "exp", tmp_path / "driver.log"
    proc = start_driver(["run", str(config), "--output", str(out), "--num-cpus", "2"], log)
    try:
        victim = wait_for(lambda: next((s for s in statuses(out).values()
                                        if s["state"] == "running" and 0.2 <= s.get("progress", 0) <= 0.6), None),
                          timeout=240, what="a seed block a fifth of the way in", proc=proc, log=log)
        os.kill(victim["pid"], signal.SIGKILL)  # the Ray worker training the three seeds
        assert proc.wait(timeout=400) == 0, log.read_text()[-3000:]
    finally:
        stop_tree(proc.pid)
    final = statuses(out)
    retried = {key for key, s in final.items() if s["attempt"] == 2}
    assert len(retried) == 3 and len({key[0] for key in retried}) == 1  # the three members of one block
    assert all(final[key]["resumed_from_checkpoint"] and final[key]["state"] == "done" for key in retried)
    assert len(done(out)) == 6
    pd.testing.assert_frame_equal(all_metrics(out), all_metrics(reference_experiment))
