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
# (ch-s4d-layer)=
# # S4D 层
#
# 前面几章分别推导了卷积核（{ref}`ch-kernel`）、FFT 卷积（{ref}`ch-fft`）、递推（{ref}`ch-recurrence`）
# 和初始化（{ref}`ch-s4d-init`）。本章把它们组装成实验中使用的 S4D 层 {cite}`gu2022s4d`：
# 卷积核与 FFT 卷积负责沿序列方向混合信息，跳连项 D、GELU 非线性和输出混合（Linear H → 2H 之后接 GLU）负责在通道之间混合信息。
# 我们先在 notebook 里用 `s4lab.ssm` 的函数和层的参数一步一步写出前向计算，再与 `s4lab.layers.S4DLayer` 比较。
#
# ## 学习目标
#
# - 说出 S4D 层前向计算的每一步，以及每一步张量的形状；
# - 用数值验证手写的前向计算与 `S4DLayer` 一致；
# - 数清一个 S4D 层有多少参数、分别属于哪一部分；
# - 验证整层是因果的：改变第 t 个位置的输入，不影响 t 之前的输出。

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from s4lab import ssm
from s4lab.layers import CausalSelfAttention, S4DLayer
from s4lab.plotting import setup_chinese_font

setup_chinese_font()
torch.manual_seed(0)

# 检查用的规模在两种模式下相同，整章在 CPU 上只需几秒。
B, L, H, N = 2, 256, 16, 64
layer = S4DLayer(d_model=H, d_state=N).eval()
x = torch.randn(B, L, H)  # (B, L, H)
print(f"B = {B}，L = {L}，H = {H}，N = {N}")

# %% [markdown]
# ## 前向计算的五步
#
# 设输入 $x \in \mathbb{R}^{B \times L \times H}$。S4D 层把每个通道 h 看作一条长度为 L 的序列 $u_h$，依次计算：
#
# $$
# \begin{aligned}
# K_h &= \text{卷积核}(A_h, C_h, \Delta_h), &&\text{(H, L)}\\
# v_h &= K_h * u_h + D_h\, u_h, &&\text{(B, H, L)}\\
# w &= \mathrm{GELU}(v), &&\text{(B, H, L)}\\
# z &= W w + b, \quad W \in \mathbb{R}^{2H \times H}, &&\text{(B, L, 2H)}\\
# \text{输出} &= z_{1:H} \odot \sigma(z_{H+1:2H}). &&\text{(B, L, H)}
# \end{aligned}
# $$ (eq-layer-forward)
#
# 第一步是 {ref}`ch-kernel` 中的核，$*$ 是因果卷积；$D_h u_h$ 是跳连项，让输入不经过状态直接到达输出。
# GELU（Gaussian error linear unit）是逐元素的非线性 $\mathrm{GELU}(v) = v\,\Phi(v)$，$\Phi$ 为标准正态分布函数。
# 最后一步的门控线性单元（gated linear unit，GLU）把 2H 维的线性输出分成两半，用后一半经过 sigmoid $\sigma$ 之后作为前一半的门。
# 卷积只在每个通道内部沿时间混合，通道之间的信息交换全靠最后的线性层。
#
# 下面从层的参数出发，按 {eq}`eq-layer-forward` 逐行写出前向计算。这里故意换一条路算卷积核：
# 先用 `discretize` 得到 $\bar{A}$、$\bar{B}$，再用 `vandermonde_kernel`，而层内部用的是 `s4d_kernel`。

# %%
with torch.no_grad():
    u = x.transpose(1, 2)  # (B, L, H) → (B, H, L)
    A = layer.A()  # (H, N/2) 复数
    C = layer.C_complex()  # (H, N/2)
    dt = layer.dt().unsqueeze(-1)  # (H, 1)
    A_bar, B_bar = ssm.discretize(A, torch.ones_like(A), dt, "zoh")  # 各为 (H, N/2)，B = 1
    K = ssm.vandermonde_kernel(A_bar, B_bar, C, L, conj_pairs=True)  # (H, L)
    v = ssm.causal_fft_conv(u, K) + layer.D.unsqueeze(-1) * u  # (B, H, L)
    w = v * 0.5 * (1 + torch.erf(v / math.sqrt(2)))  # (B, H, L)，GELU(v) = v·Φ(v)
    w = w.transpose(1, 2)  # (B, H, L) → (B, L, H)
    z = w @ layer.output_linear.weight.T + layer.output_linear.bias  # (B, L, 2H)
    out_manual = z[..., :H] * torch.sigmoid(z[..., H:])  # (B, L, H)

for name, tensor in [("u", u), ("K", K), ("v", v), ("w", w), ("z", z), ("输出", out_manual)]:
    print(f"{name:>4}：{tuple(tensor.shape)}")

# %% [markdown]
# 检查：手写的前向计算与 `S4DLayer` 的输出一致。两者都在 float32 中计算，我们要求相对误差不超过 1e-5；
# 同时检查两条路径算出的卷积核一致。

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    out_layer = layer(x)  # (B, L, H)
    K_layer = layer.kernel(L)  # (H, L)
err_out = ((out_manual - out_layer).abs().max() / out_layer.abs().max()).item()
err_K = ((K - K_layer).abs().max() / K_layer.abs().max()).item()
assert out_layer.shape == (B, L, H), out_layer.shape
assert err_K <= 1e-5, err_K
assert err_out <= 1e-5, err_out
print(f"输出形状 {tuple(out_layer.shape)}")
print(f"两条路径的卷积核相对误差 ≤ 1e-5：{err_K <= 1e-5}")
print(f"手写前向计算与 S4DLayer 的相对误差 ≤ 1e-5：{err_out <= 1e-5}")

# %%
print(f"实际误差：卷积核 {err_K:.1e}，输出 {err_out:.1e}")

# %% [markdown]
# ## 参数量
#
# 实验中 S4D 语言模型的每一层取 H = 128、N = 64。下面逐个参数数一遍，并与按形状写出的公式核对：
# `log_dt` 与 `D` 各 H 个；`log_A_real` 与 `A_imag` 各 $H \cdot N/2$ 个；复数 C 存成实部与虚部，共 $H \cdot N/2 \cdot 2$ 个；
# 输出混合的线性层有 $2H \cdot H$ 个权重和 $2H$ 个偏置。

# %%
# NBVAL_CHECK_OUTPUT
H_exp, N_exp = 128, 64
layer_exp = S4DLayer(d_model=H_exp, d_state=N_exp)
counts = {name: p.numel() for name, p in layer_exp.named_parameters()}
expected = {
    "log_dt": H_exp,
    "log_A_real": H_exp * N_exp // 2,
    "A_imag": H_exp * N_exp // 2,
    "C": H_exp * N_exp // 2 * 2,
    "D": H_exp,
    "output_linear.weight": 2 * H_exp * H_exp,
    "output_linear.bias": 2 * H_exp,
}
assert counts == expected, counts
total = sum(counts.values())
ssm_total = total - counts["output_linear.weight"] - counts["output_linear.bias"]
for name, count in counts.items():
    print(f"{name:>22}：{count:>6}")
print(f"{'合计':>22}：{total:>6}（其中 SSM 部分 {ssm_total}，占 {100 * ssm_total / total:.1f}%）")

# %% [markdown]
# 参数的大头在输出混合的线性层里，它随 $H^2$ 增长；SSM 本身的参数随 $H \cdot N$ 增长。
# 作为对照，同样宽度的因果自注意力层（`s4lab.layers.CausalSelfAttention`，Q、K、V 与输出投影都不带偏置）有：

# %%
attention = CausalSelfAttention(d_model=H_exp, n_heads=4)
print(f"CausalSelfAttention（H = {H_exp}）：{sum(p.numel() for p in attention.parameters())} 个参数")

# %% [markdown]
# ## 因果性
#
# 语言模型在位置 t 预测下一个字符时，不能看到 t 之后的输入。S4D 层中只有卷积沿时间方向混合信息，
# 它是因果的（{ref}`ch-fft` 中 FFT 长度取 2L 正是为此）；D、GELU 与输出混合都逐位置计算。
# 所以整层应当是因果的。检查：只改变位置 t 的输入，t 之前的输出不变，t 及之后的输出改变。
# FFT 在所有位置之间混合舍入误差，所以“不变”指相对误差在 float32 舍入的量级（不超过 1e-6）。

# %%
# NBVAL_CHECK_OUTPUT
t = L // 2
x_perturbed = x.clone()
x_perturbed[:, t, :] += 1.0  # 只改变位置 t
with torch.no_grad():
    diff = (layer(x_perturbed) - layer(x)).abs().amax(dim=(0, 2))  # (L,)，每个位置的最大变化
scale = out_layer.abs().max().item()
before_max = diff[:t].max().item() / scale
after_min = diff[t].item() / scale
assert before_max <= 1e-6, before_max
assert after_min >= 1e-3, after_min
print(f"位置 t = {t} 之前的输出不变（相对变化 ≤ 1e-6）：{before_max <= 1e-6}")
print(f"位置 t 的输出改变（相对变化 ≥ 1e-3）：{after_min >= 1e-3}")

# %% mystnb={"figure": {"caption": "只改变位置 t 的输入后，S4D 层每个位置输出的最大变化（对数纵轴）。", "name": "fig-layer-causality"}}
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.semilogy(diff.clamp_min(1e-12).numpy())
ax.axvline(t, color="gray", linestyle="--", label=f"被改变的位置 t = {t}")
ax.set_title("改变一个位置的输入后，各位置输出的变化")
ax.set_xlabel("位置")
ax.set_ylabel("输出的最大绝对变化")
ax.legend()
plt.show()

# %% [markdown]
# {numref}`fig-layer-causality` 中，t 之前的变化只有 float32 舍入误差的量级，t 处变化最大，
# 之后随卷积核的衰减逐渐减小。
#
# ## 小结
#
# - S4D 层的前向计算是 {eq}`eq-layer-forward` 的五步：卷积核、因果卷积加跳连 D、GELU、线性层 H → 2H、GLU。
# - 手写的前向计算与 `S4DLayer` 在 float32 下一致到 1e-5 以内。
# - H = 128、N = 64 时，参数主要在输出混合的线性层里，SSM 本身的参数随 $H \cdot N$ 增长。
# - 整层是因果的：卷积核来自 FFT 长度为 2L 的因果卷积，其余运算逐位置进行。
#
# ## 练习
#
# 1. 去掉 GLU，直接用 Linear(H → H)。参数量变成多少？先写公式，再用 `named_parameters` 验证。
# 2. 把 `causal_fft_conv` 中的 FFT 长度从 2L 换成 L（在 notebook 里自己写一个版本），重做因果性检查，看看哪些位置的输出受到了影响。
# 3. 用 {ref}`ch-recurrence` 的递推写出整层的单步版本：状态之外，GELU、线性层和 GLU 都逐位置计算。验证它与 `layer(x)` 一致。
# 4. 为什么跳连项 D 是必要的？提示：看 $K_0$ 的大小与 Δ 的关系。
