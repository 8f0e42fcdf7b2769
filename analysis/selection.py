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


# ---------------------------------------------------------------------------------- per run
PER_RUN_SUFFIX = "per-run"
_RUN = ["experiment", "task", "method", "stage", "seed"]


def per_run_choices(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run (experiment, task, method, stage, seed): the configuration its own English dev accuracy picks.

    The reading of Section 4.1 that selects epsilon (or m) inside each run. Ties on a seed's dev accuracy
    go to the smaller config_id; a seed chooses among the configurations finished on it (a configuration
    missing on that seed is no candidate there). Only methods with several configurations in a stage are
    chosen per run; columns: the run's keys, config_id, config_label, epsilon, m, dev (fraction).
    """
    dev = metrics[(metrics["split"] == "dev") & (metrics["lang1"] == "en") & (metrics["lang2"] == "en")]
    counts = dev.groupby(["experiment", "task", "method", "stage"])["config_id"].transform("nunique")
    dev = dev[counts > 1]
    ranked = dev.sort_values([*_RUN, "accuracy", "config_id"], ascending=[True] * 5 + [False, True], kind="stable")
    chosen = ranked.groupby(_RUN, sort=False).head(1)
    return (chosen[[*_RUN, "config_id", "config_label", "epsilon", "m", "accuracy"]]
            .rename(columns={"accuracy": "dev"}).reset_index(drop=True))


def per_run_metrics(metrics: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """The metrics with each per-run-chosen method collapsed into one configuration `<method>-per-run`:
    every seed contributes the rows of the run its dev accuracy chose (epsilon and m vary by seed: NaN)."""
    if choices.empty:
        return metrics
    collapsed = metrics.merge(choices[["experiment", "task", "method", "stage"]].drop_duplicates(), how="left",
                              indicator=True)
    keep = collapsed["_merge"] == "left_only"
    picked = metrics.merge(choices[[*_RUN, "config_id"]], on=[*_RUN, "config_id"], how="inner")
    picked = picked.assign(config_id=picked["method"] + "-" + PER_RUN_SUFFIX, config_label=PER_RUN_SUFFIX,
                           epsilon=float("nan"), m=float("nan"))
    return pd.concat([metrics[keep.to_numpy()], picked], ignore_index=True)[metrics.columns]


def per_run_planned(planned: pd.DataFrame, choices: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Planned seeds of each collapsed method: the most any of its configurations planned."""
    if choices.empty:
        return planned
    methods = (metrics[["experiment", "method", "config_id", "stage"]].drop_duplicates()
               .merge(choices[["experiment", "method", "stage"]].drop_duplicates()))
    counts = methods.merge(planned, on=["experiment", "config_id", "stage"], how="inner")
    rows = counts.groupby(["experiment", "method", "stage"], as_index=False)["N"].max()
    rows = rows.assign(config_id=rows["method"] + "-" + PER_RUN_SUFFIX)[["experiment", "config_id", "stage", "N"]]
    return pd.concat([planned, rows], ignore_index=True)
