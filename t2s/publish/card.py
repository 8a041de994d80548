"""The run record (`t2s_run.json`) of an adapter or exported model, and the model card (`README.md`) rendered from it.

The record keeps what was trained on what, how, for how long, and every score computed on it since (with its
protocol). The card is rendered from the record each time it changes (a table of scores, each with its decoding and
protocol, and the Hub's `model-index` metadata), so the card on the Hub always shows the latest evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2s.data.run_record import RunRecord, load_run, save_run
from t2s.decoding.embedded import embedded_model, is_embedded

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ what }} that writes SQL queries for questions about a database (SQLite unless its prompts name another
dialect), trained with t2s ({{ method }}) on {{ train_data }}.

## Scores

{{ scores }}
{{ base_note }}
## Training

| | |
|---|---|
{{ training_rows }}

## Prompt

The model expects the canonical t2s prompt (the schema as `CREATE TABLE` statements, then the question) and
answers with one line of SQL; generate greedily and stop at the first newline:

```text
{{ prompt_example }}
```

```python
{{ usage }}
```
{{ gguf_note }}"""


def _peak_memory(peak: dict | None) -> str | None:
    """The run record's resident-memory peak, as the card shows it (a resumed run's covers its last process only)."""
    if not peak:
        return None
    return f"{peak['gib']} GiB resident, reached in a {peak['during']} at step {peak['step']}"


def record_scores(output_dir: str | Path, name: str, scores: dict[str, Any]) -> None:
    """Add (or replace) one named evaluation in the run record and re-render the model card."""
    run = load_run(output_dir) or RunRecord()
    run.scores[name] = scores
    save_run(output_dir, run)
    write_model_card(output_dir)


def _score_section(scores: dict[str, dict[str, Any]]) -> str:
    if not scores:
        return "Not evaluated yet: run `t2s evaluate --adapter <this folder>`."
    lines = [
        "| evaluation | execution accuracy | without empty-gold | examples | decoding | protocol |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s['execution_accuracy']:.1%} | {s.get('execution_accuracy_nonempty_gold', float('nan')):.1%} "
            f"| {s.get('num_scored', '?')} | {s.get('decoding', '?')} | {s.get('protocol', '?')} |"
        )
    lines.append(
        "\nExecution accuracy: the predicted and gold SQL are run on the database and their results compared under "
        "the dataset's official semantics (WikiSQL: the official evaluator's database and comparison; Spider: the "
        "test-suite-sql-eval execution match), empty-gold examples included. Scores on held-out WikiSQL dev tables "
        "are not WikiSQL test scores; each row's protocol names the data it was computed on."
    )
    return "\n".join(lines)


def write_model_card(output_dir: str | Path, repo_id: str | None = None, *, merged: bool = False) -> Path:
    """Render README.md from the run record: an adapter's card, or (merged=True) an exported model's."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    run = load_run(output_dir) or RunRecord()
    gguf = run.gguf if merged else None
    base = run.base_model_hub_id or run.base_model or "unknown"
    eval_results = [
        EvalResult(
            task_type="text-to-sql",
            dataset_type=s.get("dataset", "Salesforce/wikisql"),
            dataset_name=s.get("protocol", name),
            metric_type="execution_accuracy",
            metric_value=round(s["execution_accuracy"], 4),
            metric_name=f"Execution accuracy ({s.get('decoding', 'greedy')})",
        )
        for name, s in run.scores.items()
    ]
    datasets_used = {s.get("dataset", "Salesforce/wikisql") for s in run.scores.values()}
    datasets_used.add(run.train_dataset or "Salesforce/wikisql")
    data = ModelCardData(
        base_model=base if "/" in str(base) and not Path(str(base)).expanduser().exists() else None,  # a Hub id only
        library_name="gguf" if gguf else "transformers" if merged else "peft",
        license=run.license,
        tags=[
            "text-to-sql",
            "sql",
            *sorted({_dataset_tag(d) for d in datasets_used}),
            "trl",
            *(["sft", "grpo"] if run.stage == "grpo" else ["sft"]),
            "lora",
            "t2s",
            *(["gguf", "llama.cpp", "ollama"] if gguf else []),
        ],
        datasets=sorted(datasets_used),
        metrics=["execution_accuracy"],
        model_name=repo_id or run.hub_model_id or Path(output_dir).name,
        eval_results=eval_results or None,
        pipeline_tag="text-generation",
    )
    rows = {
        "base model": f"{_shown(run.base_model)}" + (f" (`{base}` on the Hub)" if base != run.base_model else ""),
        "data": run.train_protocol,
        "training examples": run.train_examples,
        "eval examples (loss)": run.eval_examples,
        "schema in prompt": run.schema_format,
        "adapter": run.peft,
        "quantisation": run.quantization or "none",
        "precision": run.precision,
        "steps / epochs": f"{run.global_step} / {run.epochs}",
        "training time": f"{(run.training_time_s or 0) / 60:.1f} min on {run.hardware}"
        + (
            f" (from step {run.training_time_from_step}; earlier stretches not recorded)"
            if run.training_time_from_step
            else ""
        ),
        "peak memory": _peak_memory(run.peak_memory),
        "final eval loss": run.eval_loss,
        "continued from (adapter)": run.init_adapter and f"`{_shown(run.init_adapter)}`",
        "continued from (SFT adapter)": run.sft_adapter and f"`{_shown(run.sft_adapter)}`",
        "reward": run.reward,
        "training prompts": run.prompt_filter,
        "completions sampled": run.sampling,
        "recipe": f"`{_shown(run.recipe)}`",
    }
    card = ModelCard.from_template(
        data,
        template_str=CARD_TEMPLATE,
        title=f"t2s {'merged model' if merged else 'adapter'}: {Path(run.base_model or 'model').name} for text-to-SQL",
        what=(
            f"**{base}** with a t2s LoRA adapter merged into its weights (`{_shown(run.exported_from_adapter)}`; "
            "logits checked equal to base + adapter before writing),"
            if merged
            else f"A LoRA adapter for **{_shown(run.base_model)}**"
        ),
        usage=(
            f'from transformers import AutoModelForCausalLM\n\nmodel = AutoModelForCausalLM.from_pretrained("{repo_id or _shown(str(output_dir))}", gguf_file="{gguf["file"]}")'
            if gguf
            else f'from transformers import AutoModelForCausalLM, AutoTokenizer\n\nmodel = AutoModelForCausalLM.from_pretrained("{repo_id or _shown(str(output_dir))}")'
            if merged
            else "from t2s.decoding.models import load_model_and_tokenizer\n\n"
            f'model, tokenizer = load_model_and_tokenizer(adapter="{repo_id or run.hub_model_id or _shown(str(output_dir))}")'
        ),
        base_model=run.base_model,
        scores=_score_section(run.scores),
        training_rows="\n".join(f"| {k} | {v} |" for k, v in rows.items() if v not in (None, "None")),
        prompt_example=run.prompt_example,
        train_data=run.train_protocol or "text-to-SQL data",
        method=_method(run),
        base_note=_base_note(run, base),
        gguf_note=_gguf_note(gguf) + _licences_note(run.licences),
    )
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def _licences_note(licences: dict[str, str] | None) -> str:
    """The licences of what a model was made from (its base, its data), when the record names them."""
    if not licences:
        return ""
    return "\n## Licences\n\n" + "\n".join(f"- {what}: {licence}" for what, licence in licences.items()) + "\n"


def _gguf_note(gguf: dict[str, Any] | None) -> str:
    """How to run the GGUF file, and what its check measured."""
    if not gguf:
        return ""
    f16 = (
        f" and on {gguf['agreement_with_f16_merge']:.0%} with the merge in f16 (the weights the file holds)"
        if "agreement_with_f16_merge" in gguf
        else ""
    )
    return (
        f"\n## GGUF\n\n`{gguf['file']}` ({gguf['type']}, {gguf['bytes'] / 1e6:.0f} MB) for llama.cpp, Ollama and LM "
        "Studio, with its chat template: the system message is the schema, the user message the question. Read back "
        f"by transformers' GGUF loader, its greedy SQL agreed with the merged model's on "
        f"{gguf['agreement_with_full_precision_merge']:.0%} of {gguf['check_questions']} check questions{f16}.\n\n"
        "```bash\n"
        "ollama create t2s-sql -f Modelfile      # SYSTEM = your schema, the prompt = your question\n"
        f'llama-cli -m {gguf["file"]} -f prompt.txt -n 128 --temp 0 -r "\\n"   # prompt.txt: the canonical prompt\n'
        "```\n"
    )


def _shown(name: Any) -> Any:
    """A path as a card may show it: never absolute (a card is published); a Hub id or relative path as it is."""
    if name and Path(str(name)).is_absolute():
        return Path(str(name)).name
    return name


def _method(run: RunRecord) -> str:
    sft = "TRL `SFTTrainer`, loss on the SQL tokens only"
    if run.stage != "grpo":
        return f"{sft}, continuing the adapter `{_shown(run.init_adapter)}`" if run.init_adapter else sft
    start = f"the SFT adapter `{_shown(run.sft_adapter)}` ({sft})" if run.sft_adapter else "the base model"
    return f"TRL `GRPOTrainer` with an execution reward, continuing {start}"


def _base_note(run: RunRecord, hub_id: str) -> str:
    """Say which base weights the adapter and its scores belong to, when they are not the Hub checkpoint's, where
    they come from and under which terms (an embedded model's provenance)."""
    if not is_embedded(run.base_model):
        return ""
    model = embedded_model(str(run.base_model))
    return (
        "\n## Base weights\n\n"
        f"This adapter was trained, and scored, on `{run.base_model}`: {model.provenance} t2s dequantised its "
        f"GGUF {model.quantization} weights to fp32. `adapter_config.json` names the Hub checkpoint `{hub_id}` so that "
        "PEFT's own loaders (`AutoPeftModelForCausalLM.from_pretrained`) work, but that checkpoint's weights are not "
        "the 4-bit ones: applied to it, the adapter meets slightly different base weights, and the scores above may "
        "not carry over exactly. How much they change was not measured (the Hub was unreachable where t2s was "
        "trained). `t2s.decoding.models.load_model_and_tokenizer(adapter=...)` loads the embedded weights the adapter "
        "was trained on.\n"
    )


def _dataset_tag(dataset: str) -> str:
    return dataset.rsplit("/", 1)[-1].lower()
