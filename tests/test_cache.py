"""The content-keyed token cache: built once per key, even by concurrent trials, never half-written."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import datasets
import pytest

from trainables.cache import TokenCache, content_key


def splits(n=3):
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": list(range(n))})}), {"n": n}


def test_key_depends_on_every_part():
    base = {"tokenizer": "t", "max_length": 128, "augmentation": {"m": 3, "seed": 0}}
    assert content_key(base) == content_key(dict(reversed(list(base.items()))))
    for changed in ({"max_length": 64}, {"tokenizer": "u"}, {"augmentation": {"m": 3, "seed": 1}}):
        assert content_key({**base, **changed}) != content_key(base)


def test_built_once_then_memory_mapped(tmp_path):
    cache = TokenCache(tmp_path)
    builds = []
    first = cache.get_or_build("k", lambda: builds.append(1) or splits())
    second = cache.get_or_build("k", lambda: builds.append(1) or splits())
    assert builds == [1] and first.built and not second.built
    assert list(second.splits["train"]["x"]) == [0, 1, 2] and second.metadata == {"n": 3}
    assert second.splits["train"].cache_files  # backed by Arrow files on disk, not loaded into memory


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = TokenCache(tmp_path)

    def broken():
        raise RuntimeError("tokenizer crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("k", broken)
    assert not cache.exists("k")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    assert cache.get_or_build("k", splits).built


def _build_in_process(root: str, marker_dir: str, queue) -> None:
    import time

    def build():
        Path(marker_dir, f"built-{multiprocessing.current_process().pid}").touch()
        time.sleep(1.0)  # long enough that the other process arrives while this one builds
        return splits(5)

    entry = TokenCache(root).get_or_build("shared", build)
    queue.put((entry.built, len(entry.splits["train"])))


def test_concurrent_trials_build_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = [context.Process(target=_build_in_process, args=(str(tmp_path / "cache"), str(markers), queue))
               for _ in range(2)]
    for w in workers:
        w.start()
    outcomes = sorted(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    assert outcomes == [(False, 5), (True, 5)]
    assert len(list(markers.iterdir())) == 1
