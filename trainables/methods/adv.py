"""ADV (Section 3.2): adversarial training, min over the model of the max over ||delta_i||_inf <= epsilon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field

from trainables.methods.base import (DEFAULT_INJECTION, EPSILON_DOMAIN, Cost, EpsilonOptions, Method,
                                     MethodDescriptor, StepContext, torch, uniform_linf)
from trainables.options import Number, PositiveInt

PGD_ALPHA_RATIO = 1.25  # step size alpha = 1.25 * epsilon: Wong et al.'s (2020) recommended ratio for K=1


class AdversarialOptions(EpsilonOptions):
    pgd_steps: PositiveInt = 1  # K=1 with random start: "fast" L-inf adversarial training (Wong et al., 2020)
    pgd_alpha: Annotated[Number, Field(gt=0)] | None = None  # None: PGD_ALPHA_RATIO * epsilon
    pgd_random_start: bool = True


_DEFAULTS = AdversarialOptions()


def pgd_linf(ctx: StepContext, epsilon: float, steps: int, alpha: float, random_start: bool) -> Any:
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
class Adversarial(Method):
    epsilon: float
    steps: int = _DEFAULTS.pgd_steps
    alpha: float | None = _DEFAULTS.pgd_alpha
    random_start: bool = _DEFAULTS.pgd_random_start
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "adv"

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else PGD_ALPHA_RATIO * self.epsilon

    def loss(self, ctx: StepContext) -> Any:
        delta = pgd_linf(ctx, self.epsilon, self.steps, self.step_size, self.random_start)
        return ctx.forward(delta)

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "epsilon": self.epsilon, "pgd_steps": self.steps, "pgd_alpha": self.step_size,
                "pgd_random_start": self.random_start, "injection": self.injection}


METHOD = MethodDescriptor(
    name="adv", display="ADV", paper_model="mBERT-ADV", order=1,
    options=AdversarialOptions, grid_axis="epsilon", search={"epsilon": EPSILON_DOMAIN},
    cost=lambda o: Cost(passes=1.0 + o["pgd_steps"]),  # each PGD step is one more forward and backward pass
    build=lambda o: Adversarial(o["epsilon"], o["pgd_steps"], o["pgd_alpha"], o["pgd_random_start"], o["injection"]),
)
