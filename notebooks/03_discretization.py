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
# (ch-discretization)=
# # 离散化
#
# ## 学习目标
#
# - 从连续系统推导三种离散化方法：前向欧拉法（forward Euler method）、双线性变换（bilinear transform，又称 Tustin 方法）与零阶保持（zero-order hold，ZOH）；
# - 用数值实验验证：ZOH 对分段常数输入是精确的；平滑输入下各方法的收敛阶，以及收敛阶如何取决于输入样本代表什么；
# - 理解为什么要用 $\varphi(x) = (e^x - 1)/x$ 的专门实现，而不是直接写出公式；
# - 比较三种方法的稳定性：ZOH 与双线性对任意步长 $\Delta > 0$ 都稳定，欧拉法超过某个步长就会发散。
#
# 计算机只能处理序列 $u_0, u_1, \dots$，不能处理连续信号 $u(t)$。离散化（discretization）选定一个步长 $\Delta$，
# 把 {ref}`ch-continuous` 中的状态方程 {eq}`eq-ssm-state` 变成递推
#
# $$
# x_k = \bar{A} x_{k-1} + \bar{B} u_k, \qquad y_k = C x_k
# $$ (eq-recurrence)
#
# 其中 $x_k \approx x(k\Delta)$。直通项 $D u_k$ 不经过状态，离散化时保持不变，本章省略它。
# S4 {cite}`gu2022s4` 用双线性变换，S4D {cite}`gu2022s4d` 默认用零阶保持。
# `s4lab.ssm.discretize` 实现了这三种方法，它接收的 $A$ 是对角矩阵的对角线，每个元素是一个模态。

# %%
import math

import matplotlib.pyplot as plt
import torch

from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick
from s4lab.ssm import discretize, expm1_over_x, scan

setup_chinese_font()

# %% [markdown]
# ## 前向欧拉法：一阶泰勒展开
#
# 最直接的想法是把导数换成差商。在 $t_{k-1}$ 处做一阶泰勒展开：$x(t_{k-1} + \Delta) = x(t_{k-1}) + \Delta x'(t_{k-1}) + O(\Delta^2)$，
# 丢掉 $O(\Delta^2)$ 并代入 {eq}`eq-ssm-state`：
#
# $$
# x_k = x_{k-1} + \Delta (A x_{k-1} + B u_k) \quad\Longrightarrow\quad \bar{A} = I + \Delta A, \quad \bar{B} = \Delta B
# $$ (eq-euler)
#
# 严格的前向欧拉法用 $u_{k-1}$；为了和另外两种方法使用同一个输入下标，这里写成 $u_k$，两者相差的也只是 $O(\Delta^2)$ 的局部误差。
# 每一步丢掉 $O(\Delta^2)$，走到固定时刻 $T$ 需要 $T/\Delta$ 步，所以全局误差是 $O(\Delta)$：欧拉法是一阶方法。

# %% [markdown]
# ## 双线性变换：梯形公式
#
# 把 {eq}`eq-ssm-state` 在 $[t_{k-1}, t_k]$ 上积分，$x_k - x_{k-1} = \int_{t_{k-1}}^{t_k} (A x + B u)\, \mathrm{d}t$，
# 再用梯形公式近似积分：$\frac{\Delta}{2}\left[(A x_{k-1} + B u_{k-1}) + (A x_k + B u_k)\right]$。
# 递推 {eq}`eq-recurrence` 每步只接收一个输入样本，所以把两端的平均 $(u_{k-1} + u_k)/2$ 记作这一步的输入 $u_k$，
# 再把含 $x_k$ 的项移到左边：
#
# $$
# \left(I - \tfrac{\Delta}{2} A\right) x_k = \left(I + \tfrac{\Delta}{2} A\right) x_{k-1} + \Delta B u_k
# \quad\Longrightarrow\quad
# \bar{A} = \left(I - \tfrac{\Delta}{2} A\right)^{-1}\left(I + \tfrac{\Delta}{2} A\right), \quad
# \bar{B} = \left(I - \tfrac{\Delta}{2} A\right)^{-1} \Delta B
# $$ (eq-bilinear)
#
# 梯形公式的局部误差是 $O(\Delta^3)$，所以双线性变换是二阶方法，前提是 $u_k$ 确实代表这一步两端输入的平均。
# 后面的收敛实验会看到，如果 $u_k$ 只是步末的采样值，这个前提不成立，阶数会降到一阶。

# %% [markdown]
# ## 零阶保持：在一步之内精确积分
#
# 前两种方法都近似了状态的演化。零阶保持只近似输入：假设输入在每一步之内保持常数 $u(s) = u_k$，$s \in (t_{k-1}, t_k]$，
# 然后把 {ref}`ch-continuous` 的解 {eq}`eq-voc` 从 $t_{k-1}$ 精确地积分到 $t_k$：
#
# $$
# x(t_k) = e^{\Delta A} x(t_{k-1}) + \int_{t_{k-1}}^{t_k} e^{A(t_k - s)}\, \mathrm{d}s\, B u_k
# = e^{\Delta A} x(t_{k-1}) + A^{-1}\left(e^{\Delta A} - I\right) B u_k
# $$
#
# 把 $A^{-1}(e^{\Delta A} - I) B$ 写成 $(\Delta A)^{-1}(e^{\Delta A} - I)\, \Delta B$，就得到
#
# $$
# \bar{A} = e^{\Delta A}, \qquad \bar{B} = (\Delta A)^{-1}\left(e^{\Delta A} - I\right) \Delta B
# $$ (eq-zoh)
#
# 对角 $A$ 时，每个模态 $\bar{B}_n = \Delta\, \varphi(\Delta A_n) B_n$，其中 $\varphi(x) = (e^x - 1)/x$，这正是 `expm1_over_x` 计算的函数。
# 下面先在一个标量系统上核对三种方法的数值：$A = -0.5$，$B = 1$，$\Delta = 10$，参考值由 {eq}`eq-zoh`、{eq}`eq-bilinear` 手算得到。

# %%
A_scalar = torch.tensor([-0.5], dtype=torch.float64)
B_scalar = torch.tensor([1.0], dtype=torch.float64)
dt_scalar = 10.0
reference = {
    "zoh": (math.exp(-5.0), (math.exp(-5.0) - 1) / -0.5),
    "bilinear": ((1 - 2.5) / (1 + 2.5), 10.0 / (1 + 2.5)),
    "euler": (1 - 5.0, 10.0),
}
for method, (A_ref, B_ref) in reference.items():
    A_bar, B_bar = discretize(A_scalar, B_scalar, dt_scalar, method)
    print(f"{method:8s} Ā = {A_bar.item():+.6f}（参考 {A_ref:+.6f}），B̄ = {B_bar.item():.6f}（参考 {B_ref:.6f}）")

# %%
# NBVAL_CHECK_OUTPUT
for method in ("zoh", "bilinear"):
    A_bar, B_bar = discretize(A_scalar, B_scalar, dt_scalar, method)
    A_ref, B_ref = reference[method]
    assert abs(A_bar.item() - A_ref) < 1e-12, method
    assert abs(B_bar.item() - B_ref) < 1e-12, method
    print(f"{method}：Ā ≈ {A_bar.item():.7g}，B̄ ≈ {B_bar.item():.7g}")

# %% [markdown]
# 注意这里的步长很大（$\Delta |A| = 5$）：ZOH 的 $\bar{A} \approx 0.0067$ 仍然在 $(0, 1)$ 里，双线性的 $\bar{A}$ 变成了负数但绝对值小于 1，
# 而欧拉法的 $\bar{A} = -4$ 已经让递推发散。本章最后一节会回到稳定性。

# %% [markdown]
# ## ZOH 对分段常数输入是精确的
#
# 推导 {eq}`eq-zoh` 时唯一的近似是“输入在一步之内不变”。如果输入本来就是分段常数，ZOH 递推应该与连续系统在采样时刻的精确解完全一致。
# 为了得到一个独立于 {eq}`eq-zoh` 的精确解，把输入也看成状态：在一步之内 $u' = 0$，于是 $(x, u)$ 满足自治的线性方程
#
# $$
# \frac{\mathrm{d}}{\mathrm{d}t}\begin{pmatrix} x \\ u \end{pmatrix} = \begin{pmatrix} A & B \\ 0 & 0 \end{pmatrix} \begin{pmatrix} x \\ u \end{pmatrix}
# $$ (eq-augmented)
#
# 它在一步上的精确解就是这个 $2 \times 2$ 分块矩阵的矩阵指数，由 `torch.linalg.matrix_exp` 计算，没有用到 $\varphi$。
# 我们取三个复模态（每个模态作为一个通道，形状 `(H, 1)`），输入是随机的分段常数序列。

# %%
A_modes = torch.tensor([[-0.5 + 2.0j], [-1.0 + 0.5j], [-0.3 + 3.0j]], dtype=torch.complex128)  # (H, 1)
B_modes = torch.ones_like(A_modes)  # (H, 1)
C_modes = torch.ones_like(A_modes)  # (H, 1)，C = 1 让 scan 的输出就是状态本身


def exact_piecewise_constant(A, B, u, dt):
    """用增广矩阵 (eq-augmented) 的矩阵指数逐步精确求解，A、B 为 (H, 1)，u 为 (L,)，返回 (H, L)。"""
    states = []
    for a, b in zip(A.flatten(), B.flatten()):
        generator = torch.tensor([[a, b], [0, 0]], dtype=torch.complex128)  # (2, 2)
        propagator = torch.linalg.matrix_exp(dt * generator)  # (2, 2)
        x, xs = torch.zeros((), dtype=torch.complex128), []
        for u_k in u:
            x = propagator[0, 0] * x + propagator[0, 1] * u_k
            xs.append(x)
        states.append(torch.stack(xs))
    return torch.stack(states)  # (H, L)


torch.manual_seed(0)
dt_pc, L_pc = 0.3, 50
u_pc = torch.randn(L_pc, dtype=torch.float64)  # (L,)
x_exact = exact_piecewise_constant(A_modes, B_modes, u_pc, dt_pc)  # (H, L)
A_bar, B_bar = discretize(A_modes, B_modes, dt_pc, "zoh")
x_zoh = scan(A_bar, B_bar, C_modes, u_pc.expand(3, L_pc))  # (H, L)

# %%
# NBVAL_CHECK_OUTPUT
rel_err = ((x_zoh - x_exact).abs().max() / x_exact.abs().max()).item()
assert rel_err < 1e-12, rel_err
print(f"ZOH 递推与分段常数输入的精确解一致（相对误差 < 1e-12）：{rel_err < 1e-12}")

# %% [markdown]
# 双线性与欧拉法近似了状态在一步之内的演化，所以即使输入是分段常数，它们也不是精确的：

# %%
for method in ("bilinear", "euler"):
    A_bar_m, B_bar_m = discretize(A_modes, B_modes, dt_pc, method)
    x_m = scan(A_bar_m, B_bar_m, C_modes, u_pc.expand(3, L_pc))  # (H, L)
    print(f"{method}：相对误差 {((x_m - x_exact).abs().max() / x_exact.abs().max()).item():.2e}")

# %% [markdown]
# ## 平滑输入下的收敛阶
#
# 现在取平滑输入 $u(t) = \cos \omega t$。{ref}`ch-continuous` 的 {eq}`eq-cos-response` 给出了精确解，对标量模态它化为
#
# $$
# x(t) = \frac{1}{2}\left[\frac{e^{i\omega t} - e^{At}}{i\omega - A} + \frac{e^{-i\omega t} - e^{At}}{-i\omega - A}\right] B
# $$ (eq-cos-mode)
#
# 在 $[0, T]$ 上用不同的步长 $\Delta$ 运行递推，记录采样时刻的最大相对误差 $e(\Delta)$。如果 $e(\Delta) \approx c \Delta^p$，
# 在双对数坐标中就是一条斜率为 $p$ 的直线，$p$ 叫做收敛阶。我们比较两种给出 $u_k$ 的方式：
#
# - 步末采样：$u_k = u(t_k)$，这是把一段连续信号变成序列最常见的做法；
# - 区间平均：$u_k = \frac{1}{2}\left[u(t_{k-1}) + u(t_k)\right]$，即梯形公式 {eq}`eq-bilinear` 假设的输入。
#
# 结果见 {numref}`fig-disc-convergence`。

# %%
omega = 1.3
T_end = 4.0 if is_quick() else 8.0
dt_grid = torch.logspace(-3, -2, 5, dtype=torch.float64)  # 欧拉法对这三个模态在 Δ < 0.066 时稳定
methods = ("euler", "bilinear", "zoh")
method_names = {"euler": "欧拉", "bilinear": "双线性", "zoh": "零阶保持"}


def exact_cos_state(A, B, t):
    """式 (eq-cos-mode)：A、B 为 (H, 1)，t 为 (L,)，返回 (H, L)。"""
    t = t.to(torch.complex128)
    decay = torch.exp(A * t)  # (H, L)
    forward = (torch.exp(1j * omega * t) - decay) / (1j * omega - A)
    backward = (torch.exp(-1j * omega * t) - decay) / (-1j * omega - A)
    return 0.5 * (forward + backward) * B


def discretization_errors(sampling: str) -> dict:
    """对每种方法与每个 Δ 返回采样时刻的最大相对误差。"""
    errors = {method: [] for method in methods}
    for dt in dt_grid.tolist():
        L = round(T_end / dt)
        t = torch.arange(1, L + 1, dtype=torch.float64) * dt  # (L,)
        u = torch.cos(omega * t)
        if sampling == "average":
            u = (u + torch.cos(omega * (t - dt))) / 2
        x_true = exact_cos_state(A_modes, B_modes, t)  # (H, L)
        # 三种方法的离散参数拼成 3H 个通道，一次 scan 跑完。
        bars = [discretize(A_modes, B_modes, dt, method) for method in methods]
        A_bar = torch.cat([a for a, _ in bars])  # (3H, 1)
        B_bar = torch.cat([b for _, b in bars])  # (3H, 1)
        x = scan(A_bar, B_bar, torch.ones_like(A_bar), u.expand(A_bar.shape[0], L))  # (3H, L)
        for i, method in enumerate(methods):
            x_method = x[3 * i : 3 * (i + 1)]  # (H, L)
            errors[method].append(((x_method - x_true).abs().max() / x_true.abs().max()).item())
    return errors


def fitted_order(errors: list) -> float:
    """最小二乘拟合 log e = p·log Δ + c，返回斜率 p。"""
    log_dt, log_err = torch.log(dt_grid), torch.log(torch.tensor(errors, dtype=torch.float64))
    centered = log_dt - log_dt.mean()
    return ((centered * (log_err - log_err.mean())).sum() / (centered**2).sum()).item()


errors_end = discretization_errors("end")
errors_average = discretization_errors("average")
orders = {
    sampling: {method: fitted_order(errors[method]) for method in methods}
    for sampling, errors in (("end", errors_end), ("average", errors_average))
}
for sampling, label in (("end", "步末采样"), ("average", "区间平均")):
    print(label, {method_names[m]: round(p, 3) for m, p in orders[sampling].items()})

# %% mystnb={"figure": {"caption": "三种离散化方法的误差随步长 Δ 的变化（双对数坐标）。左：输入取步末采样；右：输入取区间两端的平均。", "name": "fig-disc-convergence"}}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
for ax, errors, title, sampling in (
    (axes[0], errors_end, "步末采样 $u_k = u(t_k)$", "end"),
    (axes[1], errors_average, "区间平均 $u_k = [u(t_{k-1}) + u(t_k)]/2$", "average"),
):
    for method in methods:
        ax.loglog(dt_grid, errors[method], "o-", label=f"{method_names[method]}（斜率 {orders[sampling][method]:.2f}）")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("步长 Δ")
    ax.legend(fontsize=8)
axes[0].set_ylabel("最大相对误差")
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
expected_orders = {
    "end": {"euler": 1, "bilinear": 1, "zoh": 1},
    "average": {"euler": 1, "bilinear": 2, "zoh": 2},
}
for sampling, label in (("end", "步末采样"), ("average", "区间平均")):
    for method in methods:
        assert abs(orders[sampling][method] - expected_orders[sampling][method]) < 0.1, (sampling, method)
    rounded = "，".join(f"{method_names[m]} {round(orders[sampling][m])} 阶" for m in methods)
    print(f"{label}：{rounded}")

# %% [markdown]
# 结果需要解释。欧拉法在两种输入下都是一阶，因为它对状态演化的近似 $\bar{A} = I + \Delta A$ 本身只准确到一阶。
#
# 对 ZOH 来说，状态在一步之内的演化是精确的，误差全部来自“把输入当作常数”这一假设。
# 步末采样时，保持的值是 $u(t_k)$，而这一步内真实输入的平均值约为 $u(t_k - \Delta/2)$，相当于把整段输入提前了半步，
# 所以全局误差是 $O(\Delta)$，ZOH 只有一阶。改用区间平均时，保持的值与真实输入之差在一步之内近似是一条过零点的直线，
# 积分时一阶部分相互抵消，ZOH 变成二阶，而且误差常数比双线性小。
#
# 双线性变换的情形相同：梯形公式需要两端的平均，步末采样把它也降成了一阶。
# 所以“双线性是二阶方法”这句话只有在 $u_k$ 代表整步的输入时才成立。
# 在 S4D 里，$u_k$ 是上一层的第 $k$ 个输出，并不是某个连续信号的采样，$\Delta$ 是学到的参数，
# 这里的收敛阶只说明各方法对连续系统的近似程度，不直接决定模型的好坏。

# %% [markdown]
# ## $\varphi(x) = (e^x - 1)/x$ 的数值精度
#
# 当 $\Delta A \to 0$ 时，直接按 {eq}`eq-zoh` 计算 $(e^{x} - 1)/x$ 会遇到灾难性抵消（catastrophic cancellation）：
# $e^x$ 与 1 非常接近，相减后只剩下少数有效数字，再除以很小的 $x$ 把误差放大。
# `expm1_over_x` 用 `torch.expm1` 计算分子，并在 $x = 0$ 处取极限 1。
# 作为参考值，我们用 float64 的泰勒级数 $\varphi(x) = \sum_{k \ge 0} x^k/(k+1)!$，对 $|x| \le 1$ 取 30 项，截断误差远小于双精度的舍入误差。

# %%
def phi_taylor(x: torch.Tensor, n_terms: int = 30) -> torch.Tensor:
    """φ(x) 的泰勒级数，用于 |x| ≤ 1 的参考值。"""
    total, term = torch.zeros_like(x), torch.ones_like(x)
    for k in range(n_terms):
        total = total + term  # term = x^k / (k+1)!
        term = term * x / (k + 2)
    return total


def phi_naive(x: torch.Tensor) -> torch.Tensor:
    return (torch.exp(x) - 1) / x


magnitudes = torch.logspace(-12, 0, 49, dtype=torch.float64)  # (M,)
x64 = -magnitudes  # 负实轴：稳定模态的 ΔA 落在这里
phi_ref = phi_taylor(x64)


def relative_error(values: torch.Tensor) -> torch.Tensor:
    return ((values.to(torch.float64) - phi_ref).abs() / phi_ref.abs()).clamp_min(1e-17)


curves = {
    "直接公式（float32）": relative_error(phi_naive(x64.float())),
    "直接公式（float64）": relative_error(phi_naive(x64)),
    "expm1_over_x（float32）": relative_error(expm1_over_x(x64.float())),
    "expm1_over_x（float64）": relative_error(expm1_over_x(x64)),
}

# %% mystnb={"figure": {"caption": "计算 φ(x) = (e^x − 1)/x 的相对误差：直接公式在 x → 0 时失去精度，expm1_over_x 保持在机器精度附近。", "name": "fig-disc-expm1"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
for label, err in curves.items():
    ax.loglog(magnitudes, err, "--" if "直接" in label else "-", label=label)
ax.set_title("φ(x) 的两种算法在 x → 0 时的精度")
ax.set_xlabel("|x|（x < 0）")
ax.set_ylabel("相对误差")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
z = magnitudes * torch.exp(1j * torch.linspace(0.6, 3.1, 49, dtype=torch.float64))  # 复数 ΔA，实部多为负
complex_err = ((expm1_over_x(z) - phi_taylor(z)).abs() / phi_taylor(z).abs()).max().item()
ok64 = curves["expm1_over_x（float64）"].max().item() < 1e-14
ok32 = curves["expm1_over_x（float32）"].max().item() < 1e-6
ok_complex = complex_err < 1e-14
naive_fails = curves["直接公式（float64）"][0].item() > 1e-6  # |x| = 1e-12 时直接公式只剩约 4 位有效数字
phi_zero = expm1_over_x(torch.zeros(1, dtype=torch.float64)).item()
assert ok64
assert ok32
assert ok_complex
assert naive_fails
assert phi_zero == 1.0
print(f"expm1_over_x 的相对误差，float64 < 1e-14：{ok64}，float32 < 1e-6：{ok32}，复数 float64 < 1e-14：{ok_complex}")
print(f"直接公式在 |x| = 1e-12 时相对误差 > 1e-6：{naive_fails}")
print(f"φ(0) = {phi_zero}")

# %% [markdown]
# 在 S4D 中，$\Delta$ 可以小到 $10^{-3}$，慢衰减模态的 $\mathrm{Re}\, A$ 也可能很小，$|\Delta A|$ 落进直接公式失去精度的区间并不罕见，
# 而且模型默认用 float32：{numref}`fig-disc-expm1` 中 float32 的直接公式在 $|x|$ 还远大于 float64 的失效点时，就已经失去了全部有效数字。

# %% [markdown]
# ## 稳定性
#
# 递推 {eq}`eq-recurrence` 在没有输入时给出 $x_k = \bar{A}^k x_0$。对角情形下，每个模态稳定当且仅当 $|\bar{A}_n| < 1$。
#
# - ZOH：$|e^{\Delta A}| = e^{\Delta\, \mathrm{Re} A} < 1$，只要 $\mathrm{Re} A < 0$，对任意 $\Delta > 0$ 都成立；
# - 双线性：$\left|\frac{1 + \Delta A/2}{1 - \Delta A/2}\right| < 1$ 等价于点 $\Delta A/2$ 到 $-1$ 的距离小于到 $+1$ 的距离，即 $\mathrm{Re} A < 0$，同样对任意 $\Delta$ 成立；
# - 欧拉：$|1 + \Delta A|^2 = 1 + 2\Delta\, \mathrm{Re} A + \Delta^2 |A|^2$，它小于 1 当且仅当 $\Delta$ 小于
#
# $$
# \Delta^* = \frac{-2\, \mathrm{Re} A}{|A|^2}
# $$ (eq-euler-stability)
#
# 虚部很大、实部很小的模态（S4D-Lin 初始化里正是这样）的 $\Delta^*$ 很小，欧拉法几乎不可用。
# 下面在一个网格上验证前两条：$\Delta$ 从 $10^{-3}$ 到 $10^{3}$，$\mathrm{Re} A$ 从 $-10^{-3}$ 到 $-10^{2}$，$\mathrm{Im} A$ 从 $-100$ 到 $100$。

# %%
dt_stab = torch.logspace(-3, 3, 61, dtype=torch.float64).view(-1, 1, 1)  # (Δ, 1, 1)
re_grid = -torch.logspace(-3, 2, 21, dtype=torch.float64).view(1, -1, 1)  # (1, R, 1)
im_grid = torch.linspace(-100, 100, 41, dtype=torch.float64).view(1, 1, -1)  # (1, 1, I)
A_grid = torch.complex(re_grid, torch.zeros_like(re_grid)) + 1j * im_grid  # (1, R, I)
magnitude = {
    method: discretize(A_grid, torch.ones_like(A_grid), dt_stab, method)[0].abs()  # (Δ, R, I)
    for method in methods
}
for method in methods:
    unstable = (magnitude[method] >= 1).double().mean().item()
    print(f"{method_names[method]}：|Ā| ≥ 1 的网格点占 {unstable:.1%}")

# %%
# NBVAL_CHECK_OUTPUT
for method in ("zoh", "bilinear"):
    all_stable = bool((magnitude[method] < 1).all())
    assert all_stable, method
    print(f"{method_names[method]}：网格上所有 |Ā| < 1：{all_stable}")

# %% [markdown]
# 再验证欧拉法的临界步长 {eq}`eq-euler-stability`：在 $\Delta^*$ 的两侧各取 1% 的偏移，$|\bar{A}|$ 应该分别小于和大于 1，在 $\Delta^*$ 处等于 1。
#
# 结果见 {numref}`fig-disc-stability`。

# %%
# NBVAL_CHECK_OUTPUT
A_test = torch.tensor([-0.5 + 0.0j, -0.5 + 3.0j, -0.01 + 10.0j, -2.0 + 0.5j], dtype=torch.complex128)
dt_critical = -2 * A_test.real / A_test.abs() ** 2  # (n,)
ones = torch.ones_like(A_test)
below = discretize(A_test, ones, 0.99 * dt_critical, "euler")[0].abs()
at = discretize(A_test, ones, dt_critical, "euler")[0].abs()
above = discretize(A_test, ones, 1.01 * dt_critical, "euler")[0].abs()
stable_below = bool((below < 1).all())
unstable_above = bool((above > 1).all())
marginal_at = (at - 1).abs().max().item() < 1e-12
assert stable_below
assert unstable_above
assert marginal_at
print(f"Δ = 0.99Δ* 时 |1 + ΔA| < 1：{stable_below}；Δ = 1.01Δ* 时 |1 + ΔA| > 1：{unstable_above}")
print(f"Δ = Δ* 时 |1 + ΔA| = 1（误差 < 1e-12）：{marginal_at}")
print("Δ* =", [f"{v:.4g}" for v in dt_critical.tolist()])

# %% mystnb={"figure": {"caption": "模态 A = −0.5 + 3i 的 |Ā| 随步长 Δ 的变化。虚线标出欧拉法的临界步长 Δ*。", "name": "fig-disc-stability"}}
A_one = torch.tensor([-0.5 + 3.0j], dtype=torch.complex128)
dt_curve = torch.logspace(-3, 2, 400, dtype=torch.float64)  # (M,)
fig, ax = plt.subplots(figsize=(7, 3.6))
for method in methods:
    A_bar_curve = discretize(A_one, torch.ones_like(A_one), dt_curve, method)[0]  # (M,)
    ax.semilogx(dt_curve, A_bar_curve.abs(), label=method_names[method])
ax.axhline(1.0, color="gray", linewidth=0.8)
ax.axvline((-2 * A_one.real / A_one.abs() ** 2).item(), color="k", linestyle="--", linewidth=0.8, label="欧拉法临界步长 Δ*")
ax.set_ylim(0, 2)
ax.set_title("离散化后的 |Ā| 与步长 Δ")
ax.set_xlabel("步长 Δ")
ax.set_ylabel("|Ā|")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 小结
#
# - 欧拉法 {eq}`eq-euler` 来自一阶泰勒展开，双线性变换 {eq}`eq-bilinear` 来自梯形公式，ZOH {eq}`eq-zoh` 来自在一步之内保持输入不变并精确积分；
# - ZOH 对分段常数输入是精确的；对平滑输入，三种方法的收敛阶取决于 $u_k$ 代表什么：步末采样时都是一阶，区间平均时双线性与 ZOH 是二阶；
# - ZOH 的 $\bar{B}$ 要用 $\varphi(x) = (e^x - 1)/x$ 的稳定实现 `expm1_over_x`，直接公式在 $x \to 0$ 时失去精度；
# - 只要 $\mathrm{Re} A < 0$，ZOH 与双线性对任意 $\Delta > 0$ 都稳定；欧拉法在 $\Delta > \Delta^*$ {eq}`eq-euler-stability` 时发散。
#
# ## 练习
#
# 1. 从 {eq}`eq-bilinear` 出发，证明 $\bar{A} = e^{\Delta A} + O(\Delta^3)$，并用 `discretize` 在几个 $\Delta$ 上数值验证。
# 2. 在收敛实验里改用区间中点采样 $u_k = u(t_k - \Delta/2)$，预测并验证三种方法的收敛阶。
# 3. 取 S4D-Lin 初始化 $A_n = -\tfrac{1}{2} + i\pi n$（`s4d_init_A`），对 $n = 0, \dots, 31$ 计算欧拉法的 $\Delta^*$，与 S4D 常用的步长范围 $[10^{-3}, 10^{-1}]$ 比较。
# 4. 在 float32 下重复 {numref}`fig-disc-expm1` 中直接公式的曲线，估计从哪个 $|x|$ 开始相对误差超过 1%。
