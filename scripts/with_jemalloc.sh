#!/usr/bin/env bash
# Run a command with jemalloc as its malloc: scripts/with_jemalloc.sh accelerate launch ... t2s/sft.py RECIPE
#
# Over a long CPU training run glibc's heap fragments until malloc itself takes a large share of every step (the run
# slows down as it goes) and the process holds several times what a step needs; jemalloc avoids both
# (docs/training.md, "Memory allocator"). It changes where memory comes from, never a result. jemalloc is Debian's
# libjemalloc2 (`make install` adds it), conda-forge's jemalloc, or any libjemalloc.so.2 named by T2S_JEMALLOC.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: scripts/with_jemalloc.sh COMMAND [ARGS...]" >&2
    exit 2
fi
lib=""
if [ -n "${T2S_JEMALLOC:-}" ]; then
    if [ ! -f "$T2S_JEMALLOC" ]; then
        echo "with_jemalloc: T2S_JEMALLOC=$T2S_JEMALLOC is not a file: point it at libjemalloc.so.2 or unset it" >&2
        exit 2
    fi
    lib=$T2S_JEMALLOC
else
    for candidate in \
        "$(/sbin/ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 /{print $NF; exit}')" \
        "${CONDA_PREFIX:-/nonexistent}/lib/libjemalloc.so.2" \
        /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
        /usr/local/lib/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            lib=$candidate
            break
        fi
    done
fi
if [ -z "$lib" ]; then
    echo "with_jemalloc: libjemalloc.so.2 not found. Install it (Debian/Ubuntu: apt-get install libjemalloc2;" \
         "conda: conda install -c conda-forge jemalloc) or set T2S_JEMALLOC=/path/to/libjemalloc.so.2;" \
         "or run the command without this wrapper (glibc's malloc: slower and larger on long CPU runs)." >&2
    exit 2
fi
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$@"
