"""第 6–8 章（递推模式、S4D 初始化、S4D 层）中每个数值检查对应的单元测试。

每个测试都调用 ``s4lab`` 的函数；被守护的性质一旦被破坏（FFT 长度取 L、用欧拉法代替零阶保持、
丢掉共轭对的因子 2、符号错误），对应的断言就会失败。
"""

import math

import pytest
import torch

from s4lab import ssm
from s4lab.layers import S4DLayer


def _layer_ssm(layer):
    """返回层的零阶保持离散参数 (A_bar, B_bar, C, D)，形状 (H, N/2)、(H, N/2)、(H, N/2)、(H,)。"""
    with torch.no_grad():
        A = layer.A()
        A_bar, B_bar = ssm.discretize(A, torch.ones_like(A), layer.dt().unsqueeze(-1), "zoh")
        return A_bar, B_bar, layer.C_complex(), layer.D.detach().clone()


def _rel_err(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture
def layer64():
    torch.manual_seed(0)
    return S4DLayer(d_model=4, d_state=64).double()


# ---- 第 6 章：递推模式 ----


def test_scan_matches_handwritten_step(layer64):
    A_bar, B_bar, C, D = _layer_ssm(layer64)
    u = torch.randn(4, 300, dtype=torch.float64)  # (H, L)
    x = torch.zeros(4, 32, dtype=torch.complex128)
    outputs = []
    for k in range(u.shape[-1]):
        x = A_bar * x + B_bar * u[:, k].unsqueeze(-1)
        outputs.append(2 * (C * x).sum(-1).real)
    y_step = torch.stack(outputs, dim=-1)
    y_scan = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True)
    assert _rel_err(y_scan, y_step) <= 1e-12


def test_conj_pairs_match_full_system(layer64):
    """2·Re 形式等于把每个模态与其共轭都显式写出的完整 N 维系统。"""
    A_bar, B_bar, C, _ = _layer_ssm(layer64)
    u = torch.randn(4, 200, dtype=torch.float64)
    full = [torch.cat([t, t.conj()], dim=-1) for t in (A_bar, B_bar, C)]  # 各为 (H, N)
    y_full = ssm.scan(*full, u.to(torch.complex128))  # (H, L) 复数，虚部应为 0
    y_pairs = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True)
    assert y_full.imag.abs().max().item() <= 1e-12 * y_full.real.abs().max().item()
    assert _rel_err(y_pairs, y_full.real) <= 1e-12


def test_scan_matches_conv_float64(layer64):
    L = 4096
    A_bar, B_bar, C, _ = _layer_ssm(layer64)
    u = torch.randn(2, 4, L, dtype=torch.float64)  # (B, H, L)
    with torch.no_grad():
        K = layer64.kernel(L)
    y_scan = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True)
    y_conv = ssm.causal_fft_conv(u, K)
    assert _rel_err(y_scan, y_conv) <= 1e-10


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_scan_matches_conv_float32(init):
    torch.manual_seed(1)
    L = 4096
    layer = S4DLayer(d_model=4, d_state=64, init=init)
    A_bar, B_bar, C, _ = _layer_ssm(layer)
    u = torch.randn(4, L)  # (H, L)
    with torch.no_grad():
        K = layer.kernel(L)
    y_scan = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True)
    y_conv = ssm.causal_fft_conv(u, K)
    assert y_scan.dtype == torch.float32
    assert y_conv.dtype == torch.float32
    assert _rel_err(y_scan, y_conv) <= 1e-4


def test_impulse_response_is_kernel(layer64):
    L = 1024
    A_bar, B_bar, C, _ = _layer_ssm(layer64)
    impulse = torch.zeros(4, L, dtype=torch.float64)
    impulse[:, 0] = 1.0
    with torch.no_grad():
        K = layer64.kernel(L)
    assert _rel_err(ssm.scan(A_bar, B_bar, C, impulse, conj_pairs=True), K) <= 1e-10


def test_scan_continues_from_state(layer64):
    A_bar, B_bar, C, _ = _layer_ssm(layer64)
    u = torch.randn(4, 500, dtype=torch.float64)
    y_full = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True)
    y_first, state = ssm.scan(A_bar, B_bar, C, u[:, :180], conj_pairs=True, return_state=True)
    y_second = ssm.scan(A_bar, B_bar, C, u[:, 180:], conj_pairs=True, x0=state)
    assert state.shape == (4, 32)
    assert _rel_err(torch.cat([y_first, y_second], dim=-1), y_full) <= 1e-12


# ---- 第 7 章：S4D 初始化 ----


def test_s4d_lin_imag_is_pi_n():
    A = ssm.s4d_init_A(32, "lin")
    n = torch.arange(32, dtype=torch.float64)
    assert torch.allclose(A.imag.double(), math.pi * n, rtol=1e-6, atol=1e-6)
    assert torch.all(A.real == -0.5)


def test_s4d_inv_and_real_formulas():
    n_modes, N = 32, 64
    n = torch.arange(n_modes, dtype=torch.float64)
    inv = ssm.s4d_init_A(n_modes, "inv")
    real = ssm.s4d_init_A(n_modes, "real")
    assert torch.allclose(inv.imag.double(), (N / math.pi) * (N / (2 * n + 1) - 1), rtol=1e-6)
    assert torch.all(inv.real == -0.5)
    assert torch.equal(real.real.double(), -(n + 1))
    assert torch.all(real.imag == 0)


def test_layer_re_A_negative_any_raw():
    layer = S4DLayer(d_model=8, d_state=64)
    raw = torch.linspace(-1e4, 1e4, layer.log_A_real.numel()).reshape(layer.log_A_real.shape)
    with torch.no_grad():
        layer.log_A_real.copy_(raw)
        A = layer.A()
    assert torch.isfinite(A.real).all()
    assert (A.real < 0).all()


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_init_kernel_finite_long(init):
    torch.manual_seed(2)
    dts = torch.logspace(-4, 1, 6)  # Δ 从 1e-4 到 10
    A = ssm.s4d_init_A(32, init).unsqueeze(0).expand(len(dts), 32)
    C = torch.randn(len(dts), 32, dtype=torch.complex64)
    K = ssm.s4d_kernel(A, C, torch.log(dts), 65_536)
    assert K.shape == (6, 65_536)
    assert torch.isfinite(K).all()


def test_init_log_dt_range():
    torch.manual_seed(3)
    layer = S4DLayer(d_model=512, d_state=64)
    dt = layer.dt()
    assert dt.min().item() >= 1e-3 * (1 - 1e-6)
    assert dt.max().item() <= 1e-1 * (1 + 1e-6)
    # 对数均匀：约一半的通道落在几何中点 1e-2 以下。
    assert 0.4 <= (dt < 1e-2).float().mean().item() <= 0.6


# ---- 第 8 章：S4D 层 ----


def _manual_forward(layer, x):
    """用 ssm 的函数和层的参数按定义逐步计算 S4D 层，x: (B, L, H) → (B, L, H)。"""
    L, H = x.shape[1], x.shape[2]
    A_bar, B_bar, C, D = _layer_ssm(layer)
    u = x.transpose(1, 2)  # (B, H, L)
    K = ssm.vandermonde_kernel(A_bar, B_bar, C, L, conj_pairs=True)  # (H, L)
    v = ssm.causal_fft_conv(u, K) + D.unsqueeze(-1) * u
    w = (v * 0.5 * (1 + torch.erf(v / math.sqrt(2)))).transpose(1, 2)  # (B, L, H)
    z = w @ layer.output_linear.weight.detach().T + layer.output_linear.bias.detach()
    return z[..., :H] * torch.sigmoid(z[..., H:])


def test_layer_matches_manual_forward():
    torch.manual_seed(4)
    layer = S4DLayer(d_model=16, d_state=64).eval()
    x = torch.randn(2, 256, 16)
    with torch.no_grad():
        out_layer = layer(x)
    out_manual = _manual_forward(layer, x)
    assert out_layer.shape == (2, 256, 16)
    assert _rel_err(out_manual, out_layer) <= 1e-5


def test_layer_kernel_matches_vandermonde(layer64):
    A_bar, B_bar, C, _ = _layer_ssm(layer64)
    with torch.no_grad():
        K_layer = layer64.kernel(512)
    K_vandermonde = ssm.vandermonde_kernel(A_bar, B_bar, C, 512, conj_pairs=True)
    assert _rel_err(K_vandermonde, K_layer) <= 1e-10


def test_layer_parameter_count():
    H, N = 128, 64
    counts = {name: p.numel() for name, p in S4DLayer(d_model=H, d_state=N).named_parameters()}
    assert counts == {
        "log_dt": H,
        "log_A_real": H * N // 2,
        "A_imag": H * N // 2,
        "C": H * N // 2 * 2,
        "D": H,
        "output_linear.weight": 2 * H * H,
        "output_linear.bias": 2 * H,
    }
    assert sum(counts.values()) == 49_664


def test_layer_is_causal():
    torch.manual_seed(5)
    layer = S4DLayer(d_model=16, d_state=64).eval()
    x = torch.randn(2, 256, 16)
    t = 128
    x_perturbed = x.clone()
    x_perturbed[:, t, :] += 1.0
    with torch.no_grad():
        out = layer(x)
        diff = (layer(x_perturbed) - out).abs().amax(dim=(0, 2))  # (L,)
    scale = out.abs().max().item()
    assert diff[:t].max().item() <= 1e-6 * scale
    assert diff[t].item() >= 1e-3 * scale
