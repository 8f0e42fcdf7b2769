"""What one trial checkpoint of an mBERT-sized model costs, the figure behind `checkpoint_every`.

A TrainingRun over a randomly initialised BERT with bert-base-multilingual-cased's shapes (vocabulary
119,547, hidden 768, 12 layers: 178M parameters; no download) takes one AdamW step, so that the optimizer
holds its moment estimates, and keeps best-by-dev weights, as after a real evaluation. Timed: the trial's
own `TrainingRun.save` into a temporary folder, then the copy into the storage folder that Tune's
`persist_current_checkpoint` makes (pyarrow `copy_files`, local disk to local disk here; to S3 on a cluster).
Reported next to the training time an evaluation interval costs at the sweeper's default GPU throughput
estimate (`estimate.train_examples_per_second`), which is an assumption, not a measurement here.
Usage: python benchmarks/bench_checkpoint.py [--repeats R] [--no-append]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

from common import append_section, markdown_table, offline_environment, stopwatch, summarize

offline_environment()

import pyarrow.fs as pafs  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from sweeper.schema import Estimate  # noqa: E402
from trainables.loop import TrainingRun  # noqa: E402
from trainables.methods import build_method  # noqa: E402
from trainables.spec import TrainingSpec  # noqa: E402
from trainables.tasks import TASKS  # noqa: E402

HEADING = "## One trial checkpoint of an mBERT-sized model (benchmarks/bench_checkpoint.py)"


def mbert_sized_run() -> TrainingRun:
    """A TrainingRun in the state it checkpoints in after an evaluation: AdamW moments and best weights."""
    config = BertConfig(vocab_size=119_547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, num_labels=2)
    model = BertForSequenceClassification(config)
    run = TrainingRun(model, build_method("baseline", {}), SimpleNamespace(train=range(49_401)), TrainingSpec(),
                      seed=0, eval_every=500, pad_id=0, device=torch.device("cpu"))
    for parameter in run.parameters:
        parameter.grad = torch.zeros_like(parameter)
    run.optimizer.step()
    run.scheduler.step()
    run.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return run


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def one_checkpoint(run: TrainingRun, root: Path) -> dict[str, float]:
    staging, storage = root / "staging", root / "storage" / "checkpoint_000000"
    staging.mkdir()
    storage.mkdir(parents=True)
    with stopwatch() as save:
        run.save(staging)
    with stopwatch() as persist:
        pafs.copy_files(str(staging), str(storage))
    size = folder_bytes(storage)
    shutil.rmtree(root / "staging")
    shutil.rmtree(root / "storage")
    return {"save": save["seconds"], "persist": persist["seconds"], "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    run = mbert_sized_run()
    parameters = sum(p.numel() for p in run.model.parameters())
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as directory:
        runs = [one_checkpoint(run, Path(directory)) for _ in range(args.repeats)]
    save = summarize([r["save"] for r in runs], higher_is_better=False)
    persist = summarize([r["persist"] for r in runs], higher_is_better=False)
    total = summarize([r["save"] + r["persist"] for r in runs], higher_is_better=False)
    gib = runs[0]["bytes"] / 2**30

    rate = Estimate().train_examples_per_second
    rows = [["parameters", f"{parameters / 1e6:.0f} M"], ["checkpoint size", f"{gib:.2f} GiB"],
            ["TrainingRun.save (median / best)", f"{save.median:.1f} s / {save.best:.1f} s"],
            ["copy to storage, as Tune persists it", f"{persist.median:.1f} s / {persist.best:.1f} s"],
            ["one checkpoint in all", f"{total.median:.1f} s / {total.best:.1f} s"],
            ["each repeat, in order", " / ".join(f"{value:.1f} s" for value in total.values)]]
    for task in ("pawsx", "xnli"):
        interval = TASKS[task].eval_every * 32 / rate  # updates x effective batch / examples per second
        rows.append([f"{task}: training per evaluation interval at {rate:.0f} examples/s (assumed)",
                     f"{interval:.0f} s; checkpoint every evaluation: +{100 * total.median / interval:.0f}%"])
    body = markdown_table(["what", "figure"], rows, align="lr")
    body += ("\n\nNeither side calls fsync (Tune does not): the writes land in the page cache while memory allows, "
             "so the first checkpoint of a process, before the cache holds the files' pages, costs the most. "
             "A checkpoint at every evaluation (the default, `checkpoint_every: 1`) adds the share above to "
             "each trial on local disk, more on S3; `checkpoint_every: k` divides it by k at the price of redoing "
             "up to k evaluation intervals after a failure.")
    print(body)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_checkpoint.py", body)


if __name__ == "__main__":
    main()
