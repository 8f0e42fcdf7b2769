"""Read experiment directories (docs/results-schema.md) into one tidy, validated DataFrame.

This is the only module of the package that reads result files; everything downstream is a pure
function over DataFrames. A result file that a crash, a full disk or a partial copy left unreadable
does not stop the analysis: its cell is left out (as if missing) and named in `ExperimentInfo.problems`,
which the report prints as notes.

Tidy metrics frame (`Results.metrics`), one row per (experiment, config_id, stage, seed, split, lang1, lang2):

| column | dtype | meaning |
|---|---|---|
| experiment, task, method, config_id, config_label | str | as in metrics.parquet |
| epsilon | float64 (NaN when not applicable) | L-inf radius of adv / rs_rp |
| m | float64 (NaN when not applicable) | copies of rs_da / rs_syntax |
| seed | int64 | training seed: the pairing key of every paired test |
| stage | str | grid, search or final |
| split | str | dev (English, best-by-dev) or test |
| lang1, lang2 | str | sentence-1 / sentence-2 language |
| accuracy | float64 | fraction in [0, 1] |
| n, best_step | int64 | examples, update of the best dev accuracy |
| source | str | the metrics.parquet the row came from (for error messages) |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from analysis.names import METHOD_DISPLAY
from trainables.results import METRICS_SCHEMA  # the writer's schema: one definition for both sides
from trainables.results import READ_WORKERS, DamagedFile, parallel_map, parquet_footer

REQUIRED_NON_NULL = ("experiment", "task", "method", "config_id", "seed", "stage", "split", "lang1", "lang2", "accuracy", "n")
ALLOWED_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"stage": ("grid", "search", "final"), "split": ("dev", "test")}  # methods: any (a new one is reported)
)
ROW_KEY = ("experiment", "config_id", "stage", "seed", "split", "lang1", "lang2")
SEED_GROUP = ("experiment", "config_id", "stage")


class AnalysisInputError(ValueError):
    """Bad or inconsistent results; the message names the file (and row or field) at fault."""


@dataclass(frozen=True)
class ExperimentInfo:
    """What experiment.json and plan.json say about one experiment directory."""

    name: str
    path: Location
    task: str
    languages: tuple[str, ...]
    baseline: str
    seeds: tuple[int, ...]
    language_distances: Mapping[str, float] | None
    distance_name: str | None
    planned: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (config_id, stage) -> N
    problems: tuple[str, ...] = ()  # damaged files left out (the report's notes)
    method_display: Mapping[str, str] = field(default_factory=dict)  # experiment.json's `methods`: the run's names
    protocol: str = "paper"  # selection.protocol the sweep ran with (paper, two_stage, per_run)
    kept_rows: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # "split/lang" -> rows, empty, placeholder


@dataclass(frozen=True)
class Results:
    """All metrics rows of the loaded experiments plus their metadata."""

    metrics: pd.DataFrame
    experiments: tuple[ExperimentInfo, ...]

    @property
    def method_display(self) -> Mapping[str, str]:
        """Row names: the installed methods', then what each experiment's run called its methods."""
        names = dict(METHOD_DISPLAY)
        for info in self.experiments:
            names.update(info.method_display)
        return MappingProxyType(names)

    def experiment(self, name: str) -> ExperimentInfo:
        for info in self.experiments:
            if info.name == name:
                return info
        raise KeyError(f"no loaded experiment named {name!r}")


@dataclass(frozen=True)
class Location:
    """A file or folder on any filesystem pyarrow reaches: a local path or a URI such as s3://bucket/x.

    The sweeper may keep experiments on object storage, so every read goes through pyarrow's
    filesystem layer; `str()` gives the name used in error messages.
    """

    filesystem: pafs.FileSystem
    path: str
    scheme: str = ""

    @classmethod
    def of(cls, target: "str | Path | Location") -> "Location":
        if isinstance(target, Location):
            return target
        text = str(target)
        if "://" in text:
            filesystem, path = pafs.FileSystem.from_uri(text)
            return cls(filesystem, path.rstrip("/"), text.split("://", 1)[0] + "://")
        return cls(pafs.LocalFileSystem(), str(Path(text).expanduser().resolve()))

    def __truediv__(self, part: str) -> "Location":
        return Location(self.filesystem, f"{self.path.rstrip('/')}/{part}", self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}{self.path}" if self.scheme and self.scheme != "file://" else self.path

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def kind(self) -> pafs.FileType:
        return self.filesystem.get_file_info(self.path).type

    def is_file(self) -> bool:
        return self.kind() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self.kind() == pafs.FileType.Directory

    def read_text(self) -> str:
        with self.filesystem.open_input_stream(self.path) as stream:
            return stream.read().decode("utf-8")

    def listing(self, recursive: bool = False) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True)
        return self.filesystem.get_file_info(selector)


def _read_json(path: Location) -> dict:
    if not path.is_file():
        raise AnalysisInputError(f"{path}: missing (every experiment directory has one)")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AnalysisInputError(f"{path}: line {error.lineno}: invalid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise AnalysisInputError(f"{path}: not UTF-8 text (damaged?)") from None
    if not isinstance(value, dict):
        raise AnalysisInputError(f"{path}: expected a JSON object at the top level")
    return value


def _field(document: dict, key: str, kind: type | tuple[type, ...], path: Location):
    if key not in document:
        raise AnalysisInputError(f"{path}: missing field {key!r}")
    value = document[key]
    if not isinstance(value, kind):
        raise AnalysisInputError(f"{path}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _distances(document: dict, path: Location) -> Mapping[str, float] | None:
    raw = document.get("language_distances")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(v, (int, float)) for v in raw.values()):
        raise AnalysisInputError(f"{path}: field 'language_distances' must map languages to numbers")
    return MappingProxyType({str(k): float(v) for k, v in raw.items()})


def planned_seed_counts(plan: dict, path: Location) -> Mapping[tuple[str, str], int]:
    """N per seed group: the number of plan cells with its config_id and stage."""
    cells = _field(plan, "cells", list, path)
    counts: dict[tuple[str, str], int] = {}
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or "config_id" not in cell or "stage" not in cell:
            raise AnalysisInputError(f"{path}: cells[{index}] needs 'config_id' and 'stage'")
        key = (str(cell["config_id"]), str(cell["stage"]))
        counts[key] = counts.get(key, 0) + 1
    return MappingProxyType(counts)


def _planned_or_problem(plan_path: Location) -> tuple[Mapping[tuple[str, str], int], tuple[str, ...]]:
    """Planned seed counts; a missing or damaged plan.json leaves them unknown (shown n/?) with a note."""
    try:
        return planned_seed_counts(_read_json(plan_path), plan_path), ()
    except AnalysisInputError as error:
        return MappingProxyType({}), (f"{error}: planned seed counts unknown",)


def read_experiment_info(experiment_dir: Location) -> ExperimentInfo:
    """experiment.json and plan.json of one directory, validated."""
    path = experiment_dir / "experiment.json"
    document = _read_json(path)
    languages = tuple(str(x) for x in _field(document, "languages", list, path))
    if not languages:
        raise AnalysisInputError(f"{path}: field 'languages' is empty")
    planned, problems = _planned_or_problem(experiment_dir / "plan.json")
    return ExperimentInfo(
        name=str(_field(document, "experiment", str, path)),
        path=experiment_dir,
        task=str(_field(document, "task", str, path)),
        languages=languages,
        baseline=str(document.get("baseline", "baseline")),
        seeds=tuple(int(s) for s in document.get("seeds", [])),
        language_distances=_distances(document, path),
        distance_name=document.get("distance_name"),
        planned=planned,
        problems=problems,
        method_display=_method_display(document, path),
        protocol=str(document.get("protocol", "paper")),
        kept_rows=_kept_rows(document, path),
    )


def _kept_rows(document: dict, path: Location) -> Mapping[str, Mapping[str, int]]:
    kept = document.get("kept_rows", {})
    if not isinstance(kept, dict) or not all(isinstance(v, dict) for v in kept.values()):
        raise AnalysisInputError(f"{path}: field 'kept_rows' must map split/language to its counts")
    return MappingProxyType({str(k): MappingProxyType({str(c): int(n) for c, n in v.items()}) for k, v in kept.items()})


def _method_display(document: dict, path: Location) -> Mapping[str, str]:
    """experiment.json's `methods` (name -> {display, grid_axis, ...}); absent in older experiments."""
    methods = document.get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise AnalysisInputError(f"{path}: field 'methods' must map each method to its description")
    return MappingProxyType({str(name): str(v.get("display", name)) for name, v in methods.items()})


def expand_experiment_dirs(dirs: Iterable[str | Path]) -> list[Location]:
    """Experiment directories named directly, or every experiment under a storage folder."""
    found: list[Location] = []
    for entry in map(Location.of, dirs):
        if (entry / "experiment.json").is_file():
            found.append(entry)
            continue
        children = sorted(
            (Location(entry.filesystem, info.path, entry.scheme) for info in entry.listing()
             if info.type == pafs.FileType.Directory),
            key=lambda location: location.path,
        )
        experiments = [child for child in children if (child / "experiment.json").is_file()]
        if not experiments:
            raise AnalysisInputError(f"{entry}: not an experiment directory (no experiment.json in it or below it)")
        found.extend(experiments)
    if len({location.path for location in found}) != len(found):
        raise AnalysisInputError("the same experiment directory was given twice")
    return found


METRICS_FILE = re.compile(r"/results/[^/]+/seed-[^/]+/metrics\.parquet$")
PREDICTIONS_FILE = re.compile(r"/results/[^/]+/seed-[^/]+/predictions\.parquet$")


def metrics_files(experiment_dir: Location) -> list[pafs.FileInfo]:
    """The done cells of an experiment: results/<config_id>/seed-<seed>/metrics.parquet, as one listing found them
    (with their sizes, which spare a request per file on an object store)."""
    return _cell_files(experiment_dir, METRICS_FILE)


def _cell_files(experiment_dir: Location, pattern: re.Pattern[str]) -> list[pafs.FileInfo]:
    results = experiment_dir / "results"
    return sorted(
        (info for info in results.listing(recursive=True)
         if info.type == pafs.FileType.File and pattern.search(info.path[len(experiment_dir.path):])),
        key=lambda info: info.path,
    )


def readable_files(files: Sequence[pafs.FileInfo], filesystem: pafs.FileSystem
                   ) -> tuple[list[ds.ParquetFileFragment], list[str]]:
    """(the files whose Parquet footer reads and holds rows, footer read, one "path: why" per damaged file).

    The footers are read in parallel: one round trip each on an object store."""
    def footer(info: pafs.FileInfo) -> ds.ParquetFileFragment | str:
        try:
            return parquet_footer(info.path, filesystem, info.path, info.size)
        except DamagedFile as damaged:
            return str(damaged)

    read = parallel_map(footer, files)
    return [r for r in read if not isinstance(r, str)], [r for r in read if isinstance(r, str)]


def _check_columns(fragments: Sequence[ds.ParquetFileFragment]) -> None:
    for fragment in fragments:
        present = set(fragment.physical_schema.names)
        missing = [name for name in METRICS_SCHEMA.names if name not in present]
        if missing:
            raise AnalysisInputError(f"{fragment.path}: missing column(s) {', '.join(missing)}")


def _dataset(fragments: Sequence[ds.ParquetFileFragment], filesystem: pafs.FileSystem,
             schema: pa.Schema | None = None) -> ds.FileSystemDataset:
    """The fragments as one dataset, footers already read: a scan asks the store for their data only."""
    return ds.FileSystemDataset(list(fragments), schema or fragments[0].physical_schema, ds.ParquetFileFormat(),
                                filesystem)


def read_metrics_files(fragments: Sequence[ds.ParquetFileFragment], filesystem: pafs.FileSystem) -> pd.DataFrame:
    """All rows of the given metrics.parquet files (`readable_files`), cast to the schema, with a `source` column."""
    _check_columns(fragments)
    dataset = _dataset(fragments, filesystem, METRICS_SCHEMA)
    try:
        table = dataset.to_table(columns=[*METRICS_SCHEMA.names, "__filename"],
                                 fragment_readahead=READ_WORKERS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        folder = fragments[0].path.rsplit("/", 3)[0]
        raise AnalysisInputError(f"metrics files under {folder}: column type mismatch ({error})") from None
    frame = table.to_pandas()
    frame = frame.rename(columns={"__filename": "source"})
    frame["m"] = frame["m"].astype("float64")
    return frame


def _first_bad_row(frame: pd.DataFrame, mask: pd.Series) -> str:
    row_in_file = frame.groupby("source", sort=False).cumcount()
    first = mask.to_numpy().nonzero()[0][0]
    return f"{frame['source'].iloc[first]}: row {int(row_in_file.iloc[first])}"


def validate_metrics(frame: pd.DataFrame) -> None:
    """Refuse nulls/NaN, unknown names, out-of-range accuracy, misplaced files and duplicate rows."""
    for column in REQUIRED_NON_NULL:
        mask = frame[column].isna()
        if mask.any():
            raise AnalysisInputError(f"{_first_bad_row(frame, mask)}: {column} is null/NaN")
    for column, allowed in ALLOWED_VALUES.items():
        mask = ~frame[column].isin(allowed)
        if mask.any():
            value = frame.loc[mask, column].iloc[0]
            raise AnalysisInputError(
                f"{_first_bad_row(frame, mask)}: unknown {column} {value!r} (allowed: {', '.join(allowed)})"
            )
    mask = (frame["accuracy"] < 0) | (frame["accuracy"] > 1)
    if mask.any():
        raise AnalysisInputError(
            f"{_first_bad_row(frame, mask)}: accuracy {frame.loc[mask, 'accuracy'].iloc[0]} outside [0, 1] "
            "(accuracy is stored as a fraction, not a percentage)"
        )
    _check_locations(frame)
    _check_duplicates(frame)


def _check_locations(frame: pd.DataFrame) -> None:
    parts = frame["source"].str.rsplit("/", n=3, expand=True)
    expected_seed = "seed-" + frame["seed"].astype(str)
    mask = (parts[1] != frame["config_id"]) | (parts[2] != expected_seed)
    if mask.any():
        raise AnalysisInputError(
            f"{_first_bad_row(frame, mask)}: config_id {frame.loc[mask, 'config_id'].iloc[0]!r} / seed "
            f"{frame.loc[mask, 'seed'].iloc[0]} do not match the folder results/<config_id>/seed-<seed>/"
        )


def _check_duplicates(frame: pd.DataFrame) -> None:
    mask = frame.duplicated(list(ROW_KEY), keep=False)
    if mask.any():
        key = frame.loc[mask, list(ROW_KEY)].iloc[0]
        clash = frame.loc[mask & (frame[list(ROW_KEY)] == key).all(axis=1), "source"].unique()
        raise AnalysisInputError(
            "duplicate metrics rows for " + ", ".join(f"{k}={key[k]}" for k in ROW_KEY) + " in: " + ", ".join(clash)
        )
    methods_per_config = frame.groupby(["experiment", "config_id"])["method"].nunique()
    if (methods_per_config > 1).any():
        experiment, config_id = methods_per_config[methods_per_config > 1].index[0]
        raise AnalysisInputError(f"experiment {experiment}: config_id {config_id!r} is used by several methods")


def _check_against_info(frame: pd.DataFrame, info: ExperimentInfo) -> None:
    for column, expected in (("experiment", info.name), ("task", info.task)):
        mask = frame[column] != expected
        if mask.any():
            raise AnalysisInputError(
                f"{_first_bad_row(frame, mask)}: {column} {frame.loc[mask, column].iloc[0]!r} "
                f"but {info.path / 'experiment.json'} says {expected!r}"
            )
    for column in ("lang1", "lang2"):
        mask = ~frame[column].isin(info.languages)
        if mask.any():
            raise AnalysisInputError(
                f"{_first_bad_row(frame, mask)}: {column} {frame.loc[mask, column].iloc[0]!r} is not one of the "
                f"languages of {info.path / 'experiment.json'} ({', '.join(info.languages)})"
            )


def load_experiment(experiment_dir: "str | Path | Location") -> tuple[pd.DataFrame, ExperimentInfo]:
    """One experiment's validated metrics and metadata."""
    experiment_dir = Location.of(experiment_dir)
    info = read_experiment_info(experiment_dir)
    files, damaged = readable_files(metrics_files(experiment_dir), experiment_dir.filesystem)
    if not files:
        detail = f"; {len(damaged)} damaged, e.g. {damaged[0]}" if damaged else ""
        raise AnalysisInputError(f"{experiment_dir}: no finished trials (no readable "
                                 f"results/*/seed-*/metrics.parquet{detail})")
    if damaged:
        left_out = tuple(f"damaged result file left out (its cell counts as missing): {d}" for d in damaged)
        info = replace(info, problems=info.problems + left_out)
    frame = read_metrics_files(files, experiment_dir.filesystem)
    validate_metrics(frame)
    _check_against_info(frame, info)
    unknown = sorted(set(frame["method"]) - set(METHOD_DISPLAY) - set(info.method_display))
    if unknown:
        info = replace(info, problems=info.problems + tuple(
            f"method {name!r} is neither installed here nor described by {experiment_dir / 'experiment.json'}: "
            "shown under its own name" for name in unknown))
    return frame, info


def _check_consistent(experiments: Sequence[ExperimentInfo]) -> None:
    names = [info.name for info in experiments]
    if len(set(names)) != len(names):
        raise AnalysisInputError(f"two experiment directories share the experiment name: {names}")
    by_task: dict[str, ExperimentInfo] = {}
    for info in experiments:
        first = by_task.setdefault(info.task, info)
        if first.languages != info.languages:
            raise AnalysisInputError(
                f"{info.path / 'experiment.json'}: languages {list(info.languages)} differ from "
                f"{first.path / 'experiment.json'} ({list(first.languages)}) for the same task {info.task!r}"
            )


def load_results(experiment_dirs: Iterable[str | Path]) -> Results:
    """Every experiment directory (or storage folder of them) into one validated `Results`."""
    frames, infos = [], []
    for experiment_dir in expand_experiment_dirs(experiment_dirs):
        frame, info = load_experiment(experiment_dir)
        frames.append(frame)
        infos.append(info)
    _check_consistent(infos)
    metrics = pd.concat(frames, ignore_index=True)
    return Results(metrics=metrics, experiments=tuple(infos))


def planned_frame(experiments: Iterable[ExperimentInfo]) -> pd.DataFrame:
    """N (planned seeds) per (experiment, config_id, stage) as a DataFrame for merges."""
    rows = [
        (info.name, config_id, stage, count)
        for info in experiments
        for (config_id, stage), count in info.planned.items()
    ]
    return pd.DataFrame(rows, columns=["experiment", "config_id", "stage", "N"]).astype({"N": "int64"})


def _predictions(info: ExperimentInfo, groups: pd.DataFrame) -> tuple[list[ds.ParquetFileFragment], list[str]]:
    """(readable, "path: why" damaged) predictions.parquet of the given (config_id, seed) rows that exist: one
    listing says which exist, their footers are read in parallel."""
    wanted = {(str(config_id), f"seed-{int(seed)}") for config_id, seed in groups[["config_id", "seed"]].itertuples(index=False)}
    listed = [found for found in _cell_files(info.path, PREDICTIONS_FILE)
              if tuple(found.path.rsplit("/", 3)[-3:-1]) in wanted]
    return readable_files(listed, info.path.filesystem)


def prediction_files(info: ExperimentInfo, groups: pd.DataFrame) -> list[str]:
    """predictions.parquet of the given (config_id, seed) rows that exist and read (see `damaged_predictions`)."""
    return [fragment.path for fragment in _predictions(info, groups)[0]]


def damaged_predictions(info: ExperimentInfo, groups: pd.DataFrame) -> list[str]:
    """"path: why" of each predictions.parquet of these groups that exists but does not read."""
    return _predictions(info, groups)[1]


def load_correctness(info: ExperimentInfo, groups: pd.DataFrame, *, stage: str) -> pd.DataFrame:
    """Per-example correctness (0/1) on the standard test setting for the given (config_id, seed) groups.

    Columns: config_id, seed, language, example, correct. Only rows with lang1 == lang2 and split
    test of the given stage are read (pushed down into the Parquet scan).
    """
    fragments = _predictions(info, groups)[0]
    if not fragments:
        return pd.DataFrame(columns=["config_id", "seed", "language", "example", "correct"])
    dataset = _dataset(fragments, info.path.filesystem)
    condition = (ds.field("split") == "test") & (ds.field("lang1") == ds.field("lang2")) & (ds.field("stage") == stage)
    table = dataset.to_table(columns=["config_id", "seed", "lang1", "example", "label", "prediction"], filter=condition,
                             fragment_readahead=READ_WORKERS)
    correct = pc.equal(table["label"], table["prediction"]).cast(pa.int8())
    return pa.table(
        {"config_id": table["config_id"], "seed": table["seed"], "language": table["lang1"],
         "example": table["example"], "correct": correct}
    ).to_pandas(strings_to_categorical=True)
