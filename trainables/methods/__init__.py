"""The methods: one file each in this package, found here by their `METHOD` descriptor.

Adding a method is adding a file (README, "Adding a method"): every registry (the sweep schema's
`methods:` settings, the plan's grids and costs, Optuna's searchable options, the trial's hooks, the
analysis's display names) is derived from `DESCRIPTORS`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import MappingProxyType
from typing import Any, Mapping

from trainables.methods.base import (Augmentation, Cost, Method, MethodDescriptor, MethodOptions, StepContext,
                                     uniform_linf)


def _discovered() -> Mapping[str, MethodDescriptor]:
    found: list[MethodDescriptor] = []
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        descriptor = getattr(importlib.import_module(f"{__name__}.{module.name}"), "METHOD", None)
        if not isinstance(descriptor, MethodDescriptor):
            raise TypeError(f"{__name__}.{module.name} defines no METHOD = MethodDescriptor(...)")
        found.append(descriptor)
    names = [d.name for d in found]
    if len(set(names)) != len(names):
        raise TypeError(f"two method files describe the same method name: {sorted(names)}")
    return MappingProxyType({d.name: d for d in sorted(found, key=lambda d: (d.order, d.name))})


DESCRIPTORS: Mapping[str, MethodDescriptor] = _discovered()  # in row order: the paper's five first


def descriptor(name: str) -> MethodDescriptor:
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(DESCRIPTORS)}") from None


def build_method(name: str, options: Mapping[str, Any]) -> Method:
    """The hooks of one grid point; `options` may omit defaults and carry `cache_dir`."""
    described = descriptor(name)
    return described.build({**described.point(options), "cache_dir": options.get("cache_dir")})


# the paper's methods by their class names, for tests and benchmarks that build them directly
from trainables.methods.adv import Adversarial, pgd_linf  # noqa: E402
from trainables.methods.baseline import Baseline  # noqa: E402
from trainables.methods.rs_da import SynonymAugmentation  # noqa: E402
from trainables.methods.rs_rp import RandomPerturbation  # noqa: E402
from trainables.methods.rs_syntax import SyntaxAugmentation  # noqa: E402


def __getattr__(name: str) -> Any:
    """EmbeddingInjector (torch) only when asked for: importing the registry stays torch-free."""
    if name == "EmbeddingInjector":
        from trainables.injection import EmbeddingInjector

        return EmbeddingInjector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Adversarial", "Augmentation", "Baseline", "Cost", "DESCRIPTORS", "EmbeddingInjector", "Method",
           "MethodDescriptor", "MethodOptions", "RandomPerturbation", "StepContext", "SynonymAugmentation",
           "SyntaxAugmentation", "build_method", "descriptor", "pgd_linf", "uniform_linf"]
