"""K seeds of one configuration trained as one stacked ensemble: the same kernels, each member its own run.

Why: a trial of the paper (mBERT, micro-batch 8 of ~60 word pieces) leaves most of an accelerator idle, and
fractional GPUs only time-slice it. Here the K models' parameters are stacked (`torch.func.stack_module_state`)
and one call runs them all (`vmap` over `functional_call`), while every member keeps what its seed fixes in a
one-seed trial (trainables.loop): head initialisation (its model), data order, noise, augmentation (the data
it is given), dropout drawn for each member apart (`randomness="different"`), and its own gradient clipping,
AdamW state, best-by-dev weights and loop state. With dropout off, member k's losses and predictions are
those of the one-seed trial of seed k (tests/test_ensemble.py holds them equal, method by method).

How K micro-batches share one call: member k's micro-batch is collated as its one-seed trial collates it,
then padded to the widest and the most rows of the K: pad tokens are masked out of attention, and extra rows
repeat one of the member's real rows with label -100, so they carry no loss and no gradient. The loss a
method gets from `ctx.forward` (or `ctx.loss_of`, `ctx.mean_over_examples`) is sum_k w_k * loss_k (w_k: the
member's gradient-accumulation weight), so the gradient reaching member k's parameters, and its delta, is exactly
its own, and since w is a leaf tensor, d loss / d w_k is member k's loss for the log. Noise comes from
`ctx.uniform()` / `ctx.normal()`, which draw each member's rows from that member's generator, in its one-seed shape.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from transformers import get_linear_schedule_with_warmup

from trainables.batching import TokenizedSplit, collate, evaluation_batches
from trainables.injection import EmbeddingInjector
from trainables.loop import (LoopState, Throughput, epoch_batches, padding, record_evaluation, total_updates,
                             updates_per_epoch, use_bf16)
from trainables.methods import DESCRIPTORS, Method, StepContext
from trainables.prepare import PreparedData
from trainables.spec import TrainingSpec, derive_seed

IGNORED = -100  # cross_entropy's ignore_index: the label of a row that only fills the ensemble's batch

# report(one metrics dict per member, save_checkpoint)
EnsembleReport = Callable[[list[dict[str, Any]], Callable[[Path], None]], None]


class NotVectorizable(ValueError):
    """A method (or a set of members) that cannot train as one ensemble."""


@dataclass(frozen=True)
class _Batch:
    """K members' micro-batches padded to one (K, rows, width) block."""

    inputs: dict[str, torch.Tensor]  # input_ids, token_type_ids (K, B, W); attention: additive (K, B, 1, 1, W)
    mask: torch.Tensor  # (K, B, W) float32, 1 where a member's token is attended
    labels: torch.Tensor  # (K, B), IGNORED on filler rows
    rows: torch.Tensor  # (K,) float32: each member's real rows
    shapes: tuple[tuple[int, int], ...]  # each member's own (rows, width), as its one-seed trial collates it


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(..., B, W) 0/1 -> (..., B, 1, 1, W) float32 0/-inf-like: BERT's attention takes a prepared 4D mask as is.

    transformers builds this mask itself from a 2D one, testing `mask.all()` on the way, which is data-dependent
    control flow that vmap refuses; prepared outside the model the mask goes straight to the attention.
    """
    return ((1.0 - mask.to(torch.float32)) * torch.finfo(torch.float32).min).unsqueeze(-2).unsqueeze(-2)


class EnsembleRun:
    """The one-seed loop of trainables.loop for K seeds at once; members differ only by seed (and data)."""

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        method: Method,
        data: Sequence[PreparedData],
        training: TrainingSpec,
        *,
        seeds: Sequence[int],
        eval_every: int,
        pad_id: int,
        device: torch.device,
        attention: str = "eager",
    ):
        described = DESCRIPTORS.get(method.name)
        if described is not None and not described.vectorizes:
            raise NotVectorizable(f"method {method.name!r} does not train as a seed ensemble (its descriptor says "
                                  "vectorizes=False); run it with one seed per trial")
        if not (len(models) == len(data) == len(seeds)) or len(set(seeds)) != len(seeds):
            raise ValueError(f"an ensemble needs one model and one prepared data set per distinct seed, got "
                             f"{len(models)} models, {len(data)} data sets, seeds {list(seeds)}")
        if len({len(d.train) for d in data}) != 1:
            raise NotVectorizable("the members' training sets differ in size, so their epochs would not line up: "
                                  f"{[len(d.train) for d in data]} rows")
        self.method, self.data, self.training = method, list(data), training
        self.seeds, self.eval_every, self.pad_id, self.device = tuple(seeds), eval_every, pad_id, device
        self.size = len(seeds)
        self.bf16 = use_bf16(training.precision, device)
        # Dropout draws from torch's global generator under vmap(randomness="different"): one stream for the
        # block, seeded by its seeds, each member's masks drawn apart from the others'.
        torch.manual_seed(derive_seed(0, "dropout/ensemble/" + ",".join(map(str, self.seeds))))
        self.noise = [torch.Generator(device=device).manual_seed(derive_seed(s, "noise")) for s in self.seeds]
        if training.freeze_word_embeddings:
            for m in models:
                m.get_input_embeddings().weight.requires_grad_(False)
        # the architecture, without storage: functional_call runs it on the stacked tensors
        self.base = copy.deepcopy(models[0]).to("meta")
        self.base.set_attn_implementation(attention)
        # stacked where the models were loaded (the CPU), then moved, so that the K models never sit on the device
        # beside their stacked copy; the caller may drop them afterwards
        params, buffers = stack_module_state(list(models))
        self.params = {k: v.detach().to(device).requires_grad_(v.requires_grad) for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        del params, buffers
        self.parameters = [p for p in self.params.values() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=training.learning_rate, eps=training.adam_epsilon, weight_decay=training.weight_decay
        )
        rows = len(data[0].train)
        self.updates_per_epoch = updates_per_epoch(rows, training)
        self.total_updates = total_updates(rows, training)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, round(training.warmup_ratio * self.total_updates), self.total_updates
        )
        self.injector = EmbeddingInjector(self.base, method.injection) if method.injection else None
        self.hidden_size = self.injector.hidden_size if self.injector else self.base.config.hidden_size
        self.states = [LoopState() for _ in self.seeds]
        self.throughput = [Throughput() for _ in self.seeds]
        self.best_weights: list[dict[str, torch.Tensor] | None] = [None] * self.size
        self._backpropagated = torch.zeros(self.size, device=device)

    # ---------------------------------------------------------------- one call
    def logits(self, inputs: dict[str, torch.Tensor], delta: torch.Tensor | None, *, shared: bool = False,
               detach: bool = False) -> torch.Tensor:
        """(K, B, classes) float32 logits; `shared`: one batch for every member (evaluation)."""
        base, injector = self.base, self.injector
        names = tuple(inputs)

        def member(params, buffers, delta, *tensors):
            perturbed = injector.perturb(delta, detach) if injector and delta is not None else contextlib.nullcontext()
            with perturbed:
                return functional_call(base, (params, buffers), args=(), kwargs=dict(zip(names, tensors))).logits

        in_dims = (0, 0, None if delta is None else 0) + (None if shared else 0,) * len(names)
        with self.autocast():
            out = vmap(member, in_dims=in_dims, randomness="different")(
                self.params, self.buffers, delta, *inputs.values())
        return out.float()

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def collate(self, splits: Sequence[TokenizedSplit], indices: Sequence[np.ndarray]) -> _Batch:
        """Each member's micro-batch as its one-seed trial collates it, padded into one block."""
        parts = [collate(split, idx, self.pad_id, **padding(self.training, self.device))
                 for split, idx in zip(splits, indices)]
        shapes = tuple(tuple(p["input_ids"].shape) for p in parts)
        rows, width = max(b for b, _ in shapes), max(w for _, w in shapes)
        names = [k for k in parts[0] if k != "labels"]
        block = {k: torch.full((self.size, rows, width), self.pad_id if k == "input_ids" else 0, dtype=torch.int64)
                 for k in names}
        labels = torch.full((self.size, rows), IGNORED, dtype=torch.int64)
        for k, part in enumerate(parts):
            b, w = shapes[k]
            for name in names:
                block[name][k, :b, :w] = part[name]
                block[name][k, b:, :w] = part[name][0]  # filler rows: a real row, attended as it is, label ignored
            labels[k, :b] = part["labels"]
        mask = block["attention_mask"].to(torch.float32)
        block["attention_mask"] = additive_mask(block["attention_mask"])
        to = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        return _Batch({k: to(v) for k, v in block.items()}, to(mask), to(labels),
                      to(torch.tensor([b for b, _ in shapes], dtype=torch.float32)), shapes)

    def step_context(self, indices: Sequence[np.ndarray], weights: torch.Tensor) -> StepContext:
        """The hooks' context for K micro-batches: what a method computes from it is a sum over members, each
        member's part weighted by its `weights` entry (a leaf tensor: d loss / d weights[k] is member k's loss)."""
        batch = self.collate([d.train for d in self.data], indices)
        size, rows, width = batch.mask.shape
        shape = (size, rows, width, self.hidden_size)
        real = (batch.labels != IGNORED).to(torch.float32)  # (K, B): the members' own rows

        def logits(delta: torch.Tensor | None, detach: bool = False) -> torch.Tensor:
            out = self.logits(batch.inputs, None if delta is None else delta.view(shape), detach=detach)
            return out.flatten(0, 1)  # (K * B, classes), member-major like delta and mask

        def example_mean(values: torch.Tensor) -> torch.Tensor:
            means = (values.view(size, rows) * real).sum(1) / batch.rows
            return (means * weights).sum()

        def loss_of(out: torch.Tensor) -> torch.Tensor:
            return example_mean(F.cross_entropy(out, batch.labels.flatten(), reduction="none", ignore_index=IGNORED))

        def draw(sample: Callable[..., torch.Tensor]) -> Callable[[], torch.Tensor]:
            def member_draws() -> torch.Tensor:
                noise = torch.zeros(shape, device=self.device, dtype=torch.float32)
                for k, (b, w) in enumerate(batch.shapes):  # member k's rows, in its one-seed shape, from its generator
                    noise[k, :b, :w] = sample((b, w, self.hidden_size), generator=self.noise[k], device=self.device,
                                              dtype=torch.float32)
                return noise.view(size * rows, width, self.hidden_size)

            return member_draws

        def run_backward(loss: torch.Tensor) -> None:
            (share,) = torch.autograd.grad(loss, weights, retain_graph=True)
            self._backpropagated += share
            loss.backward()

        return StepContext(forward=lambda delta: loss_of(logits(delta)), mask=batch.mask.view(size * rows, width, 1),
                           hidden_size=self.hidden_size, generator=None, logits=logits, loss_of=loss_of,
                           draw_uniform=draw(torch.rand), draw_normal=draw(torch.randn), example_mean=example_mean,
                           run_backward=run_backward)

    # ----------------------------------------------------------------- training
    def train(self, report: EnsembleReport) -> None:
        """Run (or continue) all members to the end; evaluate and report every `eval_every` updates."""
        position = self.states[0]  # every member is at the same place; each state records it
        self.base.train()
        while position.update < self.total_updates:
            batches = [epoch_batches(d.train, self.training, seed, position.epoch)
                       for d, seed in zip(self.data, self.seeds)]
            while position.batch < len(batches[0]) and position.update < self.total_updates:
                groups = [b[position.batch : position.batch + self.training.gradient_accumulation] for b in batches]
                losses = self.update(groups)
                for s, loss in zip(self.states, losses):
                    s.loss_sum += loss
                    s.batch, s.update, s.loss_updates = s.batch + len(groups[0]), s.update + 1, s.loss_updates + 1
                if position.update % self.eval_every == 0 or position.update == self.total_updates:
                    self.evaluate_and_report(report)
            if position.batch >= len(batches[0]):
                for s in self.states:
                    s.epoch, s.batch = s.epoch + 1, 0

    def update(self, groups: list[list[np.ndarray]]) -> list[float]:
        """One optimizer update of every member over its group of micro-batches; each member's logged loss."""
        examples = [sum(len(b) for b in group) for group in groups]
        totals = torch.zeros(self.size, device=self.device)
        for j in range(len(groups[0])):
            indices = [group[j] for group in groups]
            weights = torch.tensor([len(i) / n for i, n in zip(indices, examples)], device=self.device,
                                   requires_grad=True)
            self._backpropagated = torch.zeros(self.size, device=self.device)
            loss = self.method.loss(self.step_context(indices, weights))
            if self.method.runs_backward:  # it called ctx.backward itself: the members' shares of what it did
                losses = self._backpropagated
            else:  # the loss is linear in the weights: its gradient by them is each member's own loss
                (losses,) = torch.autograd.grad(loss, weights, retain_graph=True)
                loss.backward()
            totals += losses.detach() * weights.detach()
        self.clip_gradients()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for throughput, n in zip(self.throughput, examples):
            throughput.train_examples += n
        return totals.tolist()

    def clip_gradients(self) -> None:
        """torch's clip_grad_norm_, member by member: each member's norm over its own parameters."""
        grads = [p.grad for p in self.parameters if p.grad is not None]
        if not grads:
            return
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
        scale = (self.training.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))

    # --------------------------------------------------------------- evaluation
    def evaluate_and_report(self, report: EnsembleReport) -> None:
        started = time.perf_counter()
        predictions = self.predict(self.data[0].dev)
        seconds = time.perf_counter() - started
        accuracies = (predictions == self.data[0].dev.labels[None, :]).mean(axis=1)
        metrics = []
        for k, (state, accuracy) in enumerate(zip(self.states, accuracies)):
            self.throughput[k].dev_eval_seconds += seconds
            self.throughput[k].dev_eval_examples += len(self.data[0].dev)
            member_metrics, improved = record_evaluation(state, float(accuracy), self.updates_per_epoch,
                                                         self.total_updates)
            if improved:
                self.best_weights[k] = self.member_weights(k)
            metrics.append({**member_metrics, "seed": self.seeds[k]})
        report(metrics, self.save)

    def predict(self, split: TokenizedSplit) -> np.ndarray:
        """(K, rows): each member's predicted label of every row of `split`, in row order."""
        was_training = self.base.training
        self.base.eval()
        predictions = np.empty((self.size, len(split)), dtype=np.int64)
        with torch.no_grad():
            for indices in evaluation_batches(split.lengths, self.training.eval_batch_size):
                batch = collate(split, indices, self.pad_id, **padding(self.training, self.device))
                batch.pop("labels")
                batch["attention_mask"] = additive_mask(batch["attention_mask"])
                inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                predictions[:, indices] = self.logits(inputs, None, shared=True).argmax(-1).cpu().numpy()
        self.base.train(was_training)
        return predictions

    def member_weights(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters and buffers, named as in its own model's state_dict, on the CPU."""
        return {name: t[k].detach().to("cpu", copy=True) for name, t in {**self.params, **self.buffers}.items()}

    def restore_best(self) -> None:
        """Every member back to its best-by-dev weights (the models the paper tests)."""
        with torch.no_grad():
            for k, best in enumerate(self.best_weights):
                if best is None:
                    continue
                for name, t in {**self.params, **self.buffers}.items():
                    t[k].copy_(best[name])

    # -------------------------------------------------------------- checkpoints
    def save(self, directory: Path) -> None:
        """The block's resumable state (the loop's file names); state.json last, so a checkpoint without it is
        incomplete."""
        directory = Path(directory)
        torch.save({k: v.detach() for k, v in {**self.params, **self.buffers}.items()}, directory / "model.pt")
        torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), directory / "scheduler.pt")
        if any(best is not None for best in self.best_weights):
            torch.save(self.best_weights, directory / "best_model.pt")
        torch.save(self.rng_states(), directory / "rng.pt")
        (directory / "state.json").write_text(json.dumps({"seeds": list(self.seeds),
                                                          "members": [asdict(s) for s in self.states]}))

    def load(self, directory: Path) -> None:
        """Resume from a checkpoint of these seeds, or of more: members that finished since (their cells were
        written) are left out, every tensor of the others taken along its member dimension."""
        directory = Path(directory)
        state = json.loads((directory / "state.json").read_text())
        saved = state.get("seeds") or []
        if not set(self.seeds) <= set(saved):
            raise ValueError(f"{directory / 'state.json'}: a checkpoint of seeds {saved}, not of this "
                             f"ensemble's {list(self.seeds)}")
        index = [saved.index(seed) for seed in self.seeds]
        members = lambda t: t if index == list(range(len(saved))) else t[index]  # noqa: E731
        load = lambda name: torch.load(directory / name, map_location=self.device, weights_only=True)  # noqa: E731
        with torch.no_grad():
            for name, t in load("model.pt").items():
                {**self.params, **self.buffers}[name].copy_(members(t))
        optimizer = load("optimizer.pt")
        for per_parameter in optimizer["state"].values():  # AdamW's moments are stacked like the parameters
            for key, value in per_parameter.items():
                if torch.is_tensor(value) and value.dim() > 0:
                    per_parameter[key] = members(value)
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(load("scheduler.pt"))
        if (directory / "best_model.pt").exists():
            best = torch.load(directory / "best_model.pt", map_location="cpu", weights_only=True)
            self.best_weights = [best[i] for i in index]
        rng = torch.load(directory / "rng.pt", weights_only=True)
        self.set_rng_states({**rng, "noise": [rng["noise"][i] for i in index]})
        self.states = [LoopState(**state["members"][i]) for i in index]

    def rng_states(self) -> dict[str, Any]:
        states = {"torch": torch.get_rng_state(), "noise": [g.get_state() for g in self.noise]}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def set_rng_states(self, states: dict[str, Any]) -> None:
        torch.set_rng_state(states["torch"])
        for generator, state in zip(self.noise, states["noise"]):
            generator.set_state(state)
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])

    def close(self) -> None:
        if self.injector is not None:
            self.injector.remove()
