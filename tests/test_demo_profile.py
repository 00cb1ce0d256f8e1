"""bench/demo_profile.py: py-spy's samples summed by stage (the profile behind the demo's time budget)."""
from bench.demo_profile import summarize

HEAD = ("process 1:\"cli.py run\";generate (core/decoding.py:129);GenerationMixin._sample (utils.py:3235);"
        "Gemma3ForCausalLM.forward (modeling_gemma3.py:631);Module._call_impl (module.py:1789);"
        "Linear.forward (linear.py:134)")
BODY = ("process 1:\"cli.py run\";generate (core/decoding.py:129);GenerationMixin._sample (utils.py:3235);"
        "Gemma3ForCausalLM.forward (modeling_gemma3.py:620);Gemma3TextModel.forward (modeling_gemma3.py:553);"
        "Gemma3MLP.forward (modeling_gemma3.py:131);Linear.forward (linear.py:134)")
FUSED = ("process 2:\"train/run.py\";<module> (train/run.py:102);compute_loss (trl/sft_trainer.py:1611);"
         "ChunkedLogProbFunction.forward (trl/kernels/chunked_logprob.py:360)")


def test_samples_are_summed_by_stage_the_head_apart_from_the_body(tmp_path):
    profile = tmp_path / "profile.txt"
    profile.write_text(f"{HEAD} 30\n{BODY} 10\n{FUSED} 20\n{HEAD} 10\n")
    table = summarize(profile)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    # 10 samples a second: 40 head samples are 4 s, 57.1% of the 70
    assert rows["eval: decoding, LM head"] == "| eval: decoding, LM head | 4 | 57.1% |"
    assert rows["eval: decoding, rest"] == "| eval: decoding, rest | 1 | 14.3% |"
    assert rows["train: LM head forward (TRL fused)"].endswith("| 2 | 28.6% |")
    assert "| Linear.forward (linear.py) | 5 | 71.4% |" in table
