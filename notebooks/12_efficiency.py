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
# (ch-efficiency)=
# # 效率：卷积核、生成与吞吐量的实测
#
# 前面几章说 S4D 训练时的代价是 $O(L \log L)$，注意力是 $O(L^2)$。这些是渐近阶，不告诉我们在一台具体的机器上、
# 在实际用到的长度上谁更快。本章先把 S4D 卷积核的计算改写成只需很少超越函数的形式，再在这台机器上实测：
# 混合层的时间与内存随 L 的变化、两者的交点、逐词元生成的代价，以及两个语言模型的训练吞吐量。
# 同样的测量也可以用命令 `s4lab bench` 以更大的规模运行，它把结果写成一个 JSON 文件。
#
# ## 学习目标
#
# - 说明直接按范德蒙德公式生成卷积核为什么慢，以及分块（chunked）算法如何把它变成批量矩阵乘法；
# - 用数值验证分块算法与直接公式的误差；
# - 读懂 log-log 坐标下时间与内存随 L 变化的斜率，找到 S4D 快于注意力的交点；
# - 比较 S4D 递推模式、Transformer 的 KV 缓存（key-value cache）与重新计算三种生成方式的每词元代价；
# - 把训练吞吐量换算成矩阵乘法峰值的利用率。

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter
import torch

from s4lab import bench, generation, ssm
from s4lab.layers import S4DLayer
from s4lab.models import LMConfig, build_model
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick

setup_chinese_font()
torch.manual_seed(0)


def label_lengths(ax, lengths):
    """在对数横轴上只标出实际测过的长度，去掉互相重叠的次刻度标签。"""
    ax.set_xticks(list(lengths), [f"{v:,}" for v in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())


device = torch.device("cpu")
print(f"PyTorch {torch.__version__}，线程数 {torch.get_num_threads()}，快速模式：{is_quick()}")

# %% [markdown]
# ## 直接公式的代价
#
# 回忆 {ref}`ch-kernel`：S4D 的卷积核是
#
# $$
# K_l = 2\,\mathrm{Re}\Big(\sum_{n} C_n \bar B_n \bar A_n^{\,l}\Big), \qquad l = 0, \dots, L-1.
# $$ (eq-eff-kernel)
#
# 直接计算要对每个通道、每个模态、每个位置求一次复数幂 $\bar A_n^{\,l} = e^{l \Delta A_n}$，
# 共 $H \cdot \tfrac{N}{2} \cdot L$ 次复指数，再做同样多次乘加。乘加很便宜，复指数（一次实指数加一次正弦、一次余弦）却贵得多，
# 所以在 CPU 上生成卷积核的时间主要花在超越函数上。
#
# ## 分块：把幂拆成两段
#
# 取块长 $c \approx \sqrt{L}$，把位置写成 $l = c\,m + j$（$0 \le j < c$，$0 \le m < M = \lceil L / c \rceil$）。因为
#
# $$
# \bar A_n^{\,c m + j} = \bar A_n^{\,c m} \cdot \bar A_n^{\,j},
# $$ (eq-eff-split)
#
# 把 {eq}`eq-eff-kernel` 的结果排成 $M \times c$ 的矩阵，它的第 $(m, j)$ 个元素是
#
# $$
# K_{c m + j} = 2\,\mathrm{Re}\Big(\sum_{n} \underbrace{C_n \bar B_n \bar A_n^{\,c m}}_{W_{m n}} \; \underbrace{\bar A_n^{\,j}}_{P_{n j}}\Big)
# = 2\,\big(\mathrm{Re}\,W \cdot \mathrm{Re}\,P - \mathrm{Im}\,W \cdot \mathrm{Im}\,P\big)_{m j}.
# $$ (eq-eff-matmul)
#
# 对模态的求和变成了一个 $(M, N/2) \times (N/2, c)$ 的矩阵乘积（每个通道一个），写成实数就是一次内维为 $N$ 的批量矩阵乘法。
# 需要的复指数只有 $H \cdot \tfrac{N}{2} \cdot (M + c) \approx H \cdot N \sqrt{L}$ 个，乘加的次数与直接公式相同，但矩阵乘法能用满 CPU 的向量单元。
#
# 下面用 NumPy 在 float64 中把 {eq}`eq-eff-matmul` 写一遍，与直接公式比较：

# %%
def chunked_kernel_numpy(A, C, dt, L):
    """按 (eq-eff-matmul) 计算一个通道的 S4D 卷积核。A, C: (n,) 复数，返回 (L,) 实数。"""
    dtA = dt * A  # (n,)
    coeff = C * dt * np.expm1(dtA) / dtA  # C·B̄，B = 1
    c = 1 << math.ceil(math.log2(math.sqrt(L)))  # 块长：不小于 √L 的 2 的幂
    M = -(-L // c)
    W = coeff[None, :] * np.exp(np.outer(c * np.arange(M), dtA))  # (M, n)
    P = np.exp(np.outer(dtA, np.arange(c)))  # (n, c)
    return 2 * (W @ P).real.reshape(-1)[:L]  # (L,)


A_np = ssm.s4d_init_A(32, "lin").numpy().astype(np.complex128)  # (n,)
rng = np.random.default_rng(0)
C_np = rng.standard_normal(32) + 1j * rng.standard_normal(32)  # (n,)
L_demo, dt_demo = 1000, 0.01
K_direct = 2 * (C_np * dt_demo * np.expm1(dt_demo * A_np) / (dt_demo * A_np) @ np.exp(np.outer(dt_demo * A_np, np.arange(L_demo)))).real
K_chunk = chunked_kernel_numpy(A_np, C_np, dt_demo, L_demo)
print(f"块长 c = {1 << math.ceil(math.log2(math.sqrt(L_demo)))}，块数 M = {-(-L_demo // (1 << math.ceil(math.log2(math.sqrt(L_demo)))))}")

# %%
# NBVAL_CHECK_OUTPUT
err_numpy = np.linalg.norm(K_chunk - K_direct) / np.linalg.norm(K_direct)
assert err_numpy < 1e-12, err_numpy
print(f"分块（NumPy，float64）与直接公式的相对误差 < 1e-12：{err_numpy < 1e-12}")

# %% [markdown]
# `s4lab.ssm.s4d_kernel` 默认使用同一个分块算法（`method="chunked"`），并保留直接公式（`method="vandermonde"`）作对照。
# 它还做了一处精度上的处理：外层的相位 $\mathrm{Im}(\Delta A_n)\, c\, m$ 可以达到几千弧度，
# 在 float32 中舍入一次就会带来约 $10^{-4}$ 弧度的误差；外层只有 $H \cdot \tfrac{N}{2} \cdot M$ 个元素，
# 所以库在 float64 中计算它们，再转回 float32。下面在 float32 中比较两种算法，并以同一组输入在 float64 中的直接公式为“真值”，
# Δ 取 $10^{-4}$ 到 $10$，L 取到 65,536：

# %%
def kernel_errors(dt, L, init):
    A = ssm.s4d_init_A(32, init).unsqueeze(0).expand(4, 32)  # (H, n)
    C = torch.randn(4, 32, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))  # (H, n)
    log_dt = torch.full((4,), math.log(dt))  # (H,)
    fast = ssm.s4d_kernel(A, C, log_dt, L, method="chunked").double()
    direct = ssm.s4d_kernel(A, C, log_dt, L, method="vandermonde").double()
    truth = ssm.s4d_kernel(A.to(torch.complex128), C.to(torch.complex128), log_dt.double(), L, method="vandermonde")
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    return rel(fast, direct), rel(fast, truth), rel(direct, truth)


rows = []
for init in ("lin", "inv"):
    for dt in (1e-4, 1e-2, 1.0, 10.0):
        rows.append((init, dt, *kernel_errors(dt, 65536, init)))
print(f"{'初始化':<6}{'Δ':>8}{'分块 vs 直接':>14}{'分块 vs 真值':>14}{'直接 vs 真值':>14}")
for init, dt, e1, e2, e3 in rows:
    print(f"{init:<8}{dt:>8.0e}{e1:>14.1e}{e2:>14.1e}{e3:>14.1e}")

# %%
# NBVAL_CHECK_OUTPUT
worst_vs_direct = max(r[2] for r in rows)
worst_vs_truth = max(r[3] for r in rows)
assert worst_vs_direct <= 1e-5, worst_vs_direct
assert worst_vs_truth <= 1e-5, worst_vs_truth
print(f"float32 下分块与直接公式的最大相对误差 ≤ 1e-5：{worst_vs_direct <= 1e-5}")
print(f"float32 下分块与 float64 真值的最大相对误差 ≤ 1e-5：{worst_vs_truth <= 1e-5}")

# %% [markdown]
# 表中“直接 vs 真值”一列说明：在 float32 中，直接公式自己也有这个量级的误差，它来自大相位的舍入，
# 而不是来自分块。Δ 小、L 长时（每个模态在整段序列上几乎不衰减）这一误差最大。
#
# ## 混合层的时间与内存
#
# 现在比较四种序列混合层的一次前向 + 反向：S4D（分块卷积核）、S4D（直接公式）、用
# `scaled_dot_product_attention` 的因果注意力（SDPA），以及显式构造 $L \times L$ 注意力矩阵的朴素注意力。
# 每个长度上四个变体在同一个进程里交替计时，先各热身一次，再各计时 5 次，取中位数；峰值内存在新的子进程里测量
# （`/proc/self/status` 中的 VmHWM 减去运行前的 VmRSS）。为了让整章几分钟内跑完，这里的规模比 `s4lab bench` 小：
#
# 结果见 {numref}`fig-eff-layer-time`。

# %%
if is_quick():
    layer_sizes = {"batch": 2, "d_model": 32, "d_state": 16, "n_heads": 4, "lengths": [128, 512]}
else:
    layer_sizes = {"batch": 2, "d_model": 64, "d_state": 64, "n_heads": 4, "lengths": [256, 1024, 4096]}
layer_results = bench.case_layers(layer_sizes, repeats=5, device=device)
for row in layer_results["rows"]:
    text = "，".join(f"{name} {s['median'] * 1e3:.1f} ms" for name, s in row["seconds"].items())
    print(f"L = {row['L']}：{text}")
print(bench.describe_crossover(layer_results["crossover_L_grid"], layer_results["crossover_L_estimate"], layer_sizes["lengths"]))

# %% mystnb={"figure": {"caption": "混合层一次前向 + 反向的时间随序列长度 L 的变化（log-log 坐标），图例中是拟合的斜率。", "name": "fig-eff-layer-time"}}
labels = {
    "s4d_fast": "S4D（分块核）",
    "s4d_vandermonde": "S4D（直接公式）",
    "attention_sdpa": "注意力（SDPA）",
    "attention_naive": "注意力（朴素）",
}
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name, label in labels.items():
    points = [(row["L"], row["seconds"][name]["median"]) for row in layer_results["rows"] if name in row["seconds"]]
    if points:
        Ls, ts = zip(*points)
        slope = layer_results["slopes"].get(name)
        ax.loglog(Ls, np.array(ts) * 1e3, "o-", label=f"{label}，斜率 {slope:.2f}" if slope is not None else label)
if layer_results["crossover_L_estimate"]:
    ax.axvline(layer_results["crossover_L_estimate"], color="gray", linestyle="--", label="S4D 与 SDPA 的交点（插值）")
label_lengths(ax, [row["L"] for row in layer_results["rows"]])
ax.set_xlabel("序列长度 L")
ax.set_ylabel("前向 + 反向时间（毫秒）")
ax.set_title("混合层的时间与序列长度")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# 在 log-log 坐标下，$t \propto L^p$ 是一条斜率为 $p$ 的直线。$O(L \log L)$ 的斜率略大于 1，$O(L^2)$ 的斜率是 2。
# 短序列上各变体的时间被固定开销（线性层、调用与内存分配）主导，斜率偏小；只有在较长的 L 上斜率才接近渐近阶。
# SDPA 在 CPU 上也是 $O(L^2)$ 的计算，但它分块计算注意力，不保存 $L \times L$ 的矩阵，所以内存只随 L 线性增长：
#
# 结果见 {numref}`fig-eff-layer-memory`。

# %% mystnb={"figure": {"caption": "混合层一次前向 + 反向的峰值内存增量随 L 的变化（log-log 坐标）。", "name": "fig-eff-layer-memory"}}
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name, label in labels.items():
    points = [
        (row["L"], row["peak_memory_mib"][name])
        for row in layer_results["rows"]
        if row["peak_memory_mib"].get(name) is not None
    ]
    if len(points) >= 2:
        Ls, mem = zip(*points)
        slope = np.polyfit(np.log(Ls), np.log(np.maximum(mem, 1e-3)), 1)[0]
        ax.loglog(Ls, mem, "o-", label=f"{label}，斜率 {slope:.2f}")
label_lengths(ax, [row["L"] for row in layer_results["rows"]])
ax.set_xlabel("序列长度 L")
ax.set_ylabel("峰值内存增量（MiB）")
ax.set_title("混合层的内存与序列长度")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 逐词元生成
#
# 生成文本时每次只多一个词元。S4D 可以切换到 {ref}`ch-recurrence` 的递推模式：每层保存一个 $(B, H, N/2)$ 的复数状态，
# 读入一个词元只做 $x \leftarrow \bar A x + \bar B u$、$y = 2\,\mathrm{Re}(C x) + D u$，代价与已经生成的长度无关。
# Transformer 则把每层每个位置的键和值存进 KV 缓存，新词元只算自己的查询、键和值，但仍要与全部缓存做一次注意力，
# 代价随上下文线性增长。`s4lab.generation` 实现了这两种模式，先检查它们与整段前向计算给出相同的 logits：

# %%
small = LMConfig(vocab_size=13, seq_len=64, d_model=32, n_layers=2, d_state=16, n_heads=4, dt_max=1.0)
idx = torch.randint(0, 13, (2, 40), generator=torch.Generator().manual_seed(0))
generation_errors = {}
for name in ("s4d", "transformer"):
    torch.manual_seed(0)
    model = build_model(name, small).eval()
    with torch.no_grad():
        model.head.weight.mul_(100)  # 让 logits 远离 0，相对误差才有意义
        reference = model(idx)  # (B, L, V)
    logits, state = generation.prefill(model, idx[:, :10])
    steps = [logits] + [generation.step(model, idx[:, t], state).unsqueeze(1) for t in range(10, 40)]
    stepped = torch.cat(steps, dim=1)  # (B, L, V)
    generation_errors[name] = ((stepped - reference).norm(dim=-1) / reference.norm(dim=-1)).max().item()
    print(f"{name}：逐词元与整段前向的最大相对误差 {generation_errors[name]:.1e}")

# %%
# NBVAL_CHECK_OUTPUT
for name, err in generation_errors.items():
    assert err <= 1e-4, (name, err)
    print(f"{name} 逐词元生成的 logits 与整段前向一致（相对误差 ≤ 1e-4）：{err <= 1e-4}")

# %% [markdown]
# 下面测量已有上下文长度为 T 时再生成一个词元的代价，批大小为 1，模型是随机初始化的默认配置（代价与权重的取值无关）：
#
# 结果见 {numref}`fig-eff-generation`。

# %%
if is_quick():
    generation_sizes = {"config": LMConfig(d_model=32, n_layers=2, d_state=16), "contexts": [128, 512], "steps": 4}
else:
    generation_sizes = {"config": LMConfig(), "contexts": [256, 1024, 4096], "steps": 8}
generation_results = bench.case_generation(generation_sizes, repeats=5, device=device)
generation_labels = {
    "s4d_recurrent": "S4D 递推",
    "s4d_recompute": "S4D 重新卷积",
    "transformer_no_cache": "Transformer 无缓存",
    "transformer_kv_cache": "Transformer KV 缓存",
}
for row in generation_results["rows"]:
    text = "，".join(f"{generation_labels[n]} {s['median'] * 1e3:.2f} ms" for n, s in row["seconds_per_token"].items())
    print(f"T = {row['context']}：{text}")

# %% mystnb={"figure": {"caption": "已有上下文长度为 T 时生成一个词元的代价（批大小 1，log-log 坐标）。", "name": "fig-eff-generation"}}
fig, ax = plt.subplots(figsize=(6.5, 4.5))
contexts = [row["context"] for row in generation_results["rows"]]
for name, label in generation_labels.items():
    ms = [row["seconds_per_token"][name]["median"] * 1e3 for row in generation_results["rows"]]
    ax.loglog(contexts, ms, "o-", label=label)
label_lengths(ax, contexts)
ax.set_xlabel("上下文长度 T")
ax.set_ylabel("每个词元的时间（毫秒）")
ax.set_title("逐词元生成的代价与上下文长度")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# 两种“重新计算”每生成一个词元都要把整段上下文再算一遍，代价随 T 增长；S4D 递推的代价与 T 无关，
# KV 缓存介于两者之间：它省去了重算，但每一步仍要读完整个缓存。
#
# ## 训练吞吐量与利用率
#
# 最后比较两个完整模型训练时每秒处理的词元数（含 AdamW 的一步更新），并在同一进程里测量 float32 矩阵乘法的吞吐量。
# 每个训练词元的浮点运算数按 3 × 2 × 线性层权重数估计，Transformer 再加上每层 $4 L H$ 的注意力项；
# 两者相除得到利用率，这是估计值，只用来看数量级：
#
# 结果见 {numref}`fig-eff-throughput`。

# %%
if is_quick():
    training_sizes = {"training": {"config": LMConfig(d_model=32, n_layers=2, d_state=16, seq_len=128), "batch": 4}, "matmul_size": 512}
else:
    training_sizes = {"training": {"config": LMConfig(), "batch": 16}, "matmul_size": 1024}
training_results = bench.case_training(training_sizes, repeats=5, device=device)
print(f"矩阵乘法：{training_results['matmul']['flops_per_second'] / 1e9:.1f} GFLOP/s")
for name, row in training_results["models"].items():
    print(f"{name}：{row['tokens_per_second']:.0f} 词元/秒，估计利用率 {row['utilisation'] * 100:.1f} %")

# %% mystnb={"figure": {"caption": "两个语言模型的训练吞吐量与估计的矩阵乘法利用率。", "name": "fig-eff-throughput"}}
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
names = list(training_results["models"])
display = {"s4d": "S4D", "transformer": "Transformer"}
axes[0].bar([display[n] for n in names], [training_results["models"][n]["tokens_per_second"] for n in names])
axes[0].set_ylabel("词元/秒")
axes[0].set_title("训练吞吐量")
axes[1].bar([display[n] for n in names], [training_results["models"][n]["utilisation"] * 100 for n in names])
axes[1].set_ylabel("利用率（%）")
axes[1].set_title("相对矩阵乘法峰值的利用率")
fig.tight_layout()
plt.show()

# %% [markdown]
# 利用率的分子只数了矩阵乘法的运算量，S4D 的卷积核与 FFT 以及两个模型的逐元素运算都不计入，
# 所以它低估了模型实际做的工作，只说明离矩阵乘法的峰值还有多远。{ref}`ch-training` 使用的长度是 256，
# 两个模型在这个长度上谁更快，以上面同一长度附近的层级测量为准；S4D 在长序列上的优势从上面的交点开始出现。
#
# ## 小结
#
# - 直接按 {eq}`eq-eff-kernel` 生成卷积核需要 $H \cdot \tfrac{N}{2} \cdot L$ 次复指数；按 {eq}`eq-eff-split` 分块后只需约 $H \cdot N \sqrt{L}$ 次，对模态的求和变成批量矩阵乘法 {eq}`eq-eff-matmul`。
# - 分块算法在 float32 下与直接公式的相对误差不超过 $10^{-5}$，并且不比直接公式离 float64 真值更远。
# - 时间与内存要在同一台机器上交替测量，看中位数与范围；log-log 坐标下的斜率只在足够长的 L 上接近渐近阶。
# - 生成时 S4D 的递推每个词元的代价与上下文长度无关，Transformer 的 KV 缓存省去重算，但代价仍随上下文增长。
# - 用 `s4lab bench` 可以在完整规模上重复本章的全部测量。
#
# ## 练习
#
# 1. 把块长 $c$ 改成 $L^{1/3}$ 或 $L/8$，超越函数的个数与矩阵乘法的形状各怎样变化？在你的机器上测一测卷积核的生成时间。
# 2. 把 {eq}`eq-eff-split` 推广成三段 $l = c^2 m + c\, k + j$，写出对应的矩阵乘积。误差会变大还是变小？
# 3. 在 `chunked_kernel_numpy` 中改用 float32 计算外层的幂 $W$，在 Δ = $10^{-4}$、L = 65,536 时误差如何变化？解释原因。
# 4. KV 缓存的内存随上下文长度怎样增长？S4D 递推的状态呢？分别写出以 B、L、H、N 与层数表示的字节数。
# 5. 用 `s4lab bench` 的 JSON 找出 SDPA 注意力与 S4D（分块核）时间相等的长度，并解释它为什么与批大小和 H 有关。
