"""`python tests/ray_node.py GCS_ADDRESS`: one Ray worker node joined on loopback, as Cluster.add_node starts it.

For tests that need a node in another process environment than the test's (a mount namespace of its
own); `ray start` cannot be used there, as it resolves 127.0.0.1 to the machine's outward address.
Blocks until killed; the caller stops it and its processes by PID.
"""

import os
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray._private.node  # noqa: E402
import ray._private.parameter  # noqa: E402

if __name__ == "__main__":
    params = ray._private.parameter.RayParams(
        gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0,
        object_store_memory=150 * 1024 * 1024, min_worker_port=0, max_worker_port=0, include_log_monitor=False,
        node_manager_port=0)
    params.dashboard_agent_listen_port = None
    ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    while True:
        time.sleep(3600)
