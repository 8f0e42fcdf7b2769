"""The experiment folder's own files: sweep.yaml (claimed once, held equal on --resume), experiment.json
(what analysis reads about the experiment) and plan.json (every expected cell, added stage by stage).

Every check here reads only: the folder is written (`claim_experiment_dir`) after all checks passed.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import yaml

from sweeper import plan as planning
from sweeper.schema import Sweep, dump_config, experiment_identity
from sweeper.status import read_plan as read_plan_file
from trainables import results
from trainables.methods import DESCRIPTORS


class ExperimentError(RuntimeError):
    """The experiment directory does not fit the request (exists without --resume, config changed)."""


def _write_json(uri: str, payload: Any) -> None:
    results.write_bytes(uri, json.dumps(payload, indent=1, default=str).encode())


def _read_text(uri: str) -> str:
    return results.read_bytes(uri).decode()


def stored_configuration(stored_text: str) -> Sweep | None:
    """The experiment's sweep.yaml through today's models; None when it does not read as one."""
    try:
        return Sweep.model_validate(yaml.safe_load(stored_text))
    except (yaml.YAMLError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def same_configuration(stored_text: str, sweep: Sweep) -> bool:
    """Compared through today's models, so that a setting added since (at its default) is no change;
    settings that only say how to run (config.RUN_ONLY: resources, ...) may change."""
    stored = stored_configuration(stored_text)
    return stored is not None and experiment_identity(stored) == experiment_identity(sweep)


def check_experiment_dir(sweep: Sweep, experiment_dir: str, resume: bool) -> None:
    """Refuse to mix two experiments in one directory, or --resume with a changed config; writes nothing."""
    stored = results.join(experiment_dir, "sweep.yaml")
    if not results.exists(stored):
        if resume:
            raise ExperimentError(f"{experiment_dir}: nothing to resume (no sweep.yaml); run without --resume")
        found = folder_entries(experiment_dir)
        if found:
            listing = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise ExperimentError(f"{experiment_dir}: not empty and not an experiment (no sweep.yaml; holds "
                                  f"{listing}); an experiment needs a folder of its own: choose another --output")
        return
    if not resume:
        raise ExperimentError(f"{experiment_dir}: an experiment already exists here; "
                              "pass --resume to continue it or choose another --output")
    text = _read_text(stored)
    if stored_configuration(text) is None:
        raise ExperimentError(f"{stored}: damaged (does not read as a sweep configuration); resuming needs it: "
                              "restore it from your config file (a copy of what was run) or choose another --output")
    if not same_configuration(text, sweep):
        raise ExperimentError(f"{stored} differs from the configuration given: resuming would "
                              "mix two experiments; run the changed configuration with another --output")


def folder_entries(location: str) -> list[str]:
    """Names directly inside a folder (none when it does not exist); a file there counts as itself."""
    fs, path = results.filesystem(location)
    info = fs.get_file_info(path)
    if info.type == results.pafs.FileType.File:
        raise ExperimentError(f"{location}: is a file; the experiment needs a folder")
    selector = results.pafs.FileSelector(path, allow_not_found=True)
    return sorted(entry.base_name for entry in fs.get_file_info(selector))


def claim_experiment_dir(sweep: Sweep, experiment_dir: str, resume: bool) -> bool:
    """Write sweep.yaml into a new experiment folder (after every check); True when this call created it."""
    check_experiment_dir(sweep, experiment_dir, resume)
    if resume:
        return False
    created = not results.exists(experiment_dir)
    results.write_bytes(results.join(experiment_dir, "sweep.yaml"), dump_config(sweep).encode())
    return created


def write_experiment_json(resolved: planning.Resolved, kept_rows: Mapping[str, Mapping[str, int]] | None = None) -> None:
    sweep = resolved.sweep
    payload = {"experiment": sweep.experiment, "task": sweep.task, "languages": list(resolved.languages),
               "baseline": "baseline", "seeds": sweep.seed_list, "generalized": sweep.generalized,
               "protocol": sweep.selection.protocol, "model": resolved.model,
               "methods": method_descriptions(sweep)}
    if kept_rows is not None:  # rows with an empty or placeholder sentence, per split/language (allow_empty keeps them)
        payload["kept_rows"] = {name: dict(counts) for name, counts in kept_rows.items()}
    if resolved.language_distances is not None:
        payload.update(language_distances=dict(resolved.language_distances), distance_name=resolved.distance_name)
    _write_json(results.join(resolved.experiment_dir, "experiment.json"), payload)


def method_descriptions(sweep: Sweep) -> dict[str, dict[str, Any]]:
    """How this run names its methods, so that a report made where a method is not installed still can."""
    return {name: {"display": DESCRIPTORS[name].display, "paper_model": DESCRIPTORS[name].paper_model,
                   "grid_axis": DESCRIPTORS[name].grid_axis} for name in sweep.methods.enabled()}


def read_plan(experiment_dir: str) -> dict[str, Any]:
    """plan.json; a damaged one counts as empty (add_to_plan writes it again from the configuration)."""
    return read_plan_file(experiment_dir)[0]


def add_to_plan(experiment_dir: str, experiment: str, cells: Sequence[planning.Cell] = (),
                optuna: Sequence[Mapping[str, Any]] = ()) -> None:
    """Record expected cells (idempotent: a resumed stage adds nothing twice)."""
    current = read_plan(experiment_dir)
    known = {(c["config_id"], c["seed"], c["stage"]) for c in current["cells"]}
    current["cells"] += [c.as_plan_row() for c in cells if (c.config_id, c.seed, c.stage) not in known]
    current["optuna"] += [o for o in optuna if o not in current["optuna"]]
    current["experiment"] = experiment
    _write_json(results.join(experiment_dir, "plan.json"), current)
