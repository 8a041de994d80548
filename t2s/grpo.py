r"""Reinforcement learning after SFT: TRL's GRPOTrainer with execution accuracy as the reward.

    accelerate launch --config_file accelerate_configs/cpu.yaml t2s/grpo.py recipes/smollm2-135m/wikisql/grpo_cpu.yaml
    accelerate launch --config_file accelerate_configs/single_gpu_bf16.yaml t2s/grpo.py \
        recipes/qwen2.5-coder-7b/spider/grpo.yaml
    t2s grpo recipes/smollm2-135m/wikisql/grpo_cpu.yaml --max_steps 4 --output_dir outputs/try   # any field overrides

A recipe YAML sets fields of t2s's GRPOArguments, TRL's GRPOConfig and TRL's ModelConfig (recipes/README.md).
"""

from t2s.runtime import run_command


def cli(argv=None):
    # Imported here, after run_command has prepared the process: TRL and PEFT import bitsandbytes (t2s/runtime.py).
    from t2s.training.grpo_run import DATACLASSES, train_grpo
    from t2s.training.recipe import parse_training_command

    recipe, (script_args, training_args, model_args) = parse_training_command(DATACLASSES, argv, description=__doc__)
    return train_grpo(script_args, training_args, model_args, recipe)


if __name__ == "__main__":
    run_command(cli)
