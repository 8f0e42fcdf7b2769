"""Follow a sweep in MLflow or Weights & Biases, through Ray Tune's own logger callbacks.

What a trial logs is chosen here, once, for both services: its parameters in the paper's terms (method,
epsilon/m, seed, config_id, the training settings), dev accuracy and loss at every evaluation (step: the
loop's evaluation count, which a resumed trial keeps), and at its end best dev accuracy and the test accuracy
of every language (pair). At the end of a run the driver logs the report (tables, figures) as artifacts.

This module imports neither service: `mlflow_logger` and `wandb_logger` do, and are imported only when the
config's `tracking:` names them. Credentials come from the environment only (`sweeper.schema`).
A tracking service that stops answering never stops a sweep: its calls are skipped for a while, with a warning
(`Guard`).
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from sweeper.preflight import folder_problem, within
from sweeper.tracking.common import (  # noqa: F401  (re-exported: what is logged, the resolved settings)
    EVALUATION_METRICS, FINAL_METRICS, Guard, mlflow_artifact_location, mlflow_experiment, mlflow_experiment_id,
    mlflow_uri, outcome, run_name, saved_evaluations, trial_metrics, trial_params, wandb_dir, wandb_group,
    wandb_project)
from sweeper.yaml_errors import ConfigError, Where
from trainables.spec import TrialSpec

PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}
INSTALL_HINT = "pip install -e '.[tracking]' (or the package alone: mlflow-skinny, wandb)"
CHECK_TIMEOUT_S = 30.0
# MLflow's client retries a failed request for minutes by default; the driver's calls run inside Tune's event
# loop, so a server that is down would hold every trial's bookkeeping. These apply unless the user set them.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


# ------------------------------------------------------------------------------- the callbacks
def callbacks(sweep: Any, spec_of: Callable[[Mapping[str, Any]], TrialSpec], label: str, out: TextIO) -> list[Any]:
    """Tune logger callbacks for the services `sweep.tracking` names (none: nothing imported)."""
    made: list[Any] = []
    tracking = sweep.tracking
    if tracking.mlflow is not None:
        from sweeper.tracking.mlflow_logger import SweepMLflow

        for key, value in MLFLOW_CLIENT_ENV.items():
            os.environ.setdefault(key, value)
        made.append(SweepMLflow(mlflow_uri(tracking.mlflow), mlflow_experiment(tracking.mlflow, sweep.experiment),
                                sweep.experiment, spec_of, label, out))
    if tracking.wandb is not None:
        from sweeper.tracking.wandb_logger import SweepWandb

        settings = tracking.wandb
        made.append(SweepWandb(wandb_project(settings, sweep.experiment), wandb_group(settings, sweep.experiment),
                               settings.mode, str(wandb_dir(settings, sweep.experiment)), spec_of,
                               label, out))
    return made


def log_report(sweep: Any, experiment_dir: str, out: TextIO) -> None:
    """At the end of a run: the report (tables, figures, the HTML page) as artifacts of one report run per
    service. A report that cannot be built or logged is said, never raised: the sweep's results are safe."""
    import tempfile

    from analysis.load import AnalysisInputError
    from analysis.report import write_report_folder

    tracking, label = sweep.tracking, sweep.experiment
    with tempfile.TemporaryDirectory(prefix="robust-xlt-report-") as folder:
        try:
            files = write_report_folder([experiment_dir], Path(folder))
        except AnalysisInputError as error:
            print(f"[{label}] tracking: no report logged: {error}", file=out, flush=True)
            return
        except Exception as error:
            print(f"[{label}] warning: tracking: the report could not be built ({type(error).__name__}: {error}); "
                  f"`python -m sweeper report {experiment_dir}` says why", file=out, flush=True)
            return
        logs: dict[str, Callable[[], str]] = {}
        if tracking.mlflow is not None:
            from sweeper.tracking import mlflow_logger

            settings = tracking.mlflow
            logs["MLflow"] = lambda: mlflow_logger.log_report(
                mlflow_uri(settings), mlflow_experiment(settings, sweep.experiment), sweep.experiment, Path(folder))
        if tracking.wandb is not None:
            from sweeper.tracking import wandb_logger

            w = tracking.wandb
            logs["W&B"] = lambda: wandb_logger.log_report(
                wandb_project(w, sweep.experiment), wandb_group(w, sweep.experiment), w.mode,
                wandb_dir(w, sweep.experiment), sweep.experiment, Path(folder))
        for service, log in logs.items():
            try:
                run_id = log()
            except Exception as error:
                print(f"[{label}] warning: {service} could not store the report ({type(error).__name__}: "
                      f"{error}); the results are safe, `python -m sweeper report {experiment_dir}` rebuilds it",
                      file=out, flush=True)
            else:
                print(f"[{label}] tracking: the report ({len(files)} files) logged to {service} run {run_id}",
                      file=out, flush=True)


# ------------------------------------------------------------------------- checks before writing
def check(sweep: Any, where: Where) -> list[str]:
    """Each configured service can be used from here: its package, its store or server, its credentials.

    Read-only: a local MLflow store is only checked to be creatable (opening it would create it).
    """
    lines = []
    tracking = sweep.tracking
    for name in tracking.enabled():
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(f"{where(f'tracking.{name}')} needs the {PACKAGES[name]} package, which is not "
                              f"installed here: {INSTALL_HINT}")
    if tracking.mlflow is not None:
        lines.append(_check_mlflow(tracking.mlflow, sweep.experiment, where))
    if tracking.wandb is not None:
        lines.append(_check_wandb(tracking.wandb, sweep.experiment, where))
    return lines


def local_store(uri: str) -> Path | None:
    """The file an sqlite store or the folder a file store lives in; None for a server (or Databricks)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "sqlite":
        return Path(uri[len("sqlite:///"):]).expanduser() if uri.startswith("sqlite:///") else None
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path)).expanduser()
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return Path(uri).expanduser()
    return None


def _check_mlflow(settings: Any, experiment: str, where: Where) -> str:
    uri = mlflow_uri(settings)
    field = "tracking.mlflow.tracking_uri"
    if uri is None:
        raise ConfigError(f"{where(field)} not given, and MLFLOW_TRACKING_URI is not set: name the store "
                          f"(sqlite:///mlflow.db, a folder) or the server (http://host:5000)")
    name = mlflow_experiment(settings, experiment)
    store = local_store(uri)
    if store is not None:
        folder = store.parent if urllib.parse.urlsplit(uri).scheme == "sqlite" else store
        problem = folder_problem(folder.resolve())
        if problem:
            raise ConfigError(f"{where(field)} {uri}: {problem}")
        return f"tracking: MLflow store {uri}, experiment {name!r}"
    if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        _reach_mlflow_server(uri, where(field))
    return f"tracking: MLflow at {uri} answers, experiment {name!r}"


def _reach_mlflow_server(uri: str, prefix: str) -> None:
    """One read request, with MLflow's retries off: a server that does not answer is refused, not waited for."""
    from mlflow.tracking import MlflowClient

    saved = {key: os.environ.get(key) for key in MLFLOW_CLIENT_ENV}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(CHECK_TIMEOUT_S)))
    try:
        within(CHECK_TIMEOUT_S, f"MLflow at {uri}", lambda: MlflowClient(tracking_uri=uri).search_experiments(
            max_results=1))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{prefix} cannot reach the MLflow server at {uri}: {first[:300]} (credentials, if it "
                          f"needs them, come from MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD)") \
            from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wandb_credentials() -> str | None:
    """Where W&B will find its API key (None: nowhere): the environment, or `wandb login`'s netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    if os.environ.get("WANDB_SETUP_API_KEY_HOOK"):
        return "WANDB_SETUP_API_KEY_HOOK"
    host = urllib.parse.urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = Path(os.environ.get("NETRC") or "~/.netrc").expanduser()
    try:
        found = netrc.netrc(str(path)).authenticators(host) if path.is_file() else None
    except (netrc.NetrcParseError, OSError):
        found = None
    return f"{path} (wandb login)" if found and found[2] else None


def _check_wandb(settings: Any, experiment: str, where: Where) -> str:
    folder = wandb_dir(settings, experiment)
    problem = folder_problem(folder)
    if problem:
        raise ConfigError(f"{where('tracking.wandb.dir')} W&B's run files cannot go to {folder}: {problem}")
    project, group = wandb_project(settings, experiment), wandb_group(settings, experiment)
    if settings.mode == "online":
        source = wandb_credentials()
        if source is None:
            raise ConfigError(f"{where('tracking.wandb.mode')} online needs a W&B API key, and none is set here: "
                              "export WANDB_API_KEY or run `wandb login`; or use mode: offline and upload the "
                              "run files later with `wandb sync`")
        return f"tracking: W&B online (key from {source}), project {project!r}, group {group!r}"
    return (f"tracking: W&B offline, project {project!r}, group {group!r}, run files in {folder}/wandb "
            f"(upload with `wandb sync`)")
