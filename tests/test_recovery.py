"""Checkpoint recovery pieces that need no Ray: which checkpoint folder is whole, and what a trial resumes from."""

from __future__ import annotations

import pyarrow.fs as pafs
from ray import tune

from sweeper.recovery import newest_complete_checkpoint
from trainables.loop import CHECKPOINT_FILES
from trainables.trial import resumable_directory


def write_checkpoint(folder, files=CHECKPOINT_FILES):
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


def test_newest_complete_checkpoint_skips_a_half_copied_newer_one(tmp_path):
    write_checkpoint(tmp_path / "checkpoint_000001")
    write_checkpoint(tmp_path / "checkpoint_000010")  # numbered order, not string order
    write_checkpoint(tmp_path / "checkpoint_000011", files=CHECKPOINT_FILES[:-1])  # state.json not yet there
    (tmp_path / "checkpoint_000012").write_text("a file, not a folder")
    write_checkpoint(tmp_path / "checkpoint_tmp")
    assert newest_complete_checkpoint(pafs.LocalFileSystem(), str(tmp_path)) == "checkpoint_000010"


def test_newest_complete_checkpoint_is_none_without_a_whole_one(tmp_path):
    fs = pafs.LocalFileSystem()
    assert newest_complete_checkpoint(fs, str(tmp_path / "absent")) is None
    write_checkpoint(tmp_path / "checkpoint_000003", files=("model.pt",))
    assert newest_complete_checkpoint(fs, str(tmp_path)) is None


def test_trial_resumes_only_from_a_complete_checkpoint(tmp_path):
    with resumable_directory(None) as directory:
        assert directory is None
    (tmp_path / "empty").mkdir()
    with resumable_directory(tune.Checkpoint.from_directory(str(tmp_path / "empty"))) as directory:
        assert directory is None  # what recovery leaves where every checkpoint was lost: start over
    whole = write_checkpoint(tmp_path / "whole")
    with resumable_directory(tune.Checkpoint.from_directory(str(whole))) as directory:
        assert directory is not None and (directory / "state.json").read_bytes() == b"x"


def test_a_failing_checkpoint_check_warns_and_still_restores(tiny_world, monkeypatch, tmp_path):
    import io

    from sweep_helpers import write_config
    from sweeper import recovery, tuning
    from sweeper.config import load_config

    def unreadable(path):
        raise KeyError("trial_data")  # e.g. Tune's private state format changed

    monkeypatch.setattr(recovery, "repair_missing_checkpoints", unreadable)
    monkeypatch.setattr(tuning.tune.Tuner, "restore", classmethod(lambda cls, path, **kw: ("restored", path)))
    from sweeper import plan as planning

    sweep = load_config(write_config(tmp_path / "sweep.yaml", tiny_world, tmp_path / "runs", tmp_path / "cache"))
    out = io.StringIO()
    resolved = planning.resolve(sweep, str(tmp_path))
    driver = tuning.Driver(out, placement_timeout=60.0, resume=True)
    assert tuning.restore_tuner(str(tmp_path), resolved, "tune-grid", 6, driver, None) == ("restored", str(tmp_path))
    assert "warning: could not check" in out.getvalue() and "KeyError" in out.getvalue()
