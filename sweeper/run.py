"""Run a sweep on Ray Tune, top to bottom: check every input, start or join Ray, claim the experiment
folder, prepare the data once, run the protocol's stages, and say what is left.

The experiment folder's files are `sweeper.experiment`'s, the Tune side `sweeper.tuning`'s, the
stages `sweeper.stages`'s and the choice between configurations `sweeper.selection`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from sweeper import cluster, preflight, tracking
from sweeper import plan as planning
from sweeper.experiment import ExperimentError, check_experiment_dir, claim_experiment_dir, write_experiment_json
from sweeper.schema import Sweep
from sweeper.stages import Interrupted, missing_cells, run_stage, stage_order
from sweeper.tuning import Driver
from sweeper.yaml_errors import Where
from trainables import results

INTERRUPTED = 130


@dataclass(frozen=True)
class RunOptions:
    experiment_dir: str
    resume: bool = False
    address: str | None = None  # None: start an embedded local Ray of our own
    num_cpus: int | None = None
    num_gpus: float | None = None
    out: TextIO = sys.stdout
    config_path: str | Path | None = None  # for file:line in refusals found after loading
    output_given: bool = False  # the folder came from --output (named so in refusals), not from storage
    placement_timeout: float | None = None  # None: 60 s embedded, 900 s on a cluster

    @property
    def location_field(self) -> str:
        """How refusals name the experiment folder's origin."""
        return "--output" if self.output_given else "storage"

    @property
    def placement_seconds(self) -> float:
        if self.placement_timeout is not None:
            return self.placement_timeout
        return cluster.EMBEDDED_PLACEMENT_TIMEOUT_S if self.address is None else cluster.CLUSTER_PLACEMENT_TIMEOUT_S


# ------------------------------------------------------------------------------- data, once
def prepare_data_once(resolved: planning.Resolved, cells: Sequence[planning.Cell], out: TextIO,
                      inputs: preflight.Inputs) -> planning.Resolved:
    """Fingerprint the data read by the checks, and tokenize every variant the cells need, before any trial starts.

    Trials get the fingerprints in their config and only memory-map the cache entries built here.
    """
    from trainables.prepare import fingerprints_of
    from trainables.trial import prepare_for

    started = time.perf_counter()
    raw, tokenizer = inputs.raw, inputs.tokenizer
    resolved = replace(resolved, fingerprints=fingerprints_of(raw))
    variants = data_variants(cells, resolved.fingerprints)
    for number, (spec, method) in enumerate(variants, start=1):
        prepared = prepare_for(spec, tokenizer, method, raw=raw)
        what = spec.config_label if method.augmentation else "train/dev/test"
        changed = prepared.train_info.get("changed_fraction")
        print(f"data {number}/{len(variants)}: {what}: {len(prepared.train)} training pairs"
              + (f", {100 * changed:.1f}% of source pairs changed by the augmentation" if changed is not None else "")
              + (" (tokenized now)" if prepared.built else " (cached)"), file=out, flush=True)
    print(f"data ready in {time.perf_counter() - started:.1f}s", file=out, flush=True)
    return resolved


def data_variants(cells: Sequence[planning.Cell], fingerprints: Mapping[str, str]) -> list[tuple[Any, Any]]:
    """One (spec, method) per distinct training set: every augmentation and its seed, plus the plain data."""
    from trainables.methods import build_method

    variants: dict[Any, tuple[Any, Any]] = {}
    for cell in cells:
        spec = replace(cell.spec, data_fingerprints=dict(fingerprints))
        method = build_method(spec.method, {**spec.method_options, "cache_dir": spec.cache_dir})
        key = None if method.augmentation is None else (
            json.dumps(method.describe(), sort_keys=True), spec.effective_augmentation_seed)
        variants.setdefault(key, (spec, method))
    return list(variants.values())


def cells_to_prepare(resolved: planning.Resolved) -> list[planning.Cell]:
    """Cells whose data the driver tokenizes up front (Optuna samples m later: its trials build it)."""
    sweep = resolved.sweep
    first = planning.first_stage(sweep)
    if sweep.search.algorithm == "grid":
        return planning.grid_cells(resolved, first, planning.stage_seeds(sweep, first))
    return [planning.make_cell(resolved, "baseline", {}, sweep.training.model_dump(), sweep.seed_list[0], first)]


# ---------------------------------------------------------------------- checks before writing
def check_locations(sweep: Sweep, options: RunOptions) -> tuple[Where, str]:
    """Storage and cache can be written, the experiment folder fits the request: the first checks, read-only."""
    where = Where.of(options.config_path)
    located = preflight.check_locations(sweep, options.experiment_dir, where, options.location_field)
    check_experiment_dir(sweep, options.experiment_dir, options.resume)
    return where, located


def check_inputs(resolved: planning.Resolved, options: RunOptions, where: Where) -> preflight.Inputs:
    """Model, synonyms, data, and what the embedded Ray will offer: the checks `run` and `--dry-run` share."""
    inputs = preflight.check_inputs(resolved, where)
    if options.address is None and not cluster.attached():
        cluster.check_embedded(resolved.sweep, options.num_cpus, options.num_gpus, where)
    tracked = tracking.check(resolved.sweep, where)
    return replace(inputs, checked=inputs.checked + tuple(tracked))


def kept_rows_of(inputs: preflight.Inputs) -> dict[str, dict[str, int]] | None:
    """Empty and placeholder sentences per split and language of the data the checks read (None: not read here)."""
    if inputs.raw is None:
        return None
    from trainables.data import kept_rows

    return kept_rows(inputs.raw)


def check_on_ray(sweep: Sweep, options: RunOptions, where: Where, out: TextIO) -> str:
    """Once Ray is up: some node (or node type) can hold a trial; on a cluster, every node sees the storage."""
    cluster.check_placeable(sweep, where, embedded=options.address is None, out=out)
    if options.address is None:
        return "embedded Ray: a trial fits"
    count = cluster.check_storage_seen_by_every_node(options.experiment_dir, where(options.location_field))
    return f"storage {options.experiment_dir}: seen by all {count} node(s); a node can hold a trial"


def run_sweep(sweep: Sweep, options: RunOptions) -> int:
    """The whole experiment; returns 0 when every planned cell is done (or stopped by ASHA), 1 when some
    are not, INTERRUPTED (130, the shell's code for Ctrl+C) when a signal ended it.

    Every input is checked, and Ray started or joined, before the experiment folder is written: a
    refusal leaves the disk as it was, and the same command runs once the input is fixed.
    """
    out = options.out
    where, _ = check_locations(sweep, options)
    resolved = planning.resolve(sweep, options.experiment_dir)
    inputs = check_inputs(resolved, options, where)
    for line in inputs.checked:
        if line.startswith("tracking:"):
            print(line, file=out, flush=True)
    # trials checkpoint at every evaluation; Tune warns about its own snapshot rate at every one of them
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    session = cluster.start(options.address, options.num_cpus, options.num_gpus, out)
    created = False
    try:
        checked = check_on_ray(sweep, options, where, out)
        if options.address is not None:
            print(checked, file=out, flush=True)
        created = claim_experiment_dir(sweep, options.experiment_dir, options.resume)
        write_experiment_json(resolved, kept_rows_of(inputs))
        resolved = prepare_data_once(resolved, cells_to_prepare(resolved), out, inputs)
        driver = Driver(out, options.placement_seconds, options.resume)
        for stage in stage_order(sweep):
            run_stage(resolved, stage, driver)
    except Interrupted as interruption:
        print(f"{interruption}; its state is saved: continue with `python -m sweeper run CONFIG --output "
              f"{options.experiment_dir} --resume`", file=out)
        return INTERRUPTED
    except cluster.PlacementTimeout as timeout:
        raise ExperimentError(f"{where('resources')} {timeout}; {_after_placement_timeout(options, created)}") \
            from None
    finally:
        session.close()
    if sweep.tracking.enabled():
        tracking.log_report(sweep, options.experiment_dir, out)
    missing = missing_cells(options.experiment_dir)
    if missing:
        print(f"{len(missing)} planned cell(s) did not finish; see `python -m sweeper status "
              f"{options.experiment_dir}` and rerun with --resume", file=out)
        return 1
    print(f"all cells done: results in {results.join(options.experiment_dir, 'results')}", file=out)
    return 0


def _after_placement_timeout(options: RunOptions, created: bool) -> str:
    """Undo a claim that produced nothing: the folder this invocation created, while no trial ever started."""
    started = results.exists(results.join(options.experiment_dir, "results"))
    if created and not started and "://" not in options.experiment_dir:
        shutil.rmtree(options.experiment_dir)
        return f"no trial started, so {options.experiment_dir} (created by this run) was removed: fix and run again"
    return (f"nothing is lost: fix resources (or the cluster) and continue with `python -m sweeper run CONFIG "
            f"--output {options.experiment_dir} --resume`")
