"""Seed-level scores, their means/sd/n, and the paper's configuration selection, as pure DataFrame functions.

Scores here are accuracy in percentage points (the tables' unit); results store fractions.
`stage == "search"` rows are never table material: they are dropped on entry.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from analysis.names import AVG, method_order
from analysis.selection import choose_configurations

GROUP = ["experiment", "task", "method", "config_id", "config_label", "epsilon", "m", "stage"]
TABLE_STAGES = ("grid", "final")
# When a method has final-stage groups (two-stage protocol), they are its candidates; else grid groups.
STAGE_PREFERENCE = {"final": 0, "grid": 1}


def table_material(metrics: pd.DataFrame) -> pd.DataFrame:
    """Rows that may appear in a table: every stage except `search`."""
    return metrics[metrics["stage"].isin(TABLE_STAGES)]


def seed_scores(metrics: pd.DataFrame, *, generalized: bool = False) -> pd.DataFrame:
    """Per-seed test accuracy in points.

    Standard setting (default): rows with lang1 == lang2, language in column `language`.
    Generalized: every (lang1, lang2) pair, kept in `lang1` and `lang2`.
    """
    rows = table_material(metrics)
    rows = rows[rows["split"] == "test"]
    if not generalized:
        rows = rows[rows["lang1"] == rows["lang2"]]
    scores = rows[[*GROUP, "seed", "lang1", "lang2"]].copy()
    scores["score"] = rows["accuracy"].to_numpy() * 100.0
    if not generalized:
        scores = scores.drop(columns="lang2").rename(columns={"lang1": "language"})
    return scores.reset_index(drop=True)


def seed_averages(scores: pd.DataFrame, languages: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The avg column's per-seed values: each seed averaged over all its task's languages first.

    A seed missing any of the task's languages gets no average (it would not be comparable).
    """
    allowed = pd.DataFrame(
        [(task, language) for task, langs in languages.items() for language in langs], columns=["task", "language"]
    )
    wanted = scores.merge(allowed, on=["task", "language"], how="inner")
    keys = [*GROUP, "seed"]
    grouped = wanted.groupby(keys, dropna=False, sort=False)["score"].agg(["mean", "size"]).reset_index()
    expected = grouped["task"].map({task: len(langs) for task, langs in languages.items()})
    grouped = grouped[grouped["size"] == expected]
    averages = grouped.drop(columns="size").rename(columns={"mean": "score"})
    averages["language"] = AVG
    return averages[[*GROUP, "seed", "language", "score"]].reset_index(drop=True)


def summarize(scores: pd.DataFrame, planned: pd.DataFrame, by: Sequence[str] = ("language",)) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1) and number of seeds per group, with N (planned seeds) merged in."""
    keys = [*GROUP, *by]
    summary = (
        scores.groupby(keys, dropna=False, sort=False)["score"]
        .agg(mean="mean", std=lambda s: s.std(ddof=1), n="size")
        .reset_index()
    )
    summary = summary.merge(planned, on=["experiment", "config_id", "stage"], how="left")
    return summary


def english_dev(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-seed English dev accuracy (points, column `score`) of the table material: what selection reads."""
    rows = table_material(metrics)
    rows = rows[(rows["split"] == "dev") & (rows["lang1"] == "en") & (rows["lang2"] == "en")]
    return rows.assign(score=rows["accuracy"] * 100.0)


def dev_means(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean English dev accuracy (points) and seed count per seed group: the selection criterion."""
    return (
        english_dev(metrics)
        .groupby(GROUP, dropna=False, sort=False)["score"]
        .agg(dev_mean="mean", dev_n="size")
        .reset_index()
    )


def select_configurations(metrics: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method), the configuration with the highest mean English dev accuracy (the paper's protocol).

    Candidates are the method's final-stage seed groups when it has any, else its grid groups; among
    them `analysis.selection.choose_configurations` decides (ties: more seeds, then smaller config_id),
    the rule the sweeper's final stage chose with.
    """
    dev = dev_means(metrics).merge(planned, on=["experiment", "config_id", "stage"], how="left")
    if dev.empty:
        return dev.assign(stage_rank=pd.Series(dtype="int64"))
    rows = english_dev(metrics)
    rank = rows["stage"].map(STAGE_PREFERENCE)
    rows = rows[rank == rank.groupby([rows["task"], rows["method"]]).transform("min")]
    keys = ["experiment", "config_id", "stage"]
    picked = choose_configurations(rows, within=("task", "method"), candidate=keys, score="score")
    chosen = dev.merge(picked[keys], on=keys, how="inner").sort_values(["task", "method"])
    chosen = chosen.assign(order=chosen["method"].map(method_order))
    return chosen.sort_values(["task", "order"], kind="stable").drop(columns=["order"]).reset_index(drop=True)


def restrict_to(scores: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Scores of the chosen seed groups only."""
    keys = ["experiment", "config_id", "stage"]
    return scores.merge(chosen[keys], on=keys, how="inner")


def seed_matrix(scores: pd.DataFrame, columns: str | Sequence[str] = "language") -> pd.DataFrame:
    """seeds x columns matrix of one seed group's scores (NaN where a seed lacks a column)."""
    return scores.pivot_table(index="seed", columns=columns, values="score", aggfunc="first")


def generalized_matrix(scores: pd.DataFrame, languages: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds per (sentence-1 language, sentence-2 language), with row/column averages.

    Rows are sentence-1 languages, columns sentence-2 languages, both in `languages` order; the
    `avg` column averages each row, the `avg` row each column (its corner is the overall mean).
    """
    means = scores.groupby(["lang1", "lang2"])["score"].mean().unstack("lang2")
    present = [lang for lang in languages if lang in means.index]
    matrix = means.reindex(index=present, columns=[lang for lang in languages if lang in means.columns])
    matrix[AVG] = matrix.mean(axis=1)
    matrix.loc[AVG] = matrix.mean(axis=0)
    matrix.index.name, matrix.columns.name = "lang1", "lang2"
    return matrix


def m_ablation(summary_avg: pd.DataFrame, method: str) -> pd.DataFrame:
    """Average accuracy per value of m for one method (the paper's Figure 3), sorted by m."""
    rows = summary_avg[(summary_avg["method"] == method) & summary_avg["m"].notna()]
    return rows.sort_values("m")[["task", "m", "config_id", "stage", "mean", "std", "n", "N"]].reset_index(drop=True)


def summarize_all(metrics: pd.DataFrame, planned: pd.DataFrame, languages: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Mean, sd and n (and planned N) for every configuration, every language pair and the avg column.

    One row per (task, method, configuration, stage, lang1, lang2); the avg column is the row with
    lang1 == lang2 == "avg" (per-seed averages over the task's languages, as in the tables).
    """
    pairs = seed_scores(metrics, generalized=True)
    standard = seed_scores(metrics)
    averages = seed_averages(standard, languages).assign(lang1=AVG, lang2=AVG).drop(columns="language")
    scores = pd.concat([pairs, averages], ignore_index=True)
    return summarize(scores, planned, by=("lang1", "lang2"))
