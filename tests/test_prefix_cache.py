"""Schema-prefix caching gives the SQL of plain batched generation, and really skips the shared prefix."""

import pytest
import torch

from t2s.data import load_text2sql
from t2s.decoding.constrained import grammar_for
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.predict import predict
from t2s.decoding.prefix_cache import plan_batches, shared_prefix_key
from t2s.decoding.settings import Decoding, GenerationSettings

from .spider_fixture import build_spider_layout
from .tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_prefix") / "model", seed=5, hidden_size=48)
    return load_model_and_tokenizer(str(path))


@pytest.fixture(scope="module")
def mixed(fixture_dev, tmp_path_factory):
    """Prompts of WikiSQL tables (12, 5 and 5 questions: shared prefixes, uneven questions), a Spider layout's two
    databases, and one-off prompts whose prefix nobody shares, shuffled."""
    spider = load_text2sql(str(build_spider_layout(tmp_path_factory.mktemp("sp") / "spider")), "dev")
    prompts = list(fixture_dev["prompt"]) + list(spider["prompt"])
    prompts += ["A prompt without the question slot: SELECT", fixture_dev[0]["prompt"].replace("Question", "Q", 1)]
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(0)).tolist()
    return [prompts[i] for i in order]


def _generate(tiny, prompts, prefix_cache, **settings):
    model, tokenizer = tiny
    return generate_sql(model, tokenizer, prompts, GenerationSettings(prefix_cache=prefix_cache, **settings))


def test_the_plan_groups_questions_by_database_and_keeps_one_offs_plain(tiny, mixed):
    _, tokenizer = tiny
    batches = plan_batches(tokenizer, mixed, 4, prefix_cache=True)
    assert sorted(i for idx, _ in batches for i in idx) == list(range(len(mixed)))
    cached = [(idx, prefix) for idx, prefix in batches if prefix is not None]
    assert len(cached) >= 5 and any(prefix is None for _, prefix in batches)
    for idx, prefix in cached:
        assert len({shared_prefix_key(mixed[i]) for i in idx}) == 1
        for i in idx:
            ids = tokenizer(text=mixed[i])["input_ids"]
            assert tuple(ids[: len(prefix)]) == prefix and len(ids) > len(prefix)
    # the shared prefix is the schema: it covers most of each prompt
    assert min(len(p) for _, p in cached) > 30
    assert plan_batches(tokenizer, mixed, 4, prefix_cache=False) == [
        (sorted(range(len(mixed)), key=lambda i: len(mixed[i]))[s : s + 4], None) for s in range(0, len(mixed), 4)
    ]


@pytest.mark.parametrize("batch_size,count", [(1, 12), (3, None), (8, None)])
def test_greedy_sql_is_identical_with_and_without_the_prefix_cache(tiny, mixed, batch_size, count):
    prompts = mixed[:count]
    plain = _generate(tiny, prompts, False, max_new_tokens=16, batch_size=batch_size)
    cached = _generate(tiny, prompts, True, max_new_tokens=16, batch_size=batch_size)
    assert cached == plain
    assert len({c[0] for c in plain}) > 3  # the outputs differ between prompts: the comparison has teeth


def test_beam_search_and_sampling_candidates_are_identical_too(tiny, mixed):
    plain = _generate(tiny, mixed[:14], False, max_new_tokens=12, batch_size=4, num_candidates=3)
    cached = _generate(tiny, mixed[:14], True, max_new_tokens=12, batch_size=4, num_candidates=3)
    assert cached == plain and all(len(c) == 3 for c in cached)
    torch.manual_seed(0)
    sampled_plain = _generate(tiny, mixed[:6], False, max_new_tokens=8, batch_size=6, temperature=1.0)
    torch.manual_seed(0)
    sampled_cached = _generate(tiny, mixed[:6], True, max_new_tokens=8, batch_size=6, temperature=1.0)
    assert all(len(c) == 1 for c in sampled_cached) and len(sampled_cached) == len(sampled_plain)


def test_constrained_and_execution_guided_decoding_agree_with_the_cache(tiny, fixture_dev):
    model, tokenizer = tiny
    grammars = [grammar_for(ex) for ex in fixture_dev]
    prompts = list(fixture_dev["prompt"])
    plain = generate_sql(
        model, tokenizer, prompts, GenerationSettings(max_new_tokens=16, batch_size=5), grammars=grammars
    )
    cached = generate_sql(
        model,
        tokenizer,
        prompts,
        GenerationSettings(max_new_tokens=16, batch_size=5, prefix_cache=True),
        grammars=grammars,
    )
    assert cached == plain
    # Every answer is a complete query, or no SQL where the budget ran out before one was complete.
    assert all(c[0].startswith("SELECT ") or c[0] == "" for c in cached) and any(c[0] for c in cached)
    runs = [
        predict(model, tokenizer, fixture_dev, GenerationSettings(max_new_tokens=12, batch_size=8, prefix_cache=p),
                Decoding(execution_guided=True, num_candidates=2))
        for p in (False, True)
    ]  # fmt: skip
    assert runs[0] == runs[1]


def test_the_cache_really_skips_the_shared_tokens(tiny, fixture_dev):
    """Count the positions the model embeds: with the cache, each group's schema is embedded once, not per question."""
    model, tokenizer = tiny
    prompts = list(fixture_dev["prompt"])
    counted = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, i, o: counted.append(i[0].numel()))
    try:
        counts = {}
        for prefix_cache in (False, True):
            counted.clear()
            generate_sql(
                model,
                tokenizer,
                prompts,
                GenerationSettings(max_new_tokens=1, batch_size=22, prefix_cache=prefix_cache),
            )
            counts[prefix_cache] = sum(counted)
    finally:
        hook.remove()
    prompt_tokens = sum(len(tokenizer(text=p)["input_ids"]) for p in prompts)
    assert counts[False] >= prompt_tokens
    assert counts[True] < 0.5 * counts[False]


def test_a_model_without_plain_key_value_layers_falls_back_to_plain_batches(tiny, fixture_dev, monkeypatch):
    """Sliding-window, recurrent or linear-attention caches cannot be shared by position: plain batches, a warning."""
    from transformers import cache_utils

    prompts = list(fixture_dev["prompt"])[:8]
    plain = _generate(tiny, prompts, False, max_new_tokens=6, batch_size=8)
    # the check compares each layer's type with DynamicLayer: make every real layer look like another kind
    monkeypatch.setattr(cache_utils, "DynamicLayer", type("SomeOtherLayer", (), {}))
    with pytest.warns(
        UserWarning,
        match="no plain key/value cache \\(sliding-window or recurrent layers\\): no prefix cache, plain batches",
    ):
        fallback = _generate(tiny, prompts, True, max_new_tokens=6, batch_size=8)
    assert fallback == plain
