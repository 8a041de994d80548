"""Continuous batching gives the SQL of plain batched greedy generation while questions join and leave the batch, and
samples drawn as `generate()` draws them."""

from collections import Counter

import pytest
import torch

from t2s.data import load_text2sql
from t2s.decoding.answer import newline_token_ids
from t2s.decoding.continuous import ContinuousDecoder, token_chooser
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.prefix_cache import PrefixStore, plan_batches
from t2s.decoding.settings import GenerationSettings, prepare_tokenizer

from .spider_fixture import build_spider_layout
from .tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_cb") / "model", seed=5, hidden_size=48)
    model, tokenizer = load_model_and_tokenizer(str(path))
    return model, prepare_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def prompts(fixture_dev, tmp_path_factory):
    """WikiSQL tables with 12, 5 and 5 questions, a Spider layout's databases, and prompts nobody shares a prefix with."""
    spider = load_text2sql(str(build_spider_layout(tmp_path_factory.mktemp("sp") / "spider")), "dev")
    prompts = list(fixture_dev["prompt"]) + list(spider["prompt"]) + ["A prompt without the question slot: SELECT"]
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(1)).tolist()
    return [prompts[i] for i in order]


def _plain_tokens(model, tokenizer, prompts, stop_ids, max_new_tokens, batch_size=4):
    """Reference: transformers' generate() on left-padded batches, stopping at any of `stop_ids`."""
    out = []
    for s in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[s : s + batch_size], return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=sorted(stop_ids),
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        for row in ids[:, batch["input_ids"].shape[1] :].tolist():
            stop = next((j for j, t in enumerate(row) if t in stop_ids), len(row) - 1)
            out.append(row[: stop + 1])
    return out


@pytest.mark.parametrize("prefix_cache", [False, True], ids=["plain prompts", "shared prefixes"])
@pytest.mark.parametrize("slots,capacity", [(3, None), (8, None), (6, 1)], ids=["3 slots", "8 slots", "compacting"])
def test_rows_that_join_and_leave_get_the_tokens_of_plain_generation(tiny, prompts, prefix_cache, slots, capacity):
    """Stop tokens chosen so that rows stop at many different steps: questions join running batches at all offsets."""
    model, tokenizer = tiny
    plain_all = _plain_tokens(model, tokenizer, prompts, set(), 14)
    # stop at the two tokens the model writes most often after its first three (which all rows share)
    early = {t for row in plain_all for t in row[:3]}
    stop_ids = {t for t, _ in Counter(t for row in plain_all for t in row[3:] if t not in early).most_common(2)}
    expected = _plain_tokens(model, tokenizer, prompts, stop_ids, 14)
    lengths = Counter(len(r) for r in expected)
    assert len(lengths) >= 5, lengths  # the test has teeth: rows finish at many different steps

    plan = plan_batches(tokenizer, prompts, slots, prefix_cache)
    assert any(prefix is not None for _, prefix in plan) == prefix_cache
    queue = [(i, tokenizer(text=prompts[i])["input_ids"], prefix) for idx, prefix in plan for i in idx]
    if capacity is not None:  # the longest prompts first: the columns fill up (and are compacted) within the run
        queue.sort(key=lambda item: -len(item[1]))
    decoder = ContinuousDecoder(model, tokenizer, slots, 14, PrefixStore(model), stop_ids)
    generated = decoder.run(queue, capacity=capacity)
    assert [generated[i] for i in range(len(prompts))] == expected
    assert (decoder.compactions > 0) == (capacity is not None)


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_generate_sql_with_continuous_batching_equals_plain_batches(tiny, prompts, prefix_cache):
    model, tokenizer = tiny

    def run(**kwargs):
        return generate_sql(model, tokenizer, prompts, GenerationSettings(max_new_tokens=16, batch_size=5, **kwargs))

    plain = run()
    assert run(continuous_batching=True, prefix_cache=prefix_cache) == plain
    assert len({c[0] for c in plain}) > 5


def test_greedy_answers_and_samples_are_continuous_beams_and_grammars_are_not(tiny, prompts, monkeypatch):
    """Beams and grammars go through generate(); a model without plain key/value layers falls back, said."""
    from transformers import cache_utils

    import t2s.decoding.continuous

    model, tokenizer = tiny
    calls = []
    real = t2s.decoding.continuous.continuous_sql
    monkeypatch.setattr(t2s.decoding.continuous, "continuous_sql", lambda *a: calls.append(1) or real(*a))
    beams = generate_sql(
        model, tokenizer, prompts[:6], GenerationSettings(max_new_tokens=8, num_candidates=2, continuous_batching=True)
    )
    assert not calls and all(len(c) == 2 for c in beams)
    generate_sql(model, tokenizer, prompts[:6], GenerationSettings(max_new_tokens=8, continuous_batching=True))
    assert calls == [1]
    sampled = GenerationSettings(max_new_tokens=8, num_candidates=3, temperature=0.7, continuous_batching=True)
    assert all(len(c) == 3 for c in generate_sql(model, tokenizer, prompts[:6], sampled))
    assert calls == [1, 1]
    plain = generate_sql(model, tokenizer, prompts[:6], GenerationSettings(max_new_tokens=8))
    monkeypatch.setattr(cache_utils, "DynamicLayer", type("SomeOtherLayer", (), {}))
    with pytest.warns(UserWarning, match="no continuous batching"):
        fallback = generate_sql(
            model, tokenizer, prompts[:6], GenerationSettings(max_new_tokens=8, continuous_batching=True)
        )
    assert fallback == plain and calls == [1, 1]


@pytest.mark.parametrize("prefix_cache", [False, True], ids=["plain prompts", "shared prefixes"])
def test_samples_of_a_question_each_get_their_own_slot_and_its_logits(tiny, prompts, prefix_cache):
    """top-k 1 leaves one token to draw: every sample of every question is then the greedy answer, which only holds if
    each of a question's rows decodes that question (same prompt, prefix, positions) in whatever slot it lands."""
    model, tokenizer = tiny
    greedy = generate_sql(model, tokenizer, prompts, GenerationSettings(max_new_tokens=16, batch_size=5))
    settings = GenerationSettings(
        max_new_tokens=16, batch_size=2, temperature=0.7, top_k=1, num_candidates=3, continuous_batching=True,
        prefix_cache=prefix_cache,
    )  # fmt: skip
    assert generate_sql(model, tokenizer, prompts, settings) == [c * 3 for c in greedy]


def test_samples_are_seeded_and_differ_between_candidates(tiny, prompts):
    model, tokenizer = tiny
    settings = GenerationSettings(
        max_new_tokens=12, batch_size=3, temperature=1.5, top_k=0, num_candidates=4, continuous_batching=True
    )
    progress = []

    def draw():
        torch.manual_seed(7)
        return generate_sql(model, tokenizer, prompts[:8], settings, progress.append)

    first = draw()
    assert sum(progress) == 8  # progress counts questions, not rows
    assert draw() == first
    assert all(len(c) == 4 for c in first)
    assert sum(len(set(c)) > 1 for c in first) >= 6  # high temperature, no top-k: a question's samples differ


def test_sampling_draws_from_the_warped_distribution(tiny):
    """Temperature 0.5 then top-k 2 over logits [2, 1, 0, -1]: tokens 0 and 1 only, with softmax([4, 2]) odds."""
    model, _ = tiny
    choose = token_chooser(model, GenerationSettings(temperature=0.5, top_k=2))
    torch.manual_seed(0)
    draws = choose(torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(4000, 1))
    counts = torch.bincount(draws, minlength=4)
    assert counts[2:].sum() == 0
    assert abs(counts[0].item() / 4000 - torch.tensor([4.0, 2.0]).softmax(0)[0].item()) < 0.03
    greedy = token_chooser(model, GenerationSettings())
    assert greedy(torch.tensor([[0.0, 3.0, 1.0]])).tolist() == [1]


def test_newline_tokens_are_every_token_whose_text_holds_a_newline(tiny):
    _, tokenizer = tiny
    ids = newline_token_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids("Ċ") in ids  # byte-level "\n"
    assert all("\n" in tokenizer.decode([i]) for i in ids)
    assert not any("\n" in tokenizer.decode([i]) for i in set(range(len(tokenizer))) - ids)
