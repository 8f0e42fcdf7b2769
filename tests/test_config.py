"""The sweep-config refusal corpus: every bad input is refused by name, line and allowed values.

Each bad configuration is the valid BASE below with a few lines replaced, so the expected line
numbers can be read off BASE. A handful go through the real CLI to show exit code 2, the message
on stderr, nothing written and Ray never started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sweeper.config import load_config
from sweeper.schema import dump_config
from sweeper.yaml_errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# Line numbers, for reading the cases:   1 experiment, 2 task, 3-4 data, 5 languages, 6 generalized,
# 7-12 methods (8 baseline, 9 adv, 10 rs_rp, 11 rs_da, 12 rs_syntax), 13 seeds, 14-16 training,
# 17 resources, 18 storage; 19 and on: appended.
BASE = """\
experiment: corpus
task: pawsx
data:
  source: hub
languages: [en, de, fr]
generalized: false
methods:
  baseline: {}
  adv: {epsilon: [0.1, 0.5]}
  rs_rp: {epsilon: [0.1]}
  rs_da: {m: [10], synonyms: @ROOT@/synonyms.json}
  rs_syntax: {m: [3]}
seeds: 5
training:
  learning_rate: 2.0e-5
  precision: auto
resources: {cpu: 1, gpu: 0}
storage: @ROOT@/runs
"""
OPTUNA = "search:\n  algorithm: optuna\n  num_samples: 4\n  space:\n"  # lines 19-22; the parameter on 23
TSV_LANGUAGES = ("en", "de", "sw")


@dataclass(frozen=True)
class Case:
    """A bad configuration: BASE with `edits` (line -> new text), and what its refusal must say."""

    id: str
    edits: dict[int, str]
    line: int | None  # None: the message names the file and the problem but no single setting
    setting: str | None
    says: tuple[str, ...] = field(default=())


CASES = [
    # unknown settings, with the allowed ones
    Case("unknown-top-level-key", {19: "bogus: 1"}, 19, "bogus",
         ("unknown setting 'bogus'", "allowed: experiment, task, model, data, languages")),
    Case("unknown-nested-key", {16: "  precision: auto\n  epoch: 3"}, 17, "training.epoch",
         ("unknown setting 'epoch'", "allowed: epochs, learning_rate, per_device_batch_size")),
    Case("unknown-method-override-key", {10: "  rs_rp: {epsilon: [0.1], training: {epoch: 2}}"}, 10,
         "methods.rs_rp.training.epoch", ("allowed: epochs, learning_rate, max_updates",)),
    Case("unknown-method", {8: "  baseline: {}\n  fgsm: {}"}, 9, "methods.fgsm",
         ("unknown setting 'fgsm'", "allowed: baseline, adv, rs_rp, rs_da, rs_syntax")),
    Case("unknown-distribution-key", {19: OPTUNA + "    learning_rate: {loguniform: [1.0e-5, 1.0e-4], log: true}"},
         23, "search.space.learning_rate.log", ("allowed: loguniform, uniform, choice",)),
    Case("unknown-data-source", {4: "  source: s3"}, 4, "data.source",
         ("unknown value 's3'", "allowed: hub, local_hub, tsv, synthetic")),
    # wrong types
    Case("seeds-word", {13: "seeds: ten"}, 13, "seeds",
         ("a count (an integer >= 1) or a non-empty list of distinct integers", "got 'ten'")),
    Case("seeds-fraction", {13: "seeds: 2.5"}, 13, "seeds", ("got 2.5",)),
    Case("seeds-boolean", {13: "seeds: true"}, 13, "seeds", ("got True",)),
    Case("epsilon-word", {10: "  rs_rp: {epsilon: big}"}, 10, "methods.rs_rp.epsilon[0]",
         ("valid number", "got 'big'")),
    Case("cpu-word", {17: "resources: {cpu: x, gpu: 0}"}, 17, "resources.cpu", ("valid number", "got 'x'")),
    Case("m-fraction", {11: "  rs_da: {m: [2.5], synonyms: @ROOT@/synonyms.json}"}, 11, "methods.rs_da.m[0]",
         ("valid integer", "got 2.5")),
    Case("epochs-boolean", {16: "  precision: auto\n  epochs: yes"}, 17, "training.epochs",
         ("expected a number, got the boolean True",)),
    Case("generalized-word", {6: "generalized: maybe"}, 6, "generalized", ("valid boolean", "got 'maybe'")),
    Case("languages-not-a-list", {5: "languages: en"}, 5, "languages", ("valid list", "got 'en'")),
    # grids
    Case("empty-epsilon-grid", {10: "  rs_rp: {epsilon: []}"}, 10, "methods.rs_rp.epsilon",
         ("epsilon grid is empty",)),
    Case("empty-m-grid", {12: "  rs_syntax: {m: []}"}, 12, "methods.rs_syntax.m", ("m grid is empty",)),
    Case("negative-epsilon", {9: "  adv: {epsilon: [0.1, -0.5]}"}, 9, "methods.adv.epsilon",
         ("finite number > 0", "got -0.5")),
    Case("zero-epsilon", {10: "  rs_rp: {epsilon: 0}"}, 10, "methods.rs_rp.epsilon", ("> 0", "got 0.0")),
    Case("infinite-epsilon", {10: "  rs_rp: {epsilon: [.inf]}"}, 10, "methods.rs_rp.epsilon", ("got inf",)),
    Case("m-zero", {12: "  rs_syntax: {m: [0]}"}, 12, "methods.rs_syntax.m", ("must be >= 1", "got 0")),
    Case("duplicate-epsilon", {9: "  adv: {epsilon: [0.1, 0.1]}"}, 9, "methods.adv.epsilon",
         ("duplicates [0.1]",)),
    Case("epsilon-missing", {10: "  rs_rp: {}"}, 10, "methods.rs_rp.epsilon",
         ("required: a list of epsilon values", "search.space.epsilon")),
    # seeds
    Case("duplicate-seeds", {13: "seeds: [1, 2, 1]"}, 13, "seeds", ("duplicate seed(s) [1]",)),
    Case("empty-seed-list", {13: "seeds: []"}, 13, "seeds", ("non-empty list", "got []")),
    Case("zero-seeds", {13: "seeds: 0"}, 13, "seeds", ("integer >= 1", "got 0")),
    Case("negative-seed", {13: "seeds: [-1, 2]"}, 13, "seeds", ("integers >= 0", "got [-1, 2]")),
    # task and languages
    Case("unknown-task", {2: "task: mnli"}, 2, "task", ("unknown value 'mnli'", "allowed: pawsx, xnli")),
    Case("unknown-hub-language", {5: "languages: [en, de, xx]"}, 5, "languages",
         ("unknown language(s) ['xx']", "data.source 'hub'", "allowed: en, de, es, fr, ja, ko, zh")),
    Case("language-of-the-other-task", {2: "task: xnli", 5: "languages: [en, ja]"}, 5, "languages",
         ("['ja']", "task 'xnli'", "allowed: en, ar, bg, de, el, es, fr, hi, ru, sw, th, tr, ur, vi, zh")),
    Case("unknown-tsv-language", {4: "  source: tsv\n  path: @ROOT@/tsv"}, 6, "languages",
         ("unknown language(s) ['fr']", "data.source 'tsv'", "allowed: en, de, sw")),
    Case("without-english", {5: "languages: [de, fr]"}, 5, "languages", ("must include the source language 'en'",)),
    Case("duplicate-language", {5: "languages: [en, de, de]"}, 5, "languages", ("duplicate language(s) ['de']",)),
    Case("empty-languages", {5: "languages: []"}, 5, "languages", ("empty list", "leave languages out")),
    Case("generalized-one-language", {5: "languages: [en]", 6: "generalized: true"}, 6, "generalized",
         ("needs at least two", "['en']")),
    # method and training values
    Case("bad-injection-point", {10: "  rs_rp: {epsilon: [0.1], injection: output}"}, 10, "methods.rs_rp.injection",
         ("unknown value 'output'", "allowed: word_embeddings, embeddings_output")),
    Case("bad-precision", {16: "  precision: fp16"}, 16, "training.precision",
         ("unknown value 'fp16'", "allowed: auto, bf16, fp32")),
    Case("zero-learning-rate", {15: "  learning_rate: 0"}, 15, "training.learning_rate",
         ("greater than 0", "got 0")),
    Case("negative-learning-rate", {15: "  learning_rate: -1.0e-5"}, 15, "training.learning_rate",
         ("greater than 0", "got -1e-05")),
    Case("pgd-steps-zero", {9: "  adv: {epsilon: [0.1], pgd_steps: 0}"}, 9, "methods.adv.pgd_steps",
         ("greater than or equal to 1", "got 0")),
    # resources and fault tolerance
    Case("gpu-one-and-a-half", {17: "resources: {cpu: 1, gpu: 1.5}"}, 17, "resources.gpu",
         ("0 < gpu <= 1) or a whole number", "got 1.5")),
    Case("zero-cpu", {17: "resources: {cpu: 0, gpu: 0}"}, 17, "resources.cpu", ("greater than 0", "got 0")),
    Case("negative-max-failures", {19: "max_failures: -1"}, 19, "max_failures",
         ("greater than or equal to 0", "got -1")),
    Case("zero-checkpoint-every", {19: "checkpoint_every: 0"}, 19, "checkpoint_every",
         ("greater than or equal to 1", "got 0")),
    Case("shared-token-cache", {19: "cache_dir: s3://bucket/cache"}, 19, "cache_dir",
         ("each node's own disk", "got 's3://bucket/cache'")),
    # protocol and search
    Case("asha-with-paper-protocol", {19: "asha: {grace_period: 1}"}, 19, "asha",
         ("selection.protocol 'two_stage'", "got protocol 'paper'")),
    Case("search-seeds-exceed-seeds", {19: "selection: {protocol: two_stage, search_seeds: 6}"}, 19,
         "selection.search_seeds", ("6 search seeds exceed the 5 seeds",)),
    Case("length-grouping-typo", {16: "  precision: auto\n  length_grouping: sharded"}, 17, "training.length_grouping",
         ("give true (grouped per seed), shared", "or false", "got 'sharded'")),
    Case("seeds-per-trial-exceed-seeds", {19: "execution: {seeds_per_trial: 6}"}, 19,
         "execution.seeds_per_trial", ("6 seeds per trial exceed the 5 seeds",)),
    Case("seeds-per-trial-zero", {19: "execution: {seeds_per_trial: 0}"}, 19,
         "execution.seeds_per_trial", ("greater than or equal to 1", "got 0")),
    Case("execution-unknown-key", {19: "execution: {seeds_per_block: 4}"}, 19,
         "execution.seeds_per_block", ("unknown setting 'seeds_per_block'", "allowed: seeds_per_trial")),
    Case("optuna-without-space", {19: "search: {algorithm: optuna, num_samples: 4}"}, 19, "search.space",
         ("needs search.space", "some of learning_rate, epsilon, m")),
    Case("optuna-without-num-samples",
         {19: "search:\n  algorithm: optuna\n  space:\n    learning_rate: {loguniform: [1.0e-5, 1.0e-4]}"},
         19, "search.num_samples", ("needs search.num_samples", "configurations to sample")),
    Case("grid-with-sampled-space", {19: "search:\n  space:\n    learning_rate: {loguniform: [1.0e-5, 1.0e-4]}"},
         21, "search.space.learning_rate", ("only learning_rate: {choice: [...]}", "grids go under methods")),
    Case("grid-with-epsilon-space", {19: "search:\n  space:\n    epsilon: {choice: [0.1, 1.0]}"},
         21, "search.space.epsilon", ("only learning_rate: {choice: [...]}",)),
    Case("grid-num-samples", {19: "search: {num_samples: 4}"}, 19, "search.num_samples",
         ("for search.algorithm 'optuna'",)),
    Case("epsilon-in-grid-and-space", {19: OPTUNA + "    epsilon: {loguniform: [0.01, 1.0]}"}, 9,
         "methods.adv.epsilon", ("also searched by search.space.epsilon", "keep one")),
    Case("searched-method-not-enabled", {11: "", 12: "", 19: OPTUNA + "    m: {choice: [1, 3]}"}, 23,
         "search.space.m", ("applies to rs_da or rs_syntax", "none of which is enabled")),
    Case("unknown-space-parameter", {19: OPTUNA + "    dropout: {uniform: [0.0, 0.5]}"}, 23,
         "search.space.dropout", ("unknown parameter 'dropout'", "allowed: learning_rate, epsilon, m")),
    Case("loguniform-low-above-high", {19: OPTUNA + "    learning_rate: {loguniform: [1.0e-4, 1.0e-5]}"}, 23,
         "search.space.learning_rate.loguniform", ("low must be < high", "[0.0001, 1e-05]")),
    Case("two-distributions", {19: OPTUNA + "    learning_rate: {uniform: [1.0e-5, 1.0e-4], choice: [1.0e-5]}"}, 23,
         "search.space.learning_rate", ("exactly one of", "got uniform, choice")),
    Case("m-searched-by-range",
         {11: "  rs_da: {synonyms: @ROOT@/synonyms.json}", 12: "  rs_syntax: {}",
          19: OPTUNA + "    m: {uniform: [1, 5]}"},
         23, "search.space.m", ("whole numbers >= 1", "choice")),
    Case("epsilon-searched-below-zero",
         {9: "  adv: {}", 10: "  rs_rp: {}", 19: OPTUNA + "    epsilon: {uniform: [-1, 1]}"},
         23, "search.space.epsilon", ("finite numbers > 0", "got [-1.0]")),
    # methods
    Case("no-method-enabled", {8: "  baseline:", 9: "", 10: "", 11: "", 12: ""}, 7, "methods",
         ("no method enabled", "allowed: baseline, adv, rs_rp, rs_da, rs_syntax", "`baseline: {}`")),
    # data and files
    Case("synthetic-model-without-synthetic-data", {19: "model: synthetic"}, 19, "model",
         ("needs data.source 'synthetic'", "got 'hub'")),
    Case("synthetic-synonyms-without-synthetic-data", {11: "  rs_da: {m: [10], synonyms: synthetic}"}, 11,
         "methods.rs_da.synonyms", ("needs data.source 'synthetic'",)),
    Case("local-data-path-missing", {4: "  source: local_hub\n  path: @ROOT@/absent"}, 5, "data.path",
         ("directory not found", "@ROOT@/absent")),
    Case("local-data-path-is-a-file", {4: "  source: tsv\n  path: @ROOT@/synonyms.json"}, 5, "data.path",
         ("is a file, not a directory",)),
    Case("tsv-directory-without-test-files", {4: "  source: tsv\n  path: @ROOT@/empty"}, 5, "data.path",
         ("no test-<lang>.tsv files",)),
    Case("synonyms-file-missing", {11: "  rs_da: {m: [10], synonyms: @ROOT@/absent.json}"}, 11,
         "methods.rs_da.synonyms", ("file not found", "@ROOT@/absent.json")),
    Case("tsv-without-path", {4: "  source: tsv"}, 3, "data.path", ("required with data.source 'tsv'",)),
    Case("revision-with-local-source", {4: "  source: tsv\n  path: @ROOT@/tsv\n  revision: main"}, 6,
         "data.revision", ("only meaningful with data.source 'hub'", "got 'tsv'")),
    # the file itself
    # the unclosed bracket is on line 2; PyYAML notices it on line 3 (issue 7: name the fault's line)
    Case("invalid-yaml", {2: "task: [pawsx"}, 2, None, ("not valid YAML", "flow sequence that starts here",
                                                        "noticed at line 3")),
    Case("duplicate-key", {19: "seeds: 3"}, 19, "seeds", ("given twice (first at line 13)",)),
    Case("bad-experiment-name", {1: "experiment: a/b"}, 1, "experiment",
         ("'a/b' cannot name the experiment's folder", "letters, digits")),
    Case("experiment-missing", {1: ""}, 2, "experiment", ("required setting is missing",)),
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """What BASE refers to: a synonyms file, a TSV directory with three test languages, an empty one."""
    (tmp_path / "synonyms.json").write_text("{}")
    (tmp_path / "tsv").mkdir()
    for language in TSV_LANGUAGES:
        (tmp_path / "tsv" / f"test-{language}.tsv").write_text("")
    (tmp_path / "empty").mkdir()
    return tmp_path


def edited(root: Path, edits: dict[int, str]) -> str:
    lines = BASE.splitlines()
    for number, text in sorted(edits.items()):
        if number <= len(lines):
            lines[number - 1] = text
        else:
            lines.append(text)
    return "\n".join(lines).replace("@ROOT@", str(root)) + "\n"


def write(root: Path, text: str, name: str = "bad.yaml") -> Path:
    path = root / name
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_the_corpus_is_large_and_its_base_is_valid(root):
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)
    sweep = load_config(write(root, edited(root, {})))
    assert (sweep.task, sweep.languages, sweep.seed_list) == ("pawsx", ["en", "de", "fr"], [0, 1, 2, 3, 4])
    assert list(sweep.methods.enabled()) == ["baseline", "adv", "rs_rp", "rs_da", "rs_syntax"]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_configuration_is_refused_by_name(root, case):
    path = write(root, edited(root, case.edits))
    message = refusal(path)
    if case.setting is not None:
        assert f"{path}:{case.line}: {case.setting}: " in message
    elif case.line is not None:
        assert f"{path}:{case.line}: " in message
    for fragment in case.says:
        assert fragment.replace("@ROOT@", str(root)) in message


@pytest.mark.parametrize("text, says", [
    ("- a\n- b\n", "1: expected a mapping of settings (`key: value` lines) at the top level, got a sequence"),
    ("just words\n", "got a scalar"),
    ("", "got nothing (the file is empty)"),
    ("# only a comment\n", "got nothing (the file is empty)"),
])
def test_top_level_that_is_not_a_mapping_is_refused(root, text, says):
    path = write(root, text)
    assert f"{path}:" in refusal(path) and says in refusal(path)


def test_every_problem_of_a_file_is_listed_at_once(root):
    path = write(root, edited(root, {2: "task: mnli", 13: "seeds: ten"}))
    message = refusal(path)
    assert "(2 problem(s))" in message
    assert f"{path}:2: task: " in message and f"{path}:13: seeds: " in message


def test_missing_file_is_a_config_error(root):
    assert "cannot read the configuration" in refusal(root / "absent.yaml")


def test_relative_local_data_path_is_reported_absolute(root, monkeypatch):
    monkeypatch.chdir(root)
    path = write(root, edited(root, {4: "  source: tsv\n  path: relative/absent"}))
    assert f"directory not found: {root / 'relative' / 'absent'}" in refusal(path)


# ------------------------------------------------------------------------------ valid files
def test_scalar_grids_become_one_element_grids(root):
    path = write(root, edited(root, {10: "  rs_rp: {epsilon: 0.25}", 12: "  rs_syntax: {m: 7}"}))
    sweep = load_config(path)
    assert sweep.methods.rs_rp.epsilon == [0.25] and sweep.methods.rs_syntax.m == [7]


@pytest.mark.parametrize("seeds, expected", [("3", [0, 1, 2]), ("[7, 3, 11]", [7, 3, 11]), ("1", [0])])
def test_seeds_as_count_or_list(root, seeds, expected):
    assert load_config(write(root, edited(root, {13: f"seeds: {seeds}"}))).seed_list == expected


def test_relative_paths_are_made_absolute(root, monkeypatch):
    monkeypatch.chdir(root)
    (root / "mine").mkdir()
    (root / "mine" / "synonyms.json").write_text("{}")
    text = edited(root, {4: "  source: tsv\n  path: tsv", 5: "languages: [en, de]",
                         11: "  rs_da: {m: [10], synonyms: mine/synonyms.json}",
                         18: "storage: runs", 19: "cache_dir: ~/token-cache"})
    sweep = load_config(write(root, text))
    assert sweep.data.path == str(root / "tsv")
    assert sweep.methods.rs_da.synonyms == str(root / "mine" / "synonyms.json")
    assert sweep.storage == str(root / "runs")
    assert sweep.cache_dir == str(Path("~/token-cache").expanduser().resolve())


def test_uris_stay_as_given(root):
    text = edited(root, {11: "  rs_da: {m: [10], synonyms: https://example.org/neighbors.json}",
                         18: "storage: s3://my-bucket/robust-xlt"})
    sweep = load_config(write(root, text))
    assert sweep.storage == "s3://my-bucket/robust-xlt"
    assert sweep.methods.rs_da.synonyms == "https://example.org/neighbors.json"


def test_yaml_1_1_exponent_without_dot_is_still_a_learning_rate(root):
    """PyYAML reads `1e-5` as a string; it must mean the number, as researchers write it."""
    assert load_config(write(root, edited(root, {15: "  learning_rate: 1e-5"}))).training.learning_rate == 1e-5


def test_valid_optuna_search(root):
    text = edited(root, {11: "  rs_da: {synonyms: @ROOT@/synonyms.json}", 12: "  rs_syntax: {}",
                         19: OPTUNA + "    m: {choice: [1, 3, 10]}\n    learning_rate: {loguniform: [1.0e-5, 1.0e-4]}"})
    sweep = load_config(write(root, text))
    assert sweep.search.algorithm == "optuna" and sweep.search.space["m"].choice == [1, 3, 10]
    assert sweep.search.space["learning_rate"].loguniform == (1e-5, 1e-4)


def test_dumped_configuration_loads_to_the_same_sweep(root):
    sweep = load_config(write(root, edited(root, {})))
    assert load_config(write(root, dump_config(sweep), "again.yaml")) == sweep


@pytest.mark.parametrize("name", ["demo.yaml", "pawsx.yaml", "xnli.yaml", "m_ablation.yaml", "pawsx-fast.yaml",
                                  "xnli-fast.yaml", "extended.yaml"])
def test_shipped_configs_load(name):
    path = REPO / "configs" / name
    if not path.exists():
        pytest.skip(f"configs/{name} is not written yet (the integrator adds it)")
    sweep = load_config(path)
    assert sweep.methods.enabled() and sweep.seed_list


# ------------------------------------------------------------------------------------ the CLI
CLI_CASES = {
    "seeds-word": ({13: "seeds: ten"}, "bad.yaml:13: seeds: "),
    "unknown-hub-language": ({5: "languages: [en, de, xx]"}, "bad.yaml:5: languages: unknown language(s) ['xx']"),
    "invalid-yaml": ({2: "task: [pawsx"}, "bad.yaml:2: not valid YAML"),
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """`python -m sweeper run bad.yaml` for each CLI case, started together to share the import time."""
    runs = {}
    for name, (edits, _) in CLI_CASES.items():
        root = tmp_path_factory.mktemp(name)
        (root / "synonyms.json").write_text("{}")
        write(root, edited(root, edits))
        env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": str(root / "ray"), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "sweeper", "run", "bad.yaml", "--output", str(root / "out")]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        runs[name] = (root, process, started)
    return {name: (root, *_finished(process, started)) for name, (root, process, started) in runs.items()}


def _finished(process: subprocess.Popen, started: float) -> tuple[int, str, str, float]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr, time.perf_counter() - started


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_refuses_with_exit_code_2_before_ray_starts(cli_runs, name):
    root, code, stdout, stderr, seconds = cli_runs[name]
    assert code == 2, stderr
    assert stderr.startswith("error: ") and CLI_CASES[name][1] in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert "Started a local Ray instance" not in stdout + stderr
    assert not (root / "ray").exists(), "Ray created its session directory"
    assert not (root / "out").exists() and not (root / "runs").exists(), "something was written"
    assert seconds < 60



def test_the_training_settings_are_the_trials_training_spec():
    """A setting added to one side only would be refused by the config or dropped before the trial."""
    import dataclasses

    from sweeper.schema import Training
    from trainables.spec import TrainingSpec

    spec = {f.name: f.default for f in dataclasses.fields(TrainingSpec)}
    assert list(Training.model_fields) == list(spec)
    assert {name: f.default for name, f in Training.model_fields.items()} == spec


def test_the_data_settings_default_as_the_trials_data_source():
    import dataclasses

    from sweeper.schema import Data
    from trainables.spec import DataSource

    spec = {f.name: f.default for f in dataclasses.fields(DataSource)}
    for shared in ("path", "revision", "allow_empty"):
        assert Data.model_fields[shared].default == spec[shared], shared
    assert Data.model_fields["source"].default == spec["kind"]  # named source in the YAML, kind in the trial
