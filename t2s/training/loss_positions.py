"""On a CPU, project only the positions that carry a loss through the LM head, as TRL does on GPUs.

TRL 1.16 computes the training loss with a fused LM head (`trl.trainer.utils.add_fused_lm_head`): hidden states go
through the vocabulary projection in tiles, without materialising (batch, length, vocabulary) logits. On Triton
devices (CUDA, XPU) it projects only the positions whose label is not -100; on any other device it projects every
position, so that a graph compiler (its comment names Neuron) sees the same tile shapes on every batch. A CPU running
eagerly compiles nothing, and with the loss on the SQL only, most positions are the prompt's (schema and question),
while a small model's vocabulary projection is a large share of its multiply-adds per token. Projecting the SQL positions only gives the same loss, gradients, entropy and token accuracy
(tests/test_loss_positions.py) for less work (docs/benchmarks.md, `python -m bench.bench_train`).

The switch is TRL's own: the device test it makes (`_use_triton`, looked up in `trl.trainer.utils`) answers yes for
the CPU as well. It is left alone when the run compiles the model (`torch_compile`), where fixed shapes matter.
"""

from __future__ import annotations

import trl.trainer.utils as trl_utils


def project_loss_positions_only_on_cpu(training_args) -> bool:
    """Make TRL's fused LM head skip unlabelled positions on the CPU too; True when it does."""
    if getattr(training_args, "torch_compile", False):
        return False
    device_test = trl_utils._use_triton
    if getattr(device_test, "cpu_too", False):
        return True

    def compact_on_cpu_too(device):
        return device.type == "cpu" or device_test(device)

    compact_on_cpu_too.cpu_too = True
    trl_utils._use_triton = compact_on_cpu_too
    return True
