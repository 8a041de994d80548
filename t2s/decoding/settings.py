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


@dataclass(frozen=True)
class Decoding:
    """Which decoding stack answers a question: the choices `t2s evaluate`/`generate` take as flags
    (`DecodingArguments.decoding()`) and `ask` and the page as named choices (`t2s.decoding.asker.ASK_CHOICES`).
    A combination no decoder can run is refused here, with the reason."""

    constrained: bool = False  # the question's schema grammar (`t2s.decoding.constrained`)
    scoped: bool = False  # column scoping inside the grammar (`t2s.decoding.scope`); needs `constrained`
    execution_guided: bool = False  # beam search where the answer fails or returns no rows
    num_candidates: int = 4  # beams of execution-guided decoding
    num_samples: int = 1  # > 1: voting among the answer and num_samples - 1 samples (`t2s.decoding.voting`)
    sample_temperature: float = 0.7
    vote_rows_first: bool = True  # voting: a query with rows wins over one without (`t2s.decoding.voting.vote`)

    def __post_init__(self) -> None:
        if self.scoped and not self.constrained:
            raise ValueError("column scoping works inside constrained decoding: add --constrained_decoding")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, not {self.num_samples} (1: no voting)")
        if self.num_samples > 1 and not self.sample_temperature > 0:
            raise ValueError(f"sample_temperature must be above 0 to draw samples, not {self.sample_temperature}")
        if self.execution_guided and self.num_candidates < 2:
            raise ValueError(f"execution-guided decoding needs at least 2 beams, not {self.num_candidates}")

    def describe(self) -> str:
        parts = ["column-scoped constrained" if self.scoped else "constrained" if self.constrained else "greedy"]
        if self.execution_guided:
            parts.append(f"execution-guided ({self.num_candidates} beams)")
        if self.num_samples > 1:
            parts.append(f"voting ({self.num_samples} answers)")
        return ", ".join(parts)


GREEDY = Decoding()


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
