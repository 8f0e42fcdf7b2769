"""Sweeps on an S3-compatible store: a real S3 server (moto) on a loopback port, both ways of naming it.

- `storage: s3://bucket/x?endpoint_override=HOST:PORT&scheme=http` (MinIO, Ceph, R2 in one string): a
  sweep, then `status` and `report` reading the experiment from the bucket;
- plain `s3://bucket/x` with `AWS_ENDPOINT_URL` in the environment: the driver SIGKILLed mid-sweep and
  `--resume`, which ends with the uninterrupted results and reruns no finished cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from trainables import results

from storage_helpers import count_calls, experiment_of
from sweep_helpers import (all_metrics, descendants, free_port, run_driver, start_driver, stop_tree, wait_for,
                           write_config)

pytestmark = pytest.mark.slow

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1, started here and stopped by its PID; yields host:port."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # the drivers this module starts inherit them
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError(f"moto_server did not listen on port {port} within 30 s")
                time.sleep(0.1)
        endpoint = f"127.0.0.1:{port}"
        filesystem(endpoint).create_dir("robust")  # the bucket
        yield endpoint
    finally:
        stop_tree(server.pid)
        log.close()
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)


def filesystem(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True,
                             access_key="testing", secret_key="testing", region="us-east-1")


def cell_files(fs: pafs.FileSystem, experiment: str, name: str) -> dict[tuple[str, int], str]:
    """(config_id, seed) -> bucket path of every `name` file of an experiment on the bucket."""
    selector = pafs.FileSelector(f"{experiment}/results", recursive=True, allow_not_found=True)
    found = {}
    for info in fs.get_file_info(selector):
        if info.is_file and info.base_name == name:
            config_id, seed = info.path.rsplit("/", 3)[-3:-1]
            found[(config_id, int(seed.removeprefix("seed-")))] = info.path
    return found


def metrics_on_bucket(fs: pafs.FileSystem, experiment: str) -> pd.DataFrame:
    frames = [pq.read_table(path, filesystem=fs).to_pandas()
              for path in cell_files(fs, experiment, "metrics.parquet").values()]
    frame = pd.concat(frames, ignore_index=True).drop(columns="experiment")
    return frame.sort_values(["config_id", "seed", "split", "lang1", "lang2"]).reset_index(drop=True)


def read_json(endpoint: str, path: str) -> dict:
    """A JSON file on the bucket, read the product's way (a read that overlaps a rewrite is retried)."""
    return results.read_json(f"s3://{path}?endpoint_override={endpoint}&scheme=http")


def test_sweep_status_and_report_with_the_endpoint_in_the_storage_uri(s3_server, tiny_world, reference_experiment,
                                                                       tmp_path):
    storage = f"s3://robust/query?endpoint_override={s3_server}&scheme=http"
    # a checkpoint every 5th of the 20 evaluations: each costs moto a dozen requests (upload, state, old one deleted)
    config = write_config(tmp_path / "sweep.yaml", tiny_world, storage, tmp_path / "cache", checkpoint_every=5)
    log = tmp_path / "driver.log"
    assert run_driver(["run", str(config), "--num-cpus", "2"], log) == 0, log.read_text()[-3000:]
    experiment = f"s3://robust/query/sweep-test?endpoint_override={s3_server}&scheme=http"
    assert f"all cells done: results in s3://robust/query/sweep-test/results?endpoint_override={s3_server}" \
        in log.read_text()
    fs = filesystem(s3_server)
    pd.testing.assert_frame_equal(metrics_on_bucket(fs, "robust/query/sweep-test"), all_metrics(reference_experiment))
    assert fs.get_file_info("robust/query/sweep-test/tune-grid").type == pafs.FileType.Directory  # Tune's state too

    status = subprocess.run([sys.executable, "-m", "sweeper", "status", experiment], capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0, status.stderr
    assert "total: 6 done, 0 stopped, 0 running, 0 failed, 0 damaged, 0 missing of 6 cells" in status.stdout
    report = subprocess.run([sys.executable, "-m", "sweeper", "report", experiment, "--resamples", "200"],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "| Baseline |" in report.stdout and "| RS-RP (eps=0.1) |" in report.stdout


def test_status_read_while_the_trial_rewrites_it_is_never_taken_for_damaged(s3_server):
    """status.json is replaced at every evaluation while `status` and the driver's progress read it. On an object
    store a read can overlap the replacing PUT (seen in CI: a torn body, `Extra data`, from moto), and one such read
    must not make a running cell look damaged."""
    cell = f"s3://robust/torn?endpoint_override={s3_server}&scheme=http"
    fs, path = filesystem(s3_server), "robust/torn/status.json"
    results.write_status(cell, "running", pad="")
    stop, rewrites = threading.Event(), [0]

    def rewrite() -> None:  # bodies of changing length, as progress, update and evaluation grow
        lengths = random.Random(0)
        while not stop.is_set():
            results.write_status(cell, "running", pad="y" * lengths.randint(10, 300), update=rewrites[0])
            rewrites[0] += 1
            time.sleep(0.005)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    damaged, torn_raw, reads = [], 0, 0
    try:
        deadline = time.time() + 8
        while time.time() < deadline:
            with fs.open_input_stream(path) as stream:  # what a single read gives
                try:
                    json.loads(stream.read())
                except ValueError:
                    torn_raw += 1
            try:
                assert results.read_status(cell)["state"] == "running"
            except results.DamagedFile as error:
                damaged.append(str(error))
            reads += 1
    finally:
        stop.set()
        writer.join(timeout=30)
    assert rewrites[0] > 100 and reads > 100
    assert damaged == [], f"{len(damaged)} of {reads} reads damaged ({torn_raw} single reads torn): {damaged[:2]}"


def test_status_on_s3_is_what_it_is_on_disk_from_one_listing_and_no_existence_checks(s3_server, tmp_path,
                                                                                    monkeypatch):
    """A cell of every state, copied to the bucket: the same table as on disk (damaged files named by their s3://
    URI, query and all), from one listing of results/ and one read per cell that needs one, made in parallel."""
    from sweeper.status import status_table

    local = experiment_of(tmp_path / "exp", 4)
    pafs.copy_files(str(local), "robust/scale/exp", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem(s3_server))
    uri = f"s3://robust/scale/exp?endpoint_override={s3_server}&scheme=http"
    now = time.time()
    on_disk = status_table(str(local), 60, now)
    counted = count_calls(monkeypatch)
    on_s3 = status_table(uri, 60, now)
    assert on_s3.state.tolist() == on_disk.state.tolist()
    query = f"?endpoint_override={s3_server}&scheme=http"
    for s3_detail, disk_detail in zip(on_s3.detail, on_disk.detail):
        if s3_detail.startswith("s3://"):  # damaged: the file by its URI, then pyarrow's own words (paths differ)
            assert s3_detail.replace("s3://robust/scale/exp", str(local)).replace(query, "").split(" (")[0] == \
                disk_detail.split(" (")[0]
        else:
            assert s3_detail == disk_detail
    assert "metrics.parquet" + query + ": not a readable Parquet file" in " ".join(on_s3.detail)
    assert counted.calls["list"] == 1 and "get_file_info" not in counted.calls, counted.calls
    assert counted.calls["open"] <= 2 * 4 + 2 * 6 + 1, counted.calls


def test_driver_killed_then_resume_on_s3_with_aws_endpoint_url(s3_server, tiny_world, reference_experiment, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_server}")  # pyarrow reads it: plain s3:// URIs
    config = write_config(tmp_path / "sweep.yaml", tiny_world, "s3://robust/plain", tmp_path / "cache",
                          checkpoint_every=5)  # fewer uploads to moto; the kill is of the driver, not of a trial
    fs, experiment = filesystem(s3_server), "robust/plain/sweep-test"
    log = tmp_path / "driver.log"

    def running_far_from_end() -> bool:
        done = cell_files(fs, experiment, "metrics.parquet")
        states = [read_json(s3_server, p) for p in cell_files(fs, experiment, "status.json").values()]
        return len(done) >= 2 and any(s["state"] == "running" and s.get("progress", 0) < 0.7 for s in states)

    proc, tree = start_driver(["run", str(config), "--num-cpus", "2"], log), []
    try:
        wait_for(running_far_from_end, timeout=300, what="two finished cells and a running one", proc=proc, log=log)
        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_tree(proc.pid, tree)
    finished = {key: hashlib.sha256(fs.open_input_stream(path).read()).hexdigest()
                for key, path in cell_files(fs, experiment, "metrics.parquet").items()}
    assert 2 <= len(finished) < 6

    resumed = tmp_path / "resume.log"
    assert run_driver(["run", str(config), "--num-cpus", "2", "--resume"], resumed) == 0, resumed.read_text()[-3000:]
    pd.testing.assert_frame_equal(metrics_on_bucket(fs, experiment), all_metrics(reference_experiment))
    after = cell_files(fs, experiment, "metrics.parquet")
    assert len(after) == 6
    statuses = {key: read_json(s3_server, path) for key, path in cell_files(fs, experiment, "status.json").items()}
    for key, digest in finished.items():  # finished before the kill: never trained again
        assert hashlib.sha256(fs.open_input_stream(after[key]).read()).hexdigest() == digest
        assert statuses[key]["attempt"] == 1
