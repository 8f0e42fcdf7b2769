"""Each method's perturbation obeys its definition (Sections 3.2-3.3 of the paper)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from trainables.methods import (
    Adversarial,
    Baseline,
    EmbeddingInjector,
    RandomPerturbation,
    StepContext,
    build_method,
    pgd_linf,
    uniform_linf,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


@pytest.fixture
def batch():
    input_ids = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 6, 3, 8, 9, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    return input_ids, mask, torch.tensor([0, 2])


def context(model, batch, injection="word_embeddings", seed=0):
    input_ids, mask, labels = batch
    injector = EmbeddingInjector(model, injection)

    def forward(delta):
        with injector.perturb(delta):
            return F.cross_entropy(model(input_ids=input_ids, attention_mask=mask).logits, labels)

    generator = torch.Generator().manual_seed(seed)
    return StepContext(forward, mask.unsqueeze(-1).float(), injector.hidden_size, generator), injector


def test_uniform_linf_within_ball_zero_on_padding_and_fresh_each_step(model, batch):
    ctx, _ = context(model, batch)
    first, second = uniform_linf(ctx, 0.3), uniform_linf(ctx, 0.3)
    assert first.shape == (2, 7, 16) and first.dtype == torch.float32
    assert first.abs().max() <= 0.3 and first.abs().max() > 0.25  # fills the ball
    assert torch.all(first[0, 5:] == 0)  # padding of example 0
    assert not torch.equal(first, second)  # a fresh draw at every step
    again, _ = context(model, batch, seed=0)
    assert torch.equal(uniform_linf(again, 0.3), first)  # the seed fixes the noise


def test_pgd_delta_within_ball_zero_on_padding_and_increases_loss(model, batch):
    ctx, _ = context(model, batch)
    clean = ctx.forward(None).item()
    delta = pgd_linf(ctx, epsilon=0.5, steps=5, alpha=0.2, random_start=False)
    assert delta.abs().max() <= 0.5 + 1e-7
    assert torch.all(delta[0, 5:] == 0)
    assert not delta.requires_grad
    assert ctx.forward(delta).item() > clean  # gradient ascent found a worse perturbation
    assert all(p.grad is None for p in model.parameters())  # the inner max leaves no parameter gradient


def test_adversarial_default_is_fast_variant(model, batch):
    ctx, _ = context(model, batch)
    method = Adversarial(epsilon=0.1)
    assert method.steps == 1 and method.random_start and method.step_size == pytest.approx(0.125)
    assert method.describe()["pgd_alpha"] == pytest.approx(0.125)
    loss = method.loss(ctx)
    loss.backward()
    assert any(p.grad is not None for p in model.parameters())


def test_injector_adds_delta_at_word_embedding_lookup(model, batch):
    input_ids, mask, _ = batch
    ctx, injector = context(model, batch)
    delta = uniform_linf(ctx, 0.2)
    with injector.perturb(delta):
        perturbed = model(input_ids=input_ids, attention_mask=mask).logits
    injector.remove()
    embeds = model.get_input_embeddings()(input_ids) + delta
    expected = model(inputs_embeds=embeds, attention_mask=mask).logits
    torch.testing.assert_close(perturbed, expected)


def test_injector_after_layernorm_adds_to_embedding_output(model, batch):
    input_ids, mask, _ = batch
    ctx, injector = context(model, batch, injection="embeddings_output")
    seen = {}

    def record_encoder_input(module, args, kwargs):
        seen.setdefault("x", args[0] if args else kwargs["hidden_states"])

    model.bert.encoder.register_forward_pre_hook(record_encoder_input, with_kwargs=True)
    delta = uniform_linf(ctx, 0.2)
    with injector.perturb(delta):
        model(input_ids=input_ids, attention_mask=mask)
    perturbed_input = seen.pop("x")
    model(input_ids=input_ids, attention_mask=mask)
    torch.testing.assert_close(perturbed_input - seen["x"], delta)


def test_injector_without_delta_changes_nothing(model, batch):
    input_ids, mask, _ = batch
    before = model(input_ids=input_ids, attention_mask=mask).logits
    EmbeddingInjector(model)
    torch.testing.assert_close(model(input_ids=input_ids, attention_mask=mask).logits, before)


def test_rs_rp_loss_uses_noise_generator(model, batch):
    ctx1, _ = context(model, batch, seed=1)
    ctx2, _ = context(model, batch, seed=1)
    method = RandomPerturbation(epsilon=1.0)
    assert method.loss(ctx1).item() == method.loss(ctx2).item()
    assert method.loss(ctx1).item() != Baseline().loss(ctx1).item()


def test_registry_builds_every_method_and_refuses_unknown(tmp_path):
    table = tmp_path / "syn.json"
    table.write_text('{"good": ["fine"]}')
    assert build_method("baseline", {}).name == "baseline"
    assert build_method("adv", {"epsilon": 0.1, "pgd_steps": 3}).steps == 3
    assert build_method("rs_rp", {"epsilon": 0.1}).injection == "word_embeddings"
    assert build_method("rs_da", {"m": 4, "synonyms": str(table)}).augmentation.m == 4
    assert build_method("rs_syntax", {"m": 2}).augmentation.cache_descriptor == {"swap_probability": 0.1}
    with pytest.raises(ValueError, match="unknown method 'free_lb'; allowed: baseline, adv"):
        build_method("free_lb", {})
    with pytest.raises(ValueError, match="unknown injection point"):
        EmbeddingInjector(torch.nn.Module(), "pooler")
