"""What one optimizer update and the choice of tested weights must be, held against plain torch.

A mutation check found that removing each of these left every other test green: micro-batches accumulated
into one update (weights by size, gradients zeroed between updates and only then), gradient clipping that
actually fires, and the best-by-dev weights (not the last) being the ones tested. The synthetic world's model
has no dropout, so a run is a deterministic function of its batches.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from trial_helpers import trial_spec
from trainables import results
from trainables.loop import TrainingRun
from trainables.methods import build_method
from trainables.trial import load_model, prepare_for, run_trial

CPU = torch.device("cpu")


def training_run(world, root, **training):
    spec = trial_spec(world, root, training={"epochs": 2, **training})
    tokenizer, model = load_model(spec.model, 2, spec.seed)
    method = build_method("baseline", {})
    run = TrainingRun(model, method, prepare_for(spec, tokenizer, method), spec.training, seed=spec.seed,
                      eval_every=spec.eval_every, pad_id=tokenizer.pad_token_id or 0, device=CPU)
    return run


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def assert_same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-5, msg=name)


def reference_updates(run: TrainingRun, batches: list[np.ndarray], max_grad_norm: float) -> dict[str, torch.Tensor]:
    """The same updates as run_classify.py's loop makes them, in plain torch, on a copy of the run's model."""
    model = copy.deepcopy(run.model)
    params = [p for p in model.parameters() if p.requires_grad]
    t = run.training
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, eps=t.adam_epsilon, weight_decay=t.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, run.total_updates)
    for indices in batches:
        batch = run.batch(run.data.train, indices)
        labels = batch.pop("labels")
        F.cross_entropy(model(**batch).logits, labels).backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return parameters(model)


@pytest.mark.parametrize("split", [(4, 4), (5, 3), (2, 2, 2, 2)], ids=["2x4", "5+3", "4x2"])
def test_accumulated_micro_batches_make_the_update_of_one_batch(tiny_world, tmp_path, split):
    """Two updates of 8 examples each, split into micro-batches: the loop must weight each by its size, zero
    the gradients after each update and never between its micro-batches."""
    run = training_run(tiny_world, tmp_path, per_device_batch_size=split[0], gradient_accumulation=len(split))
    order = np.random.default_rng(0).permutation(len(run.data.train))
    batches = [order[:8], order[8:16]]
    expected = reference_updates(run, batches, run.training.max_grad_norm)
    before = parameters(run.model)
    for batch in batches:
        run.update(list(np.split(batch, np.cumsum(split)[:-1])))
    assert not all(torch.equal(before[k], v) for k, v in parameters(run.model).items())  # it did move
    assert_same_parameters(parameters(run.model), expected)


def test_clipping_bounds_the_gradient_every_update_sees(tiny_world, tmp_path):
    """With a limit far below the gradients' norm, every optimizer step sees a gradient of exactly that norm,
    and the trajectory is plain torch's clipped one (Adam hides a constant scale, not a varying one)."""
    limit = 1e-3
    run = training_run(tiny_world, tmp_path, gradient_accumulation=2, per_device_batch_size=4, max_grad_norm=limit)
    unclipped = training_run(tiny_world, tmp_path / "free", gradient_accumulation=2, per_device_batch_size=4,
                             max_grad_norm=1e9)
    seen = {"clipped": [], "free": []}

    def spy(r, key):
        def norm(optimizer, args, kwargs):
            grads = [p.grad for p in r.parameters if p.grad is not None]
            seen[key].append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        r.optimizer.register_step_pre_hook(norm)

    spy(run, "clipped")
    spy(unclipped, "free")
    order = np.random.default_rng(1).permutation(len(run.data.train))
    batches = [order[:8], order[8:16], order[16:24]]
    expected = reference_updates(run, batches, limit)
    for batch in batches:
        run.update([batch[:4], batch[4:]])
        unclipped.update([batch[:4], batch[4:]])
    assert min(seen["free"]) > 10 * limit  # the limit is far below the gradients it meets
    assert seen["clipped"] == pytest.approx([limit] * 3, rel=1e-4)
    assert_same_parameters(parameters(run.model), expected)
    free = parameters(unclipped.model)
    assert any(not torch.allclose(free[k], v, atol=1e-6) for k, v in parameters(run.model).items())


def test_a_dev_score_that_peaks_early_is_the_one_whose_weights_are_tested(tiny_world, tmp_path, monkeypatch):
    """Dev accuracy scripted to peak at the 2nd of several evaluations: the weights the test sets are predicted
    with must be those of that evaluation, not the last ones, and the results must say which update it was."""
    from trainables import trial

    scripted = iter([0.50, 0.90, 0.60, 0.55, 0.52, 0.51, 0.40, 0.30, 0.20, 0.10, 0.05, 0.01])
    monkeypatch.setattr(TrainingRun, "accuracy", lambda self, split: next(scripted))
    at_evaluation, tested = [], []
    evaluate_and_report, evaluate_tests = TrainingRun.evaluate_and_report, trial.evaluate_tests

    def recording(self, report):
        at_evaluation.append((self.state.update, parameters(self.model)))
        evaluate_and_report(self, report)

    def testing(run, data, identity):
        tested.append(parameters(run.model))
        return evaluate_tests(run, data, identity)

    monkeypatch.setattr(TrainingRun, "evaluate_and_report", recording)
    monkeypatch.setattr(trial, "evaluate_tests", testing)
    spec = trial_spec(tiny_world, tmp_path, training={"epochs": 3, "eval_every": 2})
    run_trial(spec, lambda metrics, save: None)
    assert len(at_evaluation) >= 4 and len(tested) == 1
    (best_update, best), (_, last) = at_evaluation[1], at_evaluation[-1]
    assert any(not torch.equal(best[k], last[k]) for k in best)  # training went on after the peak
    assert_same_parameters(tested[0], best, atol=0)
    directory = results.cell_dir(spec.experiment_dir, spec.config_id, spec.seed)
    metrics = pd.read_parquet(f"{directory}/metrics.parquet")
    assert set(metrics.best_step) == {best_update}
