"""Ray for a sweep: our own embedded instance, or a running cluster reached within a time limit.

Without `--address` the sweeper always starts a Ray of its own (`address="local"`): a plain
`ray.init()` would join any Ray already running on the machine (someone else's, or a stale one named
in /tmp/ray/ray_current_cluster) and wait on resources and code that are not ours. With `--address`
the address is resolved and probed before `ray.init`, which would otherwise retry for minutes.

Trials that can never start are refused before the first one: against what the embedded Ray will
have, against the cluster's nodes and its autoscaler's node types (where Ray publishes them), and a
probe file shows that every node sees the storage. What cannot be known up front (an autoscaler that
does not publish its node types) is watched: when trials stay pending with none running for
`placement_timeout` seconds, the run stops and names the resource no node offers.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from ray import tune

from sweeper.yaml_errors import ConfigError, Where
from sweeper.preflight import within
from trainables import results

CONNECT_TIMEOUT_S = 60.0  # ray.init against a cluster; Ray's own retries run for minutes
PROBE_TIMEOUT_S = 60.0  # every node answers the storage probe within this
EMBEDDED_PLACEMENT_TIMEOUT_S = 60.0
CLUSTER_PLACEMENT_TIMEOUT_S = 900.0  # an autoscaler may take several minutes to start a GPU node
STORAGE_ADVICE = ("put `storage` where every node reads and writes the same files: an s3:// URI (README, "
                  "'Running on a GPU cluster') or a shared file system mounted at the same path on every node")


class PlacementTimeout(Exception):
    """Trials stayed pending with none running for the placement timeout; the message names what is missing."""


# ------------------------------------------------------------------------------------ requests
def trial_request(resources: Any) -> dict[str, float]:
    """What one trial asks Ray for, in Ray's resource names."""
    return {"CPU": float(resources.cpu), "GPU": float(resources.gpu)}


def fits(request: Mapping[str, float], offered: Mapping[str, float]) -> bool:
    return all(offered.get(name, 0.0) >= amount for name, amount in request.items() if amount > 0)


def _field(name: str) -> str:
    return f"resources.{name.lower()}"


def _amounts(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {resources.get(name, 0.0):g}" for name in ("CPU", "GPU"))


def shortfall(request: Mapping[str, float], offers: Sequence[Mapping[str, float]]) -> str:
    """The first resource that no offer has enough of (GPU before CPU: the usual culprit)."""
    for name in ("GPU", "CPU"):
        if request.get(name, 0.0) > 0 and not any(o.get(name, 0.0) >= request[name] for o in offers):
            return name
    return next((n for n, a in request.items() if a > 0 and not any(o.get(n, 0.0) >= a for o in offers)), "CPU")


# ------------------------------------------------------------------------------------ embedded
def embedded_resources(num_cpus: int | None, num_gpus: float | None) -> dict[str, float]:
    """What an embedded Ray started with these options will offer (Ray's own detection otherwise)."""
    from ray._private import utils
    from ray._private.accelerators import get_accelerator_manager_for_resource

    cpus = float(num_cpus) if num_cpus is not None else float(utils.get_num_cpus())
    if num_gpus is not None:
        gpus = float(num_gpus)
    else:
        manager = get_accelerator_manager_for_resource("GPU")
        gpus = float(manager.get_current_node_num_accelerators())
        visible = manager.get_current_process_visible_accelerator_ids()
        if visible is not None:
            gpus = min(gpus, float(len(visible)))
    return {"CPU": cpus, "GPU": gpus}


def check_embedded(sweep: Any, num_cpus: int | None, num_gpus: float | None, where: Where) -> None:
    """Refuse a trial that the embedded Ray could never place, before starting it."""
    request, machine = trial_request(sweep.resources), embedded_resources(num_cpus, num_gpus)
    if fits(request, machine):
        return
    name = shortfall(request, [machine])
    raise ConfigError(f"{where(_field(name))} {_embedded_refusal(name, request, machine, num_cpus, num_gpus)}")


def _embedded_refusal(name: str, request: Mapping[str, float], machine: Mapping[str, float],
                      num_cpus: int | None, num_gpus: float | None) -> str:
    asked = f"each trial asks for {request[name]:g} {name}"
    if name == "GPU" and machine["GPU"] == 0:
        source = "--num-gpus 0" if num_gpus is not None else "Ray detects no GPU on this machine"
        return (f"{asked}, but the embedded Ray has none ({source}): set resources.gpu: 0 to train on the "
                "CPU, or run on a machine or cluster with GPUs (--address)")
    flag = "--num-cpus" if name == "CPU" else "--num-gpus"
    given = num_cpus if name == "CPU" else num_gpus
    source = f"{flag} {given:g}" if given is not None else "all of this machine's"
    return f"{asked}, but the embedded Ray has {machine[name]:g} ({source}): lower {_field(name)} or raise {flag}"


# ------------------------------------------------------------------------------------- session
@dataclass
class Session:
    """A connection to Ray; `owned` when this call started or joined it (and so ends it)."""

    owned: bool
    address: str | None

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()


def attached() -> bool:
    """Ray is already up in this process (a notebook or test that called ray.init itself): use it as it is."""
    import ray

    return ray.is_initialized()


def start(address: str | None, num_cpus: int | None, num_gpus: float | None, out: TextIO) -> Session:
    """Start our own embedded Ray (no address) or join the cluster at `address`, each within a time limit."""
    import ray

    if attached():
        return Session(owned=False, address=None)
    if address is None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray listens on 127.0.0.1 only
        # Trials share the machine's cores: OpenMP threads that spin while waiting slowed a 2-thread
        # training step from 6 ms to 150+ ms under contention (BENCHMARKS.md, bench_loop).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        _within_or_exit(CONNECT_TIMEOUT_S, "starting the embedded Ray", lambda: ray.init(
            address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False))
        return Session(owned=True, address=None)
    target, source = resolve_address(address)
    probe_address(target, source)
    try:
        _within_or_exit(CONNECT_TIMEOUT_S, f"joining the Ray cluster at {target}",
                        lambda: ray.init(address=target, log_to_driver=False))
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(f"--address: cannot join the Ray cluster at {target} ({source}): "
                          f"{results.first_line(error)}") from None
    print(f"joined the Ray cluster at {target} ({source})", file=out, flush=True)
    return Session(owned=True, address=target)


def _within_or_exit(seconds: float, what: str, call: Any) -> None:
    """Run `call` in this thread; if it has not returned after `seconds`, say so and exit 2.

    ray.init keeps signal handling to the main thread, so it cannot be moved to a worker thread;
    nothing has been written yet when this runs, so ending the process loses nothing.
    """
    def give_up() -> None:
        print(f"error: {what}: no answer within {seconds:g}s; nothing was written", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        call()
    finally:
        timer.cancel()


def resolve_address(address: str) -> tuple[str, str]:
    """(host:port, where it came from) for `--address auto|HOST:PORT|ray://HOST:PORT`."""
    from ray._private import services

    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        try:
            found = services.canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError:
            raise ConfigError("--address auto: no running Ray cluster found on this machine (start one with "
                              "`ray start --head`, give HOST:PORT, or leave --address out for the embedded Ray)") \
                from None
        return found, ("RAY_ADDRESS" if env else "found by --address auto")
    if address.startswith("ray://"):
        return address, "--address (Ray Client)"
    if services.parse_address(address) is None:
        raise ConfigError(f"--address: expected 'auto', HOST:PORT or ray://HOST:PORT, got {address!r}")
    return address, "--address"


def probe_address(target: str, source: str, timeout: float = 10.0) -> None:
    """A TCP connection to the cluster's GCS port, so that a wrong address fails in seconds, not minutes."""
    host_port = target.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    try:
        within(timeout, target, lambda: socket.create_connection((host.strip("[]"), int(port)), timeout).close())
    except (OSError, ValueError) as error:
        raise ConfigError(f"--address: no Ray cluster answers at {target} ({source}): "
                          f"{getattr(error, 'strerror', None) or error}; is it running (`ray status`)?") from None


# ------------------------------------------------------------------------------- capacity checks
def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def node_resources() -> list[dict[str, float]]:
    """What each alive node offers in all, by Ray's resource names."""
    return [{k: float(v) for k, v in node.get("Resources", {}).items()} for node in alive_nodes()]


def autoscaler_node_types() -> list[tuple[str, dict[str, float]]] | None:
    """The node types an autoscaler may start, with their resources; None where they cannot be read.

    Ray's autoscaler v2 publishes its cluster config in the GCS; the cluster launcher leaves the
    YAML on the head (`~/ray_bootstrap_config.yaml`), whose node types may name their resources.
    """
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # a private API that older or newer clusters may not offer
        config = None
    if config is not None and len(config.node_group_configs):
        return [(group.name, {k: float(v) for k, v in group.resources.items()})
                for group in config.node_group_configs if group.max_count != 0]
    bootstrap = Path("~/ray_bootstrap_config.yaml").expanduser()
    if not bootstrap.is_file():
        return None
    try:
        import yaml

        types = (yaml.safe_load(bootstrap.read_text()) or {}).get("available_node_types") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not types or not all(isinstance(t, dict) and t.get("resources") for t in types.values()):
        return None  # resources left to the cloud's instance type: not knowable here
    return [(name, {k: float(v) for k, v in t["resources"].items()}) for name, t in types.items()
            if t.get("max_workers", 1) != 0 or t.get("min_workers", 0)]


def check_placeable(sweep: Any, where: Where, embedded: bool, out: TextIO) -> None:
    """After Ray is up: refuse a trial no node (and no node type of the autoscaler) could ever hold."""
    request = trial_request(sweep.resources)
    nodes = node_resources()
    if any(fits(request, node) for node in nodes):
        return
    types = None if embedded else autoscaler_node_types()
    if types is not None and any(fits(request, offered) for _, offered in types):
        names = ", ".join(name for name, offered in types if fits(request, offered))
        print(f"no node offers {_amounts(request)} now; the autoscaler can start one ({names})", file=out, flush=True)
        return
    name = shortfall(request, nodes + [offered for _, offered in types or []])
    have = "; ".join(_amounts(node) for node in nodes) or "no nodes"
    message = f"each trial asks for {request[name]:g} {name}, but no node offers it (nodes: {have})"
    if embedded:
        raise ConfigError(f"{where(_field(name))} {message}")
    if types is not None:
        listed = "; ".join(f"{n}: {_amounts(o)}" for n, o in types)
        raise ConfigError(f"{where(_field(name))} {message}, and no node type of the autoscaler does ({listed})")
    print(f"warning: {message}; the autoscaler's node types are not known here, so the run waits up to "
          "--placement-timeout for a node that fits", file=out, flush=True)


def check_storage_seen_by_every_node(experiment_dir: str, prefix: str) -> int:
    """Write a probe file and read it back from a task on every node; refuse when some node cannot.

    A head-local folder on a multi-node cluster otherwise fails every trial at its first checkpoint.
    Returns the number of nodes checked. The probe (ours, by its random name) is removed afterwards.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe = results.join(_probe_folder(experiment_dir), f".sweeper-probe-{token}")
    results.write_bytes(probe, token.encode())
    try:
        nodes = alive_nodes()
        read = ray.remote(num_cpus=0, max_retries=0)(_read_probe)
        refs = {read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(probe): node for node in nodes}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        answers = {ref: _answer(ref) for ref in ready}
        blind = [f"node {refs[ref]['NodeID'][:8]} at {refs[ref]['NodeManagerAddress']} "
                 f"({answers.get(ref, f'no answer within {PROBE_TIMEOUT_S:g}s')})"
                 for ref in refs if answers.get(ref) != token]
    finally:
        fs, path = results.filesystem(probe)
        try:
            fs.delete_file(path)
        except OSError:
            pass
    if blind:
        raise ConfigError(f"{prefix} {len(blind)} of {len(nodes)} node(s) cannot read {experiment_dir}: "
                          f"{', '.join(blind)}; trials there would fail at their first checkpoint: {STORAGE_ADVICE}")
    return len(nodes)


def _probe_folder(experiment_dir: str) -> str:
    """Where the probe goes: the experiment folder, or (not created yet) its nearest existing ancestor."""
    return experiment_dir if "://" in experiment_dir else str(results.existing_ancestor(Path(experiment_dir)))


def _read_probe(uri: str) -> str:
    try:
        return results.read_bytes(uri).decode()
    except Exception as error:  # the node's own view: not found, permission, no credentials
        return f"cannot read it: {type(error).__name__}: {results.first_line(error, 200)}"


def _answer(ref: Any) -> str:
    import ray

    try:
        return ray.get(ref)
    except Exception as error:  # the task itself failed (the node lacks our code, died, ...)
        return f"probe failed: {type(error).__name__}"


# ------------------------------------------------------------------------------- placement watch
class PlacementWatch(tune.Callback):
    """Raises PlacementTimeout when trials stay pending, none running, for `timeout` seconds.

    Tune raises a callback's exception out of `Tuner.fit()`. The clock restarts whenever a trial runs,
    so a queue that drains slowly is never stopped; only a queue that cannot start at all is.
    """

    def __init__(self, timeout: float, request: Mapping[str, float], where_resources: str = "resources"):
        self.timeout, self.request, self.where_resources = timeout, dict(request), where_resources
        self.since: float | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, since=None)  # a restored run starts its own clock

    def on_step_end(self, iteration, trials, **info):
        pending = [t for t in trials if t.status == "PENDING"]
        if not pending or any(t.status == "RUNNING" for t in trials):
            self.since = None
            return
        self.since = self.since or time.time()
        if time.time() - self.since >= self.timeout:
            raise PlacementTimeout(self.explain(len(pending)))

    def explain(self, pending: int) -> str:
        import ray

        total, free = ray.cluster_resources(), ray.available_resources()
        nodes = node_resources()
        if any(fits(self.request, node) for node in nodes):
            why = (f"the cluster has room in total ({_amounts(total)}) but only {_amounts(free)} is free: other "
                   "work holds it")
        else:
            name = shortfall(self.request, nodes)
            why = f"no node offers {self.request[name]:g} {name} (cluster: {_amounts(total)})"
        return (f"{pending} trial(s) could not be placed for {self.timeout:g}s with none running: each asks for "
                f"{_amounts(self.request)} ({self.where_resources}); {why}")
