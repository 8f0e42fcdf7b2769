"""The loop's contract with methods: logits under a perturbation, and methods that run their own backward."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from trainables.loop import TrainingRun
from trainables.methods import Baseline, Method, StepContext, build_method
from trainables.trial import load_model, prepare_for

from trial_helpers import trial_spec


class HalvesTwice(Method):
    """Plain fine-tuning written as two backward passes of half the loss each: the same update."""

    name: ClassVar[str] = "halves_twice"
    runs_backward: ClassVar[bool] = True

    def loss(self, ctx: StepContext) -> Any:
        for _ in range(2):
            half = ctx.loss_of(ctx.logits(None)) / 2
            ctx.backward(half)
        return half * 2


def one_update(world, root, method: Method) -> tuple[TrainingRun, float]:
    spec = trial_spec(world, root, "baseline", seed=3)
    tokenizer, model = load_model(spec.model, 2, spec.seed)
    run = TrainingRun(model, method, prepare_for(spec, tokenizer, build_method("baseline", {})), spec.training,
                      seed=3, eval_every=100, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"))
    group = run.epoch_batches(0)[:spec.training.gradient_accumulation]
    return run, run.update(group)


def test_a_method_that_runs_its_own_backward_gets_the_weighted_gradient_once(tiny_world, tmp_path):
    plain, plain_loss = one_update(tiny_world, tmp_path, Baseline())
    own, own_loss = one_update(tiny_world, tmp_path, HalvesTwice())
    assert own_loss == pytest_approx(plain_loss)
    for (name, a), (_, b) in zip(plain.model.named_parameters(), own.model.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    moved = [not torch.equal(a, b) for a, b in zip(plain.model.parameters(), load_model(
        trial_spec(tiny_world, tmp_path, "baseline", seed=3).model, 2, 3)[1].parameters())]
    assert any(moved)  # the update did change the weights (the comparison above is not vacuous)


def test_logits_and_loss_of_agree_with_forward_and_the_weight_is_the_micro_batch_share(tiny_world, tmp_path):
    run, _ = one_update(tiny_world, tmp_path, build_method("rs_rp", {"epsilon": 0.1}))  # it sets an injection point
    indices = run.epoch_batches(1)[0]
    ctx = run.step_context(indices)
    logits = ctx.logits(None)
    assert logits.dtype == torch.float32 and logits.shape == (len(indices), 2)
    assert ctx.loss_of(logits).item() == ctx.forward(None).item() and ctx.weight == 1.0
    delta = torch.full(ctx.delta_shape, 0.5) * ctx.mask
    assert not torch.equal(ctx.logits(delta), logits)  # the perturbation reaches the logits
    weights = []
    run.method = type("Spy", (Baseline,), {"loss": lambda self, c: weights.append(c.weight) or c.forward(None)})()
    run.update([indices, indices[:3]])
    np.testing.assert_allclose(weights, [len(indices) / (len(indices) + 3), 3 / (len(indices) + 3)])


def pytest_approx(value: float) -> Any:
    import pytest

    return pytest.approx(value, rel=1e-6)


def test_a_detached_pass_sends_no_gradient_below_the_injection_point():
    from method_fixtures import full_context, tiny_model

    model = tiny_model()
    ctx, _, _ = full_context(model)
    delta = torch.full(ctx.delta_shape, 0.1) * ctx.mask
    ctx.loss_of(ctx.logits(delta, detach=True)).backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is None  # the lookup is below the cut
    assert model.classifier.weight.grad is not None and model.bert.embeddings.LayerNorm.weight.grad is not None
    attached = tiny_model()
    ctx, _, _ = full_context(attached)
    ctx.loss_of(ctx.logits(delta)).backward()
    assert attached.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
