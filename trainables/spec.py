"""What one trial runs, as frozen plain values.

The sweeper validates YAML at the edge and hands each trial a nested dict (Tune's `config`);
`TrialSpec.from_dict` turns it back into these values. The configuration identity (`config_id`)
is computed here, from everything that defines a configuration except the seed, so that the
sweeper's plan, Optuna-sampled trials and the results on disk all name a seed group the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from trainables.source import DataSource
from trainables.tasks import get_task

# Where ADV and RS-RP add their perturbation (trainables.methods.EmbeddingInjector); here so that
# configuration checks need not import torch.
INJECTION_POINTS = ("word_embeddings", "embeddings_output")

# Keys of the nested config that do not define a configuration (they say where or how to run).
_NOT_IDENTITY = ("seed", "seeds", "stage", "experiment", "experiment_dir", "cache_dir", "num_threads", "data_fingerprints",
                 "checkpoint_every")


def trains_in_bf16(precision: str, device_type: str) -> bool:
    """Whether a trial autocasts to bf16: on CUDA by default (`auto`), anywhere when forced (`bf16`)."""
    return precision == "bf16" or (precision == "auto" and device_type == "cuda")


@dataclass(frozen=True)
class TrainingSpec:
    """Defaults: the scripts' optimisation (lr 2e-5, 8 x 4 = 32 per update, max length 128, AdamW eps 1e-8, no
    weight decay or warmup, clipping 1.0); 3 epochs as Robust-XLT's PAWS-X script (XTREME's train 5); length
    grouping, dynamic padding and bf16 on CUDA are this project's speed-ups, not the scripts' (README,
    "Choices the paper leaves open"; configs/pawsx.yaml is faithful, configs/pawsx-fast.yaml fast)."""

    epochs: int = 3
    learning_rate: float = 2e-5
    per_device_batch_size: int = 8
    gradient_accumulation: int = 4  # 8 x 4 = the scripts' effective batch of 32
    max_length: int = 128
    weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    warmup_ratio: float = 0.0
    eval_every: int | None = None  # None: the task's (500 PAWS-X, 1000 XNLI)
    eval_batch_size: int = 64
    freeze_word_embeddings: bool = False
    length_grouping: bool | str = True  # True: per seed (HF's LengthGroupedSampler) | "shared": one length schedule
    padding: str = "dynamic"  # dynamic (to the batch's longest) | max_length (XTREME's scripts)
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    max_updates: int | None = None  # stop early (smoke tests, benchmarks); None: full epochs

    @property
    def effective_batch_size(self) -> int:
        return self.per_device_batch_size * self.gradient_accumulation


@dataclass(frozen=True)
class TrialSpec:
    experiment: str
    experiment_dir: str  # local path or URI; results go to <experiment_dir>/results/...
    task: str
    model: str
    method: str
    seed: int
    data: DataSource = field(default_factory=DataSource)
    languages: tuple[str, ...] = ()  # test languages; empty: all of the task's
    generalized: bool = False
    method_options: Mapping[str, Any] = field(default_factory=dict)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    augmentation_seed: int = 0
    augmentation_per_seed: bool = False  # False (the paper): one augmented set shared by all seeds
    stage: str = "grid"
    cache_dir: str = ".cache/robust-xlt"
    num_threads: int | None = None
    data_fingerprints: Mapping[str, str] | None = None
    checkpoint_every: int = 1  # dev evaluations per Tune checkpoint (an mBERT one is ~2.8 GB)
    # The seeds one trial trains together as a seed ensemble (trainables.ensemble), `seed` first; empty: `seed`
    # alone. Each member is the cell `members()` names, with results of its own.
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_options", MappingProxyType(dict(self.method_options)))
        object.__setattr__(self, "languages", tuple(self.languages or get_task(self.task).languages))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.seeds and (self.seeds[0] != self.seed or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError(f"a seed block's seeds must be distinct and start with its seed {self.seed}, "
                             f"got {list(self.seeds)}")

    def members(self) -> tuple["TrialSpec", ...]:
        """One one-seed spec per seed this trial trains (itself alone outside a seed block)."""
        if len(self.seeds) <= 1:
            return (dataclasses.replace(self, seeds=()),)
        return tuple(dataclasses.replace(self, seed=seed, seeds=()) for seed in self.seeds)

    @property
    def epsilon(self) -> float | None:
        return self.method_options.get("epsilon")

    @property
    def m(self) -> int | None:
        return self.method_options.get("m")

    @property
    def eval_every(self) -> int:
        return self.training.eval_every or get_task(self.task).eval_every

    @property
    def effective_augmentation_seed(self) -> int:
        """The paper shares one augmented set across training seeds; optionally one per seed."""
        if not self.augmentation_per_seed:
            return self.augmentation_seed
        return derive_seed(self.augmentation_seed, f"augmentation/{self.seed}")

    @property
    def config_id(self) -> str:
        return config_id(self.to_dict())

    @property
    def config_label(self) -> str:
        return config_label(self.method, self.method_options)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "TrialSpec":
        """Build from Tune's nested config; keys Tune adds (`__trial_index__`, ...) are ignored."""
        values = {k: v for k, v in config.items() if not k.startswith("__")}
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown trial config keys: {', '.join(sorted(unknown))}")
        values["data"] = DataSource(**values.get("data", {}))
        values["training"] = TrainingSpec(**values.get("training", {}))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The nested plain dict that `from_dict` reads back (Tune's config, trial.json)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(data=dataclasses.asdict(self.data), training=dataclasses.asdict(self.training),
                   method_options=dict(self.method_options), languages=list(self.languages),
                   seeds=list(self.seeds))
        if self.data_fingerprints is not None:
            out["data_fingerprints"] = dict(self.data_fingerprints)
        return out


def config_id(config: Mapping[str, Any]) -> str:
    """Stable id of a configuration: the method and every hyper-parameter, without the seed."""
    identity = {k: v for k, v in config.items() if k not in _NOT_IDENTITY and not k.startswith("__")}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{config['method']}-{digest}"


def config_label(method: str, options: Mapping[str, Any]) -> str:
    """Readable name of a configuration, e.g. `rs_rp eps=0.1`, `rs_da m=10`."""
    parts = [method]
    if options.get("epsilon") is not None:
        parts.append(f"eps={options['epsilon']:g}")
    if options.get("m") is not None:
        parts.append(f"m={options['m']}")
    return " ".join(parts)


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one use of the trial seed (head, data order, dropout, noise)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}".encode()).digest()[:8], "big") >> 1
