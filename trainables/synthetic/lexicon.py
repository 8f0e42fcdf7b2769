"""The world's words and their embeddings: a pre-aligned multilingual space.

English word for concept c sits at a random unit vector e_c; language k's word for c at
e_c + d_k * u (u a random unit vector per word), so d_k is exactly the misalignment of every
word of language k; English synonyms of c sit at e_c + r * v with r in the spec's radius range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .spec import WorldSpec

SOURCE = "en"
# Consonant-vowel syllables: words are pronounceable, lowercase ASCII (BERT's normalizer keeps them).
SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")
_SYLLABLES_PER_WORD = (2, 3)


@dataclass(frozen=True)
class Lexicon:
    """Surface words: one per (language, concept), plus English synonyms per concept."""

    words: Mapping[str, tuple[str, ...]]  # language -> word of each concept
    synonyms: tuple[tuple[str, ...], ...]  # concept -> its English synonym words (canonical word excluded)

    def all_words(self) -> list[str]:
        """Every surface word, each once: languages in order, then synonyms."""
        words = [word for language_words in self.words.values() for word in language_words]
        return words + [word for group in self.synonyms for word in group]


def unique_words(count: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """`count` new random words not in `taken` (which is updated): no two languages share a word."""
    words: list[str] = []
    while len(words) < count:
        length = int(rng.integers(_SYLLABLES_PER_WORD[0], _SYLLABLES_PER_WORD[1] + 1))
        word = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=length))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def synonym_counts(spec: WorldSpec, rng: np.random.Generator) -> np.ndarray:
    """Synonyms per concept: zero for a (1 - synonym_fraction) share, else 1..max_synonyms."""
    has_synonyms = rng.random(spec.num_concepts) < spec.synonym_fraction
    counts = rng.integers(1, spec.max_synonyms + 1, size=spec.num_concepts)
    return np.where(has_synonyms, counts, 0)


def make_lexicon(spec: WorldSpec, rng: np.random.Generator) -> Lexicon:
    """English, then each target language, then English synonyms, all distinct words."""
    taken: set[str] = set()
    codes = [SOURCE] + [language.code for language in spec.languages]
    words = {code: tuple(unique_words(spec.num_concepts, rng, taken)) for code in codes}
    counts = synonym_counts(spec, rng)
    synonyms = tuple(tuple(unique_words(int(n), rng, taken)) for n in counts)
    return Lexicon(words=words, synonyms=synonyms)


def unit_rows(rows: int, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random unit vectors, uniform on the unit sphere of the span of `basis` (dim x rank, orthonormal)."""
    vectors = rng.standard_normal((rows, basis.shape[1])) @ basis.T
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def offset_basis(spec: WorldSpec, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal basis of the directions words may move in (the whole space when rank is None)."""
    if spec.misalignment_rank is None:
        return np.eye(spec.hidden_size)
    basis, _ = np.linalg.qr(rng.standard_normal((spec.hidden_size, spec.misalignment_rank)))
    return basis


def word_vectors(spec: WorldSpec, lexicon: Lexicon, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Embedding of every world word (float64): e_c, e_c + d_k u, e_c + r v."""
    concepts = unit_rows(spec.num_concepts, np.eye(spec.hidden_size), rng)
    basis = offset_basis(spec, rng)
    vectors = dict(zip(lexicon.words[SOURCE], concepts))
    for language in spec.languages:
        shifted = concepts + language.misalignment * unit_rows(spec.num_concepts, basis, rng)
        vectors.update(zip(lexicon.words[language.code], shifted))
    for concept, group in enumerate(lexicon.synonyms):
        radii = rng.uniform(*spec.synonym_radius, size=(len(group), 1))
        vectors.update(zip(group, concepts[concept] + radii * unit_rows(len(group), basis, rng)))
    return vectors


def synonym_table(lexicon: Lexicon) -> dict[str, list[str]]:
    """Counter-fitted-style table: each word of a synonym group lists the others (<= 8).

    Every English concept word is a key, with an empty list when it has no synonyms, like
    the many empty entries of the original table.
    """
    table: dict[str, list[str]] = {}
    for word, group in zip(lexicon.words[SOURCE], lexicon.synonyms):
        members = (word,) + group
        for member in members:
            table[member] = [other for other in members if other != member]
    return table
