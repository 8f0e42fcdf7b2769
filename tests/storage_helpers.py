"""Storage test helpers: a filesystem that counts the calls made to it, and an experiment with a cell of every state."""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
from analysis.testing import ExperimentSpec, config, write_experiment
from trainables import results


class CountingHandler(pafs.FileSystemHandler):
    """Delegates to a real filesystem and counts the calls by kind (a listing is `list`, a path's `get_file_info`
    an existence check); `delay` seconds per call show whether calls overlap (`most_at_once`)."""

    def __init__(self, inner: pafs.FileSystem | None, delay: float = 0.0):
        self.inner, self.delay = inner, delay
        self.calls: collections.Counter[str] = collections.Counter()
        self.most_at_once, self._now, self._lock = 0, 0, threading.Lock()

    def _call(self, kind: str, function, *args):
        with self._lock:
            self.calls[kind] += 1
            self._now += 1
            self.most_at_once = max(self.most_at_once, self._now)
        try:
            time.sleep(self.delay)
            return function(*args)
        finally:
            with self._lock:
                self._now -= 1

    def get_type_name(self):
        return "counting"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def equals(self, other):
        return isinstance(other, CountingHandler) and other.inner.equals(self.inner)

    def get_file_info(self, paths):
        return self._call("get_file_info", self.inner.get_file_info, paths)

    def get_file_info_selector(self, selector):
        return self._call("list", self.inner.get_file_info, selector)

    def open_input_stream(self, path):
        return self._call("open", self.inner.open_input_stream, path)

    def open_input_file(self, path):
        return self._call("open", self.inner.open_input_file, path)

    def create_dir(self, path, recursive):
        return self._call("write", lambda: self.inner.create_dir(path, recursive=recursive))

    def open_output_stream(self, path, metadata):
        return self._call("write", self.inner.open_output_stream, path, metadata)

    def open_append_stream(self, path, metadata):
        return self._call("write", self.inner.open_append_stream, path, metadata)

    def delete_dir(self, path):
        return self._call("write", self.inner.delete_dir, path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        return self._call("write", lambda: self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        return self._call("write", self.inner.delete_file, path)

    def move(self, src, dest):
        return self._call("write", self.inner.move, src, dest)

    def copy_file(self, src, dest):
        return self._call("write", self.inner.copy_file, src, dest)


def count_calls(monkeypatch, delay: float = 0.0) -> CountingHandler:
    """From here on every filesystem `trainables.results` resolves is one CountingHandler (returned) over the first
    one resolved: local disk or the one S3 server of a test."""
    handler, resolve = CountingHandler(None, delay), results.filesystem

    def counting(uri: str) -> tuple[pafs.FileSystem, str]:
        inner, path = resolve(uri)
        handler.inner = handler.inner or inner
        return pafs.PyFileSystem(handler), path

    monkeypatch.setattr(results, "filesystem", counting)
    return handler


def experiment_of(root: Path, configs: int, seeds: int = 2) -> Path:
    """`configs` x `seeds` done cells (trial.json, predictions, metrics, a `done` status.json), all planned, plus
    one planned cell of each other state: running, failed, stopped, damaged metrics, damaged status, missing."""
    spec = ExperimentSpec(name="exp", task="pawsx", languages=("en", "de"), seeds=tuple(range(seeds)),
                          configs=tuple(config("rs_rp", epsilon=0.001 * (i + 1)) for i in range(configs)),
                          predictions=True, n_examples=8)
    experiment = write_experiment(root, spec, lambda cfg, seed, a, b: 0.7, lambda cfg, seed: 0.8)
    for cfg in spec.configs:
        for seed in spec.seeds:
            results.write_status(results.cell_dir(str(experiment), cfg.config_id, seed), "done",
                                 config_label=cfg.config_label, stage="grid")
    plan = results.read_json(str(experiment / "plan.json"))
    others = [f"rs_rp-other{i}" for i in range(6)]
    plan["cells"] += [{"method": "rs_rp", "config_id": c, "config_label": c, "epsilon": 0.5, "m": None, "seed": 0,
                       "stage": "grid"} for c in others]
    results.write_bytes(str(experiment / "plan.json"), json.dumps(plan).encode())
    cell = {name: results.cell_dir(str(experiment), name, 0) for name in others}
    results.write_status(cell[others[0]], "running", attempt=1, host="h", pid=7, progress=0.5)
    results.write_status(cell[others[1]], "failed", attempt=2, error="RuntimeError: boom")
    results.mark_stopped(cell[others[2]], by="ASHA", evaluation=3, best_dev_accuracy=0.5)
    results.write_status(cell[others[3]], "running", attempt=1)
    results.write_bytes(results.join(cell[others[3]], results.METRICS), b"PAR1 cut short")
    results.write_bytes(results.join(cell[others[4]], results.STATUS), b'{"state": "runn')
    return experiment  # others[5]: planned, never started
