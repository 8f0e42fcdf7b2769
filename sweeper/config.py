"""Loading a sweep file, at the edge: read, parse, validate, make paths absolute, check against the data.

Every refusal names the file, the line and the field, says what is allowed, and happens before
Ray starts (`load_config` raises `ConfigError`; the CLI turns it into exit code 2). Paths in the
file are taken relative to the current directory and made absolute here: trials run in folders
of their own. The models are in `sweeper.schema`, the YAML and its messages in `sweeper.yaml_errors`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from sweeper.schema import Sweep
from sweeper.sources import SYNTHETIC, data_languages
from sweeper.yaml_errors import ConfigError, Where, constructed, explain, parsed, read_text, yaml_problem
from trainables.tasks import SOURCE_LANGUAGE


def load_config(path: str | Path) -> Sweep:
    """Read and validate a sweep file; ConfigError names file, line and field on any problem."""
    path = Path(path)
    text = read_text(path)
    root = parsed(path, text)
    try:
        sweep = Sweep.model_validate(constructed(root))
    except ValidationError as err:
        raise ConfigError(explain(path, root, err)) from None
    except yaml.YAMLError as err:  # composes, but does not construct (an unknown !tag)
        raise ConfigError(yaml_problem(path, err)) from None
    return _checked_against_data(path, root, _absolute_paths(sweep))


def _absolute(value: str | None) -> str | None:
    if value is None or "://" in value:
        return value
    return str(Path(value).expanduser().resolve())


def is_local_model(model: str) -> bool:
    """A model given as a folder (which exists, or is written like a path) rather than a Hub id."""
    if Path(model).expanduser().exists():
        return True
    return model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1 or "\\" in model


def _absolute_paths(sweep: Sweep) -> Sweep:
    data = sweep.data
    if data.source != "hub":
        data = data.model_copy(update={"path": _absolute(data.path)})
    methods = sweep.methods
    if methods.rs_da is not None and "://" not in methods.rs_da.synonyms and methods.rs_da.synonyms != SYNTHETIC:
        methods = methods.model_copy(update={"rs_da": methods.rs_da.model_copy(
            update={"synonyms": _absolute(methods.rs_da.synonyms)})})
    model = _absolute(sweep.model) if is_local_model(sweep.model) else sweep.model  # trials run elsewhere
    return sweep.model_copy(update={"data": data, "methods": methods, "storage": _absolute(sweep.storage),
                                    "cache_dir": _absolute(sweep.cache_dir), "model": model})


def _checked_against_data(path: Path, root: yaml.Node, sweep: Sweep) -> Sweep:
    """Refuse languages the data does not have and local files that do not exist, before Ray starts."""
    where = Where(path, root)
    _check_local_data(sweep, where)
    _check_synthetic_references(sweep, where)
    _check_synonyms_file(sweep, where)
    _check_languages(sweep, where)
    return sweep


def _check_local_data(sweep: Sweep, where: Where) -> None:
    if sweep.data.source not in ("local_hub", "tsv"):
        return
    directory = Path(sweep.data.path)
    if not directory.is_dir():
        problem = "is a file, not a directory" if directory.exists() else "directory not found"
        raise ConfigError(f"{where('data.path')} {problem}: {directory}")


def _check_synthetic_references(sweep: Sweep, where: Where) -> None:
    references = {"model": sweep.model == SYNTHETIC,
                  "methods.rs_da.synonyms": bool(sweep.methods.rs_da and sweep.methods.rs_da.synonyms == SYNTHETIC)}
    for field, used in references.items():
        if used and sweep.data.source != SYNTHETIC:
            raise ConfigError(f"{where(field)} {SYNTHETIC!r} refers to the synthetic world's files and needs "
                              f"data.source 'synthetic' (got {sweep.data.source!r})")


def _check_synonyms_file(sweep: Sweep, where: Where) -> None:
    rs_da = sweep.methods.rs_da
    if rs_da is not None and rs_da.synonyms != SYNTHETIC and "://" not in rs_da.synonyms \
            and not Path(rs_da.synonyms).is_file():
        raise ConfigError(f"{where('methods.rs_da.synonyms')} file not found: {rs_da.synonyms}")


def _check_languages(sweep: Sweep, where: Where) -> None:
    from trainables.data import DataError

    try:
        available = data_languages(sweep)
    except DataError as err:
        raise ConfigError(f"{where('data.path')} {err}") from None
    unknown = [lang for lang in sweep.languages or [] if lang not in available]
    if unknown:
        raise ConfigError(f"{where('languages')} unknown language(s) {unknown} for task {sweep.task!r} with "
                          f"data.source {sweep.data.source!r}; allowed: {', '.join(available)}")
    if sweep.languages is not None and SOURCE_LANGUAGE not in sweep.languages:
        raise ConfigError(f"{where('languages')} must include the source language {SOURCE_LANGUAGE!r} "
                          "(English dev selects the model and English test is reported)")
