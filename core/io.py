"""Atomic file writes and content hashes: a crash never leaves a half-written file that looks complete."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from core.errors import UserError
from core.faults import fault_point


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())   # mkstemp's 0600 would hide results from the team on a shared disk
        with os.fdopen(fd, "wb") as f:
            f.write(data[: len(data) // 2])
            fault_point("write", str(path))
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fault_point("written", str(path))


def share_with_team(directory: Path) -> None:
    """Files written by libraries through their own temp files (safetensors: 0600) get a plain open's
    permissions."""
    mode = 0o666 & ~_umask()
    for p in Path(directory).rglob("*"):
        if p.is_file():
            os.chmod(p, mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per line; UserError naming the file and line of a damaged one."""
    rows, n = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    rows.append(json.loads(line))
                    if not isinstance(rows[-1], dict):
                        raise UserError(f"{path}:{n}: expected a JSON object")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{n}: invalid JSON ({e.msg}, column {e.colno})") from None
    return rows


def check_writable(path: Path, field: str) -> None:
    """`path` (a directory or a file to come) can be created: said before any compute, not after it."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{field}: {existing} is not a writable directory")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_weights(directory: str | Path, file_hash: Callable[[Path], str] = sha256_file) -> str:
    """Content hash of every weight file in a checkpoint directory (safetensors/bin), in name order."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin"} and p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(file_hash(p).encode())
    return h.hexdigest()


def git_revision(repo: str | Path | None = None) -> str:
    """HEAD commit, with '+dirty' when the work tree has uncommitted changes; 'unknown' outside git."""
    cwd = repo or Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
