"""Training FLOPs count what was computed: hand-computed examples of core.ledger.training_flops, the counters
read from batches, the peak by dtype, and the counters a real (tiny, in-process) SFT run records against what
TRL's fused LM head projected."""
import json
import types

import pytest
import torch

from core.ledger import FLOPS_CONVENTION, Cost, batch_counts, device_peak_flops, training_flops

# two sequences, right-padded: A = 3 prompt + 2 completion tokens, B = 1 prompt + 2 completion + 2 padding
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
LABELS = torch.tensor([[-100, -100, -100, 13, 14], [-100, 21, 22, -100, -100]])


def test_full_fine_tuning_by_hand():
    # N = 100 non-embedding weights, head V·d = 50, T = 10 tokens, P = 4 positions projected, Σs² = 30,
    # L = 2 layers, d = 8
    weights, head, attention = 6 * 100 * 10, 6 * 50 * 4, 12 * 2 * 8 * 30
    assert (weights, head, attention) == (6000, 1200, 5760)
    assert training_flops(100, 50, tokens=10, head_positions=4, sum_seq_sq=30, layers=2, width=8) == 12960


def test_lora_by_hand():
    # frozen weights: forward + activation gradient (4 per weight and token); 5 adapter weights trained (6)
    weights, adapters, head, attention = 4 * 100 * 10, 6 * 5 * 10, 4 * 50 * 4, 5760
    assert weights + adapters + head + attention == 10860
    assert training_flops(100, 50, 10, 4, 30, 2, 8, lora_params=5) == 10860


def test_sft_is_not_charged_for_the_prompt_positions_cpt_projects():
    """The issue: at the same tokens, the head costs per projected position, not per token."""
    cpt = training_flops(100, 50, 10, head_positions=10, sum_seq_sq=30, layers=2, width=8)
    sft = training_flops(100, 50, 10, head_positions=4, sum_seq_sq=30, layers=2, width=8)
    assert cpt - sft == 6 * 50 * 6


def _llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    # per layer: q 4·4, k 4·2, v 4·2, o 4·4, mlp 3·4·8, two norms 4 -> 152; final norm 4; embedding 10·4
    config = LlamaConfig(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied)
    return LlamaForCausalLM(config)


def test_weight_split_leaves_embedding_and_untied_head_out_of_the_body():
    from train.trainer import weight_split

    tied, untied = _llama(True), _llama(False)
    assert sum(p.numel() for p in tied.parameters()) == 196
    assert sum(p.numel() for p in untied.parameters()) == 236
    assert weight_split(tied) == weight_split(untied) == (156, 40)
    # untied head, full fine-tuning, by hand: T = 8 tokens, P = 4, Σs² = 34, L = 1, d = 4
    body, head = weight_split(untied)
    assert training_flops(body, head, 8, 4, 34, 1, 4) == 6 * 156 * 8 + 6 * 40 * 4 + 12 * 1 * 4 * 34 == 10080


def test_gemma_head_is_most_of_its_parameters():
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.models import resolve
    from train.trainer import weight_split

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve("gemma-3-270m")))
    body, head = weight_split(model)
    assert head == 262144 * 640 and 0.6 < head / (body + head) < 0.66


def test_batch_counts_from_a_padded_batch(monkeypatch):
    import trl.trainer.utils as trl_utils

    from train import pretrain, sft

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)   # undone after the test

    assert batch_counts(MASK.sum(dim=1), pretrain.projected_positions(MASK)) == \
        {"tokens": 8, "lm_head_positions": 8, "sum_seq_sq": 5 * 5 + 3 * 3}
    sft._score_completion_positions_only()   # TRL's compact head on CPU: one position per completion label
    inputs = {"attention_mask": MASK, "labels": LABELS}
    assert batch_counts(sft.sequence_lengths(inputs),
                        sft.projected_positions(inputs))["lm_head_positions"] == 2 + 2


def test_a_padding_free_batch_counts_as_the_padded_one(monkeypatch):
    """TRL's padding-free collator concatenates the two examples of MASK into one row: the same tokens,
    the same completion positions, and attention within each example (5² + 3², not 8²)."""
    import trl.trainer.utils as trl_utils

    from train import sft

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)
    sft._score_completion_positions_only()
    flat = {"labels": torch.tensor([[-100, -100, -100, 13, 14, -100, 21, 22]]),
            "position_ids": torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]]),
            "cu_seq_lens_q": torch.tensor([0, 5, 8], dtype=torch.int32)}
    padded = {"attention_mask": MASK, "labels": LABELS}
    assert batch_counts(sft.sequence_lengths(flat), sft.projected_positions(flat)) == \
        batch_counts(sft.sequence_lengths(padded), sft.projected_positions(padded)) == \
        {"tokens": 8, "lm_head_positions": 4, "sum_seq_sq": 5 * 5 + 3 * 3}


def test_sft_counts_real_positions_when_trl_projects_every_one(monkeypatch):
    import trl.trainer.utils as trl_utils

    from train import sft

    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)
    # all but the last column, padding left out: A's first 4, B's 3 real ones
    assert int(sft.projected_positions({"attention_mask": MASK, "labels": LABELS}).sum()) == 4 + 3


def test_a_causal_lm_projects_every_position_of_the_padded_batch(tiny_model):
    """Why pretraining's count needs a convention: transformers projects padding too (not counted)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    rows = []
    model.lm_head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[:-1].numel()))
    with torch.no_grad():
        model(input_ids=torch.ones_like(MASK), attention_mask=MASK)
    assert rows == [MASK.numel()]


def test_cost_then_adds_the_counters_and_keeps_the_peak():
    bf16 = dict(train_stages=1, mfu_peak_tflops=989.0, mfu_dtype_bits=16)
    a = Cost(train_tokens=10, train_flops=100.0, lm_head_positions=4, sum_seq_sq=30, train_mfu=0.5, **bf16)
    b = Cost(train_tokens=5, train_flops=50.0, lm_head_positions=2, sum_seq_sq=9, train_mfu=0.25, **bf16)
    both = a.then(b)
    assert (both.lm_head_positions, both.sum_seq_sq) == (6, 39)
    assert (both.mfu_peak_tflops, both.mfu_dtype_bits) == (989, 16)
    assert both.train_mfu == pytest.approx(150 / (100 / 0.5 + 50 / 0.25))
    fp32 = Cost(train_mfu=0.1, train_flops=1.0, mfu_peak_tflops=67.0, mfu_dtype_bits=32)
    assert (a.then(fp32).mfu_peak_tflops, a.then(fp32).mfu_dtype_bits) == (None, None)   # mixed: no one peak
    assert Cost.from_dict(json.loads(json.dumps(both.as_dict()))) == both


def test_every_cost_is_a_number_as_records_require():
    from core.records import ResultRecord

    cost = Cost(train_mfu=0.3, mfu_peak_tflops=67.0, mfu_dtype_bits=32).as_dict()
    assert ResultRecord.model_validate({"arm": "sft", "cost": cost}).cost == cost


@pytest.mark.parametrize("gpu, dtype, tflops", [
    ("NVIDIA H200", torch.bfloat16, 989.0), ("NVIDIA H200", torch.float32, 67.0),
    ("NVIDIA GH200 480GB", torch.float32, 67.0), ("NVIDIA A100-SXM4-80GB", torch.float16, 312.0),
    ("NVIDIA A100-SXM4-80GB", torch.float32, 19.5), ("NVIDIA L40S", torch.float32, 91.6),
    ("NVIDIA L40", torch.float32, 90.5), ("NVIDIA A10G", torch.float32, 31.2),
    ("Tesla T4", torch.float32, 8.1),
])
def test_peak_matches_the_training_dtype(monkeypatch, gpu, dtype, tflops):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: gpu)
    assert device_peak_flops(dtype) == pytest.approx(tflops * 1e12)
    assert device_peak_flops(dtype, override_tflops=100.0) == 100e12


def test_fp32_peak_is_unknown_with_tf32_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    before, torch.backends.cuda.matmul.allow_tf32 = torch.backends.cuda.matmul.allow_tf32, True
    try:
        assert device_peak_flops(torch.float32) is None and device_peak_flops(torch.bfloat16) == 989e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_convention_names_every_term():
    for term in ("6·N·T", "6·V·d·P", "12·L·d·Σs²", "fp32", "completion positions"):
        assert term in FLOPS_CONVENTION


def _fake_cfg():
    return types.SimpleNamespace(model=types.SimpleNamespace(dtype="float32"),
                                 report=types.SimpleNamespace(peak_tflops=None))


def test_counters_survive_a_resume(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    from train import trainer as common

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ledger = common.Ledger(model, _fake_cfg())
    ledger.on_train_begin(None, types.SimpleNamespace(num_input_tokens_seen=0), None)
    ledger.count(MASK.sum(dim=1), MASK.bool())
    (tmp_path / "trainer" / "checkpoint-3").mkdir(parents=True)
    ledger.on_save(types.SimpleNamespace(output_dir=str(tmp_path / "trainer"), world_size=1),
                   types.SimpleNamespace(global_step=3, num_input_tokens_seen=8), None)
    resumed = common.Ledger(model, _fake_cfg())
    resumed.restore(common.last_complete_checkpoint(tmp_path))
    assert resumed.counts == ledger.counts == {"tokens": 8, "lm_head_positions": 8, "sum_seq_sq": 34}


@pytest.mark.parametrize("padding_free", [False, True])
def test_an_sft_run_records_what_trl_projected(tmp_path, tiny_model, monkeypatch, padding_free):
    """In process, no DeepSpeed: the ledger's counters equal what the fused head was given and what the
    prepared data says (tokens, completion positions, Σ of squared lengths), in padded batches and in
    padding-free ones — there with the pad token being EOS (Llama-3, Qwen2.5), which TRL appends to every
    example: still counted as a token."""
    import trl.trainer.utils as trl_utils
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig

    from core.models import load_tokenizer
    from train import sft
    from train import trainer as common

    projected = []
    fused = trl_utils._ChunkedLogProbFunction

    class Recording:
        @staticmethod
        def apply(hidden, *args):
            projected.append(hidden.shape[0])
            return fused.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Recording)
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)   # undo the patch below afterwards
    sft._score_completion_positions_only()
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ledger = common.Ledger(model, _fake_cfg())
    rows = [{"prompt": "Translate this from English into German:\n" + "In the beginning " * (1 + i % 3),
             "completion": " Am Anfang" * (1 + i % 2)} for i in range(6)]
    tok = load_tokenizer(tiny_model)
    if padding_free:
        tok.pad_token = tok.eos_token
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=1,
                     use_cpu=True, completion_only_loss=True, packing=False, report_to=[], save_strategy="no",
                     include_num_input_tokens_seen=sft.tokens_seen(padding_free), disable_tqdm=True,
                     max_length=None if padding_free else 64, padding_free=padding_free)
    trainer = sft._trainer_class(ledger, padding_free)(model=model, args=args,
                                                       train_dataset=Dataset.from_list(rows),
                                                       processing_class=tok)
    ledger.attach(trainer)
    trainer.train()

    data = trainer.train_dataset
    lengths = [len(ids) for ids in data["input_ids"]]
    completion = sum(sum(label != -100 for label in labels[1:]) for labels in data["labels"])
    assert ledger.counts == {"tokens": sum(lengths), "lm_head_positions": completion,
                             "sum_seq_sq": sum(s * s for s in lengths)}
    assert ledger.counts["tokens"] == trainer.state.num_input_tokens_seen
    assert sum(projected) == completion < sum(lengths) - len(lengths)
    assert ledger.flops(ledger.counts) == training_flops(
        ledger.body_params, ledger.head_params, sum(lengths), completion, sum(s * s for s in lengths), 2, 64)


# ---------------------------------------------------------------- hardware FLOPs, Liger's head


def test_hardware_flops_add_one_recomputed_forward_by_hand():
    """Activation checkpointing runs each decoder layer's forward again in the backward pass: 2 per body
    weight and token (adapters included) and attention's forward 4·L·d·Σs²; the head is not recomputed."""
    from core.ledger import recomputed_flops

    assert recomputed_flops(100, tokens=10, sum_seq_sq=30, layers=2, width=8) == 2 * 100 * 10 + 4 * 2 * 8 * 30
    assert recomputed_flops(100, 10, 30, 2, 8, lora_params=5) == 2 * 105 * 10 + 1920 == 4020
    # model FLOPs 12960 (test_full_fine_tuning_by_hand) + 3920: a third of 6·N·T and of 12·L·d·Σs²
    assert training_flops(100, 50, 10, 4, 30, 2, 8) + recomputed_flops(100, 10, 30, 2, 8) == 12960 + 3920


def test_convention_says_mfu_is_on_model_flops():
    assert "train_hw_flops" in FLOPS_CONVENTION and "MFU = model FLOPs" in FLOPS_CONVENTION


def test_hardware_flops_of_older_ledgers_are_unknown_and_stages_add():
    old = Cost.from_dict({"train_flops": 10.0, "train_tokens": 3})   # a train.json from before the field
    assert old.train_hw_flops is None and Cost().train_hw_flops == 0.0
    a, b = Cost(train_flops=10.0, train_hw_flops=13.0), Cost(train_flops=5.0, train_hw_flops=5.0)
    assert a.then(b).train_hw_flops == 18.0 and a.then(old).train_hw_flops is None


@pytest.mark.parametrize("checkpointing", [False, True])
def test_an_sft_run_counts_the_recomputed_forward_it_ran(tmp_path, tiny_model, monkeypatch, checkpointing):
    """In process, the real recipe's ledger and cost (train.trainer.run): with activation checkpointing every
    decoder layer runs its forward twice a step (counted), and train_hw_flops is the model FLOPs
    plus one forward of the body; without it they are equal. MFU stays on model FLOPs."""
    import trl.trainer.utils as trl_utils
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig

    from core.ledger import recomputed_flops
    from core.models import load_tokenizer
    from train import sft
    from train import trainer as common

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)
    sft._score_completion_positions_only()
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    # the forward of the first layer's MLP, counted by its class (module hooks are not run again when the
    # backward pass recomputes a checkpointed layer; the forward is)
    calls, mlp = [], model.model.layers[0].mlp
    forward = type(mlp).forward

    def counted(self, *args, **kwargs):
        if self is mlp:
            calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(mlp), "forward", counted)
    ledger = common.Ledger(model, _fake_cfg())
    rows = [{"prompt": "Translate this from English into German:\nIn the beginning",
             "completion": " Am Anfang"} for _ in range(4)]
    args = SFTConfig(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=2, num_train_epochs=1,
                     use_cpu=True, completion_only_loss=True, packing=False, report_to=[], save_strategy="no",
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True, max_length=64,
                     gradient_checkpointing=checkpointing)
    trainer = sft._trainer_class(ledger, False)(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                                processing_class=load_tokenizer(tiny_model))
    ledger.attach(trainer)
    cost = common.run(trainer, ledger, load_tokenizer(tiny_model), tmp_path, examples=len(rows))

    steps = trainer.state.global_step
    assert steps == 2 and len(calls) == steps * (2 if checkpointing else 1)
    counts = {"tokens": cost.train_tokens, "lm_head_positions": cost.lm_head_positions,
              "sum_seq_sq": cost.sum_seq_sq}
    assert cost.train_flops == ledger.flops(counts)
    again = recomputed_flops(ledger.body_params, cost.train_tokens, cost.sum_seq_sq, 2, 64)
    assert cost.train_hw_flops == pytest.approx(cost.train_flops + (again if checkpointing else 0.0))


def test_liger_fused_cross_entropy_projects_every_real_position(monkeypatch):
    """Liger's fused linear cross-entropy (liger_kernel's LigerForCausalLMLoss) projects the hidden state of
    every position of the batch, prompt and -100 labels included: the count is every non-padding position
    (8 here, against TRL's 4 completion positions), in padded and padding-free batches alike. A pure function
    of the batch and the flag: no Liger, no GPU needed."""
    import trl.trainer.utils as trl_utils

    from train import sft

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)
    sft._score_completion_positions_only()
    padded = {"attention_mask": MASK, "labels": LABELS}
    flat = {"labels": torch.tensor([[-100, -100, -100, 13, 14, -100, 21, 22]]),
            "cu_seq_lens_q": torch.tensor([0, 5, 8], dtype=torch.int32)}
    for batch in (padded, flat):
        liger = batch_counts(sft.sequence_lengths(batch), sft.projected_positions(batch, liger_fused_ce=True))
        trl = batch_counts(sft.sequence_lengths(batch), sft.projected_positions(batch))
        assert liger == trl | {"lm_head_positions": 8} and trl["lm_head_positions"] == 4


def test_trl_keeps_its_fused_head_under_use_liger_kernel(tmp_path, tiny_model):
    """What a liger-enabled sft/lora arm computes: TRL's SFTTrainer (1.16) turns Liger's fused cross-entropy
    off when it is built and keeps its own head, so the ledger keeps counting completion positions; the
    transformers Trainer (cpt, mixed) leaves it on (every position, as without Liger). The trainer is built,
    never trained: Liger itself is not needed."""
    import warnings

    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from core.models import load_tokenizer
    from train import sft

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], use_liger_kernel=True,
                     completion_only_loss=True, max_length=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # TRL deprecates use_liger_kernel for Hub kernels
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), args=args,
                             train_dataset=Dataset.from_list([{"prompt": "a", "completion": " b"}]),
                             processing_class=load_tokenizer(tiny_model))
    assert not sft.liger_fused_ce(trainer.args)
    plain_trainer_args = types.SimpleNamespace(use_liger_kernel=True, liger_kernel_config=None)
    assert sft.liger_fused_ce(plain_trainer_args)
    assert not sft.liger_fused_ce(types.SimpleNamespace(use_liger_kernel=False, liger_kernel_config=None))
