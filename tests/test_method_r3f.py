"""R3F: cross-entropy plus lambda times the symmetric KL between clean and noisy output distributions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.methods import DESCRIPTORS, build_method
from trainables.methods.r3f import symmetric_kl

from method_fixtures import BATCH, full_context, gradients, tiny_model


def test_symmetric_kl_on_a_hand_computed_pair():
    clean, noisy = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # p = (.5, .5), q = (.75, .25)
    kl_pq = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl_qp = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert symmetric_kl(noisy, clean).item() == pytest.approx(kl_pq + kl_qp, rel=1e-6)  # 0.274653
    two = torch.cat([clean, clean]), torch.cat([noisy, clean])
    assert symmetric_kl(two[1], two[0]).item() == pytest.approx((kl_pq + kl_qp) / 2, rel=1e-6)  # batch mean
    assert symmetric_kl(clean, clean).item() == 0.0


def test_defaults_are_fairseqs_and_the_descriptor_sweeps_epsilon():
    method = build_method("r3f", {})
    assert (method.epsilon, method.r3f_lambda, method.noise) == (1e-5, 1.0, "uniform")  # fairseq's code
    described = DESCRIPTORS["r3f"]
    assert described.grid_axis == "epsilon" and described.cost(described.point({})).passes == 2.0
    with pytest.raises(ValueError, match="noise"):
        described.options(noise="gumbel")


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_noise_has_its_scale_is_seeded_and_zero_on_padding(noise):
    method = build_method("r3f", {"epsilon": 0.5, "noise": noise})
    ctx = full_context(tiny_model(), seed=2)[0]
    draw = method.sample_noise(ctx)
    assert torch.all(draw[0, 5:] == 0)
    real = draw[ctx.mask.expand_as(draw) == 1]
    if noise == "normal":
        assert real.std().item() == pytest.approx(0.5, rel=0.15)
    else:
        assert real.abs().max() <= 0.5 and real.abs().max() > 0.45
    assert torch.equal(method.sample_noise(full_context(tiny_model(), seed=2)[0]), draw)


def test_loss_and_gradient_are_ce_plus_lambda_symmetric_kl_as_fairseq_computes_them():
    method = build_method("r3f", {"epsilon": 0.3, "r3f_lambda": 2.0, "noise": "normal"})
    model = tiny_model()
    ctx, _, calls = full_context(model, seed=5)
    loss = method.loss(ctx)
    loss.backward()
    ours = gradients(model)
    assert calls["forward"] == 2

    reference = tiny_model()
    input_ids, mask, labels = BATCH
    noise = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(5)) * 0.3 * mask.unsqueeze(-1)
    embeds = reference.bert.embeddings.word_embeddings(input_ids)
    clean = reference(inputs_embeds=embeds, attention_mask=mask).logits
    noisy = reference(inputs_embeds=reference.bert.embeddings.word_embeddings(input_ids).detach() + noise,
                      attention_mask=mask).logits  # fairseq: token_embeddings.detach().clone() + noise
    kl = (F.kl_div(F.log_softmax(noisy, -1), F.softmax(clean, -1), reduction="sum")
          + F.kl_div(F.log_softmax(clean, -1), F.softmax(noisy, -1), reduction="sum")) / 2
    expected = F.cross_entropy(clean, labels) + 2.0 * kl
    assert kl.item() > 0 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    expected.backward()
    for name, grad in gradients(reference).items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_a_sweep_takes_r3f_by_its_file_alone_with_fairseqs_epsilon_by_default():
    from sweeper import plan as planning
    from sweeper.schema import Sweep

    sweep = Sweep.model_validate({"experiment": "x", "task": "pawsx", "methods": {"r3f": {}}})
    ((method, options, _),) = planning.configurations(sweep)
    assert method == "r3f" and options == {"epsilon": 1e-5, "injection": "word_embeddings", "r3f_lambda": 1.0,
                                           "noise": "uniform"}
    searched = Sweep.model_validate({"experiment": "x", "task": "pawsx", "methods": {"r3f": {}},
                                     "search": {"algorithm": "optuna", "num_samples": 2,
                                                "space": {"epsilon": {"loguniform": [1e-6, 1e-3]}}}})
    assert searched.methods.r3f.epsilon == [1e-5]  # the default grid gives way to the sampled space
    with pytest.raises(ValueError, match="given as a grid and also searched by search.space.epsilon"):
        Sweep.model_validate({"experiment": "x", "task": "pawsx", "methods": {"r3f": {"epsilon": [1e-5]}},
                              "search": {"algorithm": "optuna", "num_samples": 2,
                                         "space": {"epsilon": {"loguniform": [1e-6, 1e-3]}}}})
