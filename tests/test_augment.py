"""RS-DA and RS-syntax augmentation: exactly the paper's procedures, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from trainables import augment

TABLE = {"good": ["fine", "nice"], "movie": ["film"], "the": [], "cat": ["kitten", "kitty", "puss"]}


@pytest.fixture
def table():
    return augment.parse_synonym_table(json.dumps(TABLE).encode(), "test-table")


def source_pairs():
    return datasets.Dataset.from_dict({
        "id": [10, 11, 12],
        "sentence1": ["the good movie", "a cat sat", "nothing here"],
        "sentence2": ["the cat", "good good good", "still nothing"],
        "label": [1, 0, 2],
    })


def test_synonym_copies_differ_only_by_table_substitutions(table):
    copies = augment.substitute_synonyms("the good movie about a cat", table, m=50, rng=np.random.default_rng(0))
    assert len(copies) == 50
    for copy in copies:
        for original, new in zip("the good movie about a cat".split(" "), copy.split(" ")):
            assert new in table.candidates(original)
    # every option of 'cat' (itself plus 3 neighbours) is drawn: uniform over 4
    drawn = {c.split(" ")[-1] for c in copies}
    assert drawn == {"cat", "kitten", "kitty", "puss"}


def test_synonym_draws_are_uniform_over_word_and_neighbours(table):
    rng = np.random.default_rng(1)
    words = [augment.substitute_synonyms("cat", table, m=1, rng=rng)[0] for _ in range(4000)]
    counts = np.array([words.count(w) for w in ("cat", "kitten", "kitty", "puss")])
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03)


def test_augmented_dataset_has_m_copies_labels_kept_and_changed_fraction():
    table = augment.parse_synonym_table(json.dumps(TABLE).encode(), "t")
    perturb = lambda s, m, rng: augment.substitute_synonyms(s, table, m, rng)  # noqa: E731
    augmented, changed = augment.augment_dataset(source_pairs(), perturb=perturb, m=5, seed=3, keep_original=False)
    assert len(augmented) == 15
    assert augmented["label"] == [1] * 5 + [0] * 5 + [2] * 5
    assert augmented["id"] == [10] * 5 + [11] * 5 + [12] * 5
    # example 3 has no table word: never changed; examples 1 and 2 have 2-4 table words over 5 copies
    assert changed == pytest.approx(2 / 3)
    assert set(augmented["sentence1"][10:15]) == {"nothing here"}


def test_keep_original_puts_the_source_first():
    perturb = lambda s, m, rng: augment.swap_adjacent(s, m, rng, p=1.0)  # noqa: E731
    augmented, _ = augment.augment_dataset(source_pairs(), perturb=perturb, m=2, seed=0, keep_original=True)
    assert len(augmented) == 9
    assert augmented["sentence1"][0] == "the good movie"
    assert augmented["sentence1"][1] == "good the movie"


def test_augmentation_is_seeded_and_independent_of_batching(table):
    perturb = lambda s, m, rng: augment.substitute_synonyms(s, table, m, rng)  # noqa: E731
    data = source_pairs()
    a, _ = augment.augment_dataset(data, perturb=perturb, m=4, seed=7, keep_original=False)
    b = data.map(augment.augment_pairs, batched=True, batch_size=1, with_indices=True,
                 remove_columns=data.column_names,
                 fn_kwargs={"perturb": perturb, "m": 4, "seed": 7, "keep_original": False})
    assert list(a["sentence1"]) == list(b["sentence1"]) and list(a["sentence2"]) == list(b["sentence2"])
    c, _ = augment.augment_dataset(data, perturb=perturb, m=4, seed=8, keep_original=False)
    assert list(c["sentence1"]) + list(c["sentence2"]) != list(a["sentence1"]) + list(a["sentence2"])


def test_syntax_swaps_are_disjoint_adjacent_transpositions():
    sentence = " ".join(f"w{i}" for i in range(30))
    copies = augment.swap_adjacent(sentence, m=200, rng=np.random.default_rng(0), p=0.1)
    source = sentence.split(" ")
    swaps = 0
    for copy in copies:
        words = copy.split(" ")
        i = 0
        while i < len(words):
            if words[i] == source[i]:
                i += 1
                continue
            assert (words[i], words[i + 1]) == (source[i + 1], source[i])  # only adjacent swaps
            swaps, i = swaps + 1, i + 2
    rate = swaps / (200 * 29)
    assert 0.07 < rate < 0.11  # about p per position (slightly less: swapped words are not swapped again)


def test_syntax_swap_extremes():
    rng = np.random.default_rng(0)
    assert augment.swap_adjacent("a b c d e", 3, rng, p=0.0) == ["a b c d e"] * 3
    assert augment.swap_adjacent("a b c d e", 1, rng, p=1.0) == ["b a d c e"]


def test_synonym_table_errors_name_the_source(tmp_path):
    with pytest.raises(augment.SynonymTableError, match="bad.json: not valid JSON"):
        augment.parse_synonym_table(b"{not json", "bad.json")
    with pytest.raises(augment.SynonymTableError, match="entry 'x' must be a list of strings"):
        augment.parse_synonym_table(b'{"x": "y"}', "t.json")
    with pytest.raises(augment.SynonymTableError, match="missing.json: synonym table not found"):
        augment.load_synonym_table(str(tmp_path / "missing.json"))


def test_paper_table_loads_and_hashes():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "counterfitted_neighbors.json"
    table = augment.load_synonym_table(str(path))
    assert table.candidates("movie")[:3] == ("movie", "film", "filmmaking")
    assert table.candidates("br") == ("br",)  # empty neighbour list: the word itself only
    assert len(table.sha256) == 64


def test_download_once_reuses_the_cached_file(tmp_path, monkeypatch):
    calls = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b'{"a": ["b"]}'

    monkeypatch.setattr(augment.urllib.request, "urlopen", lambda url, timeout: calls.append(url) or Response())
    first = augment.load_synonym_table("https://example.invalid/neighbors.json", tmp_path)
    second = augment.load_synonym_table("https://example.invalid/neighbors.json", tmp_path)
    assert calls == ["https://example.invalid/neighbors.json"]
    assert first == second and first.candidates("a") == ("a", "b")
