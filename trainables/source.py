"""Where a task's data lives: the one data-source value of the trial spec, the plan and the loaders.

Light on purpose (no datasets, no pyarrow): the trial spec and the sweep schema import it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

DATA_KINDS = ("hub", "local_hub", "tsv")  # each has a loader in trainables.data.LOADERS


class DataError(ValueError):
    """Bad or missing data; the message names the file and line, or dataset/config/split and row."""


@dataclass(frozen=True)
class DataSource:
    """`kind` selects the loader; the sweep config calls it `data.source` (which also offers `synthetic`,
    resolved to `local_hub` or `tsv` by the plan)."""

    kind: str = "hub"
    path: str | None = None  # Hub id or directory (absolute recommended); None: the task's Hub id
    revision: str | None = None  # Hub revision (commit/tag), hub only
    allow_empty: bool = False

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise DataError(f"unknown data source kind {self.kind!r}; allowed: {', '.join(DATA_KINDS)}")
        if self.path is not None and not str(self.path).strip():
            raise DataError(f"data source of kind {self.kind!r} needs a path (Hub id or directory)")
        if self.revision is not None and self.kind != "hub":
            raise DataError(f"revision is only meaningful for kind 'hub', not {self.kind!r}")

    def for_task(self, task: Any) -> "DataSource":
        """The same source with the task's Hub id where no path was given."""
        if self.path is not None:
            return self
        if self.kind != "hub":
            raise DataError(f"data source of kind {self.kind!r} needs a path (a directory)")
        return replace(self, path=task.hub_id)
