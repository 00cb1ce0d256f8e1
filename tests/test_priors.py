"""PreTTY priors and prior-token decoding, on the tiny in-process model."""
import string

import pytest
import torch

from align import priors
from core import pieces
from core.ledger import Cost
from core.models import load_model, load_tokenizer
from core.decoding import generate


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    torch.manual_seed(0)
    return load_model(tiny_model, "float32")


def test_text_prior_is_the_start_of_the_completion(tok):
    ids = priors.text_prior(tok, "  Und Gott sprach", 2)
    assert ids == tok(" Und Gott sprach", add_special_tokens=False).input_ids[:2]
    assert tok.decode(ids) == " Und Gott"  # leading-space pieces, as after "German:"


def test_empty_and_zero_priors(tok):
    assert priors.text_prior(tok, "   ", 3) == []
    assert priors.text_prior(tok, "Das", 0) == []


def test_prior_longer_than_the_answer_is_the_whole_answer(tok):
    whole = tok(" Ja", add_special_tokens=False).input_ids
    assert priors.text_prior(tok, "Ja", 50) == whole


def test_oracle_uses_each_reference(tok):
    p = priors.oracle(tok, ["Da sprach Gott", "Und Gott"], 1)
    assert [tok.decode(i).strip() for i in p.ids] == ["Da", "Und"]
    assert p.cost.train_examples == 0 and "upper bound" in p.note


def test_frequent_takes_the_most_common_first_token(tok):
    p = priors.frequent(tok, ["a", "b", "c"], 1, train_targets=["Und Gott", "Und er", "Da sprach"])
    assert all(tok.decode(i).strip() == "Und" for i in p.ids)
    assert p.cost.train_examples == 3


def test_output_starts_with_the_prior(tok, model):
    prompts = ["Translate this from English into German:\nEnglish: And God said\nGerman:"]
    prior = priors.text_prior(tok, "Und Gott", 2)
    (g,) = generate(model, tok, prompts, [prior], max_new_tokens=5, batch_size=1)
    assert g.prior_ids == prior and g.text.startswith("Und Gott")


def test_batched_decoding_with_mixed_prior_lengths_equals_one_by_one(tok, model):
    prompts = [f"Translate this from English into German:\nEnglish: {s}\nGerman:"
               for s in ["In the beginning", "And the earth was without form, and void", "Amen",
                         "Jesus wept."]]
    prs = [priors.text_prior(tok, t, k)
           for t, k in [("Im Anfang", 2), ("Und die Erde", 0), ("Amen", 1), ("Jesus", 3)]]
    batched = generate(model, tok, prompts, prs, max_new_tokens=6, batch_size=4, stop_at_newline=False)
    single = [generate(model, tok, [p], [q], max_new_tokens=6, batch_size=1, stop_at_newline=False)[0]
              for p, q in zip(prompts, prs)]
    assert [b.new_ids for b in batched] == [s.new_ids for s in single]


# --- dictionary priors --------------------------------------------------------------------------------------

def test_dictionary_prior_induced_from_the_budget(tok):
    from tests.test_lexicon import PAIRS

    p = priors.dictionary(tok, ["r1", "r2", "r3"], 2, sources=["And God said", "And the earth", "Amen"],
                          src_lang="en", train_pairs=PAIRS)
    # no word: no prior
    assert p.ids == [priors.text_prior(tok, "Gott", 2), priors.text_prior(tok, "Erde", 2), []]
    assert tok.decode(p.ids[0]).startswith(" G")   # the leading-space piece, as after "German:"
    assert p.cost == Cost(train_examples=len(PAIRS)) and "2/3 items" in p.note


def test_dictionary_prior_from_a_file_costs_no_examples(tok, tmp_path):
    path = tmp_path / "en-de.tsv"
    path.write_text("god\tGott\nearth\tErde\n", encoding="utf-8")
    p = priors.dictionary(tok, ["r"], 50, sources=["God and the earth"], src_lang="en",
                          train_pairs=[("a", "b")], dictionary_path=str(path), n_words=2)
    assert p.ids == [priors.text_prior(tok, "Gott Erde", 50)]   # k beyond the prior's length: all of it
    assert p.cost == Cost() and "2 entries" in p.note


# --- priors from another model (SFT, LoRA, any task model) --------------------------------------------------

CHARS = string.ascii_letters + string.digits + string.punctuation + " \näöüßÄÖÜ神说要有光"


@pytest.fixture(scope="module")
def char_model_dir(tmp_path_factory) -> str:
    """A task model whose tokenizer is nothing like the base's: one token per character, a random 1-layer
    Llama."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *CHARS])}
    chars = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    chars.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    chars.decoder = decoders.Fuse()
    char_tok = PreTrainedTokenizerFast(tokenizer_object=chars, pad_token="<pad>", bos_token="<bos>",
                                       eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)
    out = tmp_path_factory.mktemp("char-model")
    LlamaForCausalLM(config).save_pretrained(out)
    char_tok.save_pretrained(out)
    return str(out)


class Scripted:
    """A stand-in task model that answers each prompt with a set text, then EOS."""
    device = torch.device("cpu")

    def __init__(self, tok, answers: dict[str, str]):
        self.pad = tok.pad_token_id
        self.answers = {tuple(tok(p).input_ids): (tok(a, add_special_tokens=False).input_ids
                                                  + [tok.eos_token_id])
                        for p, a in answers.items()}

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            new = self.answers[tuple(i for i, m in zip(ids, mask) if m)][:max_new_tokens]
            rows.append(ids + new + [self.pad] * (max_new_tokens - len(new)))
        return torch.tensor(rows)


def _from(tok, task, task_tok, prompts, k, **kwargs):
    return priors.from_model(tok, ["ref"] * len(prompts), k, prompts=prompts,
                             model_loader=lambda: (task, task_tok), weights={"path": "task"},
                             train_cost=kwargs.pop("train_cost", Cost()), batch_size=2,
                             train_targets=["Und Gott sprach: Es werde Licht.", "Im Anfang war das Wort."],
                             **kwargs)


def test_task_model_text_is_retokenized_for_the_base(tok, char_model_dir):
    char_tok = load_tokenizer(char_model_dir)
    answers = {"P1": " Und Gott sprach zu Mose und Aaron", "P2": " 神说要有光", "P3": " Amen\nEnglish: Amen",
               "P4": "\nEnglish: ...", "P5": ""}
    p = _from(tok, Scripted(char_tok, answers), char_tok, list(answers), 4, train_cost=Cost(train_examples=7))
    assert p.ids[0] == priors.text_prior(tok, answers["P1"], 4, "P1")
    assert tok.decode(p.ids[0]) == " Und Gott sprach zu"
    # no spaces to cut at; k counts whole characters, however many byte pieces each takes
    assert p.ids[1] == priors.text_prior(tok, answers["P2"], 4, "P2") and tok.decode(p.ids[1]) == " 神说要有"
    # the answer is shorter than k
    assert p.ids[2] == priors.text_prior(tok, "Amen", 4, "P3") and len(p.ids[2]) < 4
    assert p.ids[3] == [] and p.ids[4] == []   # no answer, no prior
    assert (p.cost.train_examples == 7 and p.cost.extra_model_calls_per_item == 1
            and p.weights == {"path": "task"})


def test_complete_text_keeps_whole_words_and_characters(tok):
    # a partial word would mis-tokenize
    assert priors.complete_text(" Und Gott spr", cut_off=True) == " Und Gott"
    # it ended: the word is whole
    assert priors.complete_text(" Und Gott spr", cut_off=False) == " Und Gott spr"
    assert priors.complete_text(" Und Gott ", cut_off=True) == " Und Gott "
    assert priors.complete_text(" Gottes", cut_off=True) == " Gottes"   # one word is kept rather than nothing
    assert priors.complete_text(" Amen\nEnglish: So", cut_off=True) == " Amen"
    partial = tok.decode(tok(" Gott 神", add_special_tokens=False).input_ids[:3])   # byte-level: half of 神
    assert partial.endswith("\ufffd") and priors.complete_text(partial, cut_off=True) == " Gott "


def test_task_model_checkpoint_with_another_tokenizer(tok, char_model_dir):
    task, char_tok = load_model(char_model_dir, "float32"), load_tokenizer(char_model_dir)
    prompts = [f"Translate this from English into German:\nEnglish: {s}\nGerman:"
               for s in ["In the beginning", "And God said", "Amen", "Jesus wept."]]
    k = 3
    p = _from(tok, task, char_tok, prompts, k)
    written = [g.text for g in generate(task, char_tok, prompts, max_new_tokens=80, batch_size=1,
                                        stop_at_newline=False)]
    vocab = set(tok.get_vocab().values())
    for ids, text, prompt in zip(p.ids, written, prompts):
        assert len(pieces.text_piece_ends(tok, ids)) <= k and set(ids) <= vocab
        # the start of the base tokenization of the task model's answer
        assert ids == priors.text_prior(tok, text.split("\n")[0], 1000, prompt)[:len(ids)]
    assert sum(map(bool, p.ids)) >= 2
    assert p.cost.extra_decode_steps_per_item > k   # characters: several task tokens per base token


def test_same_tokenizer_priors_are_the_model_tokens(tok, model):
    prompts = ["Translate this from English into German:\nEnglish: And God said\nGerman:"]
    p = _from(tok, model, tok, prompts, 3)
    (g,) = generate(model, tok, prompts, max_new_tokens=30, batch_size=1, stop_at_newline=False)
    # the model writes on: its prior stops at 3 pieces
    assert len(pieces.text_piece_ends(tok, g.new_ids)) > 3
    assert p.ids == [pieces.take_text_pieces(tok, g.new_ids, 3)]
    assert p.cost.extra_decode_steps_per_item == len(p.ids[0])   # the steps it took, no more
