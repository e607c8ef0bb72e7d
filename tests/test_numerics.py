"""S4D 的数值稳定性：Re(A) < 0、极端 Δ 与长序列下卷积核有限、大学习率一步之后无 NaN、bfloat16 自动混合精度。"""

import math

import pytest
import torch

from s4lab.layers import S4DLayer
from s4lab.ssm import expm1_over_x

@pytest.mark.parametrize("raw", [-math.inf, -1e30, -50.0, 0.0, 50.0, 1e30, math.inf])
def test_real_part_of_A_always_negative(raw):
    layer = S4DLayer(4, 8)
    with torch.no_grad():
        layer.log_A_real.fill_(raw)
    real = layer.A().real
    assert torch.isfinite(real).all()
    assert (real < 0).all()


@pytest.mark.parametrize("dt", [1e-4, 1e-2, 1.0, 10.0])
@pytest.mark.parametrize("log_A_real", [-20.0, 0.0, 20.0])
def test_kernel_finite_extreme_dt_long_L(dt, log_A_real):
    torch.manual_seed(0)
    layer = S4DLayer(2, 4)
    with torch.no_grad():
        layer.log_dt.fill_(math.log(dt))
        layer.log_A_real.fill_(log_A_real)
    K = layer.kernel(65_536)  # (H, L)
    assert K.shape == (2, 65_536)
    assert torch.isfinite(K).all()
    # Re(A) < 0 时核的每一项都在衰减，绝对值不会超过 2·Σ|C|·|B̄|。
    C = layer.C_complex()
    dtA = layer.dt().unsqueeze(-1) * layer.A()
    bound = 2 * (C.abs() * (layer.dt().unsqueeze(-1) * expm1_over_x(dtA)).abs()).sum(-1)  # (H,)
    assert (K.abs().max(dim=-1).values <= bound * (1 + 1e-4) + 1e-6).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.AdamW])
def test_huge_log_dt_step_output_finite(optimizer_class, sign):
    torch.manual_seed(0)
    layer = S4DLayer(8, 8)
    x = torch.randn(2, 64, 8)
    optimizer = optimizer_class([layer.log_dt], lr=1e8)
    (sign * layer(x).sum()).backward()
    optimizer.step()
    assert layer.log_dt.abs().max() > 1e6  # 这一步确实把 log Δ 推到了截断范围之外
    y = layer(x)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_log_dt_step_gradients_finite(sign):
    torch.manual_seed(0)
    layer = S4DLayer(8, 8)
    x = torch.randn(2, 64, 8)
    optimizer = torch.optim.SGD([layer.log_dt], lr=1e8)
    (sign * layer(x).sum()).backward()
    optimizer.step()
    optimizer.zero_grad()
    layer(x).sum().backward()
    for name, param in layer.named_parameters():
        assert torch.isfinite(param.grad).all(), name


def test_bf16_autocast_close_to_float32():
    torch.manual_seed(0)
    layer = S4DLayer(128, 64)  # 书中默认的 H 与 N
    x = torch.randn(2, 256, 128)
    with torch.no_grad():
        reference = layer(x)  # (B, L, H)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = layer(x)
    assert low.dtype == torch.bfloat16
    assert torch.isfinite(low).all()
    assert (low.float() - reference).abs().max().item() <= 1e-2


def test_kernel_stays_float32_under_autocast():
    torch.manual_seed(0)
    layer = S4DLayer(16, 8)
    x = torch.randn(2, 64, 16)
    seen = {}
    original = layer.kernel

    def recording_kernel(L):
        seen["K"] = original(L)
        return seen["K"]

    layer.kernel = recording_kernel
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
    assert seen["K"].dtype == torch.float32
