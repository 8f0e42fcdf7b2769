"""Memory of 4 concurrent trials sharing the token cache against 4 that tokenize privately (issue 2).

Data: the synthetic world's XNLI task at XNLI's training size (392,702 English pairs of 8-30
words per sentence, 500 dev pairs, 5 languages x 1,000 test pairs), with the world's tokenizer,
max_length 128. The world is built once under --work-dir and reused.

- shared cache: the driver builds the cache entry first (as the sweeper does); then each of 4
  processes calls `prepare_data` with the driver's fingerprints (memory-maps the entry) and
  collates every training batch of an epoch (length-grouped, 8 pairs), touching every page.
- private copy: each of 4 processes reads the TSVs and tokenizes train, dev and tests with
  `datasets.map(keep_in_memory=True)` (`tokenize_pairs`), drops the raw text, holds the result
  and collates every training batch the same way.

While all 4 hold their data the driver sums their PSS (`memory_full_info().pss`: shared pages
divided among the processes that map them) and reads the system's used memory; both are also
read after the 4 processes have imported their libraries, so the data's own share is the
difference. Time to first batch runs from the start signal to the first collated batch.
Usage: python benchmarks/bench_cache_memory.py [--processes 4] [--work-dir DIR] [--no-append]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queues
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import append_section, markdown_table, offline_environment, world

offline_environment()

import psutil  # noqa: E402

HEADING = "## Token cache: memory of concurrent trials (benchmarks/bench_cache_memory.py, issue 2)"
XNLI_TRAIN_SIZE = 392_702
WORLD = {"train_size": XNLI_TRAIN_SIZE, "min_words": 8, "max_words": 30}
MAX_LENGTH = 128
BATCH_SIZE = 8
TIMEOUT_S = 900
MIB = 2**20


# ------------------------------------------------------------------------ in the children
def trial_spec(world_root: str, cache_dir: str, fingerprints):
    from trainables.spec import TrialSpec
    from trainables.synthetic import load_world

    world_ = load_world(world_root)
    return TrialSpec.from_dict({
        "experiment": "bench-cache", "experiment_dir": str(Path(cache_dir).parent / "experiment"), "task": "xnli",
        "model": str(world_.model_dir), "method": "baseline", "seed": 0,
        "data": {"kind": "tsv", "path": str(world_.tsv_dir("xnli"))}, "languages": list(world_.languages),
        "training": {"max_length": MAX_LENGTH}, "cache_dir": cache_dir, "data_fingerprints": fingerprints,
    })


def load_shared(spec, tokenizer):
    """The trial's way: memory-map the cache entry the driver built."""
    from trainables.methods import Baseline
    from trainables.trial import prepare_for

    return prepare_for(spec, tokenizer, Baseline()).train, {"data": "memory-mapped cache entry"}


def load_private(spec, tokenizer):
    """Without the cache: read the TSVs and tokenize everything into this process's memory."""
    import gc

    from trainables.batching import TokenizedSplit
    from trainables.data import DataSource, load_task_data
    from trainables.prepare import tokenize_pairs
    from trainables.tasks import get_task

    raw = load_task_data(get_task(spec.task), DataSource(spec.data.kind, spec.data.path), spec.languages)
    sets = {"train": raw.train, "dev": raw.dev, **{f"test_{k}": v for k, v in raw.test.items()}}
    held = {name: tokenize_pairs(ds, tokenizer, spec.training.max_length, name) for name, ds in sets.items()}
    del raw, sets
    gc.collect()
    return TokenizedSplit.from_dataset(held["train"]), held


LOADERS = {"shared cache": load_shared, "private copy": load_private}


def every_batch(split, pad_id: int, seed: int) -> float:
    """Collate all of an epoch's batches; seconds to the first one."""
    import numpy as np

    from trainables.batching import collate, length_grouped_batches

    started = time.perf_counter()
    batches = length_grouped_batches(split.lengths, BATCH_SIZE, np.random.default_rng(seed))
    collate(split, batches[0], pad_id)
    first = time.perf_counter() - started
    for indices in batches[1:]:
        collate(split, indices, pad_id)
    return first


def trial_like(variant: str, world_root: str, cache_dir: str, fingerprints, messages, go, done) -> None:
    """One child: import, wait for the start signal, load and iterate, hold until told to exit."""
    import datasets
    from transformers import AutoTokenizer

    import trainables.trial  # noqa: F401  (the libraries a trial imports)

    datasets.disable_progress_bars()
    spec = trial_spec(world_root, cache_dir, fingerprints)
    messages.put(("imported", os.getpid()))
    go.wait()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    split, held = LOADERS[variant](spec, tokenizer)
    loaded = time.perf_counter() - started
    first_batch = loaded + every_batch(split, tokenizer.pad_token_id, os.getpid())
    messages.put(("holding", os.getpid(), first_batch, time.perf_counter() - started, len(split)))
    done.wait()
    del split, held


def build_cache(world_root: str, cache_dir: str, results) -> None:
    """The driver's share (in a child, to keep the driver small): fingerprints and the cache entry."""
    from transformers import AutoTokenizer

    from trainables.data import DataSource
    from trainables.methods import Baseline
    from trainables.prepare import data_fingerprints
    from trainables.tasks import get_task
    from trainables.trial import prepare_for, quiet_libraries

    quiet_libraries()
    spec = trial_spec(world_root, cache_dir, None)
    started = time.perf_counter()
    prints = data_fingerprints(get_task(spec.task), DataSource(spec.data.kind, spec.data.path), spec.languages)
    prepare_for(spec, AutoTokenizer.from_pretrained(spec.model), Baseline())
    results.put((prints, time.perf_counter() - started))


# -------------------------------------------------------------------------- in the driver
@dataclass(frozen=True)
class Sample:
    pss: int  # bytes, summed over the children
    uss: int
    rss: int
    system_used: int


def sample(pids: list[int]) -> Sample:
    infos = [psutil.Process(pid).memory_full_info() for pid in pids]
    return Sample(sum(i.pss for i in infos), sum(i.uss for i in infos), sum(i.rss for i in infos),
                  psutil.virtual_memory().used)


@dataclass(frozen=True)
class Outcome:
    variant: str
    imported: Sample
    holding: Sample
    first_batch: tuple[float, ...]  # seconds, per child
    epoch: tuple[float, ...]  # seconds from start to all batches collated, per child
    rows: int


def receive(messages, kind: str, count: int, processes) -> list[tuple]:
    """`count` messages of `kind`, failing early if a child died."""
    got, deadline = [], time.time() + TIMEOUT_S
    while len(got) < count:
        try:
            message = messages.get(timeout=1.0)
        except queues.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead or time.time() > deadline:
                raise RuntimeError(f"waiting for '{kind}': children exited with {[p.exitcode for p in dead]}"
                                   if dead else f"timed out waiting for '{kind}'") from None
            continue
        if message[0] != kind:
            raise RuntimeError(f"expected '{kind}', got {message!r}")
        got.append(message)
    return got


def run_variant(variant: str, processes_count: int, world_root: str, cache_dir: str, fingerprints) -> Outcome:
    context = multiprocessing.get_context("spawn")
    messages, go, done = context.Queue(), context.Event(), context.Event()
    processes = [context.Process(target=trial_like, args=(variant, world_root, cache_dir, fingerprints, messages,
                                                          go, done)) for _ in range(processes_count)]
    for process in processes:
        process.start()
    try:
        pids = [m[1] for m in receive(messages, "imported", processes_count, processes)]
        time.sleep(1.0)  # let import-time allocations settle
        imported = sample(pids)
        go.set()
        held = receive(messages, "holding", processes_count, processes)
        holding = sample(pids)
        done.set()
        for process in processes:
            process.join(timeout=60)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    return Outcome(variant, imported, holding, tuple(m[2] for m in held), tuple(m[3] for m in held), held[0][4])


def prepare(work_dir: Path, cache_dir: Path) -> tuple[str, dict, float]:
    world_root = str(world(work_dir, **WORLD).root)
    results = multiprocessing.get_context("spawn").Queue()
    builder = multiprocessing.get_context("spawn").Process(target=build_cache, args=(world_root, str(cache_dir),
                                                                                     results))
    builder.start()
    prints, seconds = results.get(timeout=TIMEOUT_S)
    builder.join()
    return world_root, prints, seconds


def table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        data_pss = o.holding.pss - o.imported.pss
        used = o.holding.system_used - o.imported.system_used
        rows.append((o.variant, f"{o.holding.pss / MIB:,.0f}", f"{data_pss / MIB:,.0f}", f"{o.holding.uss / MIB:,.0f}",
                     f"{used / MIB:,.0f}", f"{min(o.first_batch):.1f} / {max(o.first_batch):.1f}",
                     f"{max(o.epoch):.1f}"))
    header = ("4 trial-like processes", "sum PSS holding (MiB)", "sum PSS - after imports (MiB)", "sum USS (MiB)",
              "system used delta (MiB)", "first batch s (min / max)", "all batches done s (max)")
    return markdown_table(header, rows)


def report(outcomes: list[Outcome], build_seconds: float, processes: int) -> str:
    shared, private = outcomes
    saving = (private.holding.pss - private.imported.pss) / max(shared.holding.pss - shared.imported.pss, 1)
    return "\n\n".join([
        f"Synthetic world, XNLI task at XNLI size: {shared.rows:,} training pairs (8-30 words per sentence), "
        f"max_length {MAX_LENGTH}, batches of {BATCH_SIZE}; {processes} processes at once on the machine's cores. "
        f"Building the cache entry once (fingerprints, tokenizing train/dev/tests, saving) took {build_seconds:.1f} s "
        f"in the driver before the shared-cache processes started.",
        table(outcomes),
        f"The data's own PSS (holding minus after imports) is {saving:.1f}x smaller with the shared cache. "
        "PSS counts each memory-mapped page once over the processes that map it (it is page cache, so "
        "`used` hardly moves); private copies are anonymous memory, counted in full in every process.",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--work-dir", type=Path, default=Path("~/.cache/robust-xlt/bench").expanduser(),
                        help="where the XNLI-sized world is built once and reused")
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=args.work_dir))
    try:
        world_root, prints, build_seconds = prepare(args.work_dir, cache_dir / "tokens")
        outcomes = [run_variant(v, args.processes, world_root, str(cache_dir / "tokens"), prints) for v in LOADERS]
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    text = report(outcomes, build_seconds, args.processes)
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_cache_memory.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
