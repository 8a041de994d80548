"""The code paths of `embedded:gemma3-270m` on a tiny random Gemma 3: a tokenizer that puts `<bos>` in front of every
text and writes SentencePiece pieces, sliding-window layers beside full-attention ones (no plain key/value cache, so
no prefix cache and no continuous batching), training with the loss on the SQL only, plain and constrained decoding.
The real model's conversion and its scores: tests/test_embedded.py and docs/models.md."""

import pytest
import sqlglot

from t2s.decoding.constrained import grammar_for
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.settings import GenerationSettings, prepare_tokenizer

from .conftest import ROOT
from .tiny_model import save_tiny_gemma3

TINY_RECIPE = ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    return save_tiny_gemma3(tmp_path_factory.mktemp("tiny_gemma") / "model", seed=2)


@pytest.fixture(scope="module")
def trained(tiny_gemma, tmp_path_factory):
    from t2s.sft import cli

    out = tmp_path_factory.mktemp("gemma_run") / "adapter"
    trainer = cli(
        [str(TINY_RECIPE), "--model_name_or_path", str(tiny_gemma), "--output_dir", str(out), "--max_steps", "2",
         "--eval_strategy", "no", "--eval_execution_accuracy_samples", "0"]
    )  # fmt: skip
    return trainer, out


def test_the_loss_covers_the_sql_and_eos_after_one_bos_at_the_start(trained):
    trainer, _ = trained
    tokenizer = trainer.processing_class
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    for i in range(4):
        feature = trainer.train_dataset[i]
        ids, labels = feature["input_ids"], feature["labels"]
        prompt_ids = tokenizer(feature["prompt"])["input_ids"]
        assert ids[0] == bos and ids.count(bos) == 1  # the completion gets no second <bos>
        assert ids[: len(prompt_ids)] == prompt_ids and all(label == -100 for label in labels[: len(prompt_ids)])
        target = [t for t, label in zip(ids, labels) if label != -100]
        assert target == ids[len(prompt_ids) :] and target[-1] == eos and target.count(eos) == 1
        assert tokenizer.decode(target) == feature["completion"]  # the SQL and the EOS TRL appended to it


def test_training_prompt_tokens_equal_inference_prompt_tokens(trained):
    trainer, _ = trained
    tokenizer = prepare_tokenizer(trainer.processing_class)
    features = [trainer.train_dataset[i] for i in range(3)]
    batch = tokenizer([f["prompt"] for f in features], return_tensors="pt", padding=True)  # as generate_sql does
    assert tokenizer.padding_side == "left"
    for row, f in enumerate(features):
        trained_prompt = [t for t, label in zip(f["input_ids"], f["labels"]) if label == -100]
        assert batch["input_ids"][row][batch["attention_mask"][row] == 1].tolist() == trained_prompt


def test_a_trained_adapter_answers_through_every_decoding_path(trained, fixture_dev):
    """Sliding-window layers cache no plain keys and values: the prefix cache and continuous batching fall back to
    plain batches, said in one warning, and a padded batch answers what each question answers alone."""
    _, adapter = trained
    model, tokenizer = load_model_and_tokenizer(adapter=str(adapter))
    prompts = list(fixture_dev["prompt"])[:10]
    assert len(tokenizer(prompts[0])["input_ids"]) > 3 * model.config.sliding_window  # the window drops positions
    alone = generate_sql(
        model, tokenizer, prompts,
        GenerationSettings(max_new_tokens=12, batch_size=1, prefix_cache=False, continuous_batching=False),
    )  # fmt: skip
    with pytest.warns(UserWarning) as said:  # what `t2s evaluate` asks for by default
        batched = generate_sql(
            model, tokenizer, prompts,
            GenerationSettings(max_new_tokens=12, batch_size=4, prefix_cache=True, continuous_batching=True),
        )  # fmt: skip
    assert [str(w.message) for w in said] == [
        "PeftModelForCausalLM has no plain key/value cache (sliding-window or recurrent layers): no prefix cache and "
        "no continuous batching, plain batches"
    ]
    with pytest.warns(UserWarning, match="layers\\): no prefix cache, plain batches"):
        prefixed = generate_sql(
            model, tokenizer, prompts, GenerationSettings(max_new_tokens=12, batch_size=4, prefix_cache=True)
        )
    assert batched == alone == prefixed and len({a[0] for a in alone}) > 1


def test_constrained_answers_with_sentencepiece_pieces_stay_in_the_grammar(trained, fixture_dev):
    _, adapter = trained
    model, tokenizer = load_model_and_tokenizer(adapter=str(adapter))
    examples = [fixture_dev[i] for i in range(6)]
    answers = generate_sql(
        model, tokenizer, [ex["prompt"] for ex in examples], GenerationSettings(max_new_tokens=24, batch_size=3),
        grammars=[grammar_for(ex) for ex in examples],
    )  # fmt: skip
    for (sql,) in answers:
        assert sql.upper().startswith("SELECT"), sql
        sqlglot.parse_one(sql, read="sqlite")  # every constrained answer is SQL, finished where the budget cut it


def test_a_gguf_export_of_a_gemma_adapter_is_refused_with_the_way_out_and_writes_nothing(trained, tmp_path):
    from t2s.publish.standalone import export
    from t2s.runtime import UserError

    _, adapter = trained
    with pytest.raises(UserError, match="not 'gemma3_text'; export the merged model \\(--format safetensors\\) and "
                                        "convert it with llama.cpp's convert_hf_to_gguf.py"):  # fmt: skip
        export(str(adapter), str(tmp_path / "gguf"), fmt="gguf")
    assert list(tmp_path.iterdir()) == []
    # the way out works: the merged model as safetensors, which llama.cpp's converter reads
    out, difference = export(str(adapter), str(tmp_path / "merged"))
    assert (out / "model.safetensors").is_file() and difference < 1e-4
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template.startswith("{{ bos_token }}")  # the prompt it learned


def test_the_adapter_folder_chat_template_gives_the_trained_prompt_tokens_with_one_bos(trained, fixture_dev):
    """Gemma's pretrained base has no chat template; the adapter's tokenizer carries the canonical prompt as one, so
    `apply_chat_template` (schema as the system message, question as the user's) gives the tokens trained on: the
    rendered text starts with `<bos>` because a rendered template is tokenized without special tokens."""
    from transformers import AutoTokenizer

    from t2s.data.prompt import QUESTION_MARKER

    _, adapter = trained
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    prompt = fixture_dev[0]["prompt"]
    schema = prompt.split("### Database Schema:\n", 1)[1].split("\n\n" + QUESTION_MARKER, 1)[0]
    messages = [{"role": "system", "content": schema}, {"role": "user", "content": fixture_dev[0]["question"]}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == "<bos>" + prompt
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == tokenizer(prompt)["input_ids"]
