"""Read a W&B offline run file (`run-<id>.wandb`) back: W&B keeps no reader of its own, so this follows its
format (a 7-byte file header, then LevelDB-log records in 32 KiB blocks, each holding a protobuf `Record`)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
HEADER = 7  # record header: crc32 (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(data: bytes) -> Iterator[bytes]:
    """The records' bytes, fragments joined; the file starts with ':W&B', magic 0xBEE1 and version 0."""
    assert data[:4] == b":W&B" and data[4:6] == b"\xe1\xbe", data[:8]
    position, pending = 7, b""
    while position + HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < HEADER:  # too little room for a header: the writer skipped to the next block
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + HEADER])
        if position + HEADER + length > len(data):  # the writer was killed in the middle of this record
            return
        body = data[position + HEADER:position + HEADER + length]
        position += HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            yield pending + body
            pending = b""


@dataclass
class OfflineRun:
    run: dict[str, Any] = field(default_factory=dict)  # id, project, group, name, job_type
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # name, type, the files' paths


def read_run(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2

    out = OfflineRun()
    for raw in payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out.run = {"id": r.run_id, "project": r.project, "group": r.run_group, "name": r.display_name,
                       "job_type": r.job_type}
            out.config.update({item.key: json.loads(item.value_json) for item in r.config.update})
        elif kind == "config":
            out.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            out.history.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                                for item in record.history.item})
        elif kind == "artifact":
            a = record.artifact
            out.artifacts.append({"name": a.name, "type": a.type, "files": sorted(e.path for e in a.manifest.contents)})
    return out
