"""The sweep configuration's schema: frozen typed models, validated once at the edge (`sweeper.config`).

Validators raise `FieldError` for cross-field refusals, so that `sweeper.yaml_errors` can name the
field and its line. No file is read here: the models can be built from any mapping.
"""

from __future__ import annotations

import re
import urllib.parse
from types import MappingProxyType
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import Field, create_model, field_validator, model_serializer, model_validator

from trainables.methods import DESCRIPTORS, MethodOptions
from trainables.options import (LEARNING_RATE_DOMAIN, Domain, FieldError, Integer, LearningRate, Number, PositiveInt,
                                Seed, Strict, duplicates, is_integer)
from trainables.tasks import TASKS

EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


_is_integer, _duplicates = is_integer, duplicates


class Training(Strict):
    """Defaults: the scripts' optimisation (lr 2e-5, 8 x 4 = 32 per update, max length 128, AdamW eps 1e-8, no
    weight decay or warmup, clipping 1.0); 3 epochs as Robust-XLT's PAWS-X script (XTREME's train 5); length
    grouping, dynamic padding and bf16 on CUDA are this project's speed-ups, not the scripts' (README,
    "Choices the paper leaves open"; configs/pawsx.yaml is faithful, configs/pawsx-fast.yaml fast)."""

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
    # true: batches of similar length, grouped per seed; shared: on a length schedule every seed shares (what a seed
    # ensemble pads least: trainables.batching.shared_length_batches); false: uniform shuffling (the scripts)
    length_grouping: bool | Literal["shared"] = True
    padding: Literal["dynamic", "max_length"] = "dynamic"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_updates: PositiveInt | None = None

    @field_validator("length_grouping", mode="before")
    @classmethod
    def _grouping(cls, value: Any) -> Any:
        """One message naming the three values instead of pydantic's one per member of the union."""
        if isinstance(value, bool) or value == "shared":
            return value
        raise ValueError(f"give true (grouped per seed), shared (a length schedule every seed shares) or false "
                         f"(uniform shuffling), got {value!r}")


# ===================================================================================== methods
# Every method's settings come from its descriptor (trainables/methods/<name>.py); nothing here names a method.
class _MethodsBase(Strict):
    @model_validator(mode="after")
    def _at_least_one(self) -> "_MethodsBase":
        if not self.enabled():
            raise ValueError(f"no method enabled; allowed: {', '.join(type(self).model_fields)} "
                             "(enable one with `baseline: {}`: a bare `baseline:` is null and leaves it off)")
        return self

    def enabled(self) -> dict[str, MethodOptions]:
        return {name: getattr(self, name) for name in type(self).model_fields if getattr(self, name) is not None}


Methods = create_model("Methods", __base__=_MethodsBase,
                       **{name: (d.options | None, None) for name, d in DESCRIPTORS.items()})


def _owners(parameter: str) -> tuple[str, ...]:
    return tuple(name for name, d in DESCRIPTORS.items() if parameter in d.search)


# parameter -> the methods whose option it is (None: a training setting every method has)
SEARCHABLE: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {"learning_rate": None, **{p: _owners(p) for d in DESCRIPTORS.values() for p in d.search}})


def search_domains(parameter: str) -> list[tuple[str | None, Domain]]:
    """(owner, domain) of every method that may sample `parameter` (owner None: learning_rate)."""
    if parameter == "learning_rate":
        return [(None, LEARNING_RATE_DOMAIN)]
    return [(name, DESCRIPTORS[name].search[parameter]) for name in SEARCHABLE[parameter]]
# ================================================================================= end of methods


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


def _domain_problem(name: str, dist: Distribution) -> str | None:
    """Sampled values must suit every method that takes the parameter (ADV's epsilon > 0, FreeLB's >= 0)."""
    for owner, domain in search_domains(name):
        whose = f" (for {owner})" if owner and len(SEARCHABLE[name]) > 1 else ""
        if domain.integer and dist.choice is None:
            return f"{name} takes {domain.meaning}{whose}: sample it with choice: [...], not a range"
        outside = [v for v in dist.values() if not domain.admits(v)]
        if outside:
            return f"{name} takes {domain.meaning}{whose}, got {outside}"
    return None


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
    protocol: Literal["paper", "two_stage", "per_run"] = "paper"  # per_run: epsilon/m chosen inside each seed's run
    search_seeds: PositiveInt = 3  # two_stage: seeds per configuration in the search stage


class Augmentation(Strict):
    seed: Seed = 0
    per_seed: bool = False  # False (the paper): one augmented set shared by all training seeds


class Execution(Strict):
    """How trials share a device. `seeds_per_trial` K > 1: one trial trains up to K seeds of one configuration as
    a seed ensemble (trainables.ensemble: the same results as K one-seed trials, in the same kernels), for the
    methods whose descriptor says they vectorize; the others keep one seed per trial. Give a block the device
    share of K trials (resources.gpu)."""

    seeds_per_trial: PositiveInt = 1


class Estimate(Strict):
    """Throughput behind --dry-run's device-hours. Left out (or `estimate: auto`): measured figures where
    there are any (sweeper.throughput), assumed ones labelled as such where not; a figure given here is used
    as given. Per full device (GPU trials) or per CPU trial; training counts forward+backward passes."""

    train_examples_per_second: Annotated[Number, Field(gt=0)] | None = None
    eval_examples_per_second: Annotated[Number, Field(gt=0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(f"{value!r}: write `auto` or the figures (train_examples_per_second, "
                                 "eval_examples_per_second)")
            return {}
        return value


# Keys that would put a secret into a file that is copied to every node and stored with the results.
CREDENTIAL_KEYS = ("api_key", "api_key_file", "key", "token", "tracking_token", "password", "username", "secret")
CREDENTIALS_FROM_ENVIRONMENT = {
    "mlflow": "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
    "wandb": "WANDB_API_KEY, or `wandb login` on the machine that runs the sweep",
}


class _Tracker(Strict):
    """A tracking service's settings; its credentials come from the environment only (never the config,
    which is copied into the experiment folder and to every node)."""

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for key in value:
                if str(key).lower() in CREDENTIAL_KEYS:
                    service = "mlflow" if cls.__name__.startswith("MLflow") else "wandb"
                    raise FieldError([key], f"credentials are never read from the config (it is stored with the "
                                            f"results): set {CREDENTIALS_FROM_ENVIRONMENT[service]} instead")
        return value


class MLflowTracking(_Tracker):
    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI from the environment
    experiment_name: str | None = None  # None: the sweep's experiment

    @field_validator("tracking_uri")
    @classmethod
    def _no_userinfo(cls, uri: str | None) -> str | None:
        if uri is not None:
            netloc = urllib.parse.urlsplit(uri).netloc
            if "@" in netloc:
                host = netloc.rpartition("@")[2]
                raise ValueError(f"holds a user name or password (before the '@' of {host}): credentials are never "
                                 f"read from the config; set {CREDENTIALS_FROM_ENVIRONMENT['mlflow']}")
            if not uri.strip():
                raise ValueError("empty: give the tracking server's URI or a store (sqlite:///mlflow.db, a folder)")
        return uri


class WandbTracking(_Tracker):
    project: str | None = None  # None: WANDB_PROJECT from the environment, else the sweep's experiment
    group: str | None = None  # None: the sweep's experiment
    mode: Literal["online", "offline"] = "online"  # offline: run files on disk, `wandb sync` uploads them later
    dir: str | None = None  # where W&B writes its run files; None: WANDB_DIR, else the (local) experiment folder


class Tracking(Strict):
    """Optional experiment tracking through Ray Tune's logger callbacks (the `tracking` extra installs both)."""

    mlflow: MLflowTracking | None = None
    wandb: WandbTracking | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_bare_service(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name in ("mlflow", "wandb"):
                if name in value and value[name] is None:
                    raise FieldError([name], f"a bare `{name}:` is null and would leave it off: give its settings, "
                                             f"or `{name}: {{}}` for the defaults; leave it out for no tracking")
        return value

    @model_serializer(mode="wrap")
    def _services_only(self, handler: Any) -> Any:
        """A service left out stays out when dumped: `mlflow: null` is refused on reading (see above)."""
        return {name: value for name, value in handler(self).items() if value is not None}

    def enabled(self) -> dict[str, _Tracker]:
        return {name: getattr(self, name) for name in ("mlflow", "wandb") if getattr(self, name) is not None}


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
    tracking: Tracking = Tracking()
    execution: Execution = Execution()

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
        if self.execution.seeds_per_trial > len(self.seed_list):
            raise FieldError(["execution", "seeds_per_trial"],
                             f"{self.execution.seeds_per_trial} seeds per trial exceed the {len(self.seed_list)} "
                             f"seeds {self.seed_list}")
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
            grid = DESCRIPTORS[method].grid_axis
            if grid is not None:
                searched = self.search.algorithm == "optuna" and grid in self.search.space
                given = getattr(config, grid) is not None and (grid in config.model_fields_set or not searched)
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


def dump_config(sweep: Sweep) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


# Settings that say how or where to run, not what: a resumed experiment may change them (more CPUs per
# trial, a cluster instead of a laptop) without mixing two experiments in one folder.
RUN_ONLY = ("resources", "max_failures", "reuse_actors", "checkpoints_to_keep", "cache_dir", "storage", "estimate",
           "tracking")


def experiment_identity(sweep: Sweep) -> str:
    """The configuration without RUN_ONLY settings: what `--resume` holds equal.

    `execution` is part of it (Tune's saved trials are seed blocks or single seeds, and a resume restores them
    as saved), but only where it differs from the default, so experiments from before it existed still resume.
    """
    exclude = set(RUN_ONLY) | ({"execution"} if sweep.execution == Execution() else set())
    return yaml.safe_dump(sweep.model_dump(mode="json", exclude=exclude), sort_keys=False)
