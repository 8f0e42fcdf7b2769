"""RS-RP (Section 3.3): randomized smoothing with random perturbations, delta ~ U(L-inf ball of epsilon)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from trainables.methods.base import (DEFAULT_INJECTION, EPSILON_DOMAIN, EpsilonOptions, Method, MethodDescriptor,
                                     StepContext, uniform_linf)


class RandomPerturbationOptions(EpsilonOptions):
    pass


@dataclass(frozen=True)
class RandomPerturbation(Method):
    """Every step, delta drawn uniformly from the L-inf ball of radius epsilon."""

    epsilon: float
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "rs_rp"

    def loss(self, ctx: StepContext) -> Any:
        return ctx.forward(uniform_linf(ctx, self.epsilon))

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "epsilon": self.epsilon, "injection": self.injection}


METHOD = MethodDescriptor(
    name="rs_rp", display="RS-RP", paper_model="mBERT-RS-RP", order=2,
    options=RandomPerturbationOptions, grid_axis="epsilon", search={"epsilon": EPSILON_DOMAIN},
    build=lambda o: RandomPerturbation(o["epsilon"], o["injection"]),
)
