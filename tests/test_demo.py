"""The README's main command path, end to end on a small synthetic world: sweep, table, every figure.

The demo runs while a foreign Ray cluster is up on the machine (issue 7: the embedded Ray is our own).
"""

from __future__ import annotations

import json

import pytest
import yaml

from sweep_helpers import ray_cluster, run_driver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`python -m sweeper demo` with the demo config shrunk to the tiny world (the real one takes minutes)."""
    root = tmp_path_factory.mktemp("demo")
    config = {
        "experiment": "demo-test",
        "task": "pawsx",
        "model": "synthetic",
        "data": {"source": "synthetic", "synthetic_preset": "tiny", "path": str(root / "world")},
        "generalized": True,
        "methods": {"baseline": {}, "adv": {"epsilon": [0.05]}, "rs_rp": {"epsilon": [0.05]},
                    "rs_da": {"m": [1, 2], "synonyms": "synthetic"}, "rs_syntax": {"m": [2]}},
        "seeds": 2,
        "training": {"epochs": 2, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1,
                     "eval_every": 3},
        "resources": {"cpu": 1},
        "storage": str(root / "runs"),
        "cache_dir": str(root / "cache"),
    }
    path = root / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    out = root / "runs" / "demo-test"
    log = root / "demo.log"
    # as on a shared machine: another Ray cluster is up, offering no CPU. A driver that joined it (a plain
    # `ray.init()`) would wait forever with every trial pending; the demo must start a Ray of its own.
    with ray_cluster(num_cpus=0):
        code = run_driver(["demo", "--config", str(path), "--output", str(out)], log)
    return code, log.read_text(), out, root


def test_demo_builds_the_world_sweeps_and_prints_the_marked_table(demo_run):
    code, output, out, root = demo_run
    assert code == 0, output[-3000:]
    assert (root / "world" / "world.json").exists()  # built because it was missing
    assert "| Method | en | xa | xb | avg |" in output
    for row in ("| Baseline |", "| ADV (eps=0.05) |", "| RS-RP (eps=0.05) |", "| RS-syntax (m=2) |"):
        assert row in output
    assert "RS-DA (m=" in output and "demo finished in" in output
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["distance_name"] == "embedding misalignment"
    assert set(experiment["language_distances"]) == {"en", "xa", "xb"}
    assert experiment["methods"]["rs_da"] == {"display": "RS-DA", "paper_model": "mBERT-RS-DA", "grid_axis": "m"}
    assert list(experiment["methods"]) == ["baseline", "adv", "rs_rp", "rs_da", "rs_syntax"]


def test_report_draws_every_figure_from_the_synthetic_world_results(demo_run, tmp_path):
    code, output, out, root = demo_run
    assert code == 0
    figures = tmp_path / "figures"
    assert run_driver(["report", str(out), "--figures", str(figures)], tmp_path / "report.log") == 0
    stems = {p.stem for p in figures.iterdir()}
    assert {p.suffix for p in figures.iterdir()} == {".png", ".pdf"}
    assert {f"pawsx_fig2_gain_vs_distance_{m}" for m in ("adv", "rs_rp", "rs_da", "rs_syntax")} <= stems
    assert "pawsx_fig3_m_ablation_rs_da" in stems  # two values of m
    assert {f"pawsx_fig45_generalized_{m}_minus_baseline" for m in ("rs_rp", "rs_da")} <= stems
    assert all(p.stat().st_size > 1000 for p in figures.iterdir())


def test_running_the_demo_again_resumes_without_retraining(demo_run, tmp_path):
    code, output, out, root = demo_run
    before = {p: p.stat().st_mtime_ns for p in out.glob("results/*/seed-*/metrics.parquet")}
    log = tmp_path / "again.log"
    assert run_driver(["demo", "--config", str(root / "demo.yaml"), "--output", str(out), "--num-cpus", "2"],
                      log) == 0
    assert "resuming" in log.read_text()
    assert {p: p.stat().st_mtime_ns for p in out.glob("results/*/seed-*/metrics.parquet")} == before
