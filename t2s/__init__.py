"""t2s: fine-tune language models to write SQL with TRL, and score them by executing it."""

__version__ = "0.1.0.dev0"

from t2s import quiet as _quiet  # noqa: E402,F401  (filters one harmless bitsandbytes warning; see t2s/quiet.py)
from t2s.allocator import apply_from_environment as _apply_allocator_choice  # noqa: E402

_apply_allocator_choice()  # T2S_MALLOC=mmap: less memory held, slower (t2s/allocator.py)
