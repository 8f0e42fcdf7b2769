"""Weights & Biases: one run per trial (its id the Tune trial's, so a resumed trial continues it), grouped
by experiment, and a report run holding the report as an artifact. Offline mode writes the run files only;
`wandb sync` uploads them later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

from sweeper.tracking import common
from trainables.spec import TrialSpec

# W&B prints a banner and a run summary per run: with hundreds of trials the driver's output would drown
SETTINGS = {"silent": True, "console": "off", "disable_git": True}


class _LoggingActor(_WandbLoggingActor):
    def __init__(self, logdir: str, *args: Any, **kwargs: Any):
        os.makedirs(logdir, exist_ok=True)  # W&B's actor works inside the trial's folder: on object storage a
        super().__init__(logdir, *args, **kwargs)  # local staging folder that may not exist yet
        self._axis_defined = False

    def _handle_result(self, result: dict) -> Any:
        if not self._axis_defined:  # charts against the loop's evaluation count, which a resume keeps and
            run = self._wandb.run  # rows logged late (see SweepWandb) carry, rather than W&B's step
            run.define_metric("evaluation")
            for key in ("update", "epoch", "train_loss", "dev_accuracy", "best_dev_accuracy", "progress"):
                run.define_metric(key, step_metric="evaluation")
            self._axis_defined = True
        return super()._handle_result(result)


class SweepWandb(common.Guard, WandbLoggerCallback):
    service = "W&B"
    _logger_actor_cls = _LoggingActor

    def __init__(self, project: str, group: str, mode: str, directory: str,
                 spec_of: Callable[[Mapping[str, Any]], TrialSpec], label: str, out: TextIO):
        WandbLoggerCallback.__init__(self, project=project, group=group, mode=mode, dir=directory, resume="allow",
                                     settings=dict(SETTINGS))
        self.mode, self.directory, self.spec_of = mode, directory, spec_of
        self.seen: dict[str, set[int]] = {}  # trial id -> the evaluations logged by this driver
        self.guard_setup(label, out)

    def setup(self, *args, **kwargs):
        self.seen = {}  # restored with Tune's state it would be stale: what a killed driver logged may be lost
        os.makedirs(self.directory, exist_ok=True)  # W&B falls back to a temporary folder when it is missing
        if self.mode == "offline":  # Ray's setup insists on an API key unless WANDB_MODE says offline
            return
        self.guarded("find its API key", lambda: WandbLoggerCallback.setup(self, *args, **kwargs))

    def log_trial_start(self, trial: Any) -> None:
        def start() -> None:
            spec = self.spec_of(trial.config)
            init = dict(id=trial.trial_id, name=common.run_name(spec), reinit=True, allow_val_change=True,
                        group=self.group, project=self.project, config=common.trial_params(spec),
                        job_type=spec.stage, tags=[spec.method])
            init.update(self.kwargs)
            self._start_logging_actor(trial, list(self._exclude_results), **init)

        self.guarded(f"start the run of {trial}", start)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        metrics = common.trial_metrics(result)
        if not metrics:
            return
        seen = self.seen.setdefault(trial.trial_id, set())
        rows = [metrics]
        if "evaluation" in result:
            seen.add(int(result["evaluation"]))
        else:  # the final result: first the evaluations this driver did not log (it resumed after a crash,
            # and W&B loses what it had not flushed when its process is killed); the same row twice is harmless
            rows = [row for row in common.saved_evaluations(self.spec_of(trial.config))
                    if int(row["evaluation"]) not in seen] + rows
        # the step W&B's actor logs at must grow: Tune's iteration, then one more for each late row
        step = int(result.get("training_iteration", iteration))
        for row in rows:
            row = {**row, "training_iteration": step}
            step += 1
            self.guarded(f"log a result of {trial}", lambda: WandbLoggerCallback.log_trial_result(
                self, iteration, trial, row))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial in self._trial_queues:
            self.guarded(f"end the run of {trial}", lambda: WandbLoggerCallback.log_trial_end(self, trial, failed))

    def on_experiment_end(self, trials, **info):
        self.guarded("finish its runs", lambda: WandbLoggerCallback.on_experiment_end(self, trials, **info))
        self.guard_summary()


def log_report(project: str, group: str, mode: str, directory: Path, experiment: str, folder: Path) -> str:
    """The report's files as one artifact of the experiment's report run; returns the run's id."""
    import wandb

    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, group=group, job_type="report", name=f"{experiment} report",
                     mode=mode, dir=str(directory), settings=dict(SETTINGS), reinit="create_new")
    try:
        artifact = wandb.Artifact(name=f"{experiment}-report", type="report")
        artifact.add_dir(str(folder))
        run.log_artifact(artifact)
    finally:
        run.finish()
        wandb.teardown()
    return run.id
