"""`python -m sweeper status DIR`: every expected cell as done, stopped, running, failed or missing.

The state comes from the cells' own files, not from Tune's snapshot (which lags): a cell is done
when its metrics.parquet exists; otherwise its status.json says running (with a heartbeat that a
live trial refreshes every few seconds) or failed (with the error). A running cell whose heartbeat
stopped was killed with its driver or node: it is shown as failed (interrupted). A cell that ASHA
ended early on purpose is stopped (the driver leaves a stopped.json): it has no results, and no rerun.
A cell whose files a crash, a full disk or a partial copy left unreadable is damaged (the file is
named; `run --resume` trains it again), and the listing goes on with the other cells.

On S3 every request waits tens of milliseconds, and the full protocol has thousands of cells: one recursive
listing of results/ says which files each cell has, and only the reads that remain (a done cell's metrics
footer, another's stopped.json or status.json) are made, on a bounded thread pool.
"""

from __future__ import annotations

import time
from typing import Any, Collection, Mapping

import pandas as pd

from trainables import results

STATES = ("done", "stopped", "running", "failed", "damaged", "missing")
DONE_WITHOUT_RESULTS = "status 'done' without results"  # or the cell finished after the listing: listed again


def cell_state(directory: str, stale_after: float, now: float) -> tuple[str, str]:
    """(state, detail) of one cell folder (listed now; `status_table` lists the whole experiment once)."""
    return listed_cell_state(results.CellFiles.listed(directory), stale_after, now)


def listed_cell_state(cell: results.CellFiles, stale_after: float, now: float) -> tuple[str, str]:
    """(state, detail) of a cell from what a listing found in it and the reads that remain."""
    try:
        state = _cell_state(cell, stale_after, now)
        if state[1] == DONE_WITHOUT_RESULTS and results.METRICS not in cell.found:  # it finished after the listing
            state = _cell_state(results.CellFiles.listed(cell.directory), stale_after, now)
        return state
    except results.DamagedFile as damaged:
        return "damaged", str(damaged)


def _cell_state(cell: results.CellFiles, stale_after: float, now: float) -> tuple[str, str]:
    state, detail = cell.metrics_state()
    if state != "missing":
        return state, detail
    stopped = cell.read_json(results.STOPPED)
    if stopped is not None:
        best = stopped.get("best_dev_accuracy")
        return "stopped", f"early by {stopped.get('by')} after evaluation {stopped.get('evaluation')}" + \
            (f" (best dev {best:.3f})" if isinstance(best, (int, float)) else "")
    status = cell.read_status()
    if status is None:
        return "missing", ""
    if status["state"] == "failed":
        return "failed", f"attempt {status.get('attempt')}: {status.get('error', '')}"
    if status["state"] == "running" and now - status["updated"] <= stale_after:
        return "running", f"{100 * status.get('progress', 0.0):.0f}% (attempt {status.get('attempt')}, " \
                          f"{status.get('host')} pid {status.get('pid')})"
    if status["state"] == "running":
        return "failed", f"interrupted: no heartbeat for {now - status['updated']:.0f}s (attempt {status.get('attempt')})"
    return "missing", f"status {status['state']!r} without results"


PLAN_COLUMNS = ["method", "config_id", "config_label", "epsilon", "m", "seed", "stage"]


def read_plan(experiment_dir: str) -> tuple[dict[str, Any], str | None]:
    """plan.json (empty when absent) and, when it cannot be read, why (the plan is then taken as empty)."""
    uri = results.join(experiment_dir, "plan.json")
    try:
        plan = results.read_json(uri) or {}
        cells = plan.get("cells", [])
        if not isinstance(cells, list) or not all(isinstance(c, dict) and {"config_id", "seed"} <= set(c)
                                                  for c in cells):
            raise results.DamagedFile(uri, "its cells are not a list of {config_id, seed, ...} objects")
    except results.DamagedFile as damaged:
        return {"cells": [], "optuna": []}, str(damaged)
    return {**plan, "cells": cells, "optuna": plan.get("optuna", [])}, None


def known_cells(experiment_dir: str, listed: Mapping[tuple[str, int], results.CellFiles] | None = None) -> pd.DataFrame:
    """The plan's cells plus any cell folder found on storage (Optuna samples its configurations).

    `listed` is `results.listed_cells`' (listed now when not given). `attrs["warnings"]` says when plan.json could
    not be read (the cells then come from storage only).
    """
    plan, problem = read_plan(experiment_dir)
    rows = [dict(c) for c in plan["cells"]]
    seen = {(r["config_id"], r["seed"]) for r in rows}
    rows += cells_on_storage(experiment_dir, listed, skip=seen)
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    frame.attrs["warnings"] = [f"{problem}: planned cells unknown, showing the cells found under results/"] \
        if problem else []
    return frame


def cells_on_storage(experiment_dir: str, listed: Mapping[tuple[str, int], results.CellFiles] | None = None,
                     skip: Collection[tuple[str, int]] = ()) -> list[dict[str, Any]]:
    """Every cell folder with a status.json or metrics.parquet (but those in `skip`): method, config_id,
    config_label, seed and the stage it trained in (from status.json; '?' where that is missing or damaged)."""
    listed = results.listed_cells(experiment_dir)[1] if listed is None else listed
    keys = [key for key, cell in sorted(listed.items()) if key not in skip
            and (results.STATUS in cell.found or results.METRICS in cell.found)]
    found = []
    for (config_id, seed), status in zip(keys, results.parallel_map(_status_or_nothing, [listed[k] for k in keys])):
        found.append({"method": config_id.rsplit("-", 1)[0], "config_id": config_id,
                      "config_label": status.get("config_label", config_id), "seed": seed,
                      "stage": status.get("stage", "?")})
    return found


def _status_or_nothing(cell: results.CellFiles) -> dict[str, Any]:
    try:
        return cell.read_status() or {}
    except results.DamagedFile:
        return {}


def status_table(experiment_dir: str, stale_after: float = 120.0, now: float | None = None) -> pd.DataFrame:
    """Every known cell's state: one listing of results/, then the reads that remain, in parallel."""
    fs, listed = results.listed_cells(experiment_dir)
    cells = known_cells(experiment_dir, listed)
    now = time.time() if now is None else now

    def state(key: tuple[str, int]) -> tuple[str, str]:
        cell = listed.get(key) or results.CellFiles(results.cell_dir(experiment_dir, *key), fs, {})
        return listed_cell_state(cell, stale_after, now)

    states = results.parallel_map(state, zip(cells.config_id, cells.seed))
    cells["state"] = [state for state, _ in states]
    cells["detail"] = [detail for _, detail in states]
    return cells


def render_status(table: pd.DataFrame, experiment_dir: str) -> str:
    """Per seed group: each seed's state; then the totals (and what could not be read)."""
    lines = [f"experiment {experiment_dir}"] + [f"warning: {w}" for w in table.attrs.get("warnings", [])]
    for (stage, label), group in table.groupby(["stage", "config_label"], sort=False):
        done = (group.state == "done").sum()
        lines.append(f"  [{stage}] {label}: {done}/{len(group)} seeds done")
        for row in group.sort_values("seed").itertuples():
            lines.append(f"      seed {row.seed:>3}  {row.state:<8} {row.detail}".rstrip())
    counts: Mapping[str, int] = table.state.value_counts().to_dict()
    lines.append("total: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES) + f" of {len(table)} cells")
    return "\n".join(lines)
