"""Which configuration of each method goes on to the final stage, from the cells' own result files
(the rule itself is `analysis.selection`'s, shared with the report)."""

from __future__ import annotations

import json
from typing import Any

from analysis.selection import choose_configurations
from sweeper.experiment import ExperimentError
from sweeper.status import cells_on_storage
from trainables import results


def _files_named(uri: str, name: str) -> list[tuple[Any, str]]:
    """(filesystem, path) of every file called `name` below `uri`."""
    fs, root = results.filesystem(uri)
    selector = results.pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return [(fs, info.path) for info in fs.get_file_info(selector) if info.is_file and info.base_name == name]


def finished_cells(experiment_dir: str) -> Any:
    """The English dev row of every finished cell (from the cells' own files; damaged ones are not finished)."""
    import pandas as pd

    tables = [table for fs, path in _files_named(results.join(experiment_dir, "results"), results.METRICS)
              if (table := _readable_table(fs, path)) is not None]
    if not tables:
        return pd.DataFrame(columns=results.METRICS_SCHEMA.names)
    frame = pd.concat(tables, ignore_index=True)
    return frame[frame.split == "dev"]


def _readable_table(fs: Any, path: str) -> Any:
    """A metrics file as a DataFrame; None when damaged (such a cell is not finished: it trains again)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, filesystem=fs).to_pandas()
    except (pa.ArrowException, OSError):
        return None


def select_configurations(experiment_dir: str, stage: str = "search") -> dict[str, str]:
    """Each method's configuration with the best mean English dev accuracy over its seeds."""
    dev = finished_cells(experiment_dir)
    trained_in = training_stages(experiment_dir)
    dev = dev[[trained_in.get((c, s)) == stage for c, s in zip(dev.config_id, dev.seed)]]
    stopped = {results.cell_key(path)[0]
               for _, path in _files_named(results.join(experiment_dir, "results"), results.STOPPED)}
    return best_configurations(dev, stopped)


def training_stages(experiment_dir: str) -> dict[tuple[str, int], str]:
    """(config_id, seed) -> the stage the cell was trained in, from its status.json.

    Not the results' own stage column: a chosen search seed is relabelled `final` when the final stage
    reuses it, and selection (again, on --resume) must still see it among the search results.
    """
    return {(cell["config_id"], cell["seed"]): cell["stage"] for cell in cells_on_storage(experiment_dir)}


def best_configurations(dev: Any, stopped: set[str]) -> dict[str, str]:
    """method -> config_id chosen from the finished seeds' dev `accuracy`, by the rule the report's tables
    use (`analysis.selection`: best mean; ties: more seeds, then smaller id; ASHA-stopped ones only where
    every configuration of the method was stopped)."""
    chosen = choose_configurations(dev, within=("method",), score="accuracy", stopped=stopped)
    return dict(zip(chosen["method"], chosen["config_id"]))


def chosen_configuration(experiment_dir: str, config_id: str) -> tuple[str, dict, dict]:
    """(method, options, training) of a finished configuration, from one of its cells' trial.json."""
    for fs, path in _files_named(results.join(experiment_dir, "results", config_id), results.TRIAL_INFO):
        with fs.open_input_stream(path) as stream:
            try:
                spec = json.loads(stream.read())["spec"]
                return spec["method"], spec["method_options"], spec["training"]
            except (ValueError, KeyError, TypeError):  # a damaged copy: another seed's will do
                continue
    raise ExperimentError(f"{experiment_dir}: no readable trial.json for configuration {config_id}")
