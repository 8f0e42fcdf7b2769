"""The two cross-lingual pair-classification tasks of the paper, as plain data.

Everything that differs between PAWS-X and XNLI lives here (a registry, not if/elif chains):
Hub ids and column names, the canonical label order, label aliases used by other layouts,
the languages in the paper's table order, and the paper's training defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Task:
    name: str
    hub_id: str
    # Hub column names for sentence 1 and sentence 2; the project's canonical names are
    # sentence1/sentence2 for both tasks.
    sentence1_column: str
    sentence2_column: str
    # Canonical label ids are positions in this tuple (the Hub's own numbering).
    label_names: tuple[str, ...]
    # Other spellings of a label that a local file may use (XTREME's TSVs, PAWS-X's "0"/"1").
    label_aliases: Mapping[str, int]
    # Whether a bare integer label in a TSV is unambiguous (PAWS-X) or must be refused
    # because XTREME and the Hub number the classes differently (XNLI).
    numeric_tsv_labels: bool
    # Languages in the order of the paper's tables; English (the source) first.
    languages: tuple[str, ...]
    # How test sets of different languages are aligned for the generalized setting.
    align_by: str  # "id" or "row"
    eval_every: int  # English dev evaluated every this many optimizer updates (paper scripts)
    rs_da_epochs: int  # epochs the paper's RS-DA runs used
    rs_da_m: int  # the paper's m for RS-DA
    # Sizes of the Hub splits (English train/dev, test per language): used by --dry-run estimates.
    hub_sizes: Mapping[str, int] = field(default_factory=dict)
    hub_split_names: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"train": "train", "dev": "validation", "test": "test"})
    )

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def label_id(self, raw: object) -> int | None:
        """Canonical id of a label given by name or alias; None when unknown."""
        text = str(raw).strip()
        if text in self.label_names:
            return self.label_names.index(text)
        return self.label_aliases.get(text.lower())


PAWSX = Task(
    name="pawsx",
    hub_id="google-research-datasets/paws-x",
    sentence1_column="sentence1",
    sentence2_column="sentence2",
    label_names=("not_paraphrase", "paraphrase"),
    label_aliases=MappingProxyType({"0": 0, "1": 1}),
    numeric_tsv_labels=True,
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    align_by="id",
    eval_every=500,
    rs_da_epochs=3,
    rs_da_m=10,
    hub_sizes=MappingProxyType({"train": 49_401, "dev": 2_000, "test": 2_000}),
)

XNLI = Task(
    name="xnli",
    hub_id="facebook/xnli",
    sentence1_column="premise",
    sentence2_column="hypothesis",
    label_names=("entailment", "neutral", "contradiction"),
    # XTREME's XNLI TSVs spell contradiction "contradictory" (from XNLI-MT); names only,
    # never numbers: XTREME numbers contradiction 0 where the Hub numbers entailment 0.
    label_aliases=MappingProxyType({"contradictory": 2, "entailment": 0, "neutral": 1, "contradiction": 2}),
    numeric_tsv_labels=False,
    languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
    align_by="row",
    eval_every=1000,
    rs_da_epochs=1,
    rs_da_m=3,
    hub_sizes=MappingProxyType({"train": 392_702, "dev": 2_490, "test": 5_010}),
)

TASKS: Mapping[str, Task] = MappingProxyType({PAWSX.name: PAWSX, XNLI.name: XNLI})

SOURCE_LANGUAGE = "en"


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}") from None
