"""Our sweeper against `transformers.Trainer.hyperparameter_search(backend="ray")` on one grid (issue 3).

The grid: baseline fine-tuning, learning rate in {1e-4, 3e-4, 1e-3} x seeds {0, 1, 2} (9 trials),
on a synthetic world's PAWS-X task with its tiny BERT. Both sides get the same: epochs, batch
(8 x 4 accumulation), AdamW (eps 1e-8, no weight decay), linear schedule without warm-up, gradient
clipping at 1.0, max_length 128, an English dev evaluation every 25 updates (batch 64), and a
local Ray with 2 CPUs, 1 CPU (1 torch thread) per trial, 2 trials at a time, reusing actors.
Each side runs in a fresh Python process; its clock starts after the imports, before `ray.init`,
and stops after `ray.shutdown`, so tokenizing (once, on both sides) counts.

Our side: `run_sweep` on a YAML config (`search: {algorithm: grid, space: {learning_rate:
{choice: [...]}}}`); each trial also tests its best-by-dev weights on every language and writes
result files, and checkpoints at every evaluation.
The Trainer: `Trainer(model_init=...)` with the tokenized train/dev sets, `DataCollatorWithPadding`
(its default: pads each batch to its longest), `hp_space` giving `tune.grid_search` over the
learning rate and the seed, `n_trials=1`, `save_strategy="no"` (no checkpoints), no test
evaluation: less work than ours, so the comparison leans towards the Trainer. A second Trainer
run pads every pair to 128 at tokenization, as HF's run_glue.py (pad_to_max_length defaults to
True) and XTREME's scripts do.
Ours runs twice: one seed per trial (9 trials), and with `execution: {seeds_per_trial: 3}` (3 trials, each
the three seeds of one learning rate as one seed ensemble, trainables.ensemble).
Targets: ours at least 1.5x faster than the dynamically padded Trainer (issue 3); with seed ensembles at least
2x faster than the Trainer and than our own one-seed sweep, its per-seed accuracies indistinguishable from the
one-seed sweep's (paired over (learning rate, seed), issue 10). Every side's mean best dev accuracy per
learning rate is shown as a check that they trained alike.
Usage: python benchmarks/bench_vs_trainer.py [--world demo|long] [--repeats R] [--no-append]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from common import append_section, markdown_table, offline_environment, stopwatch, summarize, world

offline_environment()
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

HEADING = "## Our sweeper against Trainer.hyperparameter_search (benchmarks/bench_vs_trainer.py, issues 3 and 10)"
LEARNING_RATES = (1e-4, 3e-4, 1e-3)
SEEDS = (0, 1, 2)
EPOCHS = 2
BATCH, ACCUMULATION, EVAL_BATCH = 8, 4, 64
EVAL_EVERY = 25
MAX_LENGTH = 128
NUM_CPUS, CPUS_PER_TRIAL = 2, 1
TARGET_SPEEDUP = 1.5
ENSEMBLE_TARGET = 2.0  # issue 10: seed ensembles against the Trainer and against our one-seed sweep
SEEDS_PER_TRIAL = 3
WORLDS = {"demo": {}, "long": {"min_words": 8, "max_words": 30}}  # WorldSpec changes to the demo preset


@dataclass(frozen=True)
class SideResult:
    seconds: float  # ray.init to ray.shutdown
    ray_start_stop: float
    best_dev: dict  # learning rate -> best dev accuracy of each seed
    trial_seconds: dict  # what the side's trials report about their own time
    cpu_at_start: float  # the side's process CPU seconds when its clock started (imports)
    cpu_seconds: float = 0.0  # CPU seconds of the side's whole process tree (Ray's included) while timed
    phases: dict = dataclasses.field(default_factory=dict)  # ours: where the wall time went


# -------------------------------------------------------------------------------- ours
def write_sweep(path: Path, world_root: str, storage: Path, seeds_per_trial: int = 1) -> Path:
    import yaml

    from trainables.synthetic import load_world

    world_ = load_world(world_root)
    config = {
        "experiment": "bench-vs-trainer", "task": "pawsx", "model": str(world_.model_dir),
        "data": {"source": "tsv", "path": str(world_.tsv_dir("pawsx"))}, "methods": {"baseline": {}},
        "seeds": list(SEEDS),
        "training": {"epochs": EPOCHS, "per_device_batch_size": BATCH, "gradient_accumulation": ACCUMULATION,
                     "eval_every": EVAL_EVERY, "eval_batch_size": EVAL_BATCH, "max_length": MAX_LENGTH},
        "search": {"algorithm": "grid", "space": {"learning_rate": {"choice": list(LEARNING_RATES)}}},
        "resources": {"cpu": CPUS_PER_TRIAL}, "reuse_actors": True,
        "storage": str(storage), "cache_dir": str(storage / "token-cache"),
        "execution": {"seeds_per_trial": seeds_per_trial},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def our_results(experiment_dir: Path) -> tuple[dict, dict]:
    """Best dev accuracy per learning rate and summed trial timings, from the cells' trial.json."""
    best, timings = defaultdict(list), defaultdict(float)
    blocks = set()
    for info_path in sorted(experiment_dir.glob("results/*/seed-*/trial.json")):  # seed order within each lr
        info = json.loads(info_path.read_text())
        best[info["spec"]["training"]["learning_rate"]].append(info["best_dev_accuracy"])
        block = (info["config_id"], tuple((info.get("ensemble") or {}).get("seeds") or [info["spec"]["seed"]]))
        if block in blocks:  # a seed ensemble's members share its timings: count them once
            continue
        blocks.add(block)
        for name, seconds in info["timings"].items():
            if name != "ensemble_size":
                timings[name] += seconds
    return dict(best), dict(timings)


def trial_spans(experiment_dir: Path) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of every cell: its status.json's start and its last write ("done")."""
    spans = []
    for status in experiment_dir.glob("results/*/seed-*/status.json"):
        spans.append((json.loads(status.read_text())["started"], status.stat().st_mtime))
    return sorted(spans)


def phases(stamps: dict[str, float], data_seconds: float, spans, timings: dict) -> dict[str, float]:
    """Our sweep's wall time cut into consecutive phases, and what the trials did inside theirs."""
    first_start, last_end = spans[0][0], max(end for _, end in spans)
    return {
        "ray.init": stamps["ray_up"] - stamps["start"],
        "data: fingerprints + tokenizing once (driver)": data_seconds,
        "Tune start, actors start and import (until the first trial starts)":
            first_start - stamps["ray_up"] - data_seconds,
        "trials (first start to last end, 2 at a time)": last_end - first_start,
        "in the trials, summed: model load + cache map": timings.get("prepare_seconds", 0.0),
        "in the trials, summed: training incl. dev evaluations and checkpoints": timings.get("train_seconds", 0.0),
        "in the trials, summed: tests + result files (+ gc)": timings.get("total_seconds", 0.0)
            - timings.get("prepare_seconds", 0.0) - timings.get("train_seconds", 0.0),
        "Tune wrap-up, result check": stamps["sweep_done"] - last_end,
        "ray.shutdown": stamps["end"] - stamps["sweep_done"],
    }


def run_ours(world_root: str, root: Path, seeds_per_trial: int = 1) -> SideResult:
    import io
    import re

    import ray

    from sweeper.config import load_config
    from sweeper.run import RunOptions, run_sweep

    sweep = load_config(write_sweep(root / "sweep.yaml", world_root, root, seeds_per_trial))
    experiment_dir, out, stamps = root / "experiment", io.StringIO(), {}
    cpu_at_start = time.process_time()
    with stopwatch() as clock:
        stamps["start"] = time.time()
        ray.init(address="local", num_cpus=NUM_CPUS, include_dashboard=False, log_to_driver=False)
        stamps["ray_up"] = time.time()
        try:
            code = run_sweep(sweep, RunOptions(str(experiment_dir), num_cpus=NUM_CPUS, out=out))
        finally:
            stamps["sweep_done"] = time.time()
            ray.shutdown()
            stamps["end"] = time.time()
    if code != 0:
        raise RuntimeError(f"run_sweep returned {code}:\n{out.getvalue()[-3000:]}")
    best, timings = our_results(experiment_dir)
    data_seconds = float(re.search(r"data ready in ([0-9.]+)s", out.getvalue()).group(1))
    ray_seconds = stamps["ray_up"] - stamps["start"] + stamps["end"] - stamps["sweep_done"]
    return SideResult(clock["seconds"], ray_seconds, best, timings, cpu_at_start,
                      phases=phases(stamps, data_seconds, trial_spans(experiment_dir), timings))


# ----------------------------------------------------------------------------- Trainer
def tokenized_sets(world_root: str, tokenizer, padding: str):
    """English train and dev, tokenized as a Trainer user would (dataset.map), padded as `padding` says."""
    from trainables.data import DataSource, load_split
    from trainables.synthetic import load_world
    from trainables.tasks import get_task

    world_ = load_world(world_root)
    source, task = DataSource("tsv", str(world_.tsv_dir("pawsx"))), get_task("pawsx")

    def encode(batch):
        return tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=MAX_LENGTH,
                         padding=padding)

    sets = {split: load_split(task, source, split, "en") for split in ("train", "dev")}
    return {split: ds.map(encode, batched=True, remove_columns=["id", "sentence1", "sentence2"])
            for split, ds in sets.items()}


def training_arguments(output_dir: Path):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUMULATION, per_device_eval_batch_size=EVAL_BATCH,
        learning_rate=LEARNING_RATES[0], weight_decay=0.0, adam_epsilon=1e-8, max_grad_norm=1.0,
        lr_scheduler_type="linear", warmup_steps=0, eval_strategy="steps", eval_steps=EVAL_EVERY,
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        dataloader_num_workers=0, seed=SEEDS[0],
    )


def model_init_for(model_dir: str):
    """The model factory, seeding from the trial's own seed.

    transformers 5.24's `Trainer.train` calls `set_seed(args.seed)` and `model_init` before it
    applies the trial's hyper-parameters (`_hp_search_setup`), so a `seed` from `hp_space` would
    change neither the head's initialisation nor the data order: every seed of a learning rate
    would be the same run. Seeding here (the data order draws from the same global generator)
    makes the three seeds three runs, as on our side.
    """
    def model_init(trial=None):
        import torch
        from transformers import AutoModelForSequenceClassification, set_seed

        torch.set_num_threads(CPUS_PER_TRIAL)
        if trial is not None:
            set_seed(int(trial["seed"]))
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)

    return model_init


def accuracy(prediction) -> dict:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def trainer_results(analysis) -> tuple[dict, dict]:
    best, timings = defaultdict(list), defaultdict(float)
    for trial in analysis.trials:
        frame = analysis.trial_dataframes[trial.trial_id]
        best[trial.config["learning_rate"]].append(float(frame["eval_accuracy"].max()))
        timings["total_seconds"] += float(frame["time_total_s"].max())
    return dict(best), dict(timings)


# How the Trainer's batches are padded: its default collator pads each batch to its longest
# member; run_glue.py (pad_to_max_length=True by default) and XTREME's scripts pad to 128.
TRAINER_PADDINGS = {"dynamic": (False, "DataCollatorWithPadding"),
                    "max_length": ("max_length", "default_data_collator")}


def collator(padding: str, tokenizer):
    import transformers

    name = TRAINER_PADDINGS[padding][1]
    return transformers.DataCollatorWithPadding(tokenizer) if name == "DataCollatorWithPadding" else \
        transformers.default_data_collator


def run_trainer(world_root: str, root: Path, padding: str = "dynamic") -> SideResult:
    import ray
    from ray import tune
    from transformers import AutoTokenizer, Trainer

    from trainables.synthetic import load_world

    model_dir = str(load_world(world_root).model_dir)
    cpu_at_start = time.process_time()
    with stopwatch() as clock:
        with stopwatch() as init:
            ray.init(address="local", num_cpus=NUM_CPUS, include_dashboard=False, log_to_driver=False)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            sets = tokenized_sets(world_root, tokenizer, TRAINER_PADDINGS[padding][0])
            trainer = Trainer(model_init=model_init_for(model_dir), args=training_arguments(root / "trainer"),
                              train_dataset=sets["train"], eval_dataset=sets["dev"], processing_class=tokenizer,
                              data_collator=collator(padding, tokenizer), compute_metrics=accuracy)
            best_run = trainer.hyperparameter_search(
                hp_space=lambda _: {"learning_rate": tune.grid_search(list(LEARNING_RATES)),
                                    "seed": tune.grid_search(list(SEEDS))},
                backend="ray", n_trials=1, direction="maximize", compute_objective=lambda m: m["eval_accuracy"],
                resources_per_trial={"cpu": CPUS_PER_TRIAL}, reuse_actors=True, storage_path=str(root / "ray"),
                name="trainer-grid", verbose=0,
            )
        finally:
            with stopwatch() as shutdown:
                ray.shutdown()
    best, timings = trainer_results(best_run.run_summary)
    return SideResult(clock["seconds"], init["seconds"] + shutdown["seconds"], best, timings, cpu_at_start)


# ------------------------------------------------------------------------------ driver
OURS, TRAINER = "ours (run_sweep)", "Trainer.hyperparameter_search"
OURS_ENSEMBLE = f"ours, {SEEDS_PER_TRIAL} seeds per trial (seed ensembles)"
TRAINER_128 = "Trainer.hyperparameter_search, padded to 128 (run_glue.py default)"
SIDES = {OURS: run_ours, OURS_ENSEMBLE: lambda world_root, root: run_ours(world_root, root, SEEDS_PER_TRIAL),
         TRAINER: run_trainer, TRAINER_128: lambda world_root, root: run_trainer(world_root, root, "max_length")}


def side_main(name: str, world_root: str, root: Path) -> None:
    """One side, in this fresh interpreter (`--side`): libraries imported before its clock starts.

    A process of its own per side, started as a script: the Trainer's objective pickles this
    module's functions by value (cloudpickle does so for `__main__` only), Ray workers included.
    """
    import datasets
    import ray  # noqa: F401
    import torch  # noqa: F401
    import transformers

    from trainables.trial import quiet_libraries

    quiet_libraries()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    result = SIDES[name](world_root, root)
    (root / "result.json").write_text(json.dumps(dataclasses.asdict(result)))


def tree_cpu_seconds(process: subprocess.Popen, every: float = 0.2) -> float:
    """CPU seconds of `process` and all its descendants (Ray's daemons and workers), sampled until it exits.

    A descendant's last sample is taken at most `every` seconds before it ends.
    """
    import psutil

    seen: dict[tuple[int, float], float] = {}
    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            members = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for member in members:
            try:
                times = member.cpu_times()
                seen[(member.pid, member.create_time())] = times.user + times.system
            except psutil.NoSuchProcess:
                continue
        time.sleep(every)
    return sum(seen.values())


def run_side(name: str, world_root: str, root: Path) -> SideResult:
    """One side in a fresh `python bench_vs_trainer.py --side ...`, its process tree's CPU time sampled."""
    root.mkdir(parents=True)
    command = [sys.executable, __file__, "--side", name, "--world-root", world_root, "--root", str(root)]
    log = root / "side.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            cpu = tree_cpu_seconds(process)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {process.returncode}):\n{log.read_text()[-4000:]}")
    fields = json.loads((root / "result.json").read_text())
    fields["best_dev"] = {float(lr): values for lr, values in fields["best_dev"].items()}
    result = SideResult(**fields)
    return dataclasses.replace(result, cpu_seconds=cpu - result.cpu_at_start)


def speedups(ours: list[SideResult], other: list[SideResult]) -> dict[str, float]:
    """How many times faster ours is than `other`: median wall, best wall, median CPU."""
    median = lambda results, field: statistics.median(getattr(r, field) for r in results)  # noqa: E731
    return {"median wall": median(other, "seconds") / median(ours, "seconds"),
            "best wall": min(r.seconds for r in other) / min(r.seconds for r in ours),
            "CPU": median(other, "cpu_seconds") / median(ours, "cpu_seconds")}


def table(runs: dict[str, list[SideResult]]) -> str:
    rows = []
    for name, results in runs.items():
        wall = summarize([r.seconds for r in results], higher_is_better=False)
        dev = results[-1].best_dev
        accuracies = ", ".join(f"{lr:g}: {statistics.mean(dev[lr]):.3f}" for lr in sorted(dev))
        inside = statistics.median(r.trial_seconds.get("total_seconds", float("nan")) for r in results)
        ratio = speedups(runs[OURS], results)
        rows.append((name, len(results), f"{wall.median:.1f} / {wall.best:.1f}",
                     f"{statistics.median(r.cpu_seconds for r in results):.1f}",
                     f"{statistics.median(r.ray_start_stop for r in results):.1f}", f"{inside:.1f}",
                     f"{ratio['median wall']:.2f}x / {ratio['best wall']:.2f}x", f"{ratio['CPU']:.2f}x", accuracies))
    header = ("side", "runs", "wall s (median / best)", "CPU s, all processes (median)", "ray.init + shutdown s",
              "trials' own s, summed", "ours faster by, wall (median / best)", "ours faster by, CPU",
              "mean best dev accuracy by lr")
    return markdown_table(header, rows, "lrrrrrrrl")


def phase_table(ours: list[SideResult]) -> str:
    names = list(ours[0].phases)
    rows = [(name, f"{statistics.median(r.phases[name] for r in ours):.1f}") for name in names]
    return markdown_table(("where our sweep's wall time goes (median)", "s"), rows)


def verdict(runs: dict[str, list[SideResult]]) -> str:
    lines = []
    for ours, target, others in ((OURS, TARGET_SPEEDUP, (TRAINER, TRAINER_128)),
                                 (OURS_ENSEMBLE, ENSEMBLE_TARGET, (TRAINER, TRAINER_128, OURS))):
        for other in others:
            ratios = speedups(runs[ours], runs[other])
            met = ratios["median wall"] >= target
            figures = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items())
            lines.append(f"Target ({ours} >= {target}x faster, median wall) against {other}: "
                         f"{'met' if met else 'NOT met'} ({figures}).")
    lines.append(paired_accuracies(runs[OURS][-1], runs[OURS_ENSEMBLE][-1]))
    return "\n\n".join(lines)


def paired_accuracies(one_seed: SideResult, ensemble: SideResult) -> str:
    """The two modes' best dev accuracies paired by (learning rate, seed): mean difference, largest one, and a
    paired t-test where the differences are not all equal."""
    from scipy import stats

    pairs = [(a, b) for lr in sorted(one_seed.best_dev) for a, b in zip(one_seed.best_dev[lr], ensemble.best_dev[lr])]
    differences = [b - a for a, b in pairs]
    largest = max(abs(d) for d in differences)
    text = (f"Per-seed best dev accuracy, seed ensembles minus one seed per trial, paired over {len(pairs)} "
            f"(learning rate, seed): mean {statistics.mean(differences):+.4f}, largest |difference| {largest:.4f}")
    if len(set(differences)) > 1:
        test = stats.ttest_rel([b for _, b in pairs], [a for a, _ in pairs])
        return text + f"; paired t-test p = {test.pvalue:.3f} (indistinguishable at 0.05: {test.pvalue > 0.05})."
    return text + (" - identical on every seed (the tiny BERT has no dropout, so each member is exactly its one-seed "
                   "trial: the equivalence oracle, tests/test_ensemble.py).")


def report(runs: dict[str, list[SideResult]], world_name: str) -> str:
    changes = WORLDS[world_name]
    shape = ("demo preset: 3,000 training pairs of 4-7-word sentences" if not changes else
             f"demo preset with {changes['min_words']}-{changes['max_words']}-word sentences, 3,000 training pairs")
    return "\n\n".join([
        f"Grid: baseline, lr {', '.join(f'{lr:g}' for lr in LEARNING_RATES)} x seeds {', '.join(map(str, SEEDS))} "
        f"(9 one-seed trials, or 3 trials of 3 seeds), synthetic world ({shape}; 500 dev pairs; ours also tests "
        "5 languages x 1,000 pairs), tiny "
        f"BERT; {EPOCHS} epochs, batch {BATCH} x {ACCUMULATION}, dev every {EVAL_EVERY} updates; Ray {NUM_CPUS} "
        f"CPUs, {CPUS_PER_TRIAL} per trial, actors reused on both sides. Wall: ray.init to ray.shutdown in a "
        "fresh process per run (imports excluded, tokenizing included); CPU: the run's whole process tree "
        "(driver, Ray daemons, workers) over the same span, sampled every 0.2 s - far less moved than wall "
        "time by other work on the machine. Sides alternate, each repeat runs every side.",
        table(runs),
        verdict(runs),
        phase_table(runs[OURS]),
        phase_table(runs[OURS_ENSEMBLE]).replace("our sweep's", "our seed-ensemble sweep's"),
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=sorted(WORLDS), default="demo")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--world-root", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        side_main(args.side, args.world_root, args.root)
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench-vs-trainer-"))
    try:
        world_root = str(world(root, **WORLDS[args.world]).root)
        runs: dict[str, list[SideResult]] = {name: [] for name in SIDES}
        for repeat in range(args.repeats):
            for number, name in enumerate(SIDES):
                runs[name].append(run_side(name, world_root, root / f"run-{repeat}-{number}"))
                print(f"repeat {repeat}: {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(runs, args.world)
    print(text)
    if not args.no_append:
        append_section(HEADING, f"python benchmarks/bench_vs_trainer.py --world {args.world}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
