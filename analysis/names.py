"""Names of the paper's methods: how results spell them, how tables show them, what the paper calls them.

One registry per use, so adding a method is one line in each and never an if/elif chain.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# Row names of the tables, in the paper's row order (baseline first).
METHOD_DISPLAY: Mapping[str, str] = MappingProxyType(
    {
        "baseline": "Baseline",
        "adv": "ADV",
        "rs_rp": "RS-RP",
        "rs_da": "RS-DA",
        "rs_syntax": "RS-syntax",
    }
)

# The paper's model names (its Tables 1-3) for each method; the baseline is its own reproduction of mBERT.
PAPER_MODEL: Mapping[str, str] = MappingProxyType(
    {
        "baseline": "mBERT",
        "adv": "mBERT-ADV",
        "rs_rp": "mBERT-RS-RP",
        "rs_da": "mBERT-RS-DA",
        "rs_syntax": "mBERT-RS-syntax",
    }
)

METHODS: tuple[str, ...] = tuple(METHOD_DISPLAY)

# Methods whose configurations differ by m (copies), the x axis of the paper's Figure 3.
M_METHODS: tuple[str, ...] = ("rs_da", "rs_syntax")

AVG = "avg"


def method_order(method: str) -> int:
    """Position of a method in the paper's row order; unknown names sort last."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def configuration_display(method: str, config_label: str) -> str:
    """Row label such as "RS-RP (eps=0.1)": the method's display name plus its hyper-parameters.

    The hyper-parameters come from the trial's `config_label` (e.g. "rs_rp eps=0.1") with the method
    name removed, so labels that carry other hyper-parameters (lr, ...) are shown in full.
    """
    display = METHOD_DISPLAY.get(method, method)
    label = (config_label or "").strip()
    if label == method or not label:
        return display
    if label.startswith(method + " "):
        label = label[len(method) + 1 :].strip()
    return f"{display} ({label})"
