"""Reads what a W&B offline run recorded (its run-*.wandb file), so tests check the logged metrics themselves.

The W&B server cannot exist here; the offline run file is the real artefact `wandb sync` would upload.
Format: a LevelDB-style log of protobuf `Record`s in 32 KiB blocks after a 7-byte ':W&B' header.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            buf = chunk
        elif kind == MIDDLE:
            buf += chunk
        elif kind == LAST:
            yield buf + chunk


def read_run(run_dir: Path) -> dict:
    """{'id', 'name', 'group', 'job_type', 'history': [{key: value}], 'summary': {key: value}} of one offline
    run."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = Path(run_dir).glob("run-*.wandb")
    out = {"history": [], "summary": {}}
    for data in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out |= {"id": rec.run.run_id, "name": rec.run.display_name, "group": rec.run.run_group,
                    "job_type": rec.run.job_type}
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in rec.history.item})
        elif kind == "summary":
            out["summary"] |= {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                               for i in rec.summary.update}
    return out


def runs(wandb_dir: Path) -> list[dict]:
    return [read_run(d) for d in sorted(Path(wandb_dir).glob("offline-run-*"))]
