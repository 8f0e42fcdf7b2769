"""The extra padding of a seed ensemble, per batch sampler (issue 10, item 1).

A seed ensemble (trainables.ensemble) pads its K members' micro-batch j to the widest and the most rows of the K.
With batches grouped by length per seed (`length_grouping: true`), batch j of one seed may be short and of another
long, so the ensemble computes on many more tokens than its K one-seed trials would; `length_grouping: shared`
(one length schedule for every seed, `trainables.batching.shared_length_batches`) keeps batch j of every seed in
the same length bucket. This counts, for one epoch of the product's own sampler (`trainables.loop.epoch_batches`,
micro-batch 8), the tokens the K one-seed trials pad to and the tokens the ensemble pads to, over the real tokens,
on PAWS-X- and XNLI-sized training sets with the length distributions of benchmarks/bench_mbert_throughput.py.

    python benchmarks/bench_ensemble_padding.py [--no-append]
"""

from __future__ import annotations

import argparse

import numpy as np

from common import append_section, markdown_table

HEADING = "## Padding of a seed ensemble per batch sampler (benchmarks/bench_ensemble_padding.py, issue 10)"
TASKS = {"pawsx": (49_401, 60), "xnli": (392_702, 45)}  # training pairs; mean word pieces per pair
GROUPINGS = {"uniform shuffling (false)": False, "grouped per seed (true)": True, "shared schedule (shared)": "shared"}
ENSEMBLE_SIZES = (1, 4, 10)


def lengths_of(rows: int, mean: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(mean) - 0.06, 0.35, rows)), 8, 128).astype(np.int64)


def padded_tokens(lengths: np.ndarray, grouping, seeds: range) -> tuple[int, int]:
    """(tokens the one-seed trials pad to, tokens the ensemble pads to) over one epoch."""
    from trainables.loop import epoch_batches
    from trainables.spec import TrainingSpec

    class Train:  # what epoch_batches reads of a TokenizedSplit
        pass

    train = Train()
    train.lengths = lengths
    training = TrainingSpec(per_device_batch_size=8, length_grouping=grouping)
    batches = [epoch_batches(train, training, seed, 0) for seed in seeds]
    alone = sum(len(b) * int(lengths[b].max()) for member in batches for b in member)
    together = sum(len(seeds) * max(len(m[j]) for m in batches) * max(int(lengths[m[j]].max()) for m in batches)
                   for j in range(len(batches[0])))
    return alone, together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows = []
    for task, (size, mean) in TASKS.items():
        lengths = lengths_of(size, mean)
        for name, grouping in GROUPINGS.items():
            for k in ENSEMBLE_SIZES:
                alone, together = padded_tokens(lengths, grouping, range(k))
                real = k * int(lengths.sum())
                rows.append([task, name, k, f"{alone / real:.3f}", f"{together / real:.3f}", f"{together / alone:.3f}"])
                print(rows[-1], flush=True)
    body = ("One epoch, micro-batch 8, dynamic padding; seeds 0..K-1. Padded tokens over real tokens for the K one-seed "
            "trials and for the K-seed ensemble, and their ratio (the ensemble's extra computation).\n\n"
            + markdown_table(["task", "batch sampler", "K", "one-seed trials: padded / real",
                              "ensemble: padded / real", "ensemble / one-seed trials"], rows))
    print(body)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_ensemble_padding.py", body)


if __name__ == "__main__":
    main()
