"""The sweep file as YAML: read, parse and construct it, and turn every problem into one line naming
file, line and field (`ConfigError`). The node tree is kept for line numbers, also for refusals found
after validation (`Where`).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from sweeper.schema import FieldError, Sweep


class ConfigError(ValueError):
    """A configuration file that cannot be run; the message names file, line and field."""


# libyaml's parser where PyYAML was built with it: a multi-megabyte file given by mistake parses in a
# second instead of half a minute; the YAML is parsed once, its nodes kept for line numbers.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_CONFIG_BYTES = 1 << 20  # a sweep configuration is a few kilobytes


def composed(text: str) -> yaml.Node | None:
    loader = LOADER(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def constructed(root: yaml.Node) -> Any:
    loader = LOADER("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_text(path: Path) -> str:
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the sweep's YAML file (e.g. configs/pawsx.yaml)")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration ({err.strerror or err})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(raw) / 2**20:.1f} MiB is far larger than a sweep configuration "
                          "(a few kB): is it the right file? (see configs/ for examples)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - raw.rfind(b"\n", 0, err.start)
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {column}); "
                          "save the file as UTF-8") from None


def parsed(path: Path, text: str) -> yaml.MappingNode:
    """The YAML node tree (for line numbers), refusing what PyYAML would accept but we cannot run."""
    try:
        root = composed(text)
    except yaml.YAMLError as err:
        raise ConfigError(yaml_problem(path, err)) from None
    if not isinstance(root, yaml.MappingNode):
        got = "nothing (the file is empty)" if root is None else f"a {type(root).__name__[:-4].lower()}"
        line = root.start_mark.line + 1 if root is not None else 1
        raise ConfigError(f"{path}:{line}: expected a mapping of settings (`key: value` lines) at the top level, "
                          f"got {got}")
    duplicate = _duplicate_key(root, [])
    if duplicate is not None:
        location, first, again = duplicate
        raise ConfigError(f"{path}:{again}: {_field_name(location)}: given twice (first at line {first}); "
                          "YAML would silently keep the last")
    return root


# Problems PyYAML notices only on the line after the fault (a key without its colon, a quote or
# bracket never closed): the fault is where the construct it was reading began.
_NOTICED_LATER = ("could not find expected ':'", "found unexpected end of stream", "expected ',' or '}'",
                  "expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected ',' or ']'")


def yaml_problem(path: Path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return f"{path}: not valid YAML: {err}"
    context_mark = getattr(err, "context_mark", None)
    problem = err.problem or "invalid YAML"
    if context_mark is not None and context_mark.line < mark.line and problem.startswith(_NOTICED_LATER):
        return (f"{path}:{context_mark.line + 1}: not valid YAML: {problem} ({err.context} that starts here; "
                f"noticed at line {mark.line + 1})")
    context = f" ({err.context} at line {context_mark.line + 1})" if err.context and context_mark else ""
    return f"{path}:{mark.line + 1}: not valid YAML: {problem}{context}"


def _duplicate_key(node: yaml.Node, location: list) -> tuple[list, int, int] | None:
    """(location, first line, repeated line) of the first key given twice in one mapping."""
    children: list[tuple[list, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else repr(key.value)
            if name in seen:
                return [*location, name], seen[name], key.start_mark.line + 1
            seen[name] = key.start_mark.line + 1
            children.append(([*location, name], value))
    elif isinstance(node, yaml.SequenceNode):
        children = [([*location, index], value) for index, value in enumerate(node.value)]
    for child_location, child in children:
        found = _duplicate_key(child, child_location)
        if found is not None:
            return found
    return None


SHOWN_PROBLEMS = 10  # a file that is not a sweep config at all (a JSON table passed by mistake) has thousands


def explain(path: Path, root: yaml.Node, err: ValidationError) -> str:
    """One line per problem: file:line: field: message (allowed values where known); the first few only."""
    count = err.error_count()
    lines = [f"{path}: invalid configuration ({count} problem(s))"]
    for problem in err.errors()[:SHOWN_PROBLEMS]:
        location = _location(problem)
        lines.append(f"  {path}:{line_of(root, location)}: {_field_name(location)}: {_message(problem, location)}")
    if count > SHOWN_PROBLEMS:
        lines.append(f"  ... and {count - SHOWN_PROBLEMS} more; is {path.name} a sweep configuration? "
                     "(see configs/ for examples)")
    return "\n".join(lines)


def _location(problem: Mapping[str, Any]) -> list:
    """Pydantic's location without union tags, extended by a FieldError's own field."""
    location = [p for p in problem["loc"] if not (isinstance(p, str) and "[" in p)]
    error = problem.get("ctx", {}).get("error")
    return location + list(error.location) if isinstance(error, FieldError) else location


def _field_name(location: Sequence[str | int]) -> str:
    """`methods.adv.epsilon[1]`: dotted settings, list positions in brackets."""
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in location).lstrip(".")
    return name or "(top level)"


def _message(problem: Mapping[str, Any], location: list) -> str:
    kind, value = problem["type"], problem.get("input")
    if kind == "extra_forbidden":
        model = _model_at(location[:-1])
        allowed = ", ".join(model.model_fields) if model else "see README"
        return f"unknown setting {location[-1]!r}; allowed: {allowed}"
    if kind == "missing":
        return "required setting is missing"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", problem["ctx"]["expected"])
        return f"unknown value {value!r}; allowed: {', '.join(allowed)}"
    message = problem["msg"].removeprefix("Value error, ")
    scalar = value is None or isinstance(value, (str, int, float))
    return f"{message} (got {value!r})" if kind != "value_error" and scalar else message


def _model_at(location: list) -> type[BaseModel] | None:
    """The model whose settings live at `location` (list positions and dict keys passed over)."""
    model: type[BaseModel] | None = Sweep
    skip_key = False
    for part in location:
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        skip_key = typing.get_origin(field.annotation) is dict
        model = _submodel(field.annotation)
    return model


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = (_submodel(arg) for arg in typing.get_args(annotation))
    return next((model for model in found if model is not None), None)


def line_of(root: yaml.Node, location: list) -> int:
    """1-based line of the deepest YAML node on `location` (the parent key for a missing one)."""
    node, line = root, root.start_mark.line + 1
    for part in location:
        child = None
        if isinstance(node, yaml.MappingNode):
            key, child = next(((k, v) for k, v in node.value if k.value == str(part)), (None, None))
            line = (key.start_mark.line + 1) if key is not None else line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


@dataclass(frozen=True)
class Where:
    """`file:line: field:` prefixes for refusals found after validation (e.g. against the machine)."""

    path: Path | None
    root: yaml.Node | None

    @classmethod
    def of(cls, path: str | Path | None) -> "Where":
        """The locator of a config file already validated by `load_config` (None: fields without lines)."""
        if path is None:
            return cls(None, None)
        return cls(Path(path), composed(Path(path).read_text()))

    def __call__(self, field: str) -> str:
        if field.startswith("--") or self.path is None:  # a command-line option, or no file
            return f"{field}:"
        return f"{self.path}:{line_of(self.root, field.split('.'))}: {field}:"
