"""The sweep configuration: YAML validated once, at the edge, into frozen typed models.

Every refusal names the file, the line and the field, says what is allowed, and happens before
Ray starts (`load_config` raises `ConfigError`; the CLI turns it into exit code 2). Paths in the
file are taken relative to the current directory and made absolute here: trials run in folders
of their own.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from trainables.spec import INJECTION_POINTS
from trainables.tasks import SOURCE_LANGUAGE, TASKS

DEFAULT_SYNONYMS = "https://raw.githubusercontent.com/uclanlp/Robust-XLT/master/counterfitted_neighbors.json"
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ConfigError(ValueError):
    """A configuration file that cannot be run; the message names file, line and field."""


class FieldError(ValueError):
    """A cross-field refusal that names the field it is about (relative to the model raising it)."""

    def __init__(self, location: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.location = tuple(location)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _not_boolean(value: Any) -> Any:
    """YAML reads true/false/yes/no as booleans, which pydantic would quietly take as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    return value


Integer = Annotated[int, BeforeValidator(_not_boolean)]
Number = Annotated[float, BeforeValidator(_not_boolean)]
PositiveInt = Annotated[Integer, Field(ge=1)]
Seed = Annotated[Integer, Field(ge=0)]  # numpy's generators refuse negative seeds
Probability = Annotated[Number, Field(gt=0, le=1)]
LearningRate = Annotated[Number, Field(gt=0, lt=1)]


class Training(Strict):
    """Defaults from the paper's (XTREME's) scripts; see README, "Training"."""

    epochs: PositiveInt = 3
    learning_rate: LearningRate = 2e-5
    per_device_batch_size: PositiveInt = 8
    gradient_accumulation: PositiveInt = 4
    max_length: Annotated[Integer, Field(ge=8, le=4096)] = 128
    weight_decay: Annotated[Number, Field(ge=0)] = 0.0
    adam_epsilon: Annotated[Number, Field(gt=0)] = 1e-8
    max_grad_norm: Annotated[Number, Field(gt=0)] = 1.0
    warmup_ratio: Annotated[Number, Field(ge=0, lt=1)] = 0.0
    eval_every: PositiveInt | None = None
    eval_batch_size: PositiveInt = 64
    freeze_word_embeddings: bool = False
    length_grouping: bool = True
    padding: Literal["dynamic", "max_length"] = "dynamic"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_updates: PositiveInt | None = None


class TrainingOverride(Strict):
    """Per-method changes to the training hyper-parameters (e.g. the paper's RS-DA epochs)."""

    epochs: PositiveInt | None = None
    learning_rate: LearningRate | None = None
    max_updates: PositiveInt | None = None


def _listify(value: Any) -> Any:
    """`epsilon: 0.1` means the one-point grid [0.1]."""
    return value if isinstance(value, list) or value is None else [value]


def _duplicates(values: Sequence[Any]) -> list[Any]:
    return sorted({v for i, v in enumerate(values) if v in values[:i]}, key=values.index)


def _nonempty_unique(values: list, what: str) -> list:
    if not values:
        raise ValueError(f"{what} grid is empty: give at least one value")
    if _duplicates(values):
        raise ValueError(f"{what} grid has duplicates {_duplicates(values)}: each value once")
    return values


class MethodBase(Strict):
    training: TrainingOverride = TrainingOverride()


class Baseline(MethodBase):
    pass


class EpsilonMethod(MethodBase):
    epsilon: list[Number] | None = None  # required unless search.space.epsilon samples it
    injection: Literal[INJECTION_POINTS] = "word_embeddings"  # type: ignore[valid-type]

    _one_point_grid = field_validator("epsilon", mode="before")(_listify)

    @field_validator("epsilon")
    @classmethod
    def _positive(cls, values: list[float] | None) -> list[float] | None:
        for eps in _nonempty_unique(values, "epsilon") if values is not None else ():
            if not eps > 0 or not math.isfinite(eps):
                raise ValueError(f"epsilon must be a finite number > 0 (an L-inf radius), got {eps}")
        return values


class Adversarial(EpsilonMethod):
    pgd_steps: PositiveInt = 1
    pgd_alpha: Annotated[Number, Field(gt=0)] | None = None
    pgd_random_start: bool = True


class RandomPerturbation(EpsilonMethod):
    pass


class CopiesMethod(MethodBase):
    m: list[Integer] | None = None  # required unless search.space.m samples it
    keep_original: bool = False

    _one_point_grid = field_validator("m", mode="before")(_listify)

    @field_validator("m")
    @classmethod
    def _at_least_one(cls, values: list[int] | None) -> list[int] | None:
        for m in _nonempty_unique(values, "m") if values is not None else ():
            if m < 1:
                raise ValueError(f"m (augmented copies per example) must be >= 1, got {m}")
        return values


class SynonymAugmentation(CopiesMethod):
    synonyms: str = DEFAULT_SYNONYMS


class SyntaxAugmentation(CopiesMethod):
    swap_probability: Probability = 0.1


class Methods(Strict):
    baseline: Baseline | None = None
    adv: Adversarial | None = None
    rs_rp: RandomPerturbation | None = None
    rs_da: SynonymAugmentation | None = None
    rs_syntax: SyntaxAugmentation | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> "Methods":
        if not self.enabled():
            raise ValueError(f"no method enabled; allowed: {', '.join(Methods.model_fields)} "
                             "(enable one with `baseline: {}`: a bare `baseline:` is null and leaves it off)")
        return self

    def enabled(self) -> dict[str, MethodBase]:
        return {name: getattr(self, name) for name in Methods.model_fields if getattr(self, name) is not None}


class Data(Strict):
    source: Literal["hub", "local_hub", "tsv", "synthetic"] = "hub"
    path: str | None = None  # Hub id (default: the task's), a directory, or the synthetic world's folder
    revision: str | None = None
    allow_empty: bool = False
    synthetic_preset: Literal["demo", "tiny"] = "demo"
    synthetic_seed: Seed = 0
    synthetic_layout: Literal["hub", "tsv"] = "hub"

    @model_validator(mode="after")
    def _consistent(self) -> "Data":
        if self.source in ("local_hub", "tsv") and not self.path:
            raise FieldError(["path"], f"required with data.source {self.source!r} (the data's directory)")
        if self.revision is not None and self.source != "hub":
            raise FieldError(["revision"], f"only meaningful with data.source 'hub' (got {self.source!r}): "
                                           "pin a local directory's version yourself")
        return self


class Resources(Strict):
    cpu: Annotated[Number, Field(gt=0)] = 1.0
    gpu: Annotated[Number, Field(ge=0)] = 0.0

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError(f"gpu must be a fraction of one GPU (0 < gpu <= 1) or a whole number, got {gpu}")
        return gpu


class Distribution(Strict):
    loguniform: tuple[Number, Number] | None = None
    uniform: tuple[Number, Number] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Distribution":
        given = [k for k in ("loguniform", "uniform", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform: [low, high], uniform: [low, high], choice: [...]"
                             + (f" (got {', '.join(given)})" if given else ""))
        bounds = self.loguniform or self.uniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise FieldError([given[0]], f"low must be < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise FieldError(["loguniform"], f"bounds must be > 0, got {list(self.loguniform)}")
        if self.choice is not None and not self.choice:
            raise FieldError(["choice"], "needs at least one value")
        return self

    def values(self) -> list[Any]:
        """The values a check can see: the choices, or the two bounds of a range."""
        return list(self.choice) if self.choice is not None else list(self.loguniform or self.uniform or ())


SEARCHABLE = {"learning_rate": None, "epsilon": ("adv", "rs_rp"), "m": ("rs_da", "rs_syntax")}


@dataclass(frozen=True)
class Domain:
    """What a searched parameter may take: the same values its grid or training field accepts."""

    low: float  # exclusive
    high: float  # exclusive
    integer: bool
    meaning: str

    def admits(self, value: Any) -> bool:
        numeric = _is_integer(value) or (isinstance(value, float) and not self.integer)
        return numeric and math.isfinite(value) and self.low < value < self.high


SEARCH_DOMAINS: Mapping[str, Domain] = {
    "learning_rate": Domain(0.0, 1.0, False, "numbers in (0, 1)"),
    "epsilon": Domain(0.0, math.inf, False, "finite numbers > 0 (an L-inf radius)"),
    "m": Domain(0.0, math.inf, True, "whole numbers >= 1 (augmented copies per example)"),
}


def _domain_problem(name: str, dist: Distribution) -> str | None:
    domain = SEARCH_DOMAINS[name]
    if domain.integer and dist.choice is None:
        return f"{name} takes {domain.meaning}: sample it with choice: [...], not a range"
    outside = [v for v in dist.values() if not domain.admits(v)]
    return f"{name} takes {domain.meaning}, got {outside}" if outside else None


class Search(Strict):
    algorithm: Literal["grid", "optuna"] = "grid"
    num_samples: PositiveInt | None = None  # Optuna: configurations per method
    space: dict[str, Distribution] = {}
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> "Search":
        for name, dist in self.space.items():
            if name not in SEARCHABLE:
                raise FieldError(["space", name], f"unknown parameter {name!r}; allowed: {', '.join(SEARCHABLE)}")
            problem = _domain_problem(name, dist)
            if problem:
                raise FieldError(["space", name], problem)
        if self.algorithm == "optuna":
            self._optuna_complete()
        else:
            self._grid_space()
        return self

    def _grid_space(self) -> None:
        """A grid may add learning-rate values (`choice`); epsilon and m grids belong to the methods."""
        if self.num_samples is not None:
            raise FieldError(["num_samples"], "search.num_samples is for search.algorithm 'optuna'")
        for name, dist in self.space.items():
            if name != "learning_rate" or dist.choice is None:
                raise FieldError(["space", name], "with search.algorithm 'grid' only learning_rate: {choice: [...]} "
                                 "may be given here (epsilon and m grids go under methods)")

    def _optuna_complete(self) -> None:
        needs = {"space": f"the parameters to sample, some of {', '.join(SEARCHABLE)}",
                 "num_samples": "how many configurations to sample per method"}
        for field, meaning in needs.items():
            if not getattr(self, field):
                raise FieldError([field], f"search.algorithm 'optuna' needs search.{field} ({meaning})")


class Asha(Strict):
    grace_period: PositiveInt = 1  # evaluations before a trial may be stopped
    reduction_factor: Annotated[Number, Field(gt=1)] = 3.0


class Selection(Strict):
    protocol: Literal["paper", "two_stage"] = "paper"
    search_seeds: PositiveInt = 3  # two_stage: seeds per configuration in the search stage


class Augmentation(Strict):
    seed: Seed = 0
    per_seed: bool = False  # False (the paper): one augmented set shared by all training seeds


class Estimate(Strict):
    """Throughput assumed by --dry-run's GPU-hour estimate (calibrate from trial.json timings)."""

    train_examples_per_second: Annotated[Number, Field(gt=0)] = 250.0
    eval_examples_per_second: Annotated[Number, Field(gt=0)] = 2000.0


class Sweep(Strict):
    experiment: str
    task: Literal[tuple(TASKS)]  # type: ignore[valid-type]
    model: str = "bert-base-multilingual-cased"
    data: Data = Data()
    languages: list[str] | None = None
    generalized: bool = False
    methods: Methods
    seeds: PositiveInt | list[Seed] = 10
    training: Training = Training()
    augmentation: Augmentation = Augmentation()
    resources: Resources = Resources()
    search: Search = Search()
    asha: Asha | None = None
    selection: Selection = Selection()
    storage: str = "runs"
    max_failures: Annotated[Integer, Field(ge=0)] = 2
    checkpoints_to_keep: PositiveInt = 1
    checkpoint_every: PositiveInt = 1  # dev evaluations per checkpoint; a killed trial redoes at most this many
    reuse_actors: bool = True
    cache_dir: str = "~/.cache/robust-xlt/tokenized"
    estimate: Estimate = Estimate()

    @field_validator("experiment")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not EXPERIMENT_NAME.fullmatch(name):
            raise ValueError(f"{name!r} cannot name the experiment's folder: use letters, digits, '.', '_' "
                             "and '-', starting with a letter or digit")
        return name

    @field_validator("cache_dir")
    @classmethod
    def _node_local(cls, cache_dir: str) -> str:
        if "://" in cache_dir:
            raise ValueError(f"must be a directory on each node's own disk (the token cache is memory-mapped), "
                             f"got {cache_dir!r}; results shared by all nodes go to storage")
        return cache_dir

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_or_distinct_list(cls, seeds: Any) -> Any:
        """One clear message instead of pydantic's one per member of the union."""
        if _is_integer(seeds) and seeds >= 1:
            return seeds
        if isinstance(seeds, list) and seeds and all(_is_integer(s) and s >= 0 for s in seeds):
            if _duplicates(seeds):
                raise ValueError(f"duplicate seed(s) {_duplicates(seeds)} in {seeds}: each seed once")
            return seeds
        raise ValueError(f"give a count (an integer >= 1) or a non-empty list of distinct integers >= 0, "
                         f"got {seeds!r}")

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, languages: list[str] | None) -> list[str] | None:
        if languages is not None and not languages:
            raise ValueError("empty list: name the languages to evaluate (with 'en'), or leave languages out "
                             "for all of the data's languages")
        if languages and _duplicates(languages):
            raise ValueError(f"duplicate language(s) {_duplicates(languages)}: each language once")
        return languages

    @model_validator(mode="after")
    def _consistent(self) -> "Sweep":
        self._protocol_consistent()
        if self.generalized and self.languages is not None and len(self.languages) < 2:
            raise FieldError(["generalized"], f"the generalized setting pairs languages and needs at least two; "
                                              f"languages is {self.languages}")
        self._grids_or_space()
        self._searched_methods_enabled()
        self._one_learning_rate_source()
        return self

    def _one_learning_rate_source(self) -> None:
        if "learning_rate" not in self.search.space:
            return
        for method, config in self.methods.enabled().items():
            if config.training.learning_rate is not None:
                raise FieldError(["methods", method, "training", "learning_rate"],
                                 "set here and also searched by search.space.learning_rate: keep one")

    def _protocol_consistent(self) -> None:
        if self.asha is not None and self.selection.protocol != "two_stage":
            raise FieldError(["asha"], "asha stops some seeds early: use it only with selection.protocol "
                                       "'two_stage' (it then applies to the search stage, never to the all-seed "
                                       f"runs); got protocol {self.selection.protocol!r}")
        if self.selection.protocol == "two_stage" and self.selection.search_seeds > len(self.seed_list):
            raise FieldError(["selection", "search_seeds"],
                             f"{self.selection.search_seeds} search seeds exceed the {len(self.seed_list)} "
                             f"seeds {self.seed_list}")

    def _grids_or_space(self) -> None:
        """Each epsilon/m comes from exactly one place: the method's grid or Optuna's space."""
        for method, config in self.methods.enabled().items():
            for grid in ("epsilon", "m"):
                if grid not in type(config).model_fields:
                    continue
                searched = self.search.algorithm == "optuna" and grid in self.search.space
                given = getattr(config, grid) is not None
                if searched and given:
                    raise FieldError(["methods", method, grid], f"given as a grid and also searched by "
                                                                f"search.space.{grid}: keep one")
                if not searched and not given:
                    raise FieldError(["methods", method, grid], f"required: a list of {grid} values to sweep "
                                                                f"(or search it with search.space.{grid})")

    def _searched_methods_enabled(self) -> None:
        for name in self.search.space:
            owners = SEARCHABLE[name]
            if owners is not None and not any(self.methods.enabled().get(o) for o in owners):
                raise FieldError(["search", "space", name],
                                 f"applies to {' or '.join(owners)}, none of which is enabled under methods")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


# ------------------------------------------------------------------------------------ loading
def load_config(path: str | Path) -> Sweep:
    """Read and validate a sweep file; ConfigError names file, line and field on any problem."""
    path = Path(path)
    text = _read_text(path)
    root = _parsed(path, text)
    try:
        sweep = Sweep.model_validate(_constructed(root))
    except ValidationError as err:
        raise ConfigError(_explain(path, root, err)) from None
    except yaml.YAMLError as err:  # composes, but does not construct (an unknown !tag)
        raise ConfigError(_yaml_problem(path, err)) from None
    return _checked_against_data(path, root, _absolute_paths(sweep))


# libyaml's parser where PyYAML was built with it: a multi-megabyte file given by mistake parses in a
# second instead of half a minute; the YAML is parsed once, its nodes kept for line numbers.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_CONFIG_BYTES = 1 << 20  # a sweep configuration is a few kilobytes


def _composed(text: str) -> yaml.Node | None:
    loader = LOADER(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _constructed(root: yaml.Node) -> Any:
    loader = LOADER("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
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


def _parsed(path: Path, text: str) -> yaml.MappingNode:
    """The YAML node tree (for line numbers), refusing what PyYAML would accept but we cannot run."""
    try:
        root = _composed(text)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(path, err)) from None
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


def _yaml_problem(path: Path, err: yaml.YAMLError) -> str:
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


def _explain(path: Path, root: yaml.Node, err: ValidationError) -> str:
    """One line per problem: file:line: field: message (allowed values where known); the first few only."""
    count = err.error_count()
    lines = [f"{path}: invalid configuration ({count} problem(s))"]
    for problem in err.errors()[:SHOWN_PROBLEMS]:
        location = _location(problem)
        lines.append(f"  {path}:{_line_of(root, location)}: {_field_name(location)}: {_message(problem, location)}")
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


def _line_of(root: yaml.Node, location: list) -> int:
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
    from sweeper.plan import SYNTHETIC

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
        return cls(Path(path), _composed(Path(path).read_text()))

    def __call__(self, field: str) -> str:
        if field.startswith("--") or self.path is None:  # a command-line option, or no file
            return f"{field}:"
        return f"{self.path}:{_line_of(self.root, field.split('.'))}: {field}:"


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
    from sweeper.plan import SYNTHETIC

    references = {"model": sweep.model == SYNTHETIC,
                  "methods.rs_da.synonyms": bool(sweep.methods.rs_da and sweep.methods.rs_da.synonyms == SYNTHETIC)}
    for field, used in references.items():
        if used and sweep.data.source != SYNTHETIC:
            raise ConfigError(f"{where(field)} {SYNTHETIC!r} refers to the synthetic world's files and needs "
                              f"data.source 'synthetic' (got {sweep.data.source!r})")


def _check_synonyms_file(sweep: Sweep, where: Where) -> None:
    from sweeper.plan import SYNTHETIC

    rs_da = sweep.methods.rs_da
    if rs_da is not None and rs_da.synonyms != SYNTHETIC and "://" not in rs_da.synonyms \
            and not Path(rs_da.synonyms).is_file():
        raise ConfigError(f"{where('methods.rs_da.synonyms')} file not found: {rs_da.synonyms}")


def _check_languages(sweep: Sweep, where: Where) -> None:
    from sweeper.plan import data_languages
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


def dump_config(sweep: Sweep) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


# Settings that say how or where to run, not what: a resumed experiment may change them (more CPUs per
# trial, a cluster instead of a laptop) without mixing two experiments in one folder.
RUN_ONLY = ("resources", "max_failures", "reuse_actors", "checkpoints_to_keep", "cache_dir", "storage", "estimate")


def experiment_identity(sweep: Sweep) -> str:
    """The configuration without RUN_ONLY settings: what `--resume` holds equal."""
    return yaml.safe_dump(sweep.model_dump(mode="json", exclude=set(RUN_ONLY)), sort_keys=False)

