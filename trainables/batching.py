"""Batches from memory-mapped token ids: length-grouped sampling and dynamic padding.

The tokenized cache is an Arrow table on disk. `TokenizedSplit` keeps zero-copy numpy views of
its list columns, chunk by chunk, so that every trial on a node reads the same pages of the
page cache instead of holding a private copy. Batches are padded to their own longest sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import torch


@dataclass(frozen=True)
class RaggedColumn:
    """A list<int> Arrow column as per-chunk (offsets, values) numpy views."""

    chunk_starts: np.ndarray  # first row of each chunk, plus the total row count
    offsets: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]

    @classmethod
    def from_arrow(cls, column: pa.ChunkedArray) -> "RaggedColumn":
        chunks = [c for c in column.chunks if len(c)]
        starts = np.cumsum([0] + [len(c) for c in chunks])
        offsets = tuple(c.offsets.to_numpy(zero_copy_only=True) for c in chunks)
        values = tuple(c.values.to_numpy(zero_copy_only=True) for c in chunks)
        return cls(starts, offsets, values)

    def rows(self, indices: np.ndarray) -> list[np.ndarray]:
        chunk_of = np.searchsorted(self.chunk_starts, indices, side="right") - 1
        local = indices - self.chunk_starts[chunk_of]
        out = []
        for c, i in zip(chunk_of.tolist(), local.tolist()):
            offsets = self.offsets[c]
            out.append(self.values[c][offsets[i] : offsets[i + 1]])
        return out


@dataclass(frozen=True)
class TokenizedSplit:
    """Token ids, labels and example positions of one evaluation or training split."""

    input_ids: RaggedColumn
    token_type_ids: RaggedColumn | None
    labels: np.ndarray
    lengths: np.ndarray
    examples: np.ndarray  # position of each row in its (aligned) source set

    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset) -> "TokenizedSplit":
        table = dataset.data.table
        has_types = "token_type_ids" in table.column_names
        return cls(
            input_ids=RaggedColumn.from_arrow(table.column("input_ids")),
            token_type_ids=RaggedColumn.from_arrow(table.column("token_type_ids")) if has_types else None,
            labels=table.column("label").to_numpy().astype(np.int64),
            lengths=table.column("length").to_numpy().astype(np.int64),
            examples=table.column("example").to_numpy().astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def padded_tokens(self, batches: list[np.ndarray]) -> tuple[int, int]:
        """(real tokens, padded tokens) that these batches hold under dynamic padding."""
        real = int(self.lengths.sum())
        padded = sum(int(self.lengths[b].max()) * len(b) for b in batches)
        return real, padded


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_factor: int = 50
) -> list[np.ndarray]:
    """Random batches of similar lengths (as Hugging Face's LengthGroupedSampler).

    Shuffle, cut into mega-batches of `group_factor` batches, sort each by length, cut into
    batches, then shuffle the batch order so that long and short batches alternate randomly.
    """
    order = rng.permutation(len(lengths))
    mega = batch_size * group_factor
    batches = []
    for start in range(0, len(order), mega):
        group = order[start : start + mega]
        group = group[np.argsort(-lengths[group], kind="stable")]
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def shared_length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, schedule: np.random.Generator,
    group_factor: int = 50,
) -> list[np.ndarray]:
    """Batches of similar lengths whose length schedule is the same for every seed (seed ensembles).

    The rows sorted by length, a function of the data alone, are cut into buckets of `group_factor` batches; the
    seed's `rng` shuffles the rows of each bucket (ties in length included) and cuts it into batches, longest
    first; `schedule`, the same generator for every seed, orders all the buckets' batches. Batch j of any two
    seeds then comes from the same place in the same bucket, so a seed ensemble pads them to nearly one width,
    where per-seed grouped batches (`length_grouped_batches`) would be padded to the widest of K random ones.
    """
    order = np.argsort(lengths, kind="stable")
    mega = batch_size * group_factor
    per_bucket = []
    for start in range(0, len(order), mega):
        rows = order[start : start + mega]
        rows = rows[rng.permutation(len(rows))]
        rows = rows[np.argsort(-lengths[rows], kind="stable")]
        per_bucket.append([rows[i : i + batch_size] for i in range(0, len(rows), batch_size)])
    slots = [batch for batches in per_bucket for batch in batches]
    return [slots[i] for i in schedule.permutation(len(slots))]


def random_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Plain shuffled batches (no length grouping)."""
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def evaluation_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches sorted by length: the least padding for inference."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    split: TokenizedSplit, indices: np.ndarray, pad_id: int, pad_to: int | None = None, multiple_of: int = 1
) -> dict[str, torch.Tensor]:
    """Tensors for one batch, padded to the batch's longest sequence (or to `pad_to`)."""
    rows = split.input_ids.rows(indices)
    width = pad_to or max(len(r) for r in rows)
    width = -(-width // multiple_of) * multiple_of
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for k, row in enumerate(rows):
        input_ids[k, : len(row)] = row
        attention_mask[k, : len(row)] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
    if split.token_type_ids is not None:
        token_type_ids = np.zeros_like(input_ids)
        for k, row in enumerate(split.token_type_ids.rows(indices)):
            token_type_ids[k, : len(row)] = row
        batch["token_type_ids"] = torch.from_numpy(token_type_ids)
    batch["labels"] = torch.from_numpy(split.labels[indices])
    return batch
