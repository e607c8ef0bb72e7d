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
# (ch-kernel)=
# # 从递推到卷积核
#
# ## 学习目标
#
# - 把递推 $x_k = \bar{A} x_{k-1} + \bar{B} u_k$ 展开，得到卷积形式 $y = K * u$ 与卷积核 $K_l = C \bar{A}^l \bar{B}$；
# - 理解对角 $A$ 时卷积核是一个范德蒙德矩阵（Vandermonde matrix）与向量的乘积；
# - 理解为什么实信号需要共轭成对的模态，以及为什么只需存一半模态并把输出取为 $2 \cdot \mathrm{Re}(\dots)$；
# - 用 `s4lab.ssm` 的 `vandermonde_kernel`、`scan` 与 `s4d_kernel` 验证以上每一步。
#
# 上一章 {ref}`ch-discretization` 把连续系统变成了递推 {eq}`eq-recurrence`。递推每步只看一个输入，适合逐个生成，
# 但训练时整段序列一次给出，逐步递推无法在长度方向上并行。本章把递推改写成卷积，下一章 {ref}`ch-fft` 再用 FFT 快速计算它。
# 这正是 S4 {cite}`gu2022s4` 与 S4D {cite}`gu2022s4d` 训练时的计算方式。

# %%
import matplotlib.pyplot as plt
import torch

from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick
from s4lab.ssm import discretize, s4d_init_A, s4d_kernel, scan, vandermonde_kernel

setup_chinese_font()
torch.set_printoptions(precision=4)

# %% [markdown]
# ## 展开递推
#
# 取初始状态为 0，逐步写出前几个状态：
#
# $$
# x_0 = \bar{B} u_0, \qquad x_1 = \bar{A}\bar{B} u_0 + \bar{B} u_1, \qquad x_2 = \bar{A}^2 \bar{B} u_0 + \bar{A}\bar{B} u_1 + \bar{B} u_2, \qquad \dots
# $$
#
# 一般地 $x_k = \sum_{j=0}^{k} \bar{A}^{k-j} \bar{B} u_j$。乘上 $C$，令 $l = k - j$：
#
# $$
# y_k = \sum_{l=0}^{k} K_l\, u_{k-l}, \qquad K_l = C \bar{A}^l \bar{B}, \quad l = 0, 1, \dots, L-1
# $$ (eq-ssm-kernel)
#
# 长度为 $L$ 的序列只用到 $K_0, \dots, K_{L-1}$。卷积核 $K$ 只由参数决定，与输入无关，所以可以先算出 $K$，再对整段输入做一次卷积。
# 直通项 $D u_k$ 不经过状态，单独加上即可：$y = K * u + D u$。
#
# 先用一个一般的（稠密的）$4 \times 4$ 实矩阵做 ZOH 离散化（式 {eq}`eq-zoh`），用矩阵乘方写出 {eq}`eq-ssm-kernel`，
# 再与逐步递推的结果比较。

# %%
torch.manual_seed(0)
N_dense, dt_dense, L_dense = 4, 0.1, 64
A = torch.randn(N_dense, N_dense, dtype=torch.float64) - 2.0 * torch.eye(N_dense, dtype=torch.float64)  # (N, N)
B = torch.randn(N_dense, 1, dtype=torch.float64)  # (N, 1)
C = torch.randn(1, N_dense, dtype=torch.float64)  # (1, N)
A_bar = torch.linalg.matrix_exp(dt_dense * A)  # (N, N)
B_bar = torch.linalg.solve(A, (A_bar - torch.eye(N_dense, dtype=torch.float64)) @ B)  # (N, 1)，式 (eq-zoh)

kernel_dense = []
power = torch.eye(N_dense, dtype=torch.float64)  # Ā^l
for l in range(L_dense):
    kernel_dense.append((C @ power @ B_bar).squeeze())
    power = A_bar @ power
kernel_dense = torch.stack(kernel_dense)  # (L,)

u = torch.randn(L_dense, dtype=torch.float64)  # (L,)
y_conv = torch.stack([(kernel_dense[: k + 1] * u[: k + 1].flip(0)).sum() for k in range(L_dense)])  # (L,)

x, y_rec = torch.zeros(N_dense, 1, dtype=torch.float64), []
for k in range(L_dense):
    x = A_bar @ x + B_bar * u[k]  # (N, 1)
    y_rec.append((C @ x).squeeze())
y_rec = torch.stack(y_rec)  # (L,)
print("卷积核的前 5 项：", kernel_dense[:5])

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((y_conv - y_rec).abs().max() / y_rec.abs().max()).item()
assert rel_err < 1e-12, rel_err
print(f"卷积 K * u 与逐步递推一致（相对误差 < 1e-12）：{rel_err < 1e-12}")

# %% [markdown]
# ## 对角 $A$：范德蒙德矩阵
#
# 对稠密矩阵，即使逐步把向量 $\bar{A}^{l}\bar{B}$ 乘上 $\bar{A}$，每一项也要 $O(N^2)$ 次运算。若 $A$ 是对角矩阵（{ref}`ch-continuous` 中的对角化），$\bar{A}$ 也是对角的，
# $\bar{A}^l$ 只是逐元素的幂，{eq}`eq-ssm-kernel` 化为
#
# $$
# K_l = \sum_{n=1}^{N} C_n \bar{B}_n \bar{A}_n^{\,l}
# \quad\Longleftrightarrow\quad
# K = \begin{pmatrix} C_1 \bar{B}_1 & \cdots & C_N \bar{B}_N \end{pmatrix}
# \begin{pmatrix}
# 1 & \bar{A}_1 & \bar{A}_1^2 & \cdots & \bar{A}_1^{L-1} \\
# \vdots & & & & \vdots \\
# 1 & \bar{A}_N & \bar{A}_N^2 & \cdots & \bar{A}_N^{L-1}
# \end{pmatrix}
# $$ (eq-vandermonde)
#
# 右边的 $N \times L$ 矩阵的每一行是同一个数的各次幂，这就是范德蒙德矩阵。算出整个核只要 $O(NL)$ 次运算。
# 下面取 3 个复模态，先把这个矩阵直接写出来。

# %%
A_diag = torch.tensor([[-0.5 + 1.0j, -0.2 + 3.0j, -1.0 + 0.0j]], dtype=torch.complex128)  # (H, n)，H = 1
B_diag = torch.ones_like(A_diag)  # (H, n)
C_diag = torch.tensor([[1.0 - 0.5j, 0.3 + 0.2j, -0.7 + 0.0j]], dtype=torch.complex128)  # (H, n)
A_bar_diag, B_bar_diag = discretize(A_diag, B_diag, 0.5, "zoh")  # (H, n)

L_small = 5
vandermonde = A_bar_diag.unsqueeze(-1) ** torch.arange(L_small)  # (H, n, L)
print("范德蒙德矩阵（n = 3，L = 5）：")
print(vandermonde[0])

# %%
L_diag = 200
vandermonde = A_bar_diag.unsqueeze(-1) ** torch.arange(L_diag)  # (H, n, L)
kernel_manual = torch.einsum("hn,hnl->hl", C_diag * B_bar_diag, vandermonde)  # (H, L)
kernel_s4lab = vandermonde_kernel(A_bar_diag, B_bar_diag, C_diag, L_diag)  # (H, L)

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((kernel_manual - kernel_s4lab).abs().max() / kernel_manual.abs().max()).item()
assert rel_err < 1e-12, rel_err
print(f"手写的范德蒙德乘积与 vandermonde_kernel 一致（相对误差 < 1e-12）：{rel_err < 1e-12}")

# %% [markdown]
# 卷积核还有一个更直接的含义：它是递推的冲激响应（impulse response）。输入单位冲激 $u = (1, 0, 0, \dots)$ 时，
# {eq}`eq-ssm-kernel` 给出 $y_k = K_k$。用 `scan` 逐步递推，输出应该逐项等于卷积核。

# %%
impulse = torch.zeros(1, L_diag, dtype=torch.float64)  # (H, L)
impulse[:, 0] = 1.0
impulse_response = scan(A_bar_diag, B_bar_diag, C_diag, impulse)  # (H, L)

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((impulse_response - kernel_s4lab).abs().max() / kernel_s4lab.abs().max()).item()
assert rel_err < 1e-12, rel_err
print(f"scan 的单位冲激响应等于 vandermonde_kernel（相对误差 < 1e-12）：{rel_err < 1e-12}")

# %% [markdown]
# ## 共轭对：只存一半模态
#
# 上面的核是复数，但语言模型的输入输出都是实数。{ref}`ch-continuous` 中已经看到：实矩阵 $A$ 的复特征值成对共轭出现，
# 对角化之后的 $\tilde{B}$、$\tilde{C}$ 在这两个模态上也互为共轭。ZOH 保持这种共轭关系（$e^{\Delta \bar{\lambda}} = \overline{e^{\Delta \lambda}}$），
# 所以一对模态对 $K_l$ 的贡献是 $z + \bar{z} = 2\, \mathrm{Re}\, z$。把 $N$ 个模态排成前后两半，后一半是前一半的共轭：
#
# $$
# K_l = \sum_{n=1}^{N} C_n \bar{B}_n \bar{A}_n^{\,l} = 2\, \mathrm{Re} \sum_{n=1}^{N/2} C_n \bar{B}_n \bar{A}_n^{\,l}
# $$ (eq-conj-pairs)
#
# 本书中 $N$ 始终指完整的复对角系统的状态数（也等于与之等价的实系统的状态维数），其中的模态两两共轭；
# S4D 层只存储 $N/2$ 个模态，输出取 $2 \cdot \mathrm{Re}(\dots)$，所以 $N$ 必须是偶数。
# `vandermonde_kernel(..., conj_pairs=True)` 与 `scan(..., conj_pairs=True)` 接收的就是这 $N/2$ 个模态。
#
# 下面用 S4D-Lin 初始化的 $N/2 = 8$ 个模态和随机的复数 $C$，一边把共轭的另一半显式补上、组成 $N = 16$ 的完整系统，
# 一边只用一半模态调用 `conj_pairs=True`，比较两者。

# %%
torch.manual_seed(1)
N = 16
A_half = s4d_init_A(N // 2, "lin").to(torch.complex128).unsqueeze(0)  # (H, N/2)
C_half = torch.randn(1, N // 2, dtype=torch.complex128)  # (H, N/2)
B_half = torch.ones_like(A_half)  # (H, N/2)
A_bar_half, B_bar_half = discretize(A_half, B_half, 0.05, "zoh")  # (H, N/2)

A_bar_full = torch.cat([A_bar_half, A_bar_half.conj()], dim=-1)  # (H, N)
B_bar_full = torch.cat([B_bar_half, B_bar_half.conj()], dim=-1)  # (H, N)
C_full = torch.cat([C_half, C_half.conj()], dim=-1)  # (H, N)

L_pair = 300
kernel_full = vandermonde_kernel(A_bar_full, B_bar_full, C_full, L_pair)  # (H, L)，复数
kernel_half = vandermonde_kernel(A_bar_half, B_bar_half, C_half, L_pair, conj_pairs=True)  # (H, L)，实数
print("完整系统核的虚部最大值：", kernel_full.imag.abs().max().item())

# %%
# NBVAL_CHECK_OUTPUT
scale = kernel_half.abs().max()
rel_err = ((kernel_full.real - kernel_half).abs().max() / scale).item()
imag_ratio = (kernel_full.imag.abs().max() / scale).item()
assert rel_err < 1e-12, rel_err
assert imag_ratio < 1e-12, imag_ratio
print(f"N/2 个模态的 2·Re 形式等于 N 个模态的完整系统（相对误差 < 1e-12）：{rel_err < 1e-12}")
print(f"完整系统的核是实数（虚部 < 1e-12）：{imag_ratio < 1e-12}")

# %% [markdown]
# 如果漏掉因子 2，两者会差一倍；如果把共轭的一半当作与原模态相同（忘记取共轭），完整系统的核会带上虚部。上面的检查对这两种错误都会失败。
#
# ## S4D 的卷积核
#
# S4D 固定 $B = 1$（它的作用可以并入 $C$），用 ZOH 离散化，步长由每个通道的参数 $\log \Delta$ 给出，再用共轭对形式 {eq}`eq-conj-pairs`。
# `s4d_kernel(A, C, log_dt, L)` 把这几步合在一起，并直接把 $\Delta A$ 当作 $\log \bar{A}$ 来计算幂。
# 它应该与“先 `discretize` 再 `vandermonde_kernel`”完全一致。

# %%
H, L_s4d = 3, 1024 if not is_quick() else 256
A_s4d = s4d_init_A(N // 2, "lin").to(torch.complex128).expand(H, -1)  # (H, N/2)
C_s4d = torch.randn(H, N // 2, dtype=torch.complex128)  # (H, N/2)
log_dt = torch.log(torch.tensor([1e-3, 1e-2, 1e-1], dtype=torch.float64))  # (H,)
kernel_s4d = s4d_kernel(A_s4d, C_s4d, log_dt, L_s4d)  # (H, L)
A_bar_s4d, B_bar_s4d = discretize(A_s4d, torch.ones_like(A_s4d), torch.exp(log_dt).unsqueeze(-1), "zoh")
kernel_two_steps = vandermonde_kernel(A_bar_s4d, B_bar_s4d, C_s4d, L_s4d, conj_pairs=True)  # (H, L)

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((kernel_s4d - kernel_two_steps).abs().max() / kernel_two_steps.abs().max()).item()
assert rel_err < 1e-10, rel_err
print(f"s4d_kernel 等于 ZOH 离散化后的共轭对范德蒙德核（相对误差 < 1e-10）：{rel_err < 1e-10}")

# %% [markdown]
# {numref}`fig-kernel-examples` 画出了三个通道的核，它们的模态与 $C$ 相同，只有步长 $\Delta$ 不同。
# $\Delta$ 越大，每一步走过的连续时间越长，核衰减得越快，通道关注的是较近的过去；$\Delta$ 越小，核越长，通道能看到更远的输入。
# S4D 把 $\log \Delta$ 作为可学习参数，每个通道自己决定看多远。

# %% mystnb={"figure": {"caption": "S4D-Lin 初始化下三个通道的卷积核，只有步长 Δ 不同。", "name": "fig-kernel-examples"}}
fig, axes = plt.subplots(H, 1, figsize=(7, 5.5), sharex=True)
for h, ax in enumerate(axes):
    ax.plot(kernel_s4d[h], linewidth=0.9)
    ax.set_title(f"Δ = {torch.exp(log_dt[h]).item():g}", fontsize=10)
    ax.set_ylabel("$K_l$")
axes[-1].set_xlabel("延迟 l")
fig.suptitle("不同步长 Δ 下的 S4D 卷积核")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 小结
#
# - 展开递推得到卷积 $y = K * u + Du$，卷积核 $K_l = C \bar{A}^l \bar{B}$ {eq}`eq-ssm-kernel` 只依赖参数；
# - 卷积核就是递推的单位冲激响应；
# - 对角 $A$ 时 $K$ 是范德蒙德矩阵与向量 $C \circ \bar{B}$ 的乘积 {eq}`eq-vandermonde`，代价 $O(NL)$；
# - 实信号需要共轭成对的模态：$N$ 指完整复对角系统的状态数，只存 $N/2$ 个模态，输出取 $2 \cdot \mathrm{Re}$ {eq}`eq-conj-pairs`；
# - `s4d_kernel` 是 ZOH、$B = 1$ 与共轭对三者的组合。
#
# ## 练习
#
# 1. 初始状态 $x_{-1} \neq 0$ 时，展开递推会多出哪一项？它还能写成卷积吗？
# 2. 用范德蒙德矩阵 {eq}`eq-vandermonde` 直接计算核需要 $O(NL)$ 的内存。设计一种按 $l$ 分块的计算方法，把内存降到 $O(N \cdot \text{块长})$。
# 3. 如果某个模态的 $|\bar{A}_n| > 1$，$K_l$ 会怎样？这对长度 $L = 10^4$ 的序列意味着什么？
# 4. 把 S4D-Lin 换成 S4D-Inv（`s4d_init_A(..., "inv")`），重画 {numref}`fig-kernel-examples`，比较两者的振荡频率。
