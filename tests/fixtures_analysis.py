"""Builders of small experiment directories with hand-chosen accuracies, for the analysis tests."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from analysis.testing import Config, ExperimentSpec, config, write_experiment

PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
WORLD_LANGUAGES = ("en", "xa", "xb", "xc")
WORLD_DISTANCES = {"en": 0.0, "xa": 0.2, "xb": 0.5, "xc": 1.0}


def write_values(
    root: Path,
    *,
    languages: Sequence[str],
    test: Mapping[str, Mapping[str, Sequence[float]]],
    dev: Mapping[str, float],
    configs: Sequence[Config],
    seeds: Sequence[int],
    name: str = "hand",
    task: str = "pawsx",
    skip: Sequence[tuple[str, int]] = (),
    planned_seeds: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """An experiment whose test accuracy is test[config_id][language][position of seed] (fractions).

    The dev accuracy of a configuration is dev[config_id] for every seed.
    """
    position = {seed: i for i, seed in enumerate(seeds)}
    spec = ExperimentSpec(name=name, task=task, languages=tuple(languages), configs=tuple(configs), seeds=tuple(seeds))
    return write_experiment(
        root,
        spec,
        lambda cfg, seed, lang1, lang2: test[cfg.config_id][lang1][position[seed]],
        lambda cfg, seed: dev[cfg.config_id],
        skip=skip,
        planned_seeds=planned_seeds,
    )


# The hand-computed two-language experiment of the table tests (3 seeds, fractions):
# baseline   en 80/82/84 (mean 82.0, sd 2)  de 70/72/74 (72.0)  per-seed avg 75/77/79 (77.0)
# rs_rp 0.1  en 79/81/83 (81.0: -1 each)    de 72/74/76 (74.0: +2 each)  avg 75.5/77.5/79.5 (77.5: +0.5 each)
# rs_rp 0.01 better test numbers but lower dev accuracy: never chosen.
BASELINE = config("baseline")
RS_RP_BIG = config("rs_rp", epsilon=0.1)
RS_RP_SMALL = config("rs_rp", epsilon=0.01)
HAND_TEST = {
    BASELINE.config_id: {"en": [0.80, 0.82, 0.84], "de": [0.70, 0.72, 0.74]},
    RS_RP_BIG.config_id: {"en": [0.79, 0.81, 0.83], "de": [0.72, 0.74, 0.76]},
    RS_RP_SMALL.config_id: {"en": [0.90, 0.90, 0.90], "de": [0.90, 0.90, 0.90]},
}
HAND_DEV = {BASELINE.config_id: 0.85, RS_RP_BIG.config_id: 0.86, RS_RP_SMALL.config_id: 0.84}


def write_hand_experiment(root: Path, **overrides) -> Path:
    """The hand-computed experiment above (en, de; seeds 0, 1, 2)."""
    arguments = dict(languages=("en", "de"), test=HAND_TEST, dev=HAND_DEV,
                     configs=(BASELINE, RS_RP_BIG, RS_RP_SMALL), seeds=(0, 1, 2))
    arguments.update(overrides)
    return write_values(root, **arguments)


WORLD_GAIN = {"baseline": 0.0, "adv": 0.002, "rs_rp": 0.02, "rs_da": 0.03, "rs_syntax": 0.005}


def world_accuracy(cfg: Config, seed: int, lang1: str, lang2: str) -> float:
    """A synthetic world: accuracy falls with distance, robust methods gain more far from English."""
    distance = (WORLD_DISTANCES[lang1] + WORLD_DISTANCES[lang2]) / 2
    noise = np.random.default_rng([seed, sum(map(ord, cfg.config_id)), ord(lang1[-1]), ord(lang2[-1])]).normal(0, 0.003)
    m_bonus = 0.002 * (cfg.m or 0)
    return 0.80 - 0.10 * distance + (WORLD_GAIN[cfg.method] + m_bonus) * distance + 0.01 * seed + noise


def world_dev(cfg: Config, seed: int) -> float:
    return 0.85 + 0.1 * (cfg.epsilon or 0.0) + 0.001 * (cfg.m or 0) + 0.001 * seed


WORLD_CONFIGS = (
    config("baseline"),
    config("adv", epsilon=0.01),
    config("adv", epsilon=0.1),
    config("rs_rp", epsilon=0.01),
    config("rs_rp", epsilon=0.1),
    config("rs_da", m=2),
    config("rs_da", m=5),
    config("rs_syntax", m=2),
    config("rs_syntax", m=5),
)


def write_world_experiment(root: Path, *, task: str = "pawsx", name: str = "world", seeds: Sequence[int] = tuple(range(5)),
                           predictions: bool = True, num_labels: int = 2) -> Path:
    """A synthetic-world sweep of all five methods: generalized pairs, predictions, distances."""
    spec = ExperimentSpec(
        name=name, task=task, languages=WORLD_LANGUAGES, configs=WORLD_CONFIGS, seeds=tuple(seeds),
        generalized=True, predictions=predictions, n_examples=200, num_labels=num_labels,
        language_distances=WORLD_DISTANCES, distance_name="embedding misalignment",
    )
    return write_experiment(root, spec, world_accuracy, world_dev)
