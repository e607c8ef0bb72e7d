"""推导章节（第 2–5 章）中每个数值检查对应的单元测试。

每个测试守护一条推导性质：连续解、三种离散化、范德蒙德卷积核、共轭对形式、FFT 卷积的因果性。
除非特别说明，都用 float64，容差远小于对应错误（漏掉因子 2、FFT 长度取 L、ZOH 写成欧拉、符号写反）造成的偏差。
"""

from __future__ import annotations

import math

import pytest
import torch

from s4lab.ssm import (
    causal_fft_conv,
    discretize,
    expm1_over_x,
    s4d_init_A,
    s4d_kernel,
    scan,
    vandermonde_kernel,
)

F64 = torch.float64
C128 = torch.complex128


def max_rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


# ---------------------------------------------------------------- 第 2 章：连续时间 SSM

A_DENSE = torch.tensor([[-0.4, 2.0, 0.0], [-2.0, -0.6, 0.5], [0.1, -0.3, -1.0]], dtype=F64)  # (N, N)
B_DENSE = torch.tensor([[1.0], [0.0], [0.5]], dtype=F64)  # (N, 1)
C_DENSE = torch.tensor([[0.5, -1.0, 2.0]], dtype=F64)  # (1, N)


def rk4_solve(f, x0: torch.Tensor, t_end: float, n_steps: int) -> torch.Tensor:
    h = t_end / n_steps
    x, t = x0.clone(), 0.0
    for _ in range(n_steps):
        k1 = f(t, x)
        k2 = f(t + h / 2, x + h / 2 * k1)
        k3 = f(t + h / 2, x + h / 2 * k2)
        k4 = f(t + h, x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += h
    return x


def test_cos_response_closed_form_matches_rk4():
    omega, t_end = 1.7, 2.0
    I = torch.eye(3, dtype=C128)
    A, B = A_DENSE.to(C128), B_DENSE.to(C128)
    phase = torch.exp(torch.tensor(1j * omega * t_end, dtype=C128))
    closed = torch.linalg.solve(1j * omega * I - A, (phase * I - torch.linalg.matrix_exp(A * t_end)) @ B).real
    numeric = rk4_solve(
        lambda t, x: A_DENSE @ x + B_DENSE * math.cos(omega * t), torch.zeros(3, 1, dtype=F64), t_end, 2000
    )
    assert max_rel_err(closed, numeric) < 1e-9


def test_sum_of_modes_equals_matrix_exponential():
    eigvals, V = torch.linalg.eig(A_DENSE)  # (N,), (N, N)
    B_tilde = torch.linalg.solve(V, B_DENSE.to(C128)).squeeze(-1)  # (N,)
    C_tilde = (C_DENSE.to(C128) @ V).squeeze(0)  # (N,)
    t = torch.linspace(0, 5, 41, dtype=F64)
    h_modes = (C_tilde * B_tilde) @ torch.exp(eigvals.unsqueeze(-1) * t)  # (T,)
    h_dense = torch.stack([(C_DENSE @ torch.linalg.matrix_exp(A_DENSE * s) @ B_DENSE).squeeze() for s in t])
    assert max_rel_err(h_modes.real, h_dense) < 1e-12
    assert h_modes.imag.abs().max().item() < 1e-12 * h_dense.abs().max().item()


def test_rotation_block_is_damped_oscillation():
    a, b, t = -0.3, 2.5, 3.0
    block = torch.tensor([[a, -b], [b, a]], dtype=F64)
    eig = torch.linalg.eigvals(block)
    eig = eig[torch.argsort(eig.imag)]
    assert (eig - torch.tensor([complex(a, -b), complex(a, b)], dtype=C128)).abs().max().item() < 1e-12
    x_t = torch.linalg.matrix_exp(block * t) @ torch.tensor([1.0, 0.0], dtype=F64)
    expected = math.exp(a * t) * torch.tensor([math.cos(b * t), math.sin(b * t)], dtype=F64)
    assert (x_t - expected).abs().max().item() < 1e-12


# ---------------------------------------------------------------- 第 3 章：离散化

# A = −0.5、B = 1、Δ = 10 的参考值，直接代入 ZOH、双线性与欧拉法的闭式公式算出。
REFERENCE = {
    "zoh": (math.exp(-5.0), (math.exp(-5.0) - 1) / -0.5),  # ≈ 0.0067379, 1.986524
    "bilinear": (-1.5 / 3.5, 10.0 / 3.5),  # ≈ −0.428571, 2.857143
    "euler": (-4.0, 10.0),
}


@pytest.mark.parametrize("method", ["zoh", "bilinear", "euler"])
def test_discretize_scalar_reference_values(method):
    A_bar, B_bar = discretize(torch.tensor([-0.5], dtype=F64), torch.tensor([1.0], dtype=F64), 10.0, method)
    A_ref, B_ref = REFERENCE[method]
    assert A_bar.item() == pytest.approx(A_ref, abs=1e-12)
    assert B_bar.item() == pytest.approx(B_ref, abs=1e-12)


MODES = torch.tensor([[-0.5 + 2.0j], [-1.0 + 0.5j], [-0.3 + 3.0j]], dtype=C128)  # (H, 1)


def test_zoh_exact_for_piecewise_constant_input():
    torch.manual_seed(0)
    dt, L = 0.3, 50
    u = torch.randn(L, dtype=F64)
    exact = []
    for a in MODES.flatten():
        # 增广系统 d/dt (x, u) = [[a, 1], [0, 0]] (x, u) 在一步上的精确传播子。
        propagator = torch.linalg.matrix_exp(dt * torch.tensor([[a, 1.0], [0.0, 0.0]], dtype=C128))
        x, xs = torch.zeros((), dtype=C128), []
        for u_k in u:
            x = propagator[0, 0] * x + propagator[0, 1] * u_k
            xs.append(x)
        exact.append(torch.stack(xs))
    exact = torch.stack(exact)  # (H, L)
    A_bar, B_bar = discretize(MODES, torch.ones_like(MODES), dt, "zoh")
    x_zoh = scan(A_bar, B_bar, torch.ones_like(MODES), u.expand(3, L))  # (H, L)
    assert max_rel_err(x_zoh, exact) < 1e-12


def _convergence_orders(sampling: str) -> dict:
    """在 [0, 2] 上对 u = cos(ωt) 拟合三种方法的收敛阶（与第 3 章的实验相同，规模更小）。"""
    omega, t_end = 1.3, 2.0
    dt_grid = torch.tensor([1e-3, 2e-3, 4e-3, 8e-3], dtype=F64)
    methods = ("euler", "bilinear", "zoh")
    errors = {m: [] for m in methods}
    for dt in dt_grid.tolist():
        L = round(t_end / dt)
        t = torch.arange(1, L + 1, dtype=F64) * dt
        u = torch.cos(omega * t)
        if sampling == "average":
            u = (u + torch.cos(omega * (t - dt))) / 2
        tc = t.to(C128)
        decay = torch.exp(MODES * tc)  # (H, L)
        exact = 0.5 * (
            (torch.exp(1j * omega * tc) - decay) / (1j * omega - MODES)
            + (torch.exp(-1j * omega * tc) - decay) / (-1j * omega - MODES)
        )
        for method in methods:
            A_bar, B_bar = discretize(MODES, torch.ones_like(MODES), dt, method)
            x = scan(A_bar, B_bar, torch.ones_like(MODES), u.expand(3, L))
            errors[method].append(max_rel_err(x, exact))
    log_dt = torch.log(dt_grid) - torch.log(dt_grid).mean()
    orders = {}
    for method in methods:
        log_err = torch.log(torch.tensor(errors[method], dtype=F64))
        orders[method] = ((log_dt * (log_err - log_err.mean())).sum() / (log_dt**2).sum()).item()
    return orders


def test_convergence_orders_end_sampling():
    orders = _convergence_orders("end")
    assert orders["euler"] == pytest.approx(1.0, abs=0.15)
    assert orders["bilinear"] == pytest.approx(1.0, abs=0.15)
    assert orders["zoh"] == pytest.approx(1.0, abs=0.15)


def test_convergence_orders_average_sampling():
    orders = _convergence_orders("average")
    assert orders["euler"] == pytest.approx(1.0, abs=0.15)
    assert orders["bilinear"] == pytest.approx(2.0, abs=0.15)
    assert orders["zoh"] == pytest.approx(2.0, abs=0.15)


def phi_taylor(x: torch.Tensor, n_terms: int = 30) -> torch.Tensor:
    total, term = torch.zeros_like(x), torch.ones_like(x)
    for k in range(n_terms):
        total = total + term
        term = term * x / (k + 2)
    return total


MAGNITUDES = torch.logspace(-12, 0, 49, dtype=F64)


def test_expm1_over_x_real_float64_precision():
    x = -MAGNITUDES
    assert ((expm1_over_x(x) - phi_taylor(x)).abs() / phi_taylor(x)).max().item() < 1e-14


def test_expm1_over_x_float32_precision():
    x = -MAGNITUDES
    value = expm1_over_x(x.float()).double()
    assert ((value - phi_taylor(x)).abs() / phi_taylor(x)).max().item() < 1e-6


def test_expm1_over_x_complex_precision():
    z = MAGNITUDES * torch.exp(1j * torch.linspace(0.6, 3.1, 49, dtype=F64))
    reference = phi_taylor(z)
    assert ((expm1_over_x(z) - reference).abs() / reference.abs()).max().item() < 1e-14


def test_expm1_over_x_zero_and_naive_formula_failure():
    assert expm1_over_x(torch.zeros(1, dtype=F64)).item() == 1.0
    assert expm1_over_x(torch.zeros(1, dtype=C128)).item() == 1.0
    x = torch.tensor([-1e-12], dtype=F64)
    naive = (torch.exp(x) - 1) / x
    assert abs(naive.item() - phi_taylor(x).item()) > 1e-6  # 直接公式确实有抵消，对照才有意义


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_stable_for_every_step_when_re_a_negative(method):
    dt = torch.logspace(-3, 3, 61, dtype=F64).view(-1, 1, 1)
    re = -torch.logspace(-3, 2, 21, dtype=F64).view(1, -1, 1)
    im = torch.linspace(-100, 100, 41, dtype=F64).view(1, 1, -1)
    A = torch.complex(re, torch.zeros_like(re)) + 1j * im  # (1, R, I)
    A_bar, _ = discretize(A, torch.ones_like(A), dt, method)
    assert bool((A_bar.abs() < 1).all())


def test_euler_unstable_for_fast_oscillating_mode():
    A = torch.tensor([-0.01 + 10.0j], dtype=C128)
    A_bar, _ = discretize(A, torch.ones_like(A), 0.1, "euler")
    assert A_bar.abs().item() > 1


def test_euler_critical_step():
    A = torch.tensor([-0.5 + 0.0j, -0.5 + 3.0j, -0.01 + 10.0j, -2.0 + 0.5j], dtype=C128)
    critical = -2 * A.real / A.abs() ** 2
    ones = torch.ones_like(A)
    assert bool((discretize(A, ones, 0.99 * critical, "euler")[0].abs() < 1).all())
    assert bool((discretize(A, ones, 1.01 * critical, "euler")[0].abs() > 1).all())
    assert (discretize(A, ones, critical, "euler")[0].abs() - 1).abs().max().item() < 1e-12


# ---------------------------------------------------------------- 第 4 章：卷积核


def test_dense_kernel_convolution_matches_recurrence():
    torch.manual_seed(0)
    N, dt, L = 4, 0.1, 64
    A = torch.randn(N, N, dtype=F64) - 2.0 * torch.eye(N, dtype=F64)
    B = torch.randn(N, 1, dtype=F64)
    C = torch.randn(1, N, dtype=F64)
    A_bar = torch.linalg.matrix_exp(dt * A)
    B_bar = torch.linalg.solve(A, (A_bar - torch.eye(N, dtype=F64)) @ B)
    K = torch.stack([(C @ torch.linalg.matrix_power(A_bar, l) @ B_bar).squeeze() for l in range(L)])  # (L,)
    u = torch.randn(L, dtype=F64)
    x, y_rec = torch.zeros(N, 1, dtype=F64), []
    for k in range(L):
        x = A_bar @ x + B_bar * u[k]
        y_rec.append((C @ x).squeeze())
    y_rec = torch.stack(y_rec)
    y_conv = causal_fft_conv(u.view(1, L), K.view(1, L)).squeeze(0)
    assert max_rel_err(y_conv, y_rec) < 1e-10


A_DIAG = torch.tensor([[-0.5 + 1.0j, -0.2 + 3.0j, -1.0 + 0.0j]], dtype=C128)  # (H, n)
C_DIAG = torch.tensor([[1.0 - 0.5j, 0.3 + 0.2j, -0.7 + 0.0j]], dtype=C128)  # (H, n)


def test_vandermonde_kernel_matches_manual_product():
    L = 200
    A_bar, B_bar = discretize(A_DIAG, torch.ones_like(A_DIAG), 0.5, "zoh")
    vandermonde = A_bar.unsqueeze(-1) ** torch.arange(L)  # (H, n, L)
    manual = torch.einsum("hn,hnl->hl", C_DIAG * B_bar, vandermonde)
    assert max_rel_err(vandermonde_kernel(A_bar, B_bar, C_DIAG, L), manual) < 1e-12


def test_scan_impulse_response_equals_kernel():
    L = 200
    A_bar, B_bar = discretize(A_DIAG, torch.ones_like(A_DIAG), 0.5, "zoh")
    impulse = torch.zeros(1, L, dtype=F64)
    impulse[:, 0] = 1.0
    K = vandermonde_kernel(A_bar, B_bar, C_DIAG, L)
    assert max_rel_err(scan(A_bar, B_bar, C_DIAG, impulse), K) < 1e-12


def _half_and_full_system(N: int = 16):
    torch.manual_seed(1)
    A_half = s4d_init_A(N // 2, "lin").to(C128).unsqueeze(0)  # (H, N/2)
    C_half = torch.randn(1, N // 2, dtype=C128)
    A_bar, B_bar = discretize(A_half, torch.ones_like(A_half), 0.05, "zoh")
    full = tuple(torch.cat([t, t.conj()], dim=-1) for t in (A_bar, B_bar, C_half))  # 各 (H, N)
    return (A_bar, B_bar, C_half), full


def test_conj_pairs_kernel_equals_full_system():
    half, full = _half_and_full_system()
    L = 300
    K_full = vandermonde_kernel(*full, L)
    K_half = vandermonde_kernel(*half, L, conj_pairs=True)
    assert not K_half.is_complex()
    assert max_rel_err(K_half, K_full.real) < 1e-12
    assert K_full.imag.abs().max().item() < 1e-12 * K_half.abs().max().item()


def test_conj_pairs_scan_equals_full_system():
    half, full = _half_and_full_system()
    torch.manual_seed(2)
    u = torch.randn(2, 1, 100, dtype=F64)  # (B, H, L)
    y_full = scan(*full, u.to(C128))
    y_half = scan(*half, u, conj_pairs=True)
    assert max_rel_err(y_half, y_full.real) < 1e-12


def test_s4d_kernel_matches_discretize_and_vandermonde():
    torch.manual_seed(3)
    H, n, L = 3, 8, 512
    A = s4d_init_A(n, "lin").to(C128).expand(H, -1)
    C = torch.randn(H, n, dtype=C128)
    log_dt = torch.log(torch.tensor([1e-3, 1e-2, 1e-1], dtype=F64))
    A_bar, B_bar = discretize(A, torch.ones_like(A), torch.exp(log_dt).unsqueeze(-1), "zoh")
    expected = vandermonde_kernel(A_bar, B_bar, C, L, conj_pairs=True)
    assert max_rel_err(s4d_kernel(A, C, log_dt, L), expected) < 1e-10


# ---------------------------------------------------------------- 第 5 章：FFT 卷积


def direct_causal_conv(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """按定义 y_k = Σ_{j≤k} K_j u_{k−j} 计算：u (..., H, L)，K (H, L)。"""
    L = u.shape[-1]
    lag = torch.arange(L).unsqueeze(1) - torch.arange(L).unsqueeze(0)  # (L, L)
    toeplitz = torch.where(lag >= 0, K[:, lag.clamp_min(0)], torch.zeros((), dtype=K.dtype))  # (H, L, L)
    return torch.einsum("hkj,...hj->...hk", toeplitz, u)


def _random_conv_inputs(L: int = 128):
    torch.manual_seed(0)
    u = torch.randn(2, 3, L, dtype=F64)  # (B, H, L)
    K = torch.randn(3, L, dtype=F64)  # (H, L)，不衰减：每个延迟都有分量，回绕误差无处可藏
    return u, K


def test_causal_fft_conv_matches_direct_sum():
    u, K = _random_conv_inputs()
    assert max_rel_err(causal_fft_conv(u, K), direct_causal_conv(u, K)) < 1e-10


def test_causal_fft_conv_truncates_longer_kernel():
    u, K = _random_conv_inputs()
    K_long = torch.cat([K, torch.randn(3, 50, dtype=F64)], dim=-1)  # (H, L + 50)
    assert max_rel_err(causal_fft_conv(u, K_long), direct_causal_conv(u, K)) < 1e-10


def test_causal_fft_conv_perturbing_last_input():
    u, K = _random_conv_inputs()
    y = causal_fft_conv(u, K)
    u2 = u.clone()
    u2[..., -1] += 10.0
    y2 = causal_fft_conv(u2, K)
    assert (y2[..., :-1] - y[..., :-1]).abs().max().item() < 1e-12 * y.abs().max().item()
    assert (y2[..., -1] - y[..., -1] - 10.0 * K[:, 0]).abs().max().item() < 1e-9


def test_causal_fft_conv_impulse_at_last_step():
    L = 64
    K = torch.randn(1, L, dtype=F64)
    u = torch.zeros(1, L, dtype=F64)
    u[:, -1] = 1.0
    y = causal_fft_conv(u, K)
    assert y[:, :-1].abs().max().item() < 1e-12
    assert y[0, -1].item() == pytest.approx(K[0, 0].item(), abs=1e-12)


def _fft_conv(u, K, n_fft):
    L = u.shape[-1]
    return torch.fft.ifft(torch.fft.fft(u, n=n_fft) * torch.fft.fft(K, n=n_fft)).real[..., :L]


def test_fft_size_below_2l_minus_1_leaks_future():
    u, K = _random_conv_inputs()
    L = u.shape[-1]
    direct = direct_causal_conv(u, K)
    assert max_rel_err(_fft_conv(u, K, 2 * L - 1), direct) < 1e-12
    assert max_rel_err(_fft_conv(u, K, 2 * L - 2), direct) > 1e-3
    assert max_rel_err(_fft_conv(u, K, L), direct) > 0.1
    impulse = torch.zeros(1, L, dtype=F64)
    impulse[:, -1] = 1.0
    wrapped = _fft_conv(impulse, K[:1], L)
    assert (wrapped[:, :-1] - K[:1, 1:]).abs().max().item() < 1e-12  # 长度 L 时 y_k = K_{k+1}
