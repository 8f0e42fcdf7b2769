"""From a validated sweep to cells: (method, configuration, seed), each a full trial config.

A configuration is a method with all its hyper-parameters; its seed group is the configuration
run over every seed. All methods share the same seeds, so every comparison with the baseline is
paired. The plan is also what `--dry-run` prints, with a device-hour estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from sweeper.schema import Sweep
from sweeper.sources import SYNTHETIC, data_languages, world_dir, world_languages
from trainables.methods import DESCRIPTORS, MethodOptions
from trainables.spec import TrialSpec
from trainables.tasks import get_task


def method_grid(name: str, settings: MethodOptions) -> list[dict[str, Any]]:
    """One option dict per grid point of a method (its descriptor's axis: epsilon or m)."""
    return DESCRIPTORS[name].grid(settings)


@dataclass(frozen=True)
class Resolved:
    """What a sweep runs on, resolved once in the driver (world built, paths absolute)."""

    sweep: Sweep
    experiment_dir: str
    model: str
    data: Mapping[str, Any]  # trainables.spec.DataSource fields
    languages: tuple[str, ...]
    synonyms: str | None
    language_distances: Mapping[str, float] | None = None
    distance_name: str | None = None
    fingerprints: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Cell:
    """One (configuration, seed) of a stage: the TrialSpec its trial runs, from the plan to the trainable."""

    spec: TrialSpec = field(repr=False)
    config_id: str = field(init=False)  # hashed once: the plan and Tune ask for it often

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_id", self.spec.config_id)

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def config_label(self) -> str:
        return self.spec.config_label

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def stage(self) -> str:
        return self.spec.stage

    @property
    def epsilon(self) -> float | None:
        return self.spec.epsilon

    @property
    def m(self) -> int | None:
        return self.spec.m

    def as_plan_row(self) -> dict[str, Any]:
        return {"method": self.method, "config_id": self.config_id, "config_label": self.config_label,
                "epsilon": self.epsilon, "m": self.m, "seed": self.seed, "stage": self.stage}


# ------------------------------------------------------------------------------ data and world
def resolve(sweep: Sweep, experiment_dir: str, *, build_world: bool = True) -> Resolved:
    """Absolute model/data/synonyms locations; the synthetic world is built here if missing."""
    task = get_task(sweep.task)
    languages = tuple(sweep.languages or data_languages(sweep))
    synonyms = sweep.methods.rs_da.synonyms if sweep.methods.rs_da else None
    if sweep.data.source != SYNTHETIC:
        data = {"kind": sweep.data.source, "path": sweep.data.path or task.hub_id, "revision": sweep.data.revision,
                "allow_empty": sweep.data.allow_empty}
        return Resolved(sweep, experiment_dir, sweep.model, data, languages, synonyms)
    world = _world(sweep, build_world)
    layout_dir = world.hub_dir(task) if sweep.data.synthetic_layout == "hub" else world.tsv_dir(task)
    data = {"kind": "local_hub" if sweep.data.synthetic_layout == "hub" else "tsv", "path": str(layout_dir)}
    return Resolved(
        sweep, experiment_dir,
        model=str(world.model_dir) if sweep.model == SYNTHETIC else sweep.model,
        data=data, languages=languages,
        synonyms=str(world.synonyms_path) if synonyms == SYNTHETIC else synonyms,
        language_distances=dict(world.language_distances), distance_name=world.distance_name,
    )


def _world(sweep: Sweep, build: bool) -> Any:
    """The synthetic world; without `build` (dry runs) an existing one or its would-be layout."""
    from trainables.synthetic import PRESETS, World, ensure_world, load_world

    root = world_dir(sweep)
    spec = PRESETS[sweep.data.synthetic_preset]
    if build:
        return ensure_world(root, spec=spec, seed=sweep.data.synthetic_seed)
    try:
        return load_world(root)
    except (OSError, ValueError):
        languages, distances = world_languages(sweep)
        return World(root=root, spec=spec, seed=sweep.data.synthetic_seed, spec_hash="", languages=languages,
                     language_distances=distances, distance_name="(world not built yet)", word_orders={})


# ------------------------------------------------------------------------------------- cells
def training_for(sweep: Sweep, method_config: MethodOptions) -> dict[str, Any]:
    overrides = {k: v for k, v in method_config.training.model_dump().items() if v is not None}
    return {**sweep.training.model_dump(), **overrides}


def configurations(sweep: Sweep) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(method, method options, training) of every grid point, methods in the paper's order.

    The grid is each method's epsilon/m list times the learning rates of `search.space` (if any).
    """
    rates = learning_rate_grid(sweep)
    out = []
    for name, method_config in sweep.methods.enabled().items():
        training = training_for(sweep, method_config)
        for options in method_grid(name, method_config):
            out.extend((name, options, {**training, "learning_rate": lr}) for lr in rates or [training["learning_rate"]])
    return out


def learning_rate_grid(sweep: Sweep) -> list[float]:
    dist = sweep.search.space.get("learning_rate")
    return list(dist.choice) if sweep.search.algorithm == "grid" and dist is not None else []


def trial_config(resolved: Resolved, method: str, options: Mapping[str, Any], training: Mapping[str, Any],
                 seed: int, stage: str) -> dict[str, Any]:
    sweep = resolved.sweep
    if "synonyms" in options and options["synonyms"] == SYNTHETIC:
        options = {**options, "synonyms": resolved.synonyms}
    return {
        "experiment": sweep.experiment,
        "experiment_dir": resolved.experiment_dir,
        "task": sweep.task,
        "model": resolved.model,
        "method": method,
        "seed": seed,
        "data": dict(resolved.data),
        "languages": list(resolved.languages),
        "generalized": sweep.generalized,
        "method_options": dict(options),
        "training": dict(training),
        "augmentation_seed": sweep.augmentation.seed,
        "augmentation_per_seed": sweep.augmentation.per_seed,
        "stage": stage,
        "cache_dir": sweep.cache_dir,
        "num_threads": max(1, math.floor(sweep.resources.cpu)),
        "data_fingerprints": dict(resolved.fingerprints) if resolved.fingerprints is not None else None,
        "checkpoint_every": sweep.checkpoint_every,
    }


def make_cell(resolved: Resolved, method: str, options: Mapping[str, Any], training: Mapping[str, Any],
              seed: int, stage: str) -> Cell:
    return Cell(TrialSpec.from_dict(trial_config(resolved, method, options, training, seed, stage)))


def grid_cells(resolved: Resolved, stage: str, seeds: Sequence[int],
               configs: Sequence[tuple[str, dict, dict]] | None = None) -> list[Cell]:
    """Every configuration times every seed: the paired design."""
    configs = configurations(resolved.sweep) if configs is None else configs
    return [make_cell(resolved, m, o, t, seed, stage) for m, o, t in configs for seed in seeds]


def trials(cells: Sequence[Cell], seeds_per_trial: int) -> list[TrialSpec]:
    """What Tune runs for these cells: each cell alone, or (seeds_per_trial > 1, a method that vectorizes) up to
    that many seeds of one configuration as one seed block, in the cells' order of first seeds."""
    if seeds_per_trial <= 1:
        return [cell.spec for cell in cells]
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.config_id, []).append(cell)
    blocks: list[tuple[int, TrialSpec]] = []
    position = {id(cell): n for n, cell in enumerate(cells)}
    for group in groups.values():
        size = seeds_per_trial if DESCRIPTORS[group[0].method].vectorizes else 1
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            spec = chunk[0].spec if len(chunk) == 1 else replace(chunk[0].spec, seeds=tuple(c.seed for c in chunk))
            blocks.append((position[id(chunk[0])], spec))
    return [spec for _, spec in sorted(blocks, key=lambda b: b[0])]


def stage_seeds(sweep: Sweep, stage: str) -> list[int]:
    seeds = sweep.seed_list
    return seeds[: sweep.selection.search_seeds] if stage == "search" else seeds


def first_stage(sweep: Sweep) -> str:
    return "search" if sweep.selection.protocol == "two_stage" else "grid"


# --------------------------------------------------------------------------------- estimate
@dataclass(frozen=True)
class Sizes:
    train: int
    dev: int
    test: int  # per language (pair)


def data_sizes(resolved: Resolved, raw: Any = None) -> Sizes:
    """Pairs per split: counted in `raw` (the data the checks read), else from the Hub or preset sizes."""
    sweep = resolved.sweep
    task = get_task(sweep.task)
    if raw is not None:
        return Sizes(len(raw.train), len(raw.dev), len(raw.test[resolved.languages[0]]))
    if sweep.data.source == "hub":
        return Sizes(**task.hub_sizes)
    if sweep.data.source == SYNTHETIC:
        from trainables.synthetic import PRESETS

        spec = PRESETS[sweep.data.synthetic_preset]
        return Sizes(spec.train_size, spec.dev_size, spec.test_size)
    from trainables.data import DataSource, load_split

    source = DataSource(resolved.data["kind"], resolved.data["path"])
    count = lambda split, lang: len(load_split(task, source, split, lang))  # noqa: E731
    return Sizes(count("train", "en"), count("dev", "en"), count("test", resolved.languages[0]))


def trial_hours(cell_method: str, options: Mapping[str, Any], training: Mapping[str, Any], sizes: Sizes,
                test_sets: int, sweep: Sweep, rates: Any) -> float:
    """Device-hours of one trial at `rates` (sweeper.throughput.Rates: per full device or CPU trial)."""
    cost = DESCRIPTORS[cell_method].cost(options)
    train_examples = sizes.train * cost.examples * training["epochs"]
    if training.get("max_updates"):
        train_examples = min(train_examples, training["max_updates"] * training["per_device_batch_size"]
                             * training["gradient_accumulation"])
    compute = train_examples * cost.passes
    updates = train_examples / (training["per_device_batch_size"] * training["gradient_accumulation"])
    eval_every = training.get("eval_every") or get_task(sweep.task).eval_every
    evaluations = math.ceil(updates / eval_every) + 1
    evaluated = evaluations * sizes.dev + test_sets * sizes.test
    seconds = compute / rates.train_examples_per_second
    seconds += evaluated / rates.eval_examples_per_second
    return seconds / 3600


def _expected_value(dist: Any) -> float:
    """A representative value of a searched parameter, for the estimate only."""
    if dist.choice is not None:
        return sum(dist.choice) / len(dist.choice)
    low, high = dist.loguniform or dist.uniform
    return (low + high) / 2


def describe(resolved: Resolved, raw: Any = None, rates: Callable[[Any], Any] | None = None) -> str:
    """The --dry-run plan: trials per method and configuration, seeds, totals, device-hours, and where the
    throughput behind them comes from. `rates` maps a sweeper.throughput.Wanted to Rates (default: looked
    up beside the experiment, see sweeper.throughput)."""
    from sweeper import throughput
    from trainables.prepare import evaluation_pairs
    from trainables.spec import trains_in_bf16

    sweep = resolved.sweep
    rates = rates or throughput.lookup(resolved)
    device_type = "cuda" if sweep.resources.gpu > 0 else "cpu"
    sources: dict[str, list[str]] = {}
    sizes = data_sizes(resolved, raw)
    test_sets = len(evaluation_pairs(resolved.languages, sweep.generalized))
    first = first_stage(sweep)
    seeds = stage_seeds(sweep, first)
    device = "GPU" if sweep.resources.gpu > 0 else "CPU-trial"
    lines = [
        f"experiment {sweep.experiment}: task {sweep.task}, model {resolved.model}",
        f"data {resolved.data['kind']}:{resolved.data['path']} ({sizes.train} train / {sizes.dev} dev / "
        f"{sizes.test} test pairs); languages {', '.join(resolved.languages)}"
        + (f"; generalized {len(resolved.languages)}x{len(resolved.languages)} matrix" if sweep.generalized else ""),
        f"protocol {sweep.selection.protocol}, search {sweep.search.algorithm}; seeds {sweep.seed_list}",
        f"resources per trial: {sweep.resources.cpu:g} CPU, {sweep.resources.gpu:g} GPU",
        "",
        f"{'stage':<7} {'method':<10} {'configuration':<28} {'seeds':>5} {'trials':>6} {device + '-hours':>12}",
    ]
    total_trials, total_hours = 0, 0.0
    for stage, method, label, options, training, n_seeds, n_configs in _plan_rows(sweep, first, seeds):
        wanted = throughput.Wanted(resolved.model, sweep.task, device_type == "cuda",
                                   trains_in_bf16(training["precision"], device_type))
        used = rates(wanted)
        sources.setdefault(_rate_line(used), []).append(method)
        hours = trial_hours(method, options, training, sizes, test_sets, sweep, used) * n_seeds * n_configs
        trials = n_seeds * n_configs
        total_trials, total_hours = total_trials + trials, total_hours + hours
        lines.append(f"{stage:<7} {method:<10} {label:<28} {n_seeds:>5} {trials:>6} {hours:>12.2f}")
    lines += [
        "",
        f"total: {total_trials} trials, about {total_hours:.1f} {device}-hours",
    ]
    per_trial = sweep.execution.seeds_per_trial
    if per_trial > 1:
        together = [m for m in sweep.methods.enabled() if DESCRIPTORS[m].vectorizes]
        alone = [m for m in sweep.methods.enabled() if not DESCRIPTORS[m].vectorizes]
        blocks = sum(math.ceil(n_seeds / (per_trial if method in together else 1)) * n_configs
                     for _, method, _, _, _, n_seeds, n_configs in _plan_rows(sweep, first, seeds))
        lines.append(f"execution: up to {per_trial} seeds per trial as one seed ensemble ({', '.join(together) or 'none'}"
                     + (f"; one seed per trial: {', '.join(alone)}" if alone else "")
                     + f"): {blocks} Tune trials; the hours above are one-seed trials' (what an ensemble saves "
                       "depends on the device: benchmarks/bench_mbert_throughput.py)")
    for line, methods in sources.items():
        named = "" if len(sources) == 1 else f" ({', '.join(dict.fromkeys(methods))})"
        lines.append(f"throughput{named}: {line}")
    return "\n".join(lines)


def _rate_line(rates: Any) -> str:
    return (f"{rates.train_examples_per_second:.4g} training and {rates.eval_examples_per_second:.4g} evaluation "
            f"examples/s, {rates.source}")


def _plan_rows(sweep: Sweep, first: str, seeds: Sequence[int]) -> list[tuple]:
    rows = []
    for method, method_config in sweep.methods.enabled().items():
        training = training_for(sweep, method_config)
        if sweep.search.algorithm == "optuna":
            options = dict(method_grid(method, method_config)[0])
            for key in ("epsilon", "m"):
                if key in sweep.search.space and key in options:
                    options[key] = _expected_value(sweep.search.space[key])
            label = f"{method} (Optuna: {', '.join(sweep.search.space)})"
            rows.append((first, method, label, options, training, len(seeds), sweep.search.num_samples))
        else:
            for options in method_grid(method, method_config):
                for lr in learning_rate_grid(sweep) or [None]:
                    label = config_label_of(method, options) + (f" lr={lr:g}" if lr is not None else "")
                    rows.append((first, method, label, options, training, len(seeds), 1))
        if first == "search":
            extra = len(sweep.seed_list) - len(seeds)
            rows.append(("final", method, f"{method} (best of search)", rows[-1][3], training, extra, 1))
    return rows


def config_label_of(method: str, options: Mapping[str, Any]) -> str:
    from trainables.spec import config_label

    return config_label(method, options)
