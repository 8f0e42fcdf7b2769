"""Ray Tune's scheduling overhead per trial (issue 3).

N short trials (the tiny synthetic world, baseline, N seeds, 4 updates with an evaluation every 2)
run through `run_sweep` on a fresh local Ray (2 CPUs, each trial asking for 2 so that trials run
one at a time, as back to back), against the same trials run back to back in one process with
`run_trial`. Per-trial overhead = (Tune's wall time - back-to-back wall time) / N, with actor reuse
on (the project's default) and off. The back-to-back run is also timed with its `report` saving a
checkpoint as the Tune trainable's does, so that the checkpoints' share of the overhead shows.
Both sides read the same prepared token cache (built before any clock starts).
Usage: python benchmarks/bench_tune_overhead.py [--trials N] [--repeats R] [--repeats-no-reuse R] [--no-append]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import append_section, markdown_table, offline_environment, stopwatch, summarize

offline_environment()
# Tune warns on every forced experiment snapshot (one per checkpoint with num_to_keep=1); timed, not printed.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import yaml  # noqa: E402

HEADING = "## Ray Tune overhead per trial (benchmarks/bench_tune_overhead.py, issue 3)"
NUM_CPUS = 2


def write_sweep(path: Path, world_, root: Path, trials: int, reuse_actors: bool) -> Path:
    config = {
        "experiment": "bench-tune-overhead",
        "task": "pawsx",
        "model": str(world_.model_dir),
        "data": {"source": "tsv", "path": str(world_.tsv_dir("pawsx"))},
        "methods": {"baseline": {}},
        "seeds": trials,
        "training": {"epochs": 1, "learning_rate": 1e-3, "per_device_batch_size": 8, "gradient_accumulation": 1,
                     "eval_every": 2, "max_updates": 4},
        "resources": {"cpu": NUM_CPUS},
        "reuse_actors": reuse_actors,
        "storage": str(root / "runs"),
        "cache_dir": str(root / "cache"),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def prepared_cells(sweep, experiment_dir: str):
    """The sweep's cells with its data fingerprints, the cache entries built (as run_sweep does first)."""
    from sweeper import plan as planning
    from sweeper import preflight
    from sweeper.run import cells_to_prepare, prepare_data_once
    from sweeper.yaml_errors import Where

    resolved = planning.resolve(sweep, experiment_dir)
    inputs = preflight.check_inputs(resolved, Where.of(None))  # the data and tokenizer, read once
    resolved = prepare_data_once(resolved, cells_to_prepare(resolved), io.StringIO(), inputs)
    return planning.grid_cells(resolved, "grid", planning.stage_seeds(sweep, "grid"))


@dataclass(frozen=True)
class SweepTiming:
    """One way of running the N trials; `inside` is the sum of the trials' own total_seconds (trial.json)."""

    wall: float  # the trials' wall time: the run_trial loop, or run_sweep minus its data check
    inside: float
    ray_start_stop: float = 0.0
    data: float = 0.0

    @property
    def outside(self) -> float:
        return self.wall - self.inside


def inside_seconds(experiment_dir: str) -> float:
    """Seconds the trials spent in run_trial (model load to result files), from their trial.json."""
    infos = sorted(Path(experiment_dir, "results").glob("*/seed-*/trial.json"))
    return sum(json.loads(info.read_text())["timings"]["total_seconds"] for info in infos)


def back_to_back(sweep, experiment_dir: str, save_checkpoints: bool) -> SweepTiming:
    """Every cell with run_trial in this process, one after the other."""
    from trainables.trial import quiet_libraries, run_trial

    quiet_libraries()
    specs = [cell.spec for cell in prepared_cells(sweep, experiment_dir)]

    def report(metrics, save) -> None:
        if save_checkpoints:
            with tempfile.TemporaryDirectory() as directory:
                save(Path(directory))

    with stopwatch() as clock:
        for spec in specs:
            run_trial(spec, report)
    return SweepTiming(clock["seconds"], inside_seconds(experiment_dir))


def through_tune(sweep, experiment_dir: str) -> SweepTiming:
    """run_sweep on a fresh local Ray of NUM_CPUS CPUs; Ray's start and stop timed apart."""
    import ray

    from sweeper.run import RunOptions, run_sweep

    with stopwatch() as init:
        ray.init(address="local", num_cpus=NUM_CPUS, include_dashboard=False, log_to_driver=False)
    out = io.StringIO()
    try:
        with stopwatch() as clock:
            code = run_sweep(sweep, RunOptions(experiment_dir, num_cpus=NUM_CPUS, out=out))
    finally:
        with stopwatch() as shutdown:
            ray.shutdown()
    if code != 0:
        raise RuntimeError(f"run_sweep returned {code}:\n{out.getvalue()[-3000:]}")
    data = float(re.search(r"data ready in ([0-9.]+)s", out.getvalue()).group(1))
    return SweepTiming(clock["seconds"] - data, inside_seconds(experiment_dir),
                       init["seconds"] + shutdown["seconds"], data)


WAYS = {  # name -> (function of (sweeps, directory), which repeat count applies)
    "back to back, run_trial, report does nothing": (lambda s, d: back_to_back(s[True], d, False), "repeats"),
    "back to back, run_trial, report saves a checkpoint": (lambda s, d: back_to_back(s[True], d, True), "repeats"),
    "run_sweep through Tune, reuse_actors=on (default)": (lambda s, d: through_tune(s[True], d), "repeats"),
    "run_sweep through Tune, reuse_actors=off": (lambda s, d: through_tune(s[False], d), "repeats_no_reuse"),
}
REFERENCE = "back to back, run_trial, report does nothing"


def measure(world_, root: Path, trials: int, repeats: dict[str, int]) -> dict[str, list[SweepTiming]]:
    """Every way, round-robin, each in a fresh experiment directory."""
    from sweeper.config import load_config

    sweeps = {reuse: load_config(write_sweep(root / f"sweep-reuse{reuse}.yaml", world_, root, trials, reuse))
              for reuse in (True, False)}
    prepared_cells(sweeps[True], str(root / "warm-up"))  # token cache built before any clock starts
    out: dict[str, list[SweepTiming]] = {name: [] for name in WAYS}
    for repeat in range(max(repeats.values())):
        for number, (name, (run, which)) in enumerate(WAYS.items()):
            if repeat < repeats[which]:
                out[name].append(run(sweeps, str(root / f"run-{number}-{repeat}")))
                print(f"repeat {repeat}: {name}: {out[name][-1]}", file=sys.stderr, flush=True)
    return out


def table(results: dict[str, list[SweepTiming]], trials: int) -> str:
    reference = summarize([r.wall for r in results[REFERENCE]], higher_is_better=False).median
    rows = []
    for name, runs in results.items():
        wall = summarize([r.wall for r in runs], higher_is_better=False)
        median = lambda field, runs=runs: statistics.median(getattr(r, field) for r in runs)  # noqa: E731
        with_ray = statistics.median(r.wall + r.ray_start_stop + r.data for r in runs)
        rows.append((name, len(runs), f"{wall.median:.1f} / {wall.best:.1f}", f"{median('inside'):.1f}",
                     f"{median('outside'):.1f}", f"{median('ray_start_stop'):.1f}",
                     f"{(wall.median - reference) / trials:.2f}", f"{(with_ray - reference) / trials:.2f}"))
    header = ("how the trials run", "runs", "trials' wall s (median / best)", "inside run_trial s",
              "outside run_trial s", "ray.init + shutdown s", "overhead per trial s",
              "overhead per trial incl. Ray start/stop s")
    return markdown_table(header, rows, "lrrrrrrr")


def report(results: dict[str, list[SweepTiming]], trials: int) -> str:
    return "\n\n".join([
        f"{trials} trials: tiny synthetic world (PAWS-X, 48 training pairs, 3 languages), baseline with "
        f"{trials} seeds, 4 updates of 8 pairs with an evaluation (and, under Tune, a checkpoint) every 2, tests "
        f"on every language. Local Ray with {NUM_CPUS} CPUs, 2 CPUs per trial so trials run one at a time as back "
        "to back. `trials' wall` is the run_trial loop, or run_sweep minus its data check (fingerprints, cache "
        "look-up); `inside run_trial` sums the trials' own total_seconds (trial.json: model load to result "
        "files); overhead per trial = (wall - first row's wall) / trials, from medians. Runs round-robin.",
        table(results, trials),
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the back-to-back and reuse-on ways")
    parser.add_argument("--repeats-no-reuse", type=int, default=1,
                        help="runs with reuse_actors off (each trial starts a Python process: minutes per run)")
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    from trainables.synthetic import PRESETS, ensure_world

    root = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    try:
        world_ = ensure_world(root / "world", spec=PRESETS["tiny"], seed=0)
        results = measure(world_, root, args.trials,
                          {"repeats": args.repeats, "repeats_no_reuse": args.repeats_no_reuse})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(results, args.trials)
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_tune_overhead.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
