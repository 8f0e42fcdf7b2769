"""Run a sweep on Ray Tune: prepare data once, fan cells out, survive crashes, resume.

Stages: the paper protocol runs every configuration with every seed (stage `grid`). The two-stage
protocol searches with a few seeds (stage `search`, Optuna and ASHA allowed), picks each method's
best configuration by mean English dev accuracy, and runs it with all seeds (stage `final`).
Each stage is one Tune experiment under `<experiment_dir>/tune-<stage>[-<method>]`, restorable
with `Tuner.restore`; the cells' own result folders are the source of truth for what is done.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

import yaml
from ray import tune

from sweeper import cluster, preflight
from sweeper import plan as planning
from sweeper import recovery
from sweeper.schema import SEARCHABLE, Sweep, dump_config, experiment_identity
from sweeper.yaml_errors import Where
from sweeper.status import cells_on_storage
from sweeper.status import read_plan as read_plan_file
from trainables import results
from trainables.spec import TrialSpec

METRIC = "best_dev_accuracy"
INTERRUPTED = 130


class ExperimentError(RuntimeError):
    """The experiment directory does not fit the request (exists without --resume, config changed)."""


@dataclass(frozen=True)
class RunOptions:
    experiment_dir: str
    resume: bool = False
    address: str | None = None  # None: start an embedded local Ray of our own
    num_cpus: int | None = None
    num_gpus: float | None = None
    out: TextIO = sys.stdout
    config_path: str | Path | None = None  # for file:line in refusals found after loading
    output_given: bool = False  # the folder came from --output (named so in refusals), not from storage
    placement_timeout: float | None = None  # None: 60 s embedded, 900 s on a cluster

    @property
    def location_field(self) -> str:
        """How refusals name the experiment folder's origin."""
        return "--output" if self.output_given else "storage"

    @property
    def placement_seconds(self) -> float:
        if self.placement_timeout is not None:
            return self.placement_timeout
        return cluster.EMBEDDED_PLACEMENT_TIMEOUT_S if self.address is None else cluster.CLUSTER_PLACEMENT_TIMEOUT_S


# ------------------------------------------------------------------------ experiment files
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


def write_experiment_json(resolved: planning.Resolved) -> None:
    sweep = resolved.sweep
    payload = {"experiment": sweep.experiment, "task": sweep.task, "languages": list(resolved.languages),
               "baseline": "baseline", "seeds": sweep.seed_list, "generalized": sweep.generalized,
               "protocol": sweep.selection.protocol, "model": resolved.model}
    if resolved.language_distances is not None:
        payload.update(language_distances=dict(resolved.language_distances), distance_name=resolved.distance_name)
    _write_json(results.join(resolved.experiment_dir, "experiment.json"), payload)


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


# ------------------------------------------------------------------------------- data, once
def prepare_data_once(resolved: planning.Resolved, cells: Sequence[planning.Cell], out: TextIO,
                      inputs: preflight.Inputs) -> planning.Resolved:
    """Fingerprint the data read by the checks, and tokenize every variant the cells need, before any trial starts.

    Trials get the fingerprints in their config and only memory-map the cache entries built here.
    """
    from trainables.prepare import fingerprints_of
    from trainables.trial import prepare_for

    started = time.perf_counter()
    raw, tokenizer = inputs.raw, inputs.tokenizer
    resolved = replace(resolved, fingerprints=fingerprints_of(raw))
    variants = data_variants(cells, resolved.fingerprints)
    for number, (spec, method) in enumerate(variants, start=1):
        prepared = prepare_for(spec, tokenizer, method, raw=raw)
        what = spec.config_label if method.augmentation else "train/dev/test"
        changed = prepared.train_info.get("changed_fraction")
        print(f"data {number}/{len(variants)}: {what}: {len(prepared.train)} training pairs"
              + (f", {100 * changed:.1f}% of source pairs changed by the augmentation" if changed is not None else "")
              + (" (tokenized now)" if prepared.built else " (cached)"), file=out, flush=True)
    print(f"data ready in {time.perf_counter() - started:.1f}s", file=out, flush=True)
    return resolved


def data_variants(cells: Sequence[planning.Cell], fingerprints: Mapping[str, str]) -> list[tuple[Any, Any]]:
    """One (spec, method) per distinct training set: every augmentation and its seed, plus the plain data."""
    from trainables.methods import build_method

    variants: dict[Any, tuple[Any, Any]] = {}
    for cell in cells:
        spec = TrialSpec.from_dict({**cell.trial, "data_fingerprints": dict(fingerprints)})
        method = build_method(spec.method, {**spec.method_options, "cache_dir": spec.cache_dir})
        key = None if method.augmentation is None else (
            json.dumps(method.describe(), sort_keys=True), spec.effective_augmentation_seed)
        variants.setdefault(key, (spec, method))
    return list(variants.values())


# ------------------------------------------------------------------------------------ trials
def trial_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """A Tune trial's config as the trainable reads it: the cell's fields merged into the common config."""
    trial = {k: v for k, v in config.items() if k != "cell"}
    trial.update(config.get("cell", {}))
    if "__trial_index__" in config:  # Optuna + Repeater: the repeat index picks the seed
        trial["seed"] = config["__seeds__"][config["__trial_index__"]]
    return trial


def sweep_trial(config: dict[str, Any]) -> None:
    """The trainable Tune runs."""
    from trainables.trial import training_function

    training_function(trial_fields(config))


class EarlyStops(tune.Callback):
    """Marks the cells ASHA stopped, so that they count as ended by design, not as missing or failed.

    Tune completes a stopped trial like a finished one, but without the trial's final report (the
    one with `finished`); an interrupted run completes nothing, so its cells stay resumable.
    """

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if "finished" in last:
            return
        results.mark_stopped(cell_of(trial.config), by="ASHA", evaluation=last.get("evaluation"),
                             best_dev_accuracy=last.get(METRIC), trial_id=trial.trial_id)


def cell_of(config: Mapping[str, Any]) -> str:
    """The result folder of the cell a Tune trial config runs."""
    spec = TrialSpec.from_dict(trial_fields(config))
    return results.cell_dir(spec.experiment_dir, spec.config_id, spec.seed)


# --------------------------------------------------------------------------------- progress
class ProgressLine(tune.Callback):
    """A Tune callback printing one line: done/running/failed/pending, elapsed, ETA."""

    def __init__(self, label: str, total: int, out: TextIO, every: float = 5.0):
        self.label, self.total, self.out, self.every = label, total, out, every
        self.started, self.last = time.time(), 0.0
        self.progress: dict[str, float] = {}
        self.tty = hasattr(out, "isatty") and out.isatty()

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles callbacks with its experiment state: the stream stays behind."""
        return {k: v for k, v in self.__dict__.items() if k != "out"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, out=sys.stdout)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress[trial.trial_id] = float(result.get("progress", result.get("finished", 0.0)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.progress[trial.trial_id] = 1.0

    def on_step_end(self, iteration, trials, **info):
        if time.time() - self.last >= self.every:
            self.print(trials)

    def on_experiment_end(self, trials, **info):
        self.print(trials, final=True)

    def print(self, trials, final: bool = False) -> None:
        self.last = time.time()
        line = progress_line(self.label, self.total, [t.status for t in trials], self.progress,
                             time.time() - self.started)
        print(line, file=self.out, end="\n" if final or not self.tty else "\r", flush=True)


def progress_line(label: str, total: int, statuses: Sequence[str], progress: Mapping[str, float],
                  elapsed: float) -> str:
    """`[label] done 3/15 running 2 failed 0 pending 10 | elapsed 0:42 | ETA 2:51`."""
    counts = defaultdict(int)
    for status in statuses:
        counts[status] += 1
    done, running, failed = counts["TERMINATED"], counts["RUNNING"], counts["ERROR"]
    pending = max(total - done - running - failed, 0)
    completed = sum(min(max(p, 0.0), 1.0) for p in progress.values())
    eta = elapsed * (total - completed) / completed if completed > 0 else float("nan")
    return (f"[{label}] done {done}/{total} running {running} failed {failed} pending {pending} | "
            f"elapsed {_clock(elapsed)} | ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no progress yet
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# ----------------------------------------------------------------------------------- tuner
@dataclass(frozen=True)
class Driver:
    """What every stage of one invocation shares: where to print and how long trials may wait for a place."""

    out: TextIO
    placement_timeout: float
    resume: bool


def _callbacks(resolved: planning.Resolved, name: str, total: int, driver: Driver, scheduler: Any) -> list[Any]:
    sweep = resolved.sweep
    progress = ProgressLine(f"{sweep.experiment} {name}", total, driver.out)
    watch = cluster.PlacementWatch(driver.placement_timeout, cluster.trial_request(sweep.resources))
    return [progress, watch] if scheduler is None else [progress, watch, EarlyStops()]


def _run_config(resolved: planning.Resolved, name: str, total: int, driver: Driver, scheduler: Any) -> Any:
    sweep = resolved.sweep
    return tune.RunConfig(
        name=name,
        storage_path=resolved.experiment_dir,
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=sweep.checkpoints_to_keep),
        callbacks=_callbacks(resolved, name, total, driver, scheduler),
        verbose=0,
    )


def _trainable(sweep: Sweep) -> Any:
    return tune.with_resources(sweep_trial, {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu})


def _common(resolved: planning.Resolved, stage: str) -> dict[str, Any]:
    """The config fields shared by every cell of a stage (the cell adds method, options, seed)."""
    return planning.trial_config(resolved, "baseline", {}, resolved.sweep.training.model_dump(), 0, stage)


def restore_tuner(path: str, resolved: planning.Resolved, name: str, total: int, driver: Driver,
                  scheduler: Any) -> Any:
    """`Tuner.restore` after giving every unfinished trial the checkpoint Tune's state expects.

    Tune restores the callbacks pickled with the first run (its clock, its placement timeout); this
    invocation's own replace them where Tune's run config can be reached.
    """
    sweep, out = resolved.sweep, driver.out
    try:
        repairs = recovery.repair_missing_checkpoints(path)
    except Exception as error:  # it reads Tune's private state format: never let it block a resume
        print(f"[{sweep.experiment}] warning: could not check {path} for missing checkpoints "
              f"({type(error).__name__}: {error}); restoring as Tune saved it", file=out)
        repairs = []
    for repair in repairs:
        print(f"[{sweep.experiment}] {recovery.describe(repair)}", file=out)
    tuner = tune.Tuner.restore(path, trainable=_trainable(sweep), resume_errored=True)
    run_config = getattr(getattr(tuner, "_local_tuner", None), "get_run_config", lambda: None)()
    if run_config is not None:
        run_config.callbacks = _callbacks(resolved, name, total, driver, scheduler)
    return tuner


def run_grid(resolved: planning.Resolved, name: str, cells: Sequence[planning.Cell], driver: Driver,
             scheduler: Any = None) -> Any:
    cell_fields = ("method", "method_options", "training", "seed", "stage")
    space = {**_common(resolved, cells[0].stage),
             "cell": tune.grid_search([{k: c.trial[k] for k in cell_fields} for c in cells])}
    path = results.join(resolved.experiment_dir, name)
    if driver.resume and tune.Tuner.can_restore(path):
        tuner = restore_tuner(path, resolved, name, len(cells), driver, scheduler)
    else:
        tuner = tune.Tuner(
            _trainable(resolved.sweep), param_space=space,
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=resolved.sweep.reuse_actors,
                                        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=_run_config(resolved, name, len(cells), driver, scheduler),
        )
    return tuner.fit()


def _trial_name(trial: Any) -> str:
    cell = trial.config.get("cell", {})
    method = cell.get("method", trial.config.get("method", "trial"))
    seed = cell.get("seed", trial.config.get("__trial_index__", ""))
    return f"{method}-s{seed}-{trial.trial_id}"


def _distribution(dist: Any) -> Any:
    if dist.loguniform is not None:
        return tune.loguniform(*dist.loguniform)
    if dist.uniform is not None:
        return tune.uniform(*dist.uniform)
    return tune.choice(list(dist.choice))


def run_optuna(resolved: planning.Resolved, method: str, stage: str, seeds: Sequence[int], driver: Driver,
               scheduler: Any = None) -> Any:
    """Optuna over the declared space for one method; each sampled configuration runs all `seeds`."""
    from optuna.samplers import TPESampler
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    sweep = resolved.sweep
    method_config = getattr(sweep.methods, method)
    options = planning.METHOD_GRIDS[method](method_config)[0]
    training = planning.training_for(sweep, method_config)
    for key, dist in sweep.search.space.items():
        owners = SEARCHABLE[key] or ()
        if key == "learning_rate":
            training[key] = _distribution(dist)
        elif method in owners:
            options[key] = _distribution(dist)
    space = {**planning.trial_config(resolved, method, options, training, 0, stage), "__seeds__": list(seeds)}
    name = f"tune-{stage}-{method}"
    path = results.join(resolved.experiment_dir, name)
    total = sweep.search.num_samples * len(seeds)
    if driver.resume and tune.Tuner.can_restore(path):
        return restore_tuner(path, resolved, name, total, driver, scheduler).fit()
    searcher = OptunaSearch(sampler=TPESampler(seed=sweep.search.seed), metric=METRIC, mode="max")
    tuner = tune.Tuner(
        _trainable(sweep), param_space=space,
        tune_config=tune.TuneConfig(search_alg=Repeater(searcher, repeat=len(seeds)),
                                    scheduler=scheduler, num_samples=sweep.search.num_samples * len(seeds),
                                    reuse_actors=sweep.reuse_actors, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=_run_config(resolved, name, total, driver, scheduler),
    )
    return tuner.fit()


def _asha(sweep: Sweep) -> Any:
    if sweep.asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # time is the loop's own evaluation count, which (unlike Tune's training_iteration) stays right when a
    # resumed trial's checkpoint was replaced by a newer one (sweeper.recovery); the final report (test
    # results, no count) is ignored by ASHA, its best dev accuracy was in the last evaluation's report
    return ASHAScheduler(time_attr="evaluation", metric=METRIC, mode="max",
                         grace_period=sweep.asha.grace_period, reduction_factor=sweep.asha.reduction_factor,
                         max_t=10**6)


# ------------------------------------------------------------------------------- selection
def _files_named(uri: str, name: str) -> list[tuple[Any, str]]:
    """(filesystem, path) of every file called `name` below `uri`."""
    fs, root = results.filesystem(uri)
    selector = results.pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return [(fs, info.path) for info in fs.get_file_info(selector) if info.is_file and info.base_name == name]


def finished_cells(experiment_dir: str) -> Any:
    """The English dev row of every finished cell (from the cells' own files; damaged ones are not finished)."""
    import pandas as pd

    tables = [table for fs, path in _files_named(results.join(experiment_dir, "results"), results.METRICS)
              if (table := _readable_table(fs, path)) is not None]
    if not tables:
        return pd.DataFrame(columns=results.METRICS_SCHEMA.names)
    frame = pd.concat(tables, ignore_index=True)
    return frame[frame.split == "dev"]


def _readable_table(fs: Any, path: str) -> Any:
    """A metrics file as a DataFrame; None when damaged (such a cell is not finished: it trains again)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, filesystem=fs).to_pandas()
    except (pa.ArrowException, OSError):
        return None


def select_configurations(experiment_dir: str, stage: str = "search") -> dict[str, str]:
    """Each method's configuration with the best mean English dev accuracy over its seeds."""
    dev = finished_cells(experiment_dir)
    trained_in = training_stages(experiment_dir)
    dev = dev[[trained_in.get((c, s)) == stage for c, s in zip(dev.config_id, dev.seed)]]
    stopped = {results.cell_key(path)[0]
               for _, path in _files_named(results.join(experiment_dir, "results"), results.STOPPED)}
    return best_configurations(dev, stopped)


def training_stages(experiment_dir: str) -> dict[tuple[str, int], str]:
    """(config_id, seed) -> the stage the cell was trained in, from its status.json.

    Not the results' own stage column: a chosen search seed is relabelled `final` when the final stage
    reuses it, and selection (again, on --resume) must still see it among the search results.
    """
    return {(cell["config_id"], cell["seed"]): cell["stage"] for cell in cells_on_storage(experiment_dir)}


def best_configurations(dev: Any, stopped: set[str]) -> dict[str, str]:
    """method -> config_id with the best mean dev `accuracy` over its finished seeds (ties: smaller id).

    A configuration that ASHA stopped on some seed competes only where every configuration of its method
    was stopped somewhere: its mean over the surviving seeds would flatter it.
    """
    means = dev.groupby(["method", "config_id"], sort=True).accuracy.mean().reset_index()
    means["whole"] = ~means.config_id.isin(stopped)
    means = means[means.whole | ~means.groupby("method").whole.transform("any")]
    best = means.sort_values(["method", "accuracy", "config_id"], ascending=[True, False, True])
    return dict(best.groupby("method").head(1)[["method", "config_id"]].itertuples(index=False, name=None))


def chosen_configuration(experiment_dir: str, config_id: str) -> tuple[str, dict, dict]:
    """(method, options, training) of a finished configuration, from one of its cells' trial.json."""
    for fs, path in _files_named(results.join(experiment_dir, "results", config_id), results.TRIAL_INFO):
        with fs.open_input_stream(path) as stream:
            try:
                spec = json.loads(stream.read())["spec"]
                return spec["method"], spec["method_options"], spec["training"]
            except (ValueError, KeyError, TypeError):  # a damaged copy: another seed's will do
                continue
    raise ExperimentError(f"{experiment_dir}: no readable trial.json for configuration {config_id}")


# ---------------------------------------------------------------------------------- stages
def run_stage(resolved: planning.Resolved, stage: str, driver: Driver) -> None:
    sweep = resolved.sweep
    seeds = planning.stage_seeds(sweep, stage)
    scheduler = _asha(sweep) if stage == "search" else None
    if sweep.search.algorithm == "optuna" and stage != "final":
        for method in sweep.methods.enabled():
            add_to_plan(resolved.experiment_dir, sweep.experiment, optuna=[
                {"method": method, "stage": stage, "configurations": sweep.search.num_samples, "seeds": seeds}])
            ended(run_optuna(resolved, method, stage, seeds, driver, scheduler), f"{stage} of {method}")
        return
    if stage == "final":
        chosen = select_configurations(resolved.experiment_dir, "search")
        configs = [chosen_configuration(resolved.experiment_dir, cid) for cid in chosen.values()]
    else:
        configs = None
    cells = _seed_major(planning.grid_cells(resolved, stage, seeds, configs))
    add_to_plan(resolved.experiment_dir, sweep.experiment, cells)
    ended(run_grid(resolved, f"tune-{stage}", cells, driver, scheduler), stage)


class Interrupted(Exception):
    """Tune stopped a stage on a signal (Ctrl+C) and saved its state; later stages must not start."""


def ended(grid: Any, stage: str) -> None:
    """Refuse to go on from a stage that Tune left with trials neither finished, failed nor stopped by ASHA.

    Tune marks every trial terminated when a signal ends the run, so the trials' own last reports tell:
    only a finished trial's carries `finished`.
    """
    unfinished = [r for r in grid if r.error is None and "finished" not in (r.metrics or {})
                  and not (r.config and _stopped(cell_of(r.config)))]  # no config: never started
    if unfinished:
        raise Interrupted(f"the {stage} stage was interrupted with {len(unfinished)} trial(s) unfinished")


def _stopped(directory: str) -> bool:
    try:
        return results.read_stopped(directory) is not None
    except results.DamagedFile:
        return False


def _seed_major(cells: list[planning.Cell]) -> list[planning.Cell]:
    """Run seed 0 of every configuration first: early results cover every method."""
    return sorted(cells, key=lambda c: c.seed)


def missing_cells(experiment_dir: str) -> list[dict[str, Any]]:
    """Planned cells with neither results nor ASHA's stop."""
    plan = read_plan(experiment_dir)
    directories = [results.cell_dir(experiment_dir, c["config_id"], c["seed"]) for c in plan["cells"]]
    return [c for c, d in zip(plan["cells"], directories) if not results.is_complete(d) and not _stopped(d)]


def cells_to_prepare(resolved: planning.Resolved) -> list[planning.Cell]:
    """Cells whose data the driver tokenizes up front (Optuna samples m later: its trials build it)."""
    sweep = resolved.sweep
    first = planning.first_stage(sweep)
    if sweep.search.algorithm == "grid":
        return planning.grid_cells(resolved, first, planning.stage_seeds(sweep, first))
    return [planning.make_cell(resolved, "baseline", {}, sweep.training.model_dump(), sweep.seed_list[0], first)]


# ---------------------------------------------------------------------- checks before writing
def check_locations(sweep: Sweep, options: RunOptions) -> tuple[Where, str]:
    """Storage and cache can be written, the experiment folder fits the request: the first checks, read-only."""
    where = Where.of(options.config_path)
    located = preflight.check_locations(sweep, options.experiment_dir, where, options.location_field)
    check_experiment_dir(sweep, options.experiment_dir, options.resume)
    return where, located


def check_inputs(resolved: planning.Resolved, options: RunOptions, where: Where) -> preflight.Inputs:
    """Model, synonyms, data, and what the embedded Ray will offer: the checks `run` and `--dry-run` share."""
    inputs = preflight.check_inputs(resolved, where)
    if options.address is None and not cluster.attached():
        cluster.check_embedded(resolved.sweep, options.num_cpus, options.num_gpus, where)
    return inputs


def check_on_ray(sweep: Sweep, options: RunOptions, where: Where, out: TextIO) -> str:
    """Once Ray is up: some node (or node type) can hold a trial; on a cluster, every node sees the storage."""
    cluster.check_placeable(sweep, where, embedded=options.address is None, out=out)
    if options.address is None:
        return "embedded Ray: a trial fits"
    count = cluster.check_storage_seen_by_every_node(options.experiment_dir, where(options.location_field))
    return f"storage {options.experiment_dir}: seen by all {count} node(s); a node can hold a trial"


def run_sweep(sweep: Sweep, options: RunOptions) -> int:
    """The whole experiment; returns 0 when every planned cell is done (or stopped by ASHA), 1 when some
    are not, INTERRUPTED (130, the shell's code for Ctrl+C) when a signal ended it.

    Every input is checked, and Ray started or joined, before the experiment folder is written: a
    refusal leaves the disk as it was, and the same command runs once the input is fixed.
    """
    out = options.out
    where, _ = check_locations(sweep, options)
    resolved = planning.resolve(sweep, options.experiment_dir)
    inputs = check_inputs(resolved, options, where)
    # trials checkpoint at every evaluation; Tune warns about its own snapshot rate at every one of them
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    session = cluster.start(options.address, options.num_cpus, options.num_gpus, out)
    created = False
    try:
        checked = check_on_ray(sweep, options, where, out)
        if options.address is not None:
            print(checked, file=out, flush=True)
        created = claim_experiment_dir(sweep, options.experiment_dir, options.resume)
        write_experiment_json(resolved)
        resolved = prepare_data_once(resolved, cells_to_prepare(resolved), out, inputs)
        driver = Driver(out, options.placement_seconds, options.resume)
        stages = ["search", "final"] if sweep.selection.protocol == "two_stage" else ["grid"]
        for stage in stages:
            run_stage(resolved, stage, driver)
    except Interrupted as interruption:
        print(f"{interruption}; its state is saved: continue with `python -m sweeper run CONFIG --output "
              f"{options.experiment_dir} --resume`", file=out)
        return INTERRUPTED
    except cluster.PlacementTimeout as timeout:
        raise ExperimentError(f"{where('resources')} {timeout}; {_after_placement_timeout(options, created)}") \
            from None
    finally:
        session.close()
    missing = missing_cells(options.experiment_dir)
    if missing:
        print(f"{len(missing)} planned cell(s) did not finish; see `python -m sweeper status "
              f"{options.experiment_dir}` and rerun with --resume", file=out)
        return 1
    print(f"all cells done: results in {results.join(options.experiment_dir, 'results')}", file=out)
    return 0


def _after_placement_timeout(options: RunOptions, created: bool) -> str:
    """Undo a claim that produced nothing: the folder this invocation created, while no trial ever started."""
    started = results.exists(results.join(options.experiment_dir, "results"))
    if created and not started and "://" not in options.experiment_dir:
        shutil.rmtree(options.experiment_dir)
        return f"no trial started, so {options.experiment_dir} (created by this run) was removed: fix and run again"
    return (f"nothing is lost: fix resources (or the cluster) and continue with `python -m sweeper run CONFIG "
            f"--output {options.experiment_dir} --resume`")
