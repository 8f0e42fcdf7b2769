"""Loading PAWS-X / XNLI from TSV and Hub-layout directories into canonical Datasets."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import huggingface_hub.constants  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

from trainables.data import (  # noqa: E402
    DataError,
    DataSource,
    align_parallel,
    available_languages,
    fingerprint,
    generalized_pair,
    load_split,
    load_task_data,
)
from trainables.tasks import PAWSX, XNLI  # noqa: E402

PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
# (id, sentence1, sentence2, label) per row; the same ids/labels in every language.
PAWSX_ROWS = [(11, "the cat sat", "a cat sat", 1), (7, 'he said "hi"', "she left", 0), (42, "red car", "car red", 1)]
XNLI_ROWS = [("p one", "h one", "entailment"), ("p two", "h two", "contradictory"), ("p three", "h three", "neutral")]


def pawsx_rows(language: str) -> list[tuple[int, str, str, int]]:
    return [(i, f"{s1} {language}", f"{s2} {language}", label) for i, s1, s2, label in PAWSX_ROWS]


def write_tsv(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_pawsx_tsv(directory: Path, languages=("en", "de")) -> Path:
    for language in languages:
        lines = [f"{s1}\t{s2}\t{label}" for _, s1, s2, label in pawsx_rows(language)]
        splits = ("train", "dev", "test") if language == "en" else ("test",)
        for split in splits:
            write_tsv(directory / f"{split}-{language}.tsv", lines)
    return directory


def readme(configs: dict[str, tuple[str, ...]]) -> str:
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    return "\n".join(lines + ["---", "# fixture", ""])


def write_hub(directory: Path, tables: dict[str, dict[str, dict]], features: datasets.Features) -> Path:
    """tables[config][hub split] = column dict; one Parquet file per split plus README configs."""
    for config, splits in tables.items():
        (directory / config).mkdir(parents=True, exist_ok=True)
        for split, columns in splits.items():
            dataset = datasets.Dataset.from_dict(columns, features=features)
            dataset.to_parquet(str(directory / config / f"{split}-00000-of-00001.parquet"))
    (directory / "README.md").write_text(readme({c: tuple(s) for c, s in tables.items()}))
    return directory


PAWSX_FEATURES = datasets.Features(
    {
        "id": datasets.Value("int32"),
        "sentence1": datasets.Value("string"),
        "sentence2": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["0", "1"]),
    }
)


def pawsx_columns(rows) -> dict:
    return {name: [row[k] for row in rows] for k, name in enumerate(("id", "sentence1", "sentence2", "label"))}


def write_pawsx_hub(directory: Path, languages=("en", "de")) -> Path:
    tables = {}
    for language in languages:
        splits = ("train", "validation", "test") if language == "en" else ("validation", "test")
        tables[language] = {split: pawsx_columns(pawsx_rows(language)) for split in splits}
    return write_hub(directory, tables, PAWSX_FEATURES)


@pytest.fixture
def pawsx_tsv(tmp_path) -> DataSource:
    return DataSource("tsv", str(write_pawsx_tsv(tmp_path / "tsv")))


@pytest.fixture
def pawsx_hub(tmp_path) -> DataSource:
    return DataSource("local_hub", str(write_pawsx_hub(tmp_path / "hub")))


# --- both layouts, same canonical result --------------------------------------------------


def test_pawsx_tsv_gives_canonical_columns_and_row_index_ids(pawsx_tsv):
    test = load_split(PAWSX, pawsx_tsv, "test", "de")
    assert test.column_names == ["id", "sentence1", "sentence2", "label"]
    assert test.features == datasets.Features(
        {"id": datasets.Value("int64"), "sentence1": datasets.Value("string"),
         "sentence2": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    assert test.to_dict() == {
        "id": [0, 1, 2],
        "sentence1": ["the cat sat de", 'he said "hi" de', "red car de"],
        "sentence2": ["a cat sat de", "she left de", "car red de"],
        "label": [1, 0, 1],
    }


def test_pawsx_local_hub_keeps_hub_ids_and_maps_class_label_names(pawsx_hub):
    test = load_split(PAWSX, pawsx_hub, "test", "de")
    assert test.to_dict() == {
        "id": [11, 7, 42],
        "sentence1": ["the cat sat de", 'he said "hi" de', "red car de"],
        "sentence2": ["a cat sat de", "she left de", "car red de"],
        "label": [1, 0, 1],
    }


def test_both_layouts_give_identical_datasets_for_the_same_content(tmp_path):
    rows = [(0, s1, s2, label) for _, s1, s2, label in pawsx_rows("en")]
    rows = [(k, s1, s2, label) for k, (_, s1, s2, label) in enumerate(rows)]
    hub = write_hub(tmp_path / "hub", {"en": {"validation": pawsx_columns(rows)}}, PAWSX_FEATURES)
    write_tsv(tmp_path / "tsv" / "dev-en.tsv", [f"{s1}\t{s2}\t{label}" for _, s1, s2, label in rows])
    from_hub = load_split(PAWSX, DataSource("local_hub", str(hub)), "dev", "en")
    from_tsv = load_split(PAWSX, DataSource("tsv", str(tmp_path / "tsv")), "dev", "en")
    assert from_hub.features == from_tsv.features
    assert from_hub.to_dict() == from_tsv.to_dict()
    assert fingerprint(from_hub) == fingerprint(from_tsv)


XNLI_FEATURES_SHUFFLED = datasets.Features(
    {
        "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"),
        # Deliberately not the Hub's order: labels must be mapped through the names.
        "label": datasets.ClassLabel(names=["contradiction", "entailment", "neutral"]),
    }
)


def test_xnli_labels_are_mapped_by_name_in_both_layouts(tmp_path):
    write_tsv(tmp_path / "tsv" / "train-en.tsv", [f"{p}\t{h}\t{label}" for p, h, label in XNLI_ROWS])
    stored = {"entailment": 1, "contradictory": 0, "neutral": 2}  # positions in the shuffled ClassLabel
    columns = {
        "premise": [p for p, _, _ in XNLI_ROWS],
        "hypothesis": [h for _, h, _ in XNLI_ROWS],
        "label": [stored[label] for _, _, label in XNLI_ROWS],
    }
    hub = write_hub(tmp_path / "hub", {"en": {"train": columns}}, XNLI_FEATURES_SHUFFLED)
    from_tsv = load_split(XNLI, DataSource("tsv", str(tmp_path / "tsv")), "train", "en")
    from_hub = load_split(XNLI, DataSource("local_hub", str(hub)), "train", "en")
    # Canonical (Hub) numbering: entailment 0, neutral 1, contradiction 2.
    assert from_tsv["label"] == [0, 2, 1]
    assert from_hub.to_dict() == from_tsv.to_dict()
    assert from_hub["id"] == [0, 1, 2]


def test_plain_integer_hub_labels_are_canonical_ids_and_range_checked(tmp_path):
    features = datasets.Features(
        {"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    good = {"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [2, 0]}
    bad = {"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [1, 3]}
    hub = write_hub(tmp_path / "hub", {"en": {"validation": good, "test": bad}}, features)
    source = DataSource("local_hub", str(hub))
    assert load_split(XNLI, source, "dev", "en")["label"] == [2, 0]
    with pytest.raises(DataError, match=r"config en split test row 1: label 3 outside 0\.\.2"):
        load_split(XNLI, source, "test", "en")


# --- bad data -----------------------------------------------------------------------------


def test_numeric_xnli_tsv_label_is_refused_as_ambiguous(tmp_path):
    write_tsv(tmp_path / "test-en.tsv", ["p\th\tneutral", "p\th\t0"])
    with pytest.raises(DataError) as error:
        load_split(XNLI, DataSource("tsv", str(tmp_path)), "test", "en")
    message = str(error.value)
    assert f"{tmp_path / 'test-en.tsv'}:2:" in message
    assert "ambiguous" in message and "0=entailment" in message and "contradictory" in message


def test_wrong_column_count_names_file_and_line(tmp_path):
    write_tsv(tmp_path / "test-en.tsv", ["a\tb\t1", "a\tb\t0", "a\tb\tc\t1"])
    with pytest.raises(DataError, match=r"test-en\.tsv:3: expected 3 tab-separated fields .* found 4"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path)), "test", "en")


def test_wrong_column_count_on_the_first_line_is_caught(tmp_path):
    write_tsv(tmp_path / "test-en.tsv", ["a\tb", "a\tb\t0"])
    with pytest.raises(DataError, match=r"test-en\.tsv:1: expected 3 .* found 2"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path)), "test", "en")


def test_unknown_label_names_file_line_and_allowed_names(tmp_path):
    write_tsv(tmp_path / "test-en.tsv", ["a\tb\tneutral", "a\tb\tentailment", "a\tb\tmaybe", "a\tb\tnope"])
    with pytest.raises(DataError) as error:
        load_split(XNLI, DataSource("tsv", str(tmp_path)), "test", "en")
    message = str(error.value)
    assert "test-en.tsv:3: unknown label 'maybe'" in message
    assert "entailment, neutral, contradiction" in message and "contradictory" in message


def test_empty_text_is_refused_with_the_allow_empty_hint_and_kept_when_allowed(tmp_path):
    write_tsv(tmp_path / "test-de.tsv", ["a\tb\t1", "a\t  \t0", "c\td\t1"])
    with pytest.raises(DataError, match=r"test-de\.tsv:2: empty sentence2 .*allow_empty=True"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path)), "test", "de")
    kept = load_split(PAWSX, DataSource("tsv", str(tmp_path), allow_empty=True), "test", "de")
    assert kept["sentence2"] == ["b", "  ", "d"] and kept["label"] == [1, 0, 1]


def test_blank_line_is_reported_as_a_bad_line(tmp_path):
    write_tsv(tmp_path / "test-en.tsv", ["a\tb\t1", "", "c\td\t0"])
    with pytest.raises(DataError, match=r"test-en\.tsv:2: blank line"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path), allow_empty=True), "test", "en")


def test_non_utf8_line_is_named(tmp_path):
    (tmp_path / "test-en.tsv").write_bytes(b"a\tb\t1\nc\xff\td\t0\n")
    with pytest.raises(DataError, match=r"test-en\.tsv:2: not valid UTF-8"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path)), "test", "en")


def test_empty_text_in_hub_layout_names_config_split_and_row(tmp_path):
    rows = [(1, "a", "b", 0), (2, "", "d", 1)]
    hub = write_hub(tmp_path / "hub", {"de": {"test": pawsx_columns(rows)}}, PAWSX_FEATURES)
    with pytest.raises(DataError, match=r"config de split test row 1: empty sentence1 .*allow_empty"):
        load_split(PAWSX, DataSource("local_hub", str(hub)), "test", "de")


def test_missing_tsv_split_and_language_list_what_is_available(pawsx_tsv):
    os.remove(Path(pawsx_tsv.path) / "dev-en.tsv")
    with pytest.raises(DataError, match=r"dev-en\.tsv does not exist: no dev split .*available .*: none"):
        load_split(PAWSX, pawsx_tsv, "dev", "en")
    with pytest.raises(DataError, match=r"no test split for language 'fr'.*available .*: de, en"):
        load_split(PAWSX, pawsx_tsv, "test", "fr")
    with pytest.raises(DataError, match=r"language\(s\) fr not available .*available: en, de"):
        load_task_data(PAWSX, pawsx_tsv, ["en", "fr"])


def test_missing_hub_split_and_language_list_what_is_available(pawsx_hub):
    with pytest.raises(DataError, match=r"config de has no 'train' split .*available: validation, test"):
        load_split(PAWSX, pawsx_hub, "train", "de")
    with pytest.raises(DataError, match=r"language 'fr' not available .*available: en, de"):
        load_split(PAWSX, pawsx_hub, "test", "fr")


def test_bad_source_and_split_arguments_are_refused(tmp_path):
    with pytest.raises(DataError, match="unknown data source kind 'csv'"):
        DataSource("csv", str(tmp_path))
    with pytest.raises(DataError, match="revision"):
        DataSource("tsv", str(tmp_path), revision="main")
    with pytest.raises(DataError, match="does not exist"):
        available_languages(PAWSX, DataSource("local_hub", str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match="unknown split 'validation'"):
        load_split(PAWSX, DataSource("tsv", str(tmp_path)), "validation", "en")


def test_available_languages_per_kind(pawsx_tsv, pawsx_hub):
    assert available_languages(PAWSX, pawsx_tsv) == ("en", "de")
    assert available_languages(PAWSX, pawsx_hub) == ("en", "de")
    assert available_languages(XNLI, DataSource("hub", XNLI.hub_id)) == XNLI.languages


def test_load_task_data_reads_english_train_dev_and_each_test(pawsx_hub):
    data = load_task_data(PAWSX, pawsx_hub, ["en", "de"])
    assert data.train["sentence1"][0] == "the cat sat en"
    assert data.dev.num_rows == 3
    assert list(data.test) == ["en", "de"]
    assert data.test["de"]["sentence2"] == ["a cat sat de", "she left de", "car red de"]


def test_hub_by_id_offline_gives_a_clear_error_quickly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        load_split(PAWSX, DataSource("hub", PAWSX.hub_id), "test", "de")
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert message.startswith("could not load google-research-datasets/paws-x config de split test: ")
    assert message.endswith("(offline? set HF_HUB_OFFLINE=0 or use a local copy)")


def test_hub_by_id_refuses_a_language_of_another_task_without_network():
    with pytest.raises(DataError, match=r"language 'ar' not available in google-research-datasets/paws-x"):
        load_split(PAWSX, DataSource("hub", PAWSX.hub_id), "test", "ar")


# --- parallel test sets and the generalized setting -------------------------------------


def canonical(rows) -> datasets.Dataset:
    columns = {name: [row[k] for row in rows] for k, name in enumerate(("id", "sentence1", "sentence2", "label"))}
    return datasets.Dataset.from_dict(columns)


def test_align_by_id_reorders_to_the_english_order():
    english = canonical([(11, "a", "b", 1), (7, "c", "d", 0)])
    german = canonical([(7, "c-de", "d-de", 0), (11, "a-de", "b-de", 1)])
    aligned = align_parallel(PAWSX, {"de": german, "en": english})
    assert list(aligned) == ["de", "en"]
    assert aligned["de"].to_dict() == {"id": [11, 7], "sentence1": ["a-de", "c-de"],
                                       "sentence2": ["b-de", "d-de"], "label": [1, 0]}


@pytest.mark.parametrize(
    ("task", "german", "pattern"),
    [
        (PAWSX, [(11, "a", "b", 1), (8, "c", "d", 0)], r"en and de .*id 7 \(row 1 of en\) is missing from de"),
        (PAWSX, [(11, "a", "b", 1), (7, "c", "d", 0), (9, "e", "f", 0)], r"en and de .*id 9 \(row 2 of de\)"),
        (PAWSX, [(11, "a", "b", 1), (7, "c", "d", 1)], r"en and de .*id 7 has label 0 in en but 1 in de"),
        (PAWSX, [(11, "a", "b", 1), (11, "c", "d", 0)], r"en and de .*id 11 occurs twice in de \(row 1\)"),
        (XNLI, [(0, "a", "b", 1)], r"en and de .*en has 2 rows but de has 1 \(first unmatched row: 1\)"),
        (XNLI, [(0, "a", "b", 1), (1, "c", "d", 2)], r"en and de .*row 1 has label 0 in en but 2 in de"),
    ],
)
def test_non_parallel_test_sets_are_refused_naming_languages(task, german, pattern):
    english = canonical([(11, "a", "b", 1), (7, "c", "d", 0)])
    with pytest.raises(DataError, match=pattern):
        align_parallel(task, {"en": english, "de": canonical(german)})


def test_generalized_pairs_for_seven_languages(tmp_path):
    source = DataSource("tsv", str(write_pawsx_tsv(tmp_path, PAWSX_LANGUAGES)))
    data = load_task_data(PAWSX, source, PAWSX_LANGUAGES)
    aligned = align_parallel(PAWSX, data.test)
    pairs = {(a, b): generalized_pair(aligned, a, b) for a in PAWSX_LANGUAGES for b in PAWSX_LANGUAGES}
    assert len(pairs) == 49
    de_ja = pairs[("de", "ja")]
    assert de_ja.to_dict() == {
        "id": [0, 1, 2],
        "sentence1": ["the cat sat de", 'he said "hi" de', "red car de"],
        "sentence2": ["a cat sat ja", "she left ja", "car red ja"],
        "label": [1, 0, 1],
    }
    assert pairs[("zh", "en")][1] == {"id": 1, "sentence1": 'he said "hi" zh', "sentence2": "she left en", "label": 0}
    assert pairs[("fr", "fr")].to_dict() == aligned["fr"].to_dict()


def test_generalized_pair_refuses_unaligned_sets_and_unknown_languages():
    english = canonical([(11, "a", "b", 1), (7, "c", "d", 0)])
    german = canonical([(7, "c", "d", 0), (11, "a", "b", 1)])
    with pytest.raises(DataError, match=r"en and de .*row 0 differs .*align_parallel"):
        generalized_pair({"en": english, "de": german}, "en", "de")
    with pytest.raises(DataError, match=r"'fr'; available: en, de"):
        generalized_pair({"en": english, "de": german}, "en", "fr")


# --- fingerprint --------------------------------------------------------------------------


def expected_fingerprint(rows) -> str:
    """The documented byte stream, built independently of the implementation."""
    digest = hashlib.sha256(b"robust-xlt canonical pairs v1\n")
    digest.update(np.int64(len(rows)).tobytes())
    for k, name in enumerate(("id", "sentence1", "sentence2", "label")):
        digest.update(name.encode() + b"\0")
        values = [row[k] for row in rows]
        if isinstance(values[0], str):
            encoded = [value.encode() for value in values]
            digest.update(np.array([len(b) for b in encoded], "<i8").tobytes() + b"".join(encoded))
        else:
            digest.update(np.array(values, "<i8").tobytes())
    return digest.hexdigest()


def test_fingerprint_is_the_content_hash_whatever_the_arrow_layout():
    rows = [(11, "a", "bé", 1), (7, "", "d", 0), (3, "e", "f", 1)]
    whole = canonical(rows)
    chunked = datasets.concatenate_datasets([canonical(rows[:1]), canonical(rows[1:])])
    sliced = canonical([(99, "x", "y", 0)] + rows).select(range(1, 4))
    large = datasets.Dataset(
        datasets.table.InMemoryTable(whole.data.table.cast(pa.schema([
            ("id", pa.int32()), ("sentence1", pa.large_string()), ("sentence2", pa.large_string()), ("label", pa.int8())
        ])))
    )
    assert fingerprint(whole) == expected_fingerprint(rows)
    assert fingerprint(chunked) == fingerprint(sliced) == fingerprint(large) == fingerprint(whole)
    assert fingerprint(whole.add_column("extra", [1, 2, 3])) == fingerprint(whole)


def test_fingerprint_changes_with_one_character_or_a_label():
    rows = [(11, "a cat", "b", 1), (7, "c", "d", 0)]
    base = fingerprint(canonical(rows))
    assert fingerprint(canonical([(11, "a cat", "b", 1), (7, "c", "e", 0)])) != base
    assert fingerprint(canonical([(11, "a cat", "b", 1), (7, "c", "d", 1)])) != base
    # Moving a character between columns or rows is a change too.
    assert fingerprint(canonical([(11, "a ca", "tb", 1), (7, "c", "d", 0)])) != base
    assert fingerprint(canonical([(11, "a ca", "b", 1), (7, "tc", "d", 0)])) != base


def test_fingerprint_of_loaded_data_is_stable_across_loads(pawsx_tsv):
    first = load_split(PAWSX, pawsx_tsv, "test", "de")
    again = load_split(PAWSX, pawsx_tsv, "test", "de")
    assert fingerprint(first) == fingerprint(again) == first._fingerprint
    assert fingerprint(first) != fingerprint(load_split(PAWSX, pawsx_tsv, "test", "en"))


def test_local_hub_folders_of_the_same_name_or_rewritten_never_share_cached_rows(tmp_path):
    """datasets alone keys a local folder's cache by its name: a rebuilt world would load stale rows."""
    def build(directory: Path, sentence: str) -> DataSource:
        rows = [(1, sentence, "b", 0)]
        return DataSource("local_hub", str(write_hub(directory, {"de": {"test": pawsx_columns(rows)}}, PAWSX_FEATURES)))

    first = build(tmp_path / "a" / "world", "first")
    assert load_split(PAWSX, first, "test", "de")["sentence1"] == ["first"]
    second = build(tmp_path / "b" / "world", "second")
    assert load_split(PAWSX, second, "test", "de")["sentence1"] == ["second"]
    rewritten = build(tmp_path / "a" / "world", "third!")
    assert load_split(PAWSX, rewritten, "test", "de")["sentence1"] == ["third!"]


def test_hub_layout_label_names_and_columns_are_checked(tmp_path):
    texts = {"premise": ["a", "b"], "hypothesis": ["c", "d"]}
    foreign = datasets.Features({**XNLI_FEATURES_SHUFFLED, "label": datasets.ClassLabel(names=["yes", "no", "maybe"])})
    named = datasets.Features({**XNLI_FEATURES_SHUFFLED, "label": datasets.Value("string")})
    write_hub(tmp_path / "foreign", {"en": {"test": {**texts, "label": [0, 1]}}}, foreign)
    write_hub(tmp_path / "named", {"en": {"test": {**texts, "label": ["contradictory", "maybe"]}}}, named)
    no_premise = datasets.Features({"hypothesis": datasets.Value("string"), "label": datasets.Value("int64")})
    write_hub(tmp_path / "columns", {"en": {"test": {"hypothesis": ["c"], "label": [0]}}}, no_premise)
    with pytest.raises(DataError, match=r"ClassLabel names 'yes', 'no', 'maybe' are not labels of xnli"):
        load_split(XNLI, DataSource("local_hub", str(tmp_path / "foreign")), "test", "en")
    with pytest.raises(DataError, match=r"config en split test row 1: unknown label 'maybe'"):
        load_split(XNLI, DataSource("local_hub", str(tmp_path / "named")), "test", "en")
    with pytest.raises(DataError, match=r"split test: missing column\(s\) premise; columns: hypothesis, label"):
        load_split(XNLI, DataSource("local_hub", str(tmp_path / "columns")), "test", "en")


@pytest.mark.parametrize("task", [PAWSX, XNLI])
def test_synthetic_world_layouts_load_to_the_same_pairs(tiny_world, task):
    hub = DataSource("local_hub", str(tiny_world.hub_dir(task.name)))
    tsv = DataSource("tsv", str(tiny_world.tsv_dir(task.name)))
    languages = available_languages(task, hub)
    assert languages == available_languages(task, tsv) == tuple(tiny_world.languages)
    from_hub, from_tsv = load_task_data(task, hub, languages), load_task_data(task, tsv, languages)
    pairs = [(from_hub.train, from_tsv.train), (from_hub.dev, from_tsv.dev)]
    pairs += [(from_hub.test[language], from_tsv.test[language]) for language in languages]
    for hub_split, tsv_split in pairs:
        # PAWS-X's Hub ids are not in XTREME's TSVs (there the id is the row index).
        assert hub_split.remove_columns("id").to_dict() == tsv_split.remove_columns("id").to_dict()
    aligned = align_parallel(task, from_hub.test)
    assert generalized_pair(aligned, languages[0], languages[-1])["label"] == from_hub.test[languages[-1]]["label"]


def test_kept_rows_counts_empty_and_placeholder_sentences_per_split_and_language():
    import datasets as hf

    from trainables.data import TaskData, kept_rows

    def split(first, second):
        return hf.Dataset.from_dict({"id": list(range(len(first))), "sentence1": first, "sentence2": second,
                                     "label": [0] * len(first)})

    data = TaskData(split(["a", " ", "b"], ["x", "y", "NS"]), split(["a"], ["b"]),
                    {"de": split(["", "NS", "c", "d"], ["e", "f", "", " NS "])})
    assert kept_rows(data) == {"train/en": {"rows": 3, "empty": 1, "placeholder": 1},
                               "dev/en": {"rows": 1, "empty": 0, "placeholder": 0},
                               "test/de": {"rows": 4, "empty": 2, "placeholder": 2}}  # " NS " stripped is "NS"
