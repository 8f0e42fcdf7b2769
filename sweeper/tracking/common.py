"""What both services log and how their settings resolve, and the guard that keeps a failing service from
ending a sweep: shared by `sweeper.tracking` and its two logger modules, importing neither service."""

from __future__ import annotations

import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from trainables.spec import TrialSpec

# Reported at every evaluation by trainables.loop; the final report adds best dev and test accuracies.
EVALUATION_METRICS = ("evaluation", "update", "epoch", "train_loss", "dev_accuracy", "best_dev_accuracy", "progress")
FINAL_METRICS = ("best_dev_accuracy", "test_avg_accuracy")


# ------------------------------------------------------------------------------- what is logged
def trial_params(spec: TrialSpec) -> dict[str, Any]:
    """A trial's parameters, flat: what identifies its configuration and seed, then its training settings."""
    params: dict[str, Any] = {
        "experiment": spec.experiment, "task": spec.task, "model": spec.model, "method": spec.method,
        "seed": spec.seed, "stage": spec.stage, "config_id": spec.config_id, "config_label": spec.config_label,
    }
    params.update({key: value for key, value in sorted(spec.method_options.items()) if key not in params})
    params.update({f"training/{key}": value for key, value in vars(spec.training).items()})
    params["augmentation_seed"] = spec.effective_augmentation_seed
    if len(spec.seeds) > 1:  # a seed block: one run for its members, each member's figures under seed/<seed>/
        params["seeds"] = ",".join(map(str, spec.seeds))
    return params


def trial_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one Tune result worth a chart: the loop's evaluation metrics or the final accuracies."""
    keep = EVALUATION_METRICS + FINAL_METRICS
    return {key: float(value) for key, value in result.items()
            if (key in keep or key.startswith(("test/", "seed/"))) and isinstance(value, (int, float))
            and not isinstance(value, bool)}


def saved_evaluations(spec: TrialSpec) -> list[dict[str, float]]:
    """The evaluations a finished trial saved with its results (trial.json), numbered as the loop reports them.

    A service misses some when the driver dies: results it had not yet handed to the service, and W&B's
    unflushed buffer. At a trial's end the callbacks log the ones they lack from here."""
    from trainables import results

    histories = []
    for member in spec.members():
        cell = results.cell_dir(member.experiment_dir, member.config_id, member.seed)
        info = results.read_json(results.join(cell, results.TRIAL_INFO)) or {}
        histories.append([{"evaluation": float(n), **{k: float(v) for k, v in row.items()}}
                          for n, row in enumerate(info.get("dev_history", []), 1)])
    if len(histories) == 1:
        return histories[0]
    if not all(histories):  # a member without saved results: the block has not finished
        return []
    # a seed block's evaluations as it reported them (trainables.results.block_metrics)
    return [results.block_metrics(list(rows), spec.seeds) for rows in zip(*histories)]


def run_name(spec: TrialSpec) -> str:
    seeds = f"s{spec.seeds[0]}-{spec.seeds[-1]}" if len(spec.seeds) > 1 else f"s{spec.seed}"
    return f"{spec.config_label} {seeds}"


def outcome(last_result: Mapping[str, Any] | None, failed: bool) -> str:
    """done, failed, or stopped (by ASHA, or a run that ended before the trial did)."""
    if failed:
        return "failed"
    return "done" if "finished" in (last_result or {}) else "stopped"


# ----------------------------------------------------------------------------- settings resolved
def mlflow_uri(settings: Any) -> str | None:
    return settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def mlflow_experiment(settings: Any, experiment: str) -> str:
    return settings.experiment_name or experiment


def mlflow_artifact_location(uri: str | None) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local SQLite store (`mlartifacts/`, as `mlflow
    server` does), since MLflow's own default is a `mlruns/` folder in whatever directory the driver runs in.
    A file store keeps them inside itself and a server decides for itself: None."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    database = Path(urllib.parse.unquote(uri[len("sqlite:///"):].split("?")[0])).expanduser().resolve()
    return (database.parent / "mlartifacts").as_uri()


def mlflow_experiment_id(client: Any, name: str, uri: str | None) -> str:
    """The experiment's id, made (with its artifacts beside a local store) when it does not exist yet."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=mlflow_artifact_location(uri))


def wandb_project(settings: Any, experiment: str) -> str:
    return settings.project or os.environ.get("WANDB_PROJECT") or experiment


def wandb_group(settings: Any, experiment: str) -> str:
    return settings.group or experiment


def wandb_dir(settings: Any, experiment: str) -> Path:
    """Where W&B writes run files (it adds a `wandb/` folder): the given dir, WANDB_DIR, else a folder in the
    user's cache. Never the experiment folder: it holds only what the sweeper writes (`demo --fresh` and `run`
    refuse a folder with anything else in it), and object storage cannot hold W&B's files."""
    if settings.dir:
        return Path(settings.dir).expanduser().resolve()
    if os.environ.get("WANDB_DIR"):
        return Path(os.environ["WANDB_DIR"]).expanduser().resolve()
    return Path("~/.cache/robust-xlt/wandb").expanduser() / experiment


class Guard:
    """Runs a tracking call so that a failing service cannot end a sweep: the first failure is printed, then
    the service's calls are skipped for `pause_s` (counted, and said at the end), then tried again."""

    pause_s = 300.0
    service = "tracking"

    def guard_setup(self, label: str, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.out, self.clock = label, out, clock
        self.paused_until, self.failures, self.skipped = float("-inf"), 0, 0

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles callbacks with its experiment state: the stream and the clock stay behind."""
        return {k: v for k, v in self.__dict__.items() if k not in ("out", "clock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, out=sys.stdout, clock=time.monotonic)

    def guarded(self, what: str, call: Callable[[], Any]) -> Any:
        if self.clock() < self.paused_until:
            self.skipped += 1
            return None
        try:
            return call()
        except Exception as error:
            self.failures += 1
            self.paused_until = self.clock() + self.pause_s
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            print(f"[{self.label}] warning: {self.service} could not {what} ({type(error).__name__}: {first}); "
                  f"the sweep goes on, {self.service} calls are skipped for {self.pause_s:g}s", file=self.out,
                  flush=True)
            return None

    def guard_summary(self) -> None:
        if self.failures or self.skipped:
            print(f"[{self.label}] {self.service}: {self.failures} call(s) failed and {self.skipped} were skipped; "
                  f"what they would have logged is in the experiment's results", file=self.out, flush=True)
