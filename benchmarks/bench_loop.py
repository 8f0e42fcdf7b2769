"""Training throughput of the trial loop (issue 2).

(a) `TrainingRun.train` against a bare PyTorch loop on the same model, the same micro-batches in
    the same order with the same padding, the same AdamW / linear schedule / clipping / gradient
    accumulation and the same dropout seed. The bare loop gets its batches as ready-made tensors
    (collated before the clock starts), so everything our loop adds - collating from the
    memory-mapped cache, method hook, closures, the final evaluation - counts against it.
    Target: ours >= 0.95 x bare. Both loops' mean training loss is printed: equal losses show
    that they did the same work.
(b) Dynamic padding with length grouping against padding every batch to 128 (XTREME's scripts)
    and against dynamic padding without grouping, on a synthetic world with longer sentences
    (8-30 words each, i.e. pairs of 19-63 word pieces, PAWS-X-like).

Models: the demo world's own tiny BERT (its shape is in the tables) and a larger BERT (hidden 256, 4 layers,
4 heads, intermediate 1024, dropout 0.1) saved with the world's tokenizer. torch uses 2 threads.
Usage: python benchmarks/bench_loop.py [--repeats N] [--no-append]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import (append_section, interleaved, markdown_table, offline_environment, stopwatch, summarize,
                    world)

offline_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import get_linear_schedule_with_warmup  # noqa: E402

from trainables.batching import TokenizedSplit, collate  # noqa: E402
from trainables.loop import TrainingRun  # noqa: E402
from trainables.methods import Baseline  # noqa: E402
from trainables.prepare import PreparedData  # noqa: E402
from trainables.spec import TrainingSpec, TrialSpec, derive_seed  # noqa: E402
from trainables.trial import load_model, prepare_for, quiet_libraries  # noqa: E402

HEADING = "## Training loop throughput and dynamic padding (benchmarks/bench_loop.py, issue 2)"
SEED = 0
THREADS = 2
TARGET_RATIO = 0.95
NEVER = 10**9  # eval_every: evaluate only once, after the last update


@dataclass(frozen=True)
class ModelCase:
    """A model to time and how many optimizer updates (of 32 examples) make one timed run."""

    name: str
    shape: dict | None  # WorldSpec encoder fields for a new BERT; None: the world's own model
    loop_updates: int  # (a)
    padding_updates: int  # (b), where padding to 128 makes every update several times dearer

    def label(self, world_) -> str:
        """The name in the tables; the world's own model is named by the shape its spec gives it."""
        if self.shape is not None:
            return self.name
        spec = world_.spec
        return f"{self.name} h{spec.hidden_size} L{spec.num_layers} A{spec.num_heads} I{spec.intermediate_size}"


MODELS = (
    ModelCase("the world's tiny BERT", None, 90, 60),
    ModelCase("BERT h256 L4 A4 I1024", {"hidden_size": 256, "num_layers": 4, "num_heads": 4,
                                        "intermediate_size": 1024, "dropout": 0.1}, 24, 8),
)
PADDINGS = {  # name -> TrainingSpec changes
    "dynamic + length grouping (ours)": {"padding": "dynamic", "length_grouping": True},
    "dynamic, no grouping": {"padding": "dynamic", "length_grouping": False},
    "pad to 128, no grouping (XTREME)": {"padding": "max_length", "length_grouping": False},
}


# ---------------------------------------------------------------------------------- set-up
def larger_model(world_, root: Path, shape: dict, seed: int) -> Path:
    """A BERT of `shape` with the world's tokenizer, every weight drawn from a numpy generator of `seed`."""
    from transformers import AutoTokenizer

    from trainables.synthetic.encoder import bert_config, init_bert

    directory = root / ("model-" + world_.root.name + "".join(f"-{k}{v}" for k, v in sorted(shape.items())))
    if (directory / "config.json").exists():
        return directory
    tokenizer = AutoTokenizer.from_pretrained(world_.model_dir)
    spec = dataclasses.replace(world_.spec, max_position_embeddings=512, **shape)
    model = init_bert(bert_config(spec, len(tokenizer), tokenizer.pad_token_id), np.random.default_rng(seed))
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def trial_spec(world_, model_dir: Path, cache: Path) -> TrialSpec:
    return TrialSpec.from_dict({
        "experiment": "bench-loop", "experiment_dir": str(cache.parent / "experiment"), "task": "pawsx",
        "model": str(model_dir), "method": "baseline", "seed": SEED,
        "data": {"kind": "tsv", "path": str(world_.tsv_dir("pawsx"))}, "languages": list(world_.languages),
        "cache_dir": str(cache),
    })


@dataclass
class Setup:
    model: torch.nn.Module
    initial: dict  # the weights every timed run starts from
    data: PreparedData
    pad_id: int


def set_up(world_, model_dir: Path, cache: Path) -> Setup:
    """Model and cached data exactly as run_trial loads them."""
    spec = trial_spec(world_, model_dir, cache)
    tokenizer, model = load_model(spec.model, 2, spec.seed)
    data = prepare_for(spec, tokenizer, Baseline())
    return Setup(model, copy.deepcopy(model.state_dict()), data, tokenizer.pad_token_id or 0)


# ----------------------------------------------------------------------------------- loops
def training_spec(updates: int, **changes) -> TrainingSpec:
    """The paper's batch (8 x 4 accumulation), a learning rate that moves, `updates` updates."""
    return TrainingSpec(epochs=1, learning_rate=1e-4, per_device_batch_size=8, gradient_accumulation=4,
                        eval_every=NEVER, max_updates=updates, **changes)


def new_run(setup: Setup, training: TrainingSpec) -> TrainingRun:
    setup.model.load_state_dict(setup.initial)
    return TrainingRun(setup.model, Baseline(), setup.data, training, seed=SEED, eval_every=NEVER,
                       pad_id=setup.pad_id, device=torch.device("cpu"))


def timed_batches(run: TrainingRun) -> list[list[np.ndarray]]:
    """The micro-batch groups `run.train` will use, update by update (first epoch only)."""
    batches = run.epoch_batches(0)
    accumulation = run.training.gradient_accumulation
    groups = [batches[i : i + accumulation] for i in range(0, len(batches), accumulation)]
    if run.total_updates > len(groups):
        raise ValueError(f"{run.total_updates} updates exceed one epoch ({len(groups)}); lower the updates")
    return groups[: run.total_updates]


@dataclass(frozen=True)
class Timing:
    examples: int
    seconds: float
    cpu_seconds: float  # this process, all threads: hardly moved by other work on the machine
    mean_loss: float

    @property
    def per_second(self) -> float:
        return self.examples / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.examples / self.cpu_seconds


def time_ours(setup: Setup, training: TrainingSpec) -> Timing:
    run = new_run(setup, training)
    examples = sum(len(b) for group in timed_batches(run) for b in group)
    reports = []
    with stopwatch() as clock:
        run.train(lambda metrics, save: reports.append(metrics))
    return Timing(examples, clock["seconds"], clock["cpu_seconds"], reports[-1]["train_loss"])


def collated_groups(setup: Setup, training: TrainingSpec) -> list[list[dict[str, torch.Tensor]]]:
    """The same batches as `time_ours`, as tensors, padded as TrainingRun pads them."""
    run = new_run(setup, training)
    pad_to = training.max_length if training.padding == "max_length" else None
    return [[collate(setup.data.train, b, setup.pad_id, pad_to=pad_to) for b in group] for group in timed_batches(run)]


def bare_update(model, group, parameters, optimizer, scheduler, max_grad_norm: float) -> float:
    examples = sum(len(batch["labels"]) for batch in group)
    total = 0.0
    for batch in group:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        loss = F.cross_entropy(model(**inputs).logits.float(), batch["labels"]) * (len(batch["labels"]) / examples)
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def time_bare(setup: Setup, training: TrainingSpec, groups) -> Timing:
    """The textbook loop over ready tensors: what a researcher would write by hand."""
    model = setup.model
    model.load_state_dict(setup.initial)
    torch.manual_seed(derive_seed(SEED, "dropout"))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=training.learning_rate, eps=training.adam_epsilon,
                                  weight_decay=training.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(training.warmup_ratio * len(groups)), len(groups))
    examples = sum(len(batch["labels"]) for group in groups for batch in group)
    model.train()
    with stopwatch() as clock:
        losses = [bare_update(model, g, parameters, optimizer, scheduler, training.max_grad_norm) for g in groups]
    return Timing(examples, clock["seconds"], clock["cpu_seconds"], float(np.mean(losses)))


def collate_seconds_per_update(setup: Setup, training: TrainingSpec) -> float:
    with stopwatch() as clock:
        groups = collated_groups(setup, training)
    return clock["seconds"] / len(groups)


# ------------------------------------------------------------------------------ measuring
def paired_ratio(ours: list[Timing], bare: list[Timing], rate: str) -> float:
    """Median over repeats of ours/bare, each pair measured back to back (slow drifts cancel)."""
    return float(np.median([getattr(o, rate) / getattr(b, rate) for o, b in zip(ours, bare, strict=True)]))


def compare_loops(setup: Setup, case: ModelCase, repeats: int) -> dict:
    training = training_spec(case.loop_updates)
    groups = collated_groups(setup, training)
    timings = interleaved({"ours": lambda: time_ours(setup, training),
                           "bare": lambda: time_bare(setup, training, groups)}, repeats)
    ours, bare = timings["ours"], timings["bare"]
    return {"case": case, "ours": summarize([t.per_second for t in ours]),
            "bare": summarize([t.per_second for t in bare]),
            "wall_ratio": paired_ratio(ours, bare, "per_second"),
            "cpu_ratio": paired_ratio(ours, bare, "per_cpu_second"),
            "losses": {"ours": ours[-1].mean_loss, "bare": bare[-1].mean_loss},
            "collate_ms": 1000 * collate_seconds_per_update(setup, training)}


def padded_fraction(split: TokenizedSplit, run: TrainingRun) -> float:
    """Share of the token positions in a whole epoch's batches that are padding."""
    batches = run.epoch_batches(0)
    real = sum(int(split.lengths[b].sum()) for b in batches)
    if run.training.padding == "max_length":
        positions = sum(len(b) * run.training.max_length for b in batches)
    else:
        positions = sum(len(b) * int(split.lengths[b].max()) for b in batches)
    return 1 - real / positions


def compare_paddings(setup: Setup, case: ModelCase, repeats: int) -> dict:
    trainings = {name: training_spec(case.padding_updates, **changes) for name, changes in PADDINGS.items()}
    speeds = interleaved({name: (lambda t=t: time_ours(setup, t).per_second)
                          for name, t in trainings.items()}, repeats)
    fractions = {name: padded_fraction(setup.data.train, new_run(setup, t)) for name, t in trainings.items()}
    mean_length = float(setup.data.train.lengths.mean())
    return {"case": case, "speeds": {n: summarize(v) for n, v in speeds.items()}, "padding": fractions,
            "mean_length": mean_length}


# ------------------------------------------------------------------------------- reporting
def loop_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        met = "yes" if r["wall_ratio"] >= TARGET_RATIO else "NO"
        overhead_ms = 1000 * 32 * (1 / r["ours"].median - 1 / r["bare"].median)
        rows.append((r["model"], r["case"].loop_updates * 32, f"{r['ours'].median:,.0f} / {r['ours'].best:,.0f}",
                     f"{r['bare'].median:,.0f} / {r['bare'].best:,.0f}", f"{r['wall_ratio']:.3f}",
                     f"{r['cpu_ratio']:.3f}", met, f"{overhead_ms:.2f}", f"{r['collate_ms']:.2f}",
                     f"{r['losses']['ours']:.7f} / {r['losses']['bare']:.7f}"))
    header = ("model", "examples per run", "ours ex/s (median / best)", "bare ex/s (median / best)",
              "ours / bare, wall", "ours / bare, CPU time", f"wall >= {TARGET_RATIO}", "ours - bare ms/update",
              "collate ms/update", "mean loss ours / bare")
    return markdown_table(header, rows)


def padding_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        reference = r["speeds"]["pad to 128, no grouping (XTREME)"].median
        for name, speed in r["speeds"].items():
            rows.append((r["model"], r["case"].padding_updates * 32, name,
                         f"{speed.median:,.0f} / {speed.best:,.0f}", f"{speed.median / reference:.2f}x",
                         f"{100 * r['padding'][name]:.1f}%"))
    header = ("model", "examples per run", "batching", "ex/s (median / best)", "speed-up vs pad to 128",
              "padded tokens (epoch)")
    return markdown_table(header, rows, "lrlrrr")


def report(loops: list[dict], paddings: list[dict], repeats: int, threads: int) -> str:
    mean_length = paddings[0]["mean_length"]
    return "\n\n".join([
        f"(a) Our loop against a bare loop over ready tensors; demo world (3,000 PAWS-X-shaped training pairs), "
        f"batch 8 x 4 accumulation, AdamW + linear schedule + clipping, one warm-up round then {repeats} "
        f"interleaved repeats, torch {threads} threads. ex/s = training examples per second of `train()` "
        f"(ours, including its one evaluation on a 16-pair dev set) or of the bare update loop. Ratios are "
        f"medians over repeats of ours/bare measured back to back, by wall time and by this process's CPU time.",
        loop_table(loops),
        f"(b) Our loop with three batchings on a world of longer sentences (8-30 words each, mean pair length "
        f"{mean_length:.1f} word pieces, max_length 128), same batch and repeats.",
        padding_table(paddings),
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as folder:
        root = Path(folder)
        demo = world(root, dev_size=16, test_size=16)
        long = world(root, dev_size=16, test_size=16, min_words=8, max_words=30)
        loops, paddings = [], []
        for case in MODELS:
            for world_, results, compare in ((demo, loops, compare_loops), (long, paddings, compare_paddings)):
                model_dir = world_.model_dir if case.shape is None else larger_model(world_, root, case.shape, SEED)
                setup = set_up(world_, model_dir, root / f"cache-{world_.root.name}")
                results.append({**compare(setup, case, args.repeats), "model": case.label(world_)})
                print(f"done: {case.label(world_)} on {world_.root.name}", file=sys.stderr, flush=True)
    text = report(loops, paddings, args.repeats, THREADS)
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_loop.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
