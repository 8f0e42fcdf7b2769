"""One trial: (task, model, method + hyper-parameters, seed) -> result files, as a Ray Tune trainable.

`run_trial` does the work and knows nothing of Ray (tests call it directly); `training_function`
is the Tune function trainable: it reports dev accuracy at every evaluation, with a checkpoint at every
`checkpoint_every`-th, and resumes from `tune.get_checkpoint()` after a failure.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import tempfile
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import torch

from trainables import results
from trainables.cache import TokenCache
from trainables.loop import LoopState, Report, TrainingRun, is_complete_checkpoint, use_bf16
from trainables.methods import Method, build_method
from trainables.prepare import PreparedData, prepare_data
from trainables.spec import TrialSpec, derive_seed
from trainables.tasks import SOURCE_LANGUAGE, get_task

if TYPE_CHECKING:
    from trainables.ensemble import EnsembleReport


def quiet_libraries() -> None:
    """Trials log through Tune; the libraries' progress bars would interleave across trials."""
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(model_name: str, num_labels: int, seed: int) -> tuple[Any, torch.nn.Module]:
    """Tokenizer and classifier from a Hub name or a local directory, the new head seeded by `seed`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_name, num_labels=num_labels, output_loading_info=True
    )
    initialize_missing(model, set(info["missing_keys"]), derive_seed(seed, "head"))
    return tokenizer, model


def initialize_missing(model: torch.nn.Module, missing: set[str], seed: int) -> None:
    """Re-initialise the parameters the checkpoint lacked (the classification head) from `seed` alone.

    transformers initialises them from the global RNG at load time; doing it here with a generator
    of our own makes head initialisation a function of the seed, identical across methods.
    """
    generator = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name not in missing:
                continue
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:  # LayerNorm weight
                param.fill_(1.0)
            else:
                param.copy_(torch.normal(0.0, std, param.shape, generator=generator))


def final_metrics(metrics: Any) -> dict[str, float]:
    """Tune's last report of a trial: best dev accuracy and test accuracy per language pair."""
    table = metrics.to_pandas() if hasattr(metrics, "to_pandas") else metrics
    out: dict[str, float] = {}
    for row in table.itertuples():
        key = "best_dev_accuracy" if row.split == "dev" else f"test/{row.lang1}-{row.lang2}"
        out[key] = float(row.accuracy)
    diagonal = table[(table.split == "test") & (table.lang1 == table.lang2)]
    out["test_avg_accuracy"] = float(diagonal.accuracy.mean())
    out["finished"] = 1.0
    return out


def finished_cell(directory: str, stage: str) -> dict[str, float]:
    """Final metrics of a finished cell; a search-stage seed reused by the final stage is relabelled."""
    metrics = results.read_metrics(directory)
    if stage == "final" and set(metrics.column("stage").to_pylist()) != {"final"}:
        results.restage(directory, "final")
    return final_metrics(metrics)


def evaluation_sets(data: PreparedData) -> list[tuple[str, str, str, Any]]:
    """(split, lang1, lang2, TokenizedSplit) of what the tested weights are scored on: English dev, every test set."""
    return [("dev", SOURCE_LANGUAGE, SOURCE_LANGUAGE, data.dev)] + [
        ("test", l1, l2, split) for (l1, l2), split in data.tests.items()
    ]


def scored(
    sets: list[tuple[str, str, str, Any]], predictions: list[np.ndarray], identity: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Metric rows and prediction tables of one model's predictions on each of `sets`."""
    rows, tables = [], []
    for (split_name, lang1, lang2, split), predicted in zip(sets, predictions):
        accuracy = float((predicted == split.labels).mean())
        rows.append({"split": split_name, "lang1": lang1, "lang2": lang2, "accuracy": accuracy, "n": len(split)})
        tables.append(
            results.predictions_table(identity, split_name, lang1, lang2, split.labels, predicted, split.examples)
        )
    return rows, tables


def evaluate_tests(
    run: TrainingRun, data: PreparedData, identity: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Best-by-dev model on English dev and on every test set: metric rows and prediction tables."""
    sets = evaluation_sets(data)
    return scored(sets, [run.predict(split) for *_, split in sets], identity)


def trial_identity(spec: TrialSpec) -> dict[str, Any]:
    return {
        "experiment": spec.experiment, "task": spec.task, "method": spec.method, "config_id": spec.config_id,
        "config_label": spec.config_label, "epsilon": spec.epsilon, "m": spec.m, "seed": spec.seed,
        "stage": spec.stage,
    }


def prepare_for(spec: TrialSpec, tokenizer: Any, method: Method, raw: Any = None) -> PreparedData:
    task = get_task(spec.task)
    source = spec.data.for_task(task)
    return prepare_data(
        task, source, spec.languages, tokenizer=tokenizer, max_length=spec.training.max_length,
        generalized=spec.generalized, augmentation=method.augmentation,
        augmentation_seed=spec.effective_augmentation_seed, cache=TokenCache(spec.cache_dir),
        fingerprints=spec.data_fingerprints, raw=raw,
    )


def start_trial(spec: TrialSpec, device: torch.device | None) -> torch.device:
    """What every trial does first in its process; returns the device it trains on."""
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    # With reused actors, free the previous trial's tensors before allocating ours, then freeze what
    # survives (the libraries' ~500k long-lived objects) so later collections skip it: 0.2 s per trial.
    gc.collect()
    gc.freeze()
    return device or pick_device()


def run_trial(
    spec: TrialSpec, report: Report, checkpoint_dir: Path | None = None, device: torch.device | None = None
) -> dict[str, float]:
    """Train (or resume), test the best-by-dev weights, write the result files; return final metrics."""
    out_dir = results.cell_dir(spec.experiment_dir, spec.config_id, spec.seed)
    if results.is_complete(out_dir):  # the cell finished before (e.g. Tune re-ran it after a driver kill)
        return finished_cell(out_dir, spec.stage)
    device = start_trial(spec, device)
    timings, trial_started = {}, time.perf_counter()
    tokenizer, model = load_model(spec.model, get_task(spec.task).num_labels, spec.seed)
    method = build_method(spec.method, {**spec.method_options, "cache_dir": spec.cache_dir})
    data = prepare_for(spec, tokenizer, method)
    timings["prepare_seconds"] = time.perf_counter() - trial_started
    run = TrainingRun(model, method, data, spec.training, seed=spec.seed, eval_every=spec.eval_every,
                      pad_id=tokenizer.pad_token_id or 0, device=device)
    if checkpoint_dir is not None:
        run.load(checkpoint_dir)
    started = time.perf_counter()
    run.train(report)
    timings["train_seconds"] = time.perf_counter() - started
    run.restore_best()
    identity = trial_identity(spec)
    started = time.perf_counter()
    rows, predictions = evaluate_tests(run, data, identity)
    timings.update(asdict(run.throughput), test_eval_seconds=time.perf_counter() - started,
                   test_eval_examples=sum(row["n"] for row in rows))
    for row in rows:
        row["best_step"] = run.state.best_update
    metrics = results.metrics_table(identity, rows)
    info = trial_info(spec, method, run.state, (run.total_updates, run.updates_per_epoch), data, device,
                      {**timings, "total_seconds": time.perf_counter() - trial_started})
    results.write_results(out_dir, metrics, pa.concat_tables(predictions), info)
    run.close()
    return final_metrics(metrics)


def run_seed_block(
    spec: TrialSpec, report: EnsembleReport, checkpoint_dir: Path | None = None, device: torch.device | None = None
) -> list[dict[str, float]]:
    """`run_trial` for the seeds of a seed block trained as one ensemble (trainables.ensemble): each member's
    cell gets the files its one-seed trial would write. A member whose cell is complete (a search seed the final
    stage reuses, or one written just before a crash) is neither trained again nor rewritten: the others train as
    an ensemble of their own, resuming from the block's checkpoint.

    Returns each member's final metrics, in the order of `spec.seeds`.
    """
    from trainables.ensemble import EnsembleRun

    members = spec.members()
    cells = [results.cell_dir(m.experiment_dir, m.config_id, m.seed) for m in members]
    finished = {m.seed: finished_cell(cell, m.stage) for m, cell in zip(members, cells) if results.is_complete(cell)}
    pending = [(m, cell) for m, cell in zip(members, cells) if m.seed not in finished]
    if not pending:
        return [finished[m.seed] for m in members]
    device = start_trial(spec, device)
    timings, trial_started = {}, time.perf_counter()
    loaded = [load_model(m.model, get_task(spec.task).num_labels, m.seed) for m, _ in pending]
    tokenizer, models = loaded[0][0], [model for _, model in loaded]
    del loaded  # the ensemble stacks the models; nothing else should keep them alive
    method = build_method(spec.method, {**spec.method_options, "cache_dir": spec.cache_dir})
    shared = not (method.augmentation and spec.augmentation_per_seed)  # the paper: one augmented set for all seeds
    data = [prepare_for(pending[0][0], tokenizer, method)] * len(pending) if shared else \
        [prepare_for(m, tokenizer, method) for m, _ in pending]
    timings["prepare_seconds"] = time.perf_counter() - trial_started
    seeds = tuple(m.seed for m, _ in pending)
    with ensemble_memory_hint(len(pending), device):
        run = EnsembleRun(models, method, data, spec.training, seeds=seeds, eval_every=spec.eval_every,
                          pad_id=tokenizer.pad_token_id or 0, device=device)
        del models
        if checkpoint_dir is not None:
            run.load(checkpoint_dir)
        started = time.perf_counter()
        run.train(report)
    timings["train_seconds"] = time.perf_counter() - started
    run.restore_best()
    started = time.perf_counter()
    sets = evaluation_sets(data[0])
    predicted = [run.predict(split) for *_, split in sets]  # (K, rows) each: every member in one pass
    test_seconds = time.perf_counter() - started
    for k, (member, cell) in enumerate(pending):
        identity = trial_identity(member)
        rows, tables = scored(sets, [predictions[k] for predictions in predicted], identity)
        for row in rows:
            row["best_step"] = run.states[k].best_update
        metrics = results.metrics_table(identity, rows)
        member_timings = {**timings, **asdict(run.throughput[k]), "test_eval_seconds": test_seconds,
                          "test_eval_examples": sum(row["n"] for row in rows), "ensemble_size": len(pending),
                          "total_seconds": time.perf_counter() - trial_started}
        info = trial_info(member, method, run.states[k], (run.total_updates, run.updates_per_epoch), data[k], device,
                          member_timings, ensemble=list(seeds))
        results.write_results(cell, metrics, pa.concat_tables(tables), info)
        finished[member.seed] = final_metrics(metrics)
    run.close()
    return [finished[m.seed] for m in members]


@contextlib.contextmanager
def ensemble_memory_hint(size: int, device: torch.device) -> Iterator[None]:
    """An ensemble holds K models with their gradients and AdamW state: where that does not fit, say which
    settings decide it, rather than leave Tune to retry the same out-of-memory error `max_failures` times."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise torch.cuda.OutOfMemoryError(
            f"a seed ensemble of {size} models (each with its gradients and AdamW state) did not fit on {device}: "
            f"lower execution.seeds_per_trial, or give each trial more of the GPU (resources.gpu). {error}") from error


def trial_info(
    spec: TrialSpec, method: Method, state: LoopState, updates: tuple[int, int], data: PreparedData,
    device: torch.device, timings: Mapping[str, float], ensemble: list[int] | None = None,
) -> dict[str, Any]:
    """The resolved configuration and everything needed to interpret or reproduce the result; `ensemble`: the
    seeds it trained with as one seed ensemble (its timings are then the ensemble's)."""
    import datasets
    import ray
    import transformers

    total, per_epoch = updates
    return {
        "spec": spec.to_dict(),
        "config_id": spec.config_id,
        "config_label": spec.config_label,
        "method": method.describe(),
        "train_data": dict(data.train_info),
        "updates": total,
        "updates_per_epoch": per_epoch,
        "eval_every": spec.eval_every,
        "effective_batch_size": spec.training.effective_batch_size,
        "best_update": state.best_update,
        "best_dev_accuracy": state.best_dev_accuracy,
        "dev_history": state.history,
        **({"ensemble": {"seeds": ensemble}} if ensemble else {}),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "bf16": use_bf16(spec.training.precision, device),
        "timings": dict(timings),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "datasets": datasets.__version__, "ray": ray.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "host": platform.node(),
    }


def training_function(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: `tune.Tuner(tune.with_resources(training_function, ...), ...)`.

    Besides Tune's own state, the cell keeps a status.json next to its results (attempt, host,
    pid, heartbeat with progress, or the error), so that `sweeper status` can tell running,
    failed and done cells apart from the storage alone. A seed block (`seeds`) trains its members as one
    ensemble and keeps every member's cell the same way.
    """
    from ray import tune

    quiet_libraries()
    spec = TrialSpec.from_dict(config)
    members = spec.members()
    cells = [results.cell_dir(m.experiment_dir, m.config_id, m.seed) for m in members]
    block = len(spec.seeds) > 1
    if all(results.is_complete(cell) for cell in cells):
        finals = [finished_cell(cell, m.stage) for cell, m in zip(cells, members)]
        tune.report(results.block_metrics(finals, spec.seeds) if block else finals[0])
        return
    with resumable_directory(tune.get_checkpoint()) as resume_from:
        heartbeats = [Heartbeat(cell, {"attempt": _attempt(cell), "host": platform.node(), "pid": os.getpid(),
                                       "started": time.time(), "resumed_from_checkpoint": resume_from is not None,
                                       "config_label": spec.config_label, "stage": spec.stage,
                                       **({"ensemble": list(spec.seeds)} if block else {})})
                      for cell in cells if not results.is_complete(cell)]
        report = tune_report(spec.checkpoint_every, heartbeats, spec.seeds if block else None)
        try:
            if block:
                final = results.block_metrics(run_seed_block(spec, report, resume_from), spec.seeds)
            else:
                final = run_trial(spec, report, resume_from)
        except SystemExit:  # Tune ending the trial (ASHA, or an interrupted run): the driver records which
            for heartbeat in heartbeats:
                heartbeat.halt()
            raise
        except BaseException as error:
            for heartbeat in heartbeats:
                heartbeat.stop("failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
            raise
    for heartbeat in heartbeats:
        heartbeat.stop("done", progress=1.0)
    tune.report(final)


def _attempt(cell: str) -> int:
    try:
        return (results.read_status(cell) or {}).get("attempt", 0) + 1
    except results.DamagedFile:  # rewritten by the heartbeat; the attempt count starts again
        return 1


def tune_report(checkpoint_every: int, heartbeats: list[Heartbeat], seeds: tuple[int, ...] | None = None) -> Report:
    """The loop's `report` for Tune: metrics at every evaluation, a checkpoint at every `checkpoint_every`-th;
    with `seeds`, the ensemble's (one metrics dict per member, reported as `block_metrics`)."""
    from ray import tune

    def report(metrics: Any, save) -> None:
        if seeds:  # the members training now (a finished member is not among them), each naming its seed
            result = results.block_metrics([{k: v for k, v in m.items() if k != "seed"} for m in metrics],
                                           tuple(int(m["seed"]) for m in metrics))
        else:
            result = metrics
        if result["evaluation"] % checkpoint_every:
            tune.report(result)
        else:
            with tempfile.TemporaryDirectory() as directory:
                save(Path(directory))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))
        for heartbeat in heartbeats:
            heartbeat.beat(progress=result["progress"], update=result["update"], evaluation=result["evaluation"])

    return report


@contextlib.contextmanager
def resumable_directory(checkpoint: Any) -> Iterator[Path | None]:
    """The local folder of Tune's checkpoint; None where there is none or it is incomplete.

    An incomplete one is what `sweeper.recovery` leaves for a trial whose every checkpoint was lost
    with a killed driver: that trial starts over instead of failing for good.
    """
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        complete = is_complete_checkpoint({p.name for p in Path(directory).iterdir()})
        yield Path(directory) if complete else None


class Heartbeat:
    """Keeps the cell's status.json fresh while the trial lives, so a dead trial shows as stale."""

    def __init__(self, cell: str, identity: Mapping[str, Any], every: float = 5.0):
        self.cell, self.identity, self.fields = cell, dict(identity), {"progress": 0.0}
        self._stop = threading.Event()
        self._write("running")
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True, name="heartbeat")
        self._thread.start()

    def _write(self, state: str, **extra: Any) -> None:
        results.write_status(self.cell, state, **self.identity, **self.fields, **extra)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self._write("running")

    def beat(self, **fields: Any) -> None:
        self.fields.update(fields)
        self._write("running")

    def halt(self) -> None:
        """Stop beating, leaving the last word as it was (a stale heartbeat then reads as interrupted)."""
        self._stop.set()
        self._thread.join()

    def stop(self, state: str, **fields: Any) -> None:
        self.halt()
        self.fields.update(fields)
        self._write(state)
