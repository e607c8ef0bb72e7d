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
# (ch-recurrence)=
# # 递推模式
#
# 训练时，S4D 层按卷积模式（convolutional mode）工作：把整段序列一次性做卷积（见 {ref}`ch-kernel` 与 {ref}`ch-fft`），所有位置并行计算。
# 生成文本时情况不同：模型每次只产生一个字符，再把它作为下一步的输入。
# 如果每来一个新字符都把整段前缀重新卷积一遍，第 t 步的代价随 t 增长。
# 本章说明同一个层也可以写成逐步的递推，即递推模式（recurrent mode）：每一步只更新一个固定大小的状态，代价与已经生成的长度无关。
#
# ## 学习目标
#
# - 写出 S4D 层的单步递推，并用它逐个字符地计算输出；
# - 用数值验证递推与卷积给出同一个输出（float64 与 float32 两种精度），以及单位脉冲输入的响应就是卷积核 K；
# - 理解生成时为什么只需保存大小为 N/2 的复状态，并比较每生成一个字符的计算代价。

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from s4lab import ssm
from s4lab.layers import S4DLayer
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick

setup_chinese_font()
torch.manual_seed(0)

# 检查用的长度在两种模式下相同：递推 4096 步只需零点几秒（在一台 2 核 CPU 上测得）。
H, N, L = 4, 64, 4096
layer = S4DLayer(d_model=H, d_state=N).double()
print(f"H = {H}，N = {N}（存储 N/2 = {N // 2} 个模态），L = {L}")

# %% [markdown]
# ## 单步递推
#
# 回顾 {ref}`ch-discretization`：零阶保持把连续系统变成离散递推。
# S4D 层的每个通道 h 是一个独立的单输入单输出系统，B = 1，模态成共轭对出现，只存其中 N/2 个。
# 对一个通道，第 k 步（k = 0, 1, …）的更新是
#
# $$
# x_k = \bar{A} \odot x_{k-1} + \bar{B}\, u_k, \qquad
# y_k = 2\,\mathrm{Re}\Big(\sum_{n=1}^{N/2} C_n x_{k,n}\Big) + D\, u_k, \qquad x_{-1} = 0,
# $$ (eq-rec-step)
#
# 其中 $\bar{A} = e^{\Delta A}$、$\bar{B} = \Delta\,\varphi(\Delta A)$（$\varphi(z) = (e^z - 1)/z$）都是长度为 N/2 的复向量，
# $\odot$ 是逐元素乘法。因为 A 是对角的，每一步只有 N/2 次复数乘加，状态 $x_k$ 也只有 N/2 个复数。
# 整个式子里没有出现 k 之前的输入：过去的一切都压缩在 $x_{k-1}$ 里。
#
# 下面从层的参数出发，按 {eq}`eq-rec-step` 手写单步函数 `step`。

# %%
with torch.no_grad():
    A = layer.A()  # (H, N/2) 复数
    C = layer.C_complex()  # (H, N/2)
    dt = layer.dt().unsqueeze(-1)  # (H, 1)
    D = layer.D.detach()  # (H,)
    A_bar, B_bar = ssm.discretize(A, torch.ones_like(A), dt, "zoh")  # 各为 (H, N/2)


def step(x, u_k):
    """一步递推：x (H, N/2) 复数，u_k (H,) 实数 → 新状态与输出 y_k (H,)。"""
    x = A_bar * x + B_bar * u_k.unsqueeze(-1)  # (H, N/2)
    y_k = 2 * (C * x).sum(-1).real + D * u_k  # (H,)
    return x, y_k


u = torch.randn(H, L, dtype=torch.float64)  # (H, L)
x = torch.zeros(H, N // 2, dtype=torch.complex128)  # (H, N/2)
outputs = []
for k in range(L):
    x, y_k = step(x, u[:, k])
    outputs.append(y_k)
y_step = torch.stack(outputs, dim=-1)  # (H, L)
print("y_step 的形状：", tuple(y_step.shape))

# %% [markdown]
# `s4lab.ssm.scan` 实现的是同一个递推（不含 $D u_k$ 这一项，它逐位置相加，与状态无关）。
# 第一个检查：手写的 `step` 与 `scan` 一致。

# %%
# NBVAL_CHECK_OUTPUT
y_scan = ssm.scan(A_bar, B_bar, C, u, conj_pairs=True) + D.unsqueeze(-1) * u  # (H, L)
err = ((y_step - y_scan).abs().max() / y_scan.abs().max()).item()
assert err <= 1e-12, err
print(f"手写递推与 ssm.scan 的最大相对误差 ≤ 1e-12：{err <= 1e-12}")

# %% [markdown]
# ## 递推与卷积给出同一个输出
#
# 把 {eq}`eq-rec-step` 从 $x_{-1} = 0$ 展开，得到 {ref}`ch-kernel` 中的卷积形式
#
# $$
# y_k = \sum_{j=0}^{k} K_j\, u_{k-j} + D\, u_k, \qquad
# K_l = 2\,\mathrm{Re}\Big(\sum_{n=1}^{N/2} C_n \bar{A}_n^{\,l} \bar{B}_n\Big).
# $$ (eq-rec-conv)
#
# 训练用右边（`layer.kernel(L)` 加 `causal_fft_conv`），生成用左边的递推。
# 两者在数学上相等，在浮点运算里只差舍入误差。递推要连乘 4096 次 $\bar{A}$，误差会随步数累积，
# 所以我们在两种精度下分别检查：float64 要求相对误差不超过 1e-10，float32 要求不超过 1e-4。
# 相对误差以输出的最大绝对值为尺度。

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    K = layer.kernel(L)  # (H, L)
y_conv = ssm.causal_fft_conv(u, K) + D.unsqueeze(-1) * u  # (H, L)
err64 = ((y_scan - y_conv).abs().max() / y_conv.abs().max()).item()
assert err64 <= 1e-10, err64
print(f"float64，L = {L}：递推与卷积的最大相对误差 ≤ 1e-10：{err64 <= 1e-10}")

# %%
# NBVAL_CHECK_OUTPUT
layer32 = S4DLayer(d_model=H, d_state=N)
layer32.load_state_dict(layer.state_dict())  # 同一组参数，转成 float32
u32 = u.float()  # (H, L)
with torch.no_grad():
    A32, C32, dt32 = layer32.A(), layer32.C_complex(), layer32.dt().unsqueeze(-1)
    A_bar32, B_bar32 = ssm.discretize(A32, torch.ones_like(A32), dt32, "zoh")
    y_scan32 = ssm.scan(A_bar32, B_bar32, C32, u32, conj_pairs=True)  # (H, L)
    y_conv32 = ssm.causal_fft_conv(u32, layer32.kernel(L))  # (H, L)
err32 = ((y_scan32 - y_conv32).abs().max() / y_conv32.abs().max()).item()
assert y_scan32.dtype == torch.float32, y_scan32.dtype
assert err32 <= 1e-4, err32
print(f"float32，L = {L}：递推与卷积的最大相对误差 ≤ 1e-4：{err32 <= 1e-4}")

# %%
print(f"实际误差：float64 {err64:.1e}，float32 {err32:.1e}")

# %% [markdown]
# 另一个角度看同一件事：把单位脉冲 $u = (1, 0, 0, \dots)$ 送进递推，输出恰好是卷积核 $K$，
# 因为 {eq}`eq-rec-conv` 中只剩 $j = k$ 那一项。这也是卷积核又叫冲激响应（impulse response）的原因。

# %%
# NBVAL_CHECK_OUTPUT
impulse = torch.zeros(H, L, dtype=torch.float64)  # (H, L)
impulse[:, 0] = 1.0
K_from_scan = ssm.scan(A_bar, B_bar, C, impulse, conj_pairs=True)  # (H, L)
err_impulse = ((K_from_scan - K).abs().max() / K.abs().max()).item()
assert err_impulse <= 1e-10, err_impulse
print(f"冲激响应与卷积核的最大相对误差 ≤ 1e-10：{err_impulse <= 1e-10}")

# %% [markdown]
# ## 生成：接着状态往下算
#
# 生成时，我们先把提示文本（prompt）送进模型，然后每次追加一个字符。
# 递推模式下，处理完提示之后只需保留最后的状态 $x$，之后每一步从这个状态继续，不必再看提示本身。
# `scan` 的 `return_state=True` 返回最后的状态，`x0` 从给定状态继续。
# 下面把序列切成两段分别递推，结果应与一次递推完全相同。

# %%
# NBVAL_CHECK_OUTPUT
prompt_len = 1000
y_prompt, state = ssm.scan(A_bar, B_bar, C, u[:, :prompt_len], conj_pairs=True, return_state=True)
y_rest = ssm.scan(A_bar, B_bar, C, u[:, prompt_len:], conj_pairs=True, x0=state)
y_two_parts = torch.cat([y_prompt, y_rest], dim=-1) + D.unsqueeze(-1) * u  # (H, L)
err_split = ((y_two_parts - y_scan).abs().max() / y_scan.abs().max()).item()
assert state.shape == (H, N // 2), state.shape
assert err_split <= 1e-12, err_split
print(f"状态形状 {tuple(state.shape)}；分两段递推与一次递推的最大相对误差 ≤ 1e-12：{err_split <= 1e-12}")

# %% [markdown]
# 状态 $x_k$ 本身也值得看一眼。下面画出通道 0 中几个模态对单位脉冲的响应：
# 每个模态是一个衰减的旋转，$\mathrm{Re}(A_n)$ 决定衰减快慢，$\mathrm{Im}(A_n)$ 决定旋转频率。
# 这些状态就是模型对过去的全部记忆，见 {numref}`fig-rec-state`。

# %% mystnb={"figure": {"caption": "通道 0 中三个模态的状态对单位脉冲的响应：衰减的振荡。", "name": "fig-rec-state"}}
x = torch.zeros(H, N // 2, dtype=torch.complex128)  # (H, N/2)
trajectory = []
steps_shown = 400
for k in range(steps_shown):
    x, _ = step(x, impulse[:, k])
    trajectory.append(x[0])  # (N/2,)
trajectory = torch.stack(trajectory)  # (steps_shown, N/2)

fig, ax = plt.subplots(figsize=(7, 3.5))
for mode in (0, 1, 4):
    ax.plot(trajectory[:, mode].real.numpy(), label=f"模态 n = {mode}")
ax.set_title(f"通道 0 的状态对单位脉冲的响应（Δ = {dt[0, 0].item():.3g}）")
ax.set_xlabel("步 k")
ax.set_ylabel(r"$\mathrm{Re}(x_{k,n})$")
ax.legend()
plt.show()

# %% [markdown]
# ## 每生成一个字符的代价
#
# 用卷积生成第 t 个字符时，最直接的做法是把长度为 t 的前缀重新卷积一遍：
# FFT 卷积的代价约为 $O(H\, t \log t)$，随 t 增长。
# 递推只做一次 {eq}`eq-rec-step`：$H \cdot N/2$ 次复数乘加，与 t 无关；要保存的也只有状态，
# 每层 $H \cdot N/2$ 个复数。作为对照，Transformer 生成时要缓存之前所有位置的键和值，每层 $2 H t$ 个数，随 t 线性增长。

# %%
H_model, N_model, L_model = 128, 64, 256  # 实验章使用的规模
state_numbers = H_model * (N_model // 2) * 2  # 实部与虚部
kv_cache_numbers = 2 * H_model * L_model
print(f"H = {H_model}，N = {N_model}：S4D 每层状态 {state_numbers} 个实数，与已生成长度无关")
print(f"同样宽度的 Transformer 在 t = {L_model} 时每层缓存 {kv_cache_numbers} 个实数，并随 t 线性增长")

# %% [markdown]
# 下面在本机 CPU 上测量两种做法生成一个字符的时间（每个长度取多次测量的最小值）。
# 这是一次测量，绝对数值取决于机器；要看的是两条曲线的趋势：递推的时间是平的，重新卷积的时间随前缀长度增长。
# {numref}`fig-rec-cost` 是测量结果。

# %%
def best_time(fn, repeats):
    """返回 fn() 多次运行中最短的一次，单位毫秒。"""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


timing_layer = S4DLayer(d_model=H_model, d_state=N_model)
prefix_lengths = [64, 256, 1024, 4096] if is_quick() else [64, 256, 1024, 4096, 16384]
repeats = 3 if is_quick() else 10
with torch.no_grad():
    A_t = timing_layer.A()
    A_bar_t, B_bar_t = ssm.discretize(A_t, torch.ones_like(A_t), timing_layer.dt().unsqueeze(-1), "zoh")
    C_t = timing_layer.C_complex()
    K_t = timing_layer.kernel(max(prefix_lengths))  # (H, L_max)，只算一次
    x_t = torch.zeros(H_model, N_model // 2, dtype=torch.complex64)  # (H, N/2)
    u_t = torch.randn(H_model)  # (H,)
    step_ms = best_time(lambda: 2 * (C_t * (A_bar_t * x_t + B_bar_t * u_t.unsqueeze(-1))).sum(-1).real, repeats)
    conv_ms = []
    for t in prefix_lengths:
        prefix = torch.randn(1, H_model, t)  # (1, H, t)
        conv_ms.append(best_time(lambda: ssm.causal_fft_conv(prefix, K_t), repeats))
for t, ms in zip(prefix_lengths, conv_ms):
    print(f"前缀长度 {t:>6}：重新卷积 {ms:.3f} ms，递推一步 {step_ms:.3f} ms")

# %% mystnb={"figure": {"caption": "生成一个字符的耗时：递推一步与重新卷积整段前缀（本机 CPU 上的一次测量，每点取多次运行的最小值；递推一步的代价与 t 无关，只测一次，画成水平线）。", "name": "fig-rec-cost"}}
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(prefix_lengths, conv_ms, "o-", label="重新卷积整段前缀")
ax.loglog(prefix_lengths, [step_ms] * len(prefix_lengths), "s--", label="递推一步")
ax.set_title(f"生成一个字符的耗时（H = {H_model}，N = {N_model}）")
ax.set_xlabel("已生成的长度 t")
ax.set_ylabel("耗时（毫秒）")
ax.legend()
plt.show()

# %% [markdown]
# 实际的 S4D 层在卷积之后还有 GELU 与输出混合（见 {ref}`ch-s4d-layer`），它们都逐位置计算，
# 所以整层、乃至整个多层模型都可以一步一步地运行：每层保存自己的状态，每步的代价固定。
#
# ## 小结
#
# - 同一个 S4D 层有两种等价的计算方式：训练时用卷积，所有位置并行；生成时用递推 {eq}`eq-rec-step`，每步只更新大小为 N/2 的复状态。
# - 我们在 L = 4096 步上验证了递推与卷积一致：float64 下相对误差不超过 1e-10，float32 下不超过 1e-4；单位脉冲的响应就是卷积核。
# - 递推每步的代价与已生成的长度无关，而重新卷积整段前缀的代价随长度增长；Transformer 的键值缓存也随长度增长。
#
# ## 练习
#
# 1. 把 `step` 改成前向欧拉法离散化（`"euler"`），再与 `layer.kernel(L)` 的卷积比较。误差随 k 怎样变化？为什么？
# 2. 在 float32 下把 L 增大到 65,536，观察递推与卷积的相对误差如何增长，并解释误差来自哪里。
# 3. 递推模式能直接用于训练吗？估计训练一个长度为 L 的批次时，递推与 FFT 卷积各需要多少个串行步骤。
# 4. 写一个函数，用卷积核对提示做一次卷积得到输出，再直接算出提示结束时的状态 $x$（提示：$x_k = \sum_j \bar{A}^{\,k-j} \bar{B} u_j$），然后用递推继续生成，并与整段递推比较。
