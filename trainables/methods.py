"""The paper's five training methods as small hooks into one training loop.

A method changes at most two things: the training data (RS-DA, RS-syntax: `augmentation`) and the
loss of one batch (ADV, RS-RP: `loss`, given a `StepContext` that can run the model with a
perturbation delta added to the embedding representation). Everything else is the shared loop.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch
from torch import nn

from trainables import augment
from trainables.spec import INJECTION_POINTS
# Defaults for the choices the paper leaves open (README, "Methods"):
DEFAULT_INJECTION = "word_embeddings"  # Enc(x)'s input: the word-embedding lookup, where languages misalign
DEFAULT_PGD_STEPS = 1  # K=1 with random start: "fast" L-inf adversarial training (Wong et al., 2020)
DEFAULT_PGD_ALPHA_RATIO = 1.25  # step size alpha = 1.25 * epsilon, their recommended ratio for K=1


@dataclass(frozen=True)
class StepContext:
    """What a method's loss hook may use for one micro-batch."""

    forward: Callable[[torch.Tensor | None], torch.Tensor]  # mean loss with delta added (None: clean)
    mask: torch.Tensor  # (B, L, 1) float32, 1 on real tokens, 0 on padding
    hidden_size: int  # last dimension of the perturbed representation
    generator: torch.Generator  # the trial's noise generator (seeded, checkpointed)

    @property
    def delta_shape(self) -> tuple[int, int, int]:
        return (self.mask.shape[0], self.mask.shape[1], self.hidden_size)


def uniform_linf(ctx: StepContext, epsilon: float) -> torch.Tensor:
    """delta ~ U([-epsilon, epsilon]^(L x H)) on real tokens, zero on padding; float32."""
    noise = torch.rand(ctx.delta_shape, generator=ctx.generator, device=ctx.mask.device, dtype=torch.float32)
    return (noise * 2 - 1) * epsilon * ctx.mask


def pgd_linf(ctx: StepContext, epsilon: float, steps: int, alpha: float, random_start: bool) -> torch.Tensor:
    """Projected gradient ascent on the loss inside the L-inf ball (Madry et al., 2018).

    Gradients are taken with respect to delta only, so the inner maximisation leaves no gradient
    on the model's parameters; delta stays float32 under mixed precision.
    """
    delta = uniform_linf(ctx, epsilon) if random_start else torch.zeros(ctx.delta_shape, device=ctx.mask.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(ctx.forward(delta), delta)
        delta = ((delta + alpha * grad.sign()).clamp(-epsilon, epsilon) * ctx.mask).detach()
    return delta


@dataclass(frozen=True)
class Augmentation:
    """A data-level method: m perturbed copies of every English training pair."""

    name: str
    m: int
    keep_original: bool
    perturb: augment.Perturb = field(compare=False, repr=False)
    cache_descriptor: Mapping[str, Any] = field(default_factory=dict)  # what the cache key must see


class Method:
    """Base: plain fine-tuning. Subclasses override `loss` and/or `augmentation`."""

    name: ClassVar[str] = "baseline"
    augmentation: Augmentation | None = None
    injection: str | None = None  # where `loss` adds delta; None: the method never perturbs embeddings

    def loss(self, ctx: StepContext) -> torch.Tensor:
        return ctx.forward(None)

    def describe(self) -> dict[str, Any]:
        """The method's resolved parameters, logged with every result."""
        return {"method": self.name}


class Baseline(Method):
    pass


@dataclass(frozen=True)
class RandomPerturbation(Method):
    """RS-RP: every step, delta drawn uniformly from the L-inf ball of radius epsilon."""

    epsilon: float
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "rs_rp"

    def loss(self, ctx: StepContext) -> torch.Tensor:
        return ctx.forward(uniform_linf(ctx, self.epsilon))

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "epsilon": self.epsilon, "injection": self.injection}


@dataclass(frozen=True)
class Adversarial(Method):
    """ADV: min over the model of the max over ||delta_i||_inf <= epsilon, inner max by PGD."""

    epsilon: float
    steps: int = DEFAULT_PGD_STEPS
    alpha: float | None = None  # None: DEFAULT_PGD_ALPHA_RATIO * epsilon
    random_start: bool = True
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "adv"

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else DEFAULT_PGD_ALPHA_RATIO * self.epsilon

    def loss(self, ctx: StepContext) -> torch.Tensor:
        delta = pgd_linf(ctx, self.epsilon, self.steps, self.step_size, self.random_start)
        return ctx.forward(delta)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "epsilon": self.epsilon,
            "pgd_steps": self.steps,
            "pgd_alpha": self.step_size,
            "pgd_random_start": self.random_start,
            "injection": self.injection,
        }


class DataAugmentationMethod(Method):
    def describe(self) -> dict[str, Any]:
        aug = self.augmentation
        return {"method": self.name, "m": aug.m, "keep_original": aug.keep_original, **aug.cache_descriptor}


class SynonymAugmentation(DataAugmentationMethod):
    """RS-DA: m copies, each table word replaced by a uniform draw from itself plus its neighbours."""

    name: ClassVar[str] = "rs_da"

    def __init__(self, m: int, table: augment.SynonymTable, keep_original: bool = False):
        perturb = lambda sentence, copies, rng: augment.substitute_synonyms(sentence, table, copies, rng)  # noqa: E731
        self.augmentation = Augmentation(
            self.name, m, keep_original, perturb, {"synonym_table_sha256": table.sha256}
        )


class SyntaxAugmentation(DataAugmentationMethod):
    """RS-syntax: m copies with adjacent words swapped with probability p (Section 4.4)."""

    name: ClassVar[str] = "rs_syntax"

    def __init__(self, m: int, p: float = augment.SYNTAX_SWAP_PROBABILITY, keep_original: bool = False):
        perturb = lambda sentence, copies, rng: augment.swap_adjacent(sentence, copies, rng, p)  # noqa: E731
        self.augmentation = Augmentation(self.name, m, keep_original, perturb, {"swap_probability": p})


def _build_rs_da(options: Mapping[str, Any]) -> Method:
    source = options.get("synonyms", augment.COUNTERFITTED_NEIGHBORS_URL)  # the paper's table by default
    table = augment.load_synonym_table(source, options.get("cache_dir"))
    return SynonymAugmentation(options["m"], table, options.get("keep_original", False))


METHODS: Mapping[str, Callable[[Mapping[str, Any]], Method]] = {
    "baseline": lambda options: Baseline(),
    "adv": lambda o: Adversarial(
        o["epsilon"],
        o.get("pgd_steps", DEFAULT_PGD_STEPS),
        o.get("pgd_alpha"),
        o.get("pgd_random_start", True),
        o.get("injection", DEFAULT_INJECTION),
    ),
    "rs_rp": lambda o: RandomPerturbation(o["epsilon"], o.get("injection", DEFAULT_INJECTION)),
    "rs_da": _build_rs_da,
    "rs_syntax": lambda o: SyntaxAugmentation(
        o["m"], o.get("swap_probability", augment.SYNTAX_SWAP_PROBABILITY), o.get("keep_original", False)
    ),
}


def build_method(name: str, options: Mapping[str, Any]) -> Method:
    try:
        builder = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}") from None
    return builder(options)


class EmbeddingInjector:
    """Adds a perturbation delta to the embedding representation through a forward hook.

    `word_embeddings`: the output of the word-embedding lookup (before position embeddings and
    LayerNorm). `embeddings_output`: the embedding layer's output (after LayerNorm and dropout).
    Works for any Hugging Face encoder that exposes `get_input_embeddings()` / `base_model.embeddings`.
    """

    def __init__(self, model: nn.Module, injection: str = DEFAULT_INJECTION):
        if injection not in INJECTION_POINTS:
            raise ValueError(f"unknown injection point {injection!r}; allowed: {', '.join(INJECTION_POINTS)}")
        module, self.hidden_size = self._target(model, injection)
        self._delta: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._add_delta)

    @staticmethod
    def _target(model: nn.Module, injection: str) -> tuple[nn.Module, int]:
        if injection == "word_embeddings":
            module = model.get_input_embeddings()
            return module, module.embedding_dim
        embeddings = getattr(model.base_model, "embeddings", None)
        if embeddings is None:
            raise ValueError(f"{type(model).__name__} has no base_model.embeddings; use injection=word_embeddings")
        return embeddings, model.config.hidden_size

    def _add_delta(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if self._delta is None:
            return None
        return output + self._delta.to(output.dtype)

    @contextlib.contextmanager
    def perturb(self, delta: torch.Tensor | None) -> Iterator[None]:
        self._delta = delta
        try:
            yield
        finally:
            self._delta = None

    def remove(self) -> None:
        self._handle.remove()
