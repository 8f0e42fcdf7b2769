"""Make a Tune experiment restorable when its saved state points at a checkpoint that is gone.

Tune deletes a trial's checkpoints beyond `num_to_keep` as soon as a newer one is registered, but
it snapshots the experiment state only every few seconds and copies the snapshot to storage in the
background. A driver killed in between leaves a state that names a deleted checkpoint, and
`Tuner.restore` then fails that trial for good ("does not exist on storage anymore"). Ray once fell
back to the newest available checkpoint (ray-project/ray#29099); its current persistence layer does
not, so the sweeper does it before every restore: the newest complete checkpoint of the trial is
moved to the name the state expects. Where none is complete, an empty folder takes its place and
the trial starts over (`trainables.trial.resumable_directory`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from trainables import results
from trainables.loop import is_complete_checkpoint

_CHECKPOINT_NAME = re.compile(r"^checkpoint_(\d+)$")


@dataclass(frozen=True)
class Repair:
    """One trial whose expected checkpoint was missing: what took its place (None: nothing, starts over)."""

    trial_dir: str
    expected: str
    replaced_by: str | None


def expected_checkpoints(experiment_path: str) -> dict[str, str]:
    """Trial folder -> checkpoint folder that `Tuner.restore` would resume each unfinished trial from.

    Read with Tune's own state classes from the newest experiment state file, as Tune reads it.
    """
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    fs, root = results.filesystem(experiment_path)
    newest = _find_newest_experiment_checkpoint(root, fs=fs)
    if newest is None:
        return {}
    with fs.open_input_stream(newest) as stream:
        state = _loads_with_cloudpickle(stream.readall())
    expected = {}
    for trial_state, run_metadata in state["trial_data"]:
        trial = Trial.from_json_state(trial_state, stub=True)
        if trial.status == Trial.TERMINATED:
            continue
        trial.restore_run_metadata(run_metadata)
        if trial.checkpoint is not None:
            expected[trial.storage.trial_dir_name] = PurePosixPath(trial.checkpoint.path).name
    return expected


def newest_complete_checkpoint(fs: pafs.FileSystem, trial_path: str) -> str | None:
    """Name of the highest-numbered checkpoint folder in `trial_path` that holds a whole checkpoint."""
    folders = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
    numbered = sorted(((int(match[1]), info.base_name) for info in folders
                       if info.type == pafs.FileType.Directory and (match := _CHECKPOINT_NAME.match(info.base_name))),
                      reverse=True)
    for _, name in numbered:
        files = fs.get_file_info(pafs.FileSelector(f"{trial_path}/{name}"))
        if is_complete_checkpoint({f.base_name for f in files}):
            return name
    return None


def _move(fs: pafs.FileSystem, source: str, destination: str) -> None:
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(source, destination)  # a rename: instant, even for a multi-GB checkpoint
    else:  # object stores cannot rename folders
        pafs.copy_files(source, destination, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(source)


def repair_missing_checkpoints(experiment_path: str) -> list[Repair]:
    """Give every unfinished trial the checkpoint folder the experiment state expects; return what changed."""
    fs, root = results.filesystem(experiment_path)
    repairs = []
    for trial_dir, expected in sorted(expected_checkpoints(experiment_path).items()):
        trial_path, target = f"{root}/{trial_dir}", f"{root}/{trial_dir}/{expected}"
        if fs.get_file_info(target).type != pafs.FileType.NotFound:
            continue
        newest = newest_complete_checkpoint(fs, trial_path)
        if newest is None:
            fs.create_dir(target)
        else:
            _move(fs, f"{trial_path}/{newest}", target)
        repairs.append(Repair(trial_dir, expected, newest))
    return repairs


def describe(repair: Repair) -> str:
    if repair.replaced_by is None:
        return (f"{repair.trial_dir}: {repair.expected} is gone and no complete checkpoint is left; "
                "the trial starts over")
    return (f"{repair.trial_dir}: {repair.expected} is gone (the driver died before Tune saved its state); "
            f"resuming from the newer {repair.replaced_by}")
