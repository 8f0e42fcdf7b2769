"""Where `--dry-run`'s device-hours come from (`estimate: auto`).

A throughput figure nobody measured is a guess, so the figures are looked up in this order and the
estimate says which one it used: (1) finished trials of the same model, task, device kind and precision
in the experiments beside this one (their trial.json timings), (2) figures recorded by
`benchmarks/bench_mbert_throughput.py` on a model of the same shape (`sweeper/throughput.json`), and
only then (3) the constants under `Estimate`, labelled as assumptions. Explicit figures under
`estimate:` are used as given.

Rates are per full device (a trial that held 0.5 GPU counts twice its own rate: the device ran two) or,
for CPU trials, per trial. Training rates count forward+backward passes over one example, so a method
costing several passes (ADV's PGD) divides them, as `plan.trial_hours` does.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

MAX_TRIALS = 60  # trial.json files read per matching experiment: a median needs few, S3 charges each
RECORDED = Path(__file__).with_name("throughput.json")


@dataclass(frozen=True)
class Rates:
    train_examples_per_second: float
    eval_examples_per_second: float
    source: str  # printed beside the estimate


@dataclass(frozen=True)
class Wanted:
    """What the planned trials run on: figures from other runs count only where all of this matches."""

    model: str
    task: str
    gpu: bool
    bf16: bool


ASSUMED = Rates(250.0, 2000.0, "assumed, not measured (no finished trial or recorded benchmark matches); "
                "give measured figures under `estimate:`")


# ------------------------------------------------------------------ (1) finished trials
def trial_rates(info: Mapping[str, Any], gpu_fraction: float) -> tuple[float, float] | None:
    """(train, eval) examples/s of one finished trial from its trial.json, per full device; None when its
    timings predate the throughput counters or cannot give a rate."""
    from trainables.methods import DESCRIPTORS

    timings, spec = info.get("timings") or {}, info.get("spec") or {}
    needed = ("train_examples", "train_seconds", "dev_eval_seconds", "dev_eval_examples", "test_eval_seconds",
              "test_eval_examples")
    if not all(isinstance(timings.get(k), (int, float)) for k in needed) or spec.get("method") not in DESCRIPTORS:
        return None
    passes = DESCRIPTORS[spec["method"]].cost(spec.get("method_options") or {}).passes
    train_time = timings["train_seconds"] - timings["dev_eval_seconds"]
    eval_time = timings["dev_eval_seconds"] + timings["test_eval_seconds"]
    if timings["train_examples"] <= 0 or train_time <= 0 or eval_time <= 0:
        return None
    share = 1.0 / gpu_fraction if info.get("device") != "cpu" and 0 < gpu_fraction < 1 else 1.0
    # a member of a seed ensemble: its timings are the ensemble's, which trained and evaluated every member
    share *= timings.get("ensemble_size", 1) if isinstance(timings.get("ensemble_size"), int) else 1
    train = timings["train_examples"] * passes / train_time * share
    evaluated = (timings["dev_eval_examples"] + timings["test_eval_examples"]) / eval_time * share
    return train, evaluated


def from_trials(infos: Iterable[tuple[Mapping[str, Any], float]], wanted: Wanted) -> Rates | None:
    """The median rates of the matching trials among (trial.json, GPU fraction) pairs."""
    rates, devices = [], Counter()
    for info, fraction in infos:
        on_gpu = info.get("device") not in (None, "cpu")
        if on_gpu != wanted.gpu or bool(info.get("bf16")) != wanted.bf16:
            continue
        measured = trial_rates(info, fraction)
        if measured is not None:
            rates.append(measured)
            devices[str(info.get("device"))] += 1
    if not rates:
        return None
    where = ", ".join(f"{n} on {device}" for device, n in devices.most_common())
    per = "per full device" if wanted.gpu else "per CPU trial"
    return Rates(statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates),
                 f"measured: median of {len(rates)} finished trial(s) of this model and task "
                 f"({where}; {'bf16' if wanted.bf16 else 'fp32'}), {per}")


def finished_trials(roots: Iterable[str], model: str, task: str) -> list[tuple[dict[str, Any], float]]:
    """(trial.json, GPU fraction) of finished trials in the experiments under `roots` that ran `model` on
    `task`. Unreadable experiments are passed over: an old damaged folder must not stop a plan."""
    import pyarrow.fs as pafs
    import yaml

    from trainables import results

    found: list[tuple[dict[str, Any], float]] = []
    for root in dict.fromkeys(roots):
        try:
            fs, path = results.filesystem(root)
            entries = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except (OSError, ValueError):
            continue
        for entry in entries:
            if entry.type != pafs.FileType.Directory:
                continue
            experiment = results.join(root, entry.base_name)
            try:
                described = results.read_json(results.join(experiment, "experiment.json")) or {}
                if described.get("model") != model or described.get("task") != task:
                    continue
                sweep = yaml.safe_load(results.read_bytes(results.join(experiment, "sweep.yaml"))) or {}
                fraction = float((sweep.get("resources") or {}).get("gpu", 0) or 0)
                listing = fs.get_file_info(pafs.FileSelector(f"{entry.path}/results", recursive=True,
                                                             allow_not_found=True))
                files = sorted((i for i in listing if i.base_name == "trial.json"),
                               key=lambda i: i.mtime_ns or 0, reverse=True)[:MAX_TRIALS]
                names = {i.path.rsplit("/", 1)[0] for i in listing if i.base_name == "metrics.parquet"}
                for info in files:
                    if info.path.rsplit("/", 1)[0] not in names:  # not finished
                        continue
                    with fs.open_input_stream(info.path) as stream:
                        found.append((json.loads(stream.read()), fraction))
            except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
                continue
    return found


# ------------------------------------------------------------------ (2) recorded benchmark figures
def from_recorded(records: Iterable[Mapping[str, Any]], wanted: Wanted) -> Rates | None:
    """The newest benchmark record of this model shape, task shape, device kind and precision."""
    matching = [r for r in records
                if r.get("model") == wanted.model and r.get("task") == wanted.task
                and (r.get("device") != "cpu") == wanted.gpu and r.get("precision") == ("bf16" if wanted.bf16 else "fp32")]
    if not matching:
        return None
    r = max(matching, key=lambda r: r.get("measured", ""))
    return Rates(float(r["train_examples_per_second"]), float(r["eval_examples_per_second"]),
                 f"recorded by {r.get('command', 'benchmarks/bench_mbert_throughput.py')} on {r['device']} "
                 f"({r.get('measured', 'undated')}; a randomly initialised model of this shape, "
                 f"{r.get('setting', 'one trial')})")


def recorded_figures(path: Path = RECORDED) -> list[dict[str, Any]]:
    try:
        return list(json.loads(path.read_text()).get("records", []))
    except (OSError, ValueError, AttributeError):
        return []


# ------------------------------------------------------------------ the chain
def rates_for(estimate: Any, wanted: Wanted, trials: Iterable[tuple[Mapping[str, Any], float]],
              records: Iterable[Mapping[str, Any]]) -> Rates:
    """The figures one plan row's device-hours use, with their source; a figure given under `estimate:`
    replaces the looked-up one."""
    found = from_trials(trials, wanted) or from_recorded(records, wanted) or ASSUMED
    train, evaluated = estimate.train_examples_per_second, estimate.eval_examples_per_second
    if train is not None and evaluated is not None:
        return Rates(train, evaluated, "given under `estimate:`")
    if train is None and evaluated is None:
        return found
    which = "training" if train is not None else "evaluation"
    return Rates(train or found.train_examples_per_second, evaluated or found.eval_examples_per_second,
                 f"{which} rate given under `estimate:`; the other {found.source}")


def lookup(resolved: Any) -> Callable[[Wanted], Rates]:
    """`rates_for` over the experiments beside this one (and under `storage:`), read once per dry run."""
    from trainables import results

    location, _ = results.split_query(resolved.experiment_dir)
    parent = location.rstrip("/").rsplit("/", 1)[0] if "/" in location.rstrip("/") else "."
    _, query = results.split_query(resolved.experiment_dir)
    roots = [f"{parent}?{query}" if query else parent, resolved.sweep.storage]
    trials = finished_trials(roots, resolved.model, resolved.sweep.task)
    records = recorded_figures()
    cache: dict[Wanted, Rates] = {}

    def rates(wanted: Wanted) -> Rates:
        if wanted not in cache:
            cache[wanted] = rates_for(resolved.sweep.estimate, wanted, trials, records)
        return cache[wanted]
    return rates
