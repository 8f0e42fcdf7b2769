"""MLflow: one run per trial (the same run again when a trial resumes), one more for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from ray.air.integrations.mlflow import MLflowLoggerCallback

from sweeper.tracking import common
from trainables.spec import TrialSpec

TRIAL_TAG = "trial_id"  # the Tune trial a run logs; a resumed trial finds its run by it
KIND_TAG = "sweeper.kind"  # trial | report
BATCH = 1000


class SweepMLflow(common.Guard, MLflowLoggerCallback):
    service = "MLflow"

    def __init__(self, tracking_uri: str | None, experiment_name: str, experiment: str,
                 spec_of: Callable[[Mapping[str, Any]], TrialSpec], label: str, out: TextIO):
        MLflowLoggerCallback.__init__(self, tracking_uri=tracking_uri, experiment_name=experiment_name,
                                      tags={"sweeper.experiment": experiment, KIND_TAG: "trial"})
        self.spec_of = spec_of
        self.logged: dict[str, set[int]] = {}  # trial id -> the evaluations its run holds
        self.guard_setup(label, out)

    def setup(self, *args, **kwargs):
        self.tags, self._trial_runs = dict(self.tags or {}), {}

        def open_experiment() -> None:
            from mlflow.tracking import MlflowClient

            common.mlflow_experiment_id(MlflowClient(tracking_uri=self.tracking_uri), self.experiment_name,
                                          self.tracking_uri)
            MLflowLoggerCallback.setup(self, *args, **kwargs)

        self.guarded("open its experiment", open_experiment)

    def client(self) -> Any:
        return self.mlflow_util._get_client()

    def log_trial_start(self, trial: Any) -> None:
        self.guarded(f"start the run of {trial}", lambda: self._start(trial))

    def _start(self, trial: Any) -> None:
        spec = self.spec_of(trial.config)
        if trial not in self._trial_runs:
            found = self.client().search_runs([self.mlflow_util.experiment_id], max_results=1,
                                              filter_string=f"tags.{TRIAL_TAG} = '{trial.trial_id}'")
            if found:  # a resumed trial: the evaluations it replays from its checkpoint are in the run already
                self._trial_runs[trial] = run_id = found[0].info.run_id
                self.logged[trial.trial_id] = {
                    m.step for m in self.client().get_metric_history(run_id, "dev_accuracy")}
            else:
                self.logged[trial.trial_id] = set()
                tags = {**self.tags, TRIAL_TAG: trial.trial_id, "trial_name": str(trial), "method": spec.method,
                        "config_id": spec.config_id, "stage": spec.stage}
                run = self.mlflow_util.start_run(tags=tags, run_name=common.run_name(spec), set_active=False)
                self._trial_runs[trial] = run.info.run_id
                return self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=common.trial_params(spec))
        # a trial started again (resumed, retried after a failure): its run is running again
        self.client().update_run(self._trial_runs[trial], status="RUNNING")

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        metrics = common.trial_metrics(result)
        if not metrics:
            return

        def log() -> None:
            if trial not in self._trial_runs:  # its start was skipped while the server did not answer
                self._start(trial)
            logged = self.logged.setdefault(trial.trial_id, set())
            rows: list[tuple[int, dict[str, float]]] = []
            if "evaluation" in result:
                step = int(result["evaluation"])
                if step not in logged:
                    rows.append((step, metrics))
            else:  # the final result: the evaluations the run lacks (a driver died), then the accuracies
                saved = common.saved_evaluations(self.spec_of(trial.config))
                rows += [(int(row["evaluation"]), row) for row in saved if int(row["evaluation"]) not in logged]
                rows.append((len(saved), metrics))
            batch = [_metric(key, value, step) for step, row in rows for key, value in row.items()]
            for start in range(0, len(batch), BATCH):  # MLflow takes at most 1,000 metrics a call
                self.client().log_batch(self._trial_runs[trial], metrics=batch[start:start + BATCH])
            logged.update(step for step, row in rows if "dev_accuracy" in row)

        self.guarded(f"log a result of {trial}", log)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        def end() -> None:
            run_id = self._trial_runs.get(trial)
            if run_id is None:
                return
            self.client().set_tag(run_id, "outcome", common.outcome(trial.last_result, failed))
            self.mlflow_util.end_run(run_id=run_id, status="FAILED" if failed else "FINISHED")

        self.guarded(f"end the run of {trial}", end)

    def on_experiment_end(self, trials, **info):
        self.guard_summary()


def _metric(key: str, value: float, step: int) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key=key, value=value, timestamp=int(time.time() * 1000), step=step)


def log_report(tracking_uri: str, experiment_name: str, experiment: str, folder: Path) -> str:
    """The report's files as artifacts of the experiment's report run (made once, reused by later runs)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = common.mlflow_experiment_id(client, experiment_name, tracking_uri)
    runs = client.search_runs([experiment_id], max_results=1, filter_string=f"tags.`{KIND_TAG}` = 'report'")
    if runs:
        run_id = runs[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(experiment_id, run_name=f"{experiment} report",
                                   tags={"sweeper.experiment": experiment, KIND_TAG: "report"}).info.run_id
    client.log_artifacts(run_id, str(folder), artifact_path="report")
    client.set_terminated(run_id, status="FINISHED")
    return run_id
