"""`status` and `report` of a 2,000-cell experiment on S3: time and requests, at loopback speed and 30 ms away.

The experiment is what a finished sweep leaves (sweep.yaml, experiment.json, plan.json and per cell trial.json,
predictions.parquet, metrics.parquet and a `done` status.json; analysis.testing writes the results as the trainable
does), 5 methods x 40 configurations x 10 seeds, uploaded to moto's S3 server on 127.0.0.1. Every request of
the timed commands goes through a loopback proxy that counts the requests by HTTP method and, in the second
setting, holds each one `--latency-ms` before passing it on: moto answers in 1-3 ms, a real S3 bucket in tens of
ms, and what a command costs there is its requests times that, divided by how many it has in flight at once.

Each run is `python -m sweeper status|report` in-process in a fresh interpreter (its imports done before the
clock starts) with PYTHONPATH set to the code measured: this checkout, and with `--before REV` the tree of that
commit too (`git archive`, so no worktree is made). Median of `--repeats` runs (the code before the change, 30 ms
away, runs once: minutes a run). Target: `status` under 5 s on the loopback server.

Usage: python benchmarks/bench_status_s3.py [--before REV] [--cells 2000] [--latency-ms 30] [--no-append]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.fs as pafs  # noqa: E402

from analysis.testing import Config, ExperimentSpec, config, write_experiment  # noqa: E402
from common import REPO, append_section, markdown_table  # noqa: E402  (benchmarks/ is on sys.path)

HEADING = "## `status` and `report` at scale on S3 (sweeper/status.py, analysis/load.py)"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
BUCKET, PREFIX = "robust", "bench-status/exp"
METHODS = ("baseline", "adv", "rs_rp", "rs_da", "rs_syntax")
SEEDS = tuple(range(10))
LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
HTTP_METHODS = (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"DELETE ")

CHILD = """
import contextlib, io, json, sys, time
import analysis.report, sweeper.cli, sweeper.status  # imports before the clock starts
argv = json.loads(sys.argv[1])
out = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    code = sweeper.cli.main(argv)
print(json.dumps({"code": code, "seconds": time.perf_counter() - start, "tail": out.getvalue()[-400:]}))
"""


class LatencyProxy:
    """A loopback TCP proxy in front of the S3 server: holds each HTTP request `latency` seconds before passing it
    on (one round trip to a store that far away) and counts the requests by method. One thread per direction of
    each connection, so requests in flight at once wait at once, as they would on a real network."""

    def __init__(self, upstream_port: int):
        self.upstream_port, self.latency = upstream_port, 0.0
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def reset(self, latency: float) -> None:
        with self._lock:
            self.latency, self.counts = latency, collections.Counter()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for end in (client, upstream):  # no Nagle: small writes must not wait for an ACK
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if requests and data.startswith(HTTP_METHODS):
                    with self._lock:
                        self.counts[data.split(b" ", 1)[0].decode()] += 1
                        latency = self.latency
                    time.sleep(latency)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"moto_server did not listen on port {port} within 30 s (see {log})")
            time.sleep(0.1)


def configurations(cells: int) -> tuple[Config, ...]:
    """cells / 10 seeds configurations, spread over the five methods as a paper-sized grid would be."""
    per_method = cells // len(SEEDS) // len(METHODS)
    found = []
    for method in METHODS:
        for i in range(1, per_method + 1):
            if method == "baseline":
                found.append(Config(method, f"baseline-lr{i}e-6", f"baseline lr={i}e-6"))
            elif method in ("adv", "rs_rp"):
                found.append(config(method, epsilon=round(0.001 * i, 3)))
            else:
                found.append(config(method, m=i))
    return tuple(found)


def fabricate(root: Path, cells: int) -> Path:
    """A finished experiment of `cells` cells, as a sweep leaves it (see the module docstring)."""
    configs = configurations(cells)
    spec = ExperimentSpec(name="exp", task="pawsx", languages=LANGUAGES, configs=configs, seeds=SEEDS,
                          predictions=True)
    gain = {method: 0.005 * i for i, method in enumerate(METHODS)}
    experiment = write_experiment(root / "exp", spec,
                                  lambda cfg, seed, lang1, lang2: 0.7 + gain[cfg.method] + 0.001 * seed,
                                  lambda cfg, seed: 0.8 + gain[cfg.method] + 0.0001 * (sum(map(ord, cfg.config_id)) % 50))
    now = time.time()
    for cfg in configs:
        for seed in SEEDS:
            status = {"state": "done", "updated": now, "attempt": 1, "host": "bench", "pid": 1, "started": now - 60,
                      "resumed_from_checkpoint": False, "config_label": cfg.config_label, "stage": cfg.stage,
                      "progress": 1.0}
            (experiment / "results" / cfg.config_id / f"seed-{seed}" / "status.json").write_text(json.dumps(status))
    shutil.copy(REPO / "configs" / "pawsx.yaml", experiment / "sweep.yaml")
    return experiment


def s3(port: int) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True,
                             access_key="testing", secret_key="testing", region="us-east-1")


def upload(experiment: Path, port: int) -> int:
    fs = s3(port)
    fs.create_dir(BUCKET)
    pafs.copy_files(str(experiment), f"{BUCKET}/{PREFIX}", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs, use_threads=True)
    return sum(1 for info in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{PREFIX}", recursive=True)) if info.is_file)


def measure(source: Path, argv: list[str], proxy: LatencyProxy, latency: float) -> dict:
    """One run of the command in a fresh interpreter with `source` first on the path: seconds and requests."""
    proxy.reset(latency)
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True, env=env,
                          cwd=source, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} under {source} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"{argv[0]} under {source} exited {result['code']}: {result['tail']}")
    return {**result, "requests": dict(proxy.counts)}


def old_tree(revision: str, into: Path) -> Path:
    """The code of `revision`, extracted (no git worktree is made)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000, help="cells of the experiment (default: 2000)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="held per request in the second setting")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement, the median shown (default: 3)")
    parser.add_argument("--before", metavar="REV", help="also measure the code of this commit (e.g. the change's parent)")
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    os.environ.update(CREDENTIALS)
    with tempfile.TemporaryDirectory(prefix="bench-status-") as folder:
        root = Path(folder)
        server, port = start_moto(root / "moto.log")
        proxy = None
        try:
            started = time.perf_counter()
            experiment = fabricate(root, args.cells)
            files = upload(experiment, port)
            print(f"{args.cells} cells, {files} files on the bucket ({time.perf_counter() - started:.0f} s to build)",
                  flush=True)
            proxy = LatencyProxy(port)
            uri = f"s3://{BUCKET}/{PREFIX}?endpoint_override=127.0.0.1:{proxy.port}&scheme=http"
            commands = {"status": ["status", uri], "report": ["report", uri, "--resamples", "200"]}
            sources = {"after": REPO}
            if args.before:
                sources = {f"before ({args.before})": old_tree(args.before, root / "before"), **sources}
            rows = []
            for latency in (0.0, args.latency_ms / 1000):
                for code, source in sources.items():
                    for command, command_argv in commands.items():
                        repeats = 1 if latency and code != "after" else args.repeats
                        runs = [measure(source, command_argv, proxy, latency) for _ in range(repeats)]
                        seconds = statistics.median(run["seconds"] for run in runs)
                        requests = runs[-1]["requests"]
                        total = sum(requests.values())
                        rows.append((command, code, "loopback" if not latency else f"+{args.latency_ms:g} ms",
                                     f"{seconds:.2f}", repeats, total, f"{total / args.cells:.2f}",
                                     ", ".join(f"{n} {m}" for m, n in sorted(requests.items()))))
                        print(" | ".join(map(str, rows[-1])), flush=True)
        finally:
            if proxy is not None:
                proxy.close()
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    text = (f"{args.cells} cells ({len(METHODS)} methods x {args.cells // len(SEEDS) // len(METHODS)} configurations x "
            f"{len(SEEDS)} seeds, {files} files) on moto's S3 server on loopback; every request through a counting "
            f"proxy, in the second setting held {args.latency_ms:g} ms each (a bucket that far away). `report` with "
            "--resamples 200.\n\n"
            + markdown_table(("command", "code", "store", "seconds (median)", "runs", "requests", "per cell",
                              "by method"), rows, align="lllrrrrl"))
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_status_s3.py" + (f" --before {args.before}" if args.before
                                                                          else ""), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
