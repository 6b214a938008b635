"""One contract suite for every temporal encoder x pooling of the space:
shapes, padding invariance, gradients, determinism, batch of one, sequence
lengths 10-30, and overfitting a tiny set to train AP 1.0. Padding
invariance and gradients are also checked on each encoder alone, per step
and at every depth of the space; the encoders' own test files keep what is
particular to one encoder (its formulas, scans and building blocks)."""

from __future__ import annotations

import itertools

import pytest
import torch

from expsearch.models.classifier import ENCODERS, ClipClassifier, left_to_right
from expsearch.models.pooling import POOLINGS, Pooling

from .conftest import ROOT, dead_parameters, prefix_mask

COMBOS = list(itertools.product(ENCODERS, POOLINGS))
INPUT_DIM = 24
WIDTH = 64  # of an encoder tested alone
DEPTHS = [1, 2, 3, 4]  # the space's depths; the Zipformer's stacks differ with each


def build(encoder, pooling, width=64, depth=1, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return ClipClassifier(INPUT_DIM, encoder, pooling, width, depth, dropout)


def stored(clips: list[torch.Tensor], steps: int, fill: float = 0.0):
    """Clips as a feature store holds them: left-padded to `steps`."""
    out = torch.full((len(clips), steps, INPUT_DIM), fill)
    for row, clip in enumerate(clips):
        out[row, steps - len(clip) :] = clip
    return out, torch.tensor([len(clip) for clip in clips])


def test_the_suite_covers_the_space():
    from expsearch.params import load_params

    dims = load_params(ROOT / "params.yaml")["space"]["dimensions"]
    assert set(dims["encoder"]["values"]) == set(ENCODERS)
    assert set(dims["pooling"]["values"]) == set(POOLINGS)


def test_left_to_right_moves_valid_steps_to_the_front():
    x, lengths = stored([torch.ones(2, INPUT_DIM), 2 * torch.ones(4, INPUT_DIM)], steps=5)
    moved, mask = left_to_right(x, lengths)
    assert mask.tolist() == [[True, True, False, False, False], [True] * 4 + [False]]
    assert moved[0, :2].eq(1).all() and moved[0, 2:].eq(0).all() and moved[1, :4].eq(2).all()
    with pytest.raises(ValueError, match="lengths"):
        left_to_right(x, torch.tensor([0, 3]))
    full, mask = left_to_right(x, torch.tensor([5, 5]))  # no padding: returned as it is
    assert full is x and mask.all()


@pytest.mark.parametrize("kind", POOLINGS)
def test_pooling_ignores_padding(kind):
    torch.manual_seed(0)
    pool = Pooling(kind, 8)
    h = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    garbage = h.clone()
    garbage[0, 3:] = 1e3
    assert torch.allclose(pool(h, mask), pool(garbage, mask))
    assert torch.allclose(pool(h, mask)[0], pool(h[:1, :3], mask[:1, :3])[0], atol=1e-6)
    if kind == "last":
        assert torch.equal(pool(h, mask)[0], h[0, 2])


def _unreachable(model, pooling) -> list[str]:
    """The one structural exception: `last` pooling reads the last valid step, which is
    the FIRST step of the final layer's backward Mamba scan, where the state is still
    zero, so that scan's decay A cannot matter (h_1 = B x_1). Every other parameter
    must get a gradient."""
    if pooling != "last":
        return []
    decays = [name for name, _ in model.named_parameters() if name.endswith("bwd.A_log")]
    return decays[-1:]


def test_mean_pooling_of_an_unpadded_batch_is_the_masked_mean_exactly():
    h = torch.randn(5, 17, WIDTH, requires_grad=True)
    mask = torch.ones(5, 17, dtype=torch.bool)
    fast = Pooling("mean", WIDTH)(h, mask)
    valid = mask.unsqueeze(-1)
    assert torch.equal(fast, (h * valid).sum(1) / valid.sum(1).clamp(min=1))
    (grad,) = torch.autograd.grad(fast.sum(), h)
    assert torch.equal(grad, torch.full_like(h, 1 / 17))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_bf16_autocast_agrees_with_fp32(encoder):
    """The GPU path trains under bf16 autocast; on the CPU the same ops run.
    (Per encoder only: bf16 on a CPU is slow, and pooling adds no bf16 op.)"""
    model = build(encoder, "attention", depth=2).eval()
    x, lengths = torch.randn(4, 20, INPUT_DIM), torch.tensor([20, 7, 13, 1])
    exact = model(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, lengths).float()
    assert torch.isfinite(low).all()
    assert torch.allclose(low, exact, atol=0.1 + 0.05 * exact.abs().max().item())


@pytest.mark.parametrize("encoder", ENCODERS)
def test_bf16_autocast_trains(encoder):
    """A training step under bf16 autocast, as on a GPU: the backward of every custom
    autograd Function must take bf16 gradients (dt_proj's transposed product did not)."""
    model = build(encoder, "attention", depth=1).train()
    x, lengths = torch.randn(4, 20, INPUT_DIM), torch.tensor([20, 7, 13, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, lengths)
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.dtype == torch.float32 for g in grads)


def encoder_alone(name: str, depth: int, dropout: float, seed: int = 0):
    torch.manual_seed(seed)
    return ENCODERS[name](WIDTH, depth, dropout)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("length", [1, 5, 13, 20])
def test_encoder_outputs_ignore_padding(encoder, depth, length):
    """Per step, at the encoder itself: a clip's outputs are the same alone,
    followed by large random garbage, and in a batch of longer and shorter
    clips. Stricter than the classifier-level test below, whose padding
    reaches the encoder zeroed by `left_to_right` and whose one logit could
    hide a leak into some steps; also covers a clip of a single step."""
    model = encoder_alone(encoder, depth, dropout=0.3).eval()
    gen = torch.Generator().manual_seed(length)
    clip = torch.randn(1, length, WIDTH, generator=gen)
    steps = length + 7
    padded = 100 * torch.randn(1, steps, WIDTH, generator=gen)
    padded[0, :length] = clip[0]
    batch = 10 * torch.randn(4, 30, WIDTH, generator=gen)
    batch[1, :length] = clip[0]
    with torch.no_grad():
        alone = model(clip, prefix_mask([length], length))[0]
        in_garbage = model(padded, prefix_mask([length], steps))[0, :length]
        mixed = model(batch, prefix_mask([30, length, 3, 1], 30))
    assert torch.isfinite(mixed).all()
    for result in (in_garbage, mixed[1, :length]):
        torch.testing.assert_close(result, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_encoder_gradients_reach_every_parameter(encoder, depth):
    model = encoder_alone(encoder, depth, dropout=0.1).train()
    mask = prefix_mask([16, 9, 1, 12], 16)
    out = model(torch.randn(4, 16, WIDTH), mask)
    # A random projection of the valid steps, not a plain sum: the channel sum
    # of a LayerNorm output is constant and would give zero gradients upstream.
    (out * mask.unsqueeze(-1) * torch.randn(out.shape)).sum().backward()
    dead = dead_parameters(model)
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize(("encoder", "pooling"), COMBOS)
class TestContract:
    @pytest.mark.parametrize("steps", [10, 15, 20, 25, 30])
    def test_shapes(self, encoder, pooling, steps):
        model = build(encoder, pooling).eval()
        x = torch.randn(3, steps, INPUT_DIM)
        logits = model(x, torch.tensor([steps, steps // 2, 1]))
        assert logits.shape == (3,) and torch.isfinite(logits).all()

    def test_padding_never_changes_a_clip(self, encoder, pooling):
        model = build(encoder, pooling, depth=2).eval()
        torch.manual_seed(1)
        clip, other = torch.randn(12, INPUT_DIM), torch.randn(30, INPUT_DIM)
        alone = model(*stored([clip], steps=12))
        padded = model(*stored([clip], steps=30))
        garbage = model(*stored([clip], steps=30, fill=7.0))
        batched = model(*stored([other, clip], steps=30))[1]
        for result in (padded, garbage, batched):
            assert torch.allclose(alone, result.reshape(alone.shape), atol=1e-5)

    def test_batch_of_one(self, encoder, pooling):
        model = build(encoder, pooling).eval()
        x, lengths = torch.randn(4, 20, INPUT_DIM), torch.tensor([20, 7, 13, 1])
        together = model(x, lengths)
        for row in range(4):
            one = model(x[row : row + 1], lengths[row : row + 1])
            assert torch.allclose(one, together[row : row + 1], atol=1e-5)

    def test_gradients_reach_every_parameter(self, encoder, pooling):
        model = build(encoder, pooling, depth=2).train()
        x = torch.randn(4, 16, INPUT_DIM)
        model(x, torch.tensor([16, 9, 4, 12])).sum().backward()
        dead = dead_parameters(model)
        assert set(dead) <= set(_unreachable(model, pooling)), f"no gradient reaches {dead}"

    def test_unpadded_batches_skip_the_fills_exactly(self, encoder, pooling, monkeypatch):
        """With no padded step, `fill_padded` returns its input (models/padding.py):
        outputs and gradients equal those of always filling, bit for bit. A padded
        batch still fills (test_padding_never_changes_a_clip)."""
        import expsearch.models.padding as padding

        x = torch.randn(6, 14, INPUT_DIM)
        lengths = torch.full((6,), 14)

        def run():
            model = build(encoder, pooling, depth=2).train()
            out = model(x, lengths)
            out.sum().backward()
            return out.detach(), [p.grad for p in model.parameters() if p.grad is not None]

        skipped = run()
        calls = []

        def always(t, padded, value):
            calls.append(bool(padded.any()))
            return t.masked_fill(padded, value)

        for module in _modules_filling_padding():
            monkeypatch.setattr(module, "fill_padded", always)
        filled = run()
        assert torch.equal(skipped[0], filled[0])
        assert all(torch.equal(a, b) for a, b in zip(skipped[1], filled[1], strict=True))
        assert calls and not any(calls)  # the fills ran, on masks with nothing padded
        assert padding.fill_padded(x, torch.zeros(6, 14, 1, dtype=torch.bool), 0.0) is x

    def test_seeded_determinism(self, encoder, pooling):
        torch.manual_seed(5)
        x, lengths = torch.randn(3, 12, INPUT_DIM), torch.tensor([12, 5, 9])
        outs = []
        for _ in range(2):
            model = build(encoder, pooling, dropout=0.2, seed=3).train()
            torch.manual_seed(11)  # the dropout masks
            outs.append(model(x, lengths))
        assert torch.equal(outs[0], outs[1])
        assert not torch.equal(outs[0], build(encoder, pooling, seed=4).train()(x, lengths))

    def test_overfits_a_tiny_set(self, encoder, pooling):
        torch.manual_seed(0)
        x, lengths = torch.randn(16, 10, INPUT_DIM), torch.randint(4, 11, (16,))
        y = torch.tensor([0.0, 1.0] * 8)
        model = build(encoder, pooling)
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(200):
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, lengths), y)
            loss.backward()
            optimiser.step()
        scores = model.eval()(x, lengths)
        # train AP = 1.0 exactly when every positive outscores every negative
        assert scores[y == 1].min() > scores[y == 0].max(), f"final loss {loss.item():.3f}"


def test_the_swish_output_gates_start_fully_open():
    """RetNet's G, Mamba's and the mLSTM block's z gates: silu(W x + b) = 1 for any x at init
    (the open-gate init of retnet.py), and they can still learn (W gets a gradient)."""
    import torch.nn.functional as F

    from expsearch.models.bimamba import MambaBlock
    from expsearch.models.retnet import MultiScaleRetention
    from expsearch.models.xlstm import MLSTMBlock

    x = torch.randn(3, 7, 64)
    retention, mamba, mlstm = MultiScaleRetention(64), MambaBlock(64), MLSTMBlock(64, 0.0)
    gates = {
        "retnet": (lambda x: retention.g_proj(x) + retention.g_bias, retention.g_proj.weight),
        "bimamba": (
            lambda x: mamba.in_proj(x).chunk(2, -1)[1] + mamba.z_bias,
            mamba.in_proj.weight,
        ),
        "xlstm": (
            lambda x: mlstm.up(mlstm.norm(x)).chunk(2, -1)[1] + mlstm.z_bias,
            mlstm.up.weight,
        ),
    }
    for name, (pre_activation, weight) in gates.items():
        gate = F.silu(pre_activation(x))
        assert torch.allclose(gate, torch.ones_like(gate), atol=1e-4), name
        (gate * torch.randn_like(gate)).sum().backward()
        assert weight.grad is not None and weight.grad.abs().max() > 0, name


def _modules_filling_padding():
    from expsearch.models import bimamba, pooling, retnet, xlstm, zipformer

    return [bimamba, pooling, retnet, xlstm, zipformer]
