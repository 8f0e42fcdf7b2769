"""A tiny BERT encoder directory, loadable like mBERT: config, weights and a trained tokenizer.

Weights follow BERT's usual init (normal(0, initializer_range) for linear and embedding
matrices, zero biases, unit LayerNorm), drawn from the world's numpy generator rather than
torch's global RNG; then each world word's embedding row is set to its vector and every other
token's row (but [PAD]'s) to a random unit vector. There is no
classification head: the trial adds and seeds it, as it does on mBERT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, BertTokenizer

from .spec import WorldSpec

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Large enough that WordPiece merges run until every word is whole (the trainer stops earlier).
_VOCAB_CEILING = 1_000_000


def train_vocabulary(corpus: Iterable[str]) -> dict[str, int]:
    """WordPiece vocabulary trained with `tokenizers` on the world's corpus (BERT normalizer)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=_VOCAB_CEILING, min_frequency=1, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer.get_vocab()


def stable_vocabulary(trained: Mapping[str, int], words: Iterable[str]) -> dict[str, int]:
    """The trained vocabulary reduced to what does not depend on tie-breaking, in a fixed order.

    The WordPiece trainer breaks ties between equally frequent merges in hash order, so its
    intermediate subwords differ from run to run. Its alphabet (single characters, with and
    without "##") and the whole world words do not: keeping just those, sorted after the
    special tokens, makes the files byte-identical while every world word stays one token
    (an unknown word falls back to characters).
    """
    words = set(words)
    missing = sorted(words - set(trained))
    if missing:
        raise RuntimeError(f"tokenizer training left {len(missing)} world words as several tokens, e.g. {missing[:5]}")
    kept = {token for token in trained if len(token.removeprefix("##")) == 1 or token in words}
    ordered = list(SPECIAL_TOKENS) + sorted(kept - set(SPECIAL_TOKENS))
    return {token: index for index, token in enumerate(ordered)}


def make_tokenizer(corpus: Iterable[str], words: Iterable[str], max_length: int) -> BertTokenizer:
    """A BERT tokenizer whose vocabulary was trained on the world's corpus."""
    vocabulary = stable_vocabulary(train_vocabulary(corpus), words)
    return BertTokenizer(vocab=vocabulary, do_lower_case=True, model_max_length=max_length)


def bert_config(spec: WorldSpec, vocab_size: int, pad_token_id: int) -> BertConfig:
    """BertConfig of the spec's encoder (dropout as in the spec: 0 by default)."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
        pad_token_id=pad_token_id,
        architectures=["BertModel"],
    )


def _bert_init(module: torch.nn.Module, std: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """BERT's usual init of one module's own parameters (empty for containers)."""
    def normal(shape: tuple[int, ...]) -> np.ndarray:
        return rng.normal(0.0, std, size=shape)

    if isinstance(module, torch.nn.Linear):
        return {"weight": normal(tuple(module.weight.shape)), "bias": np.zeros(module.out_features)}
    if isinstance(module, torch.nn.Embedding):
        weight = normal(tuple(module.weight.shape))
        if module.padding_idx is not None:
            weight[module.padding_idx] = 0.0
        return {"weight": weight}
    if isinstance(module, torch.nn.LayerNorm):
        return {"weight": np.ones(module.normalized_shape), "bias": np.zeros(module.normalized_shape)}
    return {}


def init_bert(config: BertConfig, rng: np.random.Generator) -> BertModel:
    """A BertModel whose every saved tensor was drawn from `rng` (built on the meta device first)."""
    with torch.device("meta"):
        model = BertModel(config)
    model.to_empty(device="cpu")
    values = {}
    for prefix, module in model.named_modules():
        for name, value in _bert_init(module, config.initializer_range, rng).items():
            values[f"{prefix}.{name}" if prefix else name] = torch.from_numpy(value).float()
    missing = set(model.state_dict()) - set(values)
    if missing:
        raise RuntimeError(f"no init rule for BERT tensors {sorted(missing)}")
    model.load_state_dict(values, strict=True)
    return model


def token_rows(
    vocabulary: Mapping[str, int], vectors: Mapping[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A word-embedding row for every token but [PAD]: world words their vector, others a random unit vector.

    Special tokens and characters are not words of the world, but at BERT's init (std 0.02, a
    norm of ~0.16 in 64 dimensions) an embedding perturbation that is small for a unit-norm word
    would swamp the [CLS] row the classifier reads; unit norm keeps perturbations comparable.
    """
    others = sorted(token for token in vocabulary if token not in vectors and token != "[PAD]")
    directions = rng.standard_normal((len(others), len(next(iter(vectors.values())))))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return {**dict(zip(others, directions)), **vectors}


def set_word_rows(model: BertModel, vocabulary: Mapping[str, int], rows: Mapping[str, np.ndarray]) -> None:
    """Put each token's vector in its row of the word-embedding matrix."""
    ids = torch.tensor([vocabulary[token] for token in rows])
    values = torch.from_numpy(np.stack(list(rows.values()))).float()
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[ids] = values


def write_encoder(
    model_dir: Path, spec: WorldSpec, corpus: list[str], vectors: Mapping[str, np.ndarray], rng: np.random.Generator
) -> int:
    """config.json, model.safetensors and tokenizer files in `model_dir`; returns the vocabulary size."""
    tokenizer = make_tokenizer(corpus, vectors, spec.max_position_embeddings)
    vocabulary = tokenizer.get_vocab()
    model = init_bert(bert_config(spec, len(vocabulary), vocabulary["[PAD]"]), rng)
    set_word_rows(model, vocabulary, token_rows(vocabulary, vectors, rng))
    model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return len(vocabulary)
