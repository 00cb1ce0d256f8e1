"""One writer per run directory: an exclusive lock held while a command writes into it.

The lock is the kernel's (flock on `<run dir>/.lock`), so a process that dies for any reason, SIGKILL
included, releases it; the file's text only says who held it last. Two commands on one run directory would
otherwise both train every arm into the same checkpoints/ and both log W&B runs.
"""
from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from core.errors import UserError

_held: dict[Path, int] = {}


def acquire(run_dir: Path) -> None:
    """Take the run directory's lock (a no-op when this process holds it); UserError naming the holder."""
    run_dir = run_dir.resolve()
    if run_dir in _held:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    try:   # never through a link: the pid line would overwrite whatever it points at
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        raise UserError(f"{run_dir / '.lock'}: cannot be opened as the run's lock file ({e.strerror}); "
                        "remove it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"{run_dir} is in use by {holder}; "
                        "wait for it to finish or stop it, then run again") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"({' '.join(sys.argv[:3])})\n".encode(), 0)
    _held[run_dir] = fd


def release(run_dir: Path) -> None:
    fd = _held.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)   # closing the descriptor drops the flock
