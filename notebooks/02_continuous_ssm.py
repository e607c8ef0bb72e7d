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
# (ch-continuous)=
# # 连续时间状态空间模型
#
# ## 学习目标
#
# - 写出连续时间状态空间模型（state space model，SSM）的两个方程，说清 $A$、$B$、$C$、$D$ 各自的作用；
# - 用常数变易法（variation of constants）求出状态方程的解，得到冲激响应（impulse response）$h(t) = C e^{At} B$；
# - 理解对角化之后每个模态（mode）各自独立演化；
# - 解释复特征值为什么产生衰减振荡：实部决定衰减速率，虚部决定角频率。
#
# 本章所有的推导都在连续时间上进行，下一章 {ref}`ch-discretization` 再把它变成计算机能执行的递推。
# S4 {cite}`gu2022s4` 与 S4D {cite}`gu2022s4d` 都从这里出发。

# %%
import math

import matplotlib.pyplot as plt
import torch

from s4lab.plotting import setup_chinese_font

setup_chinese_font()
torch.set_printoptions(precision=4)

# %% [markdown]
# ## 状态方程与输出方程
#
# 一个单输入单输出的线性时不变系统把标量输入信号 $u(t)$ 映射成标量输出 $y(t)$，中间经过一个 $N$ 维的状态 $x(t)$：
#
# $$
# x'(t) = A x(t) + B u(t)
# $$ (eq-ssm-state)
#
# $$
# y(t) = C x(t) + D u(t)
# $$ (eq-ssm-output)
#
# 其中 $A \in \mathbb{R}^{N \times N}$，$B \in \mathbb{R}^{N \times 1}$，$C \in \mathbb{R}^{1 \times N}$，$D \in \mathbb{R}$。
#
# - $A$ 是状态矩阵：没有输入时，状态只按 $x' = Ax$ 演化，所以 $A$ 决定系统“记住”过去的方式（衰减多快、是否振荡）；
# - $B$ 是输入矩阵：决定输入 $u(t)$ 以什么比例注入每个状态分量；
# - $C$ 是输出矩阵：把 $N$ 个状态分量线性组合成一个输出；
# - $D$ 是直通项（feedthrough）：输入不经过状态、直接加到输出上。
#
# 在深度学习里，这样的一个系统处理一个通道；模型宽度为 $H$ 时，就有 $H$ 个这样的系统并行运行。
# 下面先用一个一般的（非对角的）$3 \times 3$ 实矩阵做例子，所有的计算都用 float64。

# %%
A = torch.tensor(
    [
        [-0.4, 2.0, 0.0],
        [-2.0, -0.6, 0.5],
        [0.1, -0.3, -1.0],
    ],
    dtype=torch.float64,
)  # (N, N)
B = torch.tensor([[1.0], [0.0], [0.5]], dtype=torch.float64)  # (N, 1)
C = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)  # (1, N)
print("A 的特征值：", torch.linalg.eigvals(A))

# %% [markdown]
# 三个特征值的实部都是负数，后面会看到这意味着系统稳定：没有输入时状态衰减到 0。

# %% [markdown]
# ## 常数变易法求解
#
# 先看没有输入的情形 $x' = Ax$，它的解是 $x(t) = e^{At} x(0)$，其中矩阵指数 $e^{At} = \sum_{k \ge 0} (At)^k / k!$。
# 有输入时，把 $x(t)$ 写成 $e^{At} z(t)$，让原本的常数 $z$ 随时间变化。代入 {eq}`eq-ssm-state`：
# $A e^{At} z + e^{At} z' = A e^{At} z + B u$，所以 $z'(t) = e^{-At} B u(t)$。
# 从 0 积分到 $t$，再乘回 $e^{At}$：
#
# $$
# x(t) = e^{At} x(0) + \int_0^t e^{A(t-s)} B\, u(s)\, \mathrm{d}s
# $$ (eq-voc)
#
# 第一项是初始状态的自由衰减，第二项是过去所有输入的加权叠加，权重 $e^{A(t-s)}$ 只取决于时间差 $t - s$。
# 取 $x(0) = 0$ 并代入 {eq}`eq-ssm-output`，输出就是输入与冲激响应的卷积：
#
# $$
# y(t) = \int_0^t h(t-s)\, u(s)\, \mathrm{d}s + D u(t), \qquad h(t) = C e^{At} B
# $$ (eq-impulse-response)
#
# 这个卷积形式是后面所有章节的主线：{ref}`ch-kernel` 会得到它的离散版本（卷积核 $K$），{ref}`ch-fft` 用 FFT 快速计算它。
#
# 对余弦输入 $u(t) = \cos \omega t$，{eq}`eq-voc` 里的积分可以写成闭式。把 $\cos \omega t$ 写成 $\mathrm{Re}\, e^{i\omega t}$，
# 并利用 $\int_0^t e^{A(t-s)} e^{i\omega s} \mathrm{d}s = (i\omega I - A)^{-1} (e^{i\omega t} I - e^{At})$：
#
# $$
# x(t) = \mathrm{Re}\left[ (i\omega I - A)^{-1} \left(e^{i\omega t} I - e^{At}\right) B \right], \qquad x(0) = 0
# $$ (eq-cos-response)

# %%
omega = 1.7


def closed_form_state(t: float) -> torch.Tensor:
    """按式 (eq-cos-response) 计算 x(t)，返回 (N, 1)。"""
    I = torch.eye(3, dtype=torch.complex128)
    Ac, Bc = A.to(torch.complex128), B.to(torch.complex128)
    phase = torch.exp(torch.tensor(1j * omega * t, dtype=torch.complex128))
    bracket = phase * I - torch.linalg.matrix_exp(Ac * t)  # (N, N)
    return torch.linalg.solve(1j * omega * I - Ac, bracket @ Bc).real


print("x(5) 的闭式解：", closed_form_state(5.0).flatten())

# %% [markdown]
# 闭式解是否正确，要和一个完全独立的方法比较。我们直接对常微分方程 {eq}`eq-ssm-state` 做数值积分，
# 用经典的四阶龙格-库塔法（Runge-Kutta，RK4），步长取得很小，让它本身的误差远小于我们要检验的容差。

# %%
def rk4_solve(f, x0: torch.Tensor, t_end: float, n_steps: int) -> torch.Tensor:
    """用经典四阶龙格-库塔法从 t = 0 积分 x' = f(t, x) 到 t_end。"""
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


def ssm_rhs(t: float, x: torch.Tensor) -> torch.Tensor:
    return A @ x + B * math.cos(omega * t)  # (N, 1)


t_end = 5.0
x_rk4 = rk4_solve(ssm_rhs, torch.zeros(3, 1, dtype=torch.float64), t_end, n_steps=5000)
print("x(5) 的 RK4 数值解：", x_rk4.flatten())

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((x_rk4 - closed_form_state(t_end)).norm() / x_rk4.norm()).item()
assert rel_err < 1e-9, rel_err
print(f"闭式解与 RK4 的相对误差 < 1e-9：{rel_err < 1e-9}")

# %% [markdown]
# 如果把 {eq}`eq-cos-response` 里的 $(i\omega I - A)^{-1}$ 写反了符号，或者漏掉了 $-e^{At}$ 这一项（它让 $x(0) = 0$ 成立），
# 闭式解就会偏离 RK4 的结果，这个检查随之失败。

# %% [markdown]
# ## 对角化：每个模态独立演化
#
# 设 $A$ 可以对角化：$A = V \Lambda V^{-1}$，$\Lambda = \mathrm{diag}(\lambda_1, \dots, \lambda_N)$。
# 换一组坐标 $\tilde{x} = V^{-1} x$，状态方程变成
#
# $$
# \tilde{x}'(t) = \Lambda \tilde{x}(t) + \tilde{B} u(t), \qquad y(t) = \tilde{C} \tilde{x}(t) + D u(t), \qquad \tilde{B} = V^{-1} B,\ \tilde{C} = C V
# $$ (eq-diagonal-ssm)
#
# 因为 $\Lambda$ 是对角矩阵，$N$ 个分量 $\tilde{x}_n' = \lambda_n \tilde{x}_n + \tilde{B}_n u$ 互不耦合，每一个叫做一个模态。
# 矩阵指数也随之变成逐元素的标量指数，冲激响应是 $N$ 个指数函数的和：
#
# $$
# e^{At} = V\, \mathrm{diag}\!\left(e^{\lambda_1 t}, \dots, e^{\lambda_N t}\right) V^{-1}, \qquad h(t) = \sum_{n=1}^{N} \tilde{C}_n \tilde{B}_n e^{\lambda_n t}
# $$ (eq-diagonal-impulse)
#
# 代价是 $V$、$\Lambda$、$\tilde{B}$、$\tilde{C}$ 一般都是复数。S4D 直接把 $A$ 参数化成对角矩阵，正是利用了这个结构。

# %%
eigvals, V = torch.linalg.eig(A)  # (N,), (N, N)
B_tilde = torch.linalg.solve(V, B.to(torch.complex128))  # (N, 1)
C_tilde = C.to(torch.complex128) @ V  # (1, N)

t_grid = torch.linspace(0, 10, 201, dtype=torch.float64)  # (T,)
modes = torch.exp(eigvals.unsqueeze(-1) * t_grid)  # (N, T)
h_modes = (C_tilde.squeeze(0) * B_tilde.squeeze(-1)) @ modes  # (T,)
h_dense = torch.stack([(C @ torch.linalg.matrix_exp(A * t) @ B).squeeze() for t in t_grid])  # (T,)
print("h(t) 在 t = 0, 1, 2 处：", h_dense[[0, 20, 40]])

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((h_modes - h_dense).abs().max() / h_dense.abs().max()).item()
imag_part = (h_modes.imag.abs().max() / h_dense.abs().max()).item()
assert rel_err < 1e-12, rel_err
assert imag_part < 1e-12, imag_part
print(f"模态之和与矩阵指数的相对误差 < 1e-12：{rel_err < 1e-12}")
print(f"模态之和的虚部可以忽略（< 1e-12）：{imag_part < 1e-12}")

# %% [markdown]
# 模态之和的虚部为 0 并非偶然：$A$、$B$、$C$ 都是实数，所以复特征值成对出现（$\lambda$ 与 $\bar{\lambda}$），
# 对应的 $\tilde{C}_n \tilde{B}_n$ 也互为共轭，两项相加正好是实数。{ref}`ch-kernel` 会利用这一点只存一半的模态。

# %% [markdown]
# ## 复特征值与衰减振荡
#
# 对一个模态 $\lambda = a + i b$，欧拉公式给出
#
# $$
# e^{\lambda t} = e^{a t} \left( \cos bt + i \sin bt \right)
# $$ (eq-complex-mode)
#
# 所以实部 $a$ 决定幅度按 $e^{at}$ 变化：$a < 0$ 时衰减，$|a|$ 越大衰减越快；虚部 $b$ 是角频率，周期为 $2\pi / |b|$。
# 实部为负是稳定的条件，S4D 的参数化保证了这一点。
#
# 一对共轭模态在实数坐标下就是一个 $2 \times 2$ 的实矩阵
# $\begin{pmatrix} a & -b \\ b & a \end{pmatrix}$，它的特征值是 $a \pm ib$，从 $x(0) = (1, 0)^\top$ 出发的解是
# $x(t) = e^{at} (\cos bt, \sin bt)^\top$：一个螺旋收缩的旋转。下面检查这两点。

# %%
# NBVAL_CHECK_OUTPUT
a, b = -0.3, 2.5
rotation = torch.tensor([[a, -b], [b, a]], dtype=torch.float64)  # (2, 2)
eig = torch.linalg.eigvals(rotation)  # (2,)
eig_sorted = eig[torch.argsort(eig.imag)]
expected = torch.tensor([complex(a, -b), complex(a, b)], dtype=torch.complex128)
eig_err = (eig_sorted - expected).abs().max().item()
t = 3.0
x_t = torch.linalg.matrix_exp(rotation * t) @ torch.tensor([1.0, 0.0], dtype=torch.float64)  # (2,)
x_formula = math.exp(a * t) * torch.tensor([math.cos(b * t), math.sin(b * t)], dtype=torch.float64)
spiral_err = (x_t - x_formula).abs().max().item()
assert eig_err < 1e-12, eig_err
assert spiral_err < 1e-12, spiral_err
print(f"特征值为 a ± ib：{eig_err < 1e-12}")
print(f"解为 e^(at)(cos bt, sin bt)：{spiral_err < 1e-12}")

# %% [markdown]
# {numref}`fig-continuous-modes` 画出了几个模态的实部 $\mathrm{Re}\, e^{\lambda t}$。实部相同、虚部不同的两条曲线有相同的包络，
# 振荡快慢不同；虚部相同、实部不同的两条曲线振荡频率相同，衰减快慢不同；虚部为 0 的模态不振荡，只是单调衰减。

# %% mystnb={"figure": {"caption": "几个复模态的实部：特征值的实部决定衰减速率，虚部决定振荡频率。", "name": "fig-continuous-modes"}}
example_modes = [complex(-0.1, 2.0), complex(-0.5, 2.0), complex(-0.1, 6.0), complex(-0.5, 0.0)]
t_plot = torch.linspace(0, 10, 1001, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7, 3.5))
for lam in example_modes:
    values = torch.exp(torch.tensor(lam, dtype=torch.complex128) * t_plot).real
    ax.plot(t_plot, values, label=f"$\\lambda = {lam.real:g} + {lam.imag:g}i$")
envelope = torch.exp(-0.1 * t_plot)
ax.plot(t_plot, envelope, "k--", linewidth=0.8, label="包络 $\\pm e^{-0.1t}$")
ax.plot(t_plot, -envelope, "k--", linewidth=0.8)
ax.set_title("复模态的衰减振荡")
ax.set_xlabel("时间 t")
ax.set_ylabel(r"$\mathrm{Re}\, e^{\lambda t}$")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 小结
#
# - 连续时间 SSM 由状态方程 {eq}`eq-ssm-state` 与输出方程 {eq}`eq-ssm-output` 组成：$A$ 决定记忆方式，$B$ 注入输入，$C$ 读出状态，$D$ 是直通项；
# - 常数变易法给出解 {eq}`eq-voc`，零初始状态时输出是输入与冲激响应 $h(t) = C e^{At} B$ 的卷积；
# - 对角化之后各模态独立，冲激响应是 $N$ 个指数函数之和 {eq}`eq-diagonal-impulse`；
# - 复特征值 $a + ib$ 产生衰减振荡：$a$ 是衰减速率，$b$ 是角频率；实系统的复特征值成对共轭出现。
#
# ## 练习
#
# 1. 把输入换成阶跃 $u(t) = 1$，从 {eq}`eq-voc` 推出 $x(t) = A^{-1}(e^{At} - I) B$，并仿照上面的检查用 RK4 验证。
# 2. 把 RK4 的步数从 5000 逐次减半，观察相对误差如何变化，估计 RK4 的阶数。
# 3. 构造一个不能对角化的矩阵（例如 $\begin{pmatrix} -1 & 1 \\ 0 & -1 \end{pmatrix}$），计算 $e^{At}$，说明它的冲激响应里为什么会出现 $t e^{-t}$。
# 4. 如果某个特征值的实部为正，{numref}`fig-continuous-modes` 中对应的曲线会怎样？这对一个要处理很长序列的模型意味着什么？
