"""分块卷积核（默认算法）与直接的范德蒙德公式一致：Δ 从 1e-4 到 10，L 最长 65,536。"""

import math

import pytest
import torch

from s4lab import ssm
from s4lab.layers import S4DLayer


def _parameters(dtype, log_dt_value, H=4, n=32, init="lin"):
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    generator = torch.Generator().manual_seed(0)
    A = ssm.s4d_init_A(n, init).to(complex_dtype).unsqueeze(0).expand(H, n)  # (H, n)
    C = torch.randn(H, n, dtype=complex_dtype, generator=generator)  # (H, n)
    log_dt = torch.full((H,), log_dt_value, dtype=dtype)  # (H,)
    return A, C, log_dt


def _relative_error(K, reference):
    return ((K.double() - reference.double()).norm() / reference.double().norm()).item()


@pytest.mark.parametrize("dt", [1e-4, 1e-2, 1.0, 10.0])
@pytest.mark.parametrize("L", [1, 2, 7, 1000, 65536])
@pytest.mark.parametrize("init", ["lin", "inv"])
def test_chunked_matches_vandermonde_float32(dt, L, init):
    A, C, log_dt = _parameters(torch.float32, math.log(dt), init=init)
    fast = ssm.s4d_kernel(A, C, log_dt, L, method="chunked")
    direct = ssm.s4d_kernel(A, C, log_dt, L, method="vandermonde")
    assert fast.shape == direct.shape == (4, L)
    assert fast.dtype == torch.float32
    assert torch.isfinite(fast).all()
    assert _relative_error(fast, direct) <= 1e-5
    # 同一组 float32 输入在 float64 中按直接公式计算的核，作为“真值”。
    truth = ssm.s4d_kernel(A.to(torch.complex128), C.to(torch.complex128), log_dt.double(), L, method="vandermonde")
    assert _relative_error(fast, truth) <= 1e-5


@pytest.mark.parametrize("dt", [1e-4, 1e-2, 1.0, 10.0])
@pytest.mark.parametrize("L", [3, 4096, 65536])
def test_chunked_matches_vandermonde_float64(dt, L):
    A, C, log_dt = _parameters(torch.float64, math.log(dt))
    fast = ssm.s4d_kernel(A, C, log_dt, L, method="chunked")
    direct = ssm.s4d_kernel(A, C, log_dt, L, method="vandermonde")
    assert fast.dtype == torch.float64
    assert _relative_error(fast, direct) <= 1e-12


def test_chunked_kernel_gradients_match():
    """两种算法对 log Δ、A、C 的梯度也一致（训练走的是分块算法的反向传播）。"""
    layer = S4DLayer(8, 16, dt_min=1e-3, dt_max=1.0).double()
    gradients = {}
    for method in ("chunked", "vandermonde"):
        layer.zero_grad()
        layer.kernel_method = method
        (layer.kernel(777) ** 2).sum().backward()
        gradients[method] = [p.grad.clone() for p in (layer.log_dt, layer.log_A_real, layer.A_imag, layer.C)]
    for fast, direct in zip(gradients["chunked"], gradients["vandermonde"]):
        assert _relative_error(fast, direct) <= 1e-10


def test_layer_uses_chunked_kernel_by_default():
    layer = S4DLayer(4, 8)
    assert layer.kernel_method == "chunked"


def test_unknown_kernel_method_rejected():
    A, C, log_dt = _parameters(torch.float32, -3.0)
    with pytest.raises(ValueError, match="vandermonde"):
        ssm.s4d_kernel(A, C, log_dt, 16, method="fft")
