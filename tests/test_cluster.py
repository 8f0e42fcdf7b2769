"""Clusters that cannot hold the sweep's trials, refused before the first trial or stopped in time.

(The demo beside a foreign Ray cluster on the same machine is in test_demo.py.)

- on a cluster whose autoscaler publishes node types without a GPU, a GPU trial is refused before
  anything is written; where the node types are unknown, trials that cannot be placed stop after
  `--placement-timeout` with the missing resource named, and the folder this run created is removed;
- a node that does not see the storage folder (its own mount namespace, with an empty folder on the
  same path) makes `--address` refuse the run before the first trial.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from sweep_helpers import driver_env, ray_cluster, run_driver, stop_tree, write_config

pytestmark = pytest.mark.slow


def put_autoscaler_config(address: str, node_types: dict[str, dict[str, float]]) -> None:
    """Publish node types in the GCS the way Ray's autoscaler v2 does (a ClusterConfig proto)."""
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_put

    config = autoscaler_pb2.ClusterConfig()
    for name, resources in node_types.items():
        group = config.node_group_configs.add(name=name, max_count=10)
        for key, value in resources.items():
            group.resources[key] = int(value)
    ray.init(address=address, log_to_driver=False)
    try:
        _internal_kv_put(GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, config.SerializeToString(),
                         namespace=GCS_AUTOSCALER_STATE_NAMESPACE)
    finally:
        ray.shutdown()  # disconnects this process only


def gpu_sweep(tiny_world, tmp_path: Path) -> Path:
    return write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache",
                        resources={"cpu": 1, "gpu": 1})


def test_a_cluster_whose_node_types_lack_a_gpu_refuses_gpu_trials_before_writing(tiny_world, tmp_path):
    config, out, log = gpu_sweep(tiny_world, tmp_path), tmp_path / "runs" / "exp", tmp_path / "driver.log"
    with ray_cluster(num_cpus=1) as cluster:
        put_autoscaler_config(cluster.address, {"cpu-worker": {"CPU": 8}})
        code = run_driver(["run", str(config), "--output", str(out), "--address", cluster.address], log, timeout=120)
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert "resources.gpu: each trial asks for 1 GPU, but no node offers it" in text
    assert "no node type of the autoscaler does (cpu-worker: CPU 8, GPU 0)" in text
    assert not out.exists() and "Traceback" not in text


def test_dry_run_on_a_cluster_checks_its_nodes_and_node_types(tiny_world, tmp_path):
    config = gpu_sweep(tiny_world, tmp_path)
    cpu_only = write_config(tmp_path / "cpu.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache")
    with ray_cluster(num_cpus=1) as cluster:
        put_autoscaler_config(cluster.address, {"cpu-worker": {"CPU": 8}})
        refused, passed = tmp_path / "refused.log", tmp_path / "passed.log"
        assert run_driver(["run", str(config), "--dry-run", "--address", cluster.address], refused, timeout=120) == 2
        assert run_driver(["run", str(cpu_only), "--dry-run", "--address", cluster.address], passed, timeout=120) == 0
    assert "GPU-hours" in refused.read_text() and "no node type of the autoscaler does" in refused.read_text()
    assert "seen by all 1 node(s); a node can hold a trial" in passed.read_text()
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob(".sweeper-probe-*"))  # the probe is gone


def test_trials_no_node_can_hold_stop_after_the_placement_timeout(tiny_world, tmp_path):
    config, out, log = gpu_sweep(tiny_world, tmp_path), tmp_path / "runs" / "exp", tmp_path / "driver.log"
    with ray_cluster(num_cpus=1) as cluster:  # no autoscaler config: what nodes may come is not known
        started = time.time()
        code = run_driver(["run", str(config), "--output", str(out), "--address", cluster.address,
                           "--placement-timeout", "5"], log, timeout=180)
        elapsed = time.time() - started
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert "waits up to --placement-timeout" in text  # said before the wait, not after it
    assert "trial(s) could not be placed for 5s with none running" in text
    assert "no node offers 1 GPU (cluster: CPU 1, GPU 0)" in text
    assert "was removed: fix and run again" in text and not out.exists()  # this run's empty claim, undone
    assert elapsed < 120 and "Traceback" not in text


def test_a_node_that_cannot_see_the_storage_folder_refuses_the_run(tiny_world, tmp_path):
    unshare, storage = shutil.which("unshare"), tmp_path / "runs"
    storage.mkdir()
    probe = subprocess.run([unshare or "unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs none {storage}"], capture_output=True)
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"no private mount namespaces here (unshare: {probe.stderr.decode().strip()[:200]})")
    config, out, log = write_config(tmp_path / "sweep.yaml", tiny_world, storage, tmp_path / "cache"), \
        storage / "exp", tmp_path / "driver.log"
    with ray_cluster(num_cpus=1) as cluster:
        # a second node on this machine whose view of `storage` is an empty folder, as on another machine
        node = Path(__file__).with_name("ray_node.py")
        worker = subprocess.Popen(
            [unshare, "--mount", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs none {storage} && exec {sys.executable} {node} {cluster.address}"],
            env=driver_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            try:
                deadline = time.time() + 60
                while sum(node["Alive"] for node in ray.nodes()) < 2:
                    assert time.time() < deadline and worker.poll() is None, "the second node did not join"
                    time.sleep(0.5)
            finally:
                ray.shutdown()
            code = run_driver(["run", str(config), "--output", str(out), "--address", cluster.address], log,
                              timeout=180)
        finally:
            stop_tree(worker.pid)
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert "--output: 1 of 2 node(s) cannot read" in text and "an s3:// URI" in text
    assert list(storage.iterdir()) == []  # neither the experiment nor the probe file is left
