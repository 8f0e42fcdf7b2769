"""Do the speed-ups change the science? Faithful vs fast training settings on the synthetic world.

The paper's scripts shuffle uniformly, pad every example to the maximum length, accumulate 4 micro-batches
of 8 and train in fp32; the fast configs group micro-batches by length, pad to the longest in the batch,
take one micro-batch of 32 and use bf16 autocast (forced here on CPU, where `auto` would be fp32). Both
run the demo's five methods on the demo world with the same seeds; per method and language the paired
difference fast - faithful over seeds, its 95% t-interval, and a two one-sided tests (TOST) equivalence
p-value for a margin of 1 accuracy point. Also: how balanced micro-batches of 8 are in labels, with and
without length grouping, on the XNLI-shaped training set (length correlates with the label there).

    python benchmarks/bench_faithful_vs_fast.py [--seeds 10] [--no-append]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, append_section, markdown_table, offline_environment  # noqa: E402

HEADING = "## Faithful vs fast training settings (synthetic world)"
MARGIN = 1.0  # accuracy points: a difference inside +-1 counts as equivalent
FAITHFUL = {"per_device_batch_size": 8, "gradient_accumulation": 4, "padding": "max_length",
            "length_grouping": False, "precision": "fp32"}
FAST = {"per_device_batch_size": 32, "gradient_accumulation": 1, "padding": "dynamic", "length_grouping": True,
        "precision": "bf16"}


def sweep_config(root: Path, name: str, settings: dict, seeds: int, max_length: int) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config.update(experiment=name, seeds=seeds, storage=str(root / "runs"), cache_dir=str(root / "cache"))
    config["data"]["path"] = str(root / "world")
    config["training"].update(settings, max_length=max_length)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(config: Path, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "sweeper", "run", str(config), "--num-cpus", "2"],
                              stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"{config.name}: the sweep failed (exit {code}); see {log}")
    return time.perf_counter() - started


def paired(faithful_dir: Path, fast_dir: Path) -> list[tuple]:
    """(method, language, mean difference, CI low, CI high, TOST p, n) rows, the avg column included."""
    import pandas as pd
    from scipy import stats

    from analysis.aggregate import seed_averages, seed_scores
    from analysis.load import load_results

    def scores(directory: Path):
        results = load_results([directory])
        frame = seed_scores(results.metrics[results.metrics["stage"] == "grid"])
        languages = results.experiments[0].languages
        frame = frame.assign(task="pawsx")
        return pd.concat([frame, seed_averages(frame, {"pawsx": languages})], ignore_index=True), languages

    (a, languages), (b, _) = scores(faithful_dir), scores(fast_dir)
    rows = []
    for method in dict.fromkeys(a["method"]):
        for language in (*languages, "avg"):
            pick = lambda f: f[(f["method"] == method) & (f["language"] == language)].set_index("seed")["score"]  # noqa: E731
            diff = (pick(b) - pick(a)).dropna()
            n, mean = len(diff), float(diff.mean())
            half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            lower = stats.ttest_1samp(diff, -MARGIN, alternative="greater").pvalue
            upper = stats.ttest_1samp(diff, MARGIN, alternative="less").pvalue
            rows.append((method, language, mean, mean - half, mean + half, max(lower, upper), n))
    return rows


def label_balance(world_root: Path, seeds: int = 10, batch_size: int = 8) -> list[tuple]:
    """Mean share of a micro-batch's most frequent label, and the share of one-label micro-batches."""
    from trainables.batching import length_grouped_batches, random_batches
    from trainables.data import DataSource, load_split
    from trainables.synthetic import load_world
    from trainables.tasks import get_task
    from transformers import AutoTokenizer

    world = load_world(world_root)
    task = get_task("xnli")
    train = load_split(task, DataSource("local_hub", str(world.hub_dir(task))), "train", "en")
    tokenizer = AutoTokenizer.from_pretrained(str(world.model_dir))
    encoded = tokenizer(list(train["sentence1"]), list(train["sentence2"]))["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    labels = np.array(train["label"])
    out = []
    for name, sampler in (("uniform shuffling (the scripts)", random_batches),
                          ("length-grouped (fast)", length_grouped_batches)):
        top, pure = [], []
        for seed in range(seeds):
            for batch in sampler(lengths, batch_size, np.random.default_rng(seed)):
                if len(batch) == batch_size:
                    counts = np.bincount(labels[batch], minlength=3)
                    top.append(counts.max() / batch_size)
                    pure.append(counts.max() == batch_size)
        out.append((name, f"{np.mean(top):.3f}", f"{100 * np.mean(pure):.2f}%", len(top)))
    correlation = np.corrcoef(lengths, labels)[0, 1]
    return out, correlation, len(labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=64, help="the padding length of the faithful runs")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    offline_environment()
    from trainables.synthetic import PRESETS, ensure_world

    root = Path(tempfile.mkdtemp(prefix="bench-faithful-"))
    ensure_world(root / "world", spec=PRESETS["demo"], seed=0)
    seconds = {}
    for name, settings in (("faithful", FAITHFUL), ("fast", FAST)):
        config = sweep_config(root, name, settings, args.seeds, args.max_length)
        seconds[name] = run(config, root / f"{name}.log")
        print(f"{name}: {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    rows = paired(root / "runs" / "faithful", root / "runs" / "fast")
    balance, correlation, examples = label_balance(root / "world")
    table = markdown_table(
        ("method", "language", "fast - faithful (points)", "95% CI", f"TOST p (margin {MARGIN:g})", "seeds"),
        [(m, l, f"{d:+.2f}", f"[{lo:+.2f}, {hi:+.2f}]", f"{p:.3f}", n) for m, l, d, lo, hi, p, n in rows], "llrrrr")
    equivalent = [r for r in rows if r[5] <= 0.05]
    outside = [r for r in rows if not (r[3] <= MARGIN and r[4] >= -MARGIN)]
    body = "\n\n".join([
        f"The demo's five methods on the demo world, {args.seeds} seeds each, run twice: faithful = the scripts' "
        f"{FAITHFUL} (padding to {args.max_length}, the synthetic sentences' scale of 128), fast = {FAST} "
        f"(bf16 forced on CPU). Sweep wall time: faithful {seconds['faithful']:.0f} s, fast {seconds['fast']:.0f} s "
        "(2 CPU trials in parallel).",
        table,
        f"{len(equivalent)} of {len(rows)} cells are equivalent within +-{MARGIN:g} point (TOST p <= 0.05); "
        f"{len(outside)} have a 95% interval wholly outside +-{MARGIN:g}.",
        f"Label balance of micro-batches of 8 on the XNLI-shaped training set ({examples} pairs, 10 epoch orders; "
        f"correlation of token length with the label {correlation:+.3f}):",
        markdown_table(("batch order", "mean share of the commonest label", "one-label batches", "batches"),
                       balance, "lrrr"),
    ])
    print(body)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_faithful_vs_fast.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
