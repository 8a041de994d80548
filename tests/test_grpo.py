"""GRPO: the execution reward on real databases, the prompt filter, and the script on a tiny model from an SFT adapter."""

import hashlib
import json

import pytest
import torch

from t2s.training.rewards import ExecutionReward, execution_reward

from .conftest import ROOT

TINY_GRPO_RECIPE = ROOT / "tests" / "fixtures" / "recipes" / "tiny_grpo.yaml"
SHOP_DB = ROOT / "tests" / "fixtures" / "own_data" / "database" / "shop" / "shop.sqlite"

# Statements the sandbox refuses, in several spellings: each must get 0.0 and leave the database as it was.
REJECTED = [
    "DROP TABLE {t}",
    "DELETE FROM {t}",
    "UPDATE {t} SET {c} = NULL",
    "INSERT INTO {t} SELECT * FROM {t}",
    "CREATE TABLE evil AS SELECT * FROM {t}",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA writable_schema = ON",
    "SELECT 1; DROP TABLE {t}",
    "WITH x AS (SELECT 1) DELETE FROM {t}",
    "SELECT load_extension('libevil')",
    "VACUUM",
    "BEGIN",
]
SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _call(reward, completions, gold, **column):
    """As GRPOTrainer calls a reward: keywords only, every column repeated per completion, TRL's extras included."""
    n = len(completions)
    return reward(
        prompts=["p"] * n,
        completions=completions,
        completion_ids=[[0]] * n,
        gold_sql=[gold] * n,
        trainer_state=None,
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
        question=["q"] * n,
        **{k: [v] * n for k, v in column.items()},
    )


@pytest.fixture(scope="module")
def wikisql_example(shared_wikisql):
    from t2s.data import load_text2sql
    from t2s.execution.engines import connect_example

    dev = load_text2sql(str(shared_wikisql), "dev", limit=50)
    # a real table and a gold query with a condition and a non-empty answer
    return next(
        ex
        for ex in dev
        if "WHERE" in ex["gold_sql"] and connect_example(ex).run(ex["gold_sql"]).rows not in ([], [(None,)])
    )


def test_reward_on_a_real_wikisql_table(wikisql_example):
    from t2s.execution.engines import connect_example

    ex = wikisql_example
    table = ex["table"]
    gold = ex["gold_sql"]
    col = table["header"][0]
    name = gold.split(" FROM ", 1)[1].split()[0]  # the official database's table name, quoted
    before = connect_example(ex).run(f"SELECT * FROM {name}").rows
    completions = [
        gold,
        f"select * from ({gold}) as answer\nSELECT garbage after the first line",  # the same answer, rewritten
        f'SELECT "{col}" FROM {name} WHERE 1 = 0',  # runs, returns nothing: a wrong answer
        f'SELECT "no such column" FROM {name}',
        "",
        "   \n",
        SLOW,
        *[s.format(t=name, c=f'"{col}"') for s in REJECTED],
    ]
    reward = ExecutionReward(timeout_s=0.2)
    scores = _call(reward, completions, gold, table=table)
    assert scores[:2] == [1.0, 1.0]
    assert scores[2] == 0.1
    assert scores[3:] == [0.0] * (len(completions) - 3)
    assert connect_example(ex).run(f"SELECT * FROM {name}").rows == before


def test_reward_on_an_sqlite_database_file(shared_spider):
    db = shared_spider / "database" / "concert_singer" / "concert_singer.sqlite"
    digest = _sha(db)
    gold = "SELECT count(*) FROM singer"
    completions = [
        gold,
        "select COUNT(Singer_ID) from singer as s",  # an equivalent rewrite
        "SELECT count(*) FROM singer WHERE Age > 40",  # runs, another answer
        "SELECT count(*) FROM singers",  # no such table
        "",
        SLOW,
        *[s.format(t="singer", c="Name") for s in REJECTED],
    ]
    scores = _call(ExecutionReward(timeout_s=0.2), completions, gold, db_path=str(db))
    assert scores == [1.0, 1.0, 0.1, 0.0, 0.0, 0.0] + [0.0] * len(REJECTED)
    assert _sha(db) == digest


def test_reward_follows_spider_semantics_and_partial_credit():
    # Spider's rule: DISTINCT is ignored and column order may differ; order matters only with ORDER BY in the gold.
    gold = "SELECT name, city FROM customers ORDER BY name"
    same = [
        "SELECT DISTINCT name, city FROM customers ORDER BY name",
        "SELECT city, name FROM customers ORDER BY name",
    ]
    wrong_order = "SELECT name, city FROM customers ORDER BY name DESC"
    reward = ExecutionReward(partial_credit=0.25)
    assert _call(reward, [*same, wrong_order], gold, db_path=str(SHOP_DB)) == [1.0, 1.0, 0.25]
    assert execution_reward(completions=[wrong_order], gold_sql=[gold], db_path=[str(SHOP_DB)]) == [0.1]


def test_chat_completions_are_scored_on_the_assistant_message():
    gold = "SELECT count(*) FROM orders"
    chat = [[{"role": "assistant", "content": gold}], [{"role": "assistant", "content": "SELECT 1"}]]
    assert _call(ExecutionReward(), chat, gold, db_path=str(SHOP_DB)) == [1.0, 0.1]


def test_gold_runs_once_per_example_not_per_completion(monkeypatch):
    import t2s.training.rewards

    calls = []
    real = t2s.training.rewards.run_gold
    monkeypatch.setattr(t2s.training.rewards, "run_gold", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    reward = ExecutionReward()
    gold_a, gold_b = "SELECT count(*) FROM orders", "SELECT name FROM products"
    completions = ["SELECT 1"] * 8
    _call(reward, completions, gold_a, db_path=str(SHOP_DB))
    _call(reward, completions, gold_b, db_path=str(SHOP_DB))
    _call(reward, completions, gold_a, db_path=str(SHOP_DB))  # a later step, the same question again
    assert calls == [gold_a, gold_b]


def test_reward_refuses_calls_without_the_columns_it_needs():
    with pytest.raises(ValueError, match="gold_sql"):
        ExecutionReward()(completions=["SELECT 1"], db_path=[str(SHOP_DB)])
    with pytest.raises(ValueError, match="table .*db_path"):
        ExecutionReward()(completions=["SELECT 1"], gold_sql=["SELECT 1"])
    with pytest.raises(ValueError, match="partial_credit"):
        ExecutionReward(partial_credit=1.0)


def test_a_failing_gold_query_gives_no_reward_is_retried_and_counted(monkeypatch):
    """A broken example or a gold query past its budget must not stop a GRPO run: its completions get TRL's "no
    reward" (None), a slow gold query is retried with four times the budget, and both are counted."""
    reward = ExecutionReward()
    with pytest.warns(UserWarning, match="failed on its database"):
        scores = _call(reward, ["SELECT 1", "SELECT 2"], "SELECT * FROM nowhere", db_path=str(SHOP_DB))
    assert scores == [None, None] and reward.gold_failures["SELECT * FROM nowhere"] == 2
    import t2s.training.rewards

    budgets = []
    real = t2s.training.rewards.run_gold
    monkeypatch.setattr(
        t2s.training.rewards, "run_gold", lambda *a, **k: budgets.append(k["timeout_s"]) or real(*a, **k)
    )
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    patient = ExecutionReward(timeout_s=0.05)
    with pytest.warns(UserWarning, match="also with a longer budget"):
        assert _call(patient, ["SELECT 1"] * 3, endless, db_path=str(SHOP_DB)) == [None] * 3
    assert budgets == [0.05, 0.2] and patient.gold_failures[endless] == 3  # retried once, 4x the budget, cached


# --- the prompt filter ---


class _LengthReward:
    """A stand-in reward: whether a sampled completion has an even number of characters."""

    def score_one(self, completion, gold_sql, table=None, db_path=None, *, semantics=None):
        return float(len(completion) % 2 == 0)


def test_prescoring_keeps_exactly_the_questions_with_differing_rewards(tiny_model, tmp_path, fixture_dev):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s.decoding.settings import GenerationSettings
    from t2s.training.prompt_filter import keep_informative

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    data = fixture_dev.select(range(8))
    torch.manual_seed(0)
    settings = GenerationSettings(max_new_tokens=6, batch_size=4, temperature=1.5, num_candidates=4, top_k=0)
    kept, summary = keep_informative(model, tokenizer, data, _LengthReward(), settings, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "prescores.jsonl").read_text().splitlines()]
    assert [r["example_id"] for r in lines] == list(data["example_id"])
    assert all(len(r["rewards"]) == 4 for r in lines)
    informative = [r["example_id"] for r in lines if len(set(r["rewards"])) > 1]
    assert list(kept["example_id"]) == informative and summary.kept == len(informative)
    assert summary.zero_std_share == pytest.approx(1 - len(informative) / 8)
    assert 0 < len(informative) < 8  # the sampled lengths differ for some questions and not for others
    with pytest.raises(ValueError, match="at least 2"):
        keep_informative(model, tokenizer, data, _LengthReward(), GenerationSettings(num_candidates=1), tmp_path)


def test_prescores_are_written_by_chunk_and_reused_by_a_later_start(tiny_model, tmp_path, fixture_dev, monkeypatch):
    """A start stopped while pre-scoring leaves the chunks it finished; the next start samples only the rest, and a
    start with other settings is refused rather than mixing pre-scores."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import t2s.training.prompt_filter as prompt_filter
    from t2s.decoding.settings import GenerationSettings
    from t2s.runtime import UserError

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    data = fixture_dev.select(range(8))
    settings = GenerationSettings(max_new_tokens=6, batch_size=4, temperature=1.5, num_candidates=4, top_k=0)
    monkeypatch.setattr(prompt_filter, "PRESCORE_CHUNK", 3)
    sampled = []
    real_prescore = prompt_filter.prescore

    def stopping_prescore(model, tokenizer, dataset, *args, **kwargs):
        if len(sampled) == 2:  # the third chunk never finishes: the process was stopped
            raise KeyboardInterrupt
        sampled.append(list(dataset["example_id"]))
        return real_prescore(model, tokenizer, dataset, *args, **kwargs)

    monkeypatch.setattr(prompt_filter, "prescore", stopping_prescore)
    with pytest.raises(KeyboardInterrupt):
        prompt_filter.keep_informative(model, tokenizer, data, _LengthReward(), settings, tmp_path)
    first = [json.loads(line) for line in (tmp_path / "prescores.jsonl").read_text().splitlines()]
    assert [r["example_id"] for r in first] == sampled[0] + sampled[1] and len(first) == 6
    with (tmp_path / "prescores.jsonl").open("a") as f:
        f.write('{"example_id": "half a li')  # stopped while writing a line: dropped and redone, not a crash

    with pytest.raises(UserError, match="the rest|no pre-scores"):  # one of several processes: it may not sample
        prompt_filter.keep_informative(model, tokenizer, data, _LengthReward(), settings, tmp_path, may_sample=False)
    sampled.clear()
    monkeypatch.setattr(prompt_filter, "prescore", real_prescore)
    kept, summary = prompt_filter.keep_informative(model, tokenizer, data, _LengthReward(), settings, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "prescores.jsonl").read_text().splitlines()]
    assert lines[:6] == first and len(lines) == 8 and summary.reused == 6
    assert sorted(r["example_id"] for r in lines) == sorted(data["example_id"])
    informative = [
        ex for ex in data["example_id"] if len(set(next(r for r in lines if r["example_id"] == ex)["rewards"])) > 1
    ]
    assert list(kept["example_id"]) == informative
    # all there: a later start (a resumed run, another process) reads them and samples nothing
    again, _ = prompt_filter.keep_informative(
        model, tokenizer, data, _LengthReward(), settings, tmp_path, may_sample=False
    )
    assert list(again["example_id"]) == informative
    with pytest.raises(UserError, match="other settings"):
        prompt_filter.keep_informative(
            model, tokenizer, data, _LengthReward(), GenerationSettings(temperature=0.7, num_candidates=4), tmp_path
        )


# --- the script ---


@pytest.fixture(scope="module")
def sft_adapter(tiny_model, tmp_path_factory):
    """A tiny SFT adapter with non-zero LoRA weights, as t2s/sft.py leaves it (run record naming its base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("sft") / "adapter"
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    (out / "t2s_run.json").write_text(json.dumps({"base_model": str(tiny_model), "stage": "sft"}))
    return out


@pytest.fixture(scope="module")
def grpo_run(tiny_model, sft_adapter, tmp_path_factory):
    from t2s.grpo import cli

    out = tmp_path_factory.mktemp("grpo") / "adapter"
    trainer = cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--output_dir", str(out)])
    return trainer, out


def test_grpo_from_an_sft_adapter_writes_an_adapter_only_that_reloads(grpo_run, tiny_model, sft_adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, out = grpo_run
    assert trainer.state.global_step == 2
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "t2s_run.json", "README.md"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin"}
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["stage"] == "grpo" and run["sft_adapter"] == str(sft_adapter) and run["base_model"] == str(tiny_model)
    assert any("reward" in entry for entry in run["loss_history"])
    assert any("frac_reward_zero_std" in entry for entry in run["loss_history"])
    assert "GRPOTrainer" in (out / "README.md").read_text()

    ids = trainer.processing_class("SELECT", return_tensors="pt")["input_ids"]
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out).eval()
    sft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), sft_adapter).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(ids).logits, reloaded(ids).logits, atol=1e-6)
        # it continued the SFT adapter: the same LoRA modules, not a fresh zero-initialised adapter
        assert not torch.allclose(plain(ids).logits, reloaded(ids).logits)
    sft_config = json.loads((sft_adapter / "adapter_config.json").read_text())
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == sft_config["r"] and set(config["target_modules"]) == set(sft_config["target_modules"])
    del sft


def test_grpo_refuses_a_base_other_than_the_adapters(sft_adapter, tmp_path):
    from t2s.grpo import cli
    from t2s.runtime import UserError

    with pytest.raises(UserError, match="was trained on"):
        cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--model_name_or_path", str(tmp_path)])


def test_prescoring_that_finds_nothing_informative_stops_before_training(sft_adapter, tmp_path):
    from t2s.grpo import cli
    from t2s.runtime import UserError

    # a random tiny model never writes a runnable query: every pre-score is 0.0
    with pytest.raises(UserError, match="no training question is informative"):
        cli(
            [
                str(TINY_GRPO_RECIPE),
                "--sft_adapter",
                str(sft_adapter),
                "--output_dir",
                str(tmp_path / "o"),
                "--prescore_samples",
                "2",
            ]
        )
    assert (tmp_path / "o" / "prescores.jsonl").exists()
    assert not (tmp_path / "o" / "adapter_model.safetensors").exists()


def test_prescore_only_writes_the_prescores_and_trains_nothing(sft_adapter, tmp_path):
    from t2s.grpo import cli

    out = tmp_path / "o"
    result = cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--output_dir", str(out),
                  "--prescore_samples", "2", "--prescore_only", "true"])  # fmt: skip
    assert result is None
    assert len((out / "prescores.jsonl").read_text().splitlines()) == 8
    assert json.loads((out / "prescores.settings.json").read_text())["samples"] == 2
    assert not (out / "adapter_model.safetensors").exists() and not list(out.glob("checkpoint-*"))
    # --overwrite_output_dir starts afresh: the earlier pre-scores (and any rollout log) are not read
    (out / "rollouts.jsonl").write_text('{"start": "x", "step": 1, "example_id": "e", "reward": 1.0, "sql": ""}\n')
    (out / "prescores.settings.json").write_text('{"samples": 99}')  # read, it would be refused as other settings
    cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--output_dir", str(out),
         "--prescore_samples", "2", "--prescore_only", "true", "--overwrite_output_dir", "true"])  # fmt: skip
    assert len((out / "prescores.jsonl").read_text().splitlines()) == 8 and not (out / "rollouts.jsonl").exists()


def test_prescoring_samples_from_the_base_when_grpo_starts_a_new_adapter(tiny_model, tmp_path):
    """Without sft_adapter the policy is the base model (a path TRL loads): pre-scoring loads it to sample from."""
    from t2s.grpo import cli
    from t2s.runtime import UserError

    with pytest.raises(UserError, match="no training question is informative"):
        cli([str(TINY_GRPO_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(tmp_path / "o"),
             "--prescore_samples", "2"])  # fmt: skip
    assert (tmp_path / "o" / "prescores.jsonl").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        ("num_generation: 4\n", r"unknown key 'num_generation' \(did you mean 'num_generations'\?\)"),
        ("beta: strong\n", r"'beta' must be float"),
    ],
)
def test_grpo_recipe_checks_name_the_key(tmp_path, extra, message):
    from t2s.grpo import cli
    from t2s.training.recipe import RecipeError

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(TINY_GRPO_RECIPE.read_text() + extra)
    with pytest.raises(RecipeError, match=message):
        cli([str(recipe), "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize("setting", [["--use_vllm", "true"], ["--bf16", "true", "--use_cpu", "false"]])
def test_grpo_gpu_settings_on_cpu_are_refused(setting, sft_adapter, tmp_path, monkeypatch):
    from t2s.grpo import cli
    from t2s.training.device import DeviceSupportError

    monkeypatch.setattr("t2s.training.device.cuda_available", lambda: False)
    with pytest.raises(DeviceSupportError, match="needs a CUDA GPU"):
        cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--output_dir", str(tmp_path), *setting])


# --- sampling under the schema grammar ---


def _grammatical(tokenizer, grammar, ids):
    """Whether `ids` (a completion, its end of sequence left out) is a prefix the grammar accepts."""
    from t2s.decoding.constrained import compile_grammar

    matcher = compile_grammar(tokenizer, grammar)
    body = ids[:-1] if ids and ids[-1] == tokenizer.eos_token_id else ids
    return all(matcher.consume_token(t) for t in body)


def test_a_sampled_completion_ends_where_its_answer_ends(tiny_model):
    from transformers import AutoTokenizer

    from t2s.decoding.generation import cut_at_answer_end

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    eos = tokenizer.eos_token_id
    line = tokenizer("SELECT a FROM t\n", add_special_tokens=False)["input_ids"]
    rest = tokenizer("junk", add_special_tokens=False)["input_ids"]
    # the newline that closes the answer is followed by the end of sequence; what generate padded after is dropped
    assert cut_at_answer_end(tokenizer, [*line, *rest]) == [*line, eos]
    assert cut_at_answer_end(tokenizer, [*line[:-1], eos, *rest]) == [*line[:-1], eos]
    assert cut_at_answer_end(tokenizer, line[:-1]) == line[:-1]  # cut by the budget: left as drawn


def test_constrained_samples_are_token_ids_inside_each_questions_grammar(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s.data import load_text2sql
    from t2s.decoding.constrained import grammar_for, scope_for
    from t2s.decoding.generation import sample_completion_ids
    from t2s.decoding.settings import GenerationSettings

    from .spider_fixture import build_spider_layout

    data = load_text2sql(str(build_spider_layout(tmp_path / "spider")), "dev")
    examples = [data[i] for i in range(4) for _ in range(3)]  # 3 samples of each of 4 questions
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    grammars = [grammar_for(ex) for ex in examples]
    settings = GenerationSettings(max_new_tokens=12, batch_size=5, temperature=1.0, top_k=0)
    torch.manual_seed(0)
    ids = sample_completion_ids(
        model, tokenizer, [ex["prompt"] for ex in examples], settings, grammars, [scope_for(ex) for ex in examples]
    )
    assert len(ids) == len(examples)
    for row, grammar in zip(ids, grammars, strict=True):
        assert row and (row[-1] == tokenizer.eos_token_id or len(row) == 12)
        assert _grammatical(tokenizer, grammar, row)
    assert len({tuple(r) for r in ids}) > 1  # sampled, not one greedy answer repeated
    with pytest.raises(ValueError, match="one sample per prompt"):
        sample_completion_ids(model, tokenizer, ["x"], GenerationSettings(temperature=0.0))


def test_grpo_samples_under_the_column_scoped_grammar(tiny_model, sft_adapter, tmp_path, monkeypatch):
    """GRPO on a Spider-layout dataset with constrained_sampling and scoped_columns: TRL trains on the completions
    t2s's rollout drew, every one inside its question's grammar, and the run record says how they were drawn."""
    from transformers import AutoTokenizer

    import t2s.training.grpo_run as grpo_run
    from t2s.decoding.constrained import grammar_for
    from t2s.grpo import cli

    from .spider_fixture import build_spider_layout

    drawn = []

    class Recording(grpo_run.ConstrainedRollout):
        def __call__(self, prompts, trainer):
            out = super().__call__(prompts, trainer)
            drawn.extend(zip(prompts, out["completion_ids"], strict=True))
            return out

    monkeypatch.setattr(grpo_run, "ConstrainedRollout", Recording)
    spider = build_spider_layout(tmp_path / "spider")
    out = tmp_path / "adapter"
    trainer = cli([
        str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--output_dir", str(out),
        "--dataset_name", str(spider), "--dataset_train_split", "train", "--constrained_sampling", "true",
        "--scoped_columns", "true", "--max_completion_length", "10",
    ])  # fmt: skip
    assert trainer.state.global_step == 2
    assert len(drawn) == 8  # one generation round of generation_batch_size completions serves both steps
    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)
    grammars = {ex["prompt"]: grammar_for(ex) for ex in trainer.train_dataset}
    assert all(_grammatical(tokenizer, grammars[prompt], ids) for prompt, ids in drawn)
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["sampling"] == "column-scoped constrained"
    assert any("reward" in entry for entry in run["loss_history"])
    assert any(entry.get("rollout/seconds", 0) > 0 for entry in run["loss_history"])  # the sampling time, per step
    # the rollout log holds every scored completion: 8, in 2 groups of 4, one line per completion
    from t2s.training.grpo_report import group_summary, main, read_rollouts

    rollouts = read_rollouts(out)
    assert len(rollouts) == 8 and {line["step"] for line in rollouts} == {1}
    groups = group_summary(rollouts)
    assert groups["groups"] == 2 and groups["completions_per_group"] == 4
    summary = main([str(out)])
    assert summary["groups"] == groups and summary["generation_rounds"] == 1


def test_group_summary_reads_the_last_start_of_each_step_and_sorts_groups_by_signal(tmp_path):
    from t2s.training.grpo_report import group_summary, read_rollouts

    def lines(start, step, example_id, rewards):
        return [{"start": start, "step": step, "example_id": example_id, "reward": r, "sql": "x"} for r in rewards]

    first = lines("a", 1, "q1", [1.0, 0.1]) + lines("a", 1, "q2", [0.1, 0.1]) + lines("a", 2, "q3", [0.0, 0.0])
    resumed = lines("b", 2, "q3", [1.0, 1.0]) + lines("b", 3, "q1", [0.1, 0.1])  # step 2 redone after a resume
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in first + resumed))
    rollouts = read_rollouts(tmp_path)
    assert [x["start"] for x in rollouts if x["step"] == 2] == ["b", "b"]
    summary = group_summary(rollouts)
    assert summary["groups"] == 4 and summary["share_without_signal"] == 0.75
    assert summary["all_right"] == 0.25 and summary["all_wrong_but_run"] == 0.5 and summary["all_failing"] == 0.0
    assert summary["mean_group_reward_std"] == pytest.approx(0.45 / 4)
    assert summary["questions"] == 3 and summary["questions_never_with_signal"] == pytest.approx(2 / 3)


def test_constrained_sampling_settings_are_checked(sft_adapter, tmp_path):
    from types import SimpleNamespace

    from t2s.grpo import cli
    from t2s.runtime import UserError
    from t2s.training.grpo_run import train_grpo
    from t2s.training.training_arguments import GRPOArguments

    with pytest.raises(ValueError, match="scoped_columns works inside constrained sampling"):
        cli([str(TINY_GRPO_RECIPE), "--sft_adapter", str(sft_adapter), "--scoped_columns", "true"])
    # vLLM would sample without the grammar: refused before anything loads (on a GPU machine, where use_vllm passes)
    args = GRPOArguments(dataset_name="tests/fixtures/wikisql", constrained_sampling=True)
    with pytest.raises(UserError, match="not through vLLM"):
        train_grpo(args, SimpleNamespace(use_vllm=True, output_dir=str(tmp_path)), None)
    # sampling settings the constrained sampler does not apply are refused, not ignored
    with pytest.raises(UserError, match="repetition_penalty would be ignored"):
        train_grpo(args, SimpleNamespace(use_vllm=False, repetition_penalty=1.2, output_dir=str(tmp_path)), None)
