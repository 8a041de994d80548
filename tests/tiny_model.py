"""A tiny random Llama and a tokenizer trained in-process on the fixtures: real code paths in seconds, offline."""

from pathlib import Path

from .conftest import FIXTURES


def _corpus():
    from t2s.data import load_wikisql

    ds = load_wikisql(FIXTURES, "dev")
    return [ex["prompt"] + ex["completion"] for ex in ds] * 4


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>"
    )


def save_tiny_model(path: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_sentencepiece_tokenizer():
    """A Gemma-shaped tokenizer, built as Gemma 3's `tokenizer.json` is: spaces normalised to `▁` and kept inside the
    pieces, BPE over whole texts, a decoder that turns `▁` back into spaces, a `<bos>` added in front of every text,
    `<eos>` and `<pad>`.

    Trained on prompts and SQL apart: Gemma 3's own tokenizer keeps every Spider prompt a token prefix of prompt + SQL
    (measured on 1,148 train and dev examples), and a tiny vocabulary trained on the joined texts would learn pieces
    that straddle the boundary (`SQL:\nSELECT`), which Gemma's has not."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from t2s.data import load_wikisql

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    ds = load_wikisql(FIXTURES, "dev")
    texts = [text for ex in ds for text in (ex["prompt"], ex["completion"])] * 4
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"])
    # SentencePiece learns pieces that start at a `▁`; split there for training only, then keep Gemma's pre-tokenizer
    # (a split at " ", which the normaliser has already replaced: whole texts go to BPE)
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    tok.train_from_iterator(texts, trainer)
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def save_tiny_gemma3(path: Path, seed: int = 0, sliding_window: int = 8) -> Path:
    """A tiny random Gemma 3 (sliding-window layers beside full-attention ones, as Gemma 3 270M has them) with a
    SentencePiece-style tokenizer: the code paths `embedded:gemma3-270m` takes, in seconds. The window is far shorter
    than the fixtures' prompts, so the sliding layers do drop positions."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = build_sentencepiece_tokenizer()
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    Gemma3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
