"""RetNet temporal encoder (paper Appendix D.2), parallel form, non-causal.

    encoder = RetNetEncoder(width=256, depth=2, dropout=0.1)
    h = encoder(x, mask)      # x (B, T, width); mask (B, T) bool, True = valid prefix

Reference: microsoft/torchscale, component/multiscale_retention.py and the RetNetRelPos
of architecture/retnet.py. Multi-scale retention, per head h with key dim d:
    Q = RoPE(x W_Q),  K = RoPE(x W_K) / sqrt(d),  V = x W_V,  G = x W_G
    D[n, m] = gamma_h^|n - m| * valid[m];   D <- D / sqrt(D.sum(-1))        (rows scaled)
    R = (Q K^T) * D;   R <- R / clamp(|R|.sum(-1), min=1)     (detached, as the reference)
    MSR(x) = W_O(swish(G + b_G) * RMSNorm_per_head(R V))    (RMS norm without affine)
Block (pre-norm): x = x + drop(MSR(LN(x))); x = x + drop(FFN(LN(x))), FFN = Linear-GELU-
Linear. Encoder: `depth` blocks and a final LayerNorm. Sizes follow the RetNet paper:
value and gate dim 2*width, FFN hidden 2*width; heads = min(width // 32, 8) (>= 1).
The core from RoPE to the RMS norm is `retention_parallel`; on a CPU it runs as one C
kernel (models/retention_kernel.py), and without padding the decay matrix is made once
per clip length.

Departures from the reference (a causal language model):
- Non-causal decay D[n, m] = gamma^|n - m| (bidirectional): a clip is classified whole.
- Decays. The reference gamma_h = 1 - 2^-(5+h) has effective horizons 1/(1 - gamma) of
  32..4096 steps, so at T = 10..30 every head is near-global. Here the gammas are FIXED
  (a buffer) with horizons 1/(1 - gamma_h) log-spaced from 2 to 20 steps (gamma 0.5 ..
  0.95; 20 = the paper's clip length); with 8 heads: 2.0, 2.8, 3.9, 5.4, 7.5, 10.4, 14.4,
  20. At T = 20 the share of a middle row's weight within 2 steps then falls from 0.83
  (first head) to 0.30 (last; uniform would be 0.25). Fixed rather than learned so that
  weight decay cannot drag them and runs of the search stay comparable.
- The |R| normaliser is the sum of |R| over a row (the reference's chunkwise form; its
  parallel form takes |sum R|). Only matters for rows whose sum exceeds 1.
- Padding: keys and values at padded steps are zeroed and get zero decay weight, so they
  enter neither R V nor either row normalisation. Positions count from 0 on the valid
  prefix, so the RoPE phases do not depend on T either: outputs at valid steps depend on
  x[b, :L_b] only. Outputs at padded steps are finite but meaningless.
- Plain RoPE (half-split, base 10000), no xPos scaling (as the current reference).
- Small init on the output projections (W_O and the FFN's last layer, xavier gain 0.1);
  W_Q, W_K, W_V use the reference's xavier gain 2^-2.5.
- Open-gate init (shared with BiMamba and xLSTM, `GATE_OPEN`): the swish output gate gets a
  bias b_G (the reference has none), W_G starts at zero and b_G at swish^-1(1) = 1.2785, so
  the gate starts at exactly 1 and the block starts as plain retention; the per-step
  multiplicative interaction swish(x_t W_G) * retained(x) is learned from zero. With the
  reference init (xavier gain 2^-2.5, no bias) the gate is ~x_t W_G / 2 from the first step,
  the branch is a product of the current frame and its context, and on the synthetic task
  (frame appearance generalises poorly, change over time well) the models fitted frame
  appearance. Measured on the embedded default's stores (dinov3_b, width 64, depth 1, last
  pooling, 15 epochs, 5 seeds, test AP mean +- sd; the same seeds with either init):
  RetNet 0.63 +- 0.06 -> 0.70 +- 0.06, BiMamba 0.65 +- 0.08 -> 0.84 +- 0.03, xLSTM
  0.63 +- 0.02 -> 0.77 +- 0.03, Hybrid 0.72 +- 0.09 -> 0.77 +- 0.06; Zipformer, which has
  no such gate, 0.77 either way; a plain GRU 0.87 +- 0.02, the linear probe 0.82 +- 0.02.

Known limitation on the embedded task: RetNet trails BiMamba by 0.14 test AP in 10-fold
cross-validation (0.69 against 0.82). Its fixed per-head decays make it, at depth 1 with
`last` pooling, one content-weighted average read from the last step; no knob of the
space, head count, norm, RoPE base or an added short convolution closed the gap (the
README's quality section has the numbers). A data-dependent decay would be another model.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import retention_kernel
from .act_dropout import GELU, act_dropout
from .dropout import Dropout
from .padding import fill_padded, skip_padding

MIN_HORIZON, MAX_HORIZON = 2.0, 20.0
GATE_OPEN = 1.2785  # swish(1.2785) = 1.000: output gates start fully open (see docstring)
ROPE_BASE = 10000.0


def head_count(width: int) -> int:
    """width // 32 capped at 8 (at least 1), lowered until it divides width."""
    heads = max(1, min(8, width // 32))
    while width % heads or (width // heads) % 2:
        heads -= 1
    return heads


def head_log_gammas(heads: int) -> torch.Tensor:
    """log(gamma_h) with horizons 1 / (1 - gamma_h) log-spaced over [2, 20] steps."""
    if heads == 1:
        horizons = torch.tensor([math.sqrt(MIN_HORIZON * MAX_HORIZON)], dtype=torch.float64)
    else:
        lo, hi = math.log10(MIN_HORIZON), math.log10(MAX_HORIZON)
        horizons = torch.logspace(lo, hi, heads, dtype=torch.float64)
    return torch.log1p(-1.0 / horizons).float()


def decay_matrix(log_gamma: torch.Tensor, mask: torch.Tensor, normalise: bool = True):
    """(H,) log-decays and a (B, T) valid mask -> (B, H, T, T) with D[n, m] = gamma^|n - m|
    on valid keys m and 0 on padded keys; rows scaled by 1 / sqrt(row sum) if `normalise`."""
    steps = torch.arange(mask.shape[1], device=mask.device)
    distance = (steps[:, None] - steps[None, :]).abs().to(log_gamma.dtype)
    decay = torch.exp(distance * log_gamma[:, None, None]).unsqueeze(0)
    decay = decay * mask[:, None, None, :].to(decay.dtype)
    if normalise:  # valid rows sum to >= 1 (the diagonal); the clamp only guards padded rows
        decay = decay / decay.sum(-1, keepdim=True).clamp_min(1e-30).sqrt()
    return decay


def rotary(x: torch.Tensor) -> torch.Tensor:
    """Plain RoPE on (B, H, T, d), positions 0..T-1: pair (i, i + d/2) is turned by
    angle t * base^(-i / (d/2))."""
    half = x.shape[-1] // 2
    cos, sin = rotary_angles(x.shape[-2], half, x.device, x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


@functools.cache
def rotary_angles(steps: int, half: int, device: torch.device, dtype: torch.dtype):
    """RoPE's (T, d/2) cosines and sines, made once per shape."""
    freqs = ROPE_BASE ** (-torch.arange(half, device=device, dtype=dtype) / half)
    angle = torch.arange(steps, device=device, dtype=dtype)[:, None] * freqs
    return angle.cos(), angle.sin()


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def retention_parallel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, heads: int
) -> torch.Tensor:
    """The retention core in PyTorch: q, k (B, T, H d) and v (B, T, H e) as projected,
    decay (1 or B, H, T, T) from `decay_matrix` -> RMSNorm_per_head(R V) (B, T, H e)."""
    batch, steps = q.shape[:2]

    def split(x):  # (B, T, H*e) -> (B, H, T, e)
        return x.view(batch, steps, heads, -1).transpose(1, 2)

    q, k = rotary(split(q)), rotary(split(k)) * (q.shape[-1] // heads) ** -0.5
    retention = (q @ k.transpose(-1, -2)) * decay
    scale = retention.detach().abs().sum(-1, keepdim=True).clamp(min=1.0)
    out = rms_norm((retention / scale) @ split(v))
    return out.transpose(1, 2).reshape(batch, steps, -1)


def retention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, heads: int
) -> torch.Tensor:
    """`retention_parallel`; on a CPU, the C kernel of models/retention_kernel.py."""
    if retention_kernel.available(q, k, v, decay):
        cos, sin = rotary_angles(q.shape[1], q.shape[2] // heads // 2, q.device, q.dtype)
        return retention_kernel.fused_retention(q, k, v, cos, sin, decay, heads)
    return retention_parallel(q, k, v, decay, heads)


class MultiScaleRetention(nn.Module):
    """Gated multi-scale retention, parallel form, non-causal; (B, T, width) -> same."""

    def __init__(self, width: int, heads: int | None = None):
        super().__init__()
        self.heads = heads or head_count(width)
        self.key_dim = width // self.heads
        self.value_dim = 2 * width
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, self.value_dim, bias=False)
        self.g_proj = nn.Linear(width, self.value_dim, bias=False)
        self.out_proj = nn.Linear(self.value_dim, width, bias=False)
        self.g_bias = nn.Parameter(torch.full((self.value_dim,), GATE_OPEN))
        self.register_buffer("log_gamma", head_log_gammas(self.heads))
        self.unpadded_decay: tuple | None = None  # see `decay`
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-2.5)
        nn.init.zeros_(self.g_proj.weight)  # open-gate init: swish(0 + GATE_OPEN) = 1
        nn.init.xavier_uniform_(self.out_proj.weight, gain=0.1)

    def decay(self, mask: torch.Tensor) -> torch.Tensor:
        """`decay_matrix` for this mask; without padding it depends on T alone, and the
        one (1, H, T, T) matrix is kept per T rather than made for every row."""
        if not skip_padding(self.log_gamma, ~mask):
            return decay_matrix(self.log_gamma, mask)
        # Made anew for another T, or for other gammas: .to() and .double() replace the
        # buffer (a new tensor), an edit in place bumps its _version.
        gammas, kept = self.log_gamma, self.unpadded_decay
        if kept is None or kept[:3] != (mask.shape[1], gammas._version, id(gammas)):
            # The entry holds the gammas tensor itself, so its id cannot be reused.
            kept = (mask.shape[1], gammas._version, id(gammas), gammas,
                    decay_matrix(gammas, mask[:1]))  # fmt: skip
            self.unpadded_decay = kept
        return kept[-1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padded = ~mask.unsqueeze(-1)
        k = fill_padded(self.k_proj(x), padded, 0.0)
        v = fill_padded(self.v_proj(x), padded, 0.0)
        out = retention(self.q_proj(x), k, v, self.decay(mask), self.heads)
        return self.out_proj(F.silu(self.g_proj(x) + self.g_bias) * out)


class RetentionBlock(nn.Module):
    """Pre-norm residual block: multi-scale retention, then a GELU feed-forward."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.retention_norm = nn.LayerNorm(width)
        self.retention = MultiScaleRetention(width)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, 2 * width),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(2 * width, width),
        )
        nn.init.xavier_uniform_(self.ffn[-1].weight, gain=0.1)
        nn.init.zeros_(self.ffn[-1].bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.retention(self.retention_norm(x), mask))
        hidden_layer, _, drop, out = self.ffn
        # = self.ffn(h): the hidden bias, GELU and dropout in one pass (act_dropout)
        h = F.linear(self.ffn_norm(x), hidden_layer.weight)
        return x + self.dropout(out(act_dropout(h, hidden_layer.bias, GELU, drop)))


class RetNetEncoder(nn.Module):
    """`depth` RetentionBlocks and a final LayerNorm."""

    def __init__(self, width: int, depth: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(RetentionBlock(width, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: float (B, T, width); mask: bool (B, T), True = valid step. Valid steps are a
        PREFIX of each row (right padding), every row has >= 1 valid step. Returns (B, T, width)."""
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
