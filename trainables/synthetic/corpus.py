"""Pair-classification examples over concepts, and their rendering in each language.

An example is two concept sequences; its label comes from a bag-of-concepts teacher (a fixed
random weight per concept, summed over both sentences), so the label is a property of the
concepts, not of the words: every language's rendering of a dev/test example keeps its label,
which makes the dev/test sets parallel by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

from .lexicon import Lexicon
from .spec import WORD_ORDER_NAMES, WorldSpec


def _swap_pairs(words: Sequence[str]) -> list[str]:
    """Swap words 1<->2, 3<->4, ...: a local reordering (an odd last word stays)."""
    out = list(words)
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


WORD_ORDERS: Mapping[str, Callable[[Sequence[str]], list[str]]] = MappingProxyType(
    {"same": list, "swap_pairs": _swap_pairs, "reverse": lambda words: list(reversed(words))}
)
assert tuple(WORD_ORDERS) == WORD_ORDER_NAMES


@dataclass(frozen=True)
class Examples:
    """A split as concepts: sentence concept ids (padded with -1) and labels."""

    concepts1: np.ndarray  # (n, max_words) int64, -1 after the sentence's end
    concepts2: np.ndarray
    labels: np.ndarray  # (n,) int64, canonical ids of trainables.tasks


def sample_sentences(n: int, spec: WorldSpec, rng: np.random.Generator) -> np.ndarray:
    """n concept sequences of min_words..max_words concepts (uniform, repeats allowed)."""
    lengths = rng.integers(spec.min_words, spec.max_words + 1, size=n)
    concepts = rng.integers(0, spec.num_concepts, size=(n, spec.max_words))
    return np.where(np.arange(spec.max_words) < lengths[:, None], concepts, -1)


def sentence_scores(weights: np.ndarray, concepts: np.ndarray, head_weight: float) -> np.ndarray:
    """Sum of concept weights of each sentence, its first (head) concept counted `head_weight` times."""
    padded = np.append(weights, 0.0)  # index -1 (padding) reads the trailing 0
    return padded[concepts].sum(axis=1) + (head_weight - 1.0) * padded[concepts[:, 0]]


def teacher_scores(weights: np.ndarray, concepts1: np.ndarray, concepts2: np.ndarray, head_weight: float) -> np.ndarray:
    """The score the labels threshold: both sentences' scores added."""
    return sentence_scores(weights, concepts1, head_weight) + sentence_scores(weights, concepts2, head_weight)


def binary_labels(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PAWS-X-like: 1 (paraphrase) iff the score is above the reference median (balanced classes)."""
    return (scores > np.median(reference)).astype(np.int64)


def three_way_labels(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """XNLI-like: entailment (0) / neutral (1) / contradiction (2) by tertiles of the reference scores."""
    low, high = np.quantile(reference, [1 / 3, 2 / 3])
    return np.where(scores > high, 0, np.where(scores < low, 2, 1)).astype(np.int64)


LABELERS: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = MappingProxyType(
    {"pawsx": binary_labels, "xnli": three_way_labels}
)


def make_splits(task: str, spec: WorldSpec, rng: np.random.Generator) -> dict[str, Examples]:
    """train/dev/test examples of one task; label thresholds come from the train scores."""
    weights = rng.standard_normal(spec.num_concepts)
    sizes = {"train": spec.train_size, "dev": spec.dev_size, "test": spec.test_size}
    sentences = {split: (sample_sentences(n, spec, rng), sample_sentences(n, spec, rng)) for split, n in sizes.items()}
    scores = {split: teacher_scores(weights, *pair, spec.head_weight) for split, pair in sentences.items()}
    return {
        split: Examples(*sentences[split], LABELERS[task](scores[split], scores["train"])) for split in sizes
    }


def render(concepts: np.ndarray, words: Sequence[str], word_order: str) -> list[str]:
    """Sentences of one language: its word per concept, in its word order, space-separated."""
    reorder = WORD_ORDERS[word_order]
    return [" ".join(reorder([words[c] for c in row if c >= 0])) for row in concepts.tolist()]


def render_pairs(examples: Examples, lexicon: Lexicon, language: str, word_order: str) -> dict[str, list]:
    """Columns sentence1, sentence2, label of a split written in one language."""
    words = lexicon.words[language]
    return {
        "sentence1": render(examples.concepts1, words, word_order),
        "sentence2": render(examples.concepts2, words, word_order),
        "label": examples.labels.tolist(),
    }
