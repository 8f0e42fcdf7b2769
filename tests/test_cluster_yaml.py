"""cluster.yaml passes `ray up`'s offline validation and describes the cluster the sweeps need.

`ray up` first fills in the provider's defaults and checks the result against Ray's JSON schema;
that part needs no cloud access and is what runs here. The rest pins down what the schema cannot
know: a CPU-only head, GPU workers that scale from zero, the project installed on every node, Ray
pinned to the version the driver uses, and no credentials in the file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
RAY_VERSION = "2.60.0"
CREDENTIAL_WORDS = re.compile(r"access_key|secret|token|password|credential", re.IGNORECASE)
AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict[str, Any]:
    """What `ray up` validates: the file merged with the provider's defaults."""
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every key and every scalar in the file."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
    else:
        yield path, node


def workers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: node for name, node in config["available_node_types"].items() if name != config["head_node_type"]}


def test_ray_up_offline_validation_accepts_it(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_validation_would_refuse_fractional_resources(raw):
    """The check above can fail: Ray's schema wants integer node resources."""
    broken = copy.deepcopy(raw)
    next(iter(workers(broken).values()))["resources"]["GPU"] = 0.5
    with pytest.raises(Exception, match="0.5"):
        validate_config(prepare_config(broken))


def test_no_credentials_in_the_file(raw):
    text = (REPO / "cluster.yaml").read_text()
    assert not AWS_KEY_ID.search(text)
    for where, value in walk(raw):
        assert not (isinstance(value, str) and CREDENTIAL_WORDS.search(value)), f"{where}: {value!r}"
    assert "ssh_private_key" not in raw.get("auth", {})


def test_every_node_resource_is_a_whole_number(raw):
    for name, node in raw["available_node_types"].items():
        assert node["resources"], name
        for resource, amount in node["resources"].items():
            assert type(amount) is int and amount >= 0, f"{name}.resources.{resource} = {amount!r}"


def test_head_has_no_gpu_and_workers_do(raw, prepared):
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"]["GPU"] == 0 and head["resources"]["CPU"] >= 1
    assert prepared["available_node_types"][raw["head_node_type"]]["max_workers"] == 0
    gpu_workers = workers(raw)
    assert gpu_workers
    for name, node in gpu_workers.items():
        assert node["resources"]["GPU"] >= 1, name
        assert node["node_config"]["InstanceType"].startswith(("g", "p")), name  # AWS GPU instance families
        assert node["min_workers"] == 0 and 1 <= node["max_workers"] <= raw["max_workers"], name
        assert "IamInstanceProfile" in node["node_config"], f"{name} writes results to S3 itself"


def test_setup_installs_this_project_on_every_node(raw, prepared):
    mounts = {remote: local for remote, local in raw["file_mounts"].items()}
    project = next(remote for remote, local in mounts.items() if (REPO / local).resolve() == REPO)
    install = f"pip install -q -c {project}/constraints.txt -e {project}"  # the versions CI tests together
    assert install in prepared["head_setup_commands"] and install in prepared["worker_setup_commands"]
    for excluded in (".venv", "runs", ".git"):
        assert excluded in raw["rsync_exclude"]


def test_gpu_workers_get_cuda_torch_and_the_head_cpu_torch(prepared):
    def torch_index(commands: list[str]) -> str:
        line = next(c for c in commands if "install" in c and '"torch==' in c)
        return re.search(r"--index-url (\S+)", line).group(1)

    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", torch_index(prepared["worker_setup_commands"]))
    assert torch_index(prepared["head_setup_commands"]) == "https://download.pytorch.org/whl/cpu"
    for commands in (prepared["head_setup_commands"], prepared["worker_setup_commands"]):
        torch_at = next(i for i, c in enumerate(commands) if '"torch==2.13.0"' in c)  # pinned like constraints.txt
        project_at = next(i for i, c in enumerate(commands) if " -e " in c)
        assert torch_at < project_at  # installing the project afterwards keeps the chosen torch build


def test_ray_is_pinned_to_the_drivers_version(raw, prepared):
    assert ray.__version__ == RAY_VERSION
    assert f'"ray[tune]=={RAY_VERSION}"' in (REPO / "pyproject.toml").read_text()
    for image in (raw["docker"]["head_image"], raw["docker"]["worker_image"]):
        assert image.startswith(f"rayproject/ray:{RAY_VERSION}-"), image
    assert raw["docker"]["worker_image"].endswith("-gpu") and raw["docker"]["head_image"].endswith("-cpu")
    for commands in (prepared["head_setup_commands"], prepared["worker_setup_commands"]):
        pins = [c for c in commands if re.search(r"\bray\[", c)]
        assert pins and all(f"=={RAY_VERSION}" in c for c in pins)


def test_shared_storage_is_documented_as_s3_and_the_cache_as_node_local():
    text = (REPO / "cluster.yaml").read_text()
    assert re.search(r"storage: s3://\S+", text)
    assert re.search(r"cache_dir: ~/\S+ .*node-local", text)
