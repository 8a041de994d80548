"""What one LoRA training step keeps for its backward pass, per token and decoder layer, on the embedded model.

    python -m bench.bench_activations [--tokens 512]

A CPU step's peak memory grows with the tokens of its batch, and what grows is the tensors autograd saves for the
backward pass. This counts them with `torch.autograd.graph.saved_tensors_hooks` over one forward pass of the
decoder (bf16 base weights under bf16 autocast, LoRA r=16 on all seven projections in fp32, as the full CPU recipes
train), once per storage, and splits them into the frozen weights the graph only refers to (no extra memory) and
the activations proper. Configurations: LoRA dropout 0.05 and 0 (a dropout keeps its own copy of every LoRA
input), and PEFT's cast of each LoRA input to the adapter's dtype (fp32, which autocast then casts back to a new
bf16 copy) on and off. Results go to docs/benchmarks.md.
"""

import argparse
import collections

import torch

from bench.benchmarks_page import write_section

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CONFIGS = [(0.05, True), (0.0, True), (0.0, False)]


def saved_bytes(model_path: str, tokens: int, dropout: float, input_cast: bool) -> dict[str, float]:
    from peft import LoraConfig, get_peft_model
    from peft.helpers import disable_input_dtype_casting
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules=TARGETS))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # as PEFT keeps them in training
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    layers = model.config.num_hidden_layers
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    total: collections.Counter = collections.Counter()
    seen: set[int] = set()

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen and storage.data_ptr() != 0:
            seen.add(storage.data_ptr())
            total["weights" if storage.data_ptr() in weights else "activations"] += storage.nbytes()
        return t

    with (
        disable_input_dtype_casting(model, active=not input_cast),
        torch.autocast("cpu", dtype=torch.bfloat16),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
    ):
        model.base_model.model.model(input_ids=ids, use_cache=False)  # the decoder; t2s projects SQL positions only
    return {
        "activations_mib": total["activations"] / 2**20,
        "per_token_layer_kib": total["activations"] / tokens / layers / 1024,
        "weights_mib": total["weights"] / 2**20,
    }


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from t2s.decoding.embedded import ensure_embedded_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=512, help="length of the one sequence measured")
    args = parser.parse_args()
    path = ensure_embedded_model()
    rows = [(d, c, saved_bytes(path, args.tokens, d, c)) for d, c in CONFIGS]

    table = Table(title=f"Saved for backward, one {args.tokens}-token sequence, SmolLM2-135M decoder")
    for column in ("LoRA dropout", "PEFT input cast", "activations", "per token and layer", "weights referred to"):
        table.add_column(column)
    lines = [
        f"One {args.tokens}-token sequence through the embedded model's decoder (30 layers), bf16 base weights under "
        "bf16 autocast, LoRA r=16 on all seven projections (fp32); tensors saved for the backward pass counted once "
        "per storage. The frozen weights the graph refers to are not extra memory.",
        "",
        "| LoRA dropout | PEFT casts LoRA inputs to fp32 | activations saved | per token and layer | weights referred to |",
        "|---|---|---|---|---|",
    ]
    for dropout, cast, r in rows:
        cells = [
            f"{dropout:g}",
            "yes (PEFT's default)" if cast else "no",
            f"{r['activations_mib']:.1f} MiB",
            f"{r['per_token_layer_kib']:.1f} KiB",
            f"{r['weights_mib']:.1f} MiB",
        ]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    Console().print(table)
    lines += ["", f"Command: `python -m bench.bench_activations --tokens {args.tokens}`."]
    write_section("Activation memory of a LoRA step (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
