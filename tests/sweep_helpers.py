"""Drive real sweeps from tests: configs on the tiny world, driver subprocesses, cleanup by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, world, storage: Path, cache: Path, **overrides: Any) -> Path:
    """A sweep on the tiny world: baseline and RS-RP x 3 seeds, trials of a few seconds."""
    config = {
        "experiment": "sweep-test",
        "task": "pawsx",
        "model": str(world.model_dir),
        "data": {"source": "tsv", "path": str(world.tsv_dir("pawsx"))},
        "methods": {"baseline": {}, "rs_rp": {"epsilon": [0.1]}},
        "seeds": 3,
        "training": {"epochs": 40, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1,
                     "eval_every": 12},
        "resources": {"cpu": 1},
        "max_failures": 2,
        "storage": str(storage),
        "cache_dir": str(cache),
    }
    for key, value in overrides.items():
        config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


def driver_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONUNBUFFERED="1",
               TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def start_driver(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m sweeper ...` in its own session, so that everything it starts can be found and stopped."""
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=REPO, env=driver_env(), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_driver(args: list[str], log: Path, timeout: float = 400) -> int:
    proc = start_driver(args, log)
    try:
        return proc.wait(timeout=timeout)
    finally:
        stop_tree(proc.pid)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_tree(pid: int, known: list[psutil.Process] = ()) -> None:
    """SIGKILL a process we started and everything it started (by PID), and reap them."""
    processes = list(known) + descendants(pid)
    try:
        processes.append(psutil.Process(pid))
    except psutil.NoSuchProcess:
        pass
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=30)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def cells(experiment_dir: Path) -> dict[tuple[str, int], Path]:
    root = experiment_dir / "results"
    return {(d.parent.name, int(d.name.removeprefix("seed-"))): d for d in root.glob("*/seed-*")}


def statuses(experiment_dir: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for key, directory in cells(experiment_dir).items():
        try:
            out[key] = json.loads((directory / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return out


def done(experiment_dir: Path) -> set[tuple[str, int]]:
    return {key for key, d in cells(experiment_dir).items() if (d / "metrics.parquet").exists()}


def all_metrics(experiment_dir: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(d / "metrics.parquet") for d in cells(experiment_dir).values()
              if (d / "metrics.parquet").exists()]
    frame = pd.concat(frames, ignore_index=True).drop(columns="experiment")
    return frame.sort_values(["config_id", "seed", "split", "lang1", "lang2"]).reset_index(drop=True)


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 1, **head_args: Any) -> Iterator[Any]:
    """A second Ray cluster on loopback (`ray.cluster_utils.Cluster`), shut down afterwards.

    Its head records itself in Ray's ray_current_cluster file, which a plain `ray.init()` would
    later follow to a dead address; the file is put back as it was.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, even outside pytest
    from ray._common.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    current = Path(get_ray_address_file(None))
    before = current.read_bytes() if current.exists() else None
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": num_cpus, "include_dashboard": False, **head_args})
    try:
        yield cluster
    finally:
        cluster.shutdown()
        if before is not None:
            current.write_bytes(before)
        elif current.exists() and current.read_text().strip() == cluster.address:
            current.unlink()


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago): a Ray address or endpoint that does not answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
