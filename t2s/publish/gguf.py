"""A merged model as one GGUF file for llama.cpp, Ollama and LM Studio, with an Ollama `Modelfile` beside it.

Written with the `gguf` package (llama.cpp's own writer, its metadata keys and its tensor-name tables): the
architecture's hyper-parameters, every tensor under llama.cpp's name (query and key projections permuted as llama.cpp
lays out rotary heads for the `llama` architecture), the byte-level BPE tokenizer (tokens, merges, token types,
special ids), and a chat template that renders t2s's canonical prompt from two messages: the system message is the
schema, the user message the question. Generation stops at the first newline, as t2s's does, through the stop strings
of the `Modelfile` (and of whatever runs the file: `--stop`/`stop=["\n"]`).

Types: `f16` (2-D weights in half precision; norms stay f32) and `q8_0` (llama.cpp's 8-bit blocks of 32). Supported
architectures: Llama and Mistral (`llama` in GGUF) and Qwen2, with a byte-level BPE tokenizer (SmolLM2, Qwen2.5);
anything else is refused with what to use instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from t2s.data.prompt import PROMPT_TEMPLATE, chat_template
from t2s.runtime import UserError

GGUF_TYPES = ("f16", "q8_0")
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
# The pre-tokenizer llama.cpp must apply (it recognises a tokenizer by this name): by model family, else `default`.
PRE_TOKENIZERS = (("smollm", "smollm"), ("qwen2", "qwen2"), ("qwen", "qwen2"))
SYSTEM_SLOT, USER_SLOT = "{{ .System }}", "{{ .Prompt }}"


def modelfile(gguf_name: str, eos_token: str | None, max_new_tokens: int = 128) -> str:
    """An Ollama Modelfile: the canonical prompt (SYSTEM = your schema, the prompt = your question), greedy, one line."""
    head, rest = PROMPT_TEMPLATE.split("{schema}")
    middle, tail = rest.split("{question}")
    template = head + SYSTEM_SLOT + middle + USER_SLOT + tail
    lines = [
        f"FROM ./{gguf_name}",
        "",
        "# t2s's canonical prompt: set SYSTEM to your schema (CREATE TABLE statements) and ask the question as the",
        "# prompt, e.g. ollama run NAME with /set system, or the API's `system` field. Greedy, one line of SQL.",
        f'TEMPLATE """{template}"""',
        'PARAMETER stop "\\n"',
    ]
    if eos_token:
        lines.append(f"PARAMETER stop {json.dumps(eos_token)}")
    lines += ["PARAMETER temperature 0", f"PARAMETER num_predict {max_new_tokens}", ""]
    return "\n".join(lines)


def render_modelfile_prompt(text: str, schema: str, question: str) -> str:
    """What Ollama sends the model for this Modelfile's TEMPLATE (for tests and docs)."""
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    return template.replace(SYSTEM_SLOT, schema).replace(USER_SLOT, question.strip())


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's layout of a rotary projection: each head's two halves interleaved (its converter's `permute`)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _rope_theta(config) -> float:
    theta = getattr(config, "rope_theta", None)
    parameters = getattr(config, "rope_parameters", None) or {}
    if theta is None:
        theta = parameters.get("rope_theta", 10000.0)
    kind = parameters.get("rope_type", "default") if isinstance(parameters, dict) else "default"
    if kind not in (None, "default"):
        raise UserError(f"rope scaling {kind!r} is not written to GGUF by t2s; convert with llama.cpp's converter")
    return float(theta)


def _tokenizer_fields(tokenizer) -> dict[str, Any]:
    """Tokens in id order, merges, types and special ids of a byte-level BPE tokenizer (tokenizer.json)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise UserError("the tokenizer has no tokenizer.json (a fast tokenizer); GGUF export needs one")
    data = json.loads(backend.to_str())
    model = data.get("model", {})
    pre = json.dumps(data.get("pre_tokenizer") or {})
    if model.get("type") != "BPE" or "ByteLevel" not in pre:
        raise UserError(
            "t2s writes GGUF for byte-level BPE tokenizers (SmolLM2, Qwen2.5); for this one (a SentencePiece-style "
            "tokenizer), export the merged model (--format safetensors) and convert it with llama.cpp's "
            "convert_hf_to_gguf.py"
        )
    vocab: dict[str, int] = dict(model["vocab"])
    special = {}
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        special[added["id"]] = bool(added.get("special"))
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [5] * size  # unused slots: llama.cpp's UNUSED
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = 1  # NORMAL
    for i, is_special in special.items():
        types[i] = 3 if is_special else 4  # CONTROL, USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    probe = tokenizer("a")["input_ids"]
    return {
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "unk": tokenizer.unk_token_id,
        "pad": tokenizer.pad_token_id,
        "add_bos": bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id,
    }


def _pre_tokenizer(name: str) -> str:
    lowered = name.lower()
    return next((pre for key, pre in PRE_TOKENIZERS if key in lowered), "default")


def check_writable(config, tokenizer, gguf_type: str = "f16") -> tuple[str, dict[str, Any]]:
    """The GGUF architecture and tokenizer fields t2s writes for this model, or the refusal with the way out (before
    any merging or writing: Gemma 3, for one, is a `gemma3_text` model with a SentencePiece-style tokenizer)."""
    if gguf_type not in GGUF_TYPES:
        raise UserError(f"--gguf_type {gguf_type!r} must be one of {GGUF_TYPES}")
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise UserError(
            f"GGUF export supports {sorted(ARCHITECTURES)} models, not {config.model_type!r}; export the merged "
            "model (--format safetensors) and convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    return arch, _tokenizer_fields(tokenizer)


def write_gguf(model, tokenizer, path: str | Path, gguf_type: str = "f16", *, name: str = "t2s model") -> Path:
    """Write `model` (a merged transformers causal LM) and its tokenizer as one GGUF file."""
    import gguf

    config = model.config
    arch, fields = check_writable(config, tokenizer, gguf_type)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    blocks = config.num_hidden_layers
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2 if arch == "qwen2" else gguf.MODEL_ARCH.LLAMA, blocks)
    quant = gguf.GGMLQuantizationType.Q8_0 if gguf_type == "q8_0" else gguf.GGMLQuantizationType.F16
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if gguf_type == "q8_0" else gguf.LlamaFileType.MOSTLY_F16

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(blocks))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(n_head))
    writer.add_head_count_kv(int(n_kv))
    writer.add_rope_dimension_count(int(head_dim))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(len(fields["tokens"]))
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(getattr(tokenizer, "name_or_path", "") + " " + str(config._name_or_path)))
    writer.add_token_list(fields["tokens"])
    writer.add_token_types(fields["types"])
    writer.add_token_merges(fields["merges"])
    for key, adder in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                       ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):  # fmt: skip
        if fields[key] is not None:
            adder(int(fields[key]))
    writer.add_add_bos_token(fields["add_bos"])
    writer.add_chat_template(chat_template())

    state = model.state_dict()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UserError(f"no GGUF name for tensor {hf_name}; this architecture variant is not supported")
        data = tensor.detach().float().cpu().numpy()
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        if data.ndim == 1 or data.shape[-1] % 32 and quant == gguf.GGMLQuantizationType.Q8_0:
            writer.add_tensor(gguf_name, data.astype(np.float32))  # norms, biases: f32 as llama.cpp keeps them
        elif quant == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, quant), raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
