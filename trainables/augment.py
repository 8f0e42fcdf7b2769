"""Data-level randomized smoothing: synonym substitution (RS-DA) and adjacent-word swaps (RS-syntax).

Both follow the paper's procedure on whitespace tokens of the English training set and produce m
copies of every example. Unlike the paper's script, every draw is seeded: copy j of example i uses
a generator seeded with (augmentation seed, i), so the result does not depend on batching.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import datasets
import numpy as np


class SynonymTableError(ValueError):
    """The synonym table is missing or not in the counter-fitted JSON format."""


@dataclass(frozen=True)
class SynonymTable:
    """word -> neighbours, as in the paper's counterfitted_neighbors.json."""

    neighbours: Mapping[str, tuple[str, ...]]
    sha256: str  # content hash: part of the tokenization cache key

    def candidates(self, word: str) -> tuple[str, ...]:
        """The word itself plus its neighbours: the paper draws uniformly from these."""
        return (word, *self.neighbours.get(word, ()))


def parse_synonym_table(raw: bytes, source: str) -> SynonymTable:
    try:
        table = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SynonymTableError(f"{source}: not valid JSON ({err})") from None
    if not isinstance(table, dict):
        raise SynonymTableError(f"{source}: expected a JSON object word -> [neighbours], got {type(table).__name__}")
    for word, neighbours in table.items():
        if not isinstance(neighbours, list) or not all(isinstance(n, str) for n in neighbours):
            raise SynonymTableError(f"{source}: entry {word!r} must be a list of strings, got {neighbours!r}")
    neighbours = {word: tuple(ns) for word, ns in table.items() if ns}
    return SynonymTable(neighbours=neighbours, sha256=hashlib.sha256(raw).hexdigest())


def load_synonym_table(path_or_url: str, cache_dir: str | os.PathLike | None = None) -> SynonymTable:
    """Read a local table, or download a URL once into `cache_dir` and read it from there."""
    if path_or_url.startswith(("http://", "https://")):
        path_or_url = str(_download_once(path_or_url, Path(cache_dir or _default_cache_dir())))
    path = Path(path_or_url)
    if not path.is_file():
        raise SynonymTableError(f"{path}: synonym table not found (give a path or a URL; the paper's table is methods.rs_da's default)")
    return parse_synonym_table(path.read_bytes(), str(path))


def _default_cache_dir() -> Path:
    return Path(os.environ.get("ROBUST_XLT_CACHE", Path.home() / ".cache" / "robust-xlt"))


def _download_once(url: str, cache_dir: Path) -> Path:
    target = cache_dir / "synonyms" / hashlib.sha256(url.encode()).hexdigest()[:16] / Path(url).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            raw = response.read()
    except OSError as err:
        raise SynonymTableError(f"could not download the synonym table from {url}: {err}") from None
    parse_synonym_table(raw, url)  # refuse to cache something that is not a table
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(raw)
    os.replace(tmp.name, target)
    return target


def substitute_synonyms(sentence: str, table: SynonymTable, m: int, rng: np.random.Generator) -> list[str]:
    """m copies of `sentence`, each word in the table replaced by a uniform draw from itself + neighbours."""
    words = sentence.split(" ")
    columns = []
    for word in words:
        options = table.candidates(word)
        columns.append([options[k] for k in rng.integers(0, len(options), size=m)] if len(options) > 1 else [word] * m)
    return [" ".join(column[j] for column in columns) for j in range(m)]


def swap_adjacent(sentence: str, m: int, rng: np.random.Generator, p: float) -> list[str]:
    """m copies of `sentence` where each adjacent pair is swapped with probability p.

    Swaps never overlap (a swapped word is not swapped again in the same copy), so every copy is
    the source with a set of disjoint adjacent transpositions: a word moves at most one place.
    """
    words = sentence.split(" ")
    copies = []
    for _ in range(m):
        out, i = list(words), 0
        draws = rng.random(len(words))
        while i < len(words) - 1:
            if draws[i] < p:
                out[i], out[i + 1] = out[i + 1], out[i]
                i += 2
            else:
                i += 1
        copies.append(" ".join(out))
    return copies


Perturb = Callable[[str, int, np.random.Generator], list[str]]


def augment_pairs(
    batch: Mapping[str, Sequence], indices: Sequence[int], *, perturb: Perturb, m: int, seed: int, keep_original: bool
) -> dict[str, list]:
    """A `datasets.map(batched=True, with_indices=True)` function: m copies of every pair.

    Returns the copies (and the original first, if kept) plus a `changed` flag per output row that
    says whether the copy differs from its source example.
    """
    out: dict[str, list] = {"id": [], "sentence1": [], "sentence2": [], "label": [], "source_changed": []}
    for i, index in enumerate(indices):
        rng = np.random.default_rng([seed, index])
        s1, s2 = batch["sentence1"][i], batch["sentence2"][i]
        copies = list(zip(perturb(s1, m, rng), perturb(s2, m, rng)))
        changed = any(c != (s1, s2) for c in copies)
        if keep_original:
            copies.insert(0, (s1, s2))
        for c1, c2 in copies:
            out["id"].append(batch["id"][i])
            out["sentence1"].append(c1)
            out["sentence2"].append(c2)
            out["label"].append(batch["label"][i])
            out["source_changed"].append(changed)
    return out


def augment_dataset(
    train: datasets.Dataset, *, perturb: Perturb, m: int, seed: int, keep_original: bool
) -> tuple[datasets.Dataset, float]:
    """Augmented training set and the fraction of source examples that at least one copy changed."""
    augmented = train.map(
        augment_pairs,
        batched=True,
        with_indices=True,
        remove_columns=train.column_names,
        fn_kwargs={"perturb": perturb, "m": m, "seed": seed, "keep_original": keep_original},
        load_from_cache_file=False,
        desc=f"augmenting x{m}",
    )
    copies_per_example = m + int(keep_original)
    changed = np.asarray(augmented["source_changed"], dtype=bool)[::copies_per_example]
    fraction = float(changed.mean()) if len(changed) else 0.0
    return augmented.remove_columns("source_changed"), fraction
