"""The trial end to end on the synthetic world: results, determinism, resume, caching, bf16."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trial_helpers import trial_spec
from trainables import prepare as prepare_module
from trainables import results
from trainables.loop import TrainingRun, is_complete_checkpoint
from trainables.methods import build_method
from trainables.trial import load_model, prepare_for, run_trial


class Killed(Exception):
    """Stands for the trial process dying right after a checkpoint."""


def read_cell(spec):
    directory = results.cell_dir(spec.experiment_dir, spec.config_id, spec.seed)
    metrics = pd.read_parquet(f"{directory}/metrics.parquet")
    predictions = pd.read_parquet(f"{directory}/predictions.parquet")
    info = json.loads(Path(directory, "trial.json").read_text())
    return metrics, predictions, info


def test_trial_writes_schema_rows_predictions_and_resolved_config(tiny_world, tmp_path):
    spec = trial_spec(tiny_world, tmp_path, "rs_rp", generalized=True)
    reports = []
    final = run_trial(spec, lambda metrics, save: reports.append(metrics))
    metrics, predictions, info = read_cell(spec)
    assert list(metrics.columns) == results.METRICS_SCHEMA.names
    languages = list(tiny_world.languages)
    tests = metrics[metrics.split == "test"]
    assert len(tests) == len(languages) ** 2  # the generalized matrix, diagonal included
    assert set(zip(tests.lang1, tests.lang2)) == {(a, b) for a in languages for b in languages}
    dev = metrics[metrics.split == "dev"].iloc[0]
    assert (dev.lang1, dev.lang2) == ("en", "en") and dev.accuracy == max(r["dev_accuracy"] for r in reports)
    assert metrics.epsilon.unique().tolist() == [0.1] and metrics.m.isna().all()
    assert metrics.config_id.unique().tolist() == [spec.config_id]
    # one prediction row per evaluated example, consistent with the accuracies
    assert len(predictions) == metrics.n.sum()
    for row in metrics.itertuples():
        rows = predictions[(predictions.split == row.split) & (predictions.lang1 == row.lang1)
                           & (predictions.lang2 == row.lang2)]
        assert (rows.label == rows.prediction).mean() == pytest.approx(row.accuracy)
        assert sorted(rows.example) == list(range(row.n))
    assert info["spec"]["method_options"] == {"epsilon": 0.1}
    assert info["method"] == {"method": "rs_rp", "epsilon": 0.1, "injection": "word_embeddings"}
    assert final["test/en-en"] == pytest.approx(tests[(tests.lang1 == "en") & (tests.lang2 == "en")].accuracy.iloc[0])
    assert [r["update"] for r in reports] == list(range(2, reports[-1]["update"] + 1, 2))


def test_same_seed_same_results_different_seed_differs(tiny_world, tmp_path):
    first = trial_spec(tiny_world, tmp_path / "a", "rs_rp", seed=3)
    second = trial_spec(tiny_world, tmp_path / "b", "rs_rp", seed=3)
    history = {}
    for spec in (first, second):
        run_trial(spec, lambda m, save, key=spec.experiment_dir: history.setdefault(key, []).append(m))
    a, b = read_cell(first), read_cell(second)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert history[first.experiment_dir] == history[second.experiment_dir]  # same losses, bit for bit
    other = trial_spec(tiny_world, tmp_path / "c", "rs_rp", seed=4)
    run_trial(other, lambda m, save: history.setdefault("other", []).append(m))
    assert [m["train_loss"] for m in history["other"]] != [m["train_loss"] for m in history[first.experiment_dir]]


def test_killed_trial_resumes_mid_epoch_to_the_uninterrupted_result(tiny_world, tmp_path):
    # 48 training pairs / batch 8 = 6 updates per epoch; the kill lands mid-epoch 2 (update 8)
    whole = trial_spec(tiny_world, tmp_path / "whole", "adv", seed=1)
    uninterrupted = []
    run_trial(whole, lambda m, save: uninterrupted.append(m))

    interrupted = trial_spec(tiny_world, tmp_path / "killed", "adv", seed=1)
    checkpoint = tmp_path / "checkpoint"

    def kill_at_update_8(metrics, save):
        if metrics["update"] == 8:
            checkpoint.mkdir()
            save(checkpoint)
            raise Killed

    with pytest.raises(Killed):
        run_trial(interrupted, kill_at_update_8)
    assert json.loads((checkpoint / "state.json").read_text())["epoch"] == 1  # mid-epoch
    assert is_complete_checkpoint({p.name for p in checkpoint.iterdir()})  # what recovery looks for
    assert not results.is_complete(results.cell_dir(interrupted.experiment_dir, interrupted.config_id, 1))
    resumed = []
    run_trial(interrupted, lambda m, save: resumed.append(m), checkpoint_dir=checkpoint)
    assert resumed == uninterrupted[4:]  # the same dev accuracies and losses after the kill
    assert [m["evaluation"] for m in uninterrupted] == list(range(1, len(uninterrupted) + 1))  # ASHA's clock
    pd.testing.assert_frame_equal(read_cell(whole)[1], read_cell(interrupted)[1])
    pd.testing.assert_frame_equal(read_cell(whole)[0].drop(columns="experiment"),
                                  read_cell(interrupted)[0].drop(columns="experiment"))


def test_finished_cell_is_not_trained_again(tiny_world, tmp_path):
    spec = trial_spec(tiny_world, tmp_path, "baseline")
    first = run_trial(spec, lambda m, save: None)
    reports = []
    again = run_trial(spec, lambda m, save: reports.append(m))
    assert reports == [] and again == first


def test_second_trial_on_same_data_does_not_tokenize_again(tiny_world, tmp_path, monkeypatch):
    calls = []
    original = prepare_module.tokenize_pairs
    monkeypatch.setattr(prepare_module, "tokenize_pairs", lambda *a, **k: calls.append(a[-1]) or original(*a, **k))
    spec = trial_spec(tiny_world, tmp_path, "baseline")
    tokenizer, _ = load_model(spec.model, 2, 0)
    first = prepare_for(spec, tokenizer, build_method("baseline", {}))
    assert set(first.built) == {"train", "eval"} and "tokenizing train" in calls
    calls.clear()
    for method in ("adv", "rs_rp"):  # embedding-level methods share the baseline's token ids
        other = trial_spec(tiny_world, tmp_path, method, seed=5)
        again = prepare_for(other, tokenizer, build_method(method, dict(other.method_options)))
        assert again.built == () and calls == []
    np.testing.assert_array_equal(again.train.lengths, first.train.lengths)
    augmented = trial_spec(tiny_world, tmp_path, "rs_syntax")
    data = prepare_for(augmented, tokenizer, build_method("rs_syntax", {"m": 2}))
    assert data.built == ("train",) and calls == ["tokenizing train"]  # dev/test come from the cache
    assert data.train_info["n_train"] == 2 * data.train_info["n_source"]


def test_same_seed_gives_same_head_and_data_order_across_methods(tiny_world, tmp_path):
    runs = {}
    for method in ("baseline", "rs_rp"):
        spec = trial_spec(tiny_world, tmp_path, method, seed=7)
        tokenizer, model = load_model(spec.model, 2, spec.seed)
        method_obj = build_method(method, dict(spec.method_options))
        runs[method] = TrainingRun(model, method_obj, prepare_for(spec, tokenizer, method_obj), spec.training,
                                   seed=7, eval_every=2, pad_id=0, device=torch.device("cpu"))
    base, smooth = runs["baseline"], runs["rs_rp"]
    torch.testing.assert_close(base.model.classifier.weight, smooth.model.classifier.weight)
    for epoch in range(2):
        assert all(np.array_equal(a, b) for a, b in zip(base.epoch_batches(epoch), smooth.epoch_batches(epoch)))
    _, other = load_model(str(tiny_world.model_dir), 2, seed=8)
    assert not torch.equal(other.classifier.weight, base.model.classifier.weight)


def test_bf16_autocast_path_runs_on_cpu(tiny_world, tmp_path):
    spec = trial_spec(tiny_world, tmp_path, "adv", training={"precision": "bf16", "epochs": 1})
    dtypes = set()
    original = TrainingRun.step_context

    def recording(self, indices):
        ctx = original(self, indices)
        self.model.classifier.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))
        return ctx

    TrainingRun.step_context = recording
    try:
        run_trial(spec, lambda m, save: None)
    finally:
        TrainingRun.step_context = original
    metrics, _, info = read_cell(spec)
    assert torch.bfloat16 in dtypes and info["bf16"] is True
    assert metrics.accuracy.between(0, 1).all()
