"""Trust nothing on disk (issue 16): names that become paths and ids, the Slurm script's quoting, config and
sweep files that are not UTF-8 or repeat a key, out-of-range command-line numbers, formulas in report.csv."""
import csv
import io
import os
import shlex
import subprocess
from pathlib import Path

import pytest

import cli
from core.config import check_name
from core.sweep import SweepSpec, expand, load_sweep, points, slurm_script
from core.records import ResultRecord
from eval.report import render_csv

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "experiments" / "smoke.yaml")
SMOKE_SWEEP = str(REPO / "configs" / "sweeps" / "smoke.yaml")
LONG = "a" * 60


def run_cli(capsys, *args):
    code = cli.main(["run", SMOKE, *args, "--stage", "prepare"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("overrides, culprit", [
    (["name=.."], "name: "),
    (["name=a.b"], "name: "),
    (["name=" + "a" * 65], "name: "),
    (["arms.1.name=../../x"], "arms.1.name: "),
    (["arms.1.name=a/b"], "arms.1.name: "),
    (["arms.1.name=a;b"], "arms.1.name: "),
    (["arms.1.name=x.y"], "arms.1.name: "),
    (["arms.1.name='7'"], "arms.1.name: "),     # arms.1.key is the index form
    (["arms.1.name=1x"], "arms.1.name: "),
    (["arms.3.name=p.q"], "arms.3.name: "),     # a PreTTY arm, whose name is otherwise derived
    (["arms.1={method: cpt, langs: [de], name: c/d}"], "arms.1.name: "),
    ([f"arms.2.name={LONG}", "seeds=[0, 1]"], f"seed copy '{LONG}-seed1'"),
    ([f"arms.0.name={LONG}", f"tasks.conductivity={{langs: [de], from_arms: [{LONG}]}}"], f"'cd-de-{LONG}'"),
])
def test_bad_names_exit_2_naming_the_field(tmp_path, capsys, overrides, culprit):
    code, err = run_cli(capsys, f"output_dir={tmp_path}/runs", *overrides)
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert culprit in err and "not a valid name" in err
    assert not (tmp_path / "runs").exists()


def test_bad_name_in_a_file_names_file_line_and_field(tmp_path, capsys):
    config = tmp_path / "x.yaml"
    config.write_text(Path(SMOKE).read_text().replace("{method: sft,", "{method: sft, name: ../up,"))
    assert cli.main(["run", str(config), "--stage", "prepare", f"output_dir={tmp_path}/runs"]) == 2
    assert f"{config}:19: arms.1.name: " in capsys.readouterr().err


def test_sweep_name_is_checked(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: configs/experiments/smoke.yaml\nname: my.sweep\ngrid: {data.budget: [8]}\n")
    assert cli.main(["sweep", str(sweep), "--dry-run"]) == 2
    assert f"{sweep}:2: name: " in capsys.readouterr().err


def test_sweep_point_names_are_valid_short_and_distinct():
    spec = SweepSpec(base="configs/experiments/smoke.yaml", name="s", grid={"arms.1.learning_rate": [1.0e-4]})
    assert points(spec)[0][-1] == "name=s-learning_rate0p0001"
    long = SweepSpec(base="configs/experiments/smoke.yaml", name="b" * 50,
                     grid={"arms.1.learning_rate": [1.0e-4, 1.5e-4], "arms.1.warmup_ratio": [0.1, 0.2]},
                     paired={"eval.samples": [1, 2], "data.test_size": [4, 5]})
    names = [p[-1].removeprefix("name=") for p in points(long)]
    assert len(set(names)) == len(names) == 8
    assert all(check_name(n) and len(n) <= 64 for n in names)
    assert [c.name for c, _ in expand(long)] == names   # each point loads under its name


def test_slurm_script_quotes_every_value(tmp_path):
    marks = [tmp_path / f"mark{i}" for i in range(6)]
    spec = load_sweep(SMOKE_SWEEP).model_copy(
        update={"overrides": [f"wandb.project=$(touch {marks[0]}); touch {marks[1]}\ntouch {marks[2]}"]})
    configs = expand(spec)
    sweep_path = f"s.yaml\ntouch {marks[3]} $(touch {marks[4]})"
    base = f"configs/experiments/smoke.yaml; touch {marks[5]}"
    script = slurm_script(spec.model_copy(update={"base": base}), configs, sweep_path, 1, 1)
    assert f"# written by ./launch.sh sweep {sweep_path!r} --slurm" in script   # the comment stays one line
    # run it in a stand-in repository: ./launch.sh records its arguments, scontrol names one host
    fake = tmp_path / "repo"
    (fake / "bin").mkdir(parents=True)
    (fake / "launch.sh").write_text("#!/usr/bin/env bash\nprintf '%s\\0' \"$@\" > args\n")
    (fake / "bin" / "scontrol").write_text("#!/usr/bin/env bash\necho node1\n")
    for exe in (fake / "launch.sh", fake / "bin" / "scontrol"):
        exe.chmod(0o755)
    path = tmp_path / "job.sh"
    cd = f"cd {shlex.quote(str(REPO))}"
    assert cd in script.splitlines()
    path.write_text(script.replace(cd, f"cd {shlex.quote(str(fake))}"))
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    env = {**os.environ, "PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "SLURM_JOB_ID": "7",
           "SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_NODELIST": "node1"}
    subprocess.run(["bash", str(path)], env=env, cwd=tmp_path, check=True)
    assert not any(m.exists() for m in marks)
    args = (fake / "args").read_text().split("\0")[:-1]
    assert args == ["run", base, *configs[0][1], "deepspeed.hostfile=hostfile-7-0", "deepspeed.num_gpus=1"]


@pytest.mark.parametrize("override, culprit", [
    ("data.budget={", "override 'data.budget={'"),
    ("arms.1={method: sft, epochs: 1, epochs: 2}", "duplicate key 'epochs'"),
])
def test_override_value_errors_are_one_line(tmp_path, capsys, override, culprit):
    code, err = run_cli(capsys, f"output_dir={tmp_path}/runs", override)
    assert code == 2 and err.startswith("error: ") and culprit in err and "\n" not in err


def test_config_not_utf8(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes(Path(SMOKE).read_text().replace("name: smoke", "name: caf\xe9").encode("latin-1"))
    code = cli.main(["run", str(config), "--stage", "prepare"])
    assert code == 2 and f"{config}: not UTF-8" in capsys.readouterr().err


def test_duplicate_key_in_config(tmp_path, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text(Path(SMOKE).read_text().replace("  test_size: 8\n", "  test_size: 8\n  budget: 16\n"))
    code = cli.main(["run", str(config), "--stage", "prepare", f"output_dir={tmp_path}/runs"])
    assert code == 2 and f"{config}:17: invalid YAML (duplicate key 'budget')" in capsys.readouterr().err


@pytest.mark.parametrize("text, culprit", [
    (b"base: configs/experiments/smoke.yaml\nname: s\nname: t\ngrid: {data.budget: [8]}\n",
     ":3: invalid YAML (duplicate key 'name')"),
    (b"base: configs/experiments/smoke.yaml\nname: s\n",
     ": (top level): Value error, a sweep needs grid or paired"),
    (b"base: configs/experiments/smoke.yaml\nname: caf\xe9\ngrid: {data.budget: [8]}\n", ": not UTF-8"),
    (b"base: configs/experiments/smoke.yaml\nname: s\ngrid: {data.budget: [8]\n", ":4: invalid YAML"),
])
def test_bad_sweep_files(tmp_path, capsys, text, culprit):
    sweep = tmp_path / "s.yaml"
    sweep.write_bytes(text)
    assert cli.main(["sweep", str(sweep), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {sweep}{culprit}") and "\n" not in err


@pytest.mark.parametrize("args, option", [
    (["report", "RUN_DIR", "--usd-per-device-hour", "-1"], "--usd-per-device-hour"),
    (["report", "RUN_DIR", "--usd-per-device-hour", "0"], "--usd-per-device-hour"),
    (["report", "RUN_DIR", "--usd-per-device-hour", "nan"], "--usd-per-device-hour"),
    (["sweep", SMOKE_SWEEP, "--slurm", "JOB", "--gpus-per-node", "0"], "--gpus-per-node"),
    (["sweep", SMOKE_SWEEP, "--slurm", "JOB", "--nodes", "0"], "--nodes"),
])
def test_non_positive_numbers_on_the_command_line(tmp_path, capsys, args, option):
    args = [str(tmp_path / a) if a in ("RUN_DIR", "JOB") else a for a in args]
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2 and f"{option}: must be greater than 0" in capsys.readouterr().err
    assert not (tmp_path / "JOB").exists()


def test_csv_cells_are_never_formulas():
    bad = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    records = [ResultRecord.model_validate({"arm": "base", "task": "mt", "src": "en", "tgt": "de",
                      "experiment": bad[0], "git_rev": bad[1], "config_hash": bad[2],
                      "signatures": {"bleu": bad[3], "chrf": bad[4]},
                      "weights": {"path": bad[5]}, "metrics": {"chrf": -0.5, "=cmd": 1.0}}).as_dict()]
    row = list(csv.DictReader(io.StringIO(render_csv(records), newline="")))[0]
    assert [row[k] for k in ("experiment", "git_rev", "config_hash", "bleu_signature", "chrf_signature",
                             "weights_path")] == [f"'{v}" for v in bad]
    assert row["chrf"] == "-0.5" and row["'=cmd"] == "1.0" and row["arm"] == "base"
