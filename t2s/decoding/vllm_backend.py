"""vLLM as the generation backend (`--backend vllm`): the transformers path's SQL, from vLLM's engine, on CUDA.

What makes the SQL that of the transformers path (`t2s.decoding.generation`):
- the prompt: token ids from the same tokenizer call (`tokenizer(text=prompt)`, special tokens as in training),
  handed to vLLM as `TokensPrompt`, so vLLM's own tokenization never enters;
- the token budget (`max_tokens` = `max_new_tokens`), greedy decoding (temperature 0), EOS from the model's
  generation config (vLLM reads the same file);
- the answer: vLLM's token ids decoded by the same tokenizer and read by `t2s.decoding.answer` (first line or fenced
  content). vLLM decodes on past the newline that ends the answer (its stop strings cannot say "the newline after a
  non-blank line outside a fence"); greedy decoding makes the continuation irrelevant to the answer, at the cost of
  the extra tokens;
- constrained decoding: the same Lark grammar (`t2s.decoding.constrained.grammar_for`) through vLLM's structured
  outputs with the guidance backend, which is llguidance, the engine t2s's own logits processor runs; an answer the
  budget cut becomes its longest complete query, as on the transformers path.

Refused, with the reason, before anything loads (`check_backend`): a machine without CUDA, vLLM not installed,
column scoping (a Python check of the likeliest tokens during decoding: vLLM takes a grammar, not a callback),
execution-guided decoding (beam search under a grammar, which vLLM's beam search does not take), and several
processes (vLLM spreads one model over GPUs itself: `tensor_parallel_size`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

from t2s.decoding.answer import answer_sql
from t2s.decoding.settings import GenerationSettings, prepare_tokenizer

BACKENDS = ("transformers", "vllm")


def check_backend(backend: str, *, constrained: bool, scoped: bool, execution_guided: bool, processes: int) -> None:
    """Refuse what a backend cannot run, before a model loads (ValueError: the commands print it as a usage error)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "transformers":
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "--backend vllm needs a CUDA GPU (vLLM generates on GPUs) and this machine has none "
            "(torch.cuda.is_available() is False): leave --backend out to generate with transformers"
        )
    if importlib.util.find_spec("vllm") is None:
        raise ValueError("--backend vllm needs vLLM: pip install 't2s[vllm]' (Linux with CUDA)")
    if scoped:
        raise ValueError(
            "--scoped_columns checks the likeliest tokens in Python while decoding (t2s/decoding/scope.py); vLLM's "
            "guided decoding takes a grammar, not a callback: drop --scoped_columns (the schema grammar still "
            "applies with --constrained_decoding) or use --backend transformers"
        )
    if execution_guided:
        raise ValueError(
            "--execution_guided searches beams (under the schema grammar when constrained); vLLM's beam search takes "
            "no grammar and is another search: use --backend transformers for execution-guided decoding"
        )
    if processes > 1:
        raise ValueError(
            "--backend vllm runs in one process: vLLM batches every question itself and spreads a model over "
            "several GPUs with tensor parallelism; launch without accelerate (or with --num_processes 1)"
        )


class VllmGenerator:
    """A vLLM engine over a model folder; `generate_sql` answers as `t2s.decoding.generation.generate_sql` does."""

    def __init__(self, path: str, *, dtype: str = "auto", seed: int = 42, max_model_len: int | None = None):
        from transformers import GenerationConfig
        from vllm import LLM

        self.path = path
        try:
            self.default_top_k = GenerationConfig.from_pretrained(path).top_k  # what generate() samples with
        except OSError:
            self.default_top_k = GenerationConfig().top_k
        self.llm = LLM(
            model=path,
            tokenizer=path,
            dtype=dtype,
            seed=seed,
            enable_prefix_caching=True,  # every question on a database shares its schema prefix
            structured_outputs_config={"backend": "guidance"},  # llguidance, as t2s's own constrained decoding
            max_model_len=max_model_len,
        )

    def generate_sql(
        self,
        tokenizer,
        prompts: Sequence[str],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
        grammars: Sequence[str] | None = None,
    ) -> list[list[str]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        if settings.num_candidates > 1 and settings.temperature <= 0:
            raise ValueError("beam search is not run through vLLM: use --backend transformers")
        prepare_tokenizer(tokenizer)
        inputs = [TokensPrompt(prompt_token_ids=tokenizer(text=p)["input_ids"]) for p in prompts]
        sampling = settings.temperature > 0
        top_k = settings.top_k if settings.top_k is not None else self.default_top_k
        params = [
            SamplingParams(
                n=settings.num_candidates,
                temperature=settings.temperature if sampling else 0.0,
                top_p=settings.top_p if sampling else 1.0,
                top_k=(top_k or 0) if sampling else 0,  # 0: no top-k cut
                max_tokens=settings.max_new_tokens,
                structured_outputs=StructuredOutputsParams(grammar=grammars[i]) if grammars is not None else None,
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        results = []
        for i, output in enumerate(outputs):
            rows = [self._row(c, tokenizer.eos_token_id) for c in output.outputs]
            texts = [answer_sql(tokenizer.decode(row, skip_special_tokens=True)) for row in rows]
            if grammars is not None:
                from t2s.decoding.constrained import finish_cut_answers

                texts = finish_cut_answers(tokenizer, rows, texts, [grammars[i]] * len(rows))
            results.append(texts)
        if progress is not None:
            progress(len(prompts))
        return results

    @staticmethod
    def _row(completion, eos_token_id: int | None) -> list[int]:
        """A completion's tokens, ending in EOS when vLLM stopped it there (`finish_reason` "stop"), whether or not
        its token ids hold the EOS itself: a constrained answer that ended is then read as ended, not as one the
        budget cut."""
        row = list(completion.token_ids)
        stopped = getattr(completion, "finish_reason", None) == "stop"
        if stopped and eos_token_id is not None and (not row or row[-1] != eos_token_id):
            row.append(eos_token_id)
        return row
