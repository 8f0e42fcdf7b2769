"""How fast trainables.data loads XNLI-sized data (392,702 training pairs, 15 test sets of 5,010).

Writes synthetic XNLI-shaped files (TSV and Hub layout) into a temporary folder, times loading,
fingerprinting, alignment and the 225 generalized pairs, prints a table and appends it with a
machine description to BENCHMARKS.md. Usage: python benchmarks/bench_data.py [--train-rows N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from common import append_section, markdown_table  # noqa: E402  (benchmarks/ is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEADING = "## Data loading (trainables/data.py)"
LABELS = ("entailment", "neutral", "contradictory")


def random_sentences(rng, count: int, mean_words: int, vocabulary) -> list[str]:
    lengths = rng.poisson(mean_words, count) + 1
    words = rng.choice(vocabulary, size=int(lengths.sum()))
    ends = lengths.cumsum()
    return [" ".join(words[end - length : end]) for end, length in zip(ends, lengths)]


def xnli_rows(rng, count: int, vocabulary) -> tuple[list[str], list[str], list[str]]:
    """Premises of ~19 words and hypotheses of ~10 (XNLI's mean lengths), one quote in some."""
    premises = random_sentences(rng, count, 19, vocabulary)
    hypotheses = random_sentences(rng, count, 10, vocabulary)
    labels = [LABELS[k] for k in rng.integers(0, 3, count)]
    return premises, hypotheses, labels


def write_tsv(path: Path, rows) -> None:
    path.write_text("".join(f"{p}\t{h}\t{label}\n" for p, h, label in zip(*rows)), encoding="utf-8")


def write_world(root: Path, train_rows: int, test_rows: int, languages, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{k}" for k in range(5000)] + ['"quoted', "it's"])
    write_tsv(root / "train-en.tsv", xnli_rows(rng, train_rows, vocabulary))
    write_tsv(root / "dev-en.tsv", xnli_rows(rng, 2490, vocabulary))
    test = xnli_rows(rng, test_rows, vocabulary)
    for language in languages:
        write_tsv(root / f"test-{language}.tsv", (test[0], [f"{h} {language}" for h in test[1]], test[2]))


def write_hub_train(root: Path, tsv_dir: Path) -> None:
    """Hub layout of the English train split (premise, hypothesis, ClassLabel) from the TSV."""
    import datasets
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(
        tsv_dir / "train-en.tsv",
        read_options=pa_csv.ReadOptions(column_names=["premise", "hypothesis", "label"]),
        parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False),
    )
    ids = {"entailment": 0, "neutral": 1, "contradictory": 2}
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    columns = {
        "premise": table["premise"].to_pylist(),
        "hypothesis": table["hypothesis"].to_pylist(),
        "label": [ids[label] for label in table["label"].to_pylist()],
    }
    (root / "en").mkdir(parents=True)
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(root / "en" / "train-00000-of-00001.parquet"))
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n    path: en/train-*\n---\n"
    )


def write_files(root: Path, train_rows: int, test_rows: int, languages) -> None:
    (root / "tsv").mkdir()
    write_world(root / "tsv", train_rows, test_rows, languages, seed=0)
    write_hub_train(root / "hub", root / "tsv")


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def measure(root: Path, languages) -> list[tuple[str, float, str]]:
    from trainables.data import DataSource, align_parallel, fingerprint, generalized_pair, load_split, load_task_data
    from trainables.tasks import XNLI

    tsv = DataSource("tsv", str(root / "tsv"))
    hub = DataSource("local_hub", str(root / "hub"))
    train, load_s = timed(load_split, XNLI, tsv, "train", "en")
    _, print_s = timed(fingerprint, train)
    data, task_s = timed(load_task_data, XNLI, tsv, languages)
    aligned, align_s = timed(align_parallel, XNLI, data.test)
    _, pairs_s = timed(lambda: [generalized_pair(aligned, a, b) for a in languages for b in languages])
    hub_train, hub_cold_s = timed(load_split, XNLI, hub, "train", "en")
    _, hub_warm_s = timed(load_split, XNLI, hub, "train", "en")
    same = "yes" if fingerprint(hub_train) == fingerprint(train) else "NO"
    rows = len(train)
    return [
        (f"load_split tsv train ({rows:,} rows)", load_s, f"{rows / load_s:,.0f} rows/s"),
        ("fingerprint(train)", print_s, f"{rows / print_s:,.0f} rows/s"),
        (f"load_task_data tsv (train, dev, {len(languages)} tests)", task_s, ""),
        (f"align_parallel ({len(languages)} x {len(data.test['en']):,} rows)", align_s, ""),
        (f"generalized_pair x {len(languages) ** 2}", pairs_s, ""),
        ("load_split local_hub train, first (Parquet -> cache)", hub_cold_s, ""),
        ("load_split local_hub train, cached", hub_warm_s, f"same fingerprint as TSV: {same}"),
    ]


def report(results, peak_mib: float) -> str:
    body = [(name, f"{seconds:.2f}", note) for name, seconds, note in results]
    body.append(("peak resident memory", "", f"{peak_mib:,.0f} MiB"))
    return markdown_table(("step", "seconds", "note"), body, align="lrl")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=392_702)
    parser.add_argument("--test-rows", type=int, default=5_010)
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    from trainables.tasks import XNLI

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["HF_DATASETS_CACHE"] = str(root / "cache")
        # Files are written in a child process so that the peak memory below is the loading's own.
        writer = multiprocessing.get_context("spawn").Process(
            target=write_files, args=(root, args.train_rows, args.test_rows, XNLI.languages)
        )
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit(f"writing the benchmark files failed (exit code {writer.exitcode})")
        results = measure(root, XNLI.languages)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = report(results, peak_mib)
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_data.py", text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
