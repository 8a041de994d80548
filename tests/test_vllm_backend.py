"""`--backend vllm` (t2s/decoding/vllm_backend.py): refused without CUDA before anything loads, refused with its reason
where vLLM cannot run a decoding, and its request/answer handling checked against the transformers path.

vLLM itself needs CUDA, so on CPU its engine is stood in for by `FakeLLM` below, which answers a request as vLLM's
`LLM.generate` does (token ids in, every token up to EOS or `max_tokens` out, the grammar applied by llguidance). What
this checks is t2s's side: the prompt's token ids, the budget, greedy settings, the answer read from the output and
the cut constrained answers finished; `make gpu-check` compares real vLLM with transformers on a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
import torch

from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.settings import GenerationSettings
from t2s.decoding.vllm_backend import VllmGenerator, check_backend

from .conftest import FIXTURES, ROOT

NO_CUDA = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the commands see no GPU, whatever the machine has


def test_without_cuda_the_flag_is_refused_before_anything_loads(tmp_path):
    """The model named does not exist: the refusal comes first, as a usage error, with no traceback. The command
    sees no CUDA on any machine (CUDA_VISIBLE_DEVICES empty); make gpu-check runs the backend on a GPU."""
    done = subprocess.run(
        [sys.executable, "-m", "t2s.cli", "evaluate", "--backend", "vllm", "--model", str(tmp_path / "no_such_model"),
         "--dataset_name", str(FIXTURES), "--output_dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, env=NO_CUDA,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--backend vllm needs a CUDA GPU" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scoped": True, "constrained": True}, "--scoped_columns checks the likeliest tokens"),
        ({"execution_guided": True}, "vLLM's beam search takes no grammar"),
        ({"processes": 2}, "--backend vllm runs in one process"),
    ],
)
def test_what_vllm_cannot_run_is_refused_with_the_reason(monkeypatch, options, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    settings = {"constrained": False, "scoped": False, "execution_guided": False, "processes": 1, **options}
    with pytest.raises(ValueError, match=message):
        check_backend("vllm", **settings)
    check_backend("vllm", constrained=True, scoped=False, execution_guided=False, processes=1)  # greedy, grammar: ok


def test_without_vllm_installed_the_extra_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install 't2s\[vllm\]'"):
        check_backend("vllm", constrained=False, scoped=False, execution_guided=False, processes=1)


# --------------------------------------------------------------------------- a stand-in for vLLM's engine


class FakeLLM:
    """`vllm.LLM.generate` on the tiny model: greedy (or the grammar's) tokens up to EOS or max_tokens, with no
    newline stop, as vLLM runs a request without stop strings."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.requests = model, tokenizer, []

    def generate(self, inputs, params, use_tqdm=False):
        from transformers import LogitsProcessorList

        from t2s.decoding.constrained import GrammarConstrainedLogits

        outputs = []
        for prompt, p in zip(inputs, params):
            self.requests.append((prompt, p))
            ids = torch.tensor([prompt["prompt_token_ids"]], device=self.model.device)
            extra = {}
            if p.structured_outputs is not None:
                grammar = GrammarConstrainedLogits(self.tokenizer, [p.structured_outputs.grammar], ids.shape[1])
                extra["logits_processor"] = LogitsProcessorList([grammar])
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=p.max_tokens, do_sample=False,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id, **extra,
            )[0, ids.shape[1] :].tolist()  # fmt: skip
            stopped = self.tokenizer.eos_token_id in out
            if stopped:  # vLLM reports the stop and leaves the EOS out of the text
                out = out[: out.index(self.tokenizer.eos_token_id)]
            completion = types.SimpleNamespace(token_ids=out, finish_reason="stop" if stopped else "length")
            outputs.append(types.SimpleNamespace(outputs=[completion]))
        return outputs


def _fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = lambda **kw: types.SimpleNamespace(**kw)
    for name, module in (("vllm", vllm), ("vllm.inputs", inputs), ("vllm.sampling_params", sampling)):
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("constrained", [False, True])
def test_the_vllm_path_answers_what_the_transformers_path_answers(tiny_model, monkeypatch, constrained):
    from t2s.decoding.constrained import grammar_for
    from t2s.decoding.decoding_arguments import DecodingArguments

    _fake_vllm(monkeypatch)
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    examples = list(DecodingArguments(dataset_name=str(FIXTURES)).load_questions())[:8]
    prompts = [ex["prompt"] for ex in examples]
    grammars = [grammar_for(ex) for ex in examples] if constrained else None
    settings = GenerationSettings(max_new_tokens=24, batch_size=4)
    expected = generate_sql(model, tokenizer, prompts, settings, grammars=grammars)

    generator = VllmGenerator.__new__(VllmGenerator)  # the engine is the stand-in; the rest is t2s's
    generator.path, generator.default_top_k, generator.llm = str(tiny_model), 50, FakeLLM(model, tokenizer)
    answered = generate_sql(generator, tokenizer, prompts, settings, grammars=grammars)
    assert answered == expected
    assert any(a[0] for a in answered)  # not a vacuous agreement of empty answers
    for (prompt, params), text in zip(generator.llm.requests, prompts):
        assert prompt["prompt_token_ids"] == tokenizer(text=text)["input_ids"]  # t2s's tokens, not vLLM's
        assert params.max_tokens == 24 and params.temperature == 0.0 and params.n == 1
        assert (params.structured_outputs is not None) == constrained


def test_ask_refuses_the_flag_without_cuda_before_anything_loads(tmp_path):
    database = ROOT / "tests" / "fixtures" / "own_data" / "database" / "shop.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "t2s.cli", "ask", "--db", str(database), "--backend", "vllm", "--model",
         str(tmp_path / "no_such_model"), "How many products are there?"],
        cwd=ROOT, capture_output=True, text=True, env=NO_CUDA,
    )  # fmt: skip
    assert done.returncode == 2 and "--backend vllm needs a CUDA GPU" in done.stderr
    assert "Traceback" not in done.stderr


def test_ask_with_vllm_drops_column_scoping_unless_asked_for_it(monkeypatch):
    """ask's default decoding is column-scoped constrained; vLLM runs the grammar without scoping, and says so. Asking
    for scoping explicitly with vLLM is refused with the reason."""
    from t2s.ask import decoding, parse_args
    from t2s.runtime import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    chosen = decoding(parse_args(["--db", "x.sqlite", "--backend", "vllm", "q"]))
    assert chosen.constrained and not chosen.scoped
    assert decoding(parse_args(["--db", "x.sqlite", "q"])).scoped  # transformers: scoped, as before
    with pytest.raises(UserError, match="--scoped_columns checks the likeliest tokens"):
        decoding(parse_args(["--db", "x.sqlite", "--backend", "vllm", "--scoped_columns", "q"]))
