"""The synthetic world: deterministic, atomic, reusable, and loadable like mBERT and the real datasets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import trainables.synthetic.world as world_module
from trainables.synthetic import WORD_ORDERS, SyntheticLanguage, WorldSpec, build_world, ensure_world, load_world
from trainables.synthetic.__main__ import main as cli_main
from trainables.synthetic.corpus import binary_labels, teacher_scores, three_way_labels

TINY = WorldSpec.tiny()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("synthetic") / "world", spec=TINY, seed=0)


def file_hashes(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def load_split(world, task: str, language: str, split: str, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(world.hub_dir(task)), language, split=split, cache_dir=str(cache))


# ------------------------------------------------------------------ building, reuse, atomicity
def test_same_spec_and_seed_give_byte_identical_files(world, tmp_path):
    again = build_world(tmp_path / "again", spec=TINY, seed=0)
    assert file_hashes(again.root) == file_hashes(world.root)
    other = build_world(tmp_path / "other", spec=TINY, seed=1)
    assert file_hashes(other.root)["synonyms.json"] != file_hashes(world.root)["synonyms.json"]


def test_failed_build_leaves_no_world_and_no_temporary_folder(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(world_module, "write_encoder", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        build_world(tmp_path / "world", spec=TINY, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_previous_world(tmp_path, monkeypatch):
    build_world(tmp_path / "world", spec=TINY, seed=0)
    before = file_hashes(tmp_path / "world")
    monkeypatch.setattr(world_module, "write_synonyms", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        build_world(tmp_path / "world", spec=TINY, seed=1)
    assert file_hashes(tmp_path / "world") == before
    assert [p.name for p in tmp_path.iterdir()] == ["world"]


def test_ensure_world_reuses_a_matching_world_and_rebuilds_another(tmp_path, monkeypatch):
    first = ensure_world(tmp_path / "world", spec=TINY, seed=0)
    stamp = (first.root / "world.json").stat().st_mtime_ns
    monkeypatch.setattr(world_module, "write_world", lambda *a: pytest.fail("rebuilt a matching world"))
    assert ensure_world(tmp_path / "world", spec=TINY, seed=0) == first
    assert (first.root / "world.json").stat().st_mtime_ns == stamp
    monkeypatch.undo()
    rebuilt = ensure_world(tmp_path / "world", spec=TINY, seed=3)
    assert rebuilt.seed == 3 and json.loads((rebuilt.root / "world.json").read_text())["seed"] == 3


def test_refuses_to_replace_a_folder_that_is_not_a_world(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic world"):
        ensure_world(tmp_path / "mine", spec=TINY, seed=0)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_world_json_describes_languages_in_distance_order(world):
    data = json.loads((world.root / "world.json").read_text())
    assert data["languages"] == ["en", "xa", "xb"] == list(world.languages)
    assert data["language_distances"] == {"en": 0.0, "xa": 0.5, "xb": 1.0}
    assert data["word_orders"] == {"en": "same", "xa": "same", "xb": "reverse"}
    assert data["distance_name"] == "embedding misalignment"
    assert data["spec_hash"] == TINY.spec_hash() and data["seed"] == 0
    assert WorldSpec.from_dict(data["spec"]) == TINY
    assert load_world(world.root) == world


def test_languages_sorted_by_misalignment_whatever_the_spec_order(tmp_path):
    spec = replace(TINY, languages=(SyntheticLanguage("xq", 0.9), SyntheticLanguage("xe", 0.1, "swap_pairs")))
    built = build_world(tmp_path / "w", spec=spec, seed=0)
    assert built.languages == ("en", "xe", "xq")


# ------------------------------------------------------------------ the model directory
def test_model_and_tokenizer_load_like_mbert(world):
    tokenizer = AutoTokenizer.from_pretrained(world.model_dir)
    config = json.loads((world.model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["hidden_dropout_prob"] == 0.0
    for num_labels in (2, 3):
        model = AutoModelForSequenceClassification.from_pretrained(world.model_dir, num_labels=num_labels)
        encoded = tokenizer("bad word", "another one", return_tensors="pt")
        assert model(**encoded).logits.shape == (1, num_labels)
    weights = load_file(world.model_dir / "model.safetensors")
    assert not any(key.startswith("classifier") for key in weights)  # the trial adds the head


def world_words(world) -> set[str]:
    words = set(json.loads(world.synonyms_path.read_text()))
    for path in world.tsv_dir("xnli").glob("*.tsv"):
        for s1, s2, _ in read_tsv(path):
            words.update(s1.split() + s2.split())
    return words


def test_every_world_word_is_one_token(world):
    tokenizer = AutoTokenizer.from_pretrained(world.model_dir)
    words = world_words(world)
    assert len(words) > TINY.num_concepts * 3
    assert [w for w in sorted(words) if tokenizer.tokenize(w) != [w]] == []


def embedding_rows(world) -> tuple[np.ndarray, dict[str, int]]:
    weights = load_file(world.model_dir / "model.safetensors")
    vocabulary = AutoTokenizer.from_pretrained(world.model_dir).get_vocab()
    return weights["embeddings.word_embeddings.weight"], vocabulary


def aligned_words(world, language: str) -> set[tuple[str, str]]:
    """(English word, target word) of the same concept, read from the parallel test sets."""
    english = read_tsv(world.tsv_dir("pawsx") / "test-en.tsv")
    target = read_tsv(world.tsv_dir("pawsx") / f"test-{language}.tsv")
    reorder = WORD_ORDERS[world.word_orders[language]]
    pairs = set()
    for en_row, target_row in zip(english, target):
        for en_sentence, target_sentence in zip(en_row[:2], target_row[:2]):
            pairs.update(zip(reorder(en_sentence.split()), target_sentence.split()))
    return pairs


@pytest.mark.parametrize("language", ["xa", "xb"])
def test_target_rows_sit_at_the_spec_misalignment_from_english(world, language):
    rows, vocabulary = embedding_rows(world)
    pairs = aligned_words(world, language)
    assert len({en for en, _ in pairs}) == len(pairs) > 10  # one translation per English word
    distances = [np.linalg.norm(rows[vocabulary[t]] - rows[vocabulary[e]]) for e, t in pairs]
    np.testing.assert_allclose(distances, world.language_distances[language], atol=1e-5)
    np.testing.assert_allclose([np.linalg.norm(rows[vocabulary[e]]) for e, _ in pairs], 1.0, atol=1e-5)


def test_synonyms_sit_within_the_spec_radius(world):
    rows, vocabulary = embedding_rows(world)
    english = {en for en, _ in aligned_words(world, "xa")}
    table = json.loads(world.synonyms_path.read_text())
    distances = [
        np.linalg.norm(rows[vocabulary[s]] - rows[vocabulary[w]]) for w in english for s in table.get(w, [])
    ]
    low, high = TINY.synonym_radius
    assert distances and low - 1e-5 <= min(distances) and max(distances) <= high + 1e-5


def test_misalignment_rank_confines_offsets_to_a_subspace(tmp_path):
    built = build_world(tmp_path / "w", spec=replace(TINY, misalignment_rank=2), seed=0)
    rows, vocabulary = embedding_rows(built)
    offsets = [rows[vocabulary[t]] - rows[vocabulary[e]] for e, t in aligned_words(built, "xb")]
    singular = np.linalg.svd(np.stack(offsets), compute_uv=False)
    assert singular[2] < 1e-5 < singular[1]


# ------------------------------------------------------------------ datasets, both layouts
def test_hub_layout_loads_with_the_real_repos_columns_and_labels(world, tmp_path):
    pawsx = load_split(world, "pawsx", "xb", "test", tmp_path)
    assert pawsx.column_names == ["id", "sentence1", "sentence2", "label"]
    assert pawsx.features["label"].names == ["0", "1"] and len(pawsx) == TINY.test_size
    xnli = load_split(world, "xnli", "en", "train", tmp_path)
    assert xnli.column_names == ["premise", "hypothesis", "label"]
    assert xnli.features["label"].names == ["entailment", "neutral", "contradiction"]
    assert set(xnli["label"]) == {0, 1, 2} and len(xnli) == TINY.train_size
    assert datasets.get_dataset_split_names(str(world.hub_dir("pawsx")), "en") == ["train", "validation", "test"]
    assert datasets.get_dataset_split_names(str(world.hub_dir("pawsx")), "xa") == ["validation", "test"]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_dev_and_test_are_parallel_across_languages(world, tmp_path, split):
    english = load_split(world, "pawsx", "en", split, tmp_path)
    for language in ("xa", "xb"):
        target = load_split(world, "pawsx", language, split, tmp_path)
        assert target["id"] == english["id"] == list(range(1, len(english) + 1))
        assert target["label"] == english["label"]
        assert [len(s.split()) for s in target["sentence2"]] == [len(s.split()) for s in english["sentence2"]]
        assert not set(target["sentence1"]) & set(english["sentence1"])


def test_tsv_layout_matches_the_hub_layout_with_xtreme_label_spellings(world, tmp_path):
    assert sorted(p.name for p in world.tsv_dir("xnli").iterdir()) == [
        "dev-en.tsv", "test-en.tsv", "test-xa.tsv", "test-xb.tsv", "train-en.tsv"]
    names = {"train": ("entailment", "neutral", "contradictory"), "validation": ("entailment", "neutral", "contradiction")}
    for split, file in (("train", "train-en.tsv"), ("validation", "dev-en.tsv")):
        rows = read_tsv(world.tsv_dir("xnli") / file)
        hub = load_split(world, "xnli", "en", split, tmp_path)
        assert all(len(row) == 3 for row in rows)
        assert [row[0] for row in rows] == hub["premise"] and [row[1] for row in rows] == hub["hypothesis"]
        assert [row[2] for row in rows] == [names[split][label] for label in hub["label"]]
    pawsx = read_tsv(world.tsv_dir("pawsx") / "test-xb.tsv")
    assert [row[2] for row in pawsx] == [str(label) for label in load_split(world, "pawsx", "xb", "test", tmp_path)["label"]]


def test_two_worlds_in_same_named_folders_do_not_share_a_datasets_cache(tmp_path):
    cache = tmp_path / "cache"
    first = build_world(tmp_path / "a" / "world", spec=TINY, seed=0)
    second = build_world(tmp_path / "b" / "world", spec=TINY, seed=1)
    assert load_split(first, "pawsx", "en", "test", cache)["sentence1"] != load_split(
        second, "pawsx", "en", "test", cache)["sentence1"]


# ------------------------------------------------------------------ synonym table
def test_synonym_table_has_the_counter_fitted_format(world):
    table = json.loads(world.synonyms_path.read_text())
    assert all(isinstance(k, str) and isinstance(v, list) for k, v in table.items())
    assert max(len(v) for v in table.values()) <= 8
    assert any(v == [] for v in table.values()) and any(v for v in table.values())
    for word, neighbours in table.items():
        assert word not in neighbours and all(word in table[n] for n in neighbours)
    english = {w for row in read_tsv(world.tsv_dir("pawsx") / "train-en.tsv") for s in row[:2] for w in s.split()}
    assert english <= set(table)


# ------------------------------------------------------------------ teacher and word orders
def test_teacher_counts_the_head_concept_head_weight_times():
    weights = np.array([1.0, -2.0, 3.0])
    concepts1, concepts2 = np.array([[0, 2, -1]]), np.array([[1, -1, -1]])
    # sentence 1: 1 + 3 + (2 - 1) * 1 = 5; sentence 2: -2 + (2 - 1) * -2 = -4
    assert teacher_scores(weights, concepts1, concepts2, head_weight=2.0).tolist() == [1.0]
    assert teacher_scores(weights, concepts1, concepts2, head_weight=1.0).tolist() == [2.0]


def test_labels_from_scores():
    assert binary_labels(np.array([-0.5, 0.5, 2.5]), np.array([-3.0, 0.0, 3.0])).tolist() == [0, 1, 1]
    assert binary_labels(np.array([1.5, 2.5]), np.array([1.0, 2.0, 9.0])).tolist() == [0, 1]
    reference = np.arange(7.0)  # tertiles at 2 and 4
    assert three_way_labels(np.array([5.0, 3.0, 1.0]), reference).tolist() == [0, 1, 2]


def test_word_orders():
    words = ["a", "b", "c", "d", "e"]
    assert WORD_ORDERS["same"](words) == words
    assert WORD_ORDERS["swap_pairs"](words) == ["b", "a", "d", "c", "e"]
    assert WORD_ORDERS["reverse"](words) == ["e", "d", "c", "b", "a"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"languages": ()}, "at least one target language"),
        ({"languages": (SyntheticLanguage("xa", 0.1), SyntheticLanguage("xa", 0.2))}, "codes must be unique"),
        ({"hidden_size": 15}, "multiple of num_heads"),
        ({"head_weight": -1.0}, "head_weight"),
        ({"min_words": 5, "max_words": 4}, "min_words"),
        ({"max_synonyms": 9}, "max_synonyms"),
        ({"misalignment_rank": 17}, "misalignment_rank"),
        ({"max_position_embeddings": 8}, "max_position_embeddings"),
    ],
)
def test_invalid_specs_are_refused_with_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change)


@pytest.mark.parametrize("code", ["de", "xh", "en", "xab"])
def test_language_codes_cannot_be_real_ones(code):
    with pytest.raises(ValueError, match="synthetic language code"):
        SyntheticLanguage(code, 0.5)


def test_unknown_word_order_is_refused():
    with pytest.raises(ValueError, match="unknown word_order 'sov'.*same, swap_pairs, reverse"):
        SyntheticLanguage("xa", 0.5, "sov")


# ------------------------------------------------------------------ CLI
def test_cli_builds_then_reuses(tmp_path, capsys):
    assert cli_main([str(tmp_path / "w"), "--preset", "tiny", "--seed", "2"]) == 0
    assert "built synthetic world" in capsys.readouterr().out
    assert cli_main([str(tmp_path / "w"), "--preset", "tiny", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "reused synthetic world" in out and "xb: 1.00  reverse" in out


def test_cli_refuses_a_negative_seed_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([str(tmp_path / "w"), "--preset", "tiny", "--seed", "-1"])
    assert exit_info.value.code == 2 and "must be >= 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_foreign_folder_with_exit_code_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert cli_main([str(tmp_path), "--preset", "tiny"]) == 2
    assert "not a synthetic world" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
