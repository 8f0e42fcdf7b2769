"""A tiny BERT classifier and a full step context around it, for the methods' own tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from trainables.injection import EmbeddingInjector
from trainables.methods import StepContext


def tiny_model(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


BATCH = (torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 6, 3, 8, 9, 3]]),
         torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]),
         torch.tensor([0, 2]))


def full_context(model, seed: int = 0, weight: float = 1.0, injection: str = "word_embeddings"):
    """(StepContext as the loop builds it, the injector, a counter of forward passes)."""
    input_ids, mask, labels = BATCH
    injector = EmbeddingInjector(model, injection)
    calls = {"forward": 0}

    def logits(delta, detach=False):
        calls["forward"] += 1
        with injector.perturb(delta, detach):
            return model(input_ids=input_ids, attention_mask=mask).logits.float()

    def loss_of(out):
        return F.cross_entropy(out, labels)

    ctx = StepContext(lambda delta: loss_of(logits(delta)), mask.unsqueeze(-1).float(), injector.hidden_size,
                      torch.Generator().manual_seed(seed), logits=logits, loss_of=loss_of, weight=weight)
    return ctx, injector, calls


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
