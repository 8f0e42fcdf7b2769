"""Validated option types shared by the sweep schema and the method descriptors.

Pydantic only (no torch): reading and refusing a configuration must stay fast, and the method
descriptors that declare these options are read by the schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A cross-field refusal that names the field it is about (relative to the model raising it)."""

    def __init__(self, location: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.location = tuple(location)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _not_boolean(value: Any) -> Any:
    """YAML reads true/false/yes/no as booleans, which pydantic would quietly take as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    return value


Integer = Annotated[int, BeforeValidator(_not_boolean)]
Number = Annotated[float, BeforeValidator(_not_boolean)]
PositiveInt = Annotated[Integer, Field(ge=1)]
Seed = Annotated[Integer, Field(ge=0)]  # numpy's generators refuse negative seeds
Probability = Annotated[Number, Field(gt=0, le=1)]
LearningRate = Annotated[Number, Field(gt=0, lt=1)]


def listify(value: Any) -> Any:
    """`epsilon: 0.1` means the one-point grid [0.1]."""
    return value if isinstance(value, list) or value is None else [value]


def duplicates(values: Sequence[Any]) -> list[Any]:
    return sorted({v for i, v in enumerate(values) if v in values[:i]}, key=values.index)


def nonempty_unique(values: list, what: str) -> list:
    if not values:
        raise ValueError(f"{what} grid is empty: give at least one value")
    if duplicates(values):
        raise ValueError(f"{what} grid has duplicates {duplicates(values)}: each value once")
    return values


@dataclass(frozen=True)
class Domain:
    """What a searched parameter may take: the same values its grid or training field accepts."""

    low: float
    high: float  # exclusive
    integer: bool
    meaning: str
    low_inclusive: bool = False

    def admits(self, value: Any) -> bool:
        numeric = is_integer(value) or (isinstance(value, float) and not self.integer)
        above = self.low <= value if self.low_inclusive else self.low < value
        return numeric and math.isfinite(value) and above and value < self.high


LEARNING_RATE_DOMAIN = Domain(0.0, 1.0, False, "numbers in (0, 1)")


class TrainingOverride(Strict):
    """Per-method changes to the training hyper-parameters (e.g. the paper's RS-DA epochs)."""

    epochs: PositiveInt | None = None
    learning_rate: LearningRate | None = None
    max_updates: PositiveInt | None = None
    eval_every: PositiveInt | None = None  # the scripts evaluate the augmented-data runs less often
