"""How long a refusal takes: a JSON table passed as the sweep config by mistake, and common CLI refusals.

Issue 7 found that the paper's synonym table given as CONFIG printed 20,000 problems and took 13 s.
Times `sweeper.config.load_config` on synonym-table-shaped JSON files of growing size, against the
former path (PyYAML's pure-Python parser run twice, every problem listed with its line looked up),
and the wall time of `python -m sweeper run ... --dry-run` to exit 2 for a few field mistakes.
Usage: python benchmarks/bench_refusals.py [--repeats N] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, append_section, markdown_table, offline_environment  # noqa: E402

HEADING = "## Refusals (sweeper.config, sweeper.preflight)"


def table_text(words: int) -> str:
    """The counter-fitted table's shape: word -> [neighbours]."""
    return json.dumps({f"word{i}": [f"near{i}a", f"near{i}b", f"near{i}c"] for i in range(words)})


def former_refusal(path: Path) -> int:
    """What load_config did before: two pure-Python parses and a line for every one of the problems."""
    import yaml
    from pydantic import ValidationError

    from sweeper.schema import Sweep
    from sweeper.yaml_errors import _location, line_of

    text = path.read_text()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    try:
        Sweep.model_validate(yaml.safe_load(text))
    except ValidationError as error:
        return len([line_of(root, _location(problem)) for problem in error.errors()])
    return 0


def current_refusal(path: Path) -> int:
    from sweeper.config import load_config
    from sweeper.yaml_errors import ConfigError

    try:
        load_config(path)
    except ConfigError as error:
        return len(str(error).splitlines())
    return 0


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_refusal_seconds(config: dict, root: Path, repeats: int, *extra: str) -> tuple[float, int, str]:
    """Median wall time of the CLI, process start included, to its exit code; and its message."""
    import yaml

    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "sweeper", "run", str(path), "--dry-run", *extra],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
    last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1]
    return statistics.median(times), result.returncode, last.replace(str(root), "TMP")[:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline_environment()
    from trainables.synthetic import WorldSpec, ensure_world

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for words in (1_000, 10_000, 20_000, 65_000):
            path = root / f"table-{words}.json"
            path.write_text(table_text(words))
            before = median_seconds(lambda: former_refusal(path), 1 if words > 10_000 else args.repeats)
            after = median_seconds(lambda: current_refusal(path), args.repeats)
            lines = current_refusal(path)
            rows.append((f"{words:,} words", f"{path.stat().st_size / 2**20:.2f}", f"{words + 3:,}",
                         f"{before:.2f}", f"{after:.3f}", lines))
        world = ensure_world(root / "world", spec=WorldSpec.tiny(), seed=0)
        base = {"experiment": "x", "task": "pawsx", "model": str(world.model_dir),
                "data": {"source": "tsv", "path": str(world.tsv_dir("pawsx"))}, "methods": {"baseline": {}},
                "storage": str(root / "runs"), "cache_dir": str(root / "cache")}
        cli_rows = [
            ("model folder missing", {**base, "model": str(root / "missing")}, ()),
            ("gpu: 0.5 on a machine without a GPU", {**base, "resources": {"cpu": 1, "gpu": 0.5}}, ()),
            ("nobody answers at --address", base, ("--address", "127.0.0.1:9")),
            ("valid: every input read (dry run passes)", base, ()),
        ]
        cli = [(what, f"{seconds:.1f}", code, message)
               for what, config, extra in cli_rows
               for seconds, code, message in [cli_refusal_seconds(config, root, args.repeats, *extra)]]
    body = (markdown_table(["JSON table as CONFIG", "MiB", "problems", "before s", "now s", "lines printed"], rows)
            + "\n\nBefore: PyYAML's pure-Python parser twice and a line for every problem (what load_config did). "
            "Now: libyaml, one parse, the first 10 problems; files over 1 MiB are refused unread.\n\n"
            + markdown_table(["`run --dry-run`", "wall s to exit", "exit", "last line"], cli, align="lrrl"))
    print(body)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_refusals.py", body)


if __name__ == "__main__":
    main()
