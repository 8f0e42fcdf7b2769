"""The faithful configs hold the paper's scripts' settings; the fast ones differ only by the named speed-ups.

Sources (read from the public repositories): XTREME = google-research/xtreme scripts/train_{pawsx,xnli}.sh,
RXLT = uclanlp/Robust-XLT scripts/train_{pawsx,xnli}.sh, run_classify = xtreme third_party/run_classify.py
(the argparse defaults both scripts leave alone; no --fp16; RandomSampler; pads to max_seq_length).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper import plan as planning
from sweeper.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_CLASSIFY = {"warmup_ratio": 0.0, "weight_decay": 0.0, "adam_epsilon": 1e-8, "max_grad_norm": 1.0,
                "padding": "max_length", "length_grouping": False, "precision": "fp32"}
# (task, method) -> the script that trains it and its settings
SCRIPTS = {
    ("pawsx", "baseline"): {"epochs": 5, "eval_every": 200},  # XTREME: EPOCH=5, --save_steps 200
    ("pawsx", "adv"): {"epochs": 5, "eval_every": 200},
    ("pawsx", "rs_rp"): {"epochs": 5, "eval_every": 200},
    ("pawsx", "rs_da"): {"epochs": 3, "eval_every": 500},  # RXLT: EPOCH=3, --save_steps 500
    ("pawsx", "rs_syntax"): {"epochs": 3, "eval_every": 500},
    ("xnli", "baseline"): {"epochs": 5, "eval_every": 100},  # XTREME: EPOCH=5, --save_steps 100
    ("xnli", "adv"): {"epochs": 5, "eval_every": 100},
    ("xnli", "rs_rp"): {"epochs": 5, "eval_every": 100},
    ("xnli", "rs_da"): {"epochs": 1, "eval_every": 1000},  # RXLT: EPOCH=1, --save_steps 1000
}
BOTH_SCRIPTS = {"learning_rate": 2e-5, "per_device_batch_size": 8, "gradient_accumulation": 4, "max_length": 128}
FAST = {"per_device_batch_size": 32, "gradient_accumulation": 1, "padding": "dynamic", "length_grouping": True,
        "precision": "auto"}


def trainings(name: str) -> dict[str, dict]:
    sweep = load_config(CONFIGS / name)
    return {method: planning.training_for(sweep, settings) for method, settings in sweep.methods.enabled().items()}


@pytest.mark.parametrize("task", ["pawsx", "xnli"])
def test_the_faithful_config_trains_every_method_as_its_script(task):
    sweep = load_config(CONFIGS / f"{task}.yaml")
    assert sweep.model == "bert-base-multilingual-cased" and sweep.seed_list == list(range(10))
    assert sweep.data.allow_empty  # run_classify keeps every row
    for method, training in trainings(f"{task}.yaml").items():
        expected = {**RUN_CLASSIFY, **BOTH_SCRIPTS, **SCRIPTS[(task, method)]}
        assert {k: training[k] for k in expected} == expected, method
    assert set(trainings(f"{task}.yaml")) == {m for t, m in SCRIPTS if t == task}


@pytest.mark.parametrize("task", ["pawsx", "xnli"])
def test_the_fast_config_differs_only_by_its_speed_ups(task):
    faithful, fast = trainings(f"{task}.yaml"), trainings(f"{task}-fast.yaml")
    assert faithful.keys() == fast.keys()
    for method in faithful:
        assert {k: fast[method][k] for k in FAST} == FAST
        assert {k: v for k, v in fast[method].items() if k not in FAST} == \
            {k: v for k, v in faithful[method].items() if k not in FAST}
    a, b = load_config(CONFIGS / f"{task}.yaml"), load_config(CONFIGS / f"{task}-fast.yaml")
    assert a.model_dump(exclude={"experiment", "training", "methods"}) == \
        b.model_dump(exclude={"experiment", "training", "methods"})


@pytest.mark.parametrize("name, trials", [("pawsx.yaml", 110), ("xnli.yaml", 100), ("pawsx-fast.yaml", 110),
                                          ("xnli-fast.yaml", 100)])
def test_the_dry_run_plan_of_each_protocol_config(name, trials, tmp_path):
    """What `--dry-run` prints before it reaches the model (which this offline machine cannot download)."""
    sweep = load_config(CONFIGS / name)
    text = planning.describe(planning.resolve(sweep, str(tmp_path / "exp"), build_world=False))
    assert f"total: {trials} trials, about " in text and "GPU-hours" in text


@pytest.mark.parametrize("name", ["pawsx.yaml", "xnli.yaml", "pawsx-fast.yaml", "xnli-fast.yaml"])
def test_each_protocol_config_passes_the_dry_run_with_only_its_downloads_made_local(name, tiny_world, tmp_path,
                                                                                  capsys):
    """The shipped file as it is, except what this offline machine cannot download (the model, the Hub dataset,
    the synonym table), which the synthetic world stands in for in the Hub layout; GPUs declared as a GPU machine
    would have them. Every other setting goes through the same checks as a real run."""
    import yaml

    from sweeper.cli import main

    config = yaml.safe_load((CONFIGS / name).read_text())
    task = config["task"]
    config["model"] = str(tiny_world.model_dir)
    config["data"] = {**config["data"], "source": "local_hub", "path": str(tiny_world.hub_dir(task))}
    if "rs_da" in config["methods"]:
        config["methods"]["rs_da"]["synonyms"] = str(tiny_world.synonyms_path)
    config["storage"], config["cache_dir"] = str(tmp_path / "runs"), str(tmp_path / "cache")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["run", str(path), "--dry-run", "--num-cpus", "8", "--num-gpus", "1"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "checked embedded Ray: CPU 8, GPU 1" in out and "checked data: local_hub:" in out
    assert not (tmp_path / "runs").exists()  # a dry run claims nothing
