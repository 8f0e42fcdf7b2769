"""The sweeper CLI's own behaviour: dispatch, report pass-through, refusals without loading torch or Ray."""

from __future__ import annotations

import subprocess
import sys

from analysis.testing import ExperimentSpec, config, write_experiment
from sweeper.cli import main


def small_experiment(root):
    spec = ExperimentSpec(name="cli", task="pawsx", languages=("en", "de"),
                          configs=(config("baseline"), config("rs_rp", epsilon=0.1)), seeds=(0, 1, 2))
    return write_experiment(root, spec, accuracy=lambda cfg, seed, l1, l2: 0.8 + 0.01 * seed,
                            dev=lambda cfg, seed: 0.9)


def test_report_options_before_directories_reach_the_analysis_cli(tmp_path, capsys):
    # regression: `report --format csv DIR` failed with "unrecognized arguments" (argparse.REMAINDER)
    directory = small_experiment(tmp_path / "exp")
    assert main(["report", "--format", "csv", "--no-example-level", str(directory)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("task,method,row,column,mean") and "rs_rp" in out


def test_report_help_is_the_analysis_help(capsys):
    try:
        main(["report", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "--holm" in capsys.readouterr().out


def test_status_of_a_folder_that_is_no_experiment_exits_2(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not an experiment directory (no sweep.yaml)" in capsys.readouterr().err


def test_a_refused_config_loads_neither_torch_nor_ray(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\ntask: pawsx\nmethods: {baseline: {}}\nseeds: 0\n")
    probe = ("import sys; from sweeper.cli import main; code = main(['run', sys.argv[1]]); "
             "print(code, 'torch' in sys.modules, 'ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert f"{bad}:4: seeds:" in result.stderr


def test_methods_lists_every_installed_method_with_its_defaults(capsys):
    from trainables.methods import DESCRIPTORS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    heads = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == list(DESCRIPTORS)  # row order: the paper's five first
    assert "adv: ADV; the paper's mBERT-ADV; sweeps epsilon; Optuna may sample epsilon\n  epsilon: required\n" in out
    assert "  pgd_steps: 1\n" in out and "  swap_probability: 0.1\n" in out
