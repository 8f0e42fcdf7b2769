"""What every trainables/sweeper benchmark shares: the machine line, timing summaries, worlds, appending.

A benchmark's figures mean little without the machine and its load at the time (this machine is
shared), so every section appended to BENCHMARKS.md starts with `machine_description()`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def offline_environment() -> None:
    """Before torch/transformers/datasets/Ray are imported: no Hub, Ray on loopback, quiet tokenizers.

    OpenMP threads wait passively: on a machine shared with other work, spinning threads of a
    2-thread team that cannot both run made each small training step 15-30x slower here
    (6 ms -> 150 ms for the tiny BERT); child processes (Ray workers) inherit the setting.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Ray workers and child processes import the project whatever the current directory is.
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    return names[0] if names else (platform.processor() or platform.machine())


def library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"Python {platform.python_version()}"]
    for package in ("torch", "transformers", "datasets", "ray", "numpy", "pandas", "scipy", "pyarrow"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def machine_description() -> str:
    """CPU model, cores, RAM, versions, date and load average: what the figures depend on."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M')}; {cpu_model()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB RAM; "
            f"{library_versions()}; load average {load}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")


def append_section(heading: str, command: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Append one section to BENCHMARKS.md in a single O_APPEND write under an advisory lock.

    Other benchmarks append to the same file at the same time; a read-modify-replace could drop
    their sections, while one appending write never interleaves with another and never leaves a
    half section behind.
    """
    text = f"\n{heading}\n\n`{command}` ({machine_description()})\n\n{body.rstrip()}\n"
    data = text.encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        written = os.write(descriptor, data)
        if written != len(data):
            raise OSError(f"{path}: appended only {written} of {len(data)} bytes")
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Summary:
    """Median and best of repeated measurements (best: least disturbed by the shared machine)."""

    median: float
    best: float
    values: tuple[float, ...]


def summarize(values: Sequence[float], higher_is_better: bool = True) -> Summary:
    best = max(values) if higher_is_better else min(values)
    return Summary(statistics.median(values), best, tuple(values))


def interleaved(variants: dict[str, Callable[[], T]], repeats: int, warmup: int = 1) -> dict[str, list[T]]:
    """Run every variant `repeats` times in round-robin order, so load changes hit all of them alike.

    `warmup` unrecorded rounds first: the first run of a process pays for lazy initialisation
    (allocator, kernels), which would otherwise count against whichever variant runs first.
    """
    for _ in range(warmup):
        for measure in variants.values():
            measure()
    out: dict[str, list[T]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            out[name].append(measure())
    return out


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """Wall seconds and this process's CPU seconds (all threads) of a block.

    CPU time is far less disturbed than wall time when other work shares the cores.
    """
    out: dict[str, float] = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = time.process_time() - start_cpu


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub table; `align` is one character per column, `l` or `r` (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def world(root: Path, seed: int = 0, **changes):
    """A synthetic world: the demo preset with `changes` (e.g. min_words=8), built once under `root`."""
    from trainables.synthetic import PRESETS, ensure_world

    spec = dataclasses.replace(PRESETS["demo"], **changes)
    name = "demo" + "".join(f"-{key}{value}" for key, value in sorted(changes.items()))
    return ensure_world(root / name, spec=spec, seed=seed)
