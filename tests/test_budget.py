"""The budget a comparison rests on: each example exactly once per epoch on any number of ranks, and the
pretraining arms' token budget derived from what SFT really trains on (fairness rule 1)."""
import pytest

import cli
from core.data.budget import round_sizes
from train.sampler import ExactlyOnce

SMOKE = "configs/experiments/pretrain-smoke.yaml"


@pytest.mark.parametrize("n, batch, world", [(37, 4, 2), (33, 4, 2), (15, 4, 2), (16, 4, 2), (3, 4, 2),
                                             (100, 8, 3), (9, 2, 4), (8, 1, 2), (50, 8, 1)])
def test_every_example_once_and_every_rank_in_step(n, batch, world):
    lengths = [(7 * i) % 23 + 1 for i in range(n)]
    ranks = [ExactlyOnce(lengths, batch, world, rank, seed=3, group_by_length=True) for rank in range(world)]
    batches = [list(r) for r in ranks]
    assert len({len(b) for b in batches}) == 1                        # the same number of steps on every rank
    assert all(0 < len(x) <= batch for b in batches for x in b)       # none empty, none over the batch size
    seen = sorted(i for b in batches for x in b for i in x)
    assert seen == list(range(n))                                     # no repeats, no drops


def test_impossible_split_is_refused():
    with pytest.raises(ValueError, match="batch size of 2"):
        round_sizes(7, 1, 2)
    assert sum(map(sum, round_sizes(7, 2, 2))) == 7


def test_a_batch_larger_than_the_data_is_cut_not_looped_over():
    assert round_sizes(5, 10**20, 2) == [[3, 2]]   # once a loop of 10**20 steps before any compute


def test_order_is_seeded_by_epoch():
    s = ExactlyOnce(list(range(40)), 4, 2, 0, seed=0, group_by_length=False)
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first


def _budget(tmp_path, *overrides) -> int:
    import json

    out = tmp_path / "runs"
    assert cli.main(["run", SMOKE, f"output_dir={out}", "deepspeed.num_gpus=1", *overrides,
                     "--stage", "prepare"]) == 0
    return json.loads(
        (out / "pretrain-smoke" / "data" / "manifest.json").read_text())["pretrain cpt"]["token_budget"]


def test_token_budget_follows_sft_epochs(tmp_path):
    arms = "arms=[{{method: sft, epochs: {e}}}, {{method: cpt, langs: [de], max_length: 64}}]"
    one = _budget(tmp_path / "one", arms.format(e=1))
    assert _budget(tmp_path / "two", arms.format(e=2)) == 2 * one


def test_token_budget_is_refused_when_epochs_disagree(tmp_path, capsys):
    arms = "arms=[{method: sft, epochs: 1}, {method: lora, epochs: 2}, {method: cpt, langs: [de]}]"
    code = cli.main(["run", SMOKE, f"output_dir={tmp_path}", arms, "--stage", "prepare"])
    assert code == 2 and "data.token_budget" in capsys.readouterr().err
    assert not (tmp_path / "pretrain-smoke").exists()


def test_a_resumed_later_epoch_keeps_its_own_order():
    """On a resume the Trainer's skip wrapper hides the sampler from its set_epoch: the callback sets it."""
    from types import SimpleNamespace

    from train.sampler import _EpochSync

    sampler = ExactlyOnce(list(range(37)), 4, 2, 0, seed=0, group_by_length=False)
    _EpochSync(sampler).on_epoch_begin(None, SimpleNamespace(epoch=1.25), None)
    assert sampler.epoch == 1
