"""A stage of the protocol (grid; or search, then final) run to its end, or refused to go on from.

The two-stage protocol searches with a few seeds (stage `search`, Optuna and ASHA allowed), picks
each method's best configuration by mean English dev accuracy, and runs it with all seeds (stage
`final`). Each stage is one Tune experiment under `<experiment_dir>/tune-<stage>[-<method>]`; the
cells' own result folders are the source of truth for what is done.
"""

from __future__ import annotations

from typing import Any

from sweeper import plan as planning
from sweeper.experiment import add_to_plan, read_plan
from sweeper.schema import Sweep
from sweeper.selection import chosen_configuration, select_configurations
from sweeper.tuning import Driver, asha_scheduler, cells_of, run_grid, run_optuna
from trainables import results


def stage_order(sweep: Sweep) -> list[str]:
    return ["search", "final"] if sweep.selection.protocol == "two_stage" else ["grid"]


def run_stage(resolved: planning.Resolved, stage: str, driver: Driver) -> None:
    sweep = resolved.sweep
    seeds = planning.stage_seeds(sweep, stage)
    scheduler = asha_scheduler(sweep) if stage == "search" else None
    if sweep.search.algorithm == "optuna" and stage != "final":
        for method in sweep.methods.enabled():
            add_to_plan(resolved.experiment_dir, sweep.experiment, optuna=[
                {"method": method, "stage": stage, "configurations": sweep.search.num_samples, "seeds": seeds}])
            ended(run_optuna(resolved, method, stage, seeds, driver, scheduler), f"{stage} of {method}")
        return
    if stage == "final":
        chosen = select_configurations(resolved.experiment_dir, "search")
        configs = [chosen_configuration(resolved.experiment_dir, cid) for cid in chosen.values()]
    else:
        configs = None
    cells = _seed_major(planning.grid_cells(resolved, stage, seeds, configs))
    add_to_plan(resolved.experiment_dir, sweep.experiment, cells)
    ended(run_grid(resolved, f"tune-{stage}", cells, driver, scheduler), stage)


class Interrupted(Exception):
    """Tune stopped a stage on a signal (Ctrl+C) and saved its state; later stages must not start."""


def ended(grid: Any, stage: str) -> None:
    """Refuse to go on from a stage that Tune left with trials neither finished, failed nor stopped by ASHA.

    Tune marks every trial terminated when a signal ends the run, so the trials' own last reports tell:
    only a finished trial's carries `finished`.
    """
    unfinished = [r for r in grid if r.error is None and "finished" not in (r.metrics or {})
                  and not (r.config and all(_stopped(c) for c in cells_of(r.config)))]  # no config: never started
    if unfinished:
        raise Interrupted(f"the {stage} stage was interrupted with {len(unfinished)} trial(s) unfinished")


def _stopped(directory: str) -> bool:
    try:
        return results.read_stopped(directory) is not None
    except results.DamagedFile:
        return False


def _seed_major(cells: list[planning.Cell]) -> list[planning.Cell]:
    """Run seed 0 of every configuration first: early results cover every method."""
    return sorted(cells, key=lambda c: c.seed)


def missing_cells(experiment_dir: str) -> list[dict[str, Any]]:
    """Planned cells with neither results nor ASHA's stop."""
    plan = read_plan(experiment_dir)
    directories = [results.cell_dir(experiment_dir, c["config_id"], c["seed"]) for c in plan["cells"]]
    return [c for c, d in zip(plan["cells"], directories) if not results.is_complete(d) and not _stopped(d)]
