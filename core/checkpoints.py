"""Weights are trusted only as far as a hash says: a checkpoint is verified against the hash its train.json
recorded before it is reused, evaluated or trained from, and any other model directory is checked for the
files loading will need. Damage is an error naming the file and the remedy (exit 2), never a silent retrain.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from core.errors import UserError
from core.io import hash_weights, sha256_file
from core.provenance import is_current
from core.records import TrainRecord

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
_file_hashes: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """sha256_file, once per process for a file of the same size and modification time: a checkpoint of a
    billion parameters takes seconds to hash, and every stage asks."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_hashes:
        _file_hashes[key] = sha256_file(path)
    return _file_hashes[key]


def weights_hash(directory: str | Path) -> str:
    """core.io.hash_weights (the hash records carry), from the per-file cache."""
    return hash_weights(directory, _sha256)


def directory_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file of a checkpoint directory: weights, and the config, adapter config and tokenizer
    that decide what the weights compute."""
    return {str(p.relative_to(directory)): _sha256(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def _digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def seal(record: TrainRecord | dict) -> dict:
    """train.json's content with every file of its model directory hashed, and a hash of the record itself:
    a record edited by hand or damaged is refused rather than read as "trained on other data" (which
    retrains)."""
    if isinstance(record, TrainRecord):
        record = record.model_dump(mode="json")
    record = json.loads(json.dumps(record | {"files_sha256": directory_hashes(Path(record["model_dir"]))},
                                   default=str))
    return record | {"record_sha256": _digest(record)}


def read_record(path: Path) -> TrainRecord:
    """A checkpoint's train.json; one that does not parse, or does not match its own hash or its directory's
    arm, is damage, not absence. Its weights are the `model/` beside it, wherever the run directory has been
    moved or copied to since training."""
    remedy = f"remove {path.parent} to train that checkpoint again"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e}); {remedy}") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a checkpoint record; {remedy}")
    sealed = record.pop("record_sha256", None)
    if sealed is not None and sealed != _digest(record):
        raise UserError(f"{path}: does not match its own sha256 (edited or damaged); {remedy}")
    if record.get("arm") not in (None, path.parent.name):
        raise UserError(f"{path}: the checkpoint of arm {record['arm']!r} under "
                        f"checkpoints/{path.parent.name}/ (moved or swapped?); put it back or {remedy}")
    record |= {"model_dir": str(path.parent / "model")}
    if not is_current(record):   # only ever refused or trained again: read as written, fields unchecked
        return TrainRecord.model_construct(**record)
    return TrainRecord.read(record, f"{path}")


def verify(record: TrainRecord, record_path: Path) -> None:
    """The files in the record's model_dir hash to what the record says they were when training saved them
    (records written before files_sha256 existed: the weights alone)."""
    model_dir = Path(record.model_dir)
    remedy = f"remove {record_path.parent} to train it again"
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: checkpoint directory missing (recorded in {record_path}); {remedy}")
    check_weight_files(model_dir, remedy)
    recorded = record.files_sha256
    if recorded is not None:
        found = directory_hashes(model_dir)
        for name in sorted(set(recorded) | set(found)):
            if recorded.get(name) != found.get(name):
                why = ("missing" if name not in found
                       else "not there at training time" if name not in recorded
                       else "differs from the sha256 recorded at training time (damaged or changed since)")
                raise UserError(f"{model_dir / name}: {why} ({record_path}); {remedy}")
    if weights_hash(model_dir) != record.weights_sha256:
        raise UserError(f"{model_dir}: weights differ from the sha256 recorded in {record_path} at training "
                        f"time (damaged or changed since); {remedy}")


def verified_record(path: Path) -> TrainRecord:
    """read_record, its checkpoint verified: what every stage that uses a checkpoint reads."""
    record = read_record(path)
    verify(record, path)
    return record


def check_weight_files(directory: Path, remedy: str) -> None:
    """Every safetensors file holds the bytes its header promises (a truncated copy fails here, not as a
    deserialisation traceback)."""
    files = [p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin"} and p.is_file()]
    if not files:
        raise UserError(f"{directory}: no weight files (*.safetensors, *.bin); {remedy}")
    for path in files:
        if path.suffix == ".safetensors" and not _safetensors_intact(path):
            raise UserError(f"{path}: truncated or not a safetensors file; {remedy}")
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty weight file; {remedy}")


def _safetensors_intact(path: Path) -> bool:
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                return False
            header = json.loads(f.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return False
    return size == 8 + n + end


def record_beside(model_dir: str | Path) -> Path:
    """The train.json of a checkpoint's model directory (`<run>/checkpoints/<job>/model`): its sibling."""
    return Path(model_dir).parent / "train.json"


def check_model_dir(path: Path, what: str) -> None:
    """A model directory from outside this run's training: a parseable config.json, a tokenizer and intact
    weights; a checkpoint of another run (train.json beside it) must also match its recorded hash."""
    remedy = "point it at a complete model directory"
    config = path / "config.json"
    try:
        if not isinstance(json.loads(config.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise UserError(f"{what} {str(path)!r}: directory has no config.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{config}: unreadable model config ({e}); {remedy}") from None
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{what} {str(path)!r}: no tokenizer ({', '.join(TOKENIZER_FILES)}); {remedy}")
    check_weight_files(path, remedy)
    record = record_beside(path)
    if record.is_file():
        # not necessarily model/
        verify(read_record(record).model_copy(update={"model_dir": str(path)}), record)


# ---------------------------------------------------------------- resumable trainer checkpoints

def file_hashes(checkpoint: Path, rank: int, world: int) -> dict[str, str]:
    """This rank's share of a trainer checkpoint's files (weights, optimizer states, scheduler, RNG) with
    their sha256, taken once every rank has saved; the ranks' markers together list every file, for resuming
    to verify. Shared out so that hashing a large model's optimizer states costs each rank 1/world of the
    time."""
    files = [p for p in sorted(checkpoint.rglob("*"))
             if p.is_file() and not p.name.startswith(("yarn-", "."))]
    return {str(p.relative_to(checkpoint)): sha256_file(p) for p in files[rank::world]}


def verify_resumable(trainer_dir: Path, marker_glob: str = "yarn-rank*.json") -> None:
    """Every trainer checkpoint a killed run could resume from holds the files its markers list, unchanged."""
    for checkpoint in sorted(trainer_dir.glob("checkpoint-*")):
        remedy = (f"remove {checkpoint} to resume from the checkpoint before it "
                  f"(or {trainer_dir} to start over)")
        markers = sorted(checkpoint.glob(marker_glob))
        if not markers:
            continue   # never marked complete: resuming skips it
        listed: dict[str, str] = {}
        for marker in markers:
            try:
                content = json.loads(marker.read_text(encoding="utf-8"))
                world = int(content["world"])
                listed |= {str(k): str(v) for k, v in content["files"].items()}
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{marker}: unreadable or without file hashes ({e!r}); {remedy}") from None
        if len(markers) < world:
            continue   # killed while the ranks marked it: resuming skips it too
        present = {str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*")
                   if p.is_file() and not p.name.startswith(("yarn-", "."))}
        for name in sorted(present | set(listed)):
            path = checkpoint / name
            if name not in listed or name not in present or sha256_file(path) != listed[name]:
                raise UserError(f"{path}: differs from what was recorded when it was saved (damaged); "
                                f"{remedy}")
