"""Drop one harmless warning that every command would otherwise print first.

peft imports bitsandbytes at import time, and bitsandbytes 0.50 on a CPU with AVX-512 BF16 then tries
to fetch an optional 4-bit GEMM kernel through the `kernels` package and logs "Failed to load CPU
gemm_4bit_forward from kernels-community: No module named 'kernels'…". Nothing is wrong: 4-bit layers
fall back to bitsandbytes' own CPU code, and t2s only uses 4-bit on a CPU in tests. This module is
imported before anything else (ruff's isort puts it first, see pyproject.toml) and filters that one
message; every other bitsandbytes message still shows.
"""

import logging


class _DropMissingKernelsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward" not in record.getMessage()


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropMissingKernelsWarning())
