"""The process a DuckDB engine runs its untrusted queries in (`python -m t2s.execution.engines.duckdb_worker`).

DuckDB runs inside the process that queries it, and some of its functions neither look at `interrupt()` nor count
against `max_memory` (building a list from `range(25000000)` took 1.8 GB and as long as it liked). So each engine
runs its queries here: the database opened read-only with the locked configuration, a limit of `memory_mb` on the
writable memory it may add to what it holds once DuckDB is loaded (RLIMIT_DATA), `interrupt()` at the query's budget, and the rows
read and capped (bytes and rows) before they are sent back. The parent kills this process when a query outlives
twice its budget, and starts a new one for the next query.

Frames both ways are an 8-byte length and a pickle; the parent's requests are `(sql, timeout_s, max_rows)`, the
answers `("ok", columns, rows, cap)`, `("error", message)`, `("timeout", message)` or `("memory", message)`.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import struct
import sys
import threading

_HEADER = struct.Struct("<Q")


def write_frame(stream, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream):
    """The next frame, or None at the end of the stream (the other side has gone)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - frames come from the parent t2s process, over its own pipe


def _data_size() -> int:
    """What RLIMIT_DATA counts now (VmData: private writable memory), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def serve(path: str, memory_mb: int, config: dict) -> None:
    import duckdb

    from t2s.execution.rows import capped_rows

    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything DuckDB or Python prints goes to stderr, never into the frames
    try:
        conn = duckdb.connect(path, read_only=True, config=config)
    except Exception as e:  # noqa: BLE001 - told to the parent, which names the file
        write_frame(answers, ("error", str(e).splitlines()[0] if str(e) else type(e).__name__))
        return
    if memory_mb:
        # RLIMIT_DATA rather than RLIMIT_AS: each thread's malloc arena reserves 64 MB of address space it may never
        # use, which an address-space limit would count; RLIMIT_DATA counts the memory made writable.
        limit = _data_size() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    write_frame(answers, ("ready",))
    while (request := read_frame(requests)) is not None:
        sql, timeout_s, max_rows = request
        timer = threading.Timer(timeout_s, conn.interrupt)
        timer.start()
        try:
            cursor = conn.execute(sql)
            columns = [d[0] for d in cursor.description or ()]
            rows, cap = capped_rows(cursor.fetchmany, max_rows)
            answer = ("ok", columns, rows, cap)
        except duckdb.InterruptException:
            answer = ("timeout", f"ran past its {timeout_s:g} s budget")
        except (duckdb.OutOfMemoryException, MemoryError):
            answer = ("memory", f"needed more than the sandbox's {memory_mb} MB of memory")
        except Exception as e:  # noqa: BLE001 - the query's own error
            text = str(e).strip() or type(e).__name__
            memory = "memory" in text.lower() and ("allocat" in text.lower() or "out of" in text.lower())
            answer = (
                ("memory", f"needed more than the sandbox's {memory_mb} MB of memory")
                if memory
                else ("error", text.splitlines()[0])
            )
        finally:
            timer.cancel()
        try:
            write_frame(answers, answer)
        except MemoryError:
            write_frame(answers, ("memory", f"needed more than the sandbox's {memory_mb} MB of memory"))


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
