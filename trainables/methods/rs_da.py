"""RS-DA (Section 3.3): randomized smoothing with data augmentation, m synonym-substituted copies."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from trainables.methods.base import M_DOMAIN, Augmentation, CopiesOptions, Cost, Method, MethodDescriptor

# the paper's table (counter-fitted neighbours), as the authors' scripts fetch it
COUNTERFITTED_NEIGHBORS_URL = "https://raw.githubusercontent.com/uclanlp/Robust-XLT/master/counterfitted_neighbors.json"


class SynonymAugmentationOptions(CopiesOptions):
    synonyms: str = COUNTERFITTED_NEIGHBORS_URL  # a path, a URL, or `synthetic` (the synthetic world's table)


class SynonymAugmentation(Method):
    """m copies, each table word replaced by a uniform draw from itself plus its neighbours."""

    name: ClassVar[str] = "rs_da"

    def __init__(self, m: int, table: Any, keep_original: bool = False):
        from trainables import augment

        perturb = lambda sentence, copies, rng: augment.substitute_synonyms(sentence, table, copies, rng)  # noqa: E731
        self.augmentation = Augmentation(self.name, m, keep_original, perturb, {"synonym_table_sha256": table.sha256})

    def describe(self) -> dict[str, Any]:
        aug = self.augmentation
        return {"method": self.name, "m": aug.m, "keep_original": aug.keep_original, **aug.cache_descriptor}


def _build(options: Mapping[str, Any]) -> SynonymAugmentation:
    from trainables import augment

    table = augment.load_synonym_table(options["synonyms"], options.get("cache_dir"))
    return SynonymAugmentation(options["m"], table, options["keep_original"])


METHOD = MethodDescriptor(
    name="rs_da", display="RS-DA", paper_model="mBERT-RS-DA", order=3,
    options=SynonymAugmentationOptions, grid_axis="m", search={"m": M_DOMAIN},
    cost=lambda o: Cost(examples=o["m"] + int(o["keep_original"])), build=_build,
)
