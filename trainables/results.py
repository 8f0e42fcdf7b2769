"""A trial's result files (docs/results-schema.md), written atomically on local disk or s3://.

One folder per (configuration, seed): a trial that runs again for the same cell overwrites the
same files with the same content, so results are never duplicated. `metrics.parquet` is written
last and marks the cell done, if it can be read: a file that a crash, a full disk or a partial copy
left truncated makes the cell *damaged*, which status and report show (naming the file) and
`--resume` trains again.

Storage locations are local paths or URIs; a URI may carry pyarrow's options as a query
(`s3://bucket/x?endpoint_override=host:9000&scheme=http`), so paths are built with `join`,
which keeps the query at the end.
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
TORN_READ_ATTEMPTS, TORN_READ_PAUSE_S = 5, 0.05  # a JSON read that overlapped its replacement (see read_json)

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


class DamagedFile(ValueError):
    """A file that exists but cannot be read as what it should be (truncated, empty, not JSON/Parquet)."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri, self.reason = uri, reason


class StorageError(OSError):
    """A storage location that cannot be written (a file in the way, no permission, a full disk)."""


def split_query(uri: str) -> tuple[str, str]:
    """(location, query) of a URI; the query is '' for local paths and URIs without one."""
    if "://" in uri and "?" in uri:
        location, query = uri.split("?", 1)
        return location, query
    return uri, ""


def join(base: str, *parts: str) -> str:
    """`base/part/...`; on a URI with a query the parts go into the path and the query stays last."""
    location, query = split_query(base)
    path = "/".join([location.rstrip("/"), *(str(p).strip("/") for p in parts)])
    return f"{path}?{query}" if query else path


def existing_ancestor(folder: Path) -> Path:
    """`folder` itself if it exists, else its nearest ancestor that does (what a new folder is made in)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path (relative allowed) or a URI such as s3://."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def cell_dir(experiment_dir: str, config_id: str, seed: int) -> str:
    return join(experiment_dir, "results", config_id, f"seed-{seed}")


def cell_key(path: str) -> tuple[str, int]:
    """(config_id, seed) of a file directly in a cell folder: the inverse of `cell_dir`."""
    config_id, seed_dir = path.rsplit("/", 3)[-3:-1]
    return config_id, int(seed_dir.removeprefix("seed-"))


def _write_atomic(uri: str, payload: bytes) -> None:
    """Temporary file then rename on local disk; a single PUT (atomic by itself) on object stores."""
    fs, path = filesystem(uri)
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if isinstance(fs, pafs.LocalFileSystem):
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with fs.open_output_stream(tmp) as out:
                    out.write(payload)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):  # ours: a write that failed half-way (a full disk)
                    os.unlink(tmp)
        else:
            with fs.open_output_stream(path) as out:
                out.write(payload)
    except OSError as error:  # pyarrow raises OSError subclasses for every filesystem
        raise StorageError(f"{uri}: cannot write ({getattr(error, 'strerror', None) or error})") from error


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
    _write_atomic(join(directory, TRIAL_INFO), json.dumps(trial_info, indent=1, default=str).encode())
    _write_atomic(join(directory, PREDICTIONS), _parquet_bytes(predictions))
    _write_atomic(join(directory, METRICS), _parquet_bytes(metrics))


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


def parquet_problem(uri: str, fs: pafs.FileSystem | None = None, path: str | None = None) -> str | None:
    """Why a Parquet file that exists cannot be used (None: it reads). Reads only its footer."""
    if fs is None or path is None:
        fs, path = filesystem(uri)
    try:
        with fs.open_input_file(path) as handle:
            metadata = pq.read_metadata(handle)
    except (pa.ArrowException, OSError) as error:
        return f"not a readable Parquet file ({first_line(error)})"
    if metadata.num_rows == 0:
        return "a Parquet file without rows"
    return None


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's first line: libraries' messages run to pages; a refusal shows one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def metrics_state(directory: str) -> tuple[str, str]:
    """("done", ""), ("missing", "") or ("damaged", why) for a cell's metrics.parquet."""
    uri = join(directory, METRICS)
    fs, path = filesystem(uri)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.NotFound:
        return "missing", ""
    if kind != pafs.FileType.File:
        return "damaged", f"{uri}: a folder where a file should be"
    problem = parquet_problem(uri, fs, path)
    return ("damaged", f"{uri}: {problem}") if problem else ("done", "")


def is_complete(directory: str) -> bool:
    """The cell is done: its metrics.parquet exists and reads (a damaged one is trained again)."""
    return metrics_state(directory)[0] == "done"


def read_metrics(directory: str) -> pa.Table:
    return read_table(join(directory, METRICS))


def read_json(uri: str) -> dict[str, Any] | None:
    """A JSON object file; None when absent, DamagedFile when it does not parse as one.

    On an object store a read can overlap the PUT that replaces the object (status.json is rewritten at every
    evaluation): S3 clients read by a HEAD for the size then ranged GETs, and S3-compatible servers (moto, seen
    in the tests) can even serve a half-replaced body. Such a torn read is retried a bounded number of times;
    a file that stays unparsable is damaged.
    """
    fs, path = filesystem(uri)
    attempts = 1 if isinstance(fs, pafs.LocalFileSystem) else TORN_READ_ATTEMPTS
    for attempt in range(attempts):
        try:
            with fs.open_input_stream(path) as stream:
                raw = stream.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                return None
            raise DamagedFile(uri, f"cannot be read ({first_line(error)})") from None
        try:
            value = json.loads(raw.decode("utf-8"))
            break
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            if attempt + 1 < attempts:
                time.sleep(TORN_READ_PAUSE_S)
                continue
            what = "empty" if not raw.strip() else f"not valid JSON ({first_line(error)})"
            raise DamagedFile(uri, f"{what}; {len(raw)} bytes") from None
    if not isinstance(value, dict):
        raise DamagedFile(uri, f"expected a JSON object, got {type(value).__name__}")
    return value


def write_status(directory: str, state: str, **fields: Any) -> None:
    """The cell's own account of its state, kept next to its results (works on shared storage)."""
    payload = {"state": state, "updated": time.time(), **fields}
    _write_atomic(join(directory, STATUS), json.dumps(payload, default=str).encode())


def read_status(directory: str) -> dict[str, Any] | None:
    """status.json, None when absent; DamagedFile when unreadable or without its `state` and `updated`."""
    uri = join(directory, STATUS)
    status = read_json(uri)
    if status is not None and (status.get("state") not in ("running", "failed", "done")
                               or not isinstance(status.get("updated"), (int, float))):
        raise DamagedFile(uri, f"no valid state/updated fields (state {status.get('state')!r})")
    return status


def mark_stopped(directory: str, **fields: Any) -> None:
    """Record that the scheduler ended this cell early (the trial itself cannot tell that from an interruption)."""
    _write_atomic(join(directory, STOPPED), json.dumps({"stopped": time.time(), **fields}, default=str).encode())


def read_stopped(directory: str) -> dict[str, Any] | None:
    return read_json(join(directory, STOPPED))


def restage(directory: str, stage: str) -> None:
    """Relabel a finished cell's stage (a search-stage seed reused by the final stage)."""
    for name in (PREDICTIONS, METRICS):  # metrics last: it marks the cell done
        table = read_table(join(directory, name))
        column = pa.array([stage] * len(table), pa.string())
        _write_atomic(join(directory, name), _parquet_bytes(table.set_column(table.schema.get_field_index("stage"),
                                                                             "stage", column)))


def read_table(uri: str) -> pa.Table:
    fs, path = filesystem(uri)
    return pq.read_table(path, filesystem=fs)
