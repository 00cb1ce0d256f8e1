"""Faults at named points (core/faults.py: YARN_FAULT), never timed kills: damaged checkpoints and records, a
kill during training, evaluation and the report, a full disk, two commands on one run directory. After each,
nothing half-written is presented as complete, and running the same command again finishes the run without
duplicates.

Each case copies the session's smoke run (tests/conftest.py::smoke_run) instead of training again. A kill
during training and a damaged checkpoint to resume from:
test_pretrain.py::test_sigkilled_training_resumes_to_the_same_model.
"""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli
from core.io import read_jsonl
from tests.conftest import REPO, run_cli

SMOKE = "configs/experiments/smoke.yaml"
ARMS = 6


@pytest.fixture
def run(smoke_run, tmp_path) -> Path:
    copy = tmp_path / "runs" / "smoke"
    shutil.copytree(smoke_run[0], copy)
    return copy


def rerun(run: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """The smoke command again on the copy (W&B off: it is tested elsewhere; evaluation in process, as its
    ranks are tests/test_eval_ranks.py's): in this process (seconds saved on every start), in a process of its
    own when the fault kills it."""
    args = ["run", SMOKE, f"output_dir={run.parent}", "wandb.mode=disabled", "eval.in_process=true", *extra]
    if fault and fault.startswith("kill"):
        return run_cli(*args, env={"YARN_FAULT": fault})
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.pop("YARN_FAULT", None)
    os.environ.update({"YARN_FAULT": fault} if fault else {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args)
    finally:
        os.environ.pop("YARN_FAULT", None)
        os.environ.update({"YARN_FAULT": old} if old else {})
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def damage(path: Path, n: int) -> None:
    """Flip n bytes in the middle of a file."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "results").iterdir())} | {
        "results.jsonl": (run / "results.jsonl").read_bytes()}


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr[-2000:]
    return lines[-1]


def complete(run: Path) -> list[dict]:
    """The run's records: one per arm, every record file parses, no temporary file left behind as if
    complete."""
    records = read_jsonl(run / "results.jsonl")
    assert sorted(r["arm"] for r in records) == sorted({r["arm"] for r in records}) and len(records) == ARMS
    for path in (run / "results").iterdir():
        json.loads(path.read_text())
    assert not [p for p in run.rglob("*.tmp") if "trainer" not in p.parts]
    return records


@pytest.mark.parametrize("target, n", [("sft/model/model.safetensors", 4096),
                                       ("lora/model/adapter_model.safetensors", 2048),
                                       ("lora/model/adapter_config.json", 1),
                                       ("sft/model/tokenizer.json", 1)])
def test_a_damaged_checkpoint_is_refused_not_reused(run, target, n):
    before = snapshot(run)
    damage(run / "checkpoints" / target, n)
    proc = rerun(run)
    assert proc.returncode == 2
    err = one_line_error(proc)
    assert target in err and "differ" in err and "remove" in err
    arm = target.split("/")[0]
    assert f"{arm}: complete checkpoint found" not in proc.stdout   # not reused ...
    assert "[eval]" not in proc.stdout and "--num_gpus" not in proc.stdout   # ... nor trained, nor evaluated
    assert snapshot(run) == before                                              # no record rewritten
    if target.endswith("model.safetensors"):   # the evaluation stage alone verifies too
        alone = rerun(run, "--stage", "eval")
        assert alone.returncode == 2 and target in one_line_error(alone)


def test_swapped_checkpoints_and_an_edited_train_json_are_refused_and_kept(run):
    ckpt = run / "checkpoints"
    (ckpt / "sft").rename(ckpt / "tmp")
    (ckpt / "lora").rename(ckpt / "sft")
    (ckpt / "tmp").rename(ckpt / "lora")
    proc = rerun(run, "--stage", "eval")
    assert proc.returncode == 2 and "swapped" in one_line_error(proc)
    (ckpt / "sft").rename(ckpt / "tmp")
    (ckpt / "lora").rename(ckpt / "sft")
    (ckpt / "tmp").rename(ckpt / "lora")
    record = ckpt / "sft" / "train.json"
    record.write_text(record.read_text().replace('"data_sha256": "', '"data_sha256": "0'))
    proc = rerun(run, "--stage", "train")   # not "trained on other data": that would delete the checkpoint
    assert proc.returncode == 2 and "does not match its own sha256" in one_line_error(proc)
    assert (ckpt / "sft" / "model" / "model.safetensors").is_file()


def test_a_copied_run_evaluates_again_what_was_retrained_in_the_copy(run, smoke_run):
    """Records name their weights inside the run directory (`in_run`), not by the original's absolute path."""
    from safetensors.torch import load_file, save_file

    from core.checkpoints import read_record, seal
    from core.io import atomic_write_json, hash_weights

    weights = run / "checkpoints" / "sft" / "model" / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v * 0.5 for k, v in tensors.items()}, str(weights), metadata={"format": "pt"})
    record_path = run / "checkpoints" / "sft" / "train.json"
    record = read_record(record_path)   # as a retrain in the copy would leave it
    atomic_write_json(record_path,
                      seal(record.model_copy(update={"weights_sha256": hash_weights(weights.parent)})))
    proc = rerun(run, "--stage", "eval")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sft mt en-de: kept" not in proc.stdout and "pretty-sft-k1 mt en-de: kept" not in proc.stdout
    assert "base mt en-de: kept" in proc.stdout and "lora mt en-de: kept" in proc.stdout


def test_a_truncated_checkpoint_is_named_not_a_traceback(run):
    weights = run / "checkpoints" / "sft" / "model" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    proc = rerun(run, "--stage", "eval")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = one_line_error(proc)
    assert "model.safetensors" in err and "truncated" in err


def test_a_damaged_record_is_evaluated_again_and_a_kill_after_a_record_loses_nothing(run):
    record = run / "results" / "lora.mt.en-de.json"
    record.write_text(record.read_text()[:100])
    (run / "results" / "sft.mt.en-de.json").write_text("[1]")   # JSON, but not a record
    for p in (run / "results").glob("pretty-*.json"):
        p.unlink()
    killed = rerun(run, fault="kill:written=results/pretty-oracle-k1.")
    assert killed.returncode == -signal.SIGKILL   # a killed evaluation rank: tests/test_eval_ranks.py
    assert "lora.mt.en-de.json: unreadable record" in killed.stdout
    assert "sft.mt.en-de.json: unreadable record" in killed.stdout
    assert (run / "results" / "pretty-oracle-k1.mt.en-de.json").is_file()   # written whole before the kill
    again = rerun(run)
    assert again.returncode == 0, again.stderr[-2000:]
    # all but pretty-frequent-k1, the one the kill came before
    assert again.stdout.count(": kept ") == ARMS - 1
    complete(run)


def test_disk_full_while_writing_a_record_or_the_report(run):
    (run / "results" / "base.mt.en-de.json").unlink()
    full = rerun(run, fault="enospc:write=results/base.")
    assert full.returncode == 1 and "No space left on device" in one_line_error(full)
    assert not (run / "results" / "base.mt.en-de.json").exists()   # no half record, no temporary file
    assert not list((run / "results").glob(".*"))
    report = (run / "report.md").read_bytes()
    full = rerun(run, fault="enospc:write=report.md")
    assert full.returncode == 1 and "report.md" in one_line_error(full)
    assert (run / "report.md").read_bytes() == report and not list(run.glob(".report.md*"))
    assert rerun(run).returncode == 0
    complete(run)


def test_a_sweep_point_whose_report_failed_is_not_finished(run):
    from core.config import load_config
    from core.sweep import is_finished

    cfg = load_config(REPO / SMOKE, [f"output_dir={run.parent}"])
    assert is_finished(cfg)
    (run / "report.md").unlink()
    full = run_cli("report", str(run), env={"YARN_FAULT": "enospc:write=report.md"})
    assert full.returncode == 1 and (run / "report.csv").is_file() and (run / "report.html").is_file()
    assert not is_finished(cfg)   # report.md is written last: the others alone do not make a point finished


def test_a_kill_while_writing_the_report_leaves_the_old_one(run):
    (run / "report.md").unlink()
    killed = rerun(run, "--stage", "report", fault="kill:write=report.md")
    assert killed.returncode == -signal.SIGKILL
    assert not (run / "report.md").exists()       # the half-written file is hidden (.report.md.*.tmp) ...
    again = rerun(run, "--stage", "report")
    # ... and written whole next time
    assert again.returncode == 0 and "## mt" in (run / "report.md").read_text()


def test_one_writer_per_run_directory(run):
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                             "from core.lock import acquire; acquire(Path(sys.argv[1])); "
                             "print('held', flush=True); "
                             "time.sleep(600)", str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        proc = rerun(run)
        assert proc.returncode == 2 and f"pid {hold.pid}" in one_line_error(proc)
        assert "[eval]" not in proc.stdout
    finally:
        hold.kill()   # SIGKILL: the kernel drops the lock with the process
        hold.wait()
    assert rerun(run, "--stage", "report").returncode == 0   # a lock left by a killed process does not block


def test_the_lock_file_is_never_followed_through_a_link(run, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(victim)
    proc = run_cli("report", str(run))
    assert proc.returncode == 2 and ".lock" in one_line_error(proc) and victim.read_text() == "keep me"


def test_checkpoint_files_respect_the_umask(smoke_run):
    mask = os.umask(0)
    os.umask(mask)
    for p in (smoke_run[0] / "checkpoints").rglob("*.safetensors"):   # safetensors writes 0600 itself
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p


def test_written_files_respect_the_umask(tmp_path):
    """Configs, results and reports are for the team: a plain open's permissions, not mkstemp's 0600."""
    from core.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.json", "{}")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_sigterm_to_the_cli_stops_the_launcher_and_its_ranks(tmp_path):
    """`kill PID` or Slurm's scancel reach the CLI with SIGTERM. Python's default ended it on the spot and
    left DeepSpeed's launcher and both training ranks running after the run's lock was released (the runner
    forwards signals only for multi-node launches); now the whole tree is stopped and the CLI exits 143, with
    one line."""
    import psutil

    from core.processes import stop_tree

    argv = [sys.executable, "cli.py", "run", SMOKE, f"output_dir={tmp_path}", "wandb.mode=disabled",
            "arms.sft.save_steps=2", "--stage", "train"]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"YARN_FAULT": "hold:checkpoint-saved"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tree = []
    try:
        held = next((line for line in proc.stderr if line.startswith("[fault] holding")), None)
        assert held, "training never reached its first checkpoint"   # both ranks wait there
        tree = psutil.Process(proc.pid).children(recursive=True)
        ranks = [p for p in tree if any(a.startswith("--local_rank") for a in p.cmdline())]
        assert len(ranks) == 2 and len(tree) > len(ranks)   # and the runner, DeepSpeed's launcher
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143 and "stopped by signal SIGTERM" in err and "Traceback" not in err
        assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:   # nothing left behind, whatever failed
        if proc.poll() is None:
            stop_tree(proc.pid, grace_s=5)
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def test_ctrl_c_in_the_cli_is_one_line_and_exit_130(tmp_path):
    """Held while prepare writes (in the CLI's own process), then Ctrl-C: one line, no traceback."""
    argv = [sys.executable, "cli.py", "run", SMOKE, f"output_dir={tmp_path}", "wandb.mode=disabled",
            "--stage", "prepare"]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"YARN_FAULT": "hold:written=manifest.json"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert next((line for line in proc.stderr if line.startswith("[fault] holding")), None)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "[run] interrupted" in err and "Traceback" not in err


def test_an_interrupted_launch_kills_what_ignores_sigterm_even_when_interrupted_again(tmp_path):
    """run_tree under Ctrl-C, twice in a row: the child and grandchild ignore SIGTERM, so they are killed
    after the grace period; the second Ctrl-C does not cut the stopping short (it did: both lived on)."""
    import psutil

    ignoring = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = ("import subprocess, sys, time, signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             f"p = subprocess.Popen([sys.executable, '-c', {ignoring!r}]); print(p.pid, flush=True); "
             "time.sleep(600)")
    driver = ("import sys, core.processes as cp; cp.GRACE_S = 2; "
              f"cp.run_tree([sys.executable, '-c', {child!r}], None, '.', "
              "on_line=lambda line: print(line, end='', flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    grandchild = psutil.Process(int(proc.stdout.readline()))
    child = grandchild.parent()
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)   # during the grace period
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs([child, grandchild], timeout=5)
        assert not alive
    finally:
        for p in (child, grandchild):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
