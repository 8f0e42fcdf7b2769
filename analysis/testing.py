"""Write experiment directories that follow docs/results-schema.md exactly, for tests and benchmarks.

Like `pandas.testing`, this is a helper for checking the package, not part of the analysis: it lets
tests and benchmarks build realistic results (several configurations per method, seeds, English dev
and test rows, generalized pairs, predictions) without training anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.load import METRICS_SCHEMA

PREDICTIONS_SCHEMA = pa.schema(
    [
        ("task", pa.string()), ("method", pa.string()), ("config_id", pa.string()), ("seed", pa.int64()),
        ("stage", pa.string()), ("split", pa.string()), ("lang1", pa.string()), ("lang2", pa.string()),
        ("example", pa.int64()), ("label", pa.int64()), ("prediction", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Config:
    """One configuration (a seed group's hyper-parameters)."""

    method: str
    config_id: str
    config_label: str
    epsilon: float | None = None
    m: int | None = None
    stage: str = "grid"


def config(method: str, *, epsilon: float | None = None, m: int | None = None, stage: str = "grid") -> Config:
    """A Config with an id and label in the sweeper's style ("rs_rp-eps0.1", "rs_rp eps=0.1")."""
    suffix = f"eps={epsilon:g}" if epsilon is not None else (f"m={m}" if m is not None else "")
    config_id = method + (f"-{suffix.replace('=', '')}" if suffix else "") + ("" if stage == "grid" else f"-{stage}")
    return Config(method, config_id, f"{method} {suffix}".strip(), epsilon, m, stage)


# accuracy(config, seed, lang1, lang2) -> fraction; dev(config, seed) -> fraction
AccuracyFn = Callable[[Config, int, str, str], float]
DevFn = Callable[[Config, int], float]


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), temporary)
    os.replace(temporary, path)


def _pairs(languages: Sequence[str], generalized: bool) -> list[tuple[str, str]]:
    return [(a, b) for a in languages for b in languages] if generalized else [(a, a) for a in languages]


def _predictions(accuracy: float, labels: np.ndarray, num_labels: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Predictions with round(accuracy * n) correct examples; returns them and the exact accuracy."""
    n = len(labels)
    correct = np.zeros(n, dtype=bool)
    correct[rng.permutation(n)[: int(round(accuracy * n))]] = True
    wrong = (labels + rng.integers(1, num_labels, size=n)) % num_labels
    return np.where(correct, labels, wrong), float(correct.mean())


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines a fake experiment directory."""

    name: str
    task: str
    languages: tuple[str, ...]
    configs: tuple[Config, ...]
    seeds: tuple[int, ...]
    baseline: str = "baseline"
    generalized: bool = False
    predictions: bool = False
    n_examples: int = 40
    num_labels: int = 2
    language_distances: Mapping[str, float] | None = None
    distance_name: str | None = None


def _metrics_rows(spec: ExperimentSpec, cfg: Config, seed: int, test_acc: Mapping[tuple[str, str], float], dev: float) -> list[dict]:
    common = dict(experiment=spec.name, task=spec.task, method=cfg.method, config_id=cfg.config_id,
                  config_label=cfg.config_label, epsilon=cfg.epsilon, m=cfg.m, seed=seed, stage=cfg.stage, best_step=100)
    rows = [dict(common, split="dev", lang1="en", lang2="en", accuracy=dev, n=spec.n_examples)]
    rows += [dict(common, split="test", lang1=a, lang2=b, accuracy=acc, n=spec.n_examples) for (a, b), acc in test_acc.items()]
    return rows


def write_trial(root: Path, spec: ExperimentSpec, cfg: Config, seed: int, accuracy: AccuracyFn, dev: DevFn) -> None:
    """One done cell: trial.json, predictions.parquet (optional), metrics.parquet (last)."""
    folder = root / "results" / cfg.config_id / f"seed-{seed}"
    rng = np.random.default_rng([seed, sum(map(ord, cfg.config_id))])
    labels = np.random.default_rng(12345).integers(0, spec.num_labels, size=spec.n_examples)
    test_acc, prediction_rows = {}, []
    for lang1, lang2 in _pairs(spec.languages, spec.generalized):
        value = float(accuracy(cfg, seed, lang1, lang2))
        if spec.predictions:
            predicted, value = _predictions(value, labels, spec.num_labels, rng)
            prediction_rows += [
                dict(task=spec.task, method=cfg.method, config_id=cfg.config_id, seed=seed, stage=cfg.stage, split="test",
                     lang1=lang1, lang2=lang2, example=i, label=int(labels[i]), prediction=int(predicted[i]))
                for i in range(spec.n_examples)
            ]
        test_acc[(lang1, lang2)] = value
    _write_json(folder / "trial.json", {"method": cfg.method, "config_id": cfg.config_id, "seed": seed})
    if spec.predictions:
        _write_parquet(folder / "predictions.parquet", prediction_rows, PREDICTIONS_SCHEMA)
    _write_parquet(folder / "metrics.parquet", _metrics_rows(spec, cfg, seed, test_acc, float(dev(cfg, seed))), METRICS_SCHEMA)


def write_experiment(
    root: str | Path,
    spec: ExperimentSpec,
    accuracy: AccuracyFn,
    dev: DevFn,
    *,
    skip: Sequence[tuple[str, int]] = (),
    planned_seeds: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """experiment.json, plan.json and one done cell per (config, seed) except those in `skip`.

    `planned_seeds` (config_id -> seeds) overrides what plan.json promises, to simulate unplanned
    or missing runs.
    """
    root = Path(root)
    document = {"experiment": spec.name, "task": spec.task, "languages": list(spec.languages),
                "baseline": spec.baseline, "seeds": list(spec.seeds)}
    if spec.language_distances is not None:
        document["language_distances"] = dict(spec.language_distances)
        document["distance_name"] = spec.distance_name
    _write_json(root / "experiment.json", document)
    plan = planned_seeds or {}
    cells = [
        {"method": c.method, "config_id": c.config_id, "config_label": c.config_label, "epsilon": c.epsilon,
         "m": c.m, "seed": s, "stage": c.stage}
        for c in spec.configs for s in plan.get(c.config_id, spec.seeds)
    ]
    _write_json(root / "plan.json", {"experiment": spec.name, "cells": cells})
    skipped = set(skip)
    for cfg in spec.configs:
        for seed in spec.seeds:
            if (cfg.config_id, seed) not in skipped:
                write_trial(root, spec, cfg, seed, accuracy, dev)
    return root
