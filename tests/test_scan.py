"""The fused selective-scan kernel against the PyTorch loop, and how it is built and chosen."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from expsearch.models import native, scan
from expsearch.models.scan import FusedSelectiveScan, selective_scan, selective_scan_loop

pytestmark = pytest.mark.skipif(
    native.library("selective_scan") is None, reason="no C compiler: the kernel cannot be built"
)


def _inputs(batch, steps, d_inner, d_state, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, steps, d_inner, generator=gen, dtype=torch.float64),
        torch.rand(batch, steps, d_inner, generator=gen, dtype=torch.float64) * 0.5 + 0.01,
        -torch.rand(d_inner, d_state, generator=gen, dtype=torch.float64) * 4 - 0.1,
        torch.randn(batch, steps, d_state, generator=gen, dtype=torch.float64),
        torch.randn(batch, steps, d_state, generator=gen, dtype=torch.float64),
        torch.randn(d_inner, generator=gen, dtype=torch.float64),
    ]


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1), (3, 7, 5, 4), (2, 20, 128, 16), (4, 30, 8, 3), (2, 64, 6, 17)]
)
def test_kernel_equals_the_loop_in_output_and_every_gradient(shape):
    _assert_kernel_equals_loop(_inputs(*shape))


def _assert_kernel_equals_loop(float64_inputs):
    """The kernel in float32 against the loop in float64: output and every gradient."""
    reference = [t.requires_grad_() for t in float64_inputs]
    expected = selective_scan_loop(*reference)
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, reference, grad_out)

    inputs = [t.detach().float().requires_grad_() for t in reference]
    got = FusedSelectiveScan.apply(*inputs)
    grads = torch.autograd.grad(got, inputs, grad_out.float())
    # float32 against a float64 reference; sums over up to 64 steps and 128 rows x steps.
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=1e-4)
    names = ["u", "dt", "A", "B", "C", "D"]
    for name, grad, want in zip(names, grads, expected_grads, strict=True):
        assert torch.isfinite(grad).all(), name
        scale = want.abs().max().item() + 1.0
        assert (grad.double() - want).abs().max().item() < 1e-5 * scale, name


@pytest.mark.parametrize("shape", [(3, 7, 5, 4), (2, 20, 40, 16)])
@pytest.mark.parametrize(
    "options",
    [
        {"z": "half", "dt_bias": True, "z_bias": True, "dt_softplus": True},  # BiMamba's form
        {"z": "own", "dt_bias": False, "z_bias": False, "dt_softplus": False},
        {"z": None, "dt_bias": True, "z_bias": False, "dt_softplus": True},
    ],
)
def test_fused_step_size_and_gate_equal_the_loop(shape, options):
    batch, steps, d_inner, _ = shape
    gen = torch.Generator().manual_seed(1)
    u, delta, A, B, C, D = _inputs(*shape)
    delta = delta * 4 - 2  # raw step sizes of both signs: softplus makes them positive
    if not options["dt_softplus"]:
        delta = delta.abs() * 0.25 + 0.01
    extra = {"dt_softplus": options["dt_softplus"]}
    if options["z"] is not None:
        wide = torch.randn(batch, steps, 2 * d_inner, generator=gen, dtype=torch.float64) * 2
        extra["z"] = wide[..., d_inner:] if options["z"] == "half" else wide[..., :d_inner]
    if options["dt_bias"]:
        extra["dt_bias"] = torch.randn(d_inner, generator=gen, dtype=torch.float64)
    if options["z_bias"]:
        extra["z_bias"] = torch.randn(d_inner, generator=gen, dtype=torch.float64)
    names = ["u", "dt", "A", "B", "C", "D", *[k for k in extra if k != "dt_softplus"]]
    reference = [t.requires_grad_() for t in (u, delta, A, B, C, D)]
    ref_extra = {k: v.requires_grad_() if torch.is_tensor(v) else v for k, v in extra.items()}
    expected = selective_scan_loop(*reference, **ref_extra)
    grad_out = torch.randn_like(expected)
    leaves = reference + [v for v in ref_extra.values() if torch.is_tensor(v)]
    expected_grads = torch.autograd.grad(expected, leaves, grad_out)

    inputs = [t.detach().float().requires_grad_() for t in reference]
    if options["z"] == "half":  # a view into a wider tensor, read in place by the kernel
        wide32 = wide.detach().float().requires_grad_()
        z32 = wide32[..., d_inner:]
        assert native.row_stride(z32) == 2 * d_inner
    kernel_extra = {}
    for key, value in extra.items():
        if key == "z" and options["z"] == "half":
            kernel_extra[key] = z32
        elif torch.is_tensor(value):
            kernel_extra[key] = value.detach().float().requires_grad_()
        else:
            kernel_extra[key] = value
    got = selective_scan(*inputs, **kernel_extra)
    assert got.grad_fn is not None and "Fused" in type(got.grad_fn).__name__
    kernel_leaves = inputs + [v for v in kernel_extra.values() if torch.is_tensor(v)]
    grads = torch.autograd.grad(got, kernel_leaves, grad_out.float())
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=1e-4)
    for name, grad, want in zip(names, grads, expected_grads, strict=True):
        scale = want.abs().max().item() + 1.0
        assert (grad.double() - want).abs().max().item() < 1e-5 * scale, name


def test_decays_from_one_to_underflow_match_the_loop():
    # dt A from about -130 to 0: the kernel's inline exp over float's whole range and past
    # its underflow (below -87.3), where states and gradients must stay finite.
    u, dt, _, B, C, D = _inputs(2, 12, 20, 16)
    A = -torch.logspace(-2, 2.4, 20 * 16, dtype=torch.float64).view(20, 16)
    _assert_kernel_equals_loop([u, dt, A, B, C, D])


def test_extreme_gates_and_raw_step_sizes_match_the_loop():
    # z + z_bias and delta + dt_bias from -200 to 200: the inline sigmoid of the gate and
    # of softplus's derivative past exp's range on both sides, the softplus where it is
    # x itself and where it underflows; the kept step sizes feed the backward.
    u, _, A, B, C, D = _inputs(2, 9, 20, 4)
    ramp = torch.linspace(-200, 200, 2 * 9 * 20, dtype=torch.float64).view(2, 9, 20)
    z, delta = ramp.flip(-1), ramp
    reference = [t.requires_grad_() for t in (u, delta, A, B, C, D, z)]
    expected = selective_scan_loop(*reference[:6], z=reference[6], dt_softplus=True)
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, reference, grad_out)
    inputs = [t.detach().float().requires_grad_() for t in reference]
    got = selective_scan(*inputs[:6], z=inputs[6], dt_softplus=True)
    grads = torch.autograd.grad(got, inputs, grad_out.float())
    assert torch.isfinite(got).all() and all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=1e-4)
    names = ["u", "dt", "A", "B", "C", "D", "z"]
    for name, grad, want in zip(names, grads, expected_grads, strict=True):
        scale = want.abs().max().item() + 1.0
        assert (grad.double() - want).abs().max().item() < 1e-5 * scale, name


def test_non_contiguous_inputs_are_read_correctly():
    u, dt, A, B, C, D = (t.float() for t in _inputs(3, 9, 6, 4))
    u_t = u.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not u_t.is_contiguous()
    torch.testing.assert_close(
        FusedSelectiveScan.apply(u_t, dt, A, B, C, D), selective_scan_loop(u, dt, A, B, C, D)
    )


def test_dispatch_uses_the_kernel_for_cpu_float32_only(monkeypatch):
    calls = []
    monkeypatch.setattr(FusedSelectiveScan, "apply", lambda *a: calls.append(a) or a[0])
    float32 = [t.float() for t in _inputs(2, 3, 4, 2)]
    selective_scan(*float32)
    assert len(calls) == 1
    selective_scan(*_inputs(2, 3, 4, 2))  # float64: the loop
    selective_scan(*(t.bfloat16() for t in float32))
    assert len(calls) == 1


def test_disabled_kernels_run_the_loop(native_disabled):
    inputs = [t.float() for t in _inputs(2, 5, 3, 4)]
    assert not scan.fused_available(*inputs)
    torch.testing.assert_close(selective_scan(*inputs), selective_scan_loop(*inputs))


def test_a_failed_build_warns_with_the_compiler_message_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPSEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", sys.executable)  # "compiles" by failing to run C as Python
    native.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="selective_scan kernel unavailable.*failed"):
            assert native.library("selective_scan") is None
        assert not list(tmp_path.rglob("*.so"))  # nothing half-built left as a library
    finally:
        native.library.cache_clear()


def test_concurrent_first_builds_all_load_one_library(tmp_path):
    code = (
        "from expsearch.models import native; assert native.library('selective_scan') is not None"
    )
    env_cache = {"EXPSEARCH_CACHE": str(tmp_path)}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env_cache})
        for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    assert len(list(tmp_path.glob("selective_scan-*.so"))) == 1
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # temporary build dirs removed


def test_loading_the_kernel_keeps_denormals():
    # A shared object linked with -ffast-math would switch the process to flush-to-zero.
    native.library("selective_scan")
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (tiny * 1.0).item() > 0.0
    value = float("1e-310")
    assert value * 1.0 > 0.0
