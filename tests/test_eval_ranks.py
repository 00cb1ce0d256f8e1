"""Evaluation over the ranks training uses (eval/ranks.py): two CPU ranks under the real `deepspeed` launcher
write the records one rank writes (mt, pos, knowledge; a PreTTY prior and nudging too), a rank that dies is
named while the records written before it stay whole, and a batch that runs out of memory is halved and said
so. The launch's success path runs in every 2-rank cli test (test_knowledge.py, test_smoke_e2e.py)."""
import functools
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import eval.run as evaluation
from core.config import load_config
from core.errors import StageFailed, UserError
from core.prepare import prepare
from core.rundir import RunDir
from eval.ranks import evaluate, failure

SMOKE = Path("configs/experiments/smoke.yaml")   # deepspeed.num_gpus: 2
TASKS = ("tasks={mt: {directions: [en-de], train: {source: bible}, test: [{source: bible}]}, "
         "pos: {test_langs: [de]}, knowledge: {sets: [facts], langs: [en, de]}}")
# what a record computed, as against how long it took
SAME = ("metrics", "per_item", "samples", "prior", "nudge", "signatures", "n_items", "weights")


def _overrides(out: Path, tiny_model: str, *extra: str) -> list[str]:
    arms = (f"arms=[{{method: base}}, {{method: pretty, prior: oracle, k: 1}}, "
            f"{{method: nudge, threshold: 0.5, task_model: {tiny_model}}}]")
    # 5 items in batches of 2: three batches, two on rank 0 and one on rank 1
    return [f"output_dir={out}", "wandb.mode=disabled", TASKS, arms, "data.test_size=5", "eval.batch_size=2",
            *extra]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model, data_dir):
    """A prepared run directory (no results yet) to copy, and its config."""
    out = tmp_path_factory.mktemp("ranks") / "runs"
    cfg = load_config(SMOKE, _overrides(out, tiny_model))
    run_dir = prepare(cfg, SMOKE)
    RunDir(run_dir).unlock()
    return cfg, run_dir


def _copy(prepared, where: Path) -> Path:
    shutil.copytree(prepared[1], where / "smoke")
    return where / "smoke"


def _threads() -> int:
    """The threads each of two CPU ranks computes with (train/launch.py environment()): the one-rank run
    uses as many, so that no sum is taken in another order."""
    return int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // 2))


def _keyed(records: list[dict]) -> dict[tuple, dict]:
    return {(r["arm"], r["task"], r["src"], r["tgt"]): r for r in records}


def _in_process(cfg, run_dir: Path, arms=None) -> dict[tuple, dict]:
    before = torch.get_num_threads()
    torch.set_num_threads(_threads())
    try:
        return _keyed(evaluation.Evaluator(cfg, run_dir).run(arms))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_rank(prepared, tmp_path_factory):
    cfg, _ = prepared
    return _in_process(cfg, _copy(prepared, tmp_path_factory.mktemp("one")))


def test_two_ranks_write_the_records_of_one_and_a_killed_rank_is_named(prepared, one_rank, tmp_path,
                                                                      monkeypatch, capsys):
    """One launch (each costs the ranks' start): rank 0 is killed right after writing the last record, so
    every record is on disk, whole, and the stage fails naming rank 0 (rank 1, stopped by the launcher or
    losing rank 0 in a gather, is not blamed)."""
    cfg, _ = prepared
    run_dir = _copy(prepared, tmp_path)
    monkeypatch.setenv("YARN_FAULT", "kill:written=results/nudge-model-t50.pos.")   # the last record
    with pytest.raises(StageFailed, match=r"^evaluation rank 0 died without an error"):
        evaluate(cfg, run_dir)
    out = capsys.readouterr().out
    assert "--num_gpus 2" in out and "--module eval.ranks" in out   # the launcher ran the ranks
    assert out.count("[eval] base mt en-de: ") == 1                 # rank 0 alone printed
    two = _keyed([json.loads(p.read_text()) for p in (run_dir / "results").iterdir()])
    assert {task for _, task, _, _ in two} == {"mt", "pos", "knowledge"}
    assert set(two) == set(one_rank) and len(two) == 8   # knowledge: base alone (nothing to prior or nudge)
    for key, record in two.items():
        for field in SAME:
            assert record.get(field) == one_rank[key].get(field), (key, field)
        wall = record["cost"].pop("eval_wall_s")
        one_cost = dict(one_rank[key]["cost"])
        assert wall > 0 and one_cost.pop("eval_wall_s") > 0
        assert record["cost"] == one_cost
        assert record["eval_batching"] == {"batch_size": 2, "batch_size_used": 2, "halved": 0, "ranks": 2}
        assert one_rank[key]["eval_batching"]["ranks"] == 1
    assert sum(two[("nudge-model-t50", "mt", "en", "de")]["per_item"]["nudged"]) > 0   # the nudge path ran
    assert not list(run_dir.rglob("*.tmp")) and not list(run_dir.glob(".eval-ranks-*"))   # status removed


def test_a_batch_out_of_memory_is_halved_and_recorded(prepared, one_rank, tiny_model, tmp_path, monkeypatch,
                                                      capsys):
    """Every batch of more than 2 rows runs out of memory once: halved, its rows are the batches of 2 the
    one-rank run decoded, so the outputs are those (the warm-up's batch is halved too, uncounted)."""
    real = evaluation.load_model

    def small_memory(*args, **kwargs):
        model = real(*args, **kwargs)
        forward = model.forward

        @functools.wraps(forward)
        def limited(*a, **kw):
            if kw.get("input_ids", a[0] if a else None).shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(*a, **kw)

        model.forward = limited
        return model

    monkeypatch.setattr(evaluation, "load_model", small_memory)
    cfg = load_config(SMOKE, _overrides(prepared[1].parent, tiny_model, "eval.batch_size=4"))
    records = _in_process(cfg, _copy(prepared, tmp_path), ["base"])
    out = capsys.readouterr().out
    assert len(records) == 4
    for key, record in records.items():
        assert record["eval_batching"]["batch_size"] == 4 and record["eval_batching"]["batch_size_used"] == 2
        assert record["eval_batching"]["halved"] >= 1
        assert record["per_item"] == one_rank[key]["per_item"], key
        assert out.count(f"[eval] {key[0]} {key[1]} {key[2]}-{key[3]}: out of memory") == 1   # said once


def test_the_failed_rank_is_told_apart_from_those_the_launcher_stopped():
    stopped, ok = {"state": "stopped"}, {"state": "ok"}
    err = failure({0: {"state": "failed", "kind": "RuntimeError", "message": "boom"}, 1: stopped}, 2, 1)
    assert isinstance(err, StageFailed)
    assert str(err).startswith("evaluation rank 0 failed: RuntimeError: boom")
    err = failure({0: stopped, 1: {"state": "started"}, 2: ok, 4: {"state": "lost"}}, 5, 247)
    assert "evaluation ranks 1, 3 died without an error" in str(err)   # rank 3 never reported at all
    user = failure({1: {"state": "failed", "kind": "UserError", "message": "bad", "user_error": True}}, 2, 2)
    assert isinstance(user, UserError) and str(user) == "evaluation rank 1: bad"
    full = failure({0: {"state": "failed", "kind": "OSError", "message": "x", "errno": 28,
                        "filename": "results/a.json"}}, 2, 1)
    assert isinstance(full, OSError) and full.errno == 28 and full.filename == "results/a.json"


def test_device_seconds_are_the_ranks_work_not_their_waits():
    """Two ranks: 1.5 s of batches each, rank 0 in run_batches 2.5 s (1 s waiting at the gather), 1.5 s of its
    4 s outside the batches (priors): 1.5 + 3.0 device-seconds, not 4 s x 2 ranks."""
    from core.decoding import Batches

    assert Batches(work_s=3.0, inside_s=2.5).device_seconds(4.0) == 4.5
    assert Batches(work_s=2.5, inside_s=2.5).device_seconds(4.0) == 4.0   # one rank: its wall time
