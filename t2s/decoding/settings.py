"""How SQL is decoded, and the two rules every decoder shares: left padding, and where the answer ends.

Prompts are tokenized exactly as TRL tokenizes them for training (`tokenizer(text=prompt)`, special tokens
included), so the model sees at inference the token sequence it was trained on. Generation stops at EOS or at the
newline that completes the answer, and the answer's SQL is read by one rule (`t2s.decoding.answer`: the first line,
or a Markdown fence's content), so scores reflect what the model wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2s.decoding.answer import AnswerEnd

# Per dataset, the batch size and token budget every command and demo uses unless told otherwise (docs/decoding.md):
# Spider's answers are longer (joins, nesting) and its prompts several times longer than WikiSQL's.
DATASET_DEFAULTS = {
    "wikisql": {"batch_size": 32, "max_new_tokens": 96},
    "spider": {"batch_size": 16, "max_new_tokens": 128},
}


@dataclass
class GenerationSettings:
    max_new_tokens: int = 96
    batch_size: int = 32
    temperature: float = 0.0  # 0 = greedy
    num_candidates: int = 1  # > 1: beam search (greedy settings) or sampling (temperature > 0)
    top_p: float = 1.0
    top_k: int | None = None  # sampling: None keeps the model's generation config (often 50); 0 turns it off
    prefix_cache: bool = False  # prefill each database's shared prompt prefix once (see the module docstring)
    # greedy or sampled, unconstrained: a row that stops is replaced by the next question (t2s.decoding.continuous)
    continuous_batching: bool = False


def check_decoding(*, constrained: bool, scoped: bool, num_samples: int, sample_temperature: float) -> None:
    """The combinations no decoder can run, refused with the reason: one check for `evaluate`/`generate`'s options
    (`DecodingArguments`) and `ask`'s (`AskDecoding`)."""
    if scoped and not constrained:
        raise ValueError("column scoping works inside constrained decoding: add --constrained_decoding")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, not {num_samples} (1: no voting)")
    if num_samples > 1 and not sample_temperature > 0:
        raise ValueError(f"sample_temperature must be above 0 to draw samples, not {sample_temperature}")


def prepare_tokenizer(tokenizer):
    """Left padding (generation appends on the right) and a pad token (many causal LMs have none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def generate_kwargs(tokenizer, settings: GenerationSettings, prompt_length: int) -> dict:
    """transformers' `generate()` arguments for a batch whose prompts fill its first `prompt_length` columns."""
    from transformers import StoppingCriteriaList

    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "stopping_criteria": StoppingCriteriaList([AnswerEnd(tokenizer, prompt_length)]),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        if settings.top_k is not None:
            kwargs["top_k"] = settings.top_k
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if settings.num_candidates > 1:
        kwargs["num_return_sequences"] = settings.num_candidates
        if settings.temperature <= 0:
            kwargs["num_beams"] = settings.num_candidates
    return kwargs
