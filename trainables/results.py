"""A trial's result files (docs/results-schema.md), written atomically on local disk or s3://.

One folder per (configuration, seed): a trial that runs again for the same cell overwrites the
same files with the same content, so results are never duplicated. `metrics.parquet` is written
last and marks the cell done.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

METRICS = "metrics.parquet"
PREDICTIONS = "predictions.parquet"
TRIAL_INFO = "trial.json"
STATUS = "status.json"  # running (with a heartbeat), failed (with the error) or done; see sweeper status
STOPPED = "stopped.json"  # written by the driver: the scheduler (ASHA) stopped this cell early, by design

METRICS_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("task", pa.string()),
        ("method", pa.string()),
        ("config_id", pa.string()),
        ("config_label", pa.string()),
        ("epsilon", pa.float64()),
        ("m", pa.int64()),
        ("seed", pa.int64()),
        ("stage", pa.string()),
        ("split", pa.string()),
        ("lang1", pa.string()),
        ("lang2", pa.string()),
        ("accuracy", pa.float64()),
        ("n", pa.int64()),
        ("best_step", pa.int64()),
    ]
)
_PREDICTION_KEYS = ("task", "method", "config_id", "seed", "stage")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path (relative allowed) or a URI such as s3://."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def cell_dir(experiment_dir: str, config_id: str, seed: int) -> str:
    return f"{experiment_dir.rstrip('/')}/results/{config_id}/seed-{seed}"


def cell_key(path: str) -> tuple[str, int]:
    """(config_id, seed) of a file directly in a cell folder: the inverse of `cell_dir`."""
    config_id, seed_dir = path.rsplit("/", 3)[-3:-1]
    return config_id, int(seed_dir.removeprefix("seed-"))


def _write_atomic(uri: str, payload: bytes) -> None:
    """Temporary file then rename on local disk; a single PUT (atomic by itself) on object stores."""
    fs, path = filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with fs.open_output_stream(tmp) as out:
            out.write(payload)
        os.replace(tmp, path)
    else:
        with fs.open_output_stream(path) as out:
            out.write(payload)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def metrics_table(identity: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One row per (split, lang1, lang2): the trial's identity columns repeated on every row."""
    columns = {name: [] for name in METRICS_SCHEMA.names}
    for row in rows:
        for name in METRICS_SCHEMA.names:
            columns[name].append(row.get(name, identity.get(name)))
    return pa.table(columns, schema=METRICS_SCHEMA)


def predictions_table(
    identity: Mapping[str, Any], split: str, lang1: str, lang2: str, labels: np.ndarray, predictions: np.ndarray,
    examples: np.ndarray,
) -> pa.Table:
    n = len(labels)
    columns: dict[str, Any] = {k: pa.array([identity[k]] * n) for k in _PREDICTION_KEYS}
    columns.update(
        split=pa.array([split] * n), lang1=pa.array([lang1] * n), lang2=pa.array([lang2] * n),
        example=pa.array(examples, pa.int64()), label=pa.array(labels, pa.int64()),
        prediction=pa.array(predictions, pa.int64()),
    )
    return pa.table(columns)


def write_results(directory: str, metrics: pa.Table, predictions: pa.Table, trial_info: Mapping[str, Any]) -> None:
    _write_atomic(f"{directory}/{TRIAL_INFO}", json.dumps(trial_info, indent=1, default=str).encode())
    _write_atomic(f"{directory}/{PREDICTIONS}", _parquet_bytes(predictions))
    _write_atomic(f"{directory}/{METRICS}", _parquet_bytes(metrics))


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(uri: str, payload: bytes) -> None:
    """Atomic write (see `_write_atomic`) of any experiment file."""
    _write_atomic(uri, payload)


def is_complete(directory: str) -> bool:
    fs, path = filesystem(f"{directory}/{METRICS}")
    return fs.get_file_info(path).type == pafs.FileType.File


def read_metrics(directory: str) -> pa.Table:
    return read_table(f"{directory}/{METRICS}")


def write_status(directory: str, state: str, **fields: Any) -> None:
    """The cell's own account of its state, kept next to its results (works on shared storage)."""
    payload = {"state": state, "updated": time.time(), **fields}
    _write_atomic(f"{directory}/{STATUS}", json.dumps(payload, default=str).encode())


def read_status(directory: str) -> dict[str, Any] | None:
    uri = f"{directory}/{STATUS}"
    return json.loads(read_bytes(uri)) if exists(uri) else None


def mark_stopped(directory: str, **fields: Any) -> None:
    """Record that the scheduler ended this cell early (the trial itself cannot tell that from an interruption)."""
    _write_atomic(f"{directory}/{STOPPED}", json.dumps({"stopped": time.time(), **fields}, default=str).encode())


def read_stopped(directory: str) -> dict[str, Any] | None:
    uri = f"{directory}/{STOPPED}"
    return json.loads(read_bytes(uri)) if exists(uri) else None


def restage(directory: str, stage: str) -> None:
    """Relabel a finished cell's stage (a search-stage seed reused by the final stage)."""
    for name in (PREDICTIONS, METRICS):  # metrics last: it marks the cell done
        table = read_table(f"{directory}/{name}")
        column = pa.array([stage] * len(table), pa.string())
        _write_atomic(f"{directory}/{name}", _parquet_bytes(table.set_column(table.schema.get_field_index("stage"),
                                                                             "stage", column)))


def read_table(uri: str) -> pa.Table:
    fs, path = filesystem(uri)
    return pq.read_table(path, filesystem=fs)
