"""`python -m sweeper {run,status,report,demo,methods}`: the researcher's entry points.

Exit codes: 0 done, 1 some cells failed for good, 2 refused input (configuration, data, model,
storage, resources, experiment folder, command line: one message on stderr naming the file, line,
field or option, before anything is written), 130 interrupted (Ctrl+C; `--resume` continues).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from sweeper.config import load_config
from sweeper.yaml_errors import ConfigError

USAGE_ERROR = 2
INTERRUPTED = 130


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
    run.add_argument("--placement-timeout", type=float, metavar="SECONDS",
                     help="stop when trials stay pending with none running this long "
                          "(default: 60 on the embedded Ray, 900 with --address: autoscalers are slow)")

    status = commands.add_parser("status", help="state of every expected cell of an experiment")
    status.add_argument("directory", help="experiment directory")
    status.add_argument("--stale-after", type=float, default=120.0,
                        help="seconds without heartbeat after which a running cell counts as interrupted")

    commands.add_parser("report", help="significance-marked tables and figures (`report --help`)")

    commands.add_parser("methods", help="every installed method: its settings, defaults, grid axis and cost")

    demo = commands.add_parser("demo", help="the offline demo: synthetic world, all five methods, local Ray")
    demo.add_argument("--output", default="runs/demo", help="experiment directory (default: runs/demo)")
    demo.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"))
    demo.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all)")
    demo.add_argument("--fresh", action="store_true", help="delete a previous demo experiment first")
    return parser


def check_ray_options(args: argparse.Namespace) -> None:
    """The command line's own refusals: counts that Ray would take and then wait on forever."""
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus: must be at least 1, got {args.num_cpus}")
    if getattr(args, "num_gpus", None) is not None and not args.num_gpus >= 0:
        raise ConfigError(f"--num-gpus: must be 0 or more, got {args.num_gpus}")
    if getattr(args, "placement_timeout", None) is not None and not args.placement_timeout > 0:
        raise ConfigError(f"--placement-timeout: must be a positive number of seconds, got {args.placement_timeout}")
    if getattr(args, "address", None) is not None:
        given = [flag for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus))
                 if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)}: only for the embedded Ray; a cluster (--address) "
                              "brings its own resources")
        if not args.address.strip():
            raise ConfigError("--address: empty; give 'auto' or HOST:PORT, or leave it out for the embedded Ray")


def experiment_location(output: str | None, sweep) -> str:
    from trainables import results

    location = output or results.join(sweep.storage, sweep.experiment)
    return location if "://" in location else str(Path(location).expanduser().resolve())


def cmd_run(args: argparse.Namespace) -> int:
    check_ray_options(args)
    sweep = load_config(args.config)  # first: a refused config must not wait for torch or Ray to load
    from sweeper.run import RunOptions, run_sweep

    options = RunOptions(experiment_location(args.output, sweep), resume=args.resume, address=args.address,
                         num_cpus=args.num_cpus, num_gpus=args.num_gpus, config_path=args.config,
                         output_given=args.output is not None, placement_timeout=args.placement_timeout)
    if args.dry_run:
        print(dry_run(sweep, options))
        return 0
    return run_sweep(sweep, options)


def dry_run(sweep, options) -> str:
    """The plan, after every check that `run` makes before its first write (a dry run that passes means
    the run will not fail on its inputs); the embedded Ray is not started, a cluster is joined and checked.

    Where a check refuses after the plan is known (this machine has no GPU, the model cannot be reached
    from here), the plan and its device-hours are still printed before the refusal: planning a cluster
    run from a laptop is what a dry run is for.
    """
    from sweeper import cluster
    from sweeper import plan as planning
    from sweeper.run import check_inputs, check_locations, check_on_ray

    where, located = check_locations(sweep, options)
    resolved = planning.resolve(sweep, options.experiment_dir, build_world=False)
    try:
        inputs = check_inputs(resolved, options, where)
        if options.address is None:
            offered = cluster.embedded_resources(options.num_cpus, options.num_gpus)
            ray_line = "embedded Ray: " + ", ".join(f"{k} {v:g}" for k, v in offered.items())
        else:
            session = cluster.start(options.address, None, None, sys.stderr)
            try:
                ray_line = f"Ray cluster at {session.address}: {check_on_ray(sweep, options, where, sys.stderr)}"
            finally:
                session.close()
    except Exception as refusal:
        if _is_input_error(refusal):
            _print_plan_if_known(resolved)
        raise
    checks = "\n".join(f"checked {line}" for line in (located, *inputs.checked, ray_line))
    return planning.describe(resolved, raw=inputs.raw) + "\n\n" + checks


def _print_plan_if_known(resolved) -> None:
    from sweeper import plan as planning

    try:
        text = planning.describe(resolved)
    except Exception as error:  # the plan's sizes need the very data that was refused
        if not _is_input_error(error):
            raise
        return
    print(text + "\n\nthe plan above cannot run here as configured:", flush=True)


def cmd_status(args: argparse.Namespace) -> int:
    from sweeper.status import render_status, status_table
    from trainables import results

    if not args.stale_after > 0:
        raise ConfigError(f"--stale-after: must be a positive number of seconds, got {args.stale_after}")
    directory = args.directory if "://" in args.directory else str(Path(args.directory).resolve())
    if not results.exists(results.join(directory, "sweep.yaml")):
        raise ConfigError(f"{args.directory}: not an experiment directory (no sweep.yaml)")
    print(render_status(status_table(directory, args.stale_after), directory))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    check_ray_options(args)
    from sweeper.demo import run_demo

    return run_demo(Path(args.config), Path(args.output), num_cpus=args.num_cpus, fresh=args.fresh)


def method_listing() -> str:
    """The methods as their descriptors describe them (what `methods:` in a config accepts)."""
    from trainables.methods import DESCRIPTORS

    blocks = []
    for name, described in DESCRIPTORS.items():
        paper = f"; the paper's {described.paper_model}" if described.paper_model else ""
        axis = f"; sweeps {described.grid_axis}" if described.grid_axis else ""
        search = f"; Optuna may sample {', '.join(described.search)}" if described.search else ""
        lines = [f"{name}: {described.display}{paper}{axis}{search}"]
        for option, info in described.options.model_fields.items():
            if option == "training":
                continue
            default = "required" if info.default is None and option == described.grid_axis else repr(info.default)
            lines.append(f"  {option}: {default}")
        lines.append("  training: per-method epochs / learning_rate / max_updates")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def cmd_methods(args: argparse.Namespace) -> int:
    print(method_listing())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "status": cmd_status, "demo": cmd_demo, "methods": cmd_methods,
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
    except KeyboardInterrupt:  # before Tune took over the signal (data preparation, start-up)
        print("interrupted: nothing of this invocation is lost that --resume cannot redo", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # bad input of any layer: one clear line, exit 2
        if not _is_input_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR


# Exceptions that mean "bad input" (exit 2), by module: only modules already imported can have raised
# them, so checking costs no import (a refused config must not wait for torch or Ray to load).
INPUT_ERRORS = (("sweeper.yaml_errors", "ConfigError"), ("sweeper.experiment", "ExperimentError"),
                ("trainables.data", "DataError"), ("trainables.augment", "SynonymTableError"),
                ("trainables.results", "StorageError"), ("trainables.results", "DamagedFile"),
                ("analysis.load", "AnalysisInputError"))


def _is_input_error(error: Exception) -> bool:
    classes = [getattr(sys.modules.get(module), name, None) for module, name in INPUT_ERRORS]
    return isinstance(error, tuple(c for c in classes if c is not None))
