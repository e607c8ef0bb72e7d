"""状态空间模型（SSM）的纯数学部分：离散化、卷积核、FFT 卷积与递推。

本模块不依赖 ``nn.Module``、训练或绘图，只对张量做运算。符号与全书一致：

- ``H``：通道数（模型宽度），每个通道是一个独立的单输入单输出 SSM；
- ``N``：状态维数。对角 A 的每个元素是一个模态（mode）。S4D 的 A 由共轭对组成，
  整个系统有 N 个复模态，只存其中 N/2 个，另一半是它们的共轭，输出取 ``2·Re(…)``；
  本模块的函数只看到实际存储的那些模态，形状写作 ``(H, n)``；
- ``L``：序列长度；``dt``：步长 Δ（不是秒）。

形状约定：参数 ``(H, n)``，输入输出 ``(..., H, L)``，卷积核 ``(H, L)``。
支持 float32/float64 与 complex64/complex128。
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "DISCRETIZATION_METHODS",
    "expm1_over_x",
    "discretize",
    "vandermonde_kernel",
    "s4d_kernel",
    "KERNEL_METHODS",
    "causal_fft_conv",
    "scan",
    "s4d_init_A",
]

DISCRETIZATION_METHODS = ("zoh", "bilinear", "euler")


def expm1_over_x(x: torch.Tensor) -> torch.Tensor:
    """逐元素计算 φ(x) = (e^x − 1)/x，x → 0 时取极限 1。

    直接写 ``(exp(x) - 1) / x`` 在 |x| 很小时有灾难性抵消（float32 下 x = 1e-6 时误差约 10 %），
    x = 0 时还会除以零。这里用 ``expm1`` 计算分子；复数情形按
    e^(a+ib) − 1 = (expm1(a)·cos b − 2·sin²(b/2)) + i·eᵃ·sin b 展开，两部分都没有抵消。
    """
    if x.is_complex():
        a, b = x.real, x.imag
        numerator = torch.complex(
            torch.expm1(a) * torch.cos(b) - 2.0 * torch.sin(b / 2) ** 2,
            torch.exp(a) * torch.sin(b),
        )
    else:
        numerator = torch.expm1(x)
    is_zero = x == 0
    # 分母先把 0 换成 1，使反向传播里也不出现 0/0。
    safe_x = torch.where(is_zero, torch.ones_like(x), x)
    return torch.where(is_zero, torch.ones_like(numerator), numerator / safe_x)


def discretize(A: torch.Tensor, B: torch.Tensor, dt, method: str = "zoh"):
    """把对角连续系统 x' = A x + B u 离散成 x_k = Ā x_{k−1} + B̄ u_k。

    ``A`` 存的是对角线（每个元素一个模态），``B`` 与 ``dt`` 可广播到 ``A`` 的形状，
    例如 A: (H, n)、B: (H, n)、dt: (H, 1)。返回 ``(A_bar, B_bar)``。

    - ``"zoh"``（零阶保持）：Ā = e^{ΔA}，B̄ = Δ·φ(ΔA)·B，φ(x) = (e^x − 1)/x；
    - ``"bilinear"``（双线性 / Tustin）：Ā = (1 + ΔA/2)/(1 − ΔA/2)，B̄ = Δ·B/(1 − ΔA/2)；
    - ``"euler"``（前向欧拉）：Ā = 1 + ΔA，B̄ = Δ·B。
    """
    if method not in DISCRETIZATION_METHODS:
        raise ValueError(
            f"未知的离散化方法 {method!r}：可选 {', '.join(DISCRETIZATION_METHODS)}。"
        )
    dt = torch.as_tensor(dt, dtype=A.real.dtype, device=A.device)
    if not torch.all(dt > 0):
        raise ValueError(f"步长 dt 必须为正数，收到的最小值是 {dt.min().item()!r}。")
    dtA = dt * A
    if method == "zoh":
        return torch.exp(dtA), dt * expm1_over_x(dtA) * B
    if method == "bilinear":
        denominator = 1 - dtA / 2
        return (1 + dtA / 2) / denominator, dt * B / denominator
    return 1 + dtA, dt * B


def _power_sum(log_base: torch.Tensor, coeff: torch.Tensor, L: int, real_part: bool):
    """计算 Σ_n coeff[h, n] · exp(l · log_base[h, n])，l = 0…L−1，得到 (H, L)。

    复指数按极坐标拆成实数运算：exp(l·(a + ib)) = e^{la}(cos lb + i sin lb)。
    在 CPU 上这比直接对复张量调用 ``torch.exp`` 快约 5 倍，结果相同。
    """
    l = torch.arange(L, dtype=log_base.real.dtype, device=log_base.device)  # (L,)
    if not log_base.is_complex():
        powers = torch.exp(log_base.unsqueeze(-1) * l)  # (H, n, L)
        out = torch.einsum("hn,hnl->hl", coeff, powers)
        return out
    magnitude = torch.exp(log_base.real.unsqueeze(-1) * l)  # (H, n, L)
    phase = log_base.imag.unsqueeze(-1) * l  # (H, n, L)
    cos_part = magnitude * torch.cos(phase)
    sin_part = magnitude * torch.sin(phase)
    c_re, c_im = coeff.real, coeff.imag
    re = torch.einsum("hn,hnl->hl", c_re, cos_part) - torch.einsum("hn,hnl->hl", c_im, sin_part)
    if real_part:
        return re
    im = torch.einsum("hn,hnl->hl", c_re, sin_part) + torch.einsum("hn,hnl->hl", c_im, cos_part)
    return torch.complex(re, im)


def _safe_log(z: torch.Tensor) -> torch.Tensor:
    """取对数，把 0 换成最小正规数，使 0⁰ = 1、0ˡ = 0（l ≥ 1）仍然成立。"""
    tiny = torch.finfo(z.real.dtype).tiny
    if z.is_complex():
        return torch.complex(torch.log(z.abs().clamp_min(tiny)), torch.angle(z))
    if torch.any(z < 0):
        # 负实数的幂会变号，转成复数计算再取实部。
        return _safe_log(z.to(torch.complex128 if z.dtype == torch.float64 else torch.complex64))
    return torch.log(z.clamp_min(tiny))


def vandermonde_kernel(A_bar, B_bar, C, L: int, conj_pairs: bool = False) -> torch.Tensor:
    """卷积核 K_l = Σ_n C_n · Ā_nˡ · B̄_n，l = 0…L−1（对角 A 时这是范德蒙德矩阵乘积）。

    ``A_bar``、``B_bar``、``C`` 形状为 (H, n)，返回 (H, L)。
    ``conj_pairs=True`` 表示存储的 n 个模态各代表一对共轭模态，返回 2·Re(K)（实数）；
    否则返回 K 本身（输入为复数时 K 也是复数）。
    """
    if L < 1:
        raise ValueError(f"卷积核长度 L 必须 ≥ 1，收到 {L!r}。")
    log_base = _safe_log(A_bar)
    coeff = C * B_bar
    if coeff.is_complex() and not log_base.is_complex():
        log_base = log_base.to(coeff.dtype)
    if log_base.is_complex() and not coeff.is_complex():
        coeff = coeff.to(log_base.dtype)
    if conj_pairs:
        return 2 * _power_sum(log_base, coeff, L, real_part=True)
    out = _power_sum(log_base, coeff, L, real_part=False)
    if not (A_bar.is_complex() or B_bar.is_complex() or C.is_complex()) and out.is_complex():
        out = out.real
    return out


def _chunked_power_sum_real(log_base: torch.Tensor, coeff: torch.Tensor, L: int) -> torch.Tensor:
    """与 ``_power_sum(log_base, coeff, L, real_part=True)`` 结果相同，但只需 O(H·n·√L) 次超越函数。

    把 l 写成 l = c·m + j（0 ≤ j < c，0 ≤ m < M，c ≈ √L，M = ⌈L/c⌉），于是
    Ā^l = Ā^{c·m} · Ā^j，K[h, c·m + j] = Re Σ_n (coeff·Ā^{c·m})[h, n, m] · (Ā^j)[h, n, j]。
    对 n 的求和是 H 个 (M, n) × (n, c) 的复矩阵乘积，写成实数就是一次
    (M, 2n) × (2n, c) 的批量矩阵乘法。两组幂都用极坐标 e^{la}(cos lb + i sin lb) 计算，
    外层的幂在 float64 中计算，所以 float32 下的误差不大于直接公式的误差。
    """
    H, n = log_base.shape
    chunk = 1 << max(0, math.ceil(math.log2(math.sqrt(L))))  # c：不小于 √L 的 2 的幂
    n_chunks = -(-L // chunk)  # M = ⌈L/c⌉
    real_dtype = log_base.real.dtype
    a, b = log_base.real.unsqueeze(-1), log_base.imag.unsqueeze(-1)  # (H, n, 1)

    j = torch.arange(chunk, dtype=real_dtype, device=log_base.device)  # (c,)
    inner_mag = torch.exp(a * j)  # (H, n, c)
    inner = torch.cat((inner_mag * torch.cos(b * j), inner_mag * torch.sin(b * j)), dim=1)  # (H, 2n, c)

    # 外层的相位 b·c·m 可达数千弧度，float32 舍入会带来约 1e-4 弧度的相位误差。
    # 外层只有 H·n·M 个元素，所以总在 float64 中计算，再转回输入的精度。
    wide = torch.float64
    a_wide, b_wide = a.to(wide), b.to(wide)  # (H, n, 1)
    m = torch.arange(n_chunks, dtype=wide, device=log_base.device) * chunk  # (M,)
    outer_mag = torch.exp(a_wide * m)  # (H, n, M)
    outer_re, outer_im = outer_mag * torch.cos(b_wide * m), outer_mag * torch.sin(b_wide * m)  # (H, n, M)
    c_re, c_im = coeff.real.unsqueeze(-1).to(wide), coeff.imag.unsqueeze(-1).to(wide)  # (H, n, 1)
    # w = coeff·Ā^{c·m}；Re(w·p) = Re(w)·Re(p) − Im(w)·Im(p)
    w_re = c_re * outer_re - c_im * outer_im  # (H, n, M)
    w_im = c_re * outer_im + c_im * outer_re  # (H, n, M)
    outer = torch.cat((w_re, -w_im), dim=1).transpose(1, 2).to(real_dtype)  # (H, M, 2n)

    K = torch.bmm(outer, inner)  # (H, M, c)
    return K.reshape(H, n_chunks * chunk)[:, :L]  # (H, L)


KERNEL_METHODS = ("chunked", "vandermonde")


def s4d_kernel(
    A: torch.Tensor, C: torch.Tensor, log_dt: torch.Tensor, L: int, method: str = "chunked"
) -> torch.Tensor:
    """S4D 的卷积核：零阶保持离散化（B = 1），共轭对，返回实数核 (H, L)。

    ``A``、``C`` 为 (H, n) 复数，``log_dt`` 为 (H,)。K_l = 2·Re(Σ_n C_n · Δφ(ΔA_n) · e^{lΔA_n})。
    直接用 ΔA 作为 Ā 的对数，省去先求 e^{ΔA} 再取对数的往返。

    ``method``：
    - ``"chunked"``（默认）：Ā^l = Ā^{c·m}·Ā^j 分块，对状态的求和变成批量矩阵乘法，
      超越函数只算 O(H·n·√L) 次；
    - ``"vandermonde"``：直接按公式用复指数计算全部 H·n·L 个幂，作为对照（基准测试中的“直接公式”）。
    两者在 float32 下的相对误差（按范数）在 1e-5 以内，``tests/test_fast_kernel.py`` 检查这一点。
    """
    if method not in KERNEL_METHODS:
        raise ValueError(f"未知的卷积核算法 {method!r}：可选 {', '.join(KERNEL_METHODS)}。")
    if L < 1:
        raise ValueError(f"卷积核长度 L 必须 ≥ 1，收到 {L!r}。")
    dt = torch.exp(log_dt).unsqueeze(-1)  # (H, 1)
    dtA = dt * A  # (H, n)
    B_bar = dt * expm1_over_x(dtA)  # (H, n)，B = 1
    if method == "vandermonde":
        # 课本上的直接公式：H·n·L 个复指数，一个不省。
        l = torch.arange(L, dtype=dtA.real.dtype, device=dtA.device)  # (L,)
        powers = torch.exp(dtA.unsqueeze(-1) * l)  # (H, n, L)，复数
        return 2 * torch.einsum("hn,hnl->hl", C * B_bar, powers).real  # (H, L)
    return 2 * _chunked_power_sum_real(dtA, C * B_bar, L)  # (H, L)


def causal_fft_conv(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """因果卷积 y_k = Σ_{j=0}^{k} K_j · u_{k−j}，用 FFT 计算。

    ``u``：(..., H, L) 实数；``K``：(H, L) 或 (H, L_K)（L_K ≥ L 时截到 L）。返回 (..., H, L)。
    FFT 长度取 2L ≥ 2L − 1，循环卷积的回绕部分落在被丢弃的后半段，所以不会把未来泄漏到过去。
    """
    L = u.shape[-1]
    if K.shape[-1] < L:
        raise ValueError(f"卷积核长度 {K.shape[-1]} 短于输入长度 {L}：请生成长度至少为 {L} 的卷积核。")
    K = K[..., :L]
    n_fft = 2 * L
    u_f = torch.fft.rfft(u, n=n_fft)  # (..., H, L + 1)
    K_f = torch.fft.rfft(K, n=n_fft)  # (H, L + 1)
    return torch.fft.irfft(u_f * K_f, n=n_fft)[..., :L]


def scan(A_bar, B_bar, C, u: torch.Tensor, conj_pairs: bool = False, x0=None, return_state=False):
    """逐步递推 x_k = Ā x_{k−1} + B̄ u_k，y_k = C x_k（共轭对时 y_k = 2·Re(C x_k)）。

    ``A_bar``、``B_bar``、``C``：(H, n)；``u``：(..., H, L)；初始状态 ``x0``：(..., H, n)，默认 0。
    返回 y：(..., H, L)；``return_state=True`` 时同时返回最后的状态 (..., H, n)。
    每一步的代价与 L 无关，这正是生成时使用的模式。
    """
    dtype = torch.promote_types(torch.promote_types(A_bar.dtype, B_bar.dtype), C.dtype)
    batch_shape = u.shape[:-2]
    H, n = A_bar.shape[-2], A_bar.shape[-1]
    if x0 is None:
        x = torch.zeros(*batch_shape, H, n, dtype=dtype, device=u.device)
    else:
        x = x0.to(dtype)
    outputs = []
    for k in range(u.shape[-1]):
        x = A_bar * x + B_bar * u[..., k].unsqueeze(-1)  # (..., H, n)
        y = (C * x).sum(-1)  # (..., H)
        if conj_pairs:
            y = 2 * y.real
        outputs.append(y)
    y = torch.stack(outputs, dim=-1)  # (..., H, L)
    if not conj_pairs and not u.is_complex() and y.is_complex() and not any(
        t.is_complex() for t in (A_bar, B_bar, C)
    ):
        y = y.real
    return (y, x) if return_state else y


def s4d_init_A(n_modes: int, method: str = "lin") -> torch.Tensor:
    """S4D 的对角 A 初始化，返回 n_modes 个复数（每个代表一对共轭模态中的一个）。

    - ``"lin"``（S4D-Lin）：A_n = −1/2 + iπn；
    - ``"inv"``（S4D-Inv）：A_n = −1/2 + i·(N/π)·(N/(2n + 1) − 1)，N = 2·n_modes；
    - ``"real"``（S4D-Real，对照用）：A_n = −(n + 1)，虚部为 0。
    n = 0…n_modes−1。三者实部都为负，所以系统稳定。
    """
    if n_modes < 1:
        raise ValueError(f"模态数必须 ≥ 1，收到 {n_modes!r}。")
    n = torch.arange(n_modes, dtype=torch.float64)
    if method == "lin":
        real, imag = -0.5 * torch.ones_like(n), math.pi * n
    elif method == "inv":
        N = 2 * n_modes
        real, imag = -0.5 * torch.ones_like(n), (N / math.pi) * (N / (2 * n + 1) - 1)
    elif method == "real":
        real, imag = -(n + 1), torch.zeros_like(n)
    else:
        raise ValueError(f"未知的 S4D 初始化 {method!r}：可选 'lin'、'inv'、'real'。")
    return torch.complex(real, imag).to(torch.complex64)
