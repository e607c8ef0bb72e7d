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
# (ch-fft)=
# # FFT 卷积
#
# ## 学习目标
#
# - 区分线性卷积（linear convolution）与循环卷积（circular convolution），理解卷积定理；
# - 说明为什么用 FFT 计算因果卷积时，FFT 长度必须至少为 $2L - 1$，否则未来的输入会泄漏到过去的输出；
# - 比较直接求和的 $O(L^2)$ 与 FFT 的 $O(L \log L)$；
# - 验证 `s4lab.ssm.causal_fft_conv` 的正确性与因果性。
#
# 上一章 {ref}`ch-kernel` 把 SSM 写成了因果卷积
#
# $$
# y_k = \sum_{j=0}^{k} K_j\, u_{k-j}, \qquad k = 0, 1, \dots, L-1
# $$ (eq-causal-conv)
#
# 直接按定义计算，每个输出要做最多 $L$ 次乘加，总共 $O(L^2)$。本章用快速傅里叶变换（fast Fourier transform，FFT）{cite}`cooley1965fft`
# 把它降到 $O(L \log L)$，S4 {cite}`gu2022s4` 与 S4D {cite}`gu2022s4d` 训练时都这样计算卷积。

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick
from s4lab.ssm import causal_fft_conv

setup_chinese_font()

# %% [markdown]
# ## 直接求和
#
# 先把 {eq}`eq-causal-conv` 原样写出来，作为后面所有比较的参考。它把卷积写成一个下三角的托普利茨矩阵（Toeplitz matrix）
# $T_{kj} = K_{k-j}$（$j \le k$）乘以输入，内存与计算都是 $O(L^2)$，只适合短序列。

# %%
def direct_causal_conv(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """按定义计算因果卷积：u (..., H, L)，K (H, L)，返回 (..., H, L)。"""
    L = u.shape[-1]
    lag = torch.arange(L).unsqueeze(1) - torch.arange(L).unsqueeze(0)  # (L, L)，lag[k, j] = k − j
    toeplitz = torch.where(lag >= 0, K[:, lag.clamp_min(0)], torch.zeros((), dtype=K.dtype))  # (H, L, L)
    return torch.einsum("hkj,...hj->...hk", toeplitz, u)


torch.manual_seed(0)
batch, H, L = 2, 3, 128
u = torch.randn(batch, H, L, dtype=torch.float64)  # (B, H, L)
K = torch.randn(H, L, dtype=torch.float64)  # (H, L)，不衰减的随机核，让每个延迟都有分量
y_direct = direct_causal_conv(u, K)  # (B, H, L)

# %% [markdown]
# ## 循环卷积与卷积定理
#
# 长度为 $M$ 的离散傅里叶变换（DFT）把序列看作以 $M$ 为周期。两个长度为 $M$ 的序列的循环卷积定义为
#
# $$
# (a \circledast_M b)_k = \sum_{j=0}^{M-1} a_j\, b_{(k-j) \bmod M}, \qquad k = 0, \dots, M-1
# $$ (eq-circular-conv)
#
# 卷积定理说，DFT 把循环卷积变成逐元素乘法：$\mathrm{DFT}_M(a \circledast_M b) = \mathrm{DFT}_M(a) \cdot \mathrm{DFT}_M(b)$。
# FFT 用 $O(M \log M)$ 次运算算出 DFT，所以循环卷积的代价是三次 FFT 加一次逐元素乘法。
#
# 但我们要的是线性（而且因果）卷积 {eq}`eq-causal-conv`，不是循环卷积。办法是在 $u$ 与 $K$ 后面补零到长度 $M$。
# 对 $k \le L - 1$ 与 $j > k$，循环卷积里的下标 $(k - j) \bmod M = M + k - j$ 落在 $[M - L + 1 + k,\ M - 1]$ 里。
# 只要这些位置都是补上的零，即 $M - L + 1 \ge L$，多出来的项就全部为 0：
#
# $$
# M \ge 2L - 1 \quad\Longrightarrow\quad (K \circledast_M u)_k = \sum_{j=0}^{k} K_j u_{k-j}, \quad k = 0, \dots, L - 1
# $$ (eq-fft-size)
#
# 反过来，若 $M = L$（不补零），$M + k - j = L + k - j$ 取遍 $k + 1, \dots, L - 1$，于是
# $y_k$ 多出了 $\sum_{j=k+1}^{L-1} K_j u_{L+k-j}$：输出 $y_k$ 用到了时刻 $k$ 之后的输入，未来泄漏到了过去。
# 下面把这个过程写成一个可以指定 FFT 长度的函数。

# %%
def fft_conv(u: torch.Tensor, K: torch.Tensor, n_fft: int) -> torch.Tensor:
    """用长度为 n_fft 的 FFT 计算循环卷积，并取前 L 个输出：u (..., H, L)，K (H, L)。"""
    L = u.shape[-1]
    product = torch.fft.fft(u, n=n_fft) * torch.fft.fft(K, n=n_fft)  # (..., H, n_fft)，n > L 时自动补零
    return torch.fft.ifft(product).real[..., :L]


y_fft_2L = fft_conv(u, K, 2 * L)
y_fft_min = fft_conv(u, K, 2 * L - 1)
y_fft_short = fft_conv(u, K, 2 * L - 2)
y_fft_L = fft_conv(u, K, L)
for name, y in (("2L", y_fft_2L), ("2L − 1", y_fft_min), ("2L − 2", y_fft_short), ("L", y_fft_L)):
    err = ((y - y_direct).abs().max() / y_direct.abs().max()).item()
    print(f"FFT 长度 {name:6s}：与直接求和的最大相对误差 {err:.2e}")

# %%
# NBVAL_CHECK_OUTPUT
def max_rel_err(y):
    return ((y - y_direct).abs().max() / y_direct.abs().max()).item()


exact_2L, exact_min = max_rel_err(y_fft_2L) < 1e-12, max_rel_err(y_fft_min) < 1e-12
wrong_short, wrong_L = max_rel_err(y_fft_short) > 1e-3, max_rel_err(y_fft_L) > 0.1
assert exact_2L
assert exact_min
assert wrong_short
assert wrong_L
print(f"FFT 长度 2L 与 2L − 1 给出因果卷积（误差 < 1e-12）：{exact_2L and exact_min}")
print(f"FFT 长度 2L − 2 已经出错：{wrong_short}；长度 L 误差超过 10%：{wrong_L}")

# %% [markdown]
# 长度 $2L - 2$ 只差一个位置：$y_0$ 被混入了 $K_{L-1} u_{L-1}$，误差不大但确实存在；长度 $L$ 时几乎每个输出都混入了未来的输入。
#
# ## 未来泄漏到过去
#
# 最直观的演示是只在最后一个时刻放一个单位冲激 $u_{L-1} = 1$。因果系统在时刻 $L - 1$ 之前不可能对它有反应，
# 正确的输出只有 $y_{L-1} = K_0$，其余全为 0。长度为 $L$ 的 FFT 却给出 $y_k = K_{k+1}$：整个卷积核被“倒灌”进了过去。
#
# 结果见 {numref}`fig-fft-wraparound`。

# %%
L_demo = 64
K_demo = torch.exp(-torch.arange(L_demo, dtype=torch.float64) / 20).unsqueeze(0) * torch.cos(
    0.3 * torch.arange(L_demo, dtype=torch.float64)
)  # (H, L)，H = 1
u_demo = torch.zeros(1, L_demo, dtype=torch.float64)  # (H, L)
u_demo[:, -1] = 1.0
y_demo_causal = causal_fft_conv(u_demo, K_demo)  # (H, L)
y_demo_wrapped = fft_conv(u_demo, K_demo, L_demo)  # (H, L)

# %% mystnb={"figure": {"caption": "输入只在最后一个时刻为 1。FFT 长度为 2L 时输出只在最后一个时刻非零；FFT 长度为 L 时循环回绕让输出在冲激到来之前就出现。", "name": "fig-fft-wraparound"}}
steps = torch.arange(L_demo)
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(steps, y_demo_wrapped[0], "o-", markersize=3, color="tab:red", label="FFT 长度 L（循环卷积）")
ax.plot(steps, y_demo_causal[0], "s-", markersize=3, color="tab:blue", label="FFT 长度 2L（causal_fft_conv）")
ax.axvline(L_demo - 1, color="gray", linestyle="--", linewidth=0.8, label="冲激所在时刻 L − 1")
ax.set_title("FFT 长度不足时未来泄漏到过去")
ax.set_xlabel("时刻 k")
ax.set_ylabel("输出 $y_k$")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
leak = (y_demo_wrapped[:, :-1].abs().max() / K_demo.abs().max()).item()
causal_leak = y_demo_causal[:, :-1].abs().max().item()
wrapped_is_shifted_kernel = (y_demo_wrapped[:, :-1] - K_demo[:, 1:]).abs().max().item() < 1e-12
assert leak > 0.5
assert causal_leak < 1e-12
assert wrapped_is_shifted_kernel
print(f"长度 L 的 FFT 在冲激之前的输出达到核最大值的一半以上：{leak > 0.5}")
print(f"长度 L 的 FFT 给出 y_k = K_(k+1)：{wrapped_is_shifted_kernel}")
print(f"causal_fft_conv 在冲激之前的输出 < 1e-12：{causal_leak < 1e-12}")

# %% [markdown]
# ## `causal_fft_conv`
#
# `s4lab.ssm.causal_fft_conv` 用实数 FFT（`torch.fft.rfft`，只存非负频率的一半，省去一半计算）和长度 $2L$。
# 我们检查两件事：它等于直接求和 {eq}`eq-causal-conv`；改动最后一个输入不会改变任何更早的输出。

# %%
y_s4lab = causal_fft_conv(u, K)  # (B, H, L)
u_perturbed = u.clone()
u_perturbed[..., -1] += 10.0
y_perturbed = causal_fft_conv(u_perturbed, K)  # (B, H, L)

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((y_s4lab - y_direct).abs().max() / y_direct.abs().max()).item()
earlier_change = ((y_perturbed[..., :-1] - y_s4lab[..., :-1]).abs().max() / y_s4lab.abs().max()).item()
last_change = (y_perturbed[..., -1] - y_s4lab[..., -1] - 10.0 * K[:, 0]).abs().max().item()
assert rel_err < 1e-10, rel_err
assert earlier_change < 1e-12, earlier_change
assert last_change < 1e-9, last_change
print(f"causal_fft_conv 等于直接求和（相对误差 < 1e-10）：{rel_err < 1e-10}")
print(f"改动最后一个输入，之前的输出不变（相对变化 < 1e-12）：{earlier_change < 1e-12}")
print(f"最后一个输出恰好改变 10·K_0：{last_change < 1e-9}")

# %% [markdown]
# ## 计算代价
#
# 直接求和对每个通道是 $O(L^2)$，FFT 卷积是 $O(L \log L)$。下面在几个长度上测量两者的用时：
# 直接求和用 `torch.nn.functional.conv1d`（把核翻转后做互相关，本质上仍是逐项乘加），FFT 卷积用 `causal_fft_conv`。
# 用时取决于机器与当时的负载，这里的数字只说明增长趋势。计时用单线程，每个长度先预热一次，再取 5 轮测量中的最小值。
#
# 结果见 {numref}`fig-fft-cost`。

# %%
def best_time(fn, repeats: int = 5, min_seconds: float = 0.01) -> float:
    """返回单次调用的用时（秒）：每轮连续调用到至少 min_seconds 后取平均，再取各轮的最小值。"""
    fn()  # 预热：第一次调用包含一次性的初始化开销
    best = float("inf")
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


H_bench = 4
lengths = [2**p for p in range(8, 12 if is_quick() else 14)]
times_direct, times_fft = [], []
num_threads = torch.get_num_threads()
torch.set_num_threads(1)  # 单线程计时，避免与机器上的其他进程争抢线程造成的抖动
for L_bench in lengths:
    u_bench = torch.randn(1, H_bench, L_bench)  # (B, H, L)
    K_bench = torch.randn(H_bench, L_bench)  # (H, L)
    weight = K_bench.flip(-1).unsqueeze(1)  # (H, 1, L)，conv1d 计算的是互相关，所以翻转核

    def direct():
        return F.conv1d(F.pad(u_bench, (L_bench - 1, 0)), weight, groups=H_bench)  # (B, H, L)

    def fft():
        return causal_fft_conv(u_bench, K_bench)  # (B, H, L)

    # 两种算法的结果应该一致（float32，容差随 L 放宽）。
    assert torch.allclose(direct(), fft(), atol=1e-3 * L_bench**0.5)
    times_direct.append(best_time(direct))
    times_fft.append(best_time(fft))
torch.set_num_threads(num_threads)
for L_bench, t_direct, t_fft in zip(lengths, times_direct, times_fft):
    print(f"L = {L_bench:5d}：直接求和 {t_direct * 1e3:8.2f} ms，FFT {t_fft * 1e3:8.2f} ms")
slope_direct = math.log(times_direct[-1] / times_direct[-2]) / math.log(2)
slope_fft = math.log(times_fft[-1] / times_fft[-2]) / math.log(2)
print(f"最后两个长度之间的双对数斜率：直接求和 {slope_direct:.2f}，FFT {slope_fft:.2f}")

# %% mystnb={"figure": {"caption": "直接求和与 FFT 卷积的单线程用时随序列长度 L 的变化（双对数坐标，数值依机器而异）。", "name": "fig-fft-cost"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.loglog(lengths, times_direct, "o-", label="直接求和 O(L²)")
ax.loglog(lengths, times_fft, "s-", label="FFT O(L log L)")
ax.set_xscale("log", base=2)
ax.set_xticks(lengths, [str(L_bench) for L_bench in lengths])
ax.minorticks_off()
ax.set_title("因果卷积的用时")
ax.set_xlabel("序列长度 L")
ax.set_ylabel("用时（秒）")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# 序列很短时，两者的用时主要由调用与内存分配的常数开销决定；序列越长，$O(L^2)$ 与 $O(L \log L)$ 的差距越大。
# 上面打印的双对数斜率给出了这一趋势的本机估计：理论上直接求和趋向 2，FFT 略大于 1。
#
# ## 小结
#
# - DFT 把循环卷积 {eq}`eq-circular-conv` 变成逐元素乘法，FFT 让它的代价变成 $O(L \log L)$；
# - 用循环卷积计算因果卷积时，必须补零到 $M \ge 2L - 1$ {eq}`eq-fft-size`，否则回绕的项把未来的输入带进过去的输出；
# - `causal_fft_conv` 用长度 $2L$ 的实数 FFT，等于直接求和，并且严格因果。
#
# ## 练习
#
# 1. 证明长度 $M = 2L - 2$ 时只有 $y_0$ 出错，并写出它多出的那一项。
# 2. `causal_fft_conv` 用 `rfft` 而不是 `fft`。对长度为 $M$ 的实序列，`rfft` 返回多少个复数？为什么这足以还原结果？
# 3. 许多 FFT 实现对 2 的幂长度最快。把 FFT 长度改为不小于 $2L$ 的最小 2 的幂，结果会变吗？
# 4. 把计时的长度范围扩展到 $L = 8, 16, \dots, 256$，在你的机器上找出 FFT 卷积开始快于直接求和的长度，并解释它为什么与 $H$ 和批大小有关。
