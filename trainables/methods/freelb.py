"""FreeLB (Zhu et al., ICLR 2020): adversarial training with gradients accumulated over K ascent steps.

Each micro-batch takes K steps of gradient ascent on a perturbation delta of the word embeddings;
every step's loss, divided by K, is backpropagated, so the parameter gradient is the average over
the K perturbations ("free" large batch), and the optimizer steps once. Follows the authors'
implementation (zhuchen03/FreeLB, `run_glue_freelb.py`): delta starts uniform, scaled so that its
L2 norm (or each coordinate, for L-inf) is about `init_magnitude`; each ascent step moves it by
`step_size` along the gradient normalised per example; `epsilon` caps its norm (0: unbounded).
One departure: the authors reuse the first pass's dropout masks in all K passes (a modified model);
here each pass draws its own, as any Hugging Face encoder does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from trainables.methods.base import (DEFAULT_INJECTION, Cost, Method, MethodDescriptor, MethodOptions, StepContext,
                                     torch)
from trainables.options import Domain, Number, PositiveInt, listify, nonempty_unique
from trainables.spec import INJECTION_POINTS

MAX_NORM_DOMAIN = Domain(0.0, math.inf, False, "finite numbers >= 0 (delta's maximum norm; 0: unbounded)",
                         low_inclusive=True)


class FreeLBOptions(MethodOptions):
    epsilon: list[Number] | None = None  # the maximum norm of delta (the paper's epsilon); 0: unbounded
    # defaults: the authors' MNLI setting (launch/run_glue.sh); their script's own defaults switch FreeLB off
    steps: PositiveInt = 3  # K ascent steps
    step_size: Annotated[Number, Field(gt=0)] = 0.04  # alpha, the ascent step
    init_magnitude: Annotated[Number, Field(ge=0)] = 0.08  # delta's initial norm; 0: start at zero
    norm: Literal["l2", "linf"] = "l2"
    injection: Literal[INJECTION_POINTS] = DEFAULT_INJECTION  # type: ignore[valid-type]

    _one_point_grid = field_validator("epsilon", mode="before")(listify)

    @field_validator("epsilon")
    @classmethod
    def _norm_bound(cls, values: list[float] | None) -> list[float] | None:
        for eps in nonempty_unique(values, "epsilon") if values is not None else ():
            if not MAX_NORM_DOMAIN.admits(eps):
                raise ValueError(f"epsilon takes {MAX_NORM_DOMAIN.meaning}, got {eps}")
        return values


def per_example_norm(x: Any, norm: str) -> Any:
    """(B, 1, 1) norm of each example's (L x H) block."""
    flat = x.reshape(x.shape[0], -1)
    return flat.norm(p=2 if norm == "l2" else math.inf, dim=1).view(-1, 1, 1)


@dataclass(frozen=True)
class FreeLB(Method):
    epsilon: float
    steps: int
    step_size: float
    init_magnitude: float
    norm: str
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "freelb"
    runs_backward: ClassVar[bool] = True

    def initial_delta(self, ctx: StepContext) -> Any:
        """Uniform on real tokens; L2: norm about init_magnitude per example; L-inf: in [-init, init]."""
        noise = ctx.uniform() * 2 - 1
        noise = noise * ctx.mask
        if self.norm == "linf":
            return noise * self.init_magnitude
        dims = ctx.mask.sum(dim=(1, 2)) * ctx.hidden_size  # real tokens x hidden size, per example
        return noise * (self.init_magnitude / dims.sqrt()).view(-1, 1, 1)

    def ascend(self, delta: Any, grad: Any, ctx: StepContext) -> Any:
        """One normalised ascent step, then the projection onto the epsilon ball (epsilon 0: none)."""
        delta = delta + self.step_size * grad / per_example_norm(grad, self.norm).clamp(min=1e-8)
        if self.epsilon > 0:
            if self.norm == "l2":
                size = per_example_norm(delta, "l2")
                delta = delta * torch.where(size > self.epsilon, self.epsilon / size, torch.ones_like(size))
            else:
                delta = delta.clamp(-self.epsilon, self.epsilon)
        return (delta * ctx.mask).detach()

    def loss(self, ctx: StepContext) -> Any:
        delta = self.initial_delta(ctx)
        total = torch.zeros((), device=ctx.mask.device)
        for step in range(self.steps):
            delta.requires_grad_(True)
            loss = ctx.forward(delta) / self.steps
            ctx.backward(loss)  # parameter gradients accumulate over the K steps
            total = total + loss.detach()
            if step + 1 < self.steps:
                delta = self.ascend(delta.detach(), delta.grad.detach(), ctx)
        return total

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "epsilon": self.epsilon, "steps": self.steps, "step_size": self.step_size,
                "init_magnitude": self.init_magnitude, "norm": self.norm, "injection": self.injection}


METHOD = MethodDescriptor(
    name="freelb", display="FreeLB", order=10,
    options=FreeLBOptions, grid_axis="epsilon", search={"epsilon": MAX_NORM_DOMAIN},
    cost=lambda o: Cost(passes=float(o["steps"])),  # K forward and backward passes per micro-batch
    build=lambda o: FreeLB(o["epsilon"], o["steps"], o["step_size"], o["init_magnitude"], o["norm"], o["injection"]),
)
