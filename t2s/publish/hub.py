"""The Hub: check before a run that a push at its end can happen, and upload a folder with its model card.

One upload function serves the trainers (`push_to_hub` in a recipe), `t2s/push.py` and `t2s/export.py
--push_to_hub`: the card is re-rendered with the repository id first, and checkpoints and prediction files stay local.
"""

from __future__ import annotations

import os
from pathlib import Path

from t2s.publish.card import write_model_card
from t2s.runtime import UserError


class HubAccessError(UserError, RuntimeError):
    """push_to_hub is set but the Hub cannot be reached or no token is available."""


def check_hub_access(push_to_hub: bool, hub_model_id: str | None) -> None:
    """Fail before training, not after it, when a push cannot happen."""
    if not push_to_hub:
        return
    stop = (
        "Nothing was trained or pushed. Set push_to_hub: false to train without pushing; push later with t2s/push.py."
    )
    if not hub_model_id:
        raise HubAccessError(f"push_to_hub is set but hub_model_id is not (e.g. hub_model_id: you/t2s-lora). {stop}")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise HubAccessError(f"push_to_hub is set but HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}. {stop}")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if token is None:
        raise HubAccessError(
            f"push_to_hub is set but no Hugging Face token was found (hf auth login or HF_TOKEN). {stop}"
        )
    try:
        HfApi().whoami(token=token)
    except Exception as e:  # network errors, expired tokens: all mean no push at the end
        raise HubAccessError(
            f"push_to_hub is set but the Hub cannot be reached or refused the token ({e}). {stop}"
        ) from None


def push_folder(output_dir: str | Path, repo_id: str, *, private: bool | None = None, merged: bool = False) -> str:
    """Upload an adapter folder (adapter, tokenizer, card, run record) or, with `merged`, an exported model."""
    from huggingface_hub import HfApi

    write_model_card(output_dir, repo_id, merged=merged)
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=private)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "*.pt", "runs/*", "predictions*.jsonl"],
        commit_message=f"Upload t2s {'merged model' if merged else 'adapter'}",
    )
    return str(commit)
