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
# (ch-training)=
# # 训练 S4D 与 Transformer：公平的对比协议
#
# 前面各章从连续时间的微分方程一路推导到了 S4D 层，{ref}`ch-transformer` 推导了对照用的因果自注意力。
# 本章把两种序列混合层放进同一个字符级语言模型，在 TinyShakespeare 上按同一套协议训练：
# 先为每个模型在验证集上搜索学习率，再用选中的学习率做最终训练。
# 训练好的检查点与指标写到磁盘，{ref}`ch-evaluation` 与 {ref}`ch-conclusion` 读取它们。
#
# ## 学习目标
#
# - 理解两个模型共用的主干网络，以及它们唯一的区别：序列混合层；
# - 理解训练流程：AdamW、学习率预热（learning-rate warm-up）与余弦退火（cosine annealing）、梯度裁剪、定期验证；
# - 知道怎样的对比才算公平：相同的数据、预算与优化器，各自的学习率用同一个搜索在验证集上选出；
# - 读懂按步数与按时间画的损失曲线，以及吞吐量（词元/秒）与每轮（epoch）耗时。

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from s4lab.data import CharDataset
from s4lab.experiment import default_plan_name, experiment_plan, lr_search, mode_name, new_experiment_dir, save_results
from s4lab.models import build_model, count_parameters, parameter_groups
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import default_device, display_path
from s4lab.train import MODEL_LABELS, read_metrics, train

chapter_start = time.perf_counter()
setup_chinese_font()
device = default_device()
plan = experiment_plan(default_plan_name(device))
lm_config = plan.lm_config
MODELS = ("s4d", "transformer")
print(f"设备：{device}，线程数：{torch.get_num_threads()}，实验预设：{plan.name}")

# %% [markdown]
# ## 数据
#
# 数据与 {ref}`ch-data` 完全相同：连续切分的 90 % 训练集、5 % 验证集、5 % 测试集。
# 本章只用训练集训练、用验证集选学习率和观察训练过程；测试集在本章中不出现，留给 {ref}`ch-evaluation`。

# %%
dataset = CharDataset.load()
print(f"训练集 {len(dataset.train):,} 个字符，验证集 {len(dataset.val):,} 个字符，词表大小 {len(dataset.vocab)}")

# %% [markdown]
# ## 一个主干网络，两种序列混合层
#
# 两个模型都是
#
# $$
# \begin{aligned}
# &\text{嵌入} \rightarrow \underbrace{\big[\,x \leftarrow x + \text{Mixer}(\mathrm{LN}(x)),\;
# x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))\,\big]}_{\text{重复 } n_\text{layers} \text{ 次}} \\
# &\rightarrow \mathrm{LN} \rightarrow \text{线性输出头}
# \end{aligned}
# $$ (eq-backbone)
#
# 其中 LN 是层归一化（layer normalization），FFN 是逐位置的前馈网络（feed-forward network），
# 每个子层都用预归一化（pre-norm）加残差连接（residual connection）。
# {eq}`eq-backbone` 中唯一不同的是序列混合层 Mixer：
#
# - S4D 模型用 {ref}`ch-s4d-layer` 中的 S4D 层：卷积核覆盖整个上下文，位置信息来自卷积本身；
# - Transformer 用 {ref}`ch-transformer` 中的多头因果自注意力，位置信息来自旋转位置编码（RoPE）。
#   RoPE 不增加参数，所以两个模型的参数差别只来自混合层本身。
#
# 两个模型由同一份 `LMConfig` 构建。下面打印它们的参数量，并检查两者相差不到 10 %。

# %%
print(lm_config)
models = {name: build_model(name, lm_config) for name in MODELS}
n_params = {name: count_parameters(model) for name, model in models.items()}

# %%
# NBVAL_CHECK_OUTPUT
for name, count in n_params.items():
    print(f"{MODEL_LABELS[name]:>11} 参数量：{count:,}")
gap = abs(n_params["s4d"] - n_params["transformer"]) / max(n_params.values())
print(f"相对差距：{gap:.1%}，不到 10 %：{gap < 0.10}")
assert gap < 0.10

# %% [markdown]
# 初始化时输出头的权重很小，模型对 65 个字符给出几乎均匀的预测，交叉熵应当接近
# 均匀分布的损失 $\ln 65 \approx 4.174$。初始损失明显偏离 $\ln V$ 说明初始化或损失的计算有问题。

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
x0 = dataset.train[: 8 * lm_config.seq_len].view(8, lm_config.seq_len)  # (B, L)
y0 = dataset.train[1 : 8 * lm_config.seq_len + 1].view(8, lm_config.seq_len)  # (B, L)
for name, model in models.items():
    with torch.no_grad():
        logits = model(x0)  # (B, L, V)
        loss0 = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y0.flatten()).item()
    print(f"{MODEL_LABELS[name]:>11} 初始损失与 ln 65 相差不到 0.05：{abs(loss0 - math.log(65)) < 0.05}")
    assert abs(loss0 - math.log(65)) < 0.05

# %% [markdown]
# ## 优化器的参数分组
#
# 我们用 AdamW {cite}`loshchilov2019adamw`，把参数分成三组：
#
# - `ssm`：S4D 层的 $\log\Delta$ 与 $A$（实部的对数、虚部），权重衰减为 0，学习率是其他参数的一半。
#   权重衰减会把这些原始参数拉向 0，也就是把 $\Delta$ 拉向 1、把 $\mathrm{Re}(A)$ 拉向 $-1$：
#   改变的是每个通道记忆的时间尺度，而不是让某个权重变小；它们决定整个卷积核的形状，
#   所以每一步的更新也应该更小；
# - `decay`：矩阵形状的权重（线性层、嵌入、S4D 的 $C$），做权重衰减；
# - `no_decay`：偏置、层归一化参数与 $D$ 等一维参数，不做权重衰减。
#
# 每个参数恰好属于一组（单元测试检查这一点）。

# %%
example = plan.final_config(plan.lr_grid[0])
for name, model in models.items():
    groups = parameter_groups(model, example.lr, example.weight_decay, example.ssm_lr)
    described = "，".join(
        f"{g['name']}：{sum(p.numel() for p in g['params']):,} 个参数（学习率 {g['lr']:g}，权重衰减 {g['weight_decay']:g}）"
        for g in groups
    )
    print(f"{MODEL_LABELS[name]}：{described}")

# %% [markdown]
# ## 公平的对比协议
#
# 两个模型使用完全相同的：
#
# - 数据、切分与上下文长度 $L$；
# - 批大小 $B$ 与步数，因此看过的字符数（词元预算）相同；
# - 优化器（AdamW，$\beta = (0.9, 0.95)$）、学习率日程（先线性预热 10 % 的步数，再按余弦退火降到峰值的 10 %）
#   与梯度裁剪阈值；
# - 学习率的选法：同一个学习率网格，每个候选值用同一个种子短跑同样的步数，
#   取验证损失最低的那个。测试集不参与任何选择。
#
# 唯一各自不同的是选出来的学习率本身：两种混合层对学习率的敏感程度不同，
# 如果强迫它们用同一个值，比较的就部分是“这个学习率更适合谁”。
#
# 完整模式在 CPU 上使用 `cpu` 预设，检测到 GPU 时使用更大的 `gpu` 预设；
# 快速模式（CI 使用）模型结构与 `cpu` 相同，只训练几步。每次运行写入一个新的目录，不会覆盖之前的结果。

# %%
tokens_per_step = plan.batch_size * lm_config.seq_len
print(f"学习率网格：{', '.join(f'{lr:g}' for lr in plan.lr_grid)}；每次短跑 {plan.search_steps} 步")
print(f"最终训练：{plan.final_steps} 步，每步 {tokens_per_step:,} 个字符，每个模型看过 "
      f"{tokens_per_step * plan.final_steps:,} 个字符（约 {tokens_per_step * plan.final_steps / len(dataset.train):.2f} 遍训练集）")
root = new_experiment_dir()
save_results(root, "final", {"plan": plan.to_dict(), "models": {}})  # 训练完成后覆盖
print(f"输出目录：{display_path(root)}")

# %% [markdown]
# ## 学习率搜索
#
# 下面对两个模型依次做学习率搜索。每次短跑结束时在整个验证集上评估一次。

# %%
search = {}
for name in MODELS:
    search[name] = lr_search(plan, name, dataset, root, device=device, progress=False)
    losses = "，".join(f"{lr:g} → {loss:.4f}" for lr, loss in zip(search[name]["lrs"], search[name]["val_losses"]))
    print(f"{MODEL_LABELS[name]}：{losses}；选中学习率 {search[name]['best_lr']:g}")
_ = save_results(root, "lr_search", search)
for name in MODELS:
    lrs, best = search[name]["lrs"], search[name]["best_lr"]
    if best in (min(lrs), max(lrs)):
        print(f"注意：{MODEL_LABELS[name]} 选中的学习率 {best:g} 在网格的边缘，更好的值可能在网格之外。")

# %% [markdown]
# {numref}`fig-training-lr-search` 画出每个候选学习率短跑后的验证损失。
# 如果最低点落在网格的边缘，说明网格可能没有覆盖最优值，这是读这张图时首先要看的一点。

# %% mystnb={"figure": {"caption": "学习率搜索：每个候选学习率短跑之后的验证损失，星号是每个模型选中的学习率。", "name": "fig-training-lr-search"}}
colors = {"s4d": "tab:blue", "transformer": "tab:orange"}
fig, ax = plt.subplots(figsize=(6, 4))
for name, result in search.items():
    ax.plot(result["lrs"], result["val_losses"], "o-", color=colors[name], label=MODEL_LABELS[name])
    best = result["lrs"].index(result["best_lr"])
    ax.plot(result["best_lr"], result["val_losses"][best], "*", color=colors[name], markersize=16)
ax.set_xscale("log")
ax.set_xlabel("峰值学习率")
ax.set_ylabel(f"{plan.search_steps} 步后的验证损失（nats/字符）")
ax.set_title("学习率搜索")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, result in search.items():
    chosen = result["val_losses"][result["lrs"].index(result["best_lr"])]
    is_min = chosen == min(result["val_losses"])
    print(f"{MODEL_LABELS[name]:>11} 选中的学习率在网格中验证损失最低：{is_min}")
    assert is_min

# %% [markdown]
# ## 最终训练
#
# 用各自选中的学习率，两个模型从头训练同样的步数（种子与搜索时相同）。
# 进度条显示当前步数、最近的训练损失与每秒处理的字符数（词元/秒）。
# 两个模型在同一次运行、同一台机器上依次训练，所以它们的词元/秒可以直接比较。

# %%
results = {}
for name in MODELS:
    lr = search[name]["best_lr"]
    results[name] = train(name, lm_config, plan.final_config(lr), dataset, root / "final" / name, device=device)
    r = results[name]
    print(f"{MODEL_LABELS[name]}：学习率 {lr:g}，最终验证损失 {r['final_val_loss']:.4f}，"
          f"训练用时 {r['train_seconds']:.0f} 秒，{r['tokens_per_second']:,.0f} 词元/秒")

final = {
    "plan": plan.to_dict(),
    "device": str(device),
    "threads": torch.get_num_threads(),
    "train_chars": len(dataset.train),
    "models": {name: {"lr": search[name]["best_lr"], **{k: v for k, v in r.items() if k != "model"}}
               for name, r in results.items()},
}
final_path = save_results(root, "final", final)
print(f"结果已写入 {display_path(final_path)}")

# %%
# NBVAL_CHECK_OUTPUT
for name, r in results.items():
    below = r["final_val_loss"] < math.log(65)
    print(f"{MODEL_LABELS[name]:>11} 训练后验证损失低于均匀基线 ln 65：{below}")
    assert below

# %% [markdown]
# ## 损失曲线
#
# {numref}`fig-training-steps` 按训练步数画出两个模型的训练损失（每若干步的平均）与验证损失；
# {numref}`fig-training-seconds` 把横轴换成实际经过的秒数。两个模型每一步的耗时不同时，
# 后一张图回答的是“同样的计算时间能得到多低的损失”。

# %%
metrics = {name: read_metrics(root / "final" / name / "metrics.jsonl") for name in results}

# %% mystnb={"figure": {"caption": "最终训练中两个模型的训练损失（细线）与验证损失（圆点连线）随训练步数的变化。", "name": "fig-training-steps"}}
fig, ax = plt.subplots(figsize=(7, 4))
for name, rows in metrics.items():
    label = MODEL_LABELS[name]
    ax.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], color=colors[name], alpha=0.4,
            linewidth=1, label=f"{label} 训练损失")
    val = [r for r in rows if r["val_loss"] is not None]
    ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", color=colors[name], label=f"{label} 验证损失")
ax.axhline(math.log(65), color="gray", linestyle="--", linewidth=1, label="均匀基线 ln 65")
ax.set_xlabel("训练步数")
ax.set_ylabel("交叉熵（nats/字符）")
ax.set_title("损失随训练步数的变化")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% mystnb={"figure": {"caption": "同样的验证损失，横轴换成实际经过的秒数（含评估时间）。", "name": "fig-training-seconds"}}
fig, ax = plt.subplots(figsize=(7, 4))
for name, rows in metrics.items():
    val = [r for r in rows if r["val_loss"] is not None]
    ax.plot([r["wall_seconds"] for r in val], [r["val_loss"] for r in val], "o-", color=colors[name],
            label=f"{MODEL_LABELS[name]} 验证损失")
ax.set_xlabel("经过的时间（秒）")
ax.set_ylabel("验证损失（nats/字符）")
ax.set_title("验证损失随时间的变化")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 吞吐量与每轮耗时
#
# 词元/秒只计训练步本身（前向、反向与参数更新），不含评估与写检查点。
# 每轮耗时是训练集的字符数除以词元/秒，即按这个速度把训练集完整看一遍所需的时间。
# 这些数字依赖机器与当时的负载，只在同一次运行中的两个模型之间可比。

# %%
print(f"{'模型':<12}{'参数量':>10}{'学习率':>9}{'验证损失':>10}{'比特/字符':>9}{'词元/秒':>10}{'每轮耗时（分钟）':>12}")
for name, r in results.items():
    epoch_minutes = len(dataset.train) / r["tokens_per_second"] / 60
    print(f"{MODEL_LABELS[name]:<12}{r['parameters']:>12,}{search[name]['best_lr']:>11g}{r['final_val_loss']:>12.4f}"
          f"{r['final_val_loss'] / math.log(2):>11.3f}{r['tokens_per_second']:>12,.0f}{epoch_minutes:>14.1f}")
s4d_loss, tf_loss = results["s4d"]["final_val_loss"], results["transformer"]["final_val_loss"]
better = "S4D" if s4d_loss < tf_loss else "Transformer"
print(f"\n在本次运行中，{better} 的验证损失更低，差值为 {abs(s4d_loss - tf_loss):.4f} nats/字符。")

# %% [markdown]
# 这里的差值来自单个种子的一次运行。它是否大于不同种子之间的波动，要看 {ref}`ch-evaluation` 中的多种子实验；
# 在测试集上的最终数字也在那一章计算。
#
# 最后记录本章在当前机器上的总用时（学习率搜索加最终训练）：

# %%
chapter_minutes = (time.perf_counter() - chapter_start) / 60
final["chapter_minutes"] = chapter_minutes
save_results(root, "final", final)
print(f"本章用时：{chapter_minutes:.1f} 分钟（{mode_name()} 模式，{device}，{torch.get_num_threads()} 个线程）")

# %% [markdown]
# ## 小结
#
# - 两个语言模型共用同一个主干网络，只在序列混合层上不同，参数量相差不到 10 %；
# - 训练使用 AdamW、学习率预热、余弦退火与梯度裁剪；SSM 参数单独成组，不做权重衰减、学习率更小；
# - 公平的对比要求相同的数据、预算与优化器，学习率用同一个搜索在验证集上各自选出，测试集不参与选择；
# - 损失曲线既按步数画，也按时间画，两种横轴回答的是不同的问题；
# - 每轮耗时等于训练字符数除以词元/秒，它和词元/秒一样依赖机器。
#
# ## 练习
#
# 1. 如果 {numref}`fig-training-lr-search` 中某个模型的最低点落在网格边缘，你会怎样扩展网格？预算会增加多少？
# 2. 把 `ssm` 组的学习率改成与其他参数相同，重新训练 S4D，比较验证损失。$\Delta$ 的分布有什么变化？
# 3. 去掉 Transformer 的旋转位置编码（`CausalSelfAttention(..., rope=False)`），它还能学会语言模型吗？为什么？
# 4. 在 {numref}`fig-training-seconds` 中，哪个模型在相同的时间内达到更低的损失？把上下文长度加倍，你预计这个结论会怎样变化？
