"""`estimate: auto`: --dry-run's device-hours from measured throughput, each figure with its source.

Hand-made trial.json timings first (the arithmetic), then real finished trials beside a new experiment.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from sweep_helpers import write_config
from sweeper import plan as planning
from sweeper import throughput
from sweeper.config import load_config
from sweeper.schema import Estimate
from sweeper.throughput import ASSUMED, Rates, Wanted

GPU_BF16 = Wanted("bert-base-multilingual-cased", "pawsx", gpu=True, bf16=True)


def info(method="baseline", options=None, device="NVIDIA H200", bf16=True, **timings):
    base = {"train_examples": 1000, "train_seconds": 12.0, "dev_eval_seconds": 2.0, "dev_eval_examples": 400,
            "test_eval_seconds": 3.0, "test_eval_examples": 600}
    return {"spec": {"method": method, "method_options": options or {}}, "device": device, "bf16": bf16,
            "timings": {**base, **timings}}


def test_a_trials_rates_are_its_passes_over_its_training_time_per_full_device():
    # 1000 examples in 12 - 2 s of pure training; 1000 evaluated in 2 + 3 s
    assert throughput.trial_rates(info(), 1.0) == pytest.approx((100.0, 200.0))
    assert throughput.trial_rates(info(), 0.5) == pytest.approx((200.0, 400.0))  # the device ran two such trials
    # ADV with 2 PGD steps: 3 forward+backward passes per example
    assert throughput.trial_rates(info("adv", {"epsilon": 0.1, "pgd_steps": 2}), 1.0)[0] == pytest.approx(300.0)
    cpu = info(device="cpu", bf16=False)
    assert throughput.trial_rates(cpu, 0.5) == pytest.approx((100.0, 200.0))  # per CPU trial, no device share
    # a member of a 4-seed ensemble: the ensemble's time trained and evaluated 4 members' examples
    assert throughput.trial_rates(info(ensemble_size=4), 1.0) == pytest.approx((400.0, 800.0))


@pytest.mark.parametrize("broken", [
    {"train_examples": None},  # written before the counters existed
    {"train_seconds": 2.0},  # no time left once evaluation is taken out
    {"train_examples": 0},
    {"dev_eval_seconds": 0.0, "test_eval_seconds": 0.0},
])
def test_timings_that_cannot_give_a_rate_give_none(broken):
    assert throughput.trial_rates(info(**broken), 1.0) is None


def test_only_trials_on_the_same_device_kind_and_precision_count_and_the_median_is_taken():
    trials = [(info(train_seconds=12.0), 1.0), (info(train_seconds=22.0), 1.0), (info(train_seconds=7.0), 1.0),
              (info(bf16=False, train_seconds=1002.0), 1.0), (info(device="cpu", train_seconds=1002.0), 1.0)]
    rates = throughput.from_trials(trials, GPU_BF16)
    assert rates.train_examples_per_second == pytest.approx(100.0)  # median of 200, 100, 50
    assert "median of 3 finished trial(s)" in rates.source and "3 on NVIDIA H200" in rates.source
    assert throughput.from_trials(trials[3:4], GPU_BF16) is None


def test_recorded_figures_match_on_model_task_device_kind_and_precision_newest_first():
    records = [
        {"model": GPU_BF16.model, "task": "pawsx", "device": "NVIDIA A10G", "precision": "bf16", "measured": "2026-01",
         "train_examples_per_second": 90, "eval_examples_per_second": 900},
        {"model": GPU_BF16.model, "task": "pawsx", "device": "NVIDIA H200", "precision": "bf16", "measured": "2026-12",
         "train_examples_per_second": 400, "eval_examples_per_second": 4000},
        {"model": GPU_BF16.model, "task": "xnli", "device": "NVIDIA H200", "precision": "bf16", "measured": "2026-12",
         "train_examples_per_second": 1, "eval_examples_per_second": 1},
        {"model": GPU_BF16.model, "task": "pawsx", "device": "cpu", "precision": "bf16", "measured": "2027-01",
         "train_examples_per_second": 2, "eval_examples_per_second": 2},
    ]
    rates = throughput.from_recorded(records, GPU_BF16)
    assert (rates.train_examples_per_second, rates.eval_examples_per_second) == (400, 4000)
    assert "NVIDIA H200" in rates.source and "2026-12" in rates.source
    assert throughput.from_recorded(records, Wanted(GPU_BF16.model, "pawsx", gpu=True, bf16=False)) is None


def test_the_chain_prefers_trials_then_records_then_assumptions_and_given_figures_win():
    trials, records = [(info(), 1.0)], [{"model": GPU_BF16.model, "task": "pawsx", "device": "NVIDIA H200",
                                         "precision": "bf16", "train_examples_per_second": 400,
                                         "eval_examples_per_second": 4000}]
    auto = Estimate.model_validate("auto")
    assert throughput.rates_for(auto, GPU_BF16, trials, records).train_examples_per_second == pytest.approx(100)
    assert throughput.rates_for(auto, GPU_BF16, [], records).train_examples_per_second == 400
    assert throughput.rates_for(auto, GPU_BF16, [], []) == ASSUMED
    assert ASSUMED.source.startswith("assumed, not measured")
    both = Estimate(train_examples_per_second=50, eval_examples_per_second=500)
    assert throughput.rates_for(both, GPU_BF16, trials, records) == Rates(50, 500, "given under `estimate:`")
    one = throughput.rates_for(Estimate(train_examples_per_second=50), GPU_BF16, trials, records)
    assert (one.train_examples_per_second, one.eval_examples_per_second) == pytest.approx((50, 200))
    assert one.source.startswith("training rate given under `estimate:`; the other measured")


def test_estimate_accepts_auto_and_figures_and_names_anything_else():
    assert Estimate.model_validate("auto") == Estimate()
    with pytest.raises(ValueError, match="write `auto` or the figures"):
        Estimate.model_validate("fast")


# ------------------------------------------------------------------ real trials beside a new experiment
@pytest.fixture(scope="module")
def beside_reference(reference_experiment, tmp_path_factory):
    """A copy of the session's finished reference experiment (baseline and RS-RP x 3 seeds, CPU) in a
    storage folder where a new experiment will be planned."""
    storage = tmp_path_factory.mktemp("storage")
    shutil.copytree(reference_experiment, storage / "earlier")
    return storage


def test_finished_trials_record_what_they_trained_and_evaluated(beside_reference):
    cells = sorted((beside_reference / "earlier" / "results").glob("*/seed-*/trial.json"))
    assert len(cells) == 6
    for path in cells:
        trial = json.loads(path.read_text())
        timings, evaluations = trial["timings"], len(trial["dev_history"])
        assert timings["train_examples"] == 48 * 40  # every training row once per epoch (write_config: 40)
        assert timings["dev_eval_examples"] == 12 * evaluations
        assert timings["test_eval_examples"] == 12 + 3 * 16  # the tested weights on dev and the 3 test sets
        assert 0 < timings["dev_eval_seconds"] < timings["train_seconds"]


def test_dry_run_plans_with_the_median_of_the_finished_trials_and_says_so(beside_reference, tiny_world, tmp_path):
    config = write_config(tmp_path / "sweep.yaml", tiny_world, beside_reference, tmp_path / "cache",
                          experiment="next", methods={"baseline": {}, "adv": {"epsilon": [0.1]}})
    resolved = planning.resolve(load_config(config), str(beside_reference / "next"))
    text = planning.describe(resolved)
    assert "throughput: " in text and "measured: median of 6 finished trial(s) of this model and task (6 on cpu; fp32)" \
        in text and "assumed" not in text
    trials = throughput.finished_trials([str(beside_reference)], resolved.model, "pawsx")
    rates = throughput.from_trials(trials, Wanted(resolved.model, "pawsx", gpu=False, bf16=False))
    sizes = planning.data_sizes(resolved)
    training = planning.training_for(resolved.sweep, resolved.sweep.methods.enabled()["baseline"])
    hours = planning.trial_hours("baseline", {}, training, sizes, 3, resolved.sweep, rates)
    row = next(line for line in text.splitlines() if line.split()[:3] == ["grid", "baseline", "baseline"])
    assert float(row.split()[-1]) == pytest.approx(hours * 3, abs=0.006)  # 3 seeds, printed to 2 decimals


def test_another_model_or_task_or_a_damaged_experiment_falls_back_to_labelled_assumptions(beside_reference,
                                                                                          tiny_world, tmp_path):
    storage = tmp_path / "storage"
    shutil.copytree(beside_reference / "earlier", storage / "earlier")
    (storage / "broken").mkdir()
    (storage / "broken" / "experiment.json").write_text('{"model": ')  # cut short by a full disk
    config = write_config(tmp_path / "sweep.yaml", tiny_world, storage, tmp_path / "cache", experiment="next",
                          task="xnli", data={"source": "tsv", "path": str(tiny_world.tsv_dir("xnli"))})
    text = planning.describe(planning.resolve(load_config(config), str(storage / "next")))
    assert "throughput: 250 training and 2000 evaluation examples/s, assumed, not measured" in text
    written = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    written["estimate"] = {"train_examples_per_second": 40}
    (tmp_path / "given.yaml").write_text(yaml.safe_dump(written))
    text = planning.describe(planning.resolve(load_config(tmp_path / "given.yaml"), str(storage / "next")))
    assert "throughput: 40 training and 2000 evaluation examples/s, training rate given under `estimate:`" in text


def test_the_shipped_benchmark_records_read_and_plan_a_cpu_sweep_of_mbert():
    records = throughput.recorded_figures()
    assert records, "sweeper/throughput.json holds no records"
    for record in records:
        assert {"device", "model", "task", "precision", "setting", "train_examples_per_second",
                "eval_examples_per_second", "measured", "command"} <= record.keys()
        assert record["train_examples_per_second"] > 0 and record["eval_examples_per_second"] > 0
    rates = throughput.rates_for(Estimate(), Wanted("bert-base-multilingual-cased", "pawsx", gpu=False, bf16=False),
                                 [], records)
    assert rates.source.startswith("recorded by benchmarks/bench_mbert_throughput.py --records on cpu")
