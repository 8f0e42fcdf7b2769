"""What the configured data offers, and where the synthetic world lives: below both the config's checks
and the plan, so that neither has to import the other.
"""

from __future__ import annotations

from pathlib import Path

from sweeper.schema import Sweep
from trainables.tasks import get_task

SYNTHETIC = "synthetic"  # `model: synthetic`, `synonyms: synthetic`: the synthetic world's own files
DEFAULT_WORLD_ROOT = Path("~/.cache/robust-xlt/worlds")


def world_dir(sweep: Sweep) -> Path:
    data = sweep.data
    default = DEFAULT_WORLD_ROOT / f"{data.synthetic_preset}-seed{data.synthetic_seed}"
    return Path(data.path or default).expanduser().resolve()


def world_languages(sweep: Sweep) -> tuple[tuple[str, ...], dict[str, float]]:
    """The synthetic world's languages and distances, without building it."""
    from trainables.synthetic import PRESETS
    from trainables.synthetic.world import language_table

    languages, distances, _ = language_table(PRESETS[sweep.data.synthetic_preset])
    return tuple(languages), dict(distances)


def data_languages(sweep: Sweep) -> tuple[str, ...]:
    """Languages the configured data offers (validation; no download, no world build)."""
    from trainables.data import DataSource, available_languages

    if sweep.data.source == SYNTHETIC:
        return world_languages(sweep)[0]
    if sweep.data.source == "hub":
        return get_task(sweep.task).languages
    return available_languages(get_task(sweep.task), DataSource(sweep.data.source, sweep.data.path))
