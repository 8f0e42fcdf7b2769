"""What a synthetic world is made of: sizes, the encoder's shape, and its languages.

A world is fully determined by a `WorldSpec` and a seed; the spec's hash (with the file
format version) is what `ensure_world` compares to decide whether a world can be reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

# Bump when the files a spec produces change, so old worlds on disk are rebuilt.
WORLD_FORMAT = 2

# Two letters starting with "x": no ISO 639-1 code looks like this except Xhosa ("xh").
_LANGUAGE_CODE = re.compile(r"^x[a-z]$")
_REAL_CODES = frozenset({"xh"})

# Word-order rules by name; the functions live in corpus.py, the names are part of the spec.
WORD_ORDER_NAMES = ("same", "swap_pairs", "reverse")


@dataclass(frozen=True)
class SyntheticLanguage:
    """A target language: its misalignment d_k from English and its word-order rule."""

    code: str
    misalignment: float
    word_order: str = "same"

    def __post_init__(self) -> None:
        if not _LANGUAGE_CODE.match(self.code) or self.code in _REAL_CODES:
            raise ValueError(
                f"synthetic language code {self.code!r} must be 'x' plus one letter (not a real ISO code such as 'xh')"
            )
        if not self.misalignment >= 0.0:
            raise ValueError(f"language {self.code}: misalignment must be >= 0, got {self.misalignment!r}")
        if self.word_order not in WORD_ORDER_NAMES:
            raise ValueError(
                f"language {self.code}: unknown word_order {self.word_order!r}; allowed: {', '.join(WORD_ORDER_NAMES)}"
            )


# Misalignment grows from xa to xd; the two farthest also swap adjacent words (far in both
# embedding and word order, like ja/ko/zh from English in the paper).
DEMO_LANGUAGES = (
    SyntheticLanguage("xa", 0.25, "same"),
    SyntheticLanguage("xb", 0.5, "same"),
    SyntheticLanguage("xc", 0.75, "swap_pairs"),
    SyntheticLanguage("xd", 1.0, "swap_pairs"),
)


@dataclass(frozen=True)
class WorldSpec:
    """Sizes of a synthetic world; defaults are the README demo's (a few seconds per training run)."""

    num_concepts: int = 160
    languages: tuple[SyntheticLanguage, ...] = DEMO_LANGUAGES
    # Words per sentence (inclusive range); both sentences of a pair draw their length from it.
    min_words: int = 4
    max_words: int = 7
    # The head (first concept) of a sentence counts this many times in the teacher's score; 1.0
    # makes labels independent of word order, larger values make the English order informative.
    head_weight: float = 2.0
    train_size: int = 3000
    dev_size: int = 500
    test_size: int = 1000
    # English synonyms (for RS-DA): share of concepts with any, at most this many per concept,
    # and the range of their distance from the concept vector e_c.
    synonym_fraction: float = 0.6
    max_synonyms: int = 8
    synonym_radius: tuple[float, float] = (0.5, 1.0)
    # Target-language offsets u and English synonym offsets v are random unit vectors of one
    # shared random subspace of this dimension (None: the whole hidden space). This encodes the
    # paper's hypothesis that robust regions are shaped like synonym neighbourhoods: with it, the
    # synonyms show RS-DA the directions in which languages differ from English.
    misalignment_rank: int | None = 8
    # The encoder (a BERT).
    hidden_size: int = 64
    num_layers: int = 1
    num_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 128
    initializer_range: float = 0.02
    # No dropout: a seed then varies only the head, the data order and the methods' noise, and at
    # this size dropout mainly slows learning within the demo's few hundred updates.
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for problem in _spec_problems(self):
            raise ValueError(f"invalid WorldSpec: {problem}")

    @classmethod
    def tiny(cls) -> "WorldSpec":
        """A world for unit tests: builds in a fraction of a second, not meant to learn well."""
        return cls(
            num_concepts=24,
            languages=(SyntheticLanguage("xa", 0.5, "same"), SyntheticLanguage("xb", 1.0, "reverse")),
            min_words=2,
            max_words=4,
            train_size=48,
            dev_size=12,
            test_size=16,
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            intermediate_size=32,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WorldSpec":
        """Inverse of `to_dict` (as stored in world.json)."""
        fields = dict(data)
        fields["languages"] = tuple(SyntheticLanguage(**language) for language in fields["languages"])
        fields["synonym_radius"] = tuple(fields["synonym_radius"])
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def spec_hash(self) -> str:
        """sha256 of the spec and the file format version: equal hash => same files for a seed."""
        payload = json.dumps({"format": WORLD_FORMAT, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _spec_problems(spec: WorldSpec) -> list[str]:
    """Every reason the spec cannot produce a working world (empty when it can)."""
    codes = [language.code for language in spec.languages]
    checks = {
        "languages: at least one target language is needed": bool(codes),
        f"languages: codes must be unique, got {codes}": len(set(codes)) == len(codes),
        "num_concepts must be >= 2": spec.num_concepts >= 2,
        "min_words must be >= 1 and <= max_words": 1 <= spec.min_words <= spec.max_words,
        "head_weight must be >= 0": spec.head_weight >= 0.0,
        "train_size, dev_size and test_size must be >= 1": min(spec.train_size, spec.dev_size, spec.test_size) >= 1,
        "synonym_fraction must be in [0, 1]": 0.0 <= spec.synonym_fraction <= 1.0,
        "max_synonyms must be in 1..8 (the counter-fitted table lists at most 8 neighbours)": 1
        <= spec.max_synonyms
        <= 8,
        "synonym_radius must be (low, high) with 0 <= low <= high": len(spec.synonym_radius) == 2
        and 0.0 <= spec.synonym_radius[0] <= spec.synonym_radius[1],
        "hidden_size must be a multiple of num_heads": spec.num_heads >= 1 and spec.hidden_size % spec.num_heads == 0,
        "num_layers and intermediate_size must be >= 1": min(spec.num_layers, spec.intermediate_size) >= 1,
        "max_position_embeddings must hold a pair ([CLS] s1 [SEP] s2 [SEP])": spec.max_position_embeddings
        >= 2 * spec.max_words + 3,
        "dropout must be in [0, 1)": 0.0 <= spec.dropout < 1.0,
        "misalignment_rank must be None or in 1..hidden_size": spec.misalignment_rank is None
        or 1 <= spec.misalignment_rank <= spec.hidden_size,
    }
    return [problem for problem, ok in checks.items() if not ok]


PRESETS: Mapping[str, WorldSpec] = MappingProxyType({"demo": WorldSpec(), "tiny": WorldSpec.tiny()})
