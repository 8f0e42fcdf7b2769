"""The one selection rule (analysis.selection) on hand-built frames, and both of its users agreeing."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.aggregate import select_configurations as report_selection
from analysis.selection import choose_configurations
from sweeper.selection import best_configurations


def seeds(rows: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """One row per seed: {(method, config_id): [dev accuracy of seed 0, seed 1, ...]}."""
    return pd.DataFrame([{"method": method, "config_id": config_id, "seed": seed, "accuracy": accuracy}
                         for (method, config_id), accuracies in rows.items()
                         for seed, accuracy in enumerate(accuracies)])


CASES = [
    # (what, per-seed dev accuracies, stopped config_ids, expected method -> config_id)
    ("best mean wins, whatever the seed counts",
     {("adv", "a"): [0.5, 0.5, 0.5], ("adv", "b"): [0.75]}, set(), {"adv": "b"}),
    ("tie on the mean: more seeds win over the smaller id",
     {("adv", "a"): [0.75], ("adv", "b"): [0.5, 1.0], ("adv", "c"): [0.75, 0.75, 0.75]}, set(), {"adv": "c"}),
    ("tie on mean and seeds: the smaller id",
     {("adv", "b"): [0.5, 0.75], ("adv", "a"): [0.75, 0.5]}, set(), {"adv": "a"}),
    ("each method on its own",
     {("adv", "a"): [0.5], ("adv", "b"): [0.25], ("rs_rp", "c"): [0.25], ("rs_rp", "d"): [0.5]}, set(),
     {"adv": "a", "rs_rp": "d"}),
    ("a configuration ASHA stopped on a seed loses to any whole one",
     {("adv", "a"): [0.9], ("adv", "b"): [0.5, 0.5]}, {"a"}, {"adv": "b"}),
    ("every configuration stopped somewhere: the best mean competes again",
     {("adv", "a"): [0.9], ("adv", "b"): [0.5]}, {"a", "b"}, {"adv": "a"}),
    ("a stop in another method changes nothing here",
     {("adv", "a"): [0.9], ("adv", "b"): [0.5], ("rs_rp", "c"): [0.25]}, {"c"}, {"adv": "a", "rs_rp": "c"}),
    ("stopped and tied: the stopped one loses even with more seeds",
     {("adv", "a"): [0.5, 0.5, 0.5], ("adv", "b"): [0.5]}, {"a"}, {"adv": "b"}),
]


@pytest.mark.parametrize("dev, stopped, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_selection_rule(dev, stopped, expected):
    chosen = choose_configurations(seeds(dev), stopped=stopped)
    assert dict(zip(chosen.method, chosen.config_id)) == expected
    assert list(chosen.method) == sorted(expected)
    assert best_configurations(seeds(dev), stopped) == expected  # the sweeper's final stage


def test_the_chosen_row_carries_its_mean_and_seed_count():
    chosen = choose_configurations(seeds({("adv", "a"): [0.5, 1.0], ("adv", "b"): [0.25]}))
    assert chosen[["config_id", "mean", "n"]].to_dict("records") == [{"config_id": "a", "mean": 0.75, "n": 2}]


def test_candidates_keyed_beyond_config_id_stay_apart():
    """The report's candidates are seed groups of an experiment: one configuration run by two experiments
    (say with different seeds) is two candidates, not one pooled mean."""
    dev = pd.DataFrame({"task": "pawsx", "method": "adv", "experiment": ["e1", "e1", "e2"],
                        "config_id": "a", "stage": "grid", "score": [50.0, 100.0, 80.0]})
    chosen = choose_configurations(dev, within=("task", "method"), candidate=("experiment", "config_id", "stage"),
                                   score="score")
    assert chosen[["experiment", "mean", "n"]].to_dict("records") == [{"experiment": "e2", "mean": 80.0, "n": 1}]


def metrics_rows(dev: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """The report's input for the same per-seed English dev accuracies (plus a test row it must ignore)."""
    rows = []
    for row in seeds(dev).to_dict("records"):
        common = {"experiment": "exp", "task": "pawsx", "config_label": row["config_id"], "epsilon": float("nan"),
                  "m": float("nan"), "stage": "grid", "lang1": "en", "lang2": "en", **row}
        rows += [{**common, "split": "dev"}, {**common, "split": "test", "accuracy": 1.0 - row["accuracy"]}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("dev, stopped, expected", [case[1:] for case in CASES if not case[2]],
                         ids=[case[0] for case in CASES if not case[2]])
def test_the_report_chooses_what_the_sweeper_chose(dev, stopped, expected):
    metrics = metrics_rows(dev)
    planned = metrics[["experiment", "config_id", "stage"]].drop_duplicates().assign(N=3)
    chosen = report_selection(metrics, planned)
    assert dict(zip(chosen.method, chosen.config_id)) == expected == best_configurations(seeds(dev), stopped)


# ------------------------------------------------------------------------------- per run
def run_rows(method, config_id, eps, seed, dev, test):
    base = {"experiment": "e", "task": "pawsx", "method": method, "config_id": config_id,
            "config_label": f"{method} eps={eps}" if eps else method, "epsilon": eps, "m": None,
            "stage": "grid", "seed": seed, "lang1": "en", "lang2": "en"}
    return [{**base, "split": "dev", "accuracy": dev}, {**base, "split": "test", "accuracy": test}]


# seed: (dev of A, dev of B); None: that configuration did not finish on the seed
PER_RUN_DEV = {0: (0.8, 0.7), 1: (0.6, 0.9), 2: (0.7, 0.7), 3: (None, 0.5)}


def per_run_frame() -> pd.DataFrame:
    rows = []
    for seed, (a, b) in PER_RUN_DEV.items():
        rows += run_rows("baseline", "baseline-0", None, seed, 0.75, 0.70)
        if a is not None:
            rows += run_rows("rs_rp", "rs_rp-a", 0.1, seed, a, 0.60 + seed / 100)
        rows += run_rows("rs_rp", "rs_rp-b", 1.0, seed, b, 0.80 + seed / 100)
    return pd.DataFrame(rows)


def test_each_run_picks_its_configuration_by_its_own_dev_accuracy():
    from analysis.selection import per_run_choices

    choices = per_run_choices(per_run_frame())
    assert list(choices["method"].unique()) == ["rs_rp"]  # one configuration: nothing to choose (baseline)
    picked = dict(zip(choices["seed"], choices["config_id"]))
    # seed 0: A is better; 1: B; 2: a tie, the smaller config_id; 3: A missing, B is the only candidate
    assert picked == {0: "rs_rp-a", 1: "rs_rp-b", 2: "rs_rp-a", 3: "rs_rp-b"}
    assert list(choices["dev"]) == [0.8, 0.9, 0.7, 0.5]


def test_per_run_metrics_take_each_seeds_rows_from_its_chosen_run():
    from analysis.selection import per_run_choices, per_run_metrics, per_run_planned

    metrics = per_run_frame()
    choices = per_run_choices(metrics)
    collapsed = per_run_metrics(metrics, choices)
    per_run = collapsed[(collapsed["config_id"] == "rs_rp-per-run") & (collapsed["split"] == "test")]
    assert dict(zip(per_run["seed"], per_run["accuracy"].round(6))) == {0: 0.60, 1: 0.81, 2: 0.62, 3: 0.83}
    assert set(collapsed["config_id"]) == {"baseline-0", "rs_rp-per-run"}
    assert per_run["epsilon"].isna().all() and (per_run["config_label"] == "per-run").all()
    assert len(collapsed[collapsed["method"] == "baseline"]) == 8  # untouched
    planned = pd.DataFrame({"experiment": ["e"] * 3, "config_id": ["baseline-0", "rs_rp-a", "rs_rp-b"],
                            "stage": ["grid"] * 3, "N": [4, 3, 4]})
    extended = per_run_planned(planned, choices, metrics)
    assert extended.set_index("config_id").loc["rs_rp-per-run", "N"] == 4
