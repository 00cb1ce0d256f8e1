"""Multi-node launches without a cluster: `run --dry-run` and `sweep --dry-run` print the exact `deepspeed`
command line of every training job (train/launch.py `command()`, what `_launch` runs) for a 2-node × 8-GPU
hostfile, after validating the config and the files the launch reads; nothing is run or written. And the world
size of a hostfile is what prepare splits the budget over."""
import shlex
from pathlib import Path

import pytest
import yaml

import cli
from core.config import load_config
from train.launch import command, launcher

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "experiments" / "smoke.yaml")
TWO_NODES = "# written by Slurm\nnode-a slots=8\nnode-b slots=8\n"


def _deepspeed(hostfile: Path, port: int, run_dir: Path, job: str) -> list[str]:
    return [*launcher(), "--hostfile", str(hostfile), "--num_gpus", "8", "--master_port", str(port),
            str(REPO / "train" / "run.py"), "--run-dir", str(run_dir), "--job", job]


def _commands(printed: str) -> list[list[str]]:
    """The command lines of a dry run's output (its other lines are comments and [dry-run]/[sweep] notes)."""
    return [shlex.split(line) for line in printed.splitlines()
            if line and not line.startswith(("#", "[dry-run]", "[sweep]"))]


@pytest.fixture
def hostfile(tmp_path) -> Path:
    path = tmp_path / "hostfile"
    path.write_text(TWO_NODES)
    return path


def test_two_nodes_of_eight_gpus_show_the_exact_command_lines(tmp_path, hostfile, capsys):
    out = tmp_path / "runs"
    code = cli.main(["run", SMOKE, f"output_dir={out}", f"deepspeed.hostfile={hostfile}",
                     "deepspeed.num_gpus=8", "deepspeed.master_port=29555", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    run_dir = out.resolve() / "smoke"
    assert _commands(printed) == [_deepspeed(hostfile, 29555, run_dir, job) for job in ("sft", "lora")]
    header = printed.splitlines()[0]
    assert "2 training job(s), 16 ranks" in header and "node-a slots=8, node-b slots=8" in header
    assert "2 hosts × 8" in header and "shared filesystem" in printed
    # the environment the launcher adds, per job: the repository on PYTHONPATH, the job's W&B run
    notes = [line for line in printed.splitlines() if line.startswith("# ")]
    assert [n.split(";")[0].split(":")[0] for n in notes] == [
        "# sft", "# lora", "# evaluation on 16 ranks, when a record is still to compute"]
    assert all(f"PYTHONPATH={REPO}" in n and "WANDB_RUN_ID=smoke-" in n for n in notes[:2])
    # and the eval stage's launch, on the same ranks (eval/ranks.py)
    assert notes[2].endswith(f"--hostfile {hostfile} --num_gpus 8 --master_port 29555 --module eval.ranks "
                             f"--run-dir {run_dir} --split test --status {run_dir}/.eval-ranks-XXXX")
    assert not out.exists()   # nothing written: no run directory, no data, no checkpoints


def test_the_dry_run_prints_what_the_launcher_runs(tmp_path, hostfile, capsys):
    """The same function builds both: a printed line is `command()` of the job, verbatim."""
    cfg = load_config(SMOKE, [f"output_dir={tmp_path}", f"deepspeed.hostfile={hostfile}",
                              "deepspeed.num_gpus=8", "deepspeed.master_port=29555"])
    assert cli.main(["run", SMOKE, f"output_dir={tmp_path}", f"deepspeed.hostfile={hostfile}",
                     "deepspeed.num_gpus=8", "deepspeed.master_port=29555", "--dry-run"]) == 0
    run_dir = tmp_path.resolve() / "smoke"
    assert _commands(capsys.readouterr().out) == [command(cfg, run_dir, job.name, 29555)
                                                  for job in cfg.jobs()]
    assert cfg.deepspeed.world_size() == 16


def test_a_sweep_dry_run_shows_every_points_commands(tmp_path, hostfile, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": "configs/experiments/smoke.yaml", "name": "nodes",
        "overrides": [f"deepspeed.hostfile={hostfile}", "deepspeed.num_gpus=8",
                      "deepspeed.master_port=29555"],
        "grid": {"data.budget": [16, 32]}}))
    out = tmp_path / "runs"
    assert cli.main(["sweep", str(sweep), "--output-dir", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    points = [out.resolve() / "nodes" / f"nodes-budget{b}" for b in (16, 32)]
    assert _commands(printed) == [_deepspeed(hostfile, 29555, point, job)
                                  for point in points for job in ("sft", "lora")]
    assert printed.count(", to run)") == 2 and not out.exists()


def test_without_a_port_the_dry_run_says_the_launch_picks_one(tmp_path, capsys):
    assert cli.main(["run", SMOKE, f"output_dir={tmp_path}", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "one node, 2 ranks" in printed and "deepspeed.master_port fixes it" in printed
    port = _commands(printed)[0]
    assert port[port.index("--num_gpus") + 1] == "2" and "--hostfile" not in port
    assert int(port[port.index("--master_port") + 1]) > 0


@pytest.mark.parametrize("overrides, words", [
    (["data.budgt=8"], ["data.budgt"]),                                 # the config is validated first
    (["deepspeed.hostfile={tmp}/nope"], ["deepspeed.hostfile", "{tmp}/nope", "not found"]),
    (["deepspeed.hostfile={tmp}/bad"], ["deepspeed.hostfile", "{tmp}/bad:2", "slots"]),
    (["deepspeed.config={tmp}/bad"], ["deepspeed.config", "JSON"]),
])
def test_a_dry_run_of_a_bad_config_exits_2_naming_it(tmp_path, capsys, overrides, words):
    (tmp_path / "bad").write_text("node-a slots=8\nnode-b\n")
    argv = ["run", SMOKE, f"output_dir={tmp_path}/runs",
            *(o.replace("{tmp}", str(tmp_path)) for o in overrides), "--dry-run"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert all(w.replace("{tmp}", str(tmp_path)) in err for w in words), err
    assert not (tmp_path / "runs").exists()


def test_prepare_splits_the_budget_over_every_node_of_the_hostfile(tmp_path, hostfile, capsys, tiny_model):
    """8 examples on one node of 8 ranks is a batch each; on the hostfile's 16 ranks it is not possible, and
    prepare says so before any training (it used to count one node's ranks)."""
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"The house number {i} is small.\tDas Haus Nummer {i} ist klein.\n"
                             for i in range(40)))
    test = tmp_path / "test.tsv"
    test.write_text("".join(f"The tree number {i} is tall.\tDer Baum Nummer {i} ist hoch.\n"
                            for i in range(8)))
    argv = ["run", SMOKE, f"output_dir={tmp_path}/runs", "data.budget=8", "data.test_size=4",
            f"tasks.mt.train={{source: file, path: {train}}}",
            f"tasks.mt.test=[{{source: file, path: {test}}}]",
            "deepspeed.num_gpus=8", "--stage", "prepare"]
    assert cli.main([*argv, f"deepspeed.hostfile={hostfile}"]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "16 ranks" in err, err
    assert not (tmp_path / "runs" / "smoke" / "data").exists()
    assert cli.main(argv) == 0   # one node of 8: prepared


def test_the_number_of_hosts_is_in_the_config_hash_but_not_the_hostfiles_path(tmp_path, hostfile):
    """Two nodes run twice the ranks (other optimizer rounds), so another run directory, W&B ids and sweep
    state; the same two hosts in another file (Slurm writes one per job), or one host, change nothing."""
    def digest(*overrides: str) -> str:
        return load_config(SMOKE, ["deepspeed.num_gpus=8", *overrides]).hash()

    elsewhere, one = tmp_path / "hostfile-job-2", tmp_path / "one"
    elsewhere.write_text("node-c slots=8\nnode-d slots=8\n")
    one.write_text("node-a slots=8\n")
    alone = digest()
    assert digest(f"deepspeed.hostfile={hostfile}") != alone
    assert digest(f"deepspeed.hostfile={hostfile}") == digest(f"deepspeed.hostfile={elsewhere}")
    assert digest(f"deepspeed.hostfile={one}") == alone


def test_a_run_resumes_under_the_next_jobs_hostfile_once_its_own_is_gone(tmp_path, tiny_model, capsys):
    """Slurm writes a hostfile per job: the run directory's config.yaml names the first job's, deleted by the
    time the second job resumes the run. Prepare records the hosts' number (deepspeed.nodes), so the saved
    config's hash is still computed, equal for two hosts, different for three."""
    first, second, third = (tmp_path / f"hostfile-{job}" for job in (101, 102, 103))
    first.write_text("node-a slots=8\nnode-b slots=8\n")
    second.write_text("node-c slots=8\nnode-d slots=8\n")
    third.write_text("node-c slots=8\nnode-d slots=8\nnode-e slots=8\n")
    argv = ["run", SMOKE, f"output_dir={tmp_path}/runs", "data.test_size=4", "deepspeed.num_gpus=1",
            "wandb.mode=disabled", "--stage", "prepare"]
    assert cli.main([*argv, f"deepspeed.hostfile={first}"]) == 0
    saved = tmp_path / "runs" / "smoke" / "config.yaml"
    assert yaml.safe_load(saved.read_text())["deepspeed"]["nodes"] == 2
    first.unlink()
    assert load_config(saved).hash() == load_config(SMOKE, ["data.test_size=4", "deepspeed.num_gpus=1",
                                                            f"deepspeed.hostfile={second}"]).hash()
    assert cli.main([*argv, f"deepspeed.hostfile={second}"]) == 0
    capsys.readouterr()
    assert cli.main([*argv, f"deepspeed.hostfile={third}"]) == 2
    assert "holds a run of a different config" in capsys.readouterr().err
