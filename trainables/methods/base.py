"""What every method file fills in: a descriptor (settings, grid axis, search, cost) and its hooks.

A method changes at most two things: the training data (`augmentation`: m perturbed copies) and the
loss of one micro-batch (`loss(ctx)`), given a `StepContext` that can run the model with a
perturbation delta added to the embedding representation and return its loss or its logits. A method
that sets `runs_backward` calls `ctx.backward` itself (FreeLB's K ascent steps); otherwise the loop
calls backward on the loss it returns. Everything else is the shared loop (trainables.loop).

Method files take torch from here (`from trainables.methods.base import torch, F`): a handle that
imports torch on first use, so that the sweep schema, which reads every descriptor, validates and
refuses a configuration without loading torch.
"""

from __future__ import annotations

import importlib
import math
import types
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping

from pydantic import field_validator

from trainables.options import Domain, Integer, Number, Strict, TrainingOverride, listify, nonempty_unique
from trainables.spec import INJECTION_POINTS


class _Deferred(types.ModuleType):
    """A module imported at its first attribute access."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


torch = _Deferred("torch")
F = _Deferred("torch.nn.functional")

DEFAULT_INJECTION = "word_embeddings"  # Enc(x)'s input: the word-embedding lookup, where languages misalign
EPSILON_DOMAIN = Domain(0.0, math.inf, False, "finite numbers > 0 (an L-inf radius)")
M_DOMAIN = Domain(0.0, math.inf, True, "whole numbers >= 1 (augmented copies per example)")


# ------------------------------------------------------------------------------ settings
class MethodOptions(Strict):
    """Settings under `methods.<name>`; every field but `training` is one of the method's options."""

    training: TrainingOverride = TrainingOverride()


class EpsilonOptions(MethodOptions):
    """A method swept over epsilon, a perturbation radius, added at an injection point."""

    epsilon: list[Number] | None = None  # required unless search.space.epsilon samples it
    injection: Literal[INJECTION_POINTS] = DEFAULT_INJECTION  # type: ignore[valid-type]

    _one_point_grid = field_validator("epsilon", mode="before")(listify)

    @field_validator("epsilon")
    @classmethod
    def _positive(cls, values: list[float] | None) -> list[float] | None:
        for eps in nonempty_unique(values, "epsilon") if values is not None else ():
            if not eps > 0 or not math.isfinite(eps):
                raise ValueError(f"epsilon must be a finite number > 0 (an L-inf radius), got {eps}")
        return values


class CopiesOptions(MethodOptions):
    """A data-level method swept over m, the perturbed copies of every English training pair."""

    m: list[Integer] | None = None  # required unless search.space.m samples it
    keep_original: bool = False

    _one_point_grid = field_validator("m", mode="before")(listify)

    @field_validator("m")
    @classmethod
    def _at_least_one(cls, values: list[int] | None) -> list[int] | None:
        for m in nonempty_unique(values, "m") if values is not None else ():
            if m < 1:
                raise ValueError(f"m (augmented copies per example) must be >= 1, got {m}")
        return values


# -------------------------------------------------------------------------------- hooks
@dataclass(frozen=True)
class StepContext:
    """What a method's loss hook may use for one micro-batch.

    `forward(delta)` is the mean cross-entropy with delta added (None: clean); `logits(delta)` the
    float32 logits under the same perturbation, and `loss_of(logits)` their mean cross-entropy, for
    methods that compare output distributions (R3F). `logits(delta, detach=True)` cuts the gradient
    below the injection point in that pass (R3F's noisy pass leaves the embedding lookup alone). `backward(loss)` weighs the loss by this
    micro-batch's share of the update's examples before backpropagating (gradient accumulation).
    """

    forward: Callable[[Any], Any]
    mask: Any  # (B, L, 1) float32, 1 on real tokens, 0 on padding
    hidden_size: int  # last dimension of the perturbed representation
    generator: Any  # the trial's noise generator (seeded, checkpointed)
    logits: Callable[..., Any] | None = None  # (delta, detach=False) -> logits
    loss_of: Callable[[Any], Any] | None = None
    weight: float = 1.0
    # A seed ensemble's own versions (trainables.ensemble): per-member draws, the per-member mean, backward
    draw_uniform: Callable[[], Any] | None = None
    draw_normal: Callable[[], Any] | None = None
    example_mean: Callable[[Any], Any] | None = None
    run_backward: Callable[[Any], None] | None = None

    @property
    def delta_shape(self) -> tuple[int, int, int]:
        return (self.mask.shape[0], self.mask.shape[1], self.hidden_size)

    def backward(self, loss: Any) -> None:
        if self.run_backward is not None:
            return self.run_backward(loss)
        (loss * self.weight).backward()

    def uniform(self) -> Any:
        """U[0, 1) of `delta_shape`, float32, from the trial's noise generator.

        In a seed ensemble each member draws its own rows from its own generator, as its one-seed trial
        would, so methods take their noise here (or from `normal`) rather than from `generator` directly.
        """
        if self.draw_uniform is not None:
            return self.draw_uniform()
        return torch.rand(self.delta_shape, generator=self.generator, device=self.mask.device, dtype=torch.float32)

    def normal(self) -> Any:
        """N(0, 1) of `delta_shape`, float32, from the trial's noise generator (see `uniform`)."""
        if self.draw_normal is not None:
            return self.draw_normal()
        return torch.randn(self.delta_shape, generator=self.generator, device=self.mask.device, dtype=torch.float32)

    def mean_over_examples(self, values: Any) -> Any:
        """The mean over the micro-batch's examples of one value per example (B,), as `forward` averages its
        cross-entropy; in a seed ensemble each member's mean over its own rows, weighted as its loss is."""
        if self.example_mean is not None:
            return self.example_mean(values)
        return values.mean()


def uniform_linf(ctx: StepContext, epsilon: float) -> Any:
    """delta ~ U([-epsilon, epsilon]^(L x H)) on real tokens, zero on padding; float32."""
    return (ctx.uniform() * 2 - 1) * epsilon * ctx.mask


@dataclass(frozen=True)
class Augmentation:
    """A data-level method: m perturbed copies of every English training pair."""

    name: str
    m: int
    keep_original: bool
    perturb: Callable[[str, int, Any], list[str]] = field(compare=False, repr=False)
    cache_descriptor: Mapping[str, Any] = field(default_factory=dict)  # what the cache key must see


class Method:
    """Base: plain fine-tuning. Subclasses override `loss` and/or set `augmentation`."""

    name: ClassVar[str] = "baseline"
    runs_backward: ClassVar[bool] = False  # True: `loss` calls ctx.backward itself and returns the loss to log
    augmentation: Augmentation | None = None
    injection: str | None = None  # where `loss` adds delta; None: the method never perturbs embeddings

    def loss(self, ctx: StepContext) -> Any:
        return ctx.forward(None)

    def describe(self) -> dict[str, Any]:
        """The method's resolved parameters, logged with every result."""
        return {"method": self.name}


# --------------------------------------------------------------------------- descriptor
@dataclass(frozen=True)
class Cost:
    """One original training example's cost relative to plain fine-tuning, for --dry-run's estimate."""

    examples: float = 1.0  # training examples it becomes (data-level methods: m copies, + the original)
    passes: float = 1.0  # forward+backward passes per training example (ADV: 1 + PGD steps)


@dataclass(frozen=True)
class MethodDescriptor:
    """A method, described once; the schema, the plan, the trial and the analysis derive from it."""

    name: str  # key under `methods:` and the results' `method`
    display: str  # the tables' row name
    options: type[MethodOptions]
    build: Callable[[Mapping[str, Any]], Method]  # one grid point's options (and `cache_dir`) -> hooks
    grid_axis: Literal["epsilon", "m"] | None = None  # the option swept as a list
    search: Mapping[str, Domain] = field(default_factory=dict)  # options Optuna may sample, and their domain
    cost: Callable[[Mapping[str, Any]], Cost] = lambda options: Cost()
    paper_model: str | None = None  # the paper's name in Tables 1-3; None: not in the paper
    order: int = 100  # row order: the paper's five first
    # Whether seeds of it can train as one ensemble (trainables.ensemble): its loss must be a sum of
    # ctx.forward / ctx.loss_of / ctx.mean_over_examples results times constants, its noise from ctx.uniform /
    # ctx.normal, and anything it does per row of delta or logits stay per row; then each member's gradient is
    # its own. A method that reduces over the whole batch itself (a plain .mean() over rows, a norm of all of
    # delta) or squares its loss would mix the members: it says False and runs one seed per trial.
    vectorizes: bool = True

    def grid(self, settings: MethodOptions) -> list[dict[str, Any]]:
        """One option dict per grid point (the axis None while Optuna samples it)."""
        options = settings.model_dump(exclude={"training"})
        if self.grid_axis is None:
            return [options]
        values = options.pop(self.grid_axis) or [None]
        return [{self.grid_axis: value, **options} for value in values]

    def point(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """A grid point's options with every default filled in, validated by the settings model."""
        given = {k: v for k, v in options.items() if k in self.options.model_fields and k != "training"}
        axis = self.grid_axis
        if axis is not None:
            value = given.pop(axis, None)
            if value is not None:  # one point of the axis (its default grid's first where not given)
                given[axis] = [value]
        return self.grid(self.options.model_validate(given))[0]
