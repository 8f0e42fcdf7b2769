"""Shared builders for tests that run real trials on the synthetic world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables.spec import TrialSpec

METHOD_OPTIONS = {
    "baseline": {},
    "adv": {"epsilon": 0.1},
    "rs_rp": {"epsilon": 0.1},
    "rs_syntax": {"m": 2},
}


def trial_spec(world, root: Path, method: str = "baseline", seed: int = 0, **overrides: Any) -> TrialSpec:
    """A small, fast trial on the tiny world: TSV layout, all languages, lr high enough to move."""
    options = dict(METHOD_OPTIONS.get(method, {}))
    if method == "rs_da":
        options = {"m": 3, "synonyms": str(world.synonyms_path)}
    training = {"epochs": 2, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1,
                "eval_every": 2, **overrides.pop("training", {})}
    config = {
        "experiment": "test",
        "experiment_dir": str(root / "experiment"),
        "task": "pawsx",
        "model": str(world.model_dir),
        "method": method,
        "seed": seed,
        "data": {"kind": "tsv", "path": str(world.tsv_dir("pawsx"))},
        "languages": list(world.languages),
        "method_options": options,
        "training": training,
        "cache_dir": str(root / "cache"),
        **overrides,
    }
    return TrialSpec.from_dict(config)
