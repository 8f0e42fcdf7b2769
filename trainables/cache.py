"""Tokenize once per node: content-keyed Arrow caches of tokenized (and augmented) data.

A cache entry is a `datasets.DatasetDict` saved with `save_to_disk` under a key made of what
determines its content: data fingerprints, the tokenizer's fingerprint, the maximum length and,
for training data, the augmentation and its seed. It is built once under a file lock (into a
temporary folder, then renamed) and memory-mapped by every trial that needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import datasets
from filelock import FileLock

_COMPLETE = "complete.json"


def content_key(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides token ids: the tokenizer class and its serialized state.

    The fast tokenizer's serialization also records the truncation/padding settings of its last
    call, which change as soon as it is used; they are dropped so the key is stable.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = tokenizer.get_vocab()
    state = json.dumps(state, sort_keys=True)
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{state}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    splits: datasets.DatasetDict
    metadata: Mapping[str, Any]
    built: bool  # True when this call tokenized; False when it memory-mapped an existing entry
    path: Path


class TokenCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def exists(self, key: str) -> bool:
        return (self.root / key / _COMPLETE).is_file()

    def get_or_build(
        self, key: str, build: Callable[[], tuple[datasets.DatasetDict, Mapping[str, Any]]]
    ) -> CacheEntry:
        """Load entry `key`, building it first (once, under a lock) if no complete entry exists."""
        if not self.exists(key):
            self.root.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.root / f"{key}.lock")):
                if not self.exists(key):
                    self._build(key, build)
                    return self._load(key, built=True)
        return self._load(key, built=False)

    def _build(self, key: str, build: Callable[[], tuple[datasets.DatasetDict, Mapping[str, Any]]]) -> None:
        splits, metadata = build()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            splits.save_to_disk(str(tmp / "data"))
            (tmp / _COMPLETE).write_text(json.dumps(dict(metadata), indent=1, sort_keys=True, default=str))
            target = self.root / key
            if target.exists():  # an incomplete leftover of a crashed build
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _load(self, key: str, built: bool) -> CacheEntry:
        path = self.root / key
        splits = datasets.load_from_disk(str(path / "data"), keep_in_memory=False)
        metadata = json.loads((path / _COMPLETE).read_text())
        return CacheEntry(splits=splits, metadata=metadata, built=built, path=path)
