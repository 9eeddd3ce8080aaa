"""A GPT-2-style decoder after karpathy/nanoGPT: the LASER paper's WikiText-103 model.

Pre-norm transformer blocks ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))`` with causal multi-head
self-attention and a 4x GELU MLP; learned position embeddings; no biases in Linear or LayerNorm;
the output head shares its weight with the token embedding. Parameter names follow nanoGPT
(``transformer.h.{i}.attn.c_attn``, ...), so its checkpoints and the reference code's per-layer
rules (LASER's shape rule, weight decay on Linear weights only) map one to one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["GPT", "padded_vocab"]

if TYPE_CHECKING:

    class _Transformer(nn.ModuleDict):
        """``GPT.transformer`` for the type checker: an ``nn.ModuleDict`` whose submodules it names
        (``nn.Module.__getattr__`` is typed ``Tensor | Module``)."""

        wte: nn.Embedding
        wpe: nn.Embedding
        drop: nn.Dropout
        h: nn.ModuleList
        ln_f: nn.LayerNorm

else:
    _Transformer = nn.ModuleDict  # at run time: the plain ModuleDict


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (nanoGPT pads GPT-2's 50,257 BPE
    tokens to 50,304 for faster matrix multiplies; the extra rows are never targets).

    >>> padded_vocab(50257)
    50304
    """
    return -(-vocab_size // multiple) * multiple


class CausalSelfAttention(nn.Module):
    """``softmax(Q K^T / sqrt(d_head) + causal mask) V`` over ``heads`` heads, then a projection.

    Input and output ``[B, T, width]``.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.c_attn = nn.Linear(width, 3 * width, bias=False)  # query, key, value of all heads
        self.c_proj = nn.Linear(width, width, bias=False)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """``c_proj(gelu(c_fc(x)))`` with a hidden width of ``4 * width``; input and output ``[B, T, width]``."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.c_proj = nn.Linear(4 * width, width, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=False)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln_2 = nn.LayerNorm(width, bias=False)
        self.mlp = MLP(width, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only transformer language model (nanoGPT's ``GPT`` with ``bias=False``).

    ``logits = ln_f(blocks(wte[idx] + wpe[0..T-1])) wte^T``, where the head's weight *is* the token
    embedding (one tensor, counted once). Weights are drawn N(0, 0.02), except the two residual
    projections of each block (``attn.c_proj``, ``mlp.c_proj``) at N(0, 0.02 / sqrt(2 layers)) so
    that the residual stream's variance does not grow with depth (GPT-2's scheme); LayerNorm scales
    start at 1. The paper's setting is ``GPT(padded_vocab(50257), context=512, layers=12,
    heads=12, width=768, dropout=0.2)``: 123,980,544 parameters in 75 tensors.

    Args:
        vocab_size: number of token ids (rows of the embedding and of the logits).
        context: longest sequence (rows of the position embedding).
        layers: number of transformer blocks.
        heads: attention heads per block; must divide ``width``.
        width: embedding width.
        dropout: dropout probability on the embeddings, the attention weights and the residual
            branches (training mode only).

    Input: token ids ``[B, T]`` (int64, ``T <= context``); output: logits ``[B, T, vocab_size]``
    (the parameters' dtype), position t depending only on tokens ``0..t``.

    >>> model = GPT(vocab_size=32, context=8, layers=2, heads=2, width=16)
    >>> model(torch.zeros(3, 5, dtype=torch.long)).shape
    torch.Size([3, 5, 32])
    >>> model.lm_head.weight is model.transformer.wte.weight
    True
    """

    def __init__(
        self, vocab_size: int, context: int, layers: int, heads: int, width: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if width % heads != 0:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        self.context = context
        self.transformer = _Transformer(
            {
                "wte": nn.Embedding(vocab_size, width),
                "wpe": nn.Embedding(context, width),
                "drop": nn.Dropout(dropout),
                "h": nn.ModuleList([Block(width, heads, dropout) for _ in range(layers)]),
                "ln_f": nn.LayerNorm(width, bias=False),
            }
        )
        self.lm_head = nn.Linear(width, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one tensor, one gradient
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if T > self.context:
            raise ValueError(f"sequence length {T} exceeds the context length {self.context}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, width)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
