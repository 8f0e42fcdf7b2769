"""How fast the synthetic world builds and how long one demo training run takes on one core.

Times `build_world` for the tiny and demo presets (fresh folders), reuse by `ensure_world`, and
one baseline trial (trainables.trial.run_trial, no Ray) on the demo world with the settings
recommended for configs/demo.yaml; prints a table and appends it with a machine description to
BENCHMARKS.md. Usage: python benchmarks/bench_synthetic.py [--repeats N] [--no-train] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import append_section, markdown_table  # noqa: E402  (benchmarks/ is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEADING = "## Synthetic world (trainables/synthetic)"
# The demo settings measured in the synthetic world's report (lr 1e-3, 8 epochs, frozen word embeddings).
DEMO_TRAINING = {"epochs": 8, "learning_rate": 1e-3, "per_device_batch_size": 32, "gradient_accumulation": 1,
                 "eval_every": 50, "freeze_word_embeddings": True}


def timed(action) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def median_build(preset: str, repeats: int, root: Path) -> tuple[float, float, object]:
    """Median wall and CPU time of building `preset` into fresh folders."""
    from trainables.synthetic import PRESETS, build_world

    runs = [timed(lambda k=k: build_world(root / f"{preset}-{k}", spec=PRESETS[preset], seed=0)) for k in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def baseline_trial(world, root: Path) -> tuple[float, float, dict[str, float]]:
    """One baseline trial on the demo world, one thread: wall, CPU and test accuracy per language."""
    import torch

    from trainables import results
    from trainables.spec import TrialSpec
    from trainables.trial import quiet_libraries, run_trial

    torch.set_num_threads(1)
    quiet_libraries()
    spec = TrialSpec.from_dict({
        "experiment": "bench", "experiment_dir": str(root / "experiment"), "task": "pawsx",
        "model": str(world.model_dir), "method": "baseline", "seed": 0,
        "data": {"kind": "local_hub", "path": str(world.hub_dir("pawsx"))}, "languages": list(world.languages),
        "training": DEMO_TRAINING, "cache_dir": str(root / "cache"),
    })
    wall, cpu, _ = timed(lambda: run_trial(spec, lambda metrics, save: None, device=torch.device("cpu")))
    metrics = results.read_metrics(results.cell_dir(spec.experiment_dir, spec.config_id, 0)).to_pandas()
    test = metrics[metrics.split == "test"]
    return wall, cpu, dict(zip(test.lang1, test.accuracy))


def measure(repeats: int, train: bool) -> list[tuple[str, float, float, str]]:
    from trainables.synthetic import PRESETS, ensure_world

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for preset in ("tiny", "demo"):
            wall, cpu, world = median_build(preset, repeats, root)
            note = f"median of {repeats}; {folder_mib(world.root):.1f} MiB, {sum(1 for _ in world.root.rglob('*.*'))} files"
            rows.append((f"build_world {preset}", wall, cpu, note + (" (target < 1 s)" if preset == "tiny" else "")))
        wall, cpu, _ = timed(lambda: ensure_world(world.root, spec=PRESETS["demo"], seed=0))
        rows.append(("ensure_world demo, reused", wall, cpu, "reads world.json only"))
        if train:
            wall, cpu, accuracy = baseline_trial(world, root)
            shown = ", ".join(f"{lang} {100 * acc:.1f}" for lang, acc in accuracy.items())
            rows.append(("baseline trial on demo world, 1 thread", wall, cpu, f"target 5-10 s; test accuracy {shown}"))
    return rows


def table(rows) -> str:
    body = [(name, f"{wall:.2f}", f"{cpu:.2f}", note) for name, wall, cpu, note in rows]
    return markdown_table(("step", "wall s", "CPU s", "note"), body, align="lrrl")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-train", action="store_true", help="skip the baseline trial")
    parser.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    text = table(measure(args.repeats, not args.no_train))
    print(text)
    if not args.no_append:
        append_section(HEADING, "python benchmarks/bench_synthetic.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
