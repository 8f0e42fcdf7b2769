"""`python -m sweeper status DIR`: every expected cell as done, stopped, running, failed or missing.

The state comes from the cells' own files, not from Tune's snapshot (which lags): a cell is done
when its metrics.parquet exists; otherwise its status.json says running (with a heartbeat that a
live trial refreshes every few seconds) or failed (with the error). A running cell whose heartbeat
stopped was killed with its driver or node: it is shown as failed (interrupted). A cell that ASHA
ended early on purpose is stopped (the driver leaves a stopped.json): it has no results, and no rerun.
A cell whose files a crash, a full disk or a partial copy left unreadable is damaged (the file is
named; `run --resume` trains it again), and the listing goes on with the other cells.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import pandas as pd

from trainables import results

STATES = ("done", "stopped", "running", "failed", "damaged", "missing")


def cell_state(directory: str, stale_after: float, now: float) -> tuple[str, str]:
    """(state, detail) of one cell folder."""
    try:
        return _cell_state(directory, stale_after, now)
    except results.DamagedFile as damaged:
        return "damaged", str(damaged)


def _cell_state(directory: str, stale_after: float, now: float) -> tuple[str, str]:
    state, detail = results.metrics_state(directory)
    if state != "missing":
        return state, detail
    stopped = results.read_stopped(directory)
    if stopped is not None:
        best = stopped.get("best_dev_accuracy")
        return "stopped", f"early by {stopped.get('by')} after evaluation {stopped.get('evaluation')}" + \
            (f" (best dev {best:.3f})" if isinstance(best, (int, float)) else "")
    status = results.read_status(directory)
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


def known_cells(experiment_dir: str) -> pd.DataFrame:
    """The plan's cells plus any cell folder found on storage (Optuna samples its configurations).

    `attrs["warnings"]` says when plan.json could not be read (the cells then come from storage only).
    """
    plan, problem = read_plan(experiment_dir)
    rows = [dict(c) for c in plan["cells"]]
    seen = {(r["config_id"], r["seed"]) for r in rows}
    for found in cells_on_storage(experiment_dir):
        if (found["config_id"], found["seed"]) not in seen:
            rows.append(found)
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    frame.attrs["warnings"] = [f"{problem}: planned cells unknown, showing the cells found under results/"] \
        if problem else []
    return frame


def cells_on_storage(experiment_dir: str) -> list[dict[str, Any]]:
    """Every cell folder with a status.json or metrics.parquet: method, config_id, config_label, seed and the
    stage it trained in (from status.json; '?' where that is missing or damaged)."""
    fs, root = results.filesystem(results.join(experiment_dir, "results"))
    selector = results.pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for info in fs.get_file_info(selector):
        if not (info.base_name in (results.STATUS, results.METRICS) and info.path[len(root):].count("/") == 3):
            continue
        try:
            config_id, seed = results.cell_key(info.path)
        except ValueError:  # a folder not named seed-<n>: not ours
            continue
        try:
            status = results.read_status(results.cell_dir(experiment_dir, config_id, seed)) or {}
        except results.DamagedFile:
            status = {}
        found[(config_id, seed)] = {"method": config_id.rsplit("-", 1)[0], "config_id": config_id,
                                    "config_label": status.get("config_label", config_id),
                                    "seed": seed, "stage": status.get("stage", "?")}
    return list(found.values())


def status_table(experiment_dir: str, stale_after: float = 120.0, now: float | None = None) -> pd.DataFrame:
    cells = known_cells(experiment_dir)
    now = time.time() if now is None else now
    states = [cell_state(results.cell_dir(experiment_dir, c, s), stale_after, now)
              for c, s in zip(cells.config_id, cells.seed)]
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
