"""The same k means the same amount of prior in every language (fairness rule 8): k counts pieces that carry
text, prior ids come from the joint tokenization of prompt and completion, model priors are charged the steps
they took, a prior counts inside max_new_tokens, and a model prior's name agrees with its arm."""
import pytest
import torch

from align import priors
from core import pieces
from core.ledger import Cost
from core.models import load_model, load_tokenizer
from core.prompts import translation_prompt
from core.decoding import generate

ZH = translation_prompt("This is a test.", "en", "zh")
JA = translation_prompt("In 1984, he was born.", "en", "ja")


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(tiny_model)


def _pud(data_dir, lang: str, n: int) -> list[str]:
    path = next((data_dir / "ud").glob(f"UD_{lang}-PUD/*.conllu"))
    texts = [line[len("# text = "):].strip() for line in path.read_text(encoding="utf-8").splitlines()
             if line.startswith("# text = ")]
    return texts[:n]


def _bare_space_first(tok, text: str) -> bool:
    first = tok(" " + text, add_special_tokens=False).input_ids[0]
    return tok.decode([first]).strip() == ""


# --- counting pieces that carry text (Gemma-3's real tokenizer) ---------------------------------------------

def test_k1_is_a_word_not_a_bare_space_in_chinese_japanese_and_numbers(gemma):
    # the case at hand
    assert _bare_space_first(gemma, "这是一个测试。") and _bare_space_first(gemma, "1984年に")
    assert gemma.decode(priors.text_prior(gemma, "这是一个测试。", 1, ZH)) == " 这是一个"
    # each digit is a piece
    assert gemma.decode(priors.text_prior(gemma, "1984年に生まれた。", 1, JA)) == " 1"
    assert gemma.decode(priors.text_prior(gemma, "1984年に生まれた。", 4, JA)) == " 1984"
    assert gemma.decode(priors.text_prior(gemma, "Und Gott sprach", 2, "German:")) == " Und Gott"


def test_byte_pieces_of_one_character_count_once(gemma):
    ids = gemma(" 𠀀𪚥", add_special_tokens=False).input_ids   # '▁' and 4 byte pieces per character
    assert len(ids) == 9
    assert pieces.take_text_pieces(gemma, ids, 1) == ids[:5] and gemma.decode(ids[:5]) == " 𠀀"
    assert pieces.take_text_pieces(gemma, ids, 2) == ids and pieces.text_piece_ends(gemma, ids) == [5, 9]
    assert pieces.take_text_pieces(gemma, ids, 3) == ids and pieces.take_text_pieces(gemma, ids, 0) == []


def test_oracle_k1_on_pud_carries_text_and_reports_its_characters(gemma, data_dir):
    for lang, code in (("Chinese", "zh"), ("Japanese", "ja")):
        refs = _pud(data_dir, lang, 30)
        prompts = [translation_prompt("...", "en", code)] * len(refs)
        assert sum(_bare_space_first(gemma, r) for r in refs) >= 3   # a third of them, per the issue
        p = priors.oracle(gemma, refs, 1, prompts=prompts)
        assert all(gemma.decode(i).strip() for i in p.ids)
        assert all(r.startswith(gemma.decode(i).strip()) for r, i in zip(refs, p.ids))
        assert p.chars == [len(gemma.decode(i).strip()) for i in p.ids] and p.chars_mean >= 1


def test_frequent_prior_of_a_chinese_budget_is_not_a_space(gemma, data_dir):
    targets = _pud(data_dir, "Chinese", 60)
    p = priors.frequent(gemma, ["r"], 1, train_targets=targets, train_prompts=[ZH] * len(targets))
    assert gemma.decode(p.ids[0]).strip() and p.chars[0] >= 1


def test_a_prompt_that_does_not_end_where_the_completion_starts_falls_back_and_says_so(gemma):
    # "German: " + " Und" tokenizes as ['German', ':', '▁▁', 'Und']: the prompt's ids are not a prefix
    p = priors.oracle(gemma, ["Und Gott", "Und Gott"], 1, prompts=["German: ", "German:"])
    assert p.ids[0] == p.ids[1] == gemma(" Und", add_special_tokens=False).input_ids
    assert "1/2 items tokenized apart from their prompt" in p.note


def test_completion_ids_are_those_after_the_prompt_in_the_joint_tokenization(gemma):
    (ids,), fallbacks = priors.completion_ids(gemma, [ZH], [" 这是一个测试。"])
    joint, prompt = gemma(ZH + " 这是一个测试。").input_ids, gemma(ZH).input_ids
    assert fallbacks == 0 and joint[:len(prompt)] == prompt and ids == joint[len(prompt):]


# --- model priors: stop at k text pieces, charge the steps taken --------------------------------------------

class StepScripted:
    """A stand-in model that answers each prompt with a set text and then EOS, one token per step, calling the
    stopping criteria after every step as transformers' generate does."""
    device = torch.device("cpu")

    def __init__(self, tok, answers: dict[str, str]):
        self.answers = {tuple(tok(p).input_ids): tok(a, add_special_tokens=False).input_ids
                        + [tok.eos_token_id] for p, a in answers.items()}

    def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, eos_token_id,
                 stopping_criteria=None, **_):
        script = [self.answers[tuple(i for i, m in zip(ids, mask) if m)]
                  for ids, mask in zip(input_ids.tolist(), attention_mask.tolist())]
        done = torch.zeros(len(script), dtype=torch.bool)
        for t in range(max_new_tokens):
            step = torch.tensor([[pad_token_id if d else s[t]] for s, d in zip(script, done.tolist())])
            input_ids = torch.cat([input_ids, step], dim=1)
            done |= torch.isin(step[:, 0], torch.tensor(eos_token_id))
            if stopping_criteria is not None:
                done |= stopping_criteria(input_ids, None)
            if done.all():
                break
        return input_ids


def test_same_vocabulary_model_prior_stops_at_k_text_pieces_and_is_charged_its_steps(tok):
    answers = {"P1": " 神说 1984", "P2": " Amen"}
    model = StepScripted(tok, answers)
    p = priors.from_model(tok, ["r", "r"], 1, prompts=list(answers), model_loader=lambda: (model, tok),
                          weights={}, train_cost=Cost(), batch_size=2, train_targets=[])
    # a space piece and byte pieces: one character
    assert tok.decode(p.ids[0]) == " 神" and len(p.ids[0]) > 1
    assert tok.decode(p.ids[1]) == " A" and p.chars == [1, 1]   # 'ĠA', 'men' in the tiny vocabulary
    assert p.cost.extra_decode_steps_per_item == (len(p.ids[0]) + len(p.ids[1])) / 2
    p = priors.from_model(tok, ["r", "r"], 3, prompts=list(answers), model_loader=lambda: (model, tok),
                          weights={}, train_cost=Cost(), batch_size=2, train_targets=[])
    assert tok.decode(p.ids[0]) == " 神说 1" and tok.decode(p.ids[1]) == " Amen"
    # "Amen" is fewer than 3 pieces: its EOS was decoded too
    assert p.cost.extra_decode_steps_per_item == (len(p.ids[0]) + len(p.ids[1]) + 1) / 2


# --- a prior counts inside max_new_tokens -------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tiny_model):
    torch.manual_seed(0)
    return load_model(tiny_model, "float32")


def test_prior_and_continuation_never_exceed_max_new_tokens(tok, model):
    prompts = [f"Translate this from English into German:\nEnglish: {s}\nGerman:"
               for s in ["In the beginning", "And God said", "Amen", "Jesus wept."]]
    prs = [[], priors.text_prior(tok, "Und Gott sprach", 3), priors.text_prior(tok, "Amen", 1),
           tok(" Da sprach Gott zu Mose und Aaron", add_special_tokens=False).input_ids]
    assert len(prs[3]) > 6
    gens = generate(model, tok, prompts, prs, max_new_tokens=6, batch_size=4, stop_at_newline=False)
    assert all(len(g.prior_ids) + len(g.new_ids) <= 6 for g in gens)
    assert len(gens[1].new_ids) == 6 - len(prs[1])
    assert gens[3].prior_ids == prs[3][:6] and gens[3].new_ids == []   # a longer prior is cut
    # k = 0 is the base model as before; each row is what it would be alone
    alone = [generate(model, tok, [p], [q], max_new_tokens=6, batch_size=1, stop_at_newline=False)[0]
             for p, q in zip(prompts, prs)]
    assert [g.new_ids for g in gens] == [a.new_ids for a in alone]
    assert gens[0].new_ids == generate(model, tok, prompts[:1], max_new_tokens=6, batch_size=1,
                                       stop_at_newline=False)[0].new_ids


# --- a model prior's name agrees with its arm ---------------------------------------------------------------

def test_a_prior_named_sft_must_come_from_an_sft_arm():
    from core.config import load_config
    from core.errors import UserError
    from tests.test_config import SMOKE

    with pytest.raises(UserError, match="arms.3.from_arm.*'lora' is a lora arm"):
        load_config(SMOKE, ["arms.3.from_arm=lora"])
    with pytest.raises(UserError, match="from_arm is only used by prior: sft or lora"):
        load_config(SMOKE, ["arms.4.from_arm=sft"])
    lora = load_config(SMOKE, ["arms.3.prior=lora", "arms.3.from_arm=lora", "arms.3.name=p"])
    assert lora.arm("p").from_arm == "lora"
