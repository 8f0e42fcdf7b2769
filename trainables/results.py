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
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.dataset as ds

METRICS = "metrics.parquet"
PREDICTIONS = "predictions.parquet"
TRIAL_INFO = "trial.json"
STATUS = "status.json"  # running (with a heartbeat), failed (with the error) or done; see sweeper status
STOPPED = "stopped.json"  # written by the driver: the scheduler (ASHA) stopped this cell early, by design
TORN_READ_ATTEMPTS, TORN_READ_PAUSE_S = 5, 0.05  # a JSON read that overlapped its replacement (see read_json)
READ_WORKERS = 32  # concurrent reads of listed files: on S3 each waits tens of ms on the network, not on the CPU
T, R = TypeVar("T"), TypeVar("R")

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


def parquet_footer(uri: str, fs: pafs.FileSystem, path: str, size: int | None = None) -> ds.ParquetFileFragment:
    """A Parquet file as a dataset fragment with its footer read; DamagedFile when it does not read or has no rows.

    `size` (what a listing said) spares the HEAD request an object store otherwise answers before the footer's GET.
    """
    import pyarrow.dataset as ds  # here, not at import: half a second, and a trainable never reads a footer

    try:
        fragment = ds.ParquetFileFormat().make_fragment(path, filesystem=fs, file_size=size)
        rows = fragment.metadata.num_rows
    except (pa.ArrowException, OSError) as error:  # the file is named once: by `uri`
        why = re.sub(r"^Could not open Parquet input source '[^']*': ", "", first_line(error))
        raise DamagedFile(uri, f"not a readable Parquet file ({why})") from None
    if rows == 0:
        raise DamagedFile(uri, "a Parquet file without rows")
    return fragment


def parquet_problem(uri: str, fs: pafs.FileSystem | None = None, path: str | None = None,
                    size: int | None = None) -> str | None:
    """Why a Parquet file that exists cannot be used (None: it reads). Reads only its footer."""
    if fs is None or path is None:
        fs, path = filesystem(uri)
    try:
        parquet_footer(uri, fs, path, size)
    except DamagedFile as damaged:
        return damaged.reason
    return None


def parallel_map(function: Callable[[T], R], items: Iterable[T], workers: int = READ_WORKERS) -> list[R]:
    """`[function(item) for item in items]` on a bounded thread pool: reads of listed files one at a time cost a
    round trip each on an object store (minutes for thousands of cells); pyarrow's filesystems are thread-safe."""
    items = list(items)
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's first line: libraries' messages run to pages; a refusal shows one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def metrics_state(directory: str) -> tuple[str, str]:
    """("done", ""), ("missing", "") or ("damaged", why) for a cell's metrics.parquet."""
    fs, path = filesystem(join(directory, METRICS))
    info = fs.get_file_info(path)
    return CellFiles(directory, fs, {} if info.type == pafs.FileType.NotFound else {METRICS: info}).metrics_state()


def is_complete(directory: str) -> bool:
    """The cell is done: its metrics.parquet exists and reads (a damaged one is trained again)."""
    return metrics_state(directory)[0] == "done"


def read_metrics(directory: str) -> pa.Table:
    return read_table(join(directory, METRICS))


def read_json(uri: str, fs: pafs.FileSystem | None = None, path: str | None = None) -> dict[str, Any] | None:
    """A JSON object file (at `path` of `fs` where given); None when absent, DamagedFile when it does not parse as one.

    On an object store a read can overlap the PUT that replaces the object (status.json is rewritten at every
    evaluation): S3 clients read by a HEAD for the size then ranged GETs, and S3-compatible servers (moto, seen
    in the tests) can even serve a half-replaced body. Such a torn read is retried a bounded number of times;
    a file that stays unparsable is damaged.
    """
    if fs is None or path is None:
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
    return _checked_status(join(directory, STATUS), read_json(join(directory, STATUS)))


def _checked_status(uri: str, status: dict[str, Any] | None) -> dict[str, Any] | None:
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


@dataclass(frozen=True)
class CellFiles:
    """A cell folder's files as one listing found them: what the cell's state is decided from without asking the
    store again whether each file exists (a request per file on S3, after a listing that already said)."""

    directory: str  # the cell's location as given: messages name its files by it (query included)
    filesystem: pafs.FileSystem
    found: Mapping[str, pafs.FileInfo]  # file name -> what the listing said of it

    @classmethod
    def listed(cls, directory: str) -> "CellFiles":
        """One folder, listed now (one request)."""
        fs, path = filesystem(directory)
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return cls(directory, fs, {info.base_name: info for info in infos})

    def metrics_state(self) -> tuple[str, str]:
        """("done", ""), ("missing", "") or ("damaged", why) for the cell's metrics.parquet (its footer is read)."""
        uri, info = join(self.directory, METRICS), self.found.get(METRICS)
        if info is None:
            return "missing", ""
        if info.type != pafs.FileType.File:
            return "damaged", f"{uri}: a folder where a file should be"
        problem = parquet_problem(uri, self.filesystem, info.path, info.size)
        return ("damaged", f"{uri}: {problem}") if problem else ("done", "")

    def read_json(self, name: str) -> dict[str, Any] | None:
        """`read_json` of a file of the cell; None without a request when the listing did not find it."""
        info = self.found.get(name)
        return None if info is None else read_json(join(self.directory, name), self.filesystem, info.path)

    def read_status(self) -> dict[str, Any] | None:
        return _checked_status(join(self.directory, STATUS), self.read_json(STATUS))


def listed_cells(experiment_dir: str) -> tuple[pafs.FileSystem, dict[tuple[str, int], CellFiles]]:
    """The experiment's filesystem and every cell folder under results/ with its files, from one recursive listing
    (on S3 one request per thousand files)."""
    fs, root = filesystem(join(experiment_dir, "results"))
    found: dict[tuple[str, int], dict[str, pafs.FileInfo]] = {}
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        if info.path[len(root):].count("/") != 3:  # results/<config_id>/seed-<n>/<file>
            continue
        try:
            key = cell_key(info.path)
        except ValueError:  # a folder not named seed-<n>: not ours
            continue
        found.setdefault(key, {})[info.base_name] = info
    return fs, {key: CellFiles(cell_dir(experiment_dir, *key), fs, files) for key, files in found.items()}


# each member's own figures in a seed block's Tune result, under seed/<seed>/
MEMBER_METRICS = ("dev_accuracy", "best_dev_accuracy", "train_loss", "test_avg_accuracy")


def block_metrics(member_metrics: list[Mapping[str, Any]], seeds: tuple[int, ...]) -> dict[str, float]:
    """One Tune result for a seed block: every number the members report, averaged over them (so ASHA and Optuna
    compare a block by its mean dev accuracy, the quantity selection ranks configurations by), and each member's
    own under `seed/<seed>/`. Position fields (evaluation, update, progress) are the same in every member."""
    keys = [k for k, v in member_metrics[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {key: float(np.mean([m[key] for m in member_metrics])) for key in keys}
    for seed, metrics in zip(seeds, member_metrics):
        out.update({f"seed/{seed}/{key}": float(metrics[key]) for key in MEMBER_METRICS if key in metrics})
    return out
