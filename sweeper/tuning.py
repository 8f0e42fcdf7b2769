"""The Ray Tune side of a stage: the trainable, grid and Optuna tuners, ASHA, restoring a saved
experiment, and the callbacks (the progress line, ASHA's stops recorded as such, MLflow and W&B where the
config asks for them).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence, TextIO

from ray import tune

from sweeper import cluster, recovery, tracking
from sweeper import plan as planning
from sweeper.schema import SEARCHABLE, Sweep
from trainables import results
from trainables.methods import DESCRIPTORS
from trainables.spec import TrialSpec

METRIC = "best_dev_accuracy"


def trial_spec(config: Mapping[str, Any]) -> TrialSpec:
    """What a Tune trial runs: its config's `trial` (a `TrialSpec.to_dict()`, Tune's samples filled in)."""
    spec = TrialSpec.from_dict(config["trial"] if "trial" in config else _older_layout(config))
    if "__trial_index__" in config:  # Optuna + Repeater: the repeat index picks the seed (or the seed block)
        picked = config["__seeds__"][config["__trial_index__"]]
        block = tuple(picked) if isinstance(picked, (list, tuple)) else (picked,)
        spec = replace(spec, seed=block[0], seeds=block if len(block) > 1 else ())
    return spec


def _older_layout(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial config saved by a sweeper before the one-form spec (Tune state of an experiment that an
    upgrade interrupted): the common fields with the cell's own (`cell`: method, options, training,
    seed, stage) over them; an Optuna space was the spec's fields themselves."""
    fields = {k: v for k, v in config.items() if k != "cell"}
    fields.update(config.get("cell", {}))
    return fields


def sweep_trial(config: dict[str, Any]) -> None:
    """The trainable Tune runs."""
    from trainables.trial import training_function

    training_function(trial_spec(config).to_dict())


class EarlyStops(tune.Callback):
    """Marks the cells ASHA stopped, so that they count as ended by design, not as missing or failed.

    Tune completes a stopped trial like a finished one, but without the trial's final report (the
    one with `finished`); an interrupted run completes nothing, so its cells stay resumable.
    """

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if "finished" in last:
            return
        for cell in cells_of(trial.config):  # a seed block is stopped as a whole, by its members' mean
            results.mark_stopped(cell, by="ASHA", evaluation=last.get("evaluation"),
                                 best_dev_accuracy=last.get(METRIC), trial_id=trial.trial_id)


def cells_of(config: Mapping[str, Any]) -> list[str]:
    """The result folders of the cells a Tune trial config runs (one; a seed block's members)."""
    return [results.cell_dir(m.experiment_dir, m.config_id, m.seed) for m in trial_spec(config).members()]


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
    trackers = tracking.callbacks(sweep, trial_spec, f"{sweep.experiment} {name}", driver.out)
    return [progress, watch, *([] if scheduler is None else [EarlyStops()]), *trackers]


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
    specs = planning.trials(cells, resolved.sweep.execution.seeds_per_trial)
    space = {"trial": tune.grid_search([spec.to_dict() for spec in specs])}
    path = results.join(resolved.experiment_dir, name)
    if driver.resume and tune.Tuner.can_restore(path):
        tuner = restore_tuner(path, resolved, name, len(specs), driver, scheduler)
    else:
        tuner = tune.Tuner(
            _trainable(resolved.sweep), param_space=space,
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=resolved.sweep.reuse_actors,
                                        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=_run_config(resolved, name, len(specs), driver, scheduler),
        )
    return tuner.fit()


def _trial_name(trial: Any) -> str:
    """`<method>-s<seed>-<trial id>` (a seed block: `s<first seed>x<seeds>`); under Optuna the repeat index
    stands for the seed."""
    spec = TrialSpec.from_dict(trial.config["trial"])
    block = f"x{len(spec.seeds)}" if len(spec.seeds) > 1 else ""
    return f"{spec.method}-s{trial.config.get('__trial_index__', spec.seed)}{block}-{trial.trial_id}"


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
    # the method's first grid point (its searched options None until Tune's distributions replace them)
    options, training = next((o, t) for m, o, t in planning.configurations(sweep) if m == method)
    trial = planning.make_cell(resolved, method, options, training, 0, stage).spec.to_dict()
    for key, dist in sweep.search.space.items():
        owners = SEARCHABLE[key] or ()
        if key == "learning_rate":
            trial["training"][key] = _distribution(dist)
        elif method in owners:
            trial["method_options"][key] = _distribution(dist)
    size = sweep.execution.seeds_per_trial if DESCRIPTORS[method].vectorizes else 1
    blocks = [list(seeds[i : i + size]) for i in range(0, len(seeds), size)] if size > 1 else list(seeds)
    space = {"trial": trial, "__seeds__": blocks}  # the seed (block): __seeds__[__trial_index__] (Repeater)
    name = f"tune-{stage}-{method}"
    path = results.join(resolved.experiment_dir, name)
    total = sweep.search.num_samples * len(blocks)
    if driver.resume and tune.Tuner.can_restore(path):
        return restore_tuner(path, resolved, name, total, driver, scheduler).fit()
    searcher = OptunaSearch(sampler=TPESampler(seed=sweep.search.seed), metric=METRIC, mode="max")
    tuner = tune.Tuner(
        _trainable(sweep), param_space=space,
        tune_config=tune.TuneConfig(search_alg=Repeater(searcher, repeat=len(blocks)),
                                    scheduler=scheduler, num_samples=total,
                                    reuse_actors=sweep.reuse_actors, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=_run_config(resolved, name, total, driver, scheduler),
    )
    return tuner.fit()


def asha_scheduler(sweep: Sweep) -> Any:
    if sweep.asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # time is the loop's own evaluation count, which (unlike Tune's training_iteration) stays right when a
    # resumed trial's checkpoint was replaced by a newer one (sweeper.recovery); the final report (test
    # results, no count) is ignored by ASHA, its best dev accuracy was in the last evaluation's report
    return ASHAScheduler(time_attr="evaluation", metric=METRIC, mode="max",
                         grace_period=sweep.asha.grace_period, reduction_factor=sweep.asha.reduction_factor,
                         max_t=10**6)
