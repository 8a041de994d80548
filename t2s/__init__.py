"""t2s: fine-tune language models to write SQL with TRL, and score them by executing it."""

__version__ = "0.1.0.dev0"

from t2s import quiet as _quiet  # noqa: E402,F401  (filters one harmless bitsandbytes warning; see t2s/quiet.py)
from t2s.allocator import fix_mmap_threshold as _fix_mmap_threshold  # noqa: E402

_fix_mmap_threshold()  # freed tensors go back to the system, not to a fragmenting heap (t2s/allocator.py)
