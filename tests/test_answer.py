"""One rule reads every model's answer (the first line, or a Markdown fence's content, after an optional `SQL:`), and
generation stops where that rule says the answer is complete, never at a fence line."""

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from t2s.decoding.answer import answer_complete, answer_sql, newline_token_ids
from t2s.decoding.continuous import ContinuousDecoder
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.prefix_cache import PrefixStore
from t2s.decoding.settings import GenerationSettings, generate_kwargs, prepare_tokenizer
from t2s.training.rewards import completion_text

from .tiny_model import save_tiny_model

FENCED = "```sql\nSELECT name\nFROM singer -- all of them\nWHERE age > 3;\n```\nThis query lists the singers.\n"


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("SELECT 1\nSELECT 2", "SELECT 1"),  # a trained model's answer: the first line, as before
        ("  SELECT 1  ", "SELECT 1"),
        ("SELECT 1", "SELECT 1"),
        (FENCED, "SELECT name FROM singer WHERE age > 3"),
        ("```\nSELECT 1\n```", "SELECT 1"),
        ("```SQL\nSELECT 'a\nb'\n", "SELECT 'a\nb'"),  # no closing fence: to the end; a string keeps its newline
        ("\n\n```sql\nSELECT 1\n```", "SELECT 1"),
        ("SQL: SELECT 1\nmore", "SELECT 1"),
        ("sql:\n\nSELECT 1\nmore", "SELECT 1"),
        ("SQL:\n```sql\nSELECT 1\n```", "SELECT 1"),
        ("```sql SELECT 1```", "SELECT 1"),
        ("```sql\n```", ""),
        ("", ""),
        ("\n\n", ""),
        ("CREATE TABLE singer (", "CREATE TABLE singer ("),  # not SQL we like, but what the model wrote
    ],
)
def test_answer_sql(text, sql):
    assert answer_sql(text) == sql
    assert completion_text(text) == sql  # the GRPO reward reads completions by the same rule
    assert completion_text([{"role": "assistant", "content": text}]) == sql


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("SELECT 1\n", True),
        ("SELECT 1\nFROM", True),  # a token that holds a newline and more: the first line is done
        ("\n", False),
        ("\n\n", False),
        ("SQL:\n", False),
        ("```sql\n", False),  # the fence line: never the end
        ("```sql\nSELECT 1\n", False),
        ("```sql\nSELECT 1\n```", True),  # a token "\n```" closes the fence
        ("```sql\nSELECT 1\n```\n", True),
    ],
)
def test_answer_complete(text, complete):
    assert answer_complete(text) == complete
    if complete:  # once complete, nothing the model adds changes the answer
        assert answer_sql(text) == answer_sql(text + "SELECT 2\n```\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_answer") / "model", seed=2)
    model, tokenizer = load_model_and_tokenizer(str(path))
    return model, prepare_tokenizer(tokenizer)


class _Script(LogitsProcessor):
    """Forces the tokens of `script`, one per step, whatever the model prefers."""

    def __init__(self, script, prompt_length):
        self.script, self.prompt_length = script, prompt_length

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[min(step, len(self.script) - 1)]] = 0
        return forced


@pytest.mark.parametrize(
    ("script", "answer"),
    [
        (FENCED + "SELECT 2\n", "SELECT name FROM singer WHERE age > 3"),
        ("SELECT 1\n```\nSELECT 2\n", "SELECT 1"),
        ("\nSQL: SELECT 1\nSELECT 2\n", "SELECT 1"),
    ],
    ids=["fenced", "plain", "label"],
)
def test_generation_stops_where_the_answer_ends(tiny, script, answer):
    """In generate() batches and in continuous batching alike, the text stops right after the answer is complete."""
    model, tokenizer = tiny
    ids = tokenizer(script, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == script
    newlines = newline_token_ids(tokenizer)
    end = next(
        n for n in range(1, len(ids) + 1) if ids[n - 1] in newlines and answer_complete(tokenizer.decode(ids[:n]))
    )
    expected = tokenizer.decode(ids[:end])
    assert "SELECT 2" not in expected and answer_sql(expected) == answer

    batch = tokenizer(["Question: singers?\n### SQL:\n"], return_tensors="pt")
    length = batch["input_ids"].shape[1]
    settings = GenerationSettings(max_new_tokens=len(ids) + 5)
    out = model.generate(
        **batch,
        **generate_kwargs(tokenizer, settings, length),
        logits_processor=LogitsProcessorList([_Script(ids, length)]),
    )
    assert tokenizer.decode(out[0, length:], skip_special_tokens=True) == expected

    steps = iter(ids)
    decoder = ContinuousDecoder(
        model, tokenizer, 1, settings.max_new_tokens, PrefixStore(model), {tokenizer.eos_token_id},
        lambda logits: torch.tensor([next(steps)]), newline_token_ids(tokenizer),
    )  # fmt: skip
    generated = decoder.run([(0, batch["input_ids"][0].tolist(), None)])
    assert tokenizer.decode(generated[0]) == expected
