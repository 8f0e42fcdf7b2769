"""The sweep configuration: YAML validated once, at the edge, into frozen typed models.

Every refusal names the file, the line and the field, says what is allowed, and happens before
Ray starts (`load_config` raises `ConfigError`; the CLI turns it into exit code 2). Paths in the
file are taken relative to the current directory and made absolute here: trials run in folders
of their own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainables.methods import INJECTION_POINTS
from trainables.tasks import SOURCE_LANGUAGE, TASKS

DEFAULT_SYNONYMS = "https://raw.githubusercontent.com/uclanlp/Robust-XLT/master/counterfitted_neighbors.json"


class ConfigError(ValueError):
    """A configuration file that cannot be run; the message names file, line and field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveInt = Annotated[int, Field(ge=1)]
Probability = Annotated[float, Field(gt=0, le=1)]


class Training(Strict):
    """Defaults from the paper's (XTREME's) scripts; see README, "Training"."""

    epochs: PositiveInt = 3
    learning_rate: Annotated[float, Field(gt=0, lt=1)] = 2e-5
    per_device_batch_size: PositiveInt = 8
    gradient_accumulation: PositiveInt = 4
    max_length: Annotated[int, Field(ge=8, le=4096)] = 128
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    adam_epsilon: Annotated[float, Field(gt=0)] = 1e-8
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    eval_every: PositiveInt | None = None
    eval_batch_size: PositiveInt = 64
    freeze_word_embeddings: bool = False
    length_grouping: bool = True
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_updates: PositiveInt | None = None


class TrainingOverride(Strict):
    """Per-method changes to the training hyper-parameters (e.g. the paper's RS-DA epochs)."""

    epochs: PositiveInt | None = None
    learning_rate: Annotated[float, Field(gt=0, lt=1)] | None = None
    max_updates: PositiveInt | None = None


def _nonempty_unique(values: list, what: str) -> list:
    if not values:
        raise ValueError(f"{what} grid is empty: give at least one value")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} grid has duplicates: {values}")
    return values


class MethodBase(Strict):
    training: TrainingOverride = TrainingOverride()


class Baseline(MethodBase):
    pass


class EpsilonMethod(MethodBase):
    epsilon: list[float] | None = None  # required unless search.space.epsilon samples it
    injection: Literal[INJECTION_POINTS] = "word_embeddings"  # type: ignore[valid-type]

    @field_validator("epsilon", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if isinstance(value, list) or value is None else [value]

    @field_validator("epsilon")
    @classmethod
    def _positive(cls, values: list[float] | None) -> list[float] | None:
        for eps in _nonempty_unique(values, "epsilon") if values is not None else ():
            if not eps > 0 or not math.isfinite(eps):
                raise ValueError(f"epsilon must be a finite number > 0 (an L-inf radius), got {eps}")
        return values


class Adversarial(EpsilonMethod):
    pgd_steps: PositiveInt = 1
    pgd_alpha: Annotated[float, Field(gt=0)] | None = None
    pgd_random_start: bool = True


class RandomPerturbation(EpsilonMethod):
    pass


class CopiesMethod(MethodBase):
    m: list[int] | None = None  # required unless search.space.m samples it
    keep_original: bool = False

    @field_validator("m", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if isinstance(value, list) or value is None else [value]

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
            raise ValueError(f"no method enabled; allowed: {', '.join(Methods.model_fields)}")
        return self

    def enabled(self) -> dict[str, MethodBase]:
        return {name: getattr(self, name) for name in Methods.model_fields if getattr(self, name) is not None}


class Data(Strict):
    source: Literal["hub", "local_hub", "tsv", "synthetic"] = "hub"
    path: str | None = None  # Hub id (default: the task's), a directory, or the synthetic world's folder
    revision: str | None = None
    allow_empty: bool = False
    synthetic_preset: Literal["demo", "tiny"] = "demo"
    synthetic_seed: int = 0
    synthetic_layout: Literal["hub", "tsv"] = "hub"

    @model_validator(mode="after")
    def _consistent(self) -> "Data":
        if self.source in ("local_hub", "tsv") and not self.path:
            raise ValueError(f"data.source {self.source!r} needs data.path (a directory)")
        if self.revision is not None and self.source != "hub":
            raise ValueError("data.revision is only meaningful with data.source 'hub'")
        return self


class Resources(Strict):
    cpu: Annotated[float, Field(gt=0)] = 1.0
    gpu: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError(f"gpu must be a fraction of one GPU (0 < gpu <= 1) or a whole number, got {gpu}")
        return gpu


class Distribution(Strict):
    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Distribution":
        given = [k for k in ("loguniform", "uniform", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform: [low, high], uniform: [low, high], choice: [...]")
        bounds = self.loguniform or self.uniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"low must be < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be > 0")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self


SEARCHABLE = {"learning_rate": None, "epsilon": ("adv", "rs_rp"), "m": ("rs_da", "rs_syntax")}


class Search(Strict):
    algorithm: Literal["grid", "optuna"] = "grid"
    num_samples: PositiveInt | None = None  # Optuna: configurations per method
    space: dict[str, Distribution] = {}
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> "Search":
        unknown = set(self.space) - set(SEARCHABLE)
        if unknown:
            raise ValueError(f"search.space: unknown parameter(s) {sorted(unknown)}; allowed: {', '.join(SEARCHABLE)}")
        if self.algorithm == "optuna" and (not self.space or self.num_samples is None):
            raise ValueError("search.algorithm 'optuna' needs search.space and search.num_samples")
        if self.algorithm == "grid" and (self.space or self.num_samples is not None):
            raise ValueError("search.space/num_samples are for algorithm 'optuna'; the grid comes from methods")
        return self


class Asha(Strict):
    grace_period: PositiveInt = 1  # evaluations before a trial may be stopped
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0


class Selection(Strict):
    protocol: Literal["paper", "two_stage"] = "paper"
    search_seeds: PositiveInt = 3  # two_stage: seeds per configuration in the search stage


class Augmentation(Strict):
    seed: int = 0
    per_seed: bool = False  # False (the paper): one augmented set shared by all training seeds


class Estimate(Strict):
    """Throughput assumed by --dry-run's GPU-hour estimate (calibrate from trial.json timings)."""

    train_examples_per_second: Annotated[float, Field(gt=0)] = 250.0
    eval_examples_per_second: Annotated[float, Field(gt=0)] = 2000.0


class Sweep(Strict):
    experiment: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    task: Literal[tuple(TASKS)]  # type: ignore[valid-type]
    model: str = "bert-base-multilingual-cased"
    data: Data = Data()
    languages: list[str] | None = None
    generalized: bool = False
    methods: Methods
    seeds: PositiveInt | list[int] = 10
    training: Training = Training()
    augmentation: Augmentation = Augmentation()
    resources: Resources = Resources()
    search: Search = Search()
    asha: Asha | None = None
    selection: Selection = Selection()
    storage: str = "runs"
    max_failures: Annotated[int, Field(ge=0)] = 2
    checkpoints_to_keep: PositiveInt = 1
    reuse_actors: bool = True
    cache_dir: str = "~/.cache/robust-xlt/tokenized"
    estimate: Estimate = Estimate()

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("seeds: give a count >= 1 or a non-empty list")
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds has duplicates: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _consistent(self) -> "Sweep":
        if self.asha is not None and self.selection.protocol != "two_stage":
            raise ValueError("asha stops some seeds early: use it only with selection.protocol 'two_stage' "
                             "(it then applies to the search stage, never to the all-seed runs)")
        if self.selection.protocol == "two_stage" and self.selection.search_seeds > len(self.seed_list):
            raise ValueError(f"selection.search_seeds ({self.selection.search_seeds}) exceeds the "
                             f"{len(self.seed_list)} seeds")
        if self.generalized and self.languages is not None and len(self.languages) < 2:
            raise ValueError("generalized needs at least two languages")
        self._grids_or_space()
        for name in self.search.space:
            owners = SEARCHABLE[name]
            if owners is not None and not any(self.methods.enabled().get(o) for o in owners):
                raise ValueError(f"search.space.{name} applies to {' or '.join(owners)}, none of which is enabled")
        return self

    def _grids_or_space(self) -> None:
        """Each epsilon/m comes from exactly one place: the method's grid or Optuna's space."""
        for method, config in self.methods.enabled().items():
            for grid in ("epsilon", "m"):
                if grid not in type(config).model_fields:
                    continue
                searched = self.search.algorithm == "optuna" and grid in self.search.space
                given = getattr(config, grid) is not None
                if searched and given:
                    raise ValueError(f"methods.{method}.{grid} is given as a grid and also searched by "
                                     f"search.space.{grid}: keep one")
                if not searched and not given:
                    raise ValueError(f"methods.{method}.{grid} is required (a list of values to sweep)")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


# ------------------------------------------------------------------------------------ loading
def load_config(path: str | Path) -> Sweep:
    """Read and validate a sweep file; ConfigError names file, line and field on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration ({err.strerror})") from None
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        sweep = Sweep.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(path, root, err)) from None
    return _checked_against_data(path, root, _absolute_paths(sweep))


def _explain(path: Path, root: yaml.Node, err: ValidationError) -> str:
    """One line per problem: file:line: field: message (allowed values where known)."""
    lines = [f"{path}: invalid configuration ({err.error_count()} problem(s))"]
    for problem in err.errors():
        location = [p for p in problem["loc"] if not (isinstance(p, str) and "[" in p)]  # drop union tags
        field = ".".join(str(p) for p in location) or "(top level)"
        lines.append(f"  {path}:{_line_of(root, location)}: {field}: {_message(problem, location)}")
    return "\n".join(lines)


def _message(problem: Mapping[str, Any], location: list) -> str:
    if problem["type"] == "extra_forbidden":
        model = _model_at(location[:-1])
        allowed = ", ".join(model.model_fields) if model else "see README"
        return f"unknown setting {location[-1]!r}; allowed: {allowed}"
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] in ("literal_error", "enum"):
        message = f"{message} (got {problem['input']!r})"
    return message


def _model_at(location: list) -> type[BaseModel] | None:
    model: Any = Sweep
    for part in location:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation if part in getattr(model, "model_fields", {}) else None
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        models = [a for a in candidates if issubclass(a, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model


def _line_of(root: yaml.Node, location: list) -> int:
    """1-based line of the deepest YAML node on `location` (the parent key for a missing one)."""
    node, line = root, root.start_mark.line + 1
    for part in location:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, v in node.value if k.value == str(part)), None)
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


def _absolute_paths(sweep: Sweep) -> Sweep:
    from sweeper.plan import SYNTHETIC

    data = sweep.data
    if data.source != "hub":
        data = data.model_copy(update={"path": _absolute(data.path)})
    methods = sweep.methods
    if methods.rs_da is not None and "://" not in methods.rs_da.synonyms and methods.rs_da.synonyms != SYNTHETIC:
        methods = methods.model_copy(update={"rs_da": methods.rs_da.model_copy(
            update={"synonyms": _absolute(methods.rs_da.synonyms)})})
    return sweep.model_copy(update={"data": data, "methods": methods, "storage": _absolute(sweep.storage),
                                    "cache_dir": _absolute(sweep.cache_dir)})


def _checked_against_data(path: Path, root: yaml.Node, sweep: Sweep) -> Sweep:
    """Refuse languages the data does not have and local files that do not exist, before Ray starts."""
    from sweeper.plan import SYNTHETIC, data_languages

    where = lambda *loc: f"{path}:{_line_of(root, list(loc))}"  # noqa: E731
    if sweep.data.source in ("local_hub", "tsv") and not Path(sweep.data.path).is_dir():
        raise ConfigError(f"{where('data', 'path')}: data.path: directory not found: {sweep.data.path}")
    synthetic_refs = {"model": sweep.model == SYNTHETIC,
                      "methods.rs_da.synonyms": bool(sweep.methods.rs_da and sweep.methods.rs_da.synonyms == SYNTHETIC)}
    for field, used in synthetic_refs.items():
        if used and sweep.data.source != SYNTHETIC:
            raise ConfigError(f"{where(*field.split('.'))}: {field}: {SYNTHETIC!r} refers to the synthetic world's "
                              f"files and needs data.source 'synthetic' (got {sweep.data.source!r})")
    rs_da = sweep.methods.rs_da
    if rs_da is not None and rs_da.synonyms != SYNTHETIC and "://" not in rs_da.synonyms \
            and not Path(rs_da.synonyms).is_file():
        raise ConfigError(f"{where('methods', 'rs_da', 'synonyms')}: methods.rs_da.synonyms: file not found: "
                          f"{rs_da.synonyms}")
    available = data_languages(sweep)
    unknown = [lang for lang in sweep.languages or [] if lang not in available]
    if unknown:
        raise ConfigError(f"{where('languages')}: languages: unknown language(s) {unknown} for task "
                          f"{sweep.task!r} with data.source {sweep.data.source!r}; allowed: {', '.join(available)}")
    if sweep.languages is not None and SOURCE_LANGUAGE not in sweep.languages:
        raise ConfigError(f"{where('languages')}: languages: must include the source language "
                          f"{SOURCE_LANGUAGE!r} (English dev selects the model and English test is reported)")
    return sweep


def dump_config(sweep: Sweep) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


MethodConfig = Union[Baseline, Adversarial, RandomPerturbation, SynonymAugmentation, SyntaxAugmentation]
