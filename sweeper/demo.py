"""`python -m sweeper demo`: the whole pipeline offline, in minutes, on a laptop-sized CPU.

Builds the synthetic world if missing, runs a real sweep of all five methods with several seeds
on an embedded local Ray of its own, and prints the significance-marked report of the analysis
package (real bold and underline on a terminal, plain Markdown when piped). Running it again reuses
finished cells (it resumes); `--fresh` starts over, deleting only a folder that provably holds this
demo's experiment and nothing else.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from sweeper.config import load_config
from sweeper.experiment import ExperimentError, stored_configuration
from sweeper.run import RunOptions, run_sweep
from sweeper.schema import Sweep

# What a demo experiment folder holds: the sweeper's files, Tune's stage folders, and the figures the
# README suggests drawing into it. Anything else means the folder is not (only) the demo's.
DEMO_ENTRIES = ("sweep.yaml", "experiment.json", "plan.json", "results", "figures")


def run_demo(config_path: Path, output: Path, *, num_cpus: int | None = None, fresh: bool = False) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the demo needs is generated locally
    started = time.perf_counter()
    sweep = load_config(config_path)
    output = output.expanduser().resolve()
    if fresh and output.exists():
        remove_demo_experiment(output, sweep)
    resume = (output / "sweep.yaml").exists()
    if resume:
        print(f"{output} exists: resuming (finished cells are kept; --fresh starts over)")
    code = run_sweep(sweep, RunOptions(str(output), resume=resume, num_cpus=num_cpus, config_path=config_path,
                                       output_given=True))
    print()
    print_report(output, sys.stdout)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s; results in {output}; "
          f"`python -m sweeper report {output} --figures {output}/figures` draws the figures", file=sys.stdout)
    return code


def print_report(output: Path, stream) -> None:
    """The experiment's report on `stream`: Markdown, with real bold and underline where `stream` is a terminal."""
    from analysis.load import AnalysisInputError
    from analysis.report import printed_format, render_report

    try:
        stream.write(render_report([str(output)], fmt=printed_format(stream)) + "\n")
    except AnalysisInputError as error:  # no cell finished: say so instead of a table
        stream.write(f"no table: {error}\n")
    stream.flush()


def remove_demo_experiment(output: Path, sweep: Sweep) -> None:
    """Delete `output` only if it is this demo's experiment folder, holding nothing but what the sweeper made."""
    if not output.is_dir():
        raise ExperimentError(f"--output {output}: is a file, not a demo experiment folder; nothing deleted")
    stored = output / "sweep.yaml"
    config = stored_configuration(stored.read_text(errors="replace")) if stored.is_file() else None
    if config is None or config.experiment != sweep.experiment or config.data.source != "synthetic":
        raise ExperimentError(f"--fresh: {output} does not hold a demo experiment (no sweep.yaml of experiment "
                              f"{sweep.experiment!r} on the synthetic world); nothing deleted. --fresh deletes "
                              "only the demo's own folder: name it with --output")
    foreign = sorted(p.name for p in output.iterdir() if p.name not in DEMO_ENTRIES and not p.name.startswith("tune-"))
    if foreign:
        raise ExperimentError(f"--fresh: {output} holds more than the demo's experiment ({', '.join(foreign[:5])}"
                              f"{', ...' if len(foreign) > 5 else ''}); nothing deleted: move those away first")
    shutil.rmtree(output)
