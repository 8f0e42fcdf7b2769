"""The one training loop: fine-tune on English, select on English dev, keep the best-by-dev weights.

Methods plug in through `method.loss(ctx)` (one micro-batch; a method may run its own backward
passes, see trainables.methods.base) and through the data they were prepared with; nothing here
knows which method runs. The loop is checkpointable at every update
boundary: model, optimizer, scheduler, RNG states and the data position (epoch, micro-batch), so a
resumed run continues on exactly the batches and random numbers of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from trainables.batching import (TokenizedSplit, collate, evaluation_batches, length_grouped_batches, random_batches,
                                 shared_length_batches)
from trainables.injection import EmbeddingInjector
from trainables.methods import Method, StepContext
from trainables.prepare import PreparedData
from trainables.spec import TrainingSpec, derive_seed, trains_in_bf16

# report(metrics, save_checkpoint): save_checkpoint(dir) writes everything needed to resume.
Report = Callable[[dict[str, Any], Callable[[Path], None]], None]

# what `TrainingRun.save` always writes (best_model.pt only once a best exists); state.json comes last
CHECKPOINT_FILES = ("model.pt", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")


def is_complete_checkpoint(names: set[str] | frozenset[str]) -> bool:
    """Whether a checkpoint folder holding files `names` can be resumed from."""
    return set(CHECKPOINT_FILES) <= set(names)


@dataclass
class LoopState:
    """Where the loop is; saved with every checkpoint."""

    epoch: int = 0
    batch: int = 0  # next micro-batch of this epoch
    update: int = 0  # optimizer updates done
    best_dev_accuracy: float = -1.0
    best_update: int = 0
    loss_sum: float = 0.0  # training loss since the last evaluation
    loss_updates: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Throughput:
    """What this process trained and evaluated, and how long evaluation took: the raw figures behind
    `estimate: auto` (trial.json timings). Not checkpointed: a resumed trial reports its own part."""

    train_examples: int = 0  # rows through the method's loss (augmented copies counted as rows)
    dev_eval_seconds: float = 0.0
    dev_eval_examples: int = 0


def epoch_batches(train: TokenizedSplit, training: TrainingSpec, seed: int, epoch: int) -> list[np.ndarray]:
    """An epoch's micro-batches: a function of (seed, epoch) only, shared by all methods (and by a seed's
    member of an ensemble)."""
    rng = np.random.default_rng([derive_seed(seed, "data-order"), epoch])
    if training.length_grouping == "shared":  # the length schedule of an epoch: the same for every seed
        schedule = np.random.default_rng([derive_seed(0, "length-schedule"), epoch])
        return shared_length_batches(train.lengths, training.per_device_batch_size, rng, schedule)
    sampler = length_grouped_batches if training.length_grouping else random_batches
    return sampler(train.lengths, training.per_device_batch_size, rng)


def updates_per_epoch(train_rows: int, training: TrainingSpec) -> int:
    return math.ceil(math.ceil(train_rows / training.per_device_batch_size) / training.gradient_accumulation)


def total_updates(train_rows: int, training: TrainingSpec) -> int:
    total = updates_per_epoch(train_rows, training) * training.epochs
    return total if training.max_updates is None else min(total, training.max_updates)


def record_evaluation(
    s: LoopState, accuracy: float, updates_per_epoch: int, total_updates: int
) -> tuple[dict[str, Any], bool]:
    """Enter one dev evaluation into the loop state: the metrics to report, and whether it is the new best
    (strictly better: the earliest of equal scores is kept)."""
    improved = accuracy > s.best_dev_accuracy
    if improved:
        s.best_dev_accuracy, s.best_update = accuracy, s.update
    metrics = {
        "evaluation": len(s.history) + 1,  # 1, 2, ...: saved with the loop, so the same after a resume
        "update": s.update,
        "epoch": s.update / updates_per_epoch,
        "train_loss": s.loss_sum / max(s.loss_updates, 1),
        "dev_accuracy": accuracy,
        "best_dev_accuracy": s.best_dev_accuracy,
        "best_update": s.best_update,
        "progress": s.update / total_updates,
    }
    s.history.append({k: metrics[k] for k in ("update", "train_loss", "dev_accuracy")})
    s.loss_sum, s.loss_updates = 0.0, 0
    return metrics, improved


def padding(training: TrainingSpec, device: torch.device) -> dict[str, int | None]:
    """`collate`'s padding arguments: to 128 where the scripts' padding is asked for, to a multiple of 8 on GPU
    (tensor-core friendly shapes)."""
    return {"pad_to": training.max_length if training.padding == "max_length" else None,
            "multiple_of": 8 if device.type == "cuda" else 1}


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast on CUDA by default, fp32 on CPU; `bf16` forces it (tests run it on CPU)."""
    return trains_in_bf16(precision, device.type)


class TrainingRun:
    def __init__(
        self,
        model: torch.nn.Module,
        method: Method,
        data: PreparedData,
        training: TrainingSpec,
        *,
        seed: int,
        eval_every: int,
        pad_id: int,
        device: torch.device,
    ):
        self.model, self.method, self.data, self.training = model.to(device), method, data, training
        self.seed, self.eval_every, self.pad_id, self.device = seed, eval_every, pad_id, device
        self.bf16 = use_bf16(training.precision, device)
        # Dropout draws from torch's global generator (nn.Dropout takes no generator): seed it here,
        # checkpoint it, and keep every other random draw on generators of its own.
        torch.manual_seed(derive_seed(seed, "dropout"))
        self.noise = torch.Generator(device=device).manual_seed(derive_seed(seed, "noise"))
        if training.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=training.learning_rate, eps=training.adam_epsilon, weight_decay=training.weight_decay
        )
        self.updates_per_epoch = updates_per_epoch(len(data.train), training)
        self.total_updates = total_updates(len(data.train), training)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, round(training.warmup_ratio * self.total_updates), self.total_updates
        )
        self.injector = EmbeddingInjector(model, method.injection) if method.injection else None
        self.state = LoopState()
        self.throughput = Throughput()
        self.best_weights: dict[str, torch.Tensor] | None = None

    # ----------------------------------------------------------------- training
    def train(self, report: Report) -> None:
        """Run (or continue) training to the end; evaluate and report every `eval_every` updates."""
        s = self.state
        self.model.train()
        while s.update < self.total_updates:
            batches = self.epoch_batches(s.epoch)
            while s.batch < len(batches) and s.update < self.total_updates:
                group = batches[s.batch : s.batch + self.training.gradient_accumulation]
                s.loss_sum += self.update(group)
                s.batch, s.update, s.loss_updates = s.batch + len(group), s.update + 1, s.loss_updates + 1
                if s.update % self.eval_every == 0 or s.update == self.total_updates:
                    self.evaluate_and_report(report)
            if s.batch >= len(batches):
                s.epoch, s.batch = s.epoch + 1, 0

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_batches(self.data.train, self.training, self.seed, epoch)

    def update(self, group: list[np.ndarray]) -> float:
        """One optimizer update over a group of micro-batches (gradient accumulation)."""
        examples = sum(len(b) for b in group)
        total = torch.zeros((), device=self.device)
        for indices in group:
            weight = len(indices) / examples
            loss = self.method.loss(replace(self.step_context(indices), weight=weight))
            if self.method.runs_backward:  # it called ctx.backward itself (weighted); the loss is for the log
                total += loss.detach() * weight
            else:
                loss = loss * weight
                loss.backward()
                total += loss.detach()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.training.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.throughput.train_examples += examples
        return float(total)

    def step_context(self, indices: np.ndarray) -> StepContext:
        batch = self.batch(self.data.train, indices)
        labels = batch.pop("labels")
        mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)

        def logits(delta: torch.Tensor | None, detach: bool = False) -> torch.Tensor:
            perturbed = self.injector.perturb(delta, detach) if self.injector else contextlib.nullcontext()
            with perturbed, self.autocast():
                out = self.model(**batch).logits
            return out.float()

        def loss_of(out: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(out, labels)

        hidden = self.injector.hidden_size if self.injector else self.model.config.hidden_size
        return StepContext(forward=lambda delta: loss_of(logits(delta)), mask=mask, hidden_size=hidden,
                           generator=self.noise, logits=logits, loss_of=loss_of)

    def batch(self, split: TokenizedSplit, indices: np.ndarray) -> dict[str, torch.Tensor]:
        tensors = collate(split, indices, self.pad_id, **padding(self.training, self.device))
        return {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # --------------------------------------------------------------- evaluation
    def evaluate_and_report(self, report: Report) -> None:
        s = self.state
        started = time.perf_counter()
        accuracy = self.accuracy(self.data.dev)  # predictions reach the CPU: the device is done
        self.throughput.dev_eval_seconds += time.perf_counter() - started
        self.throughput.dev_eval_examples += len(self.data.dev)
        metrics, improved = record_evaluation(s, accuracy, self.updates_per_epoch, self.total_updates)
        if improved:
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        report(metrics, self.save)

    def predict(self, split: TokenizedSplit) -> np.ndarray:
        """Predicted label of every row of `split`, in row order."""
        was_training = self.model.training
        self.model.eval()
        predictions = np.empty(len(split), dtype=np.int64)
        with torch.inference_mode(), self.autocast():
            for indices in evaluation_batches(split.lengths, self.training.eval_batch_size):
                batch = self.batch(split, indices)
                batch.pop("labels")
                predictions[indices] = self.model(**batch).logits.argmax(-1).cpu().numpy()
        self.model.train(was_training)
        return predictions

    def accuracy(self, split: TokenizedSplit) -> float:
        return float((self.predict(split) == split.labels).mean())

    def restore_best(self) -> None:
        """Load the best-by-dev weights (the model the paper tests)."""
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    # -------------------------------------------------------------- checkpoints
    def save(self, directory: Path) -> None:
        """Write the resumable state; state.json last, so a checkpoint without it is incomplete."""
        directory = Path(directory)
        torch.save(self.model.state_dict(), directory / "model.pt")
        torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), directory / "scheduler.pt")
        if self.best_weights is not None:
            torch.save(self.best_weights, directory / "best_model.pt")
        torch.save(self.rng_states(), directory / "rng.pt")
        (directory / "state.json").write_text(json.dumps(asdict(self.state)))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        load = lambda name: torch.load(directory / name, map_location=self.device, weights_only=True)  # noqa: E731
        self.model.load_state_dict(load("model.pt"))
        self.optimizer.load_state_dict(load("optimizer.pt"))
        self.scheduler.load_state_dict(load("scheduler.pt"))
        if (directory / "best_model.pt").exists():
            self.best_weights = torch.load(directory / "best_model.pt", map_location="cpu", weights_only=True)
        self.set_rng_states(torch.load(directory / "rng.pt", weights_only=True))
        self.state = LoopState(**json.loads((directory / "state.json").read_text()))

    def rng_states(self) -> dict[str, Any]:
        states = {"torch": torch.get_rng_state(), "noise": self.noise.get_state()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def set_rng_states(self, states: dict[str, Any]) -> None:
        torch.set_rng_state(states["torch"])
        self.noise.set_state(states["noise"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])

    def close(self) -> None:
        if self.injector is not None:
            self.injector.remove()

