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
# (ch-evaluation)=
# # 评估与分析
#
# {ref}`ch-training` 按同一套协议训练了 S4D 与 Transformer 两个语言模型。本章读取那一章保存的检查点，
# 第一次在测试集上评估它们，并与不含神经网络的 n-gram 基线对照；然后用多个随机种子估计结果的波动，
# 再从几个角度观察两个模型学到了什么：损失随上下文位置的变化、生成的文本、预测的熵、注意力图，
# 以及 S4D 学到的卷积核与步长 $\Delta$。
#
# ## 学习目标
#
# - 会把交叉熵换算成每字符比特数（bits per character，BPC）与困惑度（perplexity），并与 n-gram 基线比较；
# - 能用多种子实验判断两个模型的差距是否大于训练本身的随机波动；
# - 理解按位置的损失曲线说明了什么：模型从更长的上下文中获益多少；
# - 理解采样中的温度与 top-k，以及温度为 0 时的贪心解码；
# - 会读预测熵、注意力图与 S4D 卷积核这几类分析图。

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from s4lab.data import CharDataset
from s4lab.evaluation import (
    attention_maps,
    loss_metrics,
    prediction_entropy,
    s4d_kernels,
    s4d_step_sizes,
    split_metrics,
)
from s4lab.experiment import (
    experiment_plan,
    initial_model,
    latest_experiment_dir,
    load_final_model,
    load_results,
    save_results,
    seed_runs,
)
from s4lab.ngram import fit_ngram
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import default_device, display_path, is_quick
from s4lab.sampling import generate
from s4lab.train import MODEL_LABELS

chapter_start = time.perf_counter()
setup_chinese_font()
QUICK = is_quick()
device = default_device()
MODELS = ("s4d", "transformer")
colors = {"s4d": "tab:blue", "transformer": "tab:orange"}

# %% [markdown]
# ## 读取训练结果
#
# 下面的函数读取 {ref}`ch-training` 最近一次运行写出的结果与检查点。
# 如果还没有运行过那一章，它们会抛出错误并说明要先运行哪一章。

# %%
root = latest_experiment_dir()
final = load_results("final", root)
search = load_results("lr_search", root)
plan = experiment_plan(final["plan"]["name"])
models = {name: load_final_model(name, root)[0].to(device) for name in MODELS}
lm_config = models["s4d"].config
dataset = CharDataset.load()
print(f"实验目录：{display_path(root)}")
print(f"实验预设：{plan.name}，测试集 {len(dataset.test):,} 个字符")

# %% [markdown]
# ## 测试集上的损失
#
# 设模型在测试集上每个字符的平均交叉熵为 $\ell$（单位 nats，即以 $e$ 为底的对数）。
# 另外两种常见的写法是
#
# $$
# \text{BPC} = \frac{\ell}{\ln 2}, \qquad \text{困惑度} = e^{\ell}
# $$ (eq-bpc-perplexity)
#
# BPC 是用这个模型做熵编码时每个字符平均需要的比特数；困惑度可以理解为模型平均“在多少个字符之间犹豫”。
# 什么也没学到的模型对 65 个字符给出均匀分布，$\ell = \ln 65$，困惑度恰好是 65。
#
# 评估使用测试集上互不重叠的长度为 $L$ 的窗口，模型处于 eval 模式（dropout 关闭）。

# %%
test_windows = 16 if QUICK else None  # 快速模式只评估 16 个窗口
test = {name: split_metrics(model, dataset.test, lm_config.seq_len, test_windows) for name, model in models.items()}
for name, m in test.items():
    print(f"{MODEL_LABELS[name]:>11}：{m['nats']:.4f} nats，{m['bpc']:.3f} BPC，困惑度 {m['perplexity']:.2f}（{m['windows']} 个窗口）")

# %%
# NBVAL_CHECK_OUTPUT
for name, m in test.items():
    consistent = math.isclose(m["bpc"], m["nats"] / math.log(2)) and math.isclose(m["perplexity"], math.exp(m["nats"]))
    print(f"{MODEL_LABELS[name]:>11} 的 BPC 与困惑度按 eq-bpc-perplexity 换算：{consistent}")
    assert consistent

# %% [markdown]
# ## n-gram 基线
#
# 一个好的神经语言模型至少要胜过只数字符频率的模型。$m$ 阶 n-gram 模型只看前 $m - 1$ 个字符，
# 用训练集中的计数估计下一个字符的概率。没见过的组合概率不能为 0（否则测试损失为无穷大），
# 所以需要平滑（smoothing）。我们让每一阶向低一阶的分布插值：
#
# $$
# p_m(x \mid h) = \frac{c(h, x) + \alpha_m\, p_{m-1}(x \mid h')}{c(h) + \alpha_m}
# $$ (eq-ngram-smoothing)
#
# 其中 $c(\cdot)$ 是训练集中的次数，$h'$ 是上下文 $h$ 去掉最早的一个字符，$p_0$ 是均匀分布。
# 上下文从未出现时 $c(h) = 0$，$p_m$ 退回 $p_{m-1}$。每阶的 $\alpha_m > 0$ 在验证集上选取，
# 测试集只用来报告结果。所有 n-gram 都在与神经模型相同的测试目标字符上评分。

# %%
n_targets = test["s4d"]["windows"] * lm_config.seq_len if QUICK else ((len(dataset.test) - 1) // lm_config.seq_len) * lm_config.seq_len
ngram_orders = (1, 2, 3, 5)
ngrams = {order: fit_ngram(order, len(dataset.vocab), dataset.train, dataset.val) for order in ngram_orders}
baselines = {"均匀分布": loss_metrics(math.log(len(dataset.vocab)))}
for order, model in ngrams.items():
    baselines[f"{order}-gram"] = loss_metrics(model.loss(dataset.test, n_targets))
for label, m in baselines.items():
    print(f"{label:>8}：{m['nats']:.4f} nats，{m['bpc']:.3f} BPC，困惑度 {m['perplexity']:.2f}")

# %% [markdown]
# 平滑后的分布在每个上下文下对词表求和为 1，且没有概率为 0 的字符；阶数越高，拟合得越好：

# %%
# NBVAL_CHECK_OUTPUT
probs = ngrams[5].next_char_probs(dataset.test[:4])
print(f"5-gram 在一个上下文下的概率之和为 1：{abs(probs.sum() - 1) < 1e-9}，最小概率大于 0：{probs.min() > 0}")
ordered = [baselines[k]["nats"] for k in ["均匀分布", "1-gram", "2-gram", "3-gram", "5-gram"]]
print(f"测试损失随阶数单调下降：{all(a > b for a, b in zip(ordered, ordered[1:]))}")
assert all(a > b for a, b in zip(ordered, ordered[1:]))

# %% [markdown]
# ## 多种子实验：差距是否大于波动
#
# 单次训练的结果受随机初始化与取批次顺序的影响。为了判断两个模型的差距是否只是运气，
# 我们用选中的学习率、以不同的种子重复学习率搜索时的短跑（第一个种子就是搜索中选中的那次短跑，直接复用），
# 比较各自在验证集上的损失。这些短跑比最终训练短，所以看的是“同样设置下结果的离散程度”，
# 而不是最终的损失水平。
#
# 结果见 {numref}`fig-eval-seeds`。

# %%
seeds = {name: seed_runs(plan, name, search[name], dataset, root, device=device, progress=False) for name in MODELS}
save_results(root, "seeds", seeds)
spread = {}
for name, runs in seeds.items():
    losses = np.array([r["final_val_loss"] for r in runs])
    spread[name] = {"mean": float(losses.mean()), "std": float(losses.std(ddof=1)), "losses": losses.tolist()}
    listed = "，".join(f"{r['seed']} → {r['final_val_loss']:.4f}" for r in runs)
    print(f"{MODEL_LABELS[name]}（种子 → 验证损失）：{listed}；均值 {losses.mean():.4f}，标准差 {losses.std(ddof=1):.4f}")

gap = spread["transformer"]["mean"] - spread["s4d"]["mean"]
noise = max(spread["s4d"]["std"], spread["transformer"]["std"])
lower = "S4D" if gap > 0 else "Transformer"
print(f"\n均值之差：{abs(gap):.4f} nats（{lower} 更低），较大的种子间标准差：{noise:.4f} nats")
if abs(gap) > 3 * noise:
    print(f"差距超过种子间标准差的三倍：在这个设置下，{lower} 的优势不像是随机波动。")
elif abs(gap) > 2 * noise:
    print(f"差距是种子间标准差的 {abs(gap) / noise:.2f} 倍，超过两倍但不到三倍：{lower} 多半更好，但还不能排除随机波动。")
else:
    print("差距不到种子间标准差的两倍：在这个设置下，不能断定两个模型谁更好。")

# %% mystnb={"figure": {"caption": "多种子短跑的验证损失：每个点是一个种子，横线是均值。", "name": "fig-eval-seeds"}}
fig, ax = plt.subplots(figsize=(5, 4))
for i, name in enumerate(MODELS):
    losses = spread[name]["losses"]
    ax.plot([i] * len(losses), losses, "o", color=colors[name], alpha=0.7, label=f"{MODEL_LABELS[name]} 各种子")
    ax.hlines(spread[name]["mean"], i - 0.2, i + 0.2, color=colors[name])
ax.set_xticks(range(len(MODELS)), [MODEL_LABELS[n] for n in MODELS])
ax.set_xlim(-0.6, len(MODELS) - 0.4)
ax.set_ylabel(f"{plan.search_steps} 步后的验证损失（nats/字符）")
ax.set_title("不同随机种子之间的波动")
ax.legend()
ax.grid(alpha=0.3, axis="y")
plt.show()

# %% [markdown]
# 两个种子以上才有标准差可言；种子数很少时，标准差本身的估计也很粗，上面的“两倍”与“三倍”只是经验上的判断线，
# 不是严格的检验。
#
# ## 损失随上下文位置的变化
#
# 在长度为 $L$ 的窗口里，位置 $i$ 的预测只能看到前 $i + 1$ 个字符。把测试集上所有窗口在同一位置的损失平均，
# 就得到损失随可用上下文长度变化的曲线（{numref}`fig-eval-position`）。曲线在开头下降得越多、越持久，
# 说明模型从更长的上下文中获益越多。这条曲线按位置的平均值就是上面的测试损失。

# %%
# NBVAL_CHECK_OUTPUT
for name, m in test.items():
    same = math.isclose(m["per_position"].mean().item(), m["nats"], rel_tol=1e-9)
    print(f"{MODEL_LABELS[name]:>11} 按位置损失的平均等于测试损失：{same}")
    assert same

# %% mystnb={"figure": {"caption": "测试集上每个上下文位置的平均损失（横轴为对数刻度）。", "name": "fig-eval-position"}}
fig, ax = plt.subplots(figsize=(7, 4))
positions = np.arange(lm_config.seq_len)
for name, m in test.items():
    ax.plot(positions + 1, m["per_position"].numpy(), color=colors[name], label=MODEL_LABELS[name])
ax.axhline(baselines["5-gram"]["nats"], color="gray", linestyle=":", label="5-gram（整体）")
ax.set_xscale("log")
ax.set_xlabel("可见的字符数 i + 1")
ax.set_ylabel("平均损失（nats/字符）")
ax.set_title("损失随上下文位置的变化")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %%
for name, m in test.items():
    curve = m["per_position"]
    print(f"{MODEL_LABELS[name]}：位置 0 的损失 {curve[0]:.3f}，位置 8–15 的平均 {curve[8:16].mean():.3f}，"
          f"最后 64 个位置的平均 {curve[-64:].mean():.3f} nats")

# %% [markdown]
# ## 生成文本：温度与 top-k
#
# 语言模型给出下一个字符的分布 $p_i \propto \exp(z_i)$，$z$ 是 logits。采样时常用两个旋钮：
#
# - 温度（temperature）$\tau$：按 $p_i \propto \exp(z_i / \tau)$ 采样。$\tau < 1$ 让分布更尖，文本更保守；
#   $\tau > 1$ 让分布更平，文本更随机；$\tau \to 0$ 时总是取概率最大的字符，称为贪心解码（greedy decoding），
#   `generate` 把 `temperature=0` 当作贪心解码，结果是确定的；
# - top-k：只在概率最大的 $k$ 个字符中按重新归一化的概率采样，去掉长尾中的罕见字符。
#
# 两个模型使用相同的提示（prompt）与相同种子的随机数生成器。

# %%
prompt = "ROMEO:\n"
new_chars = 60 if QUICK else 300
idx = dataset.vocab.encode(prompt)[None]  # (1, T)
for name, model in models.items():
    for temperature, top_k in ((0.0, None), (0.8, 10)):
        generator = torch.Generator().manual_seed(0)
        out = generate(model, idx, new_chars, temperature=temperature, top_k=top_k, generator=generator)
        text = dataset.vocab.decode(out[0].tolist())
        setting = "贪心解码" if temperature == 0 else f"温度 {temperature}，top-k = {top_k}"
        print(f"===== {MODEL_LABELS[name]}（{setting}）=====\n{text}\n")

# %%
# NBVAL_CHECK_OUTPUT
model = models["transformer"]
greedy = [generate(model, idx, 20, temperature=0.0)[0].tolist() for _ in range(2)]
print(f"贪心解码两次的结果相同：{greedy[0] == greedy[1]}")
print(f"生成的文本以提示开头：{dataset.vocab.decode(greedy[0]).startswith(prompt)}")
assert greedy[0] == greedy[1]

# %% [markdown]
# ## 预测熵：模型在哪里犹豫
#
# 在每个位置，模型对下一个字符的分布的熵 $H = -\sum_i p_i \ln p_i$ 衡量它有多不确定：
# 0 表示完全确定，$\ln 65 \approx 4.17$ 表示完全均匀。{numref}`fig-eval-entropy` 沿测试集中的一段文字
# 画出两个模型的熵，横轴标出每个位置上要预测的那个字符。我们预期单词开头与换行之后的熵高（下一个词有很多可能），
# 单词中间的熵低；读者可以在图中检查这个预期是否成立。

# %%
passage_start = 1000 if len(dataset.test) > 1200 else 0
passage = dataset.test[passage_start : passage_start + 81]  # (81,)
entropy = {name: prediction_entropy(model, passage) for name, model in models.items()}
passage_chars = [dataset.vocab.decode([int(i)]) for i in passage[1:]]
print(repr(dataset.vocab.decode(passage.tolist())))

# %% mystnb={"figure": {"caption": "沿测试集中一段文字的预测熵：横轴是每一步要预测的字符（¶ 表示换行，␣ 表示空格）。", "name": "fig-eval-entropy"}}
fig, ax = plt.subplots(figsize=(12, 3.8))
for name, (h, _) in entropy.items():
    ax.plot(h.numpy(), "-o", markersize=3, color=colors[name], label=MODEL_LABELS[name])
tick_labels = [{"\n": "¶", " ": "␣"}.get(c, c) for c in passage_chars]
ax.set_xticks(range(len(tick_labels)), tick_labels, fontsize=8)
ax.set_xlim(-0.5, len(tick_labels) - 0.5)
ax.set_xlabel("要预测的字符")
ax.set_ylabel("预测熵（nats）")
ax.set_title("沿一段文字的预测熵")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
inside = all(bool(((h >= 0) & (h <= math.log(65) + 1e-4)).all()) for h, _ in entropy.values())
print(f"所有位置的熵都在 [0, ln 65] 内：{inside}")
assert inside

# %% [markdown]
# ## Transformer 的注意力图
#
# {numref}`fig-eval-attention` 画出 Transformer 每一层、每个头在同一段文字上的注意力权重
# （用 {ref}`ch-transformer` 中的公式从每层的输入重算）。第 $i$ 行是位置 $i$ 分给此前各位置的权重。
# 常见的图案有：集中在对角线附近（看前几个字符）、竖直的条纹（总看某些特殊位置，例如换行或空格）。

# %%
attention_passage = passage[:64]
maps = attention_maps(models["transformer"], attention_passage)  # (layers, heads, T, T)
print(f"注意力图的形状：{tuple(maps.shape)}")

# %% mystnb={"figure": {"caption": "Transformer 各层（行）各头（列）在一段测试文字上的注意力权重，颜色越亮权重越大。", "name": "fig-eval-attention"}}
n_layers, n_heads = maps.shape[:2]
fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.2 * n_heads, 2.2 * n_layers), squeeze=False)
for layer in range(n_layers):
    for head in range(n_heads):
        ax = axes[layer][head]
        ax.imshow(maps[layer, head].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if layer == 0:
            ax.set_title(f"第 {head + 1} 个头", fontsize=9)
        if head == 0:
            ax.set_ylabel(f"第 {layer + 1} 层", fontsize=9)
fig.suptitle("Transformer 的注意力图（行：查询位置，列：键位置）")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
rows_ok = torch.allclose(maps.sum(-1), torch.ones(maps.shape[:-1]), atol=1e-4)
causal = bool((maps.triu(1) == 0).all())
print(f"每行权重之和为 1：{rows_ok}，未来位置权重为 0：{causal}")
assert rows_ok
assert causal

# %% [markdown]
# ## S4D 学到的卷积核与步长
#
# S4D 层的序列混合完全由每个通道的卷积核 $K$ 决定（{ref}`ch-kernel`）。把训练后的核与训练开始前的核
# 放在一起（初始模型用同一个种子重建），可以看到训练改变了什么。
# {numref}`fig-eval-kernels` 画出每层的前三个通道；{numref}`fig-eval-dt` 画出每层各通道步长 $\Delta$ 的分布。
# $\Delta$ 越大，卷积核衰减得越快，这个通道记住的历史越短（{ref}`ch-s4d-init`）。

# %%
trained_s4d = models["s4d"]
initial_s4d = initial_model("s4d", lm_config, plan.seeds[0]).to(device)
kernels = {"训练后": s4d_kernels(trained_s4d, lm_config.seq_len), "初始": s4d_kernels(initial_s4d, lm_config.seq_len)}
step_sizes = {"训练后": s4d_step_sizes(trained_s4d), "初始": s4d_step_sizes(initial_s4d)}
print(f"卷积核的形状（层，通道，长度）：{tuple(kernels['训练后'].shape)}")

# %% mystnb={"figure": {"caption": "S4D 各层前三个通道的卷积核：实线为训练后，虚线为初始值（横轴为对数刻度的延迟加 1）。", "name": "fig-eval-kernels"}}
n_s4d_layers = kernels["训练后"].shape[0]
lags = np.arange(lm_config.seq_len) + 1  # 延迟 0 … L−1 加 1，才能画在对数横轴上
fig, axes = plt.subplots(1, n_s4d_layers, figsize=(3.2 * n_s4d_layers, 3), squeeze=False)
for layer in range(n_s4d_layers):
    ax = axes[0][layer]
    for channel, color in zip(range(3), ("tab:blue", "tab:green", "tab:red")):
        ax.plot(lags, kernels["训练后"][layer, channel].numpy(), color=color, label=f"通道 {channel}")
        ax.plot(lags, kernels["初始"][layer, channel].numpy(), color=color, linestyle="--", alpha=0.6)
    ax.set_title(f"第 {layer + 1} 层")
    ax.set_xlabel("延迟 + 1（字符数）")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
axes[0][0].set_ylabel("卷积核 K")
axes[0][0].legend(fontsize=8)
fig.suptitle("S4D 卷积核：训练后（实线）与初始（虚线）")
fig.tight_layout()
plt.show()

# %% mystnb={"figure": {"caption": "S4D 各层各通道步长 Δ 的分布（对数横轴）：训练后与初始值。", "name": "fig-eval-dt"}}
fig, axes = plt.subplots(1, n_s4d_layers, figsize=(3.2 * n_s4d_layers, 3), squeeze=False, sharey=True)
bins = np.logspace(-4, 1, 31)
for layer in range(n_s4d_layers):
    ax = axes[0][layer]
    for label, color in (("初始", "gray"), ("训练后", "tab:blue")):
        ax.hist(step_sizes[label][layer].numpy(), bins=bins, alpha=0.6, color=color, label=label)
    ax.set_xscale("log")
    ax.set_title(f"第 {layer + 1} 层")
    ax.set_xlabel("步长 Δ")
axes[0][0].set_ylabel("通道数")
axes[0][0].legend(fontsize=8)
fig.suptitle("S4D 各层步长 Δ 的分布")
fig.tight_layout()
plt.show()

# %%
for layer in range(n_s4d_layers):
    before, after = step_sizes["初始"][layer], step_sizes["训练后"][layer]
    change = (kernels["训练后"][layer] - kernels["初始"][layer]).norm() / kernels["初始"][layer].norm()
    print(f"第 {layer + 1} 层：Δ 的中位数 {before.median():.4f} → {after.median():.4f}，卷积核的相对变化 {change:.2f}")

# %% [markdown]
# ## 保存评估结果
#
# {ref}`ch-conclusion` 的结果表读取下面保存的数字，不再重新计算。

# %%
chapter_minutes = (time.perf_counter() - chapter_start) / 60
evaluation = {
    "test": {name: {k: v for k, v in m.items() if k != "per_position"} for name, m in test.items()},
    "baselines": baselines,
    "seed_spread": spread,
    "chapter_minutes": chapter_minutes,
}
save_results(root, "evaluation", evaluation)
print(f"本章用时：{chapter_minutes:.1f} 分钟（含多种子短跑）")

# %% [markdown]
# ## 小结
#
# - 交叉熵 $\ell$（nats）、BPC $= \ell / \ln 2$ 与困惑度 $= e^\ell$ 是同一个量的三种写法；
# - 平滑的 n-gram 模型给出了不含神经网络的参照，阶数越高越好，但都只看固定长度的前文；
# - 单次训练的差距要与多种子的波动比较，才能说一个模型更好；
# - 按位置的损失显示模型从更长的上下文中获益多少；预测熵显示它在哪里犹豫；
# - 注意力图与 S4D 卷积核是两种混合层“看向过去”的方式：一个由内容决定权重，一个是固定的、与输入无关的核。
#
# ## 练习
#
# 1. 给 n-gram 加上 7 阶，测试损失还会下降吗？在验证集上选出的 $\alpha_7$ 是多少，为什么？
# 2. 把 {numref}`fig-eval-position` 中的曲线与 5-gram 的水平线比较：两个模型在哪个位置之后超过 5-gram？这说明了什么？
# 3. 用温度 0.5、1.0、1.5 各生成一段文字，描述它们的差别，并计算每段文字在模型下的平均负对数似然。
# 4. 在 {numref}`fig-eval-attention` 中找一个主要看前一个字符的头，再找一个看换行或空格的头。
# 5. 训练后 $\Delta$ 变大的通道，卷积核有什么变化？用 {ref}`ch-s4d-init` 的时间尺度解释。
