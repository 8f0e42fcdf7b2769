"""The fault table: every way a real run goes wrong ends fast, clearly, and loses nothing (issue 7).

Each row is one input or environment fault as a user meets it: a typo, a half-copied model, a data
file cut short by a full disk, a results folder a crash left damaged, a machine without the GPU the
config asks for, a Ray address that does not answer, a misused command. A row gives the command, the
fault it plants in a fresh workspace, the exit code and the words the message must contain. Every
row runs the real CLI in-process and checks that nothing in the workspace changed (a sha256 listing
before and after) and that no traceback escaped; rows that refuse before Ray must not start Ray.

Rows that need a finished experiment damage a copy of the one sweep of the test session
(conftest.reference_experiment).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pytest
import yaml

from sweep_helpers import free_port
from sweeper.cli import main

RUN = "run"


class Bench:
    """A row's workspace: copies of the tiny world's model, data and synonyms, and room for outputs."""

    def __init__(self, root: Path, world, reference: Path):
        self.root, self.world, self.reference = root, world, reference
        self.model = Path(shutil.copytree(world.model_dir, root / "model"))
        self.tsv = Path(shutil.copytree(world.tsv_dir("pawsx"), root / "tsv"))
        self.hub = Path(shutil.copytree(world.hub_dir("pawsx"), root / "hub"))
        self.synonyms = Path(shutil.copy(world.synonyms_path, root / "synonyms.json"))
        self.runs, self.cache, self.out = root / "runs", root / "cache", root / "runs" / "exp"

    def config(self, name: str = "sweep.yaml", text: str | None = None, **overrides) -> str:
        """A valid sweep on this bench (baseline and RS-DA on the TSV copy), with `overrides` applied."""
        config = {
            "experiment": "exp", "task": "pawsx", "model": str(self.model),
            "data": {"source": "tsv", "path": str(self.tsv)},
            "methods": {"baseline": {}, "rs_da": {"m": [1], "synonyms": str(self.synonyms)}},
            "seeds": 2, "training": {"epochs": 1, "max_updates": 2}, "resources": {"cpu": 1},
            "storage": str(self.runs), "cache_dir": str(self.cache),
        }
        config.update(overrides)
        path = self.root / name
        path.write_text(text if text is not None else yaml.safe_dump(config, sort_keys=False))
        return str(path)

    def hub_config(self, **overrides) -> str:
        return self.config(data={"source": "local_hub", "path": str(self.hub)}, **overrides)

    def experiment(self) -> Path:
        """A copy of the session's finished experiment (6 done cells) inside the bench."""
        return Path(shutil.copytree(self.reference, self.root / "exp"))

    @property
    def reference_config(self) -> str:
        """The config the finished experiment was run with (outside the bench: resuming it must match)."""
        return str(self.reference.parents[1] / "sweep.yaml")

    def cell(self, experiment: Path, index: int = 0) -> Path:
        return sorted(experiment.glob("results/*/seed-*"))[index]


def listing(root: Path) -> dict[str, str]:
    """sha256 of every file below root, by relative path (folders too, so that a new empty one shows)."""
    out = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        out[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return out


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def edit_tsv(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = text
    path.write_text("".join(lines))


def rewrite_parquet(path: Path, drop: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.drop_columns([drop]), path)


@dataclass(frozen=True)
class Fault:
    id: str
    argv: Callable[[Bench], list[str]]
    code: int
    says: tuple[str, ...]
    plant: Callable[[Bench], object] = lambda bench: None
    env: Mapping[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ("Traceback",)  # words the output must not contain


def dry(config: Callable[[Bench], str], *extra: str) -> Callable[[Bench], list[str]]:
    return lambda b: [RUN, config(b), "--dry-run", *extra]


def run(config: Callable[[Bench], str], *extra: str) -> Callable[[Bench], list[str]]:
    return lambda b: [RUN, config(b), *extra]


def both(fault: Fault) -> list[Fault]:
    """A run-time input fault as `run --dry-run` and as `run` (issue 7: a dry run that passes must mean the run
    will not fail on its inputs; a refused run must leave nothing behind)."""
    as_run = lambda b, argv=fault.argv: [a for a in argv(b) if a != "--dry-run"]  # noqa: E731
    return [fault, Fault(fault.id + "/run", as_run, fault.code, fault.says, fault.plant, fault.env, fault.absent)]


def base(b: Bench) -> str:
    return b.config()


def with_model(model: str | Callable[[Bench], str]) -> Callable[[Bench], str]:
    return lambda b: b.config(model=model(b) if callable(model) else model)


def damaged_cell_file(name: str, how: Callable[[Path], object]) -> Callable[[Bench], object]:
    return lambda b: how(b.cell(b.experiment()) / name)


def on_experiment(*args: str) -> Callable[[Bench], list[str]]:
    return lambda b: [a.replace("@EXP", str(b.root / "exp")) for a in args]


def _json_bytes(entries: int) -> str:
    return json.dumps({f"word{i}": [f"w{i}a", f"w{i}b"] for i in range(entries)})


CONFIG_FAULTS = [
    Fault("config-file-missing", lambda b: [RUN, str(b.root / "nope.yaml"), "--dry-run"], 2,
          ("nope.yaml: cannot read the configuration",)),
    Fault("config-is-a-folder", lambda b: [RUN, str(b.root), "--dry-run"], 2, ("is a folder",)),
    Fault("config-empty", dry(lambda b: b.config(text="")), 2, ("the file is empty",)),
    Fault("config-not-utf8", lambda b: [RUN, str(b.root / "sweep.yaml"), "--dry-run"], 2, ("sweep.yaml:3: not UTF-8",),
          plant=lambda b: (b.root / "sweep.yaml").write_bytes(b"experiment: x\ntask: pawsx\n# caf\xe9\n")),
    Fault("yaml-key-without-colon", dry(lambda b: b.config(text="experiment: x\ntask pawsx\nmethods: {}\n")), 2,
          ("sweep.yaml:2: not valid YAML", "noticed at line 3")),
    Fault("yaml-quote-never-closed", dry(lambda b: b.config(text="experiment: 'x\ntask: pawsx\nseeds: 2\n")), 2,
          ("sweep.yaml:1: not valid YAML",)),
    Fault("yaml-tab-indent", dry(lambda b: b.config(text="experiment: x\nmethods:\n\tbaseline: {}\n")), 2,
          ("sweep.yaml:3: not valid YAML",)),
    Fault("yaml-python-tag", dry(lambda b: b.config(text="experiment: !!python/object:os.system x\n")), 2,
          ("sweep.yaml:1: not valid YAML",)),
    Fault("a-json-table-as-config", dry(lambda b: b.config(text=_json_bytes(500))), 2,
          ("(503 problem(s))", "... and 493 more", "is sweep.yaml a sweep configuration?")),
    Fault("a-megabyte-file-as-config", dry(lambda b: b.config(text=_json_bytes(60000))), 2,
          ("MiB is far larger than a sweep configuration",)),
    Fault("key-given-twice", dry(lambda b: b.config(text="experiment: x\nseeds: 2\nseeds: 3\n")), 2,
          ("sweep.yaml:3: seeds: given twice",)),
    Fault("misspelt-setting", dry(lambda b: b.config(training={"epoch": 3})), 2,
          ("training.epoch: unknown setting 'epoch'",)),
]

PATH_FAULTS = [
    *both(Fault("model-folder-missing", dry(lambda b: b.config(model=str(b.root / "no-model"))), 2,
                ("model: model folder not found",))),
    *both(Fault("model-folder-empty", dry(lambda b: b.config(model=str(b.root / "empty"))), 2,
                ("model:", "empty: expected a Hugging Face model folder"), plant=lambda b: (b.root / "empty").mkdir())),
    Fault("model-is-a-file", dry(lambda b: b.config(model=str(b.synonyms))), 2, ("is a file, not a model folder",)),
    Fault("model-without-config", dry(base), 2, ("has no config.json",),
          plant=lambda b: (b.model / "config.json").unlink()),
    Fault("model-without-weights", dry(base), 2, ("has no weights",),
          plant=lambda b: (b.model / "model.safetensors").unlink()),
    *both(Fault("model-weights-cut-short", dry(base), 2, ("model.safetensors is damaged or truncated",),
                plant=lambda b: truncate(b.model / "model.safetensors", 0.7))),
    Fault("model-config-not-json", dry(base), 2, ("model: cannot load",),
          plant=lambda b: (b.model / "config.json").write_text("{\"model_type\": ")),
    Fault("hub-model-offline-not-cached", dry(lambda b: b.config(model="someone/unknown-bert")), 2,
          ("model: cannot load 'someone/unknown-bert'", "HF_HUB_OFFLINE is set")),
    *both(Fault("storage-is-a-file", dry(lambda b: b.config(storage=str(b.synonyms))), 2,
                ("storage:", "synonyms.json is a file"))),
    Fault("output-below-a-file", dry(base, "--output", "@SYN/exp"), 2, ("--output:", "is a file")),
    *both(Fault("cache-dir-is-a-file", dry(lambda b: b.config(cache_dir=str(b.synonyms))), 2,
                ("cache_dir:", "is a file, not a folder"))),
    Fault("storage-s3-endpoint-not-answering",
          dry(lambda b: b.config(storage=f"s3://bucket/x?endpoint_override=127.0.0.1:{free_port()}&scheme=http")),
          2, ("storage: cannot reach s3://bucket/x/exp?endpoint_override=",),
          env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}),
    Fault("storage-unknown-uri-scheme", dry(lambda b: b.config(storage="nosuch://bucket/x")), 2,
          ("storage: cannot reach nosuch://bucket/x/exp",)),
    Fault("data-path-is-a-file", dry(lambda b: b.config(data={"source": "tsv", "path": str(b.synonyms)})), 2,
          ("data.path: is a file, not a directory",)),
    Fault("data-path-missing", dry(lambda b: b.config(data={"source": "tsv", "path": str(b.root / "nodata")})), 2,
          ("data.path: directory not found",)),
]

DATA_FAULTS = [
    *both(Fault("tsv-test-row-with-one-field", dry(base), 2, ("test-xb.tsv:5: expected 3 tab-separated fields",),
                plant=lambda b: edit_tsv(b.tsv / "test-xb.tsv", 5, "only one field\n"))),
    *both(Fault("tsv-test-file-empty", dry(base), 2, ("test-xa.tsv: file is empty",),
                plant=lambda b: (b.tsv / "test-xa.tsv").write_text(""))),
    *both(Fault("tsv-test-not-utf8", dry(base), 2, ("test-xb.tsv:", "not valid UTF-8"),
                plant=lambda b: (b.tsv / "test-xb.tsv").write_bytes((b.tsv / "test-xb.tsv").read_bytes()
                                                                    + b"caf\xe9\tx\t0\n"))),
    Fault("tsv-train-unknown-label", dry(base), 2, ("train-en.tsv:7:", "label"),
          plant=lambda b: edit_tsv(b.tsv / "train-en.tsv", 7, "a b\tc d\tmaybe\n")),
    *both(Fault("tsv-dev-empty-sentence", dry(base), 2, ("dev-en.tsv:3: empty sentence1", "data.allow_empty: true"),
                plant=lambda b: edit_tsv(b.tsv / "dev-en.tsv", 3, " \tc d\t1\n"))),
    Fault("tsv-language-file-gone", dry(lambda b: b.config(languages=["en", "xa", "xb"])), 2,
          ("languages: unknown language(s) ['xb']",), plant=lambda b: (b.tsv / "test-xb.tsv").unlink()),
    *both(Fault("tsv-test-sets-not-parallel", dry(lambda b: b.config(generalized=True)), 2,
                ("tsv: test sets of en and xa are not parallel", "generalized setting"),
                plant=lambda b: edit_tsv(b.tsv / "test-xa.tsv", 16, ""))),
    Fault("tsv-test-labels-differ", dry(lambda b: b.config(generalized=True)), 2, ("not parallel", "label"),
          plant=lambda b: edit_tsv(b.tsv / "test-xb.tsv", 2, "x y\tz w\t"
                                   + str(1 - int((b.tsv / "test-xb.tsv").read_text().splitlines()[1][-1])) + "\n")),
    *both(Fault("hub-test-parquet-cut-short", dry(lambda b: b.hub_config()), 2,
                ("test-", ".parquet: not a readable Parquet file", "copy the file again"),
                plant=lambda b: truncate(next((b.hub / "xa").glob("test-*.parquet"))))),
    Fault("hub-train-parquet-empty", dry(lambda b: b.hub_config()), 2, ("train-", "not a readable Parquet file"),
          plant=lambda b: next((b.hub / "en").glob("train-*.parquet")).write_bytes(b"")),
    Fault("hub-readme-gone", dry(lambda b: b.hub_config()), 2,
          ("data.path:", "README.md lists no per-language configs"),
          plant=lambda b: (b.hub / "README.md").unlink()),
    Fault("hub-column-missing", dry(lambda b: b.hub_config()), 2,
          ("config xb split test row 0: no sentence2 in any row", "column missing"),
          plant=lambda b: rewrite_parquet(next((b.hub / "xb").glob("test-*.parquet")), "sentence2")),
    Fault("hub-parquet-garbage", dry(lambda b: b.hub_config()), 2, ("validation-", "not a readable Parquet file"),
          plant=lambda b: next((b.hub / "en").glob("validation-*.parquet")).write_bytes(b"PAR1" + b"\0" * 64)),
]

SYNONYM_FAULTS = [
    *both(Fault("synonyms-not-json", dry(base), 2, ("methods.rs_da.synonyms:", "not valid JSON"),
                plant=lambda b: b.synonyms.write_text("{not json"))),
    Fault("synonyms-a-list", dry(base), 2, ("methods.rs_da.synonyms:", "expected a JSON object"),
          plant=lambda b: b.synonyms.write_text("[1, 2]")),
    Fault("synonyms-entry-not-a-list", dry(base), 2, ("entry 'good' must be a list of strings",),
          plant=lambda b: b.synonyms.write_text('{"good": "fine"}')),
    Fault("synonyms-empty-table", dry(base), 2, ("lists no word with neighbours",),
          plant=lambda b: b.synonyms.write_text("{}")),
    Fault("synonyms-missing", dry(base), 2, ("methods.rs_da.synonyms: file not found",),
          plant=lambda b: b.synonyms.unlink()),
    Fault("synonyms-cut-short", dry(base), 2, ("not valid JSON",), plant=lambda b: truncate(b.synonyms)),
]

RESOURCE_FAULTS = [
    *both(Fault("gpu-asked-on-a-machine-without", dry(lambda b: b.config(resources={"cpu": 1, "gpu": 0.5})), 2,
                ("sweep.yaml:", "resources.gpu: each trial asks for 0.5 GPU", "set resources.gpu: 0"))),
    Fault("dry-run-on-a-laptop-still-shows-the-plan", dry(lambda b: b.config(resources={"cpu": 1, "gpu": 1})), 2,
          ("GPU-hours", "the plan above cannot run here as configured", "resources.gpu: each trial asks for 1 GPU")),
    *both(Fault("cpu-above-num-cpus", dry(lambda b: b.config(resources={"cpu": 3}), "--num-cpus", "2"), 2,
                ("resources.cpu: each trial asks for 3 CPU", "--num-cpus 2"))),
    Fault("gpu-above-num-gpus", dry(lambda b: b.config(resources={"cpu": 1, "gpu": 1}), "--num-gpus", "0.5"), 2,
          ("resources.gpu: each trial asks for 1 GPU", "--num-gpus 0.5")),
    Fault("num-cpus-zero", dry(base, "--num-cpus", "0"), 2, ("--num-cpus: must be at least 1",)),
    Fault("num-gpus-negative", dry(base, "--num-gpus", "-1"), 2, ("--num-gpus: must be 0 or more",)),
    Fault("placement-timeout-zero", dry(base, "--placement-timeout", "0"), 2, ("--placement-timeout: must be",)),
    Fault("address-with-num-cpus", dry(base, "--address", "auto", "--num-cpus", "2"), 2,
          ("--num-cpus: only for the embedded Ray",)),
    *both(Fault("address-nobody-answers", lambda b: [RUN, b.config(), "--dry-run", "--address",
                                                     f"127.0.0.1:{free_port()}"], 2,
                ("--address: no Ray cluster answers at 127.0.0.1:",))),
    Fault("address-auto-names-a-dead-cluster", dry(base, "--address", "auto"), 2,
          ("no Ray cluster answers", "(RAY_ADDRESS)"), env={"RAY_ADDRESS": "127.0.0.1:@PORT"}),
    Fault("address-not-an-address", dry(base, "--address", "my cluster"), 2,
          ("--address: expected 'auto', HOST:PORT",)),
    Fault("address-empty", dry(base, "--address", ""), 2, ("--address: empty",)),
]

EXPERIMENT_FAULTS = [
    Fault("experiment-exists-without-resume", lambda b: [RUN, b.reference_config, "--output", str(b.root / "exp")],
          2, ("an experiment already exists here", "--resume"), plant=lambda b: b.experiment()),
    Fault("resume-with-nothing-there", lambda b: [RUN, b.config(), "--resume"], 2, ("nothing to resume",)),
    Fault("resume-with-a-changed-config", lambda b: [RUN, b.config(seeds=4), "--output", str(b.root / "exp"),
                                                     "--resume"], 2, ("sweep.yaml differs",),
          plant=lambda b: b.experiment()),
    Fault("resume-with-sweep-yaml-cut-short", lambda b: [RUN, b.reference_config, "--output", str(b.root / "exp"),
                                                         "--resume"], 2, ("sweep.yaml: damaged",),
          plant=lambda b: (b.experiment() / "sweep.yaml").write_text("experiment: exp\ntask: paw")),
    *both(Fault("output-holds-something-else", dry(base, "--output", "@ROOT/mine"), 2,
                ("not empty and not an experiment", "notes.txt"),
                plant=lambda b: ((b.root / "mine").mkdir(), (b.root / "mine" / "notes.txt").write_text("mine")))),
    Fault("output-is-a-file", dry(base, "--output", "@SYN"), 2, ("--output:", "is a file")),
    Fault("dry-run-of-an-existing-experiment", lambda b: [RUN, b.reference_config, "--output", str(b.root / "exp"),
                                                          "--dry-run"], 2, ("an experiment already exists here",),
          plant=lambda b: b.experiment()),
]

STATUS_FAULTS = [
    Fault("status-plan-json-cut-short", on_experiment("status", "@EXP"), 0,
          ("warning:", "plan.json: not valid JSON", "6 done"), plant=lambda b: truncate(b.experiment() / "plan.json")),
    Fault("status-status-json-cut-short", on_experiment("status", "@EXP", "--stale-after", "1"), 0,
          ("damaged", "status.json: not valid JSON", "5 done"),
          plant=lambda b: (truncate(b.cell(b.experiment()) / "status.json"),
                           (b.cell(b.root / "exp") / "metrics.parquet").unlink())),
    Fault("status-metrics-empty", on_experiment("status", "@EXP"), 0,
          ("damaged", "metrics.parquet: not a readable Parquet file",
           "5 done, 0 stopped, 0 running, 0 failed, 1 damaged"),
          plant=damaged_cell_file("metrics.parquet", lambda p: p.write_bytes(b""))),
    Fault("status-metrics-cut-short", on_experiment("status", "@EXP"), 0, ("1 damaged", "metrics.parquet"),
          plant=damaged_cell_file("metrics.parquet", truncate)),
    Fault("status-stopped-json-garbage", on_experiment("status", "@EXP"), 0,
          ("damaged", "stopped.json: not valid JSON", "9 bytes"),
          plant=lambda b: ((b.cell(b.experiment()) / "metrics.parquet").rename(b.root / "moved.parquet"),
                           (b.cell(b.root / "exp") / "stopped.json").write_bytes(b"\x00\x01garbage"))),
    Fault("status-folder-where-metrics-file-was", on_experiment("status", "@EXP"), 0,
          ("a folder where a file should be",),
          plant=damaged_cell_file("metrics.parquet", lambda p: (p.unlink(), p.mkdir()))),
    Fault("status-killed-write-left-a-temporary", on_experiment("status", "@EXP", "--stale-after", "1"), 0,
          ("5 done", "status 'done' without results"),
          plant=damaged_cell_file("metrics.parquet", lambda p: p.rename(p.with_name("metrics.parquet.tmp-dead")))),
    Fault("status-status-json-without-state", on_experiment("status", "@EXP"), 0, ("damaged", "no valid state"),
          plant=lambda b: ((b.cell(b.experiment()) / "metrics.parquet").unlink(),
                           (b.cell(b.root / "exp") / "status.json").write_text('{"progress": 1}'))),
    Fault("status-of-a-folder-that-is-no-experiment", lambda b: ["status", str(b.root)], 2,
          ("not an experiment directory",)),
    Fault("status-of-a-file", lambda b: ["status", str(b.synonyms)], 2, ("not an experiment directory",)),
    Fault("status-stale-after-negative", on_experiment("status", "@EXP", "--stale-after", "-5"), 2,
          ("--stale-after: must be a positive",), plant=lambda b: b.experiment()),
    Fault("status-without-sweep-yaml", on_experiment("status", "@EXP"), 2, ("no sweep.yaml",),
          plant=lambda b: (b.experiment() / "sweep.yaml").unlink()),
]

REPORT = ("report", "@EXP", "--resamples", "200")
REPORT_FAULTS = [
    Fault("report-metrics-cut-short", on_experiment(*REPORT), 0,
          ("| Baseline |", "damaged result file left out", "metrics.parquet: not a readable Parquet file"),
          plant=damaged_cell_file("metrics.parquet", truncate)),
    Fault("report-metrics-empty", on_experiment(*REPORT), 0, ("| Baseline |", "damaged result file left out"),
          plant=damaged_cell_file("metrics.parquet", lambda p: p.write_bytes(b""))),
    Fault("report-plan-json-cut-short", on_experiment(*REPORT), 0, ("plan.json", "planned seed counts unknown"),
          plant=lambda b: truncate(b.experiment() / "plan.json")),
    Fault("report-experiment-json-cut-short", on_experiment(*REPORT), 2, ("experiment.json: line", "invalid JSON"),
          plant=lambda b: truncate(b.experiment() / "experiment.json", 0.3)),
    Fault("report-predictions-cut-short", on_experiment(*REPORT), 0,
          ("example-level test skipped", "predictions.parquet", "damaged"),
          plant=damaged_cell_file("predictions.parquet", truncate)),
    Fault("report-every-metrics-file-damaged", on_experiment(*REPORT), 2, ("no finished trials", "6 damaged"),
          plant=lambda b: [truncate(p) for p in b.experiment().glob("results/*/seed-*/metrics.parquet")]),
    Fault("report-out-is-a-folder", on_experiment(*REPORT, "--out", "@EXP"), 2,
          ("--out:", "is a folder; name the report's file"), plant=lambda b: b.experiment()),
    Fault("report-out-in-a-missing-folder", on_experiment(*REPORT, "--out", "@EXP/no/such/report.md"), 2,
          ("--out: folder",), plant=lambda b: b.experiment()),
    Fault("report-summary-is-a-folder", on_experiment(*REPORT, "--summary", "@EXP"), 2, ("--summary:", "is a folder"),
          plant=lambda b: b.experiment()),
    Fault("report-figures-below-a-file", on_experiment(*REPORT, "--figures", "@EXP/sweep.yaml/figs"), 2,
          ("--figures:",), plant=lambda b: b.experiment()),
    Fault("report-of-nothing", lambda b: ["report", str(b.root / "nowhere")], 2, ("not an experiment directory",)),
    Fault("report-unknown-format", on_experiment("report", "@EXP", "--format", "docx"), 2, ("invalid choice",),
          plant=lambda b: b.experiment()),
    Fault("report-alpha-out-of-range", on_experiment("report", "@EXP", "--alpha", "5"), 2, ("--alpha must lie",),
          plant=lambda b: b.experiment()),
]

DEMO_FAULTS = [
    Fault("demo-fresh-on-the-storage-folder", lambda b: ["demo", "--config", b.demo_config(), "--output",
                                                         str(b.root), "--fresh"], 2,
          ("does not hold a demo experiment", "nothing deleted"), plant=lambda b: b.experiment()),
    Fault("demo-fresh-on-a-non-demo-experiment", lambda b: ["demo", "--config", b.demo_config(), "--output",
                                                            str(b.root / "exp"), "--fresh"], 2,
          ("does not hold a demo experiment",), plant=lambda b: b.experiment()),
    Fault("demo-fresh-with-other-files-inside", lambda b: ["demo", "--config", b.demo_config(), "--output",
                                                           str(b.root / "demo"), "--fresh"], 2,
          ("holds more than the demo's experiment", "thesis.tex", "nothing deleted"),
          plant=lambda b: b.fake_demo(extra="thesis.tex")),
    Fault("demo-output-is-a-file", lambda b: ["demo", "--config", b.demo_config(), "--output", str(b.synonyms)], 2,
          ("--output:", "is a file")),
    Fault("demo-num-cpus-zero", lambda b: ["demo", "--config", b.demo_config(), "--num-cpus", "0"], 2,
          ("--num-cpus: must be at least 1",)),
]

CLI_FAULTS = [
    Fault("no-command", lambda b: [], 2, ("required: command",)),
    Fault("unknown-command", lambda b: ["train"], 2, ("invalid choice: 'train'",)),
    Fault("run-without-config", lambda b: [RUN], 2, ("the following arguments are required: config",)),
    Fault("run-unknown-option", lambda b: [RUN, b.config(), "--gpus", "1"], 2, ("unrecognized arguments: --gpus",)),
]

FAULTS = (CONFIG_FAULTS + PATH_FAULTS + DATA_FAULTS + SYNONYM_FAULTS + RESOURCE_FAULTS + EXPERIMENT_FAULTS
          + STATUS_FAULTS + REPORT_FAULTS + DEMO_FAULTS + CLI_FAULTS)


def _demo_config(self: Bench) -> str:
    """The demo command on the tiny synthetic world (the refusals come before any world is built)."""
    return self.config("demo.yaml", experiment="demo", model="synthetic",
                       data={"source": "synthetic", "synthetic_preset": "tiny", "path": str(self.root / "world")},
                       methods={"baseline": {}})


def _fake_demo(self: Bench, extra: str) -> None:
    """A demo experiment folder (its sweep.yaml) plus a file of the user's."""
    from sweeper.config import load_config
    from sweeper.schema import dump_config

    folder = self.root / "demo"
    folder.mkdir()
    (folder / "sweep.yaml").write_text(dump_config(load_config(self.demo_config())))
    (folder / "results").mkdir()
    (folder / extra).write_text("\\documentclass{article}")


Bench.demo_config = _demo_config
Bench.fake_demo = _fake_demo


def test_the_table_covers_every_class_with_enough_rows():
    assert len(FAULTS) >= 60
    assert len({fault.id for fault in FAULTS}) == len(FAULTS)


@pytest.fixture
def bench(tmp_path, tiny_world, reference_experiment):
    (tmp_path / "bench").mkdir()
    return Bench(tmp_path / "bench", tiny_world, reference_experiment)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_fault(fault, bench, monkeypatch, capsys):
    for name, value in fault.env.items():
        monkeypatch.setenv(name, value.replace("@PORT", str(free_port())))
    fault.plant(bench)
    argv = [a.replace("@ROOT", str(bench.root)).replace("@SYN", str(bench.synonyms)) for a in fault.argv(bench)]
    before = listing(bench.root)
    import ray

    def no_ray(*args, **kwargs):
        raise AssertionError("the row reached ray.init: its fault was not refused before Ray")

    monkeypatch.setattr(ray, "init", no_ray)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code == fault.code, output[-3000:]
    for words in fault.says:
        assert words in output, f"{words!r} not in:\n{output[-3000:]}"
    for words in fault.absent:
        assert words not in output
    if fault.code == 2:
        assert captured.err.strip(), "a refusal says why on stderr"
    assert listing(bench.root) == before, "the command changed files in the workspace"
