"""Zipformer temporal encoder (paper Appendix D.1; after k2-fsa/icefall zipformer.py, scaling.py).

    encoder = ZipformerEncoder(width=256, depth=4, dropout=0.1)
    h = encoder(x, mask)      # x (B, T, width), mask (B, T) True = valid prefix -> (B, T, width)

Formulation: the paper's simpler pre-BiasNorm block (eq. 6), not icefall's full layer:

    h1 = Bypass(x,  x  + MHSA(BiasNorm(x)))
    h2 = Bypass(h1, h1 + Conv(BiasNorm(h1)))      # GLU in, depthwise conv, SwooshR, out
    h3 = Bypass(h2, h2 + FFN(BiasNorm(h2)))       # hidden 3 * width, SwooshL

`depth` is the number of stacks, each of LAYERS_PER_STACK = 2 blocks, run one after the other
at the downsampling factors FACTORS[depth]: 1 -> (1,), 2 -> (1, 2), 3 -> (1, 2, 1),
4 -> (1, 2, 4, 2), chosen for T = 10..30. A stack with factor d > 1 downsamples with learned
softmax weights over each window of d steps (init equal = mean), runs its blocks, upsamples by
repetition and merges with its input through a Bypass at full resolution. A final BiasNorm
normalises the output.

Departures from icefall: one width for every stack (no per-stack dims or channel conversion);
one attention per block with a learned relative-position bias (distances clipped to +-MAX_REL)
instead of shared attention weights, non-linear attention and compact relative positional
encodings; one FFN and one conv module per block; no Balancer/Whitener, ScaledAdam or
straight-through bypass; conv kernel 15 // factor (15, 7, 3: the same span in input steps);
output projections scaled to OUT_INIT_SCALE of default init. Parameter limits (BiasNorm
log-scale in [-1.5, 1.5], Bypass scale in [scale_min(step), 1]) clamp the value and block
only the gradient that would push a parameter further outside, like icefall's
limit_param_value, so every parameter gets a gradient from the first step. scale_min falls
0.9 -> 0.2 over WARMUP_STEPS training forward calls (icefall: 20000 batches; this pipeline
trains for tens to ~1000 steps); unlike icefall, evaluation applies the same limit at the
step training reached, so eval and training compute the same function.

Padding: padded inputs are zeroed, attention masks padded keys, conv inputs are zeroed at
padded steps (equal to the conv's own zero edge padding), downsampling windows start at t = 0
and renormalise their weights over valid steps only. Outputs at valid steps of a row thus
depend only on that row's valid steps (eval mode); padded outputs are finite but arbitrary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import attention_kernel
from .act_dropout import act_dropout
from .bias_norm import bias_norm
from .conv import DepthwiseConv1d
from .dropout import Dropout
from .padding import fill_padded
from .residual import residual_dropout
from .swoosh import SWOOSH_L, swoosh_r

FACTORS = {1: (1,), 2: (1, 2), 3: (1, 2, 1), 4: (1, 2, 4, 2)}
LAYERS_PER_STACK = 2
KERNEL = 15
MAX_REL = 31
FF_MULT = 3
OUT_INIT_SCALE = 0.1
WARMUP_STEPS = 200


class _Limit(torch.autograd.Function):
    """clamp(p, lo, hi) forward; backward passes the gradient except where p lies outside
    [lo, hi] and a descent step would move it further out. lo and hi: numbers or tensors.

    A Zipformer step applies it 13 times to parameters of one to `width` values, so its
    cost is its op count: it keeps p - clamp(p), negative below the range and positive
    above, and blocks where that times the gradient is negative (3 ops back, not 6)."""

    @staticmethod
    def forward(ctx, p, lo, hi):
        out = p.clamp_min(lo).clamp_max(hi)
        ctx.save_for_backward(p - out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (excess,) = ctx.saved_tensors
        return grad.masked_fill(excess * grad < 0, 0.0), None, None


def limit(p: torch.Tensor, lo, hi) -> torch.Tensor:
    return _Limit.apply(p, lo, hi)


def small_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.mul_(OUT_INIT_SCALE)
        layer.bias.mul_(OUT_INIT_SCALE)
    return layer


class BiasNorm(nn.Module):
    """y = x * exp(g) / sqrt(mean_c((x - b)^2) + eps); b per channel (init 0), g scalar
    (init 1.0 as in icefall, limited to [-1.5, 1.5])."""

    def __init__(self, width: int, eps: float = 1e-6, log_scale_limit: float = 1.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(width))
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.eps, self.log_scale_limit = eps, log_scale_limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = limit(self.log_scale, -self.log_scale_limit, self.log_scale_limit)
        return bias_norm(x, self.bias, g, self.eps)


class Bypass(nn.Module):
    """out = x + c * (y - x); c per channel (init 0.5), limited to [scale_min(step), 1],
    scale_min falling linearly start -> end over `warmup` training forward calls (counted
    in the `step` buffer). Departure from icefall: the limit applies in eval too, with
    the schedule where training left it, so a short run (tens of steps, still inside
    the warm-up) is evaluated with the model it trained, not with the raw c."""

    def __init__(self, width: int, warmup: int = WARMUP_STEPS, start=0.9, end=0.2):
        super().__init__()
        self.scale = nn.Parameter(torch.full((width,), 0.5))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.warmup, self.start, self.end = warmup, start, end

    def scale_min(self) -> torch.Tensor:
        frac = (self.step.float() / max(self.warmup, 1)).clamp(max=1.0)
        return self.start + (self.end - self.start) * frac

    def effective_scale(self) -> torch.Tensor:
        return limit(self.scale, self.scale_min(), 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.residual(x, y - x)

    def residual(self, x: torch.Tensor, delta: torch.Tensor, drop: Dropout | None = None):
        """forward(x, x + drop(delta)) = x + c * drop(delta), in one fused op (a
        sub-layer's output is its delta, so the block never forms x + delta only to
        subtract x again; with the sub-layer's dropout, residual.py's one pass)."""
        c = self.effective_scale()
        if self.training:
            self.step += 1
        if drop is None:
            return torch.addcmul(x, c, delta)
        return residual_dropout(x, delta, c, drop)


class Downsample(nn.Module):
    """(B, T, C) -> (B, ceil(T / d), C): softmax(logits)-weighted sum over each window of d
    steps, renormalised over the window's valid steps; the window mask is any-valid."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor
        self.logits = nn.Parameter(torch.zeros(factor))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, width = x.shape
        pad = (-steps) % self.factor
        x = F.pad(fill_padded(x, ~mask.unsqueeze(-1), 0.0), (0, 0, 0, pad))
        valid = F.pad(mask, (0, pad), value=False).view(batch, -1, self.factor)
        any_valid = valid.any(-1)
        use = valid | ~any_valid.unsqueeze(-1)  # a fully padded window: plain weights on zeros
        weights = self.logits.masked_fill(~use, float("-inf")).softmax(-1)
        x = x.view(batch, -1, self.factor, width)
        return (weights.unsqueeze(-1) * x).sum(2), any_valid


def attention_reference(qkv, rel_bias, mask, heads: int) -> torch.Tensor:
    """Self-attention with a relative-position bias, in PyTorch: qkv (B, T, 3 H d) the
    fused projection, rel_bias (H, 2 R + 1) per distance clipped to +-R, mask bool (B, T)
    True = valid key -> (B, T, H d). The fallback of `attention_kernel.fused_attention`
    (CPU float32), and what that kernel is tested against."""
    batch, steps, width3 = qkv.shape
    max_rel = (rel_bias.shape[1] - 1) // 2
    q, k, v = qkv.view(batch, steps, 3, heads, -1).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    pos = torch.arange(steps, device=qkv.device)
    rel = (pos.unsqueeze(0) - pos.unsqueeze(1)).clamp(-max_rel, max_rel) + max_rel
    scores = scores + rel_bias[:, rel]
    scores = fill_padded(scores, ~mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, steps, width3 // 3)


class SelfAttention(nn.Module):
    """Returns the sub-layer's output before its dropout (`self.dropout`), which the block
    applies with the Bypass in one pass (as ConvModule and FeedForward)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * MAX_REL + 1))
        self.out = small_linear(width, width)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        use_kernel = attention_kernel.available(qkv)
        attend = attention_kernel.fused_attention if use_kernel else attention_reference
        return self.out(attend(qkv, self.rel_bias, mask, self.heads))


class ConvModule(nn.Module):
    """GLU in-projection, padded steps zeroed, depthwise conv, SwooshR, out-projection;
    its dropout is the block's to apply (see SelfAttention)."""

    def __init__(self, width: int, kernel: int, dropout: float):
        super().__init__()
        self.in_proj = nn.Linear(width, 2 * width)
        self.depthwise = DepthwiseConv1d(width, kernel, padding=kernel // 2)
        self.out = small_linear(width, width)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = fill_padded(F.glu(self.in_proj(x), dim=-1), ~mask.unsqueeze(-1), 0.0)
        x = self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        return self.out(swoosh_r(x))


class FeedForward(nn.Module):
    """Hidden layer (SwooshL, its own dropout fused in) and out-projection; the dropout of
    the output is the block's to apply (see SelfAttention)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.hidden = nn.Linear(width, FF_MULT * width)
        self.out = small_linear(FF_MULT * width, width)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # = dropout(swoosh_l(hidden(x))), the bias and dropout fused into the activation
        hidden = act_dropout(F.linear(x, self.hidden.weight), self.hidden.bias, SWOOSH_L,
                             self.dropout)  # fmt: skip
        return self.out(hidden)


class ZipformerBlock(nn.Module):
    """Paper eq. 6: MHSA, conv and FFN sub-layers, each pre-BiasNorm and wrapped in a Bypass."""

    def __init__(self, width: int, heads: int, kernel: int, dropout: float):
        super().__init__()
        self.norms = nn.ModuleList(BiasNorm(width) for _ in range(3))
        self.bypasses = nn.ModuleList(Bypass(width) for _ in range(3))
        self.attn = SelfAttention(width, heads, dropout)
        self.conv = ConvModule(width, kernel, dropout)
        self.ff = FeedForward(width, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        sublayers = (
            (lambda h: self.attn(h, mask), self.attn.dropout),
            (lambda h: self.conv(h, mask), self.conv.dropout),
            (self.ff, self.ff.dropout),
        )
        for norm, bypass, (sublayer, drop) in zip(self.norms, self.bypasses, sublayers,
                                                   strict=True):  # fmt: skip
            # = bypass(x, x + drop(sublayer(norm(x))))
            x = bypass.residual(x, sublayer(norm(x)), drop)
        return x


class Stack(nn.Module):
    """Blocks at 1 / factor of the input rate; with factor > 1: learned downsampling,
    upsampling by repetition and a Bypass merge with the stack's input."""

    def __init__(self, width: int, factor: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.factor = factor
        kernel = max(3, (KERNEL // factor) | 1)
        self.blocks = nn.ModuleList(
            ZipformerBlock(width, heads, kernel, dropout) for _ in range(layers)
        )
        if factor > 1:
            self.down = Downsample(factor)
            self.merge = Bypass(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            for block in self.blocks:
                x = block(x, mask)
            return x
        y, small_mask = self.down(x, mask)
        for block in self.blocks:
            y = block(y, small_mask)
        y = y.repeat_interleave(self.factor, dim=1)[:, : x.shape[1]]
        return self.merge(x, y)


class ZipformerEncoder(nn.Module):
    def __init__(self, width: int, depth: int, dropout: float):
        super().__init__()
        if depth not in FACTORS:
            raise ValueError(f"depth must be one of {sorted(FACTORS)}, got {depth}")
        heads = min(8, max(1, width // 32))
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.factors = FACTORS[depth]
        self.stacks = nn.ModuleList(
            Stack(width, f, LAYERS_PER_STACK, heads, dropout) for f in self.factors
        )
        self.norm = BiasNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: float (B, T, width); mask: bool (B, T), True = valid step, a prefix of each row
        with >= 1 valid step. Returns (B, T, width)."""
        x = fill_padded(x, ~mask.unsqueeze(-1), 0.0)
        for stack in self.stacks:
            x = stack(x, mask)
        return self.norm(x)
