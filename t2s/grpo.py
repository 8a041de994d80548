r"""Reinforcement learning after SFT: TRL's GRPOTrainer with execution accuracy as the reward.

    accelerate launch --config_file accelerate_configs/cpu.yaml t2s/grpo.py recipes/smollm2-135m/wikisql/grpo_cpu.yaml
    accelerate launch --config_file accelerate_configs/single_gpu_bf16.yaml t2s/grpo.py \
        recipes/qwen2.5-coder-7b/spider/grpo.yaml
    t2s grpo recipes/smollm2-135m/wikisql/grpo_cpu.yaml --max_steps 4 --output_dir outputs/try   # any field overrides

A recipe YAML sets fields of t2s's GRPOArguments, TRL's GRPOConfig and TRL's ModelConfig (recipes/README.md).
"""

from t2s.runtime import run_command


def cli(argv=None):
    from t2s.training.recipe import train_from_command

    return train_from_command("grpo", argv, __doc__)


if __name__ == "__main__":
    run_command(cli)
