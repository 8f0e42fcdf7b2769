"""A seed ensemble (trainables.ensemble) must be K one-seed trials, only faster: the equivalence oracle.

The synthetic world's model has no dropout, so a one-seed trial is a deterministic function of its seed, and
member k of an ensemble must reproduce it: the same training losses at every evaluation, the same dev
accuracies, the same best update, the same weights and the same test predictions (fp32, to 1e-5), for every
method (the registry's, so a new method file is checked here too). The settings make the shared batch do real work: micro-batches of 7 over 48 pairs
put a short micro-batch at a different place in each seed's epoch (filler rows), two micro-batches are
accumulated per update, and the clipping limit is far below the gradients' norm, so clipping fires on every
update and must be each member's own.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trial_helpers import trial_spec
from trainables.ensemble import EnsembleRun, NotVectorizable
from trainables.loop import TrainingRun, epoch_batches
from trainables.methods import DESCRIPTORS, build_method
from trainables import results
from trainables.results import block_metrics
from trainables.trial import load_model, prepare_for, run_seed_block, run_trial

CPU = torch.device("cpu")
SEEDS = (0, 1, 2)
TRAINING = {"per_device_batch_size": 7, "gradient_accumulation": 2, "max_grad_norm": 0.1}
METHODS = tuple(DESCRIPTORS)  # the paper's five and those from the literature (FreeLB, R3F)
OPTIONS = {"freelb": {"epsilon": 0.3}, "r3f": {"epsilon": 0.1}}  # r3f: noise large enough to matter here


class Killed(Exception):
    pass


def killed_at_second_evaluation(checkpoint):
    """An ensemble's report that saves a checkpoint at the second evaluation, then dies like a killed worker."""
    def report(metrics, save):
        if metrics[0]["evaluation"] == 2:
            checkpoint.mkdir()
            save(checkpoint)
            raise Killed

    return report


def member_parts(world, root, method_name, seed, training=TRAINING):
    spec = trial_spec(world, root, method=method_name, seed=seed, training=training)
    if method_name in OPTIONS:
        spec = replace(spec, method_options={**spec.method_options, **OPTIONS[method_name]})
    tokenizer, model = load_model(spec.model, 2, seed)
    method = build_method(spec.method, {**spec.method_options, "cache_dir": spec.cache_dir})
    return spec, tokenizer, model, method, prepare_for(spec, tokenizer, method)


def one_seed(world, root, method_name, seed, training=TRAINING):
    spec, tokenizer, model, method, data = member_parts(world, root, method_name, seed, training)
    run = TrainingRun(model, method, data, spec.training, seed=seed, eval_every=spec.eval_every,
                      pad_id=tokenizer.pad_token_id or 0, device=CPU)
    reports = []
    run.train(lambda metrics, save: reports.append(metrics))
    run.restore_best()
    return run, reports, {name: run.predict(split) for name, split in data.tests.items()}


def ensemble(world, root, method_name, seeds=SEEDS, training=TRAINING):
    parts = [member_parts(world, root, method_name, seed, training) for seed in seeds]
    spec, tokenizer, _, method, _ = parts[0]
    return EnsembleRun([p[2] for p in parts], method, [p[4] for p in parts], spec.training, seeds=seeds,
                       eval_every=spec.eval_every, pad_id=tokenizer.pad_token_id or 0, device=CPU), parts[0][4]


def test_the_settings_put_filler_rows_and_a_short_batch_in_different_places(tiny_world, tmp_path):
    """Guards the oracle below: its settings must exercise filler rows, or padding across members goes untested."""
    run, data = ensemble(tiny_world, tmp_path, "baseline")
    assert len(data.train) % TRAINING["per_device_batch_size"]
    short = [[i for i, b in enumerate(epoch_batches(data.train, run.training, seed, 0)) if len(b) < 7]
             for seed in SEEDS]
    assert len({tuple(s) for s in short}) > 1, short


@pytest.mark.parametrize("method_name, grouping", [*((m, True) for m in METHODS), ("rs_rp", "shared"),
                                                   ("r3f", "shared")])
def test_each_member_is_its_one_seed_trial(tiny_world, tmp_path, method_name, grouping):
    training = {**TRAINING, "length_grouping": grouping}
    run, data = ensemble(tiny_world, tmp_path / "ensemble", method_name, training=training)
    reports = []
    run.train(lambda metrics, save: reports.append(metrics))
    run.restore_best()
    predictions = {name: run.predict(split) for name, split in data.tests.items()}
    assert len(reports) >= 3
    for k, seed in enumerate(SEEDS):
        alone, alone_reports, alone_predictions = one_seed(tiny_world, tmp_path / f"s{seed}", method_name, seed,
                                                           training)
        member_reports = [r[k] for r in reports]
        assert [r["train_loss"] for r in member_reports] == pytest.approx(
            [r["train_loss"] for r in alone_reports], abs=1e-5)
        for key in ("evaluation", "update", "dev_accuracy", "best_dev_accuracy", "best_update", "progress"):
            assert [r[key] for r in member_reports] == [r[key] for r in alone_reports], key
        assert run.states[k].history == [pytest.approx(h, abs=1e-5) for h in alone.state.history]
        weights = run.member_weights(k)
        for name, value in alone.model.state_dict().items():
            torch.testing.assert_close(weights[name], value, atol=1e-5, rtol=1e-5, msg=name)
        for name, expected in alone_predictions.items():
            np.testing.assert_array_equal(predictions[name][k], expected, err_msg=str(name))
    # the members did differ: an ensemble of one model copied K times would pass the checks above only by luck
    assert len({tuple(r["train_loss"] for r in (rep[k] for rep in reports)) for k in range(len(SEEDS))}) == len(SEEDS)


def test_clipping_is_each_members_own(tiny_world, tmp_path):
    """On one update where one member's gradient is under the limit and the others' over it, each member's step
    sees min(its own norm, limit): clipping over the stacked gradient would scale them all alike."""
    limit = TRAINING["max_grad_norm"]
    seen = {}
    for name, max_grad_norm in (("clipped", limit), ("free", 1e9)):
        run, _ = ensemble(tiny_world, tmp_path / name, "baseline", training={**TRAINING, "max_grad_norm": max_grad_norm})

        def norms(optimizer, args, kwargs, run=run, name=name):
            grads = [p.grad for p in run.parameters if p.grad is not None]
            seen[name] = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0).tolist()

        run.optimizer.register_step_pre_hook(norms)
        run.update([epoch_batches(d.train, run.training, seed, 0)[:2] for d, seed in zip(run.data, SEEDS)])
    assert min(seen["free"]) < limit < max(seen["free"]), seen  # the case that tells the two apart
    assert seen["clipped"] == pytest.approx([min(n, limit) for n in seen["free"]], rel=1e-4)


def test_a_killed_ensemble_resumes_to_the_uninterrupted_result(tiny_world, tmp_path):
    whole, data = ensemble(tiny_world, tmp_path / "whole", "adv")
    uninterrupted = []
    whole.train(lambda metrics, save: uninterrupted.append(metrics))
    whole.restore_best()

    killed, _ = ensemble(tiny_world, tmp_path / "killed", "adv")
    checkpoint = tmp_path / "checkpoint"
    kill_at_second_evaluation = killed_at_second_evaluation(checkpoint)
    with pytest.raises(Killed):
        killed.train(kill_at_second_evaluation)
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["seeds"] == list(SEEDS) and [m["update"] for m in state["members"]] == [4, 4, 4]
    resumed_run, _ = ensemble(tiny_world, tmp_path / "resumed", "adv")
    resumed_run.load(checkpoint)
    resumed = []
    resumed_run.train(lambda metrics, save: resumed.append(metrics))
    resumed_run.restore_best()
    assert resumed == uninterrupted[2:]  # every member's losses and dev accuracies after the kill, exactly
    for split in data.tests.values():
        np.testing.assert_array_equal(resumed_run.predict(split), whole.predict(split))


def test_a_checkpoint_of_other_seeds_is_refused(tiny_world, tmp_path):
    run, _ = ensemble(tiny_world, tmp_path / "a", "baseline")
    run.save(tmp_path)
    other, _ = ensemble(tiny_world, tmp_path / "b", "baseline", seeds=(0, 1, 3))
    with pytest.raises(ValueError, match=r"state\.json: a checkpoint of seeds \[0, 1, 2\].*\[0, 1, 3\]"):
        other.load(tmp_path)


def test_a_method_that_says_it_does_not_vectorize_is_refused(tiny_world, tmp_path, monkeypatch):
    """A plugin whose loss mixes the rows of a batch (a plain .mean(), a squared loss) says vectorizes=False."""
    from trainables import ensemble as module

    monkeypatch.setattr(module, "DESCRIPTORS", {**module.DESCRIPTORS,
                                                 "adv": replace(module.DESCRIPTORS["adv"], vectorizes=False)})
    with pytest.raises(NotVectorizable, match="'adv' does not train as a seed ensemble"):
        ensemble(tiny_world, tmp_path, "adv")


def test_members_with_training_sets_of_different_sizes_are_refused(tiny_world, tmp_path):
    """Their epochs would not line up (e.g. per-seed augmentation that changed the number of pairs)."""
    plain = member_parts(tiny_world, tmp_path, "baseline", 0)
    copies = member_parts(tiny_world, tmp_path, "rs_syntax", 1)  # m = 2 copies of each pair
    with pytest.raises(NotVectorizable, match=r"differ in size.*\[48, 96\]"):
        EnsembleRun([plain[2], copies[2]], plain[3], [plain[4], copies[4]], plain[0].training, seeds=(0, 1),
                    eval_every=2, pad_id=0, device=CPU)


# ------------------------------------------------------------------------- a seed block's result files
def read_cell(spec):
    directory = results.cell_dir(spec.experiment_dir, spec.config_id, spec.seed)
    info = json.loads(Path(directory, "trial.json").read_text())
    return (pd.read_parquet(f"{directory}/metrics.parquet"), pd.read_parquet(f"{directory}/predictions.parquet"),
            info)


def block_spec(world, root, method_name, seeds=SEEDS):
    return replace(trial_spec(world, root, method=method_name, seed=seeds[0], training=TRAINING), seeds=seeds)


@pytest.mark.parametrize("method_name", ["adv", "rs_da"])
def test_a_seed_block_writes_each_members_one_seed_files(tiny_world, tmp_path, method_name):
    block = block_spec(tiny_world, tmp_path / "block", method_name)
    reports = []
    finals = run_seed_block(block, lambda metrics, save: reports.append(metrics))
    for k, member in enumerate(block.members()):
        alone = replace(member, experiment_dir=str(tmp_path / f"alone{k}" / "experiment"))
        final = run_trial(alone, lambda metrics, save: None)
        assert finals[k] == pytest.approx(final, abs=1e-9)
        (metrics, predictions, info), (alone_metrics, alone_predictions, alone_info) = read_cell(member), read_cell(alone)
        pd.testing.assert_frame_equal(metrics, alone_metrics)
        pd.testing.assert_frame_equal(predictions,
                                      alone_predictions)
        assert info["ensemble"] == {"seeds": list(SEEDS)} and info["timings"]["ensemble_size"] == len(SEEDS)
        assert info["spec"] == {**alone_info["spec"], "experiment_dir": member.experiment_dir}
        assert info["dev_history"] == [pytest.approx(h, abs=1e-5) for h in alone_info["dev_history"]]
        assert info["best_update"] == alone_info["best_update"] and info["config_id"] == alone_info["config_id"]
    assert len(reports) >= 3 and all(len(r) == len(SEEDS) for r in reports)


def test_a_killed_seed_block_resumes_without_the_member_that_finished_meanwhile(tiny_world, tmp_path):
    """A member found finished (written before a crash, or a search seed the final stage reuses) is neither trained
    again nor rewritten; the others resume from their part of the block's checkpoint."""
    whole = block_spec(tiny_world, tmp_path / "whole", "rs_rp")
    uninterrupted = []
    run_seed_block(whole, lambda metrics, save: uninterrupted.append(metrics))

    killed = block_spec(tiny_world, tmp_path / "killed", "rs_rp")
    checkpoint = tmp_path / "checkpoint"
    kill_at_second_evaluation = killed_at_second_evaluation(checkpoint)
    with pytest.raises(Killed):
        run_seed_block(killed, kill_at_second_evaluation)
    members = killed.members()
    assert not any(results.is_complete(results.cell_dir(m.experiment_dir, m.config_id, m.seed)) for m in members)
    # the middle member's cell finished before (say, written just before a crash): its files stay as they are
    first = replace(members[1], experiment_dir=killed.experiment_dir)
    run_trial(first, lambda metrics, save: None)
    finished = results.cell_dir(first.experiment_dir, first.config_id, first.seed)
    stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(finished).iterdir()}
    resumed = []
    run_seed_block(killed, lambda metrics, save: resumed.append(metrics), checkpoint_dir=checkpoint)
    # seeds 0 and 2 went on alone, from their slices of the three-seed checkpoint, exactly where they were
    assert [[m["seed"] for m in r] for r in resumed] == [[0, 2]] * len(resumed)
    assert resumed == [[u[0], u[2]] for u in uninterrupted[2:]]
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(finished).iterdir()} == stamps
    assert "ensemble" not in read_cell(first)[2]  # still the one-seed trial's files
    assert read_cell(members[0])[2]["ensemble"] == {"seeds": [0, 2]}
    for member, reference in zip(members, whole.members()):
        pd.testing.assert_frame_equal(read_cell(member)[0],
                                      read_cell(reference)[0])


def test_block_metrics_average_the_members_and_keep_each_under_its_seed():
    members = [{"evaluation": 2, "update": 4, "progress": 0.5, "dev_accuracy": 0.5, "best_dev_accuracy": 0.75,
                "train_loss": 0.25},
               {"evaluation": 2, "update": 4, "progress": 0.5, "dev_accuracy": 1.0, "best_dev_accuracy": 1.0,
                "train_loss": 0.75}]
    out = block_metrics(members, (7, 3))
    assert out == {"evaluation": 2.0, "update": 4.0, "progress": 0.5, "dev_accuracy": 0.75, "best_dev_accuracy": 0.875,
                   "train_loss": 0.5,
                   "seed/7/dev_accuracy": 0.5, "seed/7/best_dev_accuracy": 0.75, "seed/7/train_loss": 0.25,
                   "seed/3/dev_accuracy": 1.0, "seed/3/best_dev_accuracy": 1.0, "seed/3/train_loss": 0.75}


@pytest.mark.parametrize("seeds, message", [((1, 0), "start with its seed 0"), ((0, 0), "distinct")])
def test_a_seed_block_names_distinct_seeds_its_own_first(tiny_world, tmp_path, seeds, message):
    with pytest.raises(ValueError, match=message):
        replace(trial_spec(tiny_world, tmp_path), seeds=seeds)


def test_a_seed_block_that_runs_out_of_gpu_memory_says_which_settings_decide_it(tiny_world, tmp_path, monkeypatch):
    from trainables import ensemble as module

    def out_of_memory(self, report):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(module.EnsembleRun, "train", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"a seed ensemble of 3 models .* lower "
                                                          r"execution\.seeds_per_trial.*resources\.gpu.*2\.00 GiB"):
        run_seed_block(block_spec(tiny_world, tmp_path, "baseline"), lambda metrics, save: None)
    members = block_spec(tiny_world, tmp_path, "baseline").members()
    assert not any(results.is_complete(results.cell_dir(m.experiment_dir, m.config_id, m.seed)) for m in members)
