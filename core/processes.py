"""A child command (the DeepSpeed launcher) that ends with this process: interrupted (Ctrl-C), or stopped by
SIGTERM, the whole tree it started (its launcher process and every rank) is stopped too.

DeepSpeed's runner forwards signals to its ranks only for multi-node (pdsh) launches: on one node a SIGTERM
reaching the runner alone leaves `deepspeed.launcher.launch` and the ranks running, training or decoding for
nobody after the run's lock is released. So the tree is taken while it runs (psutil, as DeepSpeed's own
launcher stops its ranks), SIGTERM to every process of it at once, and SIGKILL to those still there after a
grace period.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import psutil

GRACE_S = 30.0   # a rank's SIGTERM handler writes its status; DeepSpeed's launcher waits on its ranks


def run_tree(cmd: list[str], env: dict[str, str], cwd: Path, on_line: Callable[[str], None] | None = None
             ) -> int:
    """cmd's exit code. `on_line`: each line of its stdout (else it writes to this process's stdout and
    stderr). Any exception here (KeyboardInterrupt, the SystemExit of `stop_on_sigterm`) stops the tree
    first."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, text=True, errors="replace",
                            stdout=subprocess.PIPE if on_line else None)
    try:
        if on_line:
            for line in proc.stdout:
                on_line(line)
        return proc.wait()
    except BaseException:
        with _uninterrupted():   # a second Ctrl-C or SIGTERM must not cut the stopping short
            stop_tree(proc.pid)
            proc.wait()
        raise


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while inside (in the main thread, where Python runs signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_tree(pid: int, grace_s: float | None = None) -> None:
    """SIGTERM to a process and all its descendants, taken before any is signalled (a rank whose launcher
    exits first is re-parented, out of reach); SIGKILL to those alive after grace_s (default GRACE_S)."""
    grace_s = GRACE_S if grace_s is None else grace_s
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in tree:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While inside: SIGTERM raises SystemExit(143) in the main thread instead of ending the process on the
    spot (Python's default), so that `finally` blocks run (the run's lock, the launcher's tree, shared-memory
    buffers) and no child process is left behind. Outside the main thread: nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopped(signum, _frame):
        name = signal.Signals(signum).name
        print(f"[run] stopped by signal {name} (a launcher and its ranks with it); the same command resumes",
              file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
