"""The evaluation stage over the ranks training uses, and the entry point each evaluation rank runs:

    PYTHONPATH=. deepspeed --num_gpus 2 --module eval.ranks --run-dir runs/demo [--split dev]

With `deepspeed.num_gpus` x the hostfile's nodes > 1 ranks, the stage starts them with the real DeepSpeed
launcher, as training does (train/launch.py); each rank decodes whole batches of the one-rank order
(core.decoding.run_batches), so outputs and metrics are those of one rank, and rank 0 alone writes the
records and logs them. One rank evaluates in the calling process, as before. Each rank reports how it ended
in a status file, so a failed stage names the rank that failed or died and why.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from core.config import ExperimentConfig, load_config
from core.decoding import RankLost, join_ranks, leave_ranks
from core.errors import StageFailed, UserError
from core.io import read_jsonl
from core.processes import run_tree
from core.rundir import RunDir
from eval.run import Evaluator

REPO = Path(__file__).resolve().parents[1]
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def evaluate(cfg: ExperimentConfig, run_dir: Path, split: str = "test") -> list[dict]:
    """The eval stage: in this process on one rank (or eval.in_process), or when every record is kept; else
    under the launcher, on the ranks training runs on."""
    evaluator = Evaluator(cfg, run_dir, split)
    if cfg.eval.in_process or cfg.deepspeed.world_size() == 1 or not evaluator.pending():
        return evaluator.run()
    _launch(cfg, run_dir, split)
    return read_jsonl(evaluator.dir.results)


def command(cfg: ExperimentConfig, run_dir: Path, split: str, status: Path, port: int) -> list[str]:
    from train.launch import launch_line

    # a module: run as a script, eval/ would come first on sys.path (eval/comet.py hiding COMET's)
    return launch_line(cfg, port, ["--module", "eval.ranks", "--run-dir", str(run_dir), "--split", split,
                                   "--status", str(status)])


def _launch(cfg: ExperimentConfig, run_dir: Path, split: str) -> None:
    from train.launch import _free_port, _remove_shared_buffers, environment

    # in the run directory: ranks on other nodes see it (a shared file system, as checkpoints need)
    status = Path(tempfile.mkdtemp(dir=run_dir, prefix=".eval-ranks-"))
    port = cfg.deepspeed.master_port or _free_port()
    cmd = command(cfg, run_dir, split, status, port)
    print("[eval] " + " ".join(cmd), flush=True)
    try:
        code = _run(cmd, environment(cfg, run_dir, "ranks", "eval"))
        if code != 0:
            raise failure(_statuses(status), cfg.deepspeed.world_size(), code)
    finally:
        _remove_shared_buffers(port)
        shutil.rmtree(status, ignore_errors=True)


def _run(cmd: list[str], env: dict[str, str]) -> int:
    """The launcher's exit code; rank 0's output passes through this process's sys.stdout (where a caller,
    e.g. a test, may be capturing it)."""
    def through(line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()

    return run_tree(cmd, env, REPO, on_line=through)


def _statuses(directory: Path) -> dict[int, dict]:
    found = {}
    for path in directory.glob("rank-*.json"):
        try:
            found[int(path.stem.removeprefix("rank-"))] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def failure(statuses: dict[int, dict], world: int, code: int) -> Exception:
    """What a failed stage raises, from the ranks' statuses: the first failed rank's error (a UserError as
    one, a full disk as the OSError the CLI names), else the ranks that died without a word (a signal: the
    out-of-memory killer, SIGKILL); ranks the launcher stopped, or that lost a rank in a gather, are not the
    cause."""
    failed = [r for r in range(world) if statuses.get(r, {}).get("state") == "failed"]
    if failed:
        first = statuses[failed[0]]
        where = f"evaluation rank{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
        if first.get("user_error"):
            return UserError(f"{where}: {first['message']}")
        if first.get("errno") in DISK_FULL:
            return OSError(first["errno"], os.strerror(first["errno"]), first.get("filename"))
        return StageFailed(f"{where} failed: {first['kind']}: {first['message']} (launcher exit {code}); "
                           "see the log above")
    dead = [r for r in range(world) if statuses.get(r, {}).get("state") not in ("ok", "stopped", "lost")]
    if not dead:
        return StageFailed(f"the evaluation launcher failed (exit {code}); see the log above")
    return StageFailed(f"evaluation rank{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} died "
                       f"without an error (killed by a signal, e.g. the out-of-memory killer; launcher exit "
                       f"{code}); see the log above")


# ---------------------------------------------------------------- one evaluation rank
class Status:
    """This rank's status file: started, then ok, failed (with the error), lost (another rank ended during a
    gather) or stopped (by the launcher, after another rank failed). A rank killed outright leaves
    "started"."""

    def __init__(self, directory: str | None, rank: int):
        self.path = Path(directory) / f"rank-{rank}.json" if directory else None

    def write(self, state: str, **details) -> None:
        if self.path is None:
            return
        part = self.path.with_name(f".{self.path.name}.part")
        try:
            part.write_text(json.dumps({"state": state, **details}))
            os.replace(part, self.path)
        except OSError:   # a full disk: the launcher's exit code still says the rank failed
            pass

    def failed(self, e: BaseException) -> None:
        lines = str(e).strip().splitlines()
        self.write("lost" if isinstance(e, RankLost) else "failed", kind=type(e).__name__,
                   message=lines[0][:500] if lines else "", user_error=isinstance(e, UserError),
                   errno=getattr(e, "errno", None),
                   filename=str(e.filename) if getattr(e, "filename", None) else None)


def _in_worker(work) -> None:
    """work() in a thread, the main thread waiting: a rank blocked in a collective (waiting for a dead rank)
    still runs its SIGTERM handler at once, instead of being killed 30 s later without a status."""
    done, errors = threading.Event(), []

    def target():
        try:
            work()
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    threading.Thread(target=target, name="evaluation", daemon=True).start()
    while not done.wait(1.0):
        pass
    if errors:
        raise errors[0]


def _evaluate(run_dir: Path, split: str) -> None:
    join_ranks()
    if int(os.environ.get("RANK", "0")) != 0:   # rank 0 alone prints; errors still reach stderr
        sys.stdout = open(os.devnull, "w")
    # the config prepare resolved for this run directory, as training ranks read it
    Evaluator(load_config(RunDir(run_dir).config), run_dir, split).run()
    leave_ranks()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, type=Path, help="run directory prepared by ./launch.sh run")
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument("--status", help="directory for each rank's status file (set by the eval stage)")
    p.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)   # from the launcher
    args = p.parse_args(argv)
    status = Status(args.status, int(os.environ.get("RANK", "0")))

    def stopped(signum, _frame):
        status.write("stopped", signal=signum)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    status.write("started")
    try:
        _in_worker(lambda: _evaluate(args.run_dir, args.split))
    except UserError as e:
        status.failed(e)
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except BaseException as e:
        status.failed(e)
        raise
    status.write("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
