"""The preallocated key/value cache changes where keys and values live, not what generation computes."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from t2s.decoding.kv_cache import PreallocatedCache, PreallocatedLayer, plain_kv_layers, preallocated_cache
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.settings import prepare_tokenizer

from .tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_kv") / "model", seed=3, hidden_size=48)
    return load_model_and_tokenizer(str(path))


def _generate(tiny, prompts, cache_capacity=None, **kwargs):
    model, tokenizer = tiny
    prepare_tokenizer(tokenizer)
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    extra = {} if cache_capacity is None else {"cache": preallocated_cache(model, cache_capacity)}
    torch.manual_seed(0)
    with torch.no_grad():
        return model.generate(**batch, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id, **kwargs, **extra)


@pytest.mark.parametrize(
    "kwargs",
    [{"do_sample": False}, {"do_sample": False, "num_beams": 3, "num_return_sequences": 3}, {"do_sample": True}],
    ids=["greedy", "beams", "sampling"],
)
@pytest.mark.parametrize("capacity", ["enough", "too small"])
def test_generation_is_identical_with_the_preallocated_cache(tiny, fixture_dev, kwargs, capacity):
    prompts = list(fixture_dev["prompt"])[:7]  # uneven lengths: left padding
    plain = _generate(tiny, prompts, **kwargs)
    width = plain.shape[1]
    cached = _generate(tiny, prompts, cache_capacity=width if capacity == "enough" else 5, **kwargs)
    assert torch.equal(plain, cached)


def test_layer_operations_match_transformers_dynamic_layer():
    """Beam reordering, row selection, repetition and cropping give the keys DynamicLayer gives, and writing goes on."""
    torch.manual_seed(0)
    steps = [torch.randn(4, 2, n, 8) for n in (5, 1, 1)]
    ours, theirs = PreallocatedLayer(capacity=9), DynamicLayer()
    for ops in (
        lambda layer: layer.reorder_cache(torch.tensor([2, 2, 0, 1])),
        lambda layer: layer.crop(-2),
        lambda layer: layer.batch_select_indices(torch.tensor([True, False, True, True])),
        lambda layer: layer.batch_repeat_interleave(2),
    ):
        for step in steps:
            rows = ours.keys.shape[0] if ours.keys is not None else 4
            k, v = step[:rows], -step[:rows]
            assert all(torch.equal(a, b) for a, b in zip(ours.update(k, v), theirs.update(k, v)))
        ops(ours)
        ops(theirs)
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
        assert ours.get_seq_length() == theirs.get_seq_length()
        assert ours.get_mask_sizes(1) == theirs.get_mask_sizes(1)
    assert ours.keys.shape[0] == 6 and ours.get_seq_length() == 4 * 7 - 2  # the operations had effect
    assert ours._key_buffer.shape[-2] >= ours.get_seq_length()  # grew past its capacity of 9


def test_models_whose_cache_is_not_plain_keys_and_values_keep_transformers_cache(tiny, monkeypatch):
    from transformers import cache_utils

    model, _ = tiny
    assert plain_kv_layers(model) == 2 and isinstance(preallocated_cache(model, 10), PreallocatedCache)
    monkeypatch.setattr(cache_utils, "DynamicLayer", type("SomeOtherLayer", (), {}))
    assert plain_kv_layers(model) is None and preallocated_cache(model, 10) is None
