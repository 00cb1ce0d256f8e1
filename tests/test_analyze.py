"""Token distribution shift (align.analyze) on the tiny in-process model."""
import copy
import json

import pytest
import torch

from align.analyze import main, output_logprobs, shift_statistics
from core.errors import UserError
from core.models import load_model, load_tokenizer
from core.decoding import generate

PROMPTS = [f"Translate this from English into German:\nEnglish: {s}\nGerman:"
           for s in ["In the beginning", "And the earth was without form, and void", "Amen", "Jesus wept."]]


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_model(tiny_model, "float32")


def perturbed(model, scale: float = 0.5):
    torch.manual_seed(1)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.model.layers[-1].parameters():
            p.add_(scale * torch.randn_like(p))
    return other


def greedy(model, tok, n: int = 8) -> list[list[int]]:
    return [g.new_ids for g in generate(model, tok, PROMPTS, max_new_tokens=n, batch_size=4,
                                        stop_at_newline=False)]


def test_teacher_forced_logprobs_equal_step_by_step_decoding(tok, model):
    """Catches padding and off-by-one errors: mixed output lengths in one left-padded batch."""
    steps = []
    for p in PROMPTS:
        ids = torch.tensor([tok(p).input_ids])
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=6, output_logits=True, return_dict_in_generate=True,
                           pad_token_id=tok.pad_token_id, eos_token_id=None, top_p=None, top_k=None,
                           temperature=None)
        steps.append((g.sequences[0, ids.shape[1]:].tolist(),
                      torch.log_softmax(torch.cat(g.logits).float(), -1)))
    outputs = [out[:n] for (out, _), n in zip(steps, [6, 2, 1, 4])]
    forced = output_logprobs(model, tok, PROMPTS, outputs)
    for f, o, (_, ref) in zip(forced, outputs, steps):
        assert f.shape == (len(o), len(tok))
        torch.testing.assert_close(f, ref[:len(o)], atol=1e-4, rtol=1e-4)


def test_a_model_against_itself_is_unshifted(tok, model):
    stats = shift_statistics(model, model, tok, PROMPTS, greedy(model, tok), batch_size=3)
    assert all(abs(k) < 1e-6 for item in stats["items"] for k in item["kl"])
    assert all(r == 1 for item in stats["items"] for r in item["base_rank"])
    for s in stats["by_prior"]:
        assert s["shares"] == {"unshifted": 1.0, "marginal": 0.0, "shifted": 0.0}
        assert s["at_prior"]["shares"]["unshifted"] == 1.0 and s["at_prior"]["position"] == s["j"]


def test_a_perturbed_model_is_shifted(tok, model):
    aligned = perturbed(model)
    outputs = greedy(aligned, tok)
    stats = shift_statistics(model, aligned, tok, PROMPTS, outputs, priors_j=(0, 1, 2), batch_size=3)
    assert all(k > 0 for item in stats["items"] for k in item["kl"])
    assert any(r > 3 for item in stats["items"] for r in item["base_rank"])
    j0, j1, j2 = stats["by_prior"]
    assert j0["tokens"] == sum(map(len, outputs)) and j2["tokens"] == sum(max(len(o) - 2, 0) for o in outputs)
    assert j1["positions"][0] == 1 and j1["mean_kl"] == j0["mean_kl"][1:]  # teacher-forced: same prefixes
    for s in stats["by_prior"]:
        for shares in (s["shares"], s["at_prior"]["shares"]):
            assert sum(shares.values()) == pytest.approx(1.0)
    # Batching and item order change nothing.
    single = shift_statistics(model, aligned, tok, PROMPTS, outputs, batch_size=1)
    for a, b in zip(single["items"], stats["items"]):
        assert a["base_rank"] == b["base_rank"] and a["kl"] == pytest.approx(b["kl"], rel=1e-4, abs=1e-6)


def test_empty_outputs_and_short_outputs(tok, model):
    stats = shift_statistics(model, model, tok, PROMPTS[:2],
                             [[], tok(" Im", add_special_tokens=False).input_ids])
    assert stats["items"][0] == {"kl": [], "base_rank": []}
    assert stats["by_prior"][2]["shares"] is None and stats["by_prior"][2]["at_prior"]["tokens"] == 0


def test_different_vocabularies_are_refused(tok, model):
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok) + 8, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(UserError, match="vocabular"):
        shift_statistics(model, other, tok, PROMPTS[:1], [[5]])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tok, model):
    root = tmp_path_factory.mktemp("shift")
    # the first row is a POS row of the same direction: --task keeps it out of a translation analysis
    rows = [{"prompt": p, "task": t, "direction": d}
            for p, t, d in zip(PROMPTS, ["pos", "mt", "mt", "mt"], ["en-de", "en-de", "en-fr", "en-de"])]
    (root / "data").mkdir()
    (root / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    perturbed(model, 0.2).save_pretrained(root / "sft")
    tok.save_pretrained(root / "sft")
    return root


def test_cli_writes_json_and_plot(run_dir, tiny_model, capsys):
    out = run_dir / "results" / "shift.json"
    assert main(["--base", tiny_model, "--aligned", str(run_dir / "sft"), "--run-dir", str(run_dir),
                 "--direction", "en-de", "--n", "5", "--max-new-tokens", "6", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["n_items"] == 2 and res["direction"] == "en-de" and res["task"] == "mt"
            and [s["j"] for s in res["by_prior"]] == [0, 1, 2])
    assert set(res["items"][0]) == {"kl", "base_rank", "prompt", "output", "tokens"}
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_cli_loads_a_lora_adapter(run_dir, tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(load_model(tiny_model, "float32"),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "shift.json"
    assert main(["--base", tiny_model, "--aligned", str(tmp_path / "adapter"), "--adapter", "--run-dir",
                 str(run_dir), "--n", "3", "--max-new-tokens", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["adapter"] and res["n_items"] == 3 and res["by_prior"][0]["mean_kl_all"] > 0


def test_cli_bad_input_is_one_line(tmp_path, tiny_model, capsys):
    assert main(["--base", tiny_model, "--aligned", tiny_model, "--run-dir", str(tmp_path),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "test.jsonl" in capsys.readouterr().err


def test_analyze_logs_summary_scalars(run_dir, tiny_model):
    from align.analyze import analyze

    class Run:
        def log(self, d):
            self.logged = d

    run = Run()
    analyze(tiny_model, str(run_dir / "sft"), PROMPTS[:2], max_new_tokens=3, wandb_run=run)
    assert run.logged["shift/j0/after/mean_kl"] > 0 and "shift/j2/at/shifted" in run.logged
    assert (sum(run.logged[f"shift/j1/after/{c}"] for c in ("unshifted", "marginal", "shifted"))
            == pytest.approx(1))
