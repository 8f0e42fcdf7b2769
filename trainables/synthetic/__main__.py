"""CLI: `python -m trainables.synthetic OUT_DIR [--seed N] [--preset demo|tiny] [--force]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .spec import PRESETS
from .world import World, build_world, ensure_world, matching_world


def seed_value(text: str) -> int:
    """A non-negative integer (numpy's SeedSequence refuses negative seeds)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {seed}")
    return seed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trainables.synthetic", description="Build (or reuse) a synthetic multilingual world."
    )
    parser.add_argument("out_dir", help="folder of the world (created; an existing world is reused or replaced)")
    parser.add_argument("--seed", type=seed_value, default=0, help="world seed (default 0)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="world size (default demo)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a matching world exists")
    return parser.parse_args(argv)


def describe(world: World, action: str, seconds: float) -> str:
    """A human-readable summary of the world's languages and paths."""
    lines = [f"{action} synthetic world at {world.root} in {seconds:.1f} s (seed {world.seed}, spec {world.spec_hash[:12]})"]
    lines.append(f"  languages ({world.distance_name}, word order):")
    lines += [
        f"    {code}: {world.language_distances[code]:.2f}  {world.word_orders[code]}" for code in world.languages
    ]
    spec = world.spec
    lines.append(f"  concepts {spec.num_concepts}, pairs train/dev/test {spec.train_size}/{spec.dev_size}/{spec.test_size}")
    lines.append(f"  model     {world.model_dir}")
    lines += [f"  {task:<9} {world.hub_dir(task)}  |  {world.tsv_dir(task)}" for task in ("pawsx", "xnli")]
    lines.append(f"  synonyms  {world.synonyms_path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec, started = PRESETS[args.preset], time.perf_counter()
    reused = not args.force and matching_world(Path(args.out_dir).absolute(), spec, args.seed) is not None
    make = build_world if args.force else ensure_world
    try:
        world = make(args.out_dir, spec=spec, seed=args.seed)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(describe(world, "reused" if reused else "built", time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
