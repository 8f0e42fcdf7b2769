"""`python -m sweeper {run,status,report,demo}`: the researcher's entry points.

Bad input (configuration, data, experiment directory) is reported in one clear message on stderr
with exit code 2, before Ray starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from sweeper.config import ConfigError, load_config

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweeper", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or --resume) a sweep described by a YAML file")
    run.add_argument("config", help="sweep configuration (YAML)")
    run.add_argument("--output", help="experiment directory (default: <storage>/<experiment>)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    run.add_argument("--address", help="Ray cluster to join: 'auto' or HOST:PORT (default: embedded local Ray)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and a device-hour estimate, run nothing")
    run.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all)")
    run.add_argument("--num-gpus", type=float, help="GPUs of the embedded local Ray (default: all)")

    status = commands.add_parser("status", help="state of every expected cell of an experiment")
    status.add_argument("directory", help="experiment directory")
    status.add_argument("--stale-after", type=float, default=120.0,
                        help="seconds without heartbeat after which a running cell counts as interrupted")

    commands.add_parser("report", help="significance-marked tables and figures (`report --help`)")

    demo = commands.add_parser("demo", help="the offline demo: synthetic world, all five methods, local Ray")
    demo.add_argument("--output", default="runs/demo", help="experiment directory (default: runs/demo)")
    demo.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"))
    demo.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all)")
    demo.add_argument("--fresh", action="store_true", help="delete a previous demo experiment first")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    sweep = load_config(args.config)  # first: a refused config must not wait for torch or Ray to load
    from sweeper import plan as planning
    from sweeper.run import RunOptions, run_sweep

    experiment_dir = args.output or f"{sweep.storage.rstrip('/')}/{sweep.experiment}"
    if "://" not in experiment_dir:
        experiment_dir = str(Path(experiment_dir).expanduser().resolve())
    if args.dry_run:
        print(planning.describe(planning.resolve(sweep, experiment_dir, build_world=False)))
        return 0
    options = RunOptions(experiment_dir, resume=args.resume, address=args.address, num_cpus=args.num_cpus,
                         num_gpus=args.num_gpus)
    return run_sweep(sweep, options)


def cmd_status(args: argparse.Namespace) -> int:
    from sweeper.status import render_status, status_table
    from trainables import results

    directory = args.directory if "://" in args.directory else str(Path(args.directory).resolve())
    if not results.exists(f"{directory}/sweep.yaml"):
        raise ConfigError(f"{args.directory}: not an experiment directory (no sweep.yaml)")
    print(render_status(status_table(directory, args.stale_after), directory))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sweeper.demo import run_demo

    return run_demo(Path(args.config), Path(args.output), num_cpus=args.num_cpus, fresh=args.fresh)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "status": cmd_status, "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the analysis package owns the report's options (and its --help)
        from analysis.report import main as report_main

        return report_main(argv[1:])
    args = _parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except Exception as error:  # bad input of any layer: one clear line, exit 2
        if not _is_input_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR


# Exceptions that mean "bad input" (exit 2), by module: only modules already imported can have raised
# them, so checking costs no import (a refused config must not wait for torch or Ray to load).
INPUT_ERRORS = (("sweeper.config", "ConfigError"), ("sweeper.run", "ExperimentError"),
                ("trainables.data", "DataError"), ("trainables.augment", "SynonymTableError"))


def _is_input_error(error: Exception) -> bool:
    classes = [getattr(sys.modules.get(module), name, None) for module, name in INPUT_ERRORS]
    return isinstance(error, tuple(c for c in classes if c is not None))
