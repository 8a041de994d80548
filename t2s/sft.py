"""Fine-tune a causal LM to write SQL (WikiSQL, Spider, your own databases) with LoRA/QLoRA and TRL's SFTTrainer.

    accelerate launch --config_file accelerate_configs/cpu.yaml t2s/sft.py recipes/smollm2-135m/wikisql/sft_cpu.yaml
    accelerate launch --config_file accelerate_configs/single_gpu_fp16.yaml t2s/sft.py recipes/mistral_lora.yaml
    t2s sft recipes/smollm2-135m/wikisql/sft_cpu.yaml --max_steps 20 --output_dir outputs/try   # any field overrides

A recipe YAML sets fields of t2s's DataArguments, TRL's SFTConfig and TRL's ModelConfig (recipes/README.md).
"""

from t2s.runtime import run_command


def cli(argv=None):
    from t2s.training.recipe import train_from_command

    return train_from_command("sft", argv, __doc__)


if __name__ == "__main__":
    run_command(cli)
