# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-s4d-init)=
# # S4D 初始化与 HiPPO
#
# 前面几章推导了 S4D 层怎样从参数 A、C、Δ 算出卷积核，但没有说这些参数从哪里开始。
# 对角 A 的初始值决定了每个模态衰减多快、振荡多快；Δ 决定了一个字符对应连续时间里多长的一段。
# 初始化不好，模型一开始就只能记住很短的过去，训练也很难把它拉回来。
# 本章介绍 S4D 使用的几种初始化 {cite}`gu2022s4d` 及其来源 HiPPO {cite}`gu2020hippo`，
# 并解释训练时为什么要给这些参数单独的优化器设置。
#
# ## 学习目标
#
# - 了解 HiPPO 的直觉：把输入的历史投影到一组多项式上，得到对过去的压缩记忆；
# - 写出 S4D-Lin、S4D-Inv 以及作对照的 S4D-Real 三种初始化，并画出它们在不同 Δ 下的基核；
# - 理解 log Δ 为什么在 [log 1e-3, log 1e-1] 上均匀采样，以及它与上下文长度 L = 256 的关系；
# - 理解为什么 log Δ 与 A 不做权重衰减、并使用较小的学习率。

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from s4lab import ssm
from s4lab.layers import LOG_A_REAL_RANGE, S4DLayer
from s4lab.models import parameter_groups
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick
from s4lab.train import TrainConfig

setup_chinese_font()
torch.manual_seed(0)
N = 64  # 完整复对角系统的状态数；只存 N/2 = 32 个模态
n_modes = N // 2

# %% [markdown]
# ## HiPPO 的直觉：用多项式系数记住过去
#
# 一个序列模型在时刻 t 需要回答的问题是：到目前为止的输入 $u(s)$（$s \le t$）是什么样子？
# 完整地保存历史需要越来越多的存储。HiPPO（high-order polynomial projection operators）{cite}`gu2020hippo`
# 的想法是只保存历史在一组正交多项式（例如勒让德多项式，Legendre polynomials）上的前 N 个投影系数：
#
# $$
# u(s) \approx \sum_{n=0}^{N-1} c_n(t)\, P_n\!\left(\frac{2s}{t} - 1\right), \qquad 0 \le s \le t,
# $$ (eq-init-hippo-projection)
#
# 其中 $P_n$ 是 n 次勒让德多项式。HiPPO 论文证明，随着 t 增大，系数向量 $c(t)$ 满足一个线性常微分方程
# $c'(t) = A(t)\, c(t) + B(t)\, u(t)$，也就是一个状态空间模型：状态就是“对过去的压缩记忆”，
# 矩阵 A 由所选的多项式与度量决定。S4 {cite}`gu2022s4` 用的正是这样得到的 HiPPO 矩阵作为 A 的初始值。
#
# 下面用 numpy 直接做一次投影，看看 N 个系数能把一段历史记得多好。
# 这只是演示 {eq}`eq-init-hippo-projection` 的含义，不是 HiPPO 的在线更新。

# %%
s = np.linspace(0.0, 1.0, 1000)  # 历史的时间轴，已缩放到 [0, 1]
history = np.sin(6 * np.pi * s) * np.exp(-2 * s) + (s > 0.6) * 0.8  # 一段带跳变的输入
reconstructions = {}
for n_coeff in (8, 32):
    fit = np.polynomial.legendre.Legendre.fit(s, history, deg=n_coeff - 1)
    reconstructions[n_coeff] = fit(s)
    rms = np.sqrt(np.mean((reconstructions[n_coeff] - history) ** 2))
    print(f"保存 {n_coeff} 个系数：均方根误差 {rms:.3f}")

# %% mystnb={"figure": {"caption": "把一段历史投影到前 8 个与前 32 个勒让德多项式上后的重建。", "name": "fig-init-legendre"}}
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(s, history, color="black", linewidth=2, label="原始历史 u(s)")
for n_coeff, values in reconstructions.items():
    ax.plot(s, values, label=f"前 {n_coeff} 个系数的重建")
ax.set_title("用勒让德多项式系数压缩历史")
ax.set_xlabel("时间 s / t")
ax.set_ylabel("u")
ax.legend()
plt.show()

# %% [markdown]
# {numref}`fig-init-legendre` 中，系数越多，重建越接近原信号；跳变附近最难逼近。
# 状态维数 N 就是模型为每个通道保留的“系数个数”。
#
# ## 三种对角初始化
#
# HiPPO 矩阵不是对角的。S4D {cite}`gu2022s4d` 改用对角 A，并给出了几种简单的对角初始化。
# 它们的实部都是 $-1/2$（S4D-Real 除外），区别在虚部，也就是每个模态的振荡频率。对 $n = 0, \dots, N/2 - 1$：
#
# $$
# \begin{aligned}
# \text{S4D-Lin:}\quad & A_n = -\tfrac{1}{2} + i\pi n, \\
# \text{S4D-Inv:}\quad & A_n = -\tfrac{1}{2} + i\,\frac{N}{\pi}\left(\frac{N}{2n+1} - 1\right), \\
# \text{S4D-Real:}\quad & A_n = -(n+1).
# \end{aligned}
# $$ (eq-init-diag)
#
# S4D-Lin 的频率等间隔，像傅里叶基。S4D-Inv 的虚部按 $1/(2n+1)$ 变化，它与 HiPPO 的关系可以直接算出来：
# S4 用的 HiPPO-LegS 矩阵 $A^{\mathrm{LegS}}$（$n > k$ 时 $A_{nk} = -\sqrt{(2n+1)(2k+1)}$，$A_{nn} = -(n+1)$，其余为 0）
# 加上秩 1 项 $PP^\top$（$P_n = \sqrt{n + 1/2}$）之后是一个正规矩阵 {cite}`gu2022s4`，可以对角化。
# 下面用 numpy 求它的特征值，与 S4D-Inv 的公式比较。
# S4D-Real 没有虚部，每个模态只是一条指数衰减曲线，我们用它来对照振荡模态的作用。

# %%
q = np.arange(N)
A_legs = -np.tril(np.outer(np.sqrt(2 * q + 1), np.sqrt(2 * q + 1))) + np.diag(q)  # (N, N)，对角线为 −(n+1)
P = np.sqrt(q + 0.5)  # (N,)
eig_normal = np.linalg.eigvals(A_legs + np.outer(P, P))  # (N,)，成共轭对
imag_normal = np.sort(eig_normal.imag[eig_normal.imag > 0])[::-1]  # 取虚部为正的 N/2 个，从大到小
imag_inv = (N / math.pi) * (N / (2 * np.arange(n_modes) + 1) - 1)
print(f"正规部分特征值的实部：{eig_normal.real.min():.4f} … {eig_normal.real.max():.4f}")
print("虚部（前 4 个）：HiPPO-LegS 正规部分", np.round(imag_normal[:4], 1), "，S4D-Inv", np.round(imag_inv[:4], 1))
print("虚部（后 4 个）：HiPPO-LegS 正规部分", np.round(imag_normal[-4:], 2), "，S4D-Inv", np.round(imag_inv[-4:], 2))

# %% [markdown]
# 两者的虚部在每个 n 上都同一量级、随 n 的变化规律相同，实部都是 $-1/2$：S4D-Inv 可以看作这组特征值的一个简单的闭式近似。
# 下面先按 {eq}`eq-init-diag` 手写三种初始化，再与 `s4lab.ssm.s4d_init_A` 比较。

# %%
n = torch.arange(n_modes, dtype=torch.float64)
handwritten = {
    "lin": torch.complex(-0.5 * torch.ones_like(n), math.pi * n),
    "inv": torch.complex(-0.5 * torch.ones_like(n), (N / math.pi) * (N / (2 * n + 1) - 1)),
    "real": torch.complex(-(n + 1), torch.zeros_like(n)),
}
inits = {method: ssm.s4d_init_A(n_modes, method) for method in handwritten}  # 各为 (N/2,) complex64
for method, A in inits.items():
    print(f"{method:>4}：A_0..A_3 = {[complex(round(a.real, 3), round(a.imag, 3)) for a in A[:4].tolist()]}")

# %% [markdown]
# 检查：s4lab 的初始化与手写公式一致（complex64 的舍入以内），S4D-Lin 的虚部恰好是 $\pi n$，
# 三者的实部都严格为负。
#
# 结果见 {numref}`fig-init-imag`。

# %%
# NBVAL_CHECK_OUTPUT
for method, A in inits.items():
    rel = ((A.to(torch.complex128) - handwritten[method]).abs() / handwritten[method].abs()).max().item()
    assert rel <= 1e-6, (method, rel)
    assert (A.real < 0).all(), method
lin_imag_err = (inits["lin"].imag.double() - math.pi * n).abs().max().item()
assert lin_imag_err <= 1e-5 * math.pi * n_modes, lin_imag_err
print("三种初始化与公式一致、实部均为负：True")
print(f"S4D-Lin 的虚部等于 π·n（n = 0…{n_modes - 1}）：{lin_imag_err <= 1e-5 * math.pi * n_modes}")

# %% mystnb={"figure": {"caption": "三种初始化下各模态的频率 Im(A_n)（纵轴在 |y| > 1 处为对数刻度）。", "name": "fig-init-imag"}}
fig, ax = plt.subplots(figsize=(6, 3.5))
labels = {"lin": "S4D-Lin", "inv": "S4D-Inv", "real": "S4D-Real"}
for method, A in inits.items():
    ax.plot(n.numpy(), A.imag.numpy(), "o-", markersize=3, label=labels[method])
ax.set_yscale("symlog", linthresh=1.0)
ax.set_title("各模态的频率 Im(A_n)")
ax.set_xlabel("模态序号 n")
ax.set_ylabel("Im(A_n)")
ax.legend()
plt.show()

# %% [markdown]
# ## 初始化时的基核
#
# 取 C 的第 n 个分量为 1、其余为 0，{ref}`ch-kernel` 中的卷积核就只剩一个模态的贡献，
# 称为第 n 个基核（basis kernel）：
#
# $$
# K^{(n)}_l = 2\,\mathrm{Re}\big(\bar{B}_n \bar{A}_n^{\,l}\big)
# = 2\,\mathrm{Re}\big(\Delta\,\varphi(\Delta A_n)\, e^{l \Delta A_n}\big).
# $$ (eq-init-basis)
#
# 训练得到的卷积核是这些基核以 C 为系数的组合。把每个模态当作一个通道、C 取 1，
# `s4d_kernel` 一次就能算出全部基核。{numref}`fig-init-basis` 画出三种初始化在三个 Δ 下的前四个基核。

# %%
L_show = 256
dts = [1e-3, 1e-2, 1e-1]
modes_shown = 4


def basis_kernels(A, dt, L):
    """第 0…modes_shown−1 个模态的基核，形状 (modes_shown, L)：每个模态当作一个通道，C = 1。"""
    A_modes = A[:modes_shown].unsqueeze(-1)  # (modes_shown, 1)
    C_ones = torch.ones_like(A_modes)  # (modes_shown, 1)
    log_dt = torch.full((modes_shown,), math.log(dt))  # (modes_shown,)
    return ssm.s4d_kernel(A_modes, C_ones, log_dt, L)


# %% mystnb={"figure": {"caption": "三种初始化（列）在三个 Δ（行）下的前四个基核，纵轴除以 Δ 使各行可比。", "name": "fig-init-basis"}}
fig, axes = plt.subplots(len(dts), len(inits), figsize=(10, 7), sharex=True)
for row, dt in enumerate(dts):
    for col, (method, A) in enumerate(inits.items()):
        K_basis = basis_kernels(A, dt, L_show) / dt  # (modes_shown, L)
        ax = axes[row, col]
        for mode in range(modes_shown):
            ax.plot(K_basis[mode].numpy(), linewidth=1, label=f"n = {mode}")
        ax.set_title(f"{labels[method]}，Δ = {dt:g}", fontsize=10)
        if row == len(dts) - 1:
            ax.set_xlabel("延迟 l（步）")
        if col == 0:
            ax.set_ylabel("K / Δ")
axes[0, 0].legend(fontsize=8)
fig.suptitle("初始化时的基核")
fig.tight_layout()
plt.show()

# %% [markdown]
# S4D-Inv 的频率随 n 增大而降低，所以它的前四个模态是其中振荡最快的。图中有两个规律。第一，Δ 越小，基核在 256 步内衰减得越少、振荡得越慢：同一个连续系统被“拉长”了。
# 第二，S4D-Real 的基核只有衰减、没有振荡，而 S4D-Lin 和 S4D-Inv 的高阶模态在衰减的同时振荡，
# 这让它们的组合能表示更丰富的形状。
#
# ## Δ 的取值范围与时间尺度
#
# 对 S4D-Lin 和 S4D-Inv，所有模态的实部都是 $-1/2$，所以基核的包络是
#
# $$
# |\bar{A}_n|^l = e^{\mathrm{Re}(A_n)\,\Delta\, l} = e^{-\Delta l / 2}.
# $$ (eq-init-envelope)
#
# 连续系统的时间尺度是 1 的量级（衰减率 1/2，频率 $\pi n$），而离散化后一步对应连续时间里的 Δ，
# 所以换算成步数，时间尺度约为 $1/\Delta$ 步；按 {eq}`eq-init-envelope`，包络降到 $1/e$ 需要 $2/\Delta$ 步。
# S4D 把每个通道的 log Δ 在 $[\log 10^{-3}, \log 10^{-1}]$ 上均匀采样，
# 时间尺度 $1/\Delta$ 因而覆盖 10 到 1000 步，而且每个数量级分到的通道数相同。
# 本书的上下文长度是 L = 256 个字符：Δ 接近 0.1 的通道只看最近十几个字符（一个词的范围），
# Δ 接近 0.001 的通道在 256 步内几乎不衰减，相当于对整段上下文做加权累积。
# 下面用一个新初始化的层统计两类通道的比例，并与对数均匀分布的理论值比较。

# %%
H_model, L_context = 128, 256
layer = S4DLayer(d_model=H_model, d_state=N)
with torch.no_grad():
    dt_layer = layer.dt()  # (H,)
efold_steps = 2 / dt_layer  # (H,)，包络降到 1/e 所需的步数
dt_threshold = 2 / L_context  # 2/Δ > L 等价于 Δ < 2/L
expected_fraction = (math.log(dt_threshold) - math.log(1e-3)) / (math.log(1e-1) - math.log(1e-3))
print(f"Δ 的范围：{dt_layer.min().item():.2e} … {dt_layer.max().item():.2e}")
print(f"包络降到 1/e 所需步数：{efold_steps.min().item():.0f} … {efold_steps.max().item():.0f}")
print(
    f"记忆长于 L = {L_context} 的通道比例：{(efold_steps > L_context).float().mean().item():.2f}"
    f"（对数均匀分布的理论值 {expected_fraction:.2f}）"
)

# %% [markdown]
# 初始化之后，训练会改变 A、C 和 Δ。我们希望卷积核在任何参数值下都有限且稳定。
# S4D 层把 A 的实部写成 $\mathrm{Re}(A) = -\exp(\texttt{log\_A\_real})$，所以无论优化器把原始参数推到哪里，
# 实部都严格为负，系统都是稳定的。检查：把原始参数设为从 $-10^4$ 到 $10^4$ 的值，`layer.A()` 的实部全部小于 0。

# %%
# NBVAL_CHECK_OUTPUT
raw_layer = S4DLayer(d_model=8, d_state=N)
raw_values = torch.linspace(-1e4, 1e4, raw_layer.log_A_real.numel()).reshape(raw_layer.log_A_real.shape)
with torch.no_grad():
    raw_layer.log_A_real.copy_(raw_values)  # (H, N/2)，覆盖 [-1e4, 1e4]
    raw_layer.A_imag.copy_(raw_values.flip(0))
    A_raw = raw_layer.A()  # (H, N/2)
assert torch.isfinite(A_raw.real).all()
assert (A_raw.real < 0).all()
print(f"原始参数取 [-1e4, 1e4] 时 Re(A) 全部 < 0：{bool((A_raw.real < 0).all())}")

# %% [markdown]
# 为了让数值保持有限，层在取指数之前把 `log_A_real` 截断在一个远离初始值的区间里，所以 $\mathrm{Re}(A)$ 的取值范围是：

# %%
low, high = LOG_A_REAL_RANGE
print(f"log_A_real 截断在 [{low}, {high}]，Re(A) ∈ [{-math.exp(high):.3g}, {-math.exp(low):.3g}]")

# %% [markdown]
# 另一个检查：初始化时的卷积核对很宽的 Δ 范围和很长的序列都是有限的。
# 这里 Δ 从 $10^{-4}$ 取到 10（层允许的整个范围），L = 65,536，两种复数初始化都检查。

# %%
# NBVAL_CHECK_OUTPUT
dt_grid = torch.logspace(-4, 1, 6)  # 1e-4 … 10，每个 Δ 一个通道
L_long = 65_536
finite = {}
for method in ("lin", "inv"):
    A_grid = inits[method].unsqueeze(0).expand(len(dt_grid), n_modes)  # (6, N/2)
    C_grid = torch.randn(len(dt_grid), n_modes, dtype=torch.complex64)  # (6, N/2)
    K_long = ssm.s4d_kernel(A_grid, C_grid, torch.log(dt_grid), L_long)  # (6, L)
    finite[method] = bool(torch.isfinite(K_long).all())
    assert finite[method], method
print(f"Δ ∈ [1e-4, 10]、L = {L_long}：S4D-Lin 卷积核有限 {finite['lin']}，S4D-Inv 卷积核有限 {finite['inv']}")

# %% [markdown]
# ## 这些参数不做权重衰减
#
# 权重衰减（weight decay）把参数拉向 0。对矩阵形状的权重（线性层、嵌入、C），这相当于偏好更小的权重，是一种正则化。
# 但 log Δ 与 A 的原始参数不是这样的权重：`log_dt` = 0 意味着 Δ = 1，`log_A_real` = 0 意味着 Re(A) = −1，
# `A_imag` = 0 意味着不振荡。把它们拉向 0 改变的是每个通道的时间尺度与频率，而不是缩小某个权重。
#
# 下面用本书训练脚本的默认设置（`TrainConfig` 中的学习率与权重衰减系数）构造 AdamW，
# 把梯度设为 0，只让解耦权重衰减（decoupled weight decay）起作用，看看若干步之后参数被拉到哪里。

# %%
config = TrainConfig()
decay_steps = 500 if is_quick() else 5000  # 快速模式只缩短这段演示
decay_layer = S4DLayer(d_model=H_model, d_state=N)
ssm_params = [getattr(decay_layer, name) for name in S4DLayer.ssm_parameter_names]
optimizer = torch.optim.AdamW(ssm_params, lr=config.lr, weight_decay=config.weight_decay)
with torch.no_grad():
    dt_before, A_before = decay_layer.dt().clone(), decay_layer.A().clone()
for _ in range(decay_steps):
    for p in ssm_params:
        p.grad = torch.zeros_like(p)  # 只剩权重衰减
    optimizer.step()
with torch.no_grad():
    dt_after, A_after = decay_layer.dt(), decay_layer.A()
print(f"lr = {config.lr}，weight_decay = {config.weight_decay}，只做权重衰减 {decay_steps} 步：")
print(f"  Δ 的范围：{dt_before.min().item():.2e}…{dt_before.max().item():.2e} → {dt_after.min().item():.2e}…{dt_after.max().item():.2e}")
print(f"  Re(A)：{A_before.real.mean().item():.3f} → {A_after.real.mean().item():.3f}")
print(f"  最大频率 Im(A)：{A_before.imag.max().item():.1f} → {A_after.imag.max().item():.1f}")

# %% [markdown]
# 权重衰减在这里的效果不是缩小权重，而是改变了动力学：Δ 变大，最长的时间尺度被缩短；衰减率 |Re(A)| 变大；频率整体下移。
# 因此 `s4lab.models.parameter_groups` 把 `log_dt`、`log_A_real`、`A_imag` 放进单独的一组，权重衰减为 0；
# C 仍按普通权重处理。

# %%
groups = parameter_groups(layer, lr=config.lr, weight_decay=config.weight_decay, ssm_lr=config.ssm_lr)
for group in groups:
    print(f"{group['name']:>8}：{len(group['params'])} 个参数张量，lr = {group['lr']}，weight_decay = {group['weight_decay']}")

# %% [markdown]
# ## 这些参数使用较小的学习率
#
# Adam 类优化器每一步让每个参数移动的幅度大致与学习率相当，与梯度的尺度无关。
# 于是要问：每个参数移动同样的幅度，卷积核变化多少？
# 下面给 log Δ、A 与 C 分别加上幅度为 lr 的随机扰动（符号随机），比较长度 L = 256 的卷积核的相对变化。

# %%
def kernel_change(layer, name, size, L):
    """给参数 name 加上 ±size 的随机扰动，返回卷积核的相对变化 ‖K′ − K‖ / ‖K‖。"""
    with torch.no_grad():
        K_before = layer.kernel(L)  # (H, L)
        param = getattr(layer, name)
        saved = param.clone()
        param.add_(size * torch.sign(torch.randn_like(param)))
        K_after = layer.kernel(L)  # (H, L)
        param.copy_(saved)
    return ((K_after - K_before).norm() / K_before.norm()).item()


changes = {}
for name in ("log_dt", "log_A_real", "A_imag", "C"):
    changes[name] = kernel_change(layer, name, config.lr, L_context)
    print(f"{name:>10} 移动 ±{config.lr}：卷积核相对变化 {changes[name]:.2e}")
print(f"log_dt 与 C 的比值：{changes['log_dt'] / changes['C']:.0f}")

# %% [markdown]
# 在这次测量中，log Δ 上的一步让卷积核的变化比 C 上同样大小的一步大得多（比值见上面的输出）：
# log Δ 同时缩放一个通道所有模态的 $\Delta A_n$，而第 l 步的相位 $l\,\Delta\,\mathrm{Im}(A_n)$ 随之按同一比例改变，
# 对高频模态与大的 l，这个相位差很大，整个卷积核都跟着移动。
# A 的原始参数在 L = 256 时与 C 的影响相当，但频率的改变 δ 在第 l 步造成 $l\,\Delta\,\delta$ 的相位差，随 L 增大而增大（练习 4）。
# 所以本书的训练脚本给这一组参数较小的学习率（`ssm_lr`）；S4D 的原始实现同样给 A 与 Δ 单独的学习率且不做权重衰减 {cite}`gu2022s4d`。

# %%
print(f"默认学习率：普通参数 lr = {config.lr}，SSM 参数 ssm_lr = {config.ssm_lr}")

# %% [markdown]
# ## 小结
#
# - HiPPO 把历史投影到多项式上，系数随时间的演化是一个线性 SSM；S4D 用对角 A 近似这种记忆，常用 S4D-Lin 与 S4D-Inv 初始化。
# - 基核 {eq}`eq-init-basis` 的包络由 $\mathrm{Re}(A)\Delta$ 决定，振荡由 $\mathrm{Im}(A)\Delta$ 决定；log Δ 在 $[\log 10^{-3}, \log 10^{-1}]$ 上均匀采样，使时间尺度覆盖 10 到 1000 步。
# - $\mathrm{Re}(A) = -\exp(\cdot)$ 的参数化保证任意原始参数下系统都稳定。
# - log Δ 与 A 决定时间尺度，不做权重衰减，学习率也更小。
#
# ## 练习
#
# 1. 用 S4D-Real 初始化时，基核能表示振荡的形状吗？试着用 32 个 S4D-Real 基核的线性组合拟合一段正弦波，与 S4D-Lin 比较误差。
# 2. 如果把 Δ 的范围改成 $[10^{-2}, 1]$，在 L = 256 的上下文中，记忆长于 L 的通道比例是多少？先用公式算，再用 `S4DLayer(dt_min=..., dt_max=...)` 验证。
# 3. 把 `decay_steps` 改成训练实际的步数，重新计算 Δ 的范围。衰减对最长时间尺度的影响有多大？
# 4. 为什么 `kernel_change` 中 `A_imag` 的影响随 L 增大而变大？把 L 改成 4096 验证你的推理。
