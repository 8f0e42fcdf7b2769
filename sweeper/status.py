"""`python -m sweeper status DIR`: every expected cell as done, stopped, running, failed or missing.

The state comes from the cells' own files, not from Tune's snapshot (which lags): a cell is done
when its metrics.parquet exists; otherwise its status.json says running (with a heartbeat that a
live trial refreshes every few seconds) or failed (with the error). A running cell whose heartbeat
stopped was killed with its driver or node: it is shown as failed (interrupted). A cell that ASHA
ended early on purpose is stopped (the driver leaves a stopped.json): it has no results, and no rerun.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import pandas as pd

from trainables import results

STATES = ("done", "stopped", "running", "failed", "missing")


def cell_state(directory: str, stale_after: float, now: float) -> tuple[str, str]:
    """(state, detail) of one cell folder."""
    if results.is_complete(directory):
        return "done", ""
    stopped = results.read_stopped(directory)
    if stopped is not None:
        return "stopped", f"early by {stopped.get('by')} after evaluation {stopped.get('evaluation')} " \
                          f"(best dev {stopped.get('best_dev_accuracy', float('nan')):.3f})"
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


def known_cells(experiment_dir: str) -> pd.DataFrame:
    """The plan's cells plus any cell folder found on storage (Optuna samples its configurations)."""
    plan = json.loads(results.read_bytes(f"{experiment_dir}/plan.json")) if results.exists(
        f"{experiment_dir}/plan.json") else {"cells": []}
    rows = [dict(c) for c in plan["cells"]]
    seen = {(r["config_id"], r["seed"]) for r in rows}
    for found in cells_on_storage(experiment_dir):
        if (found["config_id"], found["seed"]) not in seen:
            rows.append(found)
    return pd.DataFrame(rows, columns=["method", "config_id", "config_label", "epsilon", "m", "seed", "stage"])


def cells_on_storage(experiment_dir: str) -> list[dict[str, Any]]:
    """Every cell folder with a status.json: method, config_id, config_label, seed and the stage it trained in."""
    fs, root = results.filesystem(f"{experiment_dir}/results")
    selector = results.pafs.FileSelector(root, recursive=True, allow_not_found=True)
    out = []
    for info in fs.get_file_info(selector):
        if info.is_file and info.base_name == results.STATUS:
            config_id, seed = results.cell_key(info.path)
            status = results.read_status(results.cell_dir(experiment_dir, config_id, seed))
            out.append({"method": config_id.rsplit("-", 1)[0], "config_id": config_id,
                        "config_label": status.get("config_label", config_id),
                        "seed": seed, "stage": status.get("stage", "?")})
    return out


def status_table(experiment_dir: str, stale_after: float = 120.0, now: float | None = None) -> pd.DataFrame:
    cells = known_cells(experiment_dir)
    now = time.time() if now is None else now
    states = [cell_state(results.cell_dir(experiment_dir, c, s), stale_after, now)
              for c, s in zip(cells.config_id, cells.seed)]
    cells["state"] = [state for state, _ in states]
    cells["detail"] = [detail for _, detail in states]
    return cells


def render_status(table: pd.DataFrame, experiment_dir: str) -> str:
    """Per seed group: each seed's state; then the totals."""
    lines = [f"experiment {experiment_dir}"]
    for (stage, label), group in table.groupby(["stage", "config_label"], sort=False):
        done = (group.state == "done").sum()
        lines.append(f"  [{stage}] {label}: {done}/{len(group)} seeds done")
        for row in group.sort_values("seed").itertuples():
            lines.append(f"      seed {row.seed:>3}  {row.state:<8} {row.detail}".rstrip())
    counts: Mapping[str, int] = table.state.value_counts().to_dict()
    lines.append("total: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES) + f" of {len(table)} cells")
    return "\n".join(lines)
