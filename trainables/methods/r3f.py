"""R3F (Aghajanyan et al., ICLR 2021): cross-entropy plus lambda times the symmetric KL divergence
between the output distributions of the clean input and of noisy word embeddings.

Follows fairseq's `examples/rxf/rxf_src/sentence_prediction_r3f.py`: noise U(-epsilon, epsilon) (its
default) or N(0, epsilon^2) on the token embeddings before positions and LayerNorm; the noisy pass
starts from the embeddings detached from their lookup, the clean pass carries every gradient; the
symmetric KL is summed over classes and averaged over the batch, added to the mean cross-entropy with
weight lambda. Defaults as in that code: epsilon 1e-5, lambda 1.0, uniform noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from trainables.methods.base import (DEFAULT_INJECTION, EPSILON_DOMAIN, Cost, EpsilonOptions, F, Method,
                                     MethodDescriptor, StepContext)
from trainables.options import Number


class R3FOptions(EpsilonOptions):
    epsilon: list[Number] | None = [1e-5]  # the noise scale (normal: sigma; uniform: half-width)
    r3f_lambda: Annotated[Number, Field(gt=0)] = 1.0
    noise: Literal["uniform", "normal"] = "uniform"


def symmetric_kl_per_example(noisy: Any, clean: Any) -> Any:
    """KL(clean || noisy) + KL(noisy || clean) of each example, summed over classes: (B,)."""
    forward = F.kl_div(F.log_softmax(noisy, dim=-1), F.softmax(clean, dim=-1), reduction="none").sum(-1)
    backward = F.kl_div(F.log_softmax(clean, dim=-1), F.softmax(noisy, dim=-1), reduction="none").sum(-1)
    return forward + backward


def symmetric_kl(noisy: Any, clean: Any) -> Any:
    """KL(clean || noisy) + KL(noisy || clean), summed over classes, averaged over the batch."""
    return symmetric_kl_per_example(noisy, clean).mean()


@dataclass(frozen=True)
class R3F(Method):
    epsilon: float
    r3f_lambda: float
    noise: str
    injection: str = DEFAULT_INJECTION
    name: ClassVar[str] = "r3f"

    def sample_noise(self, ctx: StepContext) -> Any:
        if self.noise == "normal":
            draw = ctx.normal() * self.epsilon
        else:
            draw = (ctx.uniform() * 2 - 1) * self.epsilon
        return draw * ctx.mask

    def loss(self, ctx: StepContext) -> Any:
        clean = ctx.logits(None)
        noisy = ctx.logits(self.sample_noise(ctx), detach=True)
        return ctx.loss_of(clean) + self.r3f_lambda * ctx.mean_over_examples(symmetric_kl_per_example(noisy, clean))

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "epsilon": self.epsilon, "r3f_lambda": self.r3f_lambda, "noise": self.noise,
                "injection": self.injection}


METHOD = MethodDescriptor(
    name="r3f", display="R3F", order=11,
    options=R3FOptions, grid_axis="epsilon", search={"epsilon": EPSILON_DOMAIN},
    cost=lambda o: Cost(passes=2.0),  # a clean and a noisy forward, one backward through both
    build=lambda o: R3F(o["epsilon"], o["r3f_lambda"], o["noise"], o["injection"]),
)
