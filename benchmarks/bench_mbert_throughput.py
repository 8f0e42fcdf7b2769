"""Training and evaluation throughput of a model with mBERT's shape, without downloading it (issue 10, item 4).

`--dry-run`'s device-hours need examples/s on the device the sweep will use; this measures them on a randomly
initialised BertForSequenceClassification of bert-base-multilingual-cased's shape (vocab 119,547, hidden 768,
12 layers, 12 heads, intermediate 3072; weights do not change the arithmetic) through this project's own loop
(`TrainingRun.update` and `predict`: collating, the method hook, AdamW over every parameter, clipping), on
PAWS-X- and XNLI-shaped batches of random token ids:

- PAWS-X: sentence pairs of about 60 word pieces (the issue's figure for mBERT), XNLI: about 45 (a premise of
  ~30 and a hypothesis of ~12 word pieces plus 3 special tokens; an estimate), log-normal, cut to [8, 128].

Settings, each measured in its own process after warm-up updates: one trial in fp32 and in bf16 autocast,
with 8 x 4 accumulation (the scripts) and with one micro-batch of 32; k trials sharing the device (what
fractional GPUs do; on CPU the cores are split between them), their examples/s summed; K seeds trained as one
seed ensemble (trainables.ensemble: `EnsembleRun.update` and `predict`, `length_grouping: shared`), the K members'
examples/s summed, with eager attention (what the ensemble uses by default) and, on CUDA, SDPA.

Sizes: `full` is mBERT's shape; `reduced` (hidden 256, 4 layers, 4 heads, mBERT's vocabulary) keeps a CPU run
short. Default: full on CUDA, reduced on CPU; `--records` also measures the full shape's one-trial figures
(fewer updates on CPU) and writes them to sweeper/throughput.json, where `estimate: auto` finds them.

    python benchmarks/bench_mbert_throughput.py [--size full|reduced] [--records] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, append_section, markdown_table, offline_environment

offline_environment()

HEADING = "## mBERT-shaped throughput: training and evaluation examples/s per setting (issue 10, item 4)"
RECORDS = REPO / "sweeper" / "throughput.json"
MODEL = "bert-base-multilingual-cased"
SHAPES = {
    "full": {"vocab_size": 119547, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072},
    "reduced": {"vocab_size": 119547, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                "intermediate_size": 1024},
}
TASK_LENGTHS = {"pawsx": 60, "xnli": 45}  # mean word pieces per pair (see the docstring)
NUM_LABELS = {"pawsx": 2, "xnli": 3}
# (name, precision, micro-batch, accumulation, trials sharing the device, seeds per trial, ensemble attention)
SETTINGS = [
    ("one trial, fp32, 8 x 4", "fp32", 8, 4, 1, 1, None),
    ("one trial, bf16, 8 x 4", "bf16", 8, 4, 1, 1, None),
    ("one trial, fp32, 32 x 1", "fp32", 32, 1, 1, 1, None),
    ("one trial, bf16, 32 x 1", "bf16", 32, 1, 1, 1, None),
    ("2 trials sharing the device, bf16, 8 x 4", "bf16", 8, 4, 2, 1, None),
    ("4 trials sharing the device, bf16, 8 x 4", "bf16", 8, 4, 4, 1, None),
    ("4 seeds as one ensemble, fp32, 8 x 4", "fp32", 8, 4, 1, 4, "eager"),
    ("4 seeds as one ensemble, bf16, 8 x 4", "bf16", 8, 4, 1, 4, "eager"),
    ("10 seeds as one ensemble, bf16, 8 x 4", "bf16", 8, 4, 1, 10, "eager"),
    ("10 seeds as one ensemble, bf16, 8 x 4, SDPA", "bf16", 8, 4, 1, 10, "sdpa"),
]
CPU_SEEDS = 4  # the largest ensemble measured on CPU (the reduced model's K copies and their Adam state)


def synthetic_split(task: str, rows: int, vocab: int, seed: int):
    """A TokenizedSplit of random ids with the task's length distribution (two segments per pair)."""
    import numpy as np
    import pyarrow as pa

    from trainables.batching import RaggedColumn, TokenizedSplit

    rng = np.random.default_rng(seed)
    mean = TASK_LENGTHS[task]
    lengths = np.clip(np.round(rng.lognormal(np.log(mean) - 0.06, 0.35, rows)), 8, 128).astype(np.int64)
    ids = [rng.integers(1000, vocab, n).tolist() for n in lengths]
    types = [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]
    return TokenizedSplit(
        input_ids=RaggedColumn.from_arrow(pa.chunked_array([pa.array(ids, pa.list_(pa.int64()))])),
        token_type_ids=RaggedColumn.from_arrow(pa.chunked_array([pa.array(types, pa.list_(pa.int64()))])),
        labels=rng.integers(0, NUM_LABELS[task], rows).astype(np.int64), lengths=lengths,
        examples=np.arange(rows, dtype=np.int64))


def measure(size: str, task: str, precision: str, batch: int, accumulation: int, updates: int, threads: int,
            seeds: int = 1, attention: str | None = None) -> dict:
    """One trial's training and evaluation examples/s, in this process (`seeds` > 1: one seed ensemble's, its
    members' examples summed)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from trainables.ensemble import EnsembleRun
    from trainables.loop import TrainingRun
    from trainables.methods import build_method
    from trainables.prepare import PreparedData
    from trainables.spec import TrainingSpec

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    config = BertConfig(**SHAPES[size], num_labels=NUM_LABELS[task], max_position_embeddings=512)
    with torch.device(device):  # initialised where it runs: 178M parameters take seconds on a CPU, not on a GPU
        model = BertForSequenceClassification(config)  # dropout 0.1 as mBERT's
    warmup = 2
    train = synthetic_split(task, batch * accumulation * (updates + warmup) * 2, config.vocab_size, seed=1)
    evaluation = synthetic_split(task, 1024 if device.type == "cuda" else 128, config.vocab_size, seed=2)
    data = PreparedData(train=train, dev=evaluation, tests={}, train_info={}, built=())
    # an ensemble's members share one length schedule (length_grouping: shared), or they pad to the widest of K
    # unrelated batches (benchmarks/bench_ensemble_padding.py)
    spec = TrainingSpec(per_device_batch_size=batch, gradient_accumulation=accumulation, precision=precision,
                        epochs=1, length_grouping="shared" if seeds > 1 else True)
    if seeds > 1:
        with torch.device(device):
            models = [model] + [BertForSequenceClassification(config) for _ in range(seeds - 1)]
        run = EnsembleRun(models, build_method("baseline", {}), [data] * seeds, spec, seeds=range(seeds),
                          eval_every=10**9, pad_id=0, device=device, attention=attention or "eager")
        models = model = None  # stacked now: the peak memory is the ensemble's, as in a trial
        batches_of = lambda: [run_batches(seed) for seed in range(seeds)]  # noqa: E731
    else:
        run = TrainingRun(model, build_method("baseline", {}), data, spec, seed=0, eval_every=10**9, pad_id=0,
                          device=device)
        model.train()
        batches_of = lambda: [run_batches(0)]  # noqa: E731

    def run_batches(seed: int) -> list:
        from trainables.loop import epoch_batches

        return epoch_batches(train, spec, seed, 0)

    per_member = batches_of()
    groups = [[b[i:i + accumulation] for b in per_member] for i in range(0, len(per_member[0]), accumulation)]
    update = run.update if seeds > 1 else (lambda group: run.update(group[0]))
    for group in groups[:warmup]:
        update(group)
    started, examples = time.perf_counter(), 0
    for group in groups[warmup:warmup + updates]:
        update(group)  # returns Python floats: the device has finished the update
        examples += sum(len(b) for member in group for b in member)
    train_seconds = time.perf_counter() - started
    run.predict(evaluation)  # warm-up at evaluation shapes
    started = time.perf_counter()
    run.predict(evaluation)
    eval_seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"train": examples / train_seconds, "eval": seeds * len(evaluation) / eval_seconds, "peak_gib": peak,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}


def in_processes(size: str, task: str, precision: str, batch: int, accumulation: int, updates: int,
                 trials: int, cores: int, seeds: int = 1, attention: str | None = None) -> dict:
    """`trials` concurrent processes on the device; their rates summed (each gets cores // trials threads)."""
    threads = max(1, cores // trials)
    command = [sys.executable, __file__, "--worker", json.dumps([size, task, precision, batch, accumulation,
                                                                  updates, threads, seeds, attention])]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO) for _ in range(trials)]
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            raise SystemExit(f"a measuring process failed (exit {process.returncode})")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    peaks = [o["peak_gib"] for o in outputs if o["peak_gib"] is not None]
    return {"train": sum(o["train"] for o in outputs), "eval": sum(o["eval"] for o in outputs),
            "peak_gib": sum(peaks) if peaks else None, "device": outputs[0]["device"]}


def write_records(records: list[dict]) -> None:
    """Replace the records of the same device, model, task, precision and setting; atomic."""
    try:
        existing = json.loads(RECORDS.read_text()).get("records", [])
    except (OSError, ValueError):
        existing = []
    key = lambda r: (r["device"], r["model"], r["task"], r["precision"], r["setting"])  # noqa: E731
    merged = {key(r): r for r in existing}
    merged.update({key(r): r for r in records})
    payload = {"about": "Throughput recorded by benchmarks/bench_mbert_throughput.py --records on a randomly "
                        "initialised model of the named model's shape; read by sweeper/throughput.py",
               "records": sorted(merged.values(), key=key)}
    with tempfile.NamedTemporaryFile("w", dir=RECORDS.parent, delete=False, suffix=".tmp") as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")
    os.chmod(handle.name, 0o644)  # a shipped package file, readable by all
    os.replace(handle.name, RECORDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SHAPES))
    parser.add_argument("--updates", type=int, help="timed updates per setting (default: 20 on CUDA, 6 on CPU)")
    parser.add_argument("--records", action="store_true", help="also record the full shape's one-trial figures")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker))))
        return
    import torch

    cuda = torch.cuda.is_available()
    size = args.size or ("full" if cuda else "reduced")
    updates = args.updates or (20 if cuda else 6)
    cores = len(os.sched_getaffinity(0))
    rows, records = [], []
    for task in TASK_LENGTHS:
        for name, precision, batch, accumulation, trials, seeds, attention in SETTINGS:
            if not cuda and (trials > cores or seeds > CPU_SEEDS or attention == "sdpa"):
                continue  # the CPU has 2 cores, and no vmap rule for SDPA (it falls back to a loop)
            result = in_processes(size, task, precision, batch, accumulation, updates, trials, cores, seeds, attention)
            peak = "n/a (CPU)" if result["peak_gib"] is None else f"{result['peak_gib']:.1f}"
            rows.append([task, name, f"{result['train']:.1f}", f"{result['eval']:.1f}", peak])
            print(rows[-1], flush=True)
    if args.records:
        record_updates = updates if cuda else 3
        for task in TASK_LENGTHS:
            for precision in (("fp32", "bf16") if cuda else ("fp32",)):
                result = in_processes("full", task, precision, 8, 4, record_updates, 1, cores)
                setting = f"one trial, 8 x 4, dynamic padding, {'GPU' if cuda else f'{cores} CPU threads'}"
                records.append({"device": result["device"], "model": MODEL, "task": task, "precision": precision,
                                "setting": setting, "train_examples_per_second": round(result["train"], 2),
                                "eval_examples_per_second": round(result["eval"], 2),
                                "measured": time.strftime("%Y-%m-%d"),
                                "command": "benchmarks/bench_mbert_throughput.py --records"})
                print(records[-1], flush=True)
        write_records(records)
    device = torch.cuda.get_device_name() if cuda else f"CPU, {cores} cores"
    shape = ", ".join(f"{k} {v}" for k, v in SHAPES[size].items())
    body = (f"Device: {device}. Model: {size} shape ({shape}), random weights, dropout 0.1; {updates} timed updates "
            f"of 32 examples per setting after 2 warm-up updates, evaluation over "
            f"{1024 if cuda else 128} examples; k trials = k processes at once, rates summed; K seeds as one ensemble = "
            "one process, the members' rates summed. Training examples/s count forward+backward passes "
            "(baseline).\n\n"
            + markdown_table(["task", "setting", "train examples/s", "eval examples/s", "peak GiB"], rows))
    if records:
        body += "\n\nRecorded for `estimate: auto` (sweeper/throughput.json), full mBERT shape:\n\n" + markdown_table(
            ["device", "task", "precision", "setting", "train examples/s", "eval examples/s"],
            [[r["device"], r["task"], r["precision"], r["setting"], r["train_examples_per_second"],
              r["eval_examples_per_second"]] for r in records])
    print(body)
    if not args.no_append:
        command = "python benchmarks/bench_mbert_throughput.py" + (" --records" if args.records else "")
        append_section(HEADING, command, body)


if __name__ == "__main__":
    main()
