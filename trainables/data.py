"""PAWS-X and XNLI as canonical `datasets.Dataset`s, from the Hub, a local Hub-layout copy or XTREME TSVs.

Every loader returns the same canonical columns (id, sentence1, sentence2, label with the Hub's
label numbering from `trainables.tasks`), so methods, the training loop and the tokenization
cache never see where the data came from. Labels are mapped BY NAME: XTREME's XNLI TSVs number
the classes differently from the Hub. Test sets are aligned across languages for the paper's
generalized setting (sentence 1 in language A, sentence 2 in language B).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from datasets.table import InMemoryTable

from trainables.source import DATA_KINDS, DataError, DataSource
from trainables.tasks import SOURCE_LANGUAGE, Task

CANONICAL_COLUMNS = ("id", "sentence1", "sentence2", "label")
TEXT_COLUMNS = ("sentence1", "sentence2")
CANONICAL_FEATURES = datasets.Features(
    {
        "id": datasets.Value("int64"),
        "sentence1": datasets.Value("string"),
        "sentence2": datasets.Value("string"),
        "label": datasets.Value("int64"),
    }
)
SPLITS = ("train", "dev", "test")
# Configs of Hub repos that are not one language (facebook/xnli has "all_languages").
NON_LANGUAGE_CONFIGS = frozenset({"default", "all_languages"})
ALLOW_EMPTY_HINT = ("set `data.allow_empty: true` in the sweep config to keep rows with empty text; "
                    "DataSource(..., allow_empty=True) in Python")
OFFLINE_HINT = "offline? set HF_HUB_OFFLINE=0 or use a local copy"
FINGERPRINT_VERSION = b"robust-xlt canonical pairs v1\n"

Where = Callable[[int], str]  # row index -> "file:line" or "dataset config split row"


@dataclass(frozen=True)
class TaskData:
    """English train and dev sets plus one test set per language, all canonical."""

    train: datasets.Dataset
    dev: datasets.Dataset
    test: Mapping[str, datasets.Dataset]


# What the published translated PAWS-X sets put where a translation is missing (google-research-datasets/paws
# issues 4 and 15); the scripts keep such rows, and so does `allow_empty`.
PLACEHOLDERS = frozenset({"NS"})


def kept_rows(data: TaskData) -> dict[str, dict[str, int]]:
    """"split/language" -> rows whose sentence1 or sentence2 is empty, or a placeholder ("NS"): what a run with
    `allow_empty` trains or tests on as the scripts do, counted for the report."""
    sets = {"train/en": data.train, "dev/en": data.dev, **{f"test/{lang}": split for lang, split in data.test.items()}}
    counts = {}
    for name, split in sets.items():
        table = split.with_format("arrow")[:]
        stripped = [pc.utf8_trim_whitespace(pc.fill_null(table.column(c), "")) for c in TEXT_COLUMNS]
        empty = pc.or_(*[pc.equal(pc.utf8_length(t), 0) for t in stripped])
        placeholder = pc.or_(*[pc.is_in(t, value_set=pa.array(sorted(PLACEHOLDERS))) for t in stripped])
        counts[name] = {"rows": len(split), "empty": int(pc.sum(empty).as_py() or 0),
                        "placeholder": int(pc.sum(placeholder).as_py() or 0)}
    return counts


@dataclass(frozen=True)
class Loader:
    """How one kind of source loads a split and lists its languages."""

    load: Callable[[Task, DataSource, str, str], pa.Table]
    languages: Callable[[Task, DataSource], tuple[str, ...]]


# ---------------------------------------------------------------------------------------------
# Public API


def load_split(task: Task, source: DataSource, split: str, language: str) -> datasets.Dataset:
    """One split ("train", "dev" or "test") of one language as a validated canonical Dataset."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return _to_dataset(LOADERS[source.kind].load(task, source.for_task(task), split, language))


def available_languages(task: Task, source: DataSource) -> tuple[str, ...]:
    """Languages the source offers test sets for, the source language first."""
    return LOADERS[source.kind].languages(task, source.for_task(task))


def load_task_data(task: Task, source: DataSource, languages: Sequence[str]) -> TaskData:
    """English train and dev plus the test set of each requested language."""
    _check_requested_languages(task, source, languages)
    return TaskData(
        train=load_split(task, source, "train", SOURCE_LANGUAGE),
        dev=load_split(task, source, "dev", SOURCE_LANGUAGE),
        test=MappingProxyType({language: load_split(task, source, "test", language) for language in languages}),
    )


def align_parallel(task: Task, test: Mapping[str, datasets.Dataset]) -> dict[str, datasets.Dataset]:
    """Test sets in the same row order in every language (task.align_by), or DataError if not parallel.

    The reference order is the source language's (or the first language's when English is absent).
    """
    if not test:
        raise DataError("no test sets to align")
    tables = {language: _canonical_table(dataset) for language, dataset in test.items()}
    reference = SOURCE_LANGUAGE if SOURCE_LANGUAGE in tables else next(iter(tables))
    align = ALIGNERS[task.align_by]
    return {
        language: _to_dataset(align(reference, tables[reference], language, table))
        for language, table in tables.items()
    }


def generalized_pair(aligned: Mapping[str, datasets.Dataset], lang1: str, lang2: str) -> datasets.Dataset:
    """Sentence 1 from lang1's test set and sentence 2 from lang2's, with the shared id and label."""
    for language in (lang1, lang2):
        if language not in aligned:
            raise DataError(f"no aligned test set for language {language!r}; available: {', '.join(aligned)}")
    first, second = _canonical_table(aligned[lang1]), _canonical_table(aligned[lang2])
    _check_same_rows(lang1, first, lang2, second)
    pair = {"id": first["id"], "sentence1": first["sentence1"], "sentence2": second["sentence2"]}
    return _to_dataset(pa.table({**pair, "label": first["label"]}))


def fingerprint(dataset: datasets.Dataset) -> str:
    """sha256 hex of the canonical columns' content: equal data gives an equal key on any machine."""
    return _content_hash(_canonical_table(dataset))


# ---------------------------------------------------------------------------------------------
# Canonical tables and their content hash


def _canonical_table(dataset: datasets.Dataset) -> pa.Table:
    """The canonical columns of a Dataset (in its logical row order) as one Arrow table."""
    missing = [column for column in CANONICAL_COLUMNS if column not in dataset.column_names]
    if missing:
        present = ", ".join(dataset.column_names)
        raise DataError(f"dataset lacks canonical column(s) {', '.join(missing)}; has {present}")
    table = dataset.with_format("arrow", columns=list(CANONICAL_COLUMNS))[:]
    return table.select(list(CANONICAL_COLUMNS)).cast(CANONICAL_FEATURES.arrow_schema.remove_metadata())


def _to_dataset(table: pa.Table) -> datasets.Dataset:
    """A Dataset with the canonical features; its datasets fingerprint is the content hash."""
    table = table.select(list(CANONICAL_COLUMNS)).cast(CANONICAL_FEATURES.arrow_schema.remove_metadata())
    table = table.combine_chunks()
    info = datasets.DatasetInfo(features=CANONICAL_FEATURES)
    return datasets.Dataset(InMemoryTable(table), info=info, fingerprint=_content_hash(table))


def _content_hash(table: pa.Table) -> str:
    """Hash column values (not Arrow chunking, offsets or validity buffers) so layout never matters."""
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    digest.update(np.int64(table.num_rows).tobytes())
    for name in CANONICAL_COLUMNS:
        digest.update(name.encode() + b"\0")
        column = table[name].combine_chunks()
        if column.null_count:
            raise DataError(f"column {name} has {column.null_count} null value(s); canonical data has none")
        for chunk in COLUMN_BYTES[CANONICAL_FEATURES[name].dtype](column):
            digest.update(chunk)
    return digest.hexdigest()


def _int64_bytes(column: pa.Array) -> list:
    return [column.to_numpy(zero_copy_only=False).astype("<i8", copy=False).tobytes()]


def _string_bytes(column: pa.Array) -> list:
    """String lengths then the UTF-8 bytes, whatever the array's offset width or slice offset."""
    if len(column) == 0:
        return [b""]
    column = column.cast(pa.large_string())
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype="<i8", count=len(column) + 1, offset=column.offset * 8)
    data = memoryview(data_buffer)[offsets[0] : offsets[-1]] if data_buffer is not None else b""
    return [np.diff(offsets).astype("<i8", copy=False).tobytes(), data]


COLUMN_BYTES: Mapping[str, Callable[[pa.Array], list]] = MappingProxyType(
    {"int64": _int64_bytes, "string": _string_bytes}
)


# ---------------------------------------------------------------------------------------------
# Shared validation: text and labels


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first true value of a boolean array, None when there is none."""
    hits = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    return int(hits[0]) if hits.size else None


def _checked_texts(table: pa.Table, where: Where, allow_empty: bool) -> pa.Table:
    """Refuse empty (or whitespace-only, or missing) sentences unless allow_empty; nulls become ""."""
    for column in TEXT_COLUMNS:
        text = table[column]
        if len(text) and text.null_count == len(text):
            raise DataError(f"{where(0)}: no {column} in any row (is the column missing from the file?)")
        empty = pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0))
        row = None if allow_empty else _first_true(empty)
        if row is not None:
            raise DataError(f"{where(row)}: empty {column} ({ALLOW_EMPTY_HINT})")
        table = table.set_column(table.schema.get_field_index(column), column, pc.fill_null(text, ""))
    return table


def _allowed_labels(task: Task) -> str:
    names = ", ".join(task.label_names)
    aliases = [alias for alias in task.label_aliases if alias not in task.label_names]
    return f"{names} (also accepted: {', '.join(aliases)})" if aliases else names


def _is_integer_text(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def _label_problem(task: Task, raw: str) -> str | None:
    """Why a label given by name cannot be mapped, None when it can."""
    if _is_integer_text(raw) and not task.numeric_tsv_labels:
        hub_numbers = ", ".join(f"{number}={name}" for number, name in enumerate(task.label_names))
        return (
            f"numeric label {raw!r} is ambiguous for {task.name}: XTREME's TSVs number the classes "
            f"differently from the Hub ({hub_numbers}); write label names instead: {_allowed_labels(task)}"
        )
    if task.label_id(raw) is None:
        return f"unknown label {raw!r}; allowed: {_allowed_labels(task)}"
    return None


def _label_ids_by_name(task: Task, labels: pa.ChunkedArray | pa.Array, where: Where) -> pa.Array:
    """Canonical ids of labels given as text, vectorized over the distinct values."""
    encoded = pc.dictionary_encode(labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels)
    names = encoded.dictionary.to_pylist()
    problems = [_label_problem(task, name) for name in names]
    bad = [code for code, problem in enumerate(problems) if problem is not None]
    if bad:
        row = _first_true(pc.is_in(encoded.indices, value_set=pa.array(bad, encoded.indices.type)))
        raise DataError(f"{where(row)}: {problems[encoded.indices[row].as_py()]}")
    ids = pa.array([task.label_id(name) for name in names], pa.int64())
    return ids.take(encoded.indices)


def _checked_label_range(values: pa.Array, count: int, where: Where, meaning: str) -> pa.Array:
    """Integer labels must lie in [0, count); the message says what the numbers mean."""
    values = values.cast(pa.int64())
    row = _first_true(pc.is_null(values))
    if row is not None:
        raise DataError(f"{where(row)}: missing label")
    row = _first_true(pc.invert(pc.and_(pc.greater_equal(values, 0), pc.less(values, count))))
    if row is not None:
        raise DataError(f"{where(row)}: label {values[row].as_py()} outside 0..{count - 1} ({meaning})")
    return values


# ---------------------------------------------------------------------------------------------
# TSV layout (XTREME / Robust-XLT): <split>-<lang>.tsv, no header, sentence1 TAB sentence2 TAB label


def _tsv_file(directory: Path, split: str, language: str) -> Path:
    return directory / f"{split}-{language}.tsv"


def _tsv_languages_of(directory: Path, split: str) -> list[str]:
    return sorted(path.name[len(split) + 1 : -len(".tsv")] for path in directory.glob(f"{split}-*.tsv"))


def _source_first(languages: Sequence[str]) -> tuple[str, ...]:
    """The source language first, the others in the given order."""
    return tuple([SOURCE_LANGUAGE] if SOURCE_LANGUAGE in languages else []) + tuple(
        language for language in languages if language != SOURCE_LANGUAGE
    )


def _existing_directory(source: DataSource) -> Path:
    directory = Path(source.path).absolute()
    if not directory.is_dir():
        raise DataError(f"{source.kind} data directory {directory} does not exist")
    return directory


def _tsv_available_languages(task: Task, source: DataSource) -> tuple[str, ...]:
    directory = _existing_directory(source)
    languages = _tsv_languages_of(directory, "test")
    if not languages:
        raise DataError(f"{directory}: no test-<lang>.tsv files")
    return _source_first(languages)


def _tsv_load(task: Task, source: DataSource, split: str, language: str) -> pa.Table:
    directory = _existing_directory(source)
    path = _tsv_file(directory, split, language)
    if not path.is_file():
        present = _tsv_languages_of(directory, split)
        raise DataError(
            f"{path} does not exist: no {split} split for language {language!r}; "
            f"{split} languages available in {directory}: {', '.join(present) or 'none'}"
        )
    return _tsv_canonical(task, path, _read_tsv(path), source.allow_empty)


def _tsv_canonical(task: Task, path: Path, table: pa.Table, allow_empty: bool) -> pa.Table:
    """Validate a raw TSV table; row i is line i + 1 because quoting is off and no line is skipped."""
    def where(row: int) -> str:
        return f"{path}:{row + 1}"

    lengths = [pc.utf8_length(table[column]) for column in table.column_names]
    row = _first_true(pc.equal(pc.add(pc.add(lengths[0], lengths[1]), lengths[2]), 0))
    if row is not None:
        raise DataError(f"{where(row)}: blank line; expected 3 tab-separated fields (sentence1, sentence2, label)")
    table = _checked_texts(table, where, allow_empty)
    labels = _label_ids_by_name(task, table["label"], where)
    ids = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return pa.table({"id": ids, "sentence1": table["sentence1"], "sentence2": table["sentence2"], "label": labels})


def _read_tsv(path: Path) -> pa.Table:
    """Three string columns with Arrow's C parser; quoting off (XTREME text contains quote characters)."""
    bad_rows: list = []

    def refuse(row: pa_csv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    names = ["sentence1", "sentence2", "label"]
    try:
        return pa_csv.read_csv(
            path,
            # Single-threaded so that Arrow reports the line number of a bad row.
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter="\t", quote_char=False, ignore_empty_lines=False, invalid_row_handler=refuse
            ),
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.string() for name in names}),
        )
    except pa.ArrowInvalid as error:
        raise _tsv_parse_error(path, bad_rows, error) from error


def _tsv_parse_error(path: Path, bad_rows: list, error: Exception) -> DataError:
    if bad_rows:
        row = bad_rows[0]
        return DataError(
            f"{path}:{row.number}: expected 3 tab-separated fields (sentence1, sentence2, label), "
            f"found {row.actual_columns}: {row.text[:200]!r}"
        )
    if "Empty CSV file" in str(error):
        return DataError(f"{path}: file is empty")
    line = _first_non_utf8_line(path)
    if line is not None:
        return DataError(f"{path}:{line}: not valid UTF-8")
    return DataError(f"{path}: cannot parse as TSV: {error}")


def _first_non_utf8_line(path: Path) -> int | None:
    """Error path only: find the 1-based line that is not UTF-8."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


# ---------------------------------------------------------------------------------------------
# Hub layout (by id from the Hub, or a local directory laid out like the Hub repo)


def _hub_available_languages(task: Task, source: DataSource) -> tuple[str, ...]:
    return task.languages


def _local_hub_available_languages(task: Task, source: DataSource) -> tuple[str, ...]:
    directory = str(_existing_directory(source))
    try:
        configs = datasets.get_dataset_config_names(directory)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the configs of {directory} (README.md `configs:`): {error}") from error
    languages = [config for config in configs if config not in NON_LANGUAGE_CONFIGS]
    if not languages:
        raise DataError(f"{directory}: README.md lists no per-language configs (found: {', '.join(configs)})")
    return _source_first(languages)


def _hub_load(task: Task, source: DataSource, split: str, language: str) -> pa.Table:
    _check_language(language, task.languages, source.path)
    hub_split = task.hub_split_names[split]
    dataset = _load_hub_dataset(source.path, language, hub_split, source.revision, hint=OFFLINE_HINT)
    return _hub_canonical(task, dataset, f"{source.path} config {language} split {hub_split}", source.allow_empty)


def _local_hub_load(task: Task, source: DataSource, split: str, language: str) -> pa.Table:
    directory = str(_existing_directory(source))
    _check_language(language, _local_hub_available_languages(task, source), directory)
    hub_split = task.hub_split_names[split]
    try:
        splits = datasets.get_dataset_split_names(directory, language)
    except Exception as error:  # datasets raises many types for a damaged local folder
        damaged = _first_damaged_parquet(Path(directory))
        if damaged is not None:
            raise DataError(f"{damaged[0]}: {damaged[1]} (config {language}); copy the file again") from error
        raise DataError(f"{directory} config {language}: cannot list its splits: {error}") from error
    if hub_split not in splits:
        raise DataError(
            f"{directory} config {language} has no {hub_split!r} split (our {split!r}); "
            f"available: {', '.join(splits)}"
        )
    try:
        dataset = _load_hub_dataset(directory, language, hub_split, None, hint=None,
                                    cache_dir=_local_cache_dir(directory))
    except DataError:
        damaged = _first_damaged_parquet(Path(directory))
        if damaged is None:
            raise
        raise DataError(f"{damaged[0]}: {damaged[1]} (config {language}, split {hub_split}); copy the file again")
    return _hub_canonical(task, dataset, f"{directory} config {language} split {hub_split}", source.allow_empty)


def _first_damaged_parquet(directory: Path) -> tuple[Path, str] | None:
    """Error path only: the first Parquet file of a local folder whose footer does not read."""
    from trainables.results import parquet_problem

    problems = ((path, parquet_problem(str(path))) for path in sorted(directory.rglob("*.parquet")))
    return next(((path, problem) for path, problem in problems if problem), None)


def _check_language(language: str, available: Sequence[str], where: str) -> None:
    if language not in available:
        raise DataError(f"language {language!r} not available in {where}; available: {', '.join(available)}")


def _local_cache_dir(directory: str) -> str:
    """A datasets cache folder keyed by the local files' paths, sizes and mtimes.

    datasets keys the cache of a local Hub-layout folder by its base name and README patterns
    only, so another folder of the same name, or the same folder rewritten (a rebuilt synthetic
    world), would silently load the old rows from the shared cache.
    """
    digest = hashlib.sha256(directory.encode())
    for path in sorted(Path(directory).rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = path.stat()
            digest.update(f"{relative.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "robust_xlt_local" / digest.hexdigest()[:24])


def _load_hub_dataset(
    path: str, config: str, split: str, revision: str | None, hint: str | None, cache_dir: str | None = None
) -> datasets.Dataset:
    """The same `datasets.load_dataset(path, config, split=...)` call for a Hub id and a local copy."""
    try:
        return datasets.load_dataset(path, config, split=split, revision=revision, cache_dir=cache_dir)
    except Exception as error:  # network, Hub and file-format errors come in many types
        suffix = f" ({hint})" if hint else ""
        raise DataError(f"could not load {path} config {config} split {split}: {error}{suffix}") from error


def _hub_canonical(task: Task, dataset: datasets.Dataset, name: str, allow_empty: bool) -> pa.Table:
    """Rename the task's Hub columns, map labels to canonical ids, take ids from `id` or the row index."""
    def where(row: int) -> str:
        return f"{name} row {row}"

    text_columns = (task.sentence1_column, task.sentence2_column)
    missing = [column for column in (*text_columns, "label") if column not in dataset.column_names]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}; columns: {', '.join(dataset.column_names)}")
    table = dataset.with_format("arrow")[:]
    texts = pa.table({"sentence1": table[task.sentence1_column], "sentence2": table[task.sentence2_column]})
    texts = _checked_texts(texts, where, allow_empty)
    labels = _hub_label_ids(task, dataset.features["label"], table["label"], where)
    ids = _hub_ids(table, where)
    return pa.table({"id": ids, "sentence1": texts["sentence1"], "sentence2": texts["sentence2"], "label": labels})


def _hub_ids(table: pa.Table, where: Where) -> pa.Array:
    if "id" not in table.column_names:
        return pa.array(np.arange(table.num_rows, dtype=np.int64))
    try:
        ids = table["id"].cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(f"{where(0)}: id column is not integer ({table['id'].type}): {error}") from error
    row = _first_true(pc.is_null(ids))
    if row is not None:
        raise DataError(f"{where(row)}: missing id")
    return ids


def _label_kind(feature: object) -> str:
    """Which HUB_LABEL_MAPPERS entry handles a label feature."""
    if isinstance(feature, datasets.ClassLabel):
        return "class_label"
    dtype = getattr(feature, "dtype", "")
    if dtype in ("string", "large_string"):
        return "string"
    return "integer" if dtype.startswith(("int", "uint")) else "other"


def _class_label_ids(task: Task, feature: datasets.ClassLabel, values: pa.ChunkedArray, where: Where) -> pa.Array:
    """Map through the ClassLabel's names, whatever order the file's classes are in."""
    ids = [task.label_id(name) for name in feature.names]
    unknown = [name for name, label_id in zip(feature.names, ids) if label_id is None]
    if unknown:
        raise DataError(
            f"{where(0)}: ClassLabel names {', '.join(map(repr, unknown))} are not labels of {task.name}; "
            f"allowed: {_allowed_labels(task)}"
        )
    positions = _checked_label_range(values.combine_chunks(), len(ids), where, f"ClassLabel {feature.names}")
    return pa.array(ids, pa.int64()).take(positions)


def _integer_label_ids(task: Task, feature: object, values: pa.ChunkedArray, where: Where) -> pa.Array:
    """A plain integer label column is taken as canonical ids."""
    meaning = "canonical ids: " + ", ".join(f"{number}={name}" for number, name in enumerate(task.label_names))
    return _checked_label_range(values.combine_chunks(), task.num_labels, where, meaning)


def _string_label_ids(task: Task, feature: object, values: pa.ChunkedArray, where: Where) -> pa.Array:
    row = _first_true(pc.is_null(values))
    if row is not None:
        raise DataError(f"{where(row)}: missing label")
    return _label_ids_by_name(task, values, where)


def _unusable_label_ids(task: Task, feature: object, values: pa.ChunkedArray, where: Where) -> pa.Array:
    raise DataError(f"{where(0)}: label column of type {feature} is neither ClassLabel, integer nor string")


HUB_LABEL_MAPPERS: Mapping[str, Callable[[Task, object, pa.ChunkedArray, Where], pa.Array]] = MappingProxyType(
    {
        "class_label": _class_label_ids,
        "integer": _integer_label_ids,
        "string": _string_label_ids,
        "other": _unusable_label_ids,
    }
)


def _hub_label_ids(task: Task, feature: object, values: pa.ChunkedArray, where: Where) -> pa.Array:
    return HUB_LABEL_MAPPERS[_label_kind(feature)](task, feature, values, where)


# ---------------------------------------------------------------------------------------------
# Parallel test sets


def _first_duplicate(ids: pa.Array | pa.ChunkedArray) -> int | None:
    """Row of the first id that already occurred earlier."""
    repeated = pd.Series(ids.to_numpy()).duplicated().to_numpy()
    hits = np.flatnonzero(repeated)
    return int(hits[0]) if hits.size else None


def _not_parallel(reference: str, language: str, detail: str) -> DataError:
    return DataError(f"test sets of {reference} and {language} are not parallel: {detail}")


def _check_unique_ids(reference: str, language: str, checked: str, table: pa.Table) -> None:
    """Aligning by id needs unique ids in the `checked` language's table."""
    row = _first_duplicate(table["id"])
    if row is not None:
        detail = f"id {table['id'][row].as_py()} occurs twice in {checked} (row {row}); cannot align by id"
        raise _not_parallel(reference, language, detail)


def _align_by_id(reference: str, reference_table: pa.Table, language: str, table: pa.Table) -> pa.Table:
    """Reorder `table` into the reference's id order; refuse different id sets or labels."""
    _check_unique_ids(reference, language, reference, reference_table)
    _check_unique_ids(reference, language, language, table)
    positions = pc.index_in(reference_table["id"], value_set=table["id"])
    row = _first_true(pc.is_null(positions))
    if row is not None:
        detail = f"id {reference_table['id'][row].as_py()} (row {row} of {reference}) is missing from {language}"
        raise _not_parallel(reference, language, detail)
    row = _first_true(pc.invert(pc.is_in(table["id"], value_set=reference_table["id"])))
    if row is not None:
        detail = f"id {table['id'][row].as_py()} (row {row} of {language}) is missing from {reference}"
        raise _not_parallel(reference, language, detail)
    aligned = table.take(positions)
    _check_same_labels(reference, reference_table, language, aligned, "id")
    return aligned


def _align_by_row(reference: str, reference_table: pa.Table, language: str, table: pa.Table) -> pa.Table:
    """Rows correspond by position; lengths and labels must agree. Ids are taken from the reference."""
    if table.num_rows != reference_table.num_rows:
        detail = (
            f"{reference} has {reference_table.num_rows} rows but {language} has {table.num_rows} "
            f"(first unmatched row: {min(table.num_rows, reference_table.num_rows)})"
        )
        raise _not_parallel(reference, language, detail)
    _check_same_labels(reference, reference_table, language, table, "row")
    return table.set_column(0, "id", reference_table["id"])


def _check_same_labels(reference: str, reference_table: pa.Table, language: str, table: pa.Table, key: str) -> None:
    row = _first_true(pc.not_equal(reference_table["label"], table["label"]))
    if row is not None:
        place = f"id {reference_table['id'][row].as_py()}" if key == "id" else f"row {row}"
        detail = (
            f"{place} has label {reference_table['label'][row].as_py()} in {reference} "
            f"but {table['label'][row].as_py()} in {language}"
        )
        raise _not_parallel(reference, language, detail)


def _check_same_rows(lang1: str, first: pa.Table, lang2: str, second: pa.Table) -> None:
    """Generalized pairs need aligned sets: same length, ids and labels row by row."""
    if first.num_rows != second.num_rows:
        raise _not_parallel(lang1, lang2, f"{first.num_rows} vs {second.num_rows} rows (call align_parallel first)")
    row = _first_true(pc.or_(pc.not_equal(first["id"], second["id"]), pc.not_equal(first["label"], second["label"])))
    if row is not None:
        raise _not_parallel(lang1, lang2, f"row {row} differs in id or label (call align_parallel first)")


def _check_requested_languages(task: Task, source: DataSource, languages: Sequence[str]) -> None:
    repeated = sorted(language for language, count in Counter(languages).items() if count > 1)
    if repeated:
        raise DataError(f"language(s) requested more than once: {', '.join(repeated)}")
    available = available_languages(task, source)
    missing = [language for language in languages if language not in available]
    if missing:
        raise DataError(
            f"language(s) {', '.join(missing)} not available in {source.kind} source {source.path}; "
            f"available: {', '.join(available)}"
        )


ALIGNERS: Mapping[str, Callable[[str, pa.Table, str, pa.Table], pa.Table]] = MappingProxyType(
    {"id": _align_by_id, "row": _align_by_row}
)

LOADERS: Mapping[str, Loader] = MappingProxyType(
    {
        "hub": Loader(load=_hub_load, languages=_hub_available_languages),
        "local_hub": Loader(load=_local_hub_load, languages=_local_hub_available_languages),
        "tsv": Loader(load=_tsv_load, languages=_tsv_available_languages),
    }
)
assert tuple(LOADERS) == DATA_KINDS, "a data kind without its loader (trainables.source.DATA_KINDS)"
