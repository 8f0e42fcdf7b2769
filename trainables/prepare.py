"""From raw task data to memory-mapped token ids for one trial, through the content-keyed cache.

Raw data is read only when a cache entry is missing: the sweeper computes the data fingerprints
once (`data_fingerprints`) and passes them to every trial, so a trial whose entries exist on its
node neither reads nor tokenizes anything.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import datasets

from trainables import data as task_data
from trainables.augment import augment_dataset
from trainables.batching import TokenizedSplit
from trainables.cache import TokenCache, content_key, tokenizer_fingerprint
from trainables.methods import Augmentation
from trainables.tasks import Task


@dataclass(frozen=True)
class PreparedData:
    train: TokenizedSplit
    dev: TokenizedSplit
    tests: Mapping[tuple[str, str], TokenizedSplit]  # (lang1, lang2) -> test set
    train_info: Mapping[str, Any]  # sizes and, for augmentation, the fraction of changed examples
    built: tuple[str, ...]  # which cache entries this call had to build ("train", "eval")


def data_fingerprints(task: Task, source: task_data.DataSource, languages: Sequence[str]) -> dict[str, str]:
    """Content fingerprints of everything a trial reads (reads the data)."""
    return fingerprints_of(task_data.load_task_data(task, source, languages))


def fingerprints_of(raw: task_data.TaskData) -> dict[str, str]:
    """Content fingerprints of data already read: computed once by the sweeper's driver."""
    prints = {"train": task_data.fingerprint(raw.train), "dev": task_data.fingerprint(raw.dev)}
    prints.update({f"test:{lang}": task_data.fingerprint(ds) for lang, ds in raw.test.items()})
    return prints


def _load_checked(task, source, languages, expected: Mapping[str, str] | None) -> task_data.TaskData:
    """Raw data, refused if it is not the data the sweep was planned on (keys would lie)."""
    raw = task_data.load_task_data(task, source, languages)
    if expected is not None:
        actual = fingerprints_of(raw)
        changed = sorted(k for k in expected if actual.get(k) != expected[k])
        if changed:
            raise task_data.DataError(
                f"{source.path}: data changed since the sweep computed its fingerprints ({', '.join(changed)}); "
                "re-run the sweep so that every trial sees the same data"
            )
    return raw


def evaluation_pairs(languages: Sequence[str], generalized: bool) -> list[tuple[str, str]]:
    """The standard setting's diagonal, or every ordered pair for the generalized matrix."""
    if generalized:
        return list(itertools.product(languages, repeat=2))
    return [(lang, lang) for lang in languages]


def tokenize_pairs(dataset: datasets.Dataset, tokenizer: Any, max_length: int, desc: str) -> datasets.Dataset:
    """input_ids (+ token_type_ids), label, length and example position; no padding (done per batch)."""

    def encode(batch: Mapping[str, list], indices: list[int]) -> dict[str, list]:
        enc = tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_length)
        out = {"input_ids": enc["input_ids"], "label": batch["label"], "example": indices}
        out["length"] = [len(ids) for ids in enc["input_ids"]]
        if "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"]
        return out

    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        keep_in_memory=True,
        load_from_cache_file=False,
        desc=desc,
    )


def _eval_sets(raw: task_data.TaskData, task: Task, pairs: Sequence[tuple[str, str]]) -> dict[str, datasets.Dataset]:
    sets = {"dev": raw.dev}
    if any(l1 != l2 for l1, l2 in pairs):
        aligned = task_data.align_parallel(task, raw.test)
        sets.update({_split_name(l1, l2): task_data.generalized_pair(aligned, l1, l2) for l1, l2 in pairs})
    else:
        sets.update({_split_name(lang, lang): raw.test[lang] for lang, _ in pairs})
    return sets


def _split_name(lang1: str, lang2: str) -> str:
    return f"test_{lang1}_{lang2}".replace("-", "_")


def _build_eval(raw: task_data.TaskData, task, tokenizer, max_length, pairs):
    sets = _eval_sets(raw, task, pairs)
    tokenized = {name: tokenize_pairs(ds, tokenizer, max_length, f"tokenizing {name}") for name, ds in sets.items()}
    return datasets.DatasetDict(tokenized), {"sizes": {name: len(ds) for name, ds in sets.items()}}


def _build_train(raw: task_data.TaskData, tokenizer, max_length, augmentation: Augmentation | None, seed: int):
    train, info = raw.train, {"n_source": len(raw.train), "augmentation": None}
    if augmentation is not None:
        train, changed = augment_dataset(
            train, perturb=augmentation.perturb, m=augmentation.m, seed=seed, keep_original=augmentation.keep_original
        )
        info.update(augmentation=augmentation.name, m=augmentation.m, changed_fraction=changed)
    info["n_train"] = len(train)
    return datasets.DatasetDict({"train": tokenize_pairs(train, tokenizer, max_length, "tokenizing train")}), info


def prepare_data(
    task: Task,
    source: task_data.DataSource,
    languages: Sequence[str],
    *,
    tokenizer: Any,
    max_length: int,
    generalized: bool,
    augmentation: Augmentation | None,
    augmentation_seed: int,
    cache: TokenCache,
    fingerprints: Mapping[str, str] | None = None,
    raw: task_data.TaskData | None = None,
) -> PreparedData:
    """Memory-mapped train, dev and test sets for a trial, tokenizing only what the cache lacks.

    `raw`: the task data when the caller has read it already (the sweeper's driver), else it is read
    here, once, and only if some cache entry is missing.
    """
    load_raw: Callable[[], task_data.TaskData] = functools.cache(
        lambda: raw if raw is not None else _load_checked(task, source, languages, fingerprints)
    )
    prints = dict(fingerprints) if fingerprints is not None else fingerprints_of(load_raw())
    tok, pairs = tokenizer_fingerprint(tokenizer), evaluation_pairs(languages, generalized)
    common = {"task": task.name, "tokenizer": tok, "max_length": max_length}
    eval_key = content_key({**common, "kind": "eval", "data": {k: v for k, v in prints.items() if k != "train"},
                            "pairs": pairs})
    aug = None if augmentation is None else {"name": augmentation.name, "m": augmentation.m,
                                             "keep_original": augmentation.keep_original,
                                             **augmentation.cache_descriptor, "seed": augmentation_seed}
    train_key = content_key({**common, "kind": "train", "data": prints["train"], "augmentation": aug})
    eval_entry = cache.get_or_build(eval_key, lambda: _build_eval(load_raw(), task, tokenizer, max_length, pairs))
    train_entry = cache.get_or_build(
        train_key, lambda: _build_train(load_raw(), tokenizer, max_length, augmentation, augmentation_seed)
    )
    return PreparedData(
        train=TokenizedSplit.from_dataset(train_entry.splits["train"]),
        dev=TokenizedSplit.from_dataset(eval_entry.splits["dev"]),
        tests={pair: TokenizedSplit.from_dataset(eval_entry.splits[_split_name(*pair)]) for pair in pairs},
        train_info=dict(train_entry.metadata),
        built=tuple(name for name, e in (("eval", eval_entry), ("train", train_entry)) if e.built),
    )
