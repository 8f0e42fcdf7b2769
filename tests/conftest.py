"""Test-wide environment: offline Hub, loopback Ray, small thread counts, an isolated HF cache."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before anything imports transformers/datasets/ray: an offline Hub load would otherwise wait on
# timeouts, and Ray must bind to loopback only.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
if "HF_HOME" not in os.environ:  # a private Hugging Face cache per test session, removed at exit
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="robust-xlt-test-hf-")
    atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The synthetic world's tiny preset, built once per test session."""
    from trainables.synthetic import WorldSpec, ensure_world

    return ensure_world(tmp_path_factory.mktemp("world"), spec=WorldSpec.tiny(), seed=0)


@pytest.fixture(scope="session")
def reference_experiment(tiny_world, tmp_path_factory):
    """One uninterrupted sweep on the tiny world (sweep_helpers.write_config: baseline and RS-RP x 3 seeds),
    shared by the tests that compare against it and the fault rows that damage copies of it. Read only."""
    from sweep_helpers import run_driver, write_config

    root = tmp_path_factory.mktemp("reference")
    config = write_config(root / "sweep.yaml", tiny_world, root / "runs", root / "cache")
    log = root / "driver.log"
    code = run_driver(["run", str(config), "--output", str(root / "runs" / "exp"), "--num-cpus", "2"], log)
    assert code == 0, log.read_text()[-3000:]
    return root / "runs" / "exp"
