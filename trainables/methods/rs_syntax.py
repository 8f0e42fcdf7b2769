"""RS-syntax (Section 4.4): m copies with adjacent words swapped with probability p."""

from __future__ import annotations

from typing import Any, ClassVar

from trainables.methods.base import M_DOMAIN, Augmentation, CopiesOptions, Cost, Method, MethodDescriptor
from trainables.options import Probability

SWAP_PROBABILITY = 0.1  # Section 4.4's p


class SyntaxAugmentationOptions(CopiesOptions):
    swap_probability: Probability = SWAP_PROBABILITY


class SyntaxAugmentation(Method):
    name: ClassVar[str] = "rs_syntax"

    def __init__(self, m: int, p: float = SWAP_PROBABILITY, keep_original: bool = False):
        from trainables import augment

        perturb = lambda sentence, copies, rng: augment.swap_adjacent(sentence, copies, rng, p)  # noqa: E731
        self.augmentation = Augmentation(self.name, m, keep_original, perturb, {"swap_probability": p})

    def describe(self) -> dict[str, Any]:
        aug = self.augmentation
        return {"method": self.name, "m": aug.m, "keep_original": aug.keep_original, **aug.cache_descriptor}


METHOD = MethodDescriptor(
    name="rs_syntax", display="RS-syntax", paper_model="mBERT-RS-syntax", order=4,
    options=SyntaxAugmentationOptions, grid_axis="m", search={"m": M_DOMAIN},
    cost=lambda o: Cost(examples=o["m"] + int(o["keep_original"])),
    build=lambda o: SyntaxAugmentation(o["m"], o["swap_probability"], o["keep_original"]),
)
