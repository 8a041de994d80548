"""Generation over several processes: `accelerate launch --num_processes N t2s/evaluate_sql.py …`.

accelerate starts the processes and t2s uses its primitives only: `PartialState` says which process this is,
`split_between_processes` gives each a contiguous run of the questions, `gather_object` brings every process's
records back, and the main process alone scores and writes. The questions are split in the order the batches are
planned (`t2s.decoding.prefix_cache.plan_batches`: by database, then by length), so each process keeps the prefix
cache and continuous batching of its own questions, and a database's questions stay on one process except where a
split falls inside them.

Greedy, constrained and execution-guided SQL is the SQL of one process (tests/test_sharding.py; up to float
rounding between batch shapes, as for continuous batching). Voting's samples come from a random stream per process
(the main process's is one process's; the others are seeded with `seed + process index`), so the other processes'
samples are other draws of the same distribution than one process makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shard:
    """This process's part of the questions."""

    indices: list[int]  # positions in the dataset, ascending
    process_index: int
    num_processes: int

    @property
    def is_main(self) -> bool:
        return self.process_index == 0

    @property
    def sharded(self) -> bool:
        return self.num_processes > 1

    def label(self) -> str:
        return f"process {self.process_index + 1}/{self.num_processes}: {len(self.indices)} questions"


def process_state():
    """accelerate's view of this process (one process when not launched by accelerate or torchrun).

    Without CUDA, accelerate joins the processes it launched only when told to use the CPU (else each one believes it
    is alone, and every one would score and write): the CPU is named then, and a launch accelerate did not join is
    refused rather than run N times over."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    launched = launched_processes()
    if launched > 1 and state.num_processes != launched:
        raise RuntimeError(
            f"{launched} processes were launched (WORLD_SIZE) but accelerate joined {state.num_processes}: "
            f"{state.distributed_type} on {state.device}; launch with accelerate_configs/multi_gpu.yaml (GPUs) or "
            "multi_cpu.yaml (CPU processes)"
        )
    return state


def launched_processes() -> int:
    """How many processes `accelerate launch`/torchrun started, without starting a process group (0 or 1: one)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    """Whether this process writes: the only one, or the main one of those `accelerate launch` started."""
    return launched_processes() <= 1 or process_state().is_main_process


def shard_questions(tokenizer, prompts: Sequence[str], batch_size: int, prefix_cache: bool) -> Shard:
    """This process's questions: a contiguous run of the planned batch order, as even as accelerate splits it."""
    if launched_processes() <= 1:
        return Shard(list(range(len(prompts))), 0, 1)
    from t2s.decoding.prefix_cache import plan_batches
    from t2s.decoding.settings import prepare_tokenizer

    prepare_tokenizer(tokenizer)
    state = process_state()
    order = [i for idx, _ in plan_batches(tokenizer, list(prompts), batch_size, prefix_cache) for i in idx]
    with state.split_between_processes(order) as mine:
        return Shard(sorted(mine), state.process_index, state.num_processes)


def gather_in_order(shard: Shard, items: Sequence[Any]) -> list[Any]:
    """Every process's `items` (one per question of its shard), in dataset order, on every process."""
    if not shard.sharded:
        return list(items)
    from accelerate.utils import gather_object

    if len(items) != len(shard.indices):
        raise ValueError(f"{len(items)} results for the {len(shard.indices)} questions of {shard.label()}")
    pairs = gather_object(list(zip(shard.indices, items)))
    return [item for _, item in sorted(pairs, key=lambda pair: pair[0])]


def gather_max(shard: Shard, value: float) -> float:
    """The largest of every process's `value` (the wall time of work done side by side)."""
    if not shard.sharded:
        return value
    from accelerate.utils import gather_object

    return max(gather_object([value]))
