"""Build, reuse and describe a synthetic world directory.

A world is built in a temporary sibling folder and renamed into place, so `out_dir` either
does not exist or holds a complete world; `world.json` (written last) describes it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import datasets
import numpy as np
import transformers
from filelock import FileLock

from ..tasks import Task
from .corpus import Examples, make_splits, render_pairs
from .encoder import write_encoder
from .layouts import FORMATS, write_hub_layout, write_synonyms, write_tsv_layout
from .lexicon import SOURCE, Lexicon, make_lexicon, synonym_table, word_vectors
from .spec import WORLD_FORMAT, WorldSpec

DISTANCE_NAME = "embedding misalignment"
WORLD_FILE = "world.json"
# Independent random streams, so e.g. a bigger train set does not change the embeddings.
_STREAMS = ("lexicon", "vectors", "encoder", *FORMATS)


@dataclass(frozen=True)
class World:
    """Paths and facts of a built world (read from its world.json)."""

    root: Path
    spec: WorldSpec
    seed: int
    spec_hash: str
    languages: tuple[str, ...]  # English first, then by misalignment
    language_distances: Mapping[str, float]
    distance_name: str
    word_orders: Mapping[str, str]

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def synonyms_path(self) -> Path:
        return self.root / "synonyms.json"

    def hub_dir(self, task: str | Task) -> Path:
        return self.root / "data" / f"{_task_name(task)}_hub"

    def tsv_dir(self, task: str | Task) -> Path:
        return self.root / "data" / f"{_task_name(task)}_tsv"


def _task_name(task: str | Task) -> str:
    name = task if isinstance(task, str) else task.name
    if name not in FORMATS:
        raise KeyError(f"the synthetic world has no task {name!r}; it has: {', '.join(FORMATS)}")
    return name


def language_table(spec: WorldSpec) -> tuple[tuple[str, ...], dict[str, float], dict[str, str]]:
    """Languages (English first, then by misalignment), their distances and word orders."""
    targets = sorted(spec.languages, key=lambda language: language.misalignment)
    codes = (SOURCE, *(language.code for language in targets))
    distances = {SOURCE: 0.0, **{language.code: language.misalignment for language in targets}}
    orders = {SOURCE: "same", **{language.code: language.word_order for language in targets}}
    return codes, distances, orders


def render_task(spec: WorldSpec, lexicon: Lexicon, splits: Mapping[str, Examples]) -> dict[str, dict[str, dict]]:
    """language -> split -> columns: English train/dev/test, every target language dev/test."""
    rendered = {SOURCE: {split: render_pairs(examples, lexicon, SOURCE, "same") for split, examples in splits.items()}}
    for language in spec.languages:
        rendered[language.code] = {
            split: render_pairs(splits[split], lexicon, language.code, language.word_order) for split in ("dev", "test")
        }
    return rendered


def corpus_of(rendered_tasks: Mapping[str, Mapping], lexicon: Lexicon) -> list[str]:
    """The tokenizer's training text: every sentence of every task, plus every word once."""
    sentences = [
        sentence
        for languages in rendered_tasks.values()
        for splits in languages.values()
        for columns in splits.values()
        for sentence in columns["sentence1"] + columns["sentence2"]
    ]
    return sentences + lexicon.all_words()


def world_description(spec: WorldSpec, seed: int, sizes: Mapping[str, int]) -> dict[str, Any]:
    """The content of world.json."""
    codes, distances, orders = language_table(spec)
    return {
        "format": WORLD_FORMAT,
        "seed": seed,
        "spec_hash": spec.spec_hash(),
        "spec": spec.to_dict(),
        "languages": list(codes),
        "language_distances": distances,
        "distance_name": DISTANCE_NAME,
        "word_orders": orders,
        "tasks": {task: {"hub_dir": f"data/{task}_hub", "tsv_dir": f"data/{task}_tsv"} for task in FORMATS},
        "sizes": dict(sizes),
    }


@contextmanager
def quiet_progress_bars():
    """Silence the libraries' one-file progress bars (dozens per build), then restore them."""
    libraries = (datasets.utils.logging, transformers.utils.logging)
    enabled = [library.is_progress_bar_enabled() for library in libraries]
    for library in libraries:
        library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was_enabled in zip(libraries, enabled):
            if was_enabled:
                library.enable_progress_bar()


def write_world(root: Path, spec: WorldSpec, seed: int) -> None:
    """Every file of the world into `root` (an empty folder); world.json last."""
    streams = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    lexicon = make_lexicon(spec, streams["lexicon"])
    rendered = {task: render_task(spec, lexicon, make_splits(task, spec, streams[task])) for task in FORMATS}
    for task, languages in rendered.items():
        write_hub_layout(root / "data" / f"{task}_hub", task, languages)
        write_tsv_layout(root / "data" / f"{task}_tsv", task, languages)
    write_synonyms(root / "synonyms.json", synonym_table(lexicon))
    vectors = word_vectors(spec, lexicon, streams["vectors"])
    vocab_size = write_encoder(root / "model", spec, corpus_of(rendered, lexicon), vectors, streams["encoder"])
    sizes = {
        "vocab_size": vocab_size,
        "world_words": len(vectors),
        "synonym_words": sum(len(group) for group in lexicon.synonyms),
        "train": spec.train_size,
        "dev": spec.dev_size,
        "test": spec.test_size,
    }
    (root / WORLD_FILE).write_text(json.dumps(world_description(spec, seed, sizes), indent=2) + "\n")


def load_world(root: str | os.PathLike) -> World:
    """The World described by `root`/world.json; FileNotFoundError/ValueError when it is not one."""
    path = Path(root) / WORLD_FILE
    try:
        data = json.loads(path.read_text())
        return World(
            root=Path(root),
            spec=WorldSpec.from_dict(data["spec"]),
            seed=int(data["seed"]),
            spec_hash=data["spec_hash"],
            languages=tuple(data["languages"]),
            language_distances=MappingProxyType(dict(data["language_distances"])),
            distance_name=data["distance_name"],
            word_orders=MappingProxyType(dict(data["word_orders"])),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a synthetic world description ({error})") from error


def _is_world(path: Path) -> bool:
    return (path / WORLD_FILE).is_file()


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is neither empty nor a world (never delete user data)."""
    if out_dir.exists() and not (out_dir.is_dir() and (_is_world(out_dir) or not any(out_dir.iterdir()))):
        raise FileExistsError(f"{out_dir} exists and is not a synthetic world (no {WORLD_FILE}); refusing to replace it")


def _sibling(out_dir: Path, purpose: str) -> Path:
    """A new hidden folder next to `out_dir` (same file system, so renames are atomic)."""
    path = out_dir.parent / f".{out_dir.name}.{purpose}-{secrets.token_hex(6)}"
    path.mkdir()
    return path


def _move_into_place(built: Path, out_dir: Path) -> None:
    """Rename `built` to `out_dir`, first moving aside whatever world or empty folder is there."""
    if not out_dir.exists():
        os.rename(built, out_dir)
        return
    old = _sibling(out_dir, "old")
    os.rename(out_dir, old / "world")
    os.rename(built, out_dir)
    shutil.rmtree(old)


def build_world(out_dir: str | os.PathLike, *, spec: WorldSpec = WorldSpec(), seed: int = 0) -> World:
    """Build the world of (spec, seed) at `out_dir`, replacing an existing world there.

    Deterministic: the same spec and seed give byte-identical files. Atomic: the files are
    written into a temporary sibling folder that is renamed into place only when complete.
    """
    out_dir = Path(out_dir).absolute()
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = _sibling(out_dir, "building")
    try:
        with quiet_progress_bars():
            write_world(building, spec, seed)
        _move_into_place(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return load_world(out_dir)


def matching_world(out_dir: Path, spec: WorldSpec, seed: int) -> World | None:
    """The world at `out_dir` if it is complete and was built from this spec and seed."""
    if not _is_world(out_dir):
        return None
    try:
        world = load_world(out_dir)
    except ValueError:
        return None
    if world.spec_hash == spec.spec_hash() and world.seed == seed:
        return world
    return None


def ensure_world(out_dir: str | os.PathLike, *, spec: WorldSpec = WorldSpec(), seed: int = 0) -> World:
    """Reuse the world at `out_dir` when it matches (spec hash and seed), else build it.

    A lock file next to `out_dir` makes concurrent callers (e.g. parallel trials) build once.
    """
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f".{out_dir.name}.lock")):
        return matching_world(out_dir, spec, seed) or build_world(out_dir, spec=spec, seed=seed)
