"""FreeLB: K ascent steps on delta, parameter gradients averaged over the K perturbations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.methods import DESCRIPTORS, build_method
from trainables.methods.freelb import FreeLB

from method_fixtures import BATCH, full_context, gradients, tiny_model


def freelb(**changes) -> FreeLB:
    options = {"epsilon": 0.0, "steps": 3, "step_size": 0.1, "init_magnitude": 0.6, "norm": "l2", **changes}
    return build_method("freelb", options)


def reference_gradients(model, method: FreeLB, seed: int) -> tuple[dict[str, torch.Tensor], float]:
    """The authors' loop written out in plain torch: inputs_embeds = word embeddings + delta."""
    input_ids, mask, labels = BATCH
    generator = torch.Generator().manual_seed(seed)
    lengths = mask.sum(1).float()
    delta = (torch.rand(2, 7, 16, generator=generator) * 2 - 1) * mask.unsqueeze(2)
    if method.norm == "l2":
        delta = delta * (method.init_magnitude / torch.sqrt(lengths * 16)).view(-1, 1, 1)
    else:
        delta = delta * method.init_magnitude
    total = 0.0
    for step in range(method.steps):
        delta.requires_grad_()
        embeds = model.bert.embeddings.word_embeddings(input_ids)
        loss = F.cross_entropy(model(inputs_embeds=embeds + delta, attention_mask=mask).logits, labels) / method.steps
        total += loss.item()
        loss.backward()
        if step == method.steps - 1:
            break
        grad = delta.grad.clone().detach()
        p = 2 if method.norm == "l2" else float("inf")
        denorm = torch.clamp(torch.norm(grad.view(2, -1), dim=1, p=p).view(-1, 1, 1), min=1e-8)
        delta = (delta + method.step_size * grad / denorm).detach()
        if method.epsilon > 0 and method.norm == "l2":
            norm = torch.norm(delta.view(2, -1), p=2, dim=1)
            exceed = (norm > method.epsilon).float()
            delta = (delta * (method.epsilon / norm * exceed + (1 - exceed)).view(-1, 1, 1)).detach()
        elif method.epsilon > 0:
            delta = torch.clamp(delta, -method.epsilon, method.epsilon).detach()
        delta = delta * mask.unsqueeze(2)
    return gradients(model), total


@pytest.mark.parametrize("norm, epsilon", [("l2", 0.0), ("l2", 0.05), ("linf", 0.0), ("linf", 0.02)])
def test_parameter_gradients_are_the_average_over_the_k_ascent_steps(norm, epsilon):
    method = freelb(norm=norm, epsilon=epsilon, steps=3, step_size=0.3)
    model = tiny_model()
    ctx, _, calls = full_context(model, seed=4)
    logged = method.loss(ctx).item()
    ours = gradients(model)
    assert calls["forward"] == 3  # K forward (and backward) passes, no extra clean pass
    reference = tiny_model()
    expected, total = reference_gradients(reference, method, seed=4)
    assert logged == pytest.approx(total, rel=1e-6)  # the logged loss: the mean of the K losses
    assert ours.keys() == expected.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_the_micro_batch_weight_scales_the_accumulated_gradient():
    model, other = tiny_model(), tiny_model()
    freelb().loss(full_context(model, seed=1)[0])
    freelb().loss(full_context(other, seed=1, weight=0.25)[0])
    for name, grad in gradients(model).items():
        torch.testing.assert_close(gradients(other)[name], 0.25 * grad, rtol=1e-5, atol=1e-8)


def test_initial_delta_is_zero_on_padding_and_near_init_magnitude():
    ctx, _, _ = full_context(tiny_model(), seed=0)
    l2 = freelb(init_magnitude=0.6).initial_delta(ctx)
    assert torch.all(l2[0, 5:] == 0)
    norms = l2.reshape(2, -1).norm(dim=1)
    assert torch.all(norms < 0.6) and torch.all(norms > 0.6 / math.sqrt(3) * 0.7)  # E|U(-1,1)|^2 = 1/3
    linf = freelb(norm="linf", init_magnitude=0.2).initial_delta(ctx)
    assert linf.abs().max() <= 0.2 and linf.abs().max() > 0.15
    assert torch.all(freelb(init_magnitude=0.0).initial_delta(ctx) == 0)


def test_ascent_step_is_normalised_and_projected_onto_the_ball():
    ctx, _, _ = full_context(tiny_model(), seed=0)
    delta, grad = torch.zeros(2, 7, 16), torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(3))
    grad = grad * ctx.mask
    moved = freelb(step_size=5.0, epsilon=0.0).ascend(delta, grad, ctx)
    torch.testing.assert_close(moved.reshape(2, -1).norm(dim=1), torch.tensor([5.0, 5.0]))  # unbounded
    capped = freelb(step_size=5.0, epsilon=1.5).ascend(delta, grad, ctx)
    torch.testing.assert_close(capped.reshape(2, -1).norm(dim=1), torch.tensor([1.5, 1.5]))
    torch.testing.assert_close(capped / 1.5, moved / 5.0)  # the same direction
    box = freelb(norm="linf", step_size=5.0, epsilon=0.3).ascend(delta, grad, ctx)
    assert box.abs().max() <= 0.3 and torch.all(box[0, 5:] == 0)


def test_descriptor_sweeps_epsilon_allows_zero_and_costs_k_passes():
    described = DESCRIPTORS["freelb"]
    assert described.grid_axis == "epsilon" and described.display == "FreeLB"
    grid = described.grid(described.options(epsilon=[0, 0.5], steps=2))
    assert [p["epsilon"] for p in grid] == [0.0, 0.5] and grid[0]["steps"] == 2
    assert described.cost(grid[0]).passes == 2.0
    with pytest.raises(ValueError, match=r"epsilon takes finite numbers >= 0"):
        described.options(epsilon=[-1.0])
    with pytest.raises(ValueError, match="norm"):
        described.options(epsilon=[0.0], norm="l1")


def test_a_sweep_takes_freelb_by_its_file_alone():
    from sweeper import plan as planning
    from sweeper.schema import Sweep

    sweep = Sweep.model_validate({"experiment": "x", "task": "pawsx",
                                  "methods": {"baseline": {}, "freelb": {"epsilon": [0, 0.3], "steps": 2}}})
    configs = [(method, options) for method, options, _ in planning.configurations(sweep)]
    assert [c[0] for c in configs] == ["baseline", "freelb", "freelb"]
    assert [o["epsilon"] for _, o in configs[1:]] == [0.0, 0.3] and configs[1][1]["steps"] == 2
    sizes, training = planning.Sizes(train=1000, dev=0, test=0), planning.training_for(sweep, sweep.methods.baseline)
    from sweeper.throughput import ASSUMED

    plain = planning.trial_hours("baseline", {}, training, sizes, 0, sweep, ASSUMED)
    assert planning.trial_hours("freelb", configs[1][1], training, sizes, 0, sweep, ASSUMED) == pytest.approx(2 * plain)
    with pytest.raises(ValueError, match=r"methods\.freelb\.norm"):
        Sweep.model_validate({"experiment": "x", "task": "pawsx", "methods": {"freelb": {"epsilon": 0, "norm": "l1"}}})
