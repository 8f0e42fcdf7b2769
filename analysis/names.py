"""Names of the methods: how results spell them, how tables show them, what the paper calls them.

The installed methods' names come from their descriptors (trainables.methods); an experiment's own
experiment.json says how the run that made it described its methods (`Results.method_display`),
and a method neither knows is shown under its own name.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from trainables.methods import DESCRIPTORS

# Row names of the tables, in row order (the paper's five first, baseline first).
METHOD_DISPLAY: Mapping[str, str] = MappingProxyType({d.name: d.display for d in DESCRIPTORS.values()})

# The paper's model names (its Tables 1-3) for each of its methods; the baseline is its own reproduction of mBERT.
PAPER_MODEL: Mapping[str, str] = MappingProxyType(
    {d.name: d.paper_model for d in DESCRIPTORS.values() if d.paper_model is not None})

METHODS: tuple[str, ...] = tuple(METHOD_DISPLAY)

AVG = "avg"


def method_order(method: str) -> int:
    """Position of a method in row order; unknown names sort last."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def display_name(method: str, displays: Mapping[str, str] = METHOD_DISPLAY) -> str:
    return displays.get(method, method)


def configuration_display(method: str, config_label: str, displays: Mapping[str, str] = METHOD_DISPLAY) -> str:
    """Row label such as "RS-RP (eps=0.1)": the method's display name plus its hyper-parameters.

    The hyper-parameters come from the trial's `config_label` (e.g. "rs_rp eps=0.1") with the method
    name removed, so labels that carry other hyper-parameters (lr, ...) are shown in full.
    """
    display = display_name(method, displays)
    label = (config_label or "").strip()
    if label == method or not label:
        return display
    if label.startswith(method + " "):
        label = label[len(method) + 1 :].strip()
    return f"{display} ({label})"
