"""Named fault points, for tests that must see a crash at one exact moment: never a timed kill, never a full
disk.

    YARN_FAULT="kill:written=results/sft."     die (SIGKILL) right after a file whose path contains that is
                                               written
    YARN_FAULT="enospc:write=checkpoints/"     "no space left on device" halfway through writing such a file
    YARN_FAULT="kill:checkpoint-saved"         die once a trainer checkpoint is saved and marked complete
    YARN_FAULT="hold:checkpoint-saved"         say so on stderr and wait there (a run to be stopped)

Entries are `<kill|enospc|hold>:<point>[=<substring of the point's detail>]`, comma-separated. Unset, every
point is one dictionary lookup.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import time


def fault_point(point: str, detail: str = "") -> None:
    spec = os.environ.get("YARN_FAULT")
    if not spec:
        return
    for entry in spec.split(","):
        action, _, rest = entry.strip().partition(":")
        name, _, match = rest.partition("=")
        if name != point or match not in detail:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), detail)
        elif action == "hold":
            print(f"[fault] holding at {point} {detail}", file=sys.stderr, flush=True)
            while True:
                time.sleep(60)
        else:
            raise ValueError(f"YARN_FAULT: unknown action {action!r} in {entry!r} (kill, enospc, hold)")
