"""The one rule that chooses each method's configuration: the sweeper's final stage and the report's
tables both choose with it, so that the tables show what the sweep ran with all seeds.

Best mean English dev accuracy over the configuration's seeds; ties on the mean go to the configuration
with more seeds, then to the smaller config_id (then the rest of the candidate's key: deterministic).
A configuration that ASHA stopped on some seed competes only where every configuration of its method
was stopped somewhere: its mean over the surviving seeds would flatter it.
"""

from __future__ import annotations

from typing import Collection, Sequence

import pandas as pd


def choose_configurations(dev: pd.DataFrame, *, within: Sequence[str] = ("method",),
                          candidate: Sequence[str] = ("config_id",), score: str = "accuracy",
                          stopped: Collection[str] = ()) -> pd.DataFrame:
    """One row per `within` group (e.g. per method): the chosen candidate's key, its `mean` and `n` (seeds).

    `dev` holds one row per seed of each candidate: the `within` and `candidate` columns (`config_id`
    among them) and the `score`. `stopped` names config_ids that ASHA stopped on some seed. Sorted by
    `within`.
    """
    within, candidate = list(within), list(candidate)
    if not within or "config_id" not in candidate:
        raise ValueError(f"choose within some columns, among candidates keyed by config_id; got {within}, {candidate}")
    means = (dev.groupby([*within, *candidate], sort=True, dropna=False)[score]
             .agg(mean="mean", n="size").reset_index())
    whole = ~means["config_id"].isin(set(stopped))
    means = means[whole | ~whole.groupby([means[k] for k in within], dropna=False).transform("any")]
    rest = [k for k in candidate if k != "config_id"]
    order = [*within, "mean", "n", "config_id", *rest]
    ranked = means.sort_values(order, ascending=[True] * len(within) + [False, False, True] + [True] * len(rest),
                               kind="stable")
    return ranked.groupby(within, sort=False, dropna=False).head(1).reset_index(drop=True)
