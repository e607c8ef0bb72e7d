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
# # 训练 S4D 与 Transformer
#
# 前面各章从连续时间的微分方程一路推导到了 S4D 层。本章把它放进一个字符级语言模型，
# 在 TinyShakespeare 的完整训练集上训练，并在相同的条件下训练一个 Transformer 作为对照。
#
# ## 学习目标
#
# - 理解两个模型共用的骨干网络，以及它们唯一的区别：序列混合层；
# - 理解训练流程：AdamW、学习率预热（warm-up）与余弦退火（cosine decay）、梯度裁剪、定期验证；
# - 知道为什么 SSM 参数（$\log\Delta$ 与 $A$）不做权重衰减、使用更小的学习率；
# - 读懂两个模型的损失曲线，并知道这些数字在什么意义上可以比较。

# %%
import json
import math
import time
from datetime import datetime

import matplotlib.pyplot as plt
import torch

from s4lab.data import CharDataset
from s4lab.models import LMConfig, build_model, count_parameters, parameter_groups
from s4lab.plotting import setup_chinese_font
from s4lab.presets import training_preset
from s4lab.runtime import default_device, is_quick, runs_dir
from s4lab.train import MODEL_LABELS, read_metrics, train

setup_chinese_font()
device = default_device()
QUICK = is_quick()
preset_name = "quick" if QUICK else ("gpu" if device.type == "cuda" else "cpu")
lm_config, train_config = training_preset(preset_name)
print(f"设备：{device}，线程数：{torch.get_num_threads()}，预设：{preset_name}")

# %% [markdown]
# ## 数据
#
# 数据与 {ref}`ch-data` 完全相同：连续切分的 90 % 训练集、5 % 验证集、5 % 测试集。
# 本章只用训练集训练、用验证集观察训练过程，测试集留给后面的评估。

# %%
dataset = CharDataset.load()
print(f"训练集 {len(dataset.train):,} 个字符，验证集 {len(dataset.val):,} 个字符，词表大小 {len(dataset.vocab)}")

# %% [markdown]
# ## 一个骨干，两种序列混合层
#
# 两个模型都是
#
# $$
# \text{嵌入} \rightarrow \underbrace{\big[\,x \leftarrow x + \text{Mixer}(\mathrm{LN}(x)),\;
# x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))\,\big]}_{\text{重复 } n_\text{layers} \text{ 次}}
# \rightarrow \mathrm{LN} \rightarrow \text{线性输出头}
# $$ (eq-backbone)
#
# 其中 LN 是层归一化（layer normalization），FFN 是逐位置的前馈网络（feed-forward network），
# 每个子层都用预归一化（pre-norm）加残差连接（residual connection）。
# {eq}`eq-backbone` 中唯一不同的是序列混合层 Mixer：
#
# - S4D 模型用 {ref}`ch-s4d-layer` 中的 S4D 层：卷积核覆盖整个上下文，位置信息来自卷积本身；
# - Transformer 用多头因果自注意力（causal self-attention），位置信息来自旋转位置编码
#   （rotary position embedding，RoPE）{cite}`su2021roformer`。RoPE 不增加参数，
#   所以两个模型的参数差别只来自混合层本身。
#
# 两个模型由同一份 `LMConfig` 构建。下面打印它们的参数量，并检查两者相差不到 10 %。

# %%
print(lm_config)
models = {name: build_model(name, lm_config) for name in ("s4d", "transformer")}
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
# 均匀分布的损失 $\ln 65 \approx 4.174$。这是 nanoGPT 一类代码常用的第一道检查：
# 初始损失明显偏离 $\ln V$ 说明初始化或损失的计算有问题。

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
x0 = dataset.train[: 8 * lm_config.seq_len].view(8, lm_config.seq_len)
y0 = dataset.train[1 : 8 * lm_config.seq_len + 1].view(8, lm_config.seq_len)
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
# - `ssm`：S4D 层的 $\log\Delta$ 与 $A$（实部的对数、虚部），权重衰减为 0，学习率较小。
#   权重衰减会把这些原始参数拉向 0，也就是把 $\Delta$ 拉向 1、把 $\mathrm{Re}(A)$ 拉向 $-1$：
#   改变的是每个通道记忆的时间尺度，而不是让某个权重变小；它们决定整个卷积核的形状，
#   所以每一步的更新也应该更小；
# - `decay`：矩阵形状的权重（线性层、嵌入、S4D 的 $C$），做权重衰减；
# - `no_decay`：偏置、层归一化参数与 $D$ 等一维参数，不做权重衰减。
#
# 每个参数恰好属于一组（单元测试检查这一点）。

# %%
for name, model in models.items():
    groups = parameter_groups(model, train_config.lr, train_config.weight_decay, train_config.ssm_lr)
    described = "，".join(
        f"{g['name']}：{sum(p.numel() for p in g['params']):,} 个参数（学习率 {g['lr']:g}，权重衰减 {g['weight_decay']:g}）"
        for g in groups
    )
    print(f"{MODEL_LABELS[name]}：{described}")

# %% [markdown]
# ## 训练协议
#
# 两个模型使用完全相同的：数据与切分、上下文长度 $L$、批大小 $B$、步数（因此看过的字符数也相同）、
# 优化器、学习率日程（先线性预热，再余弦衰减到峰值的 10 %）、梯度裁剪阈值与随机种子。
# 每隔固定步数在整个验证集上评估一次（不重叠的窗口，结果是确定的）。
# 学习率对两个模型取同一个值；为每个模型分别在验证集上搜索学习率，是后续对比实验的工作。
#
# 完整模式在 CPU 上使用 `cpu` 预设；检测到 GPU 时使用更大的 `gpu` 预设；快速模式（CI 使用）
# 模型结构不变，只训练几十步。每次运行写入一个新的目录，不会覆盖之前的结果。

# %%
print(train_config)
tokens_per_step = train_config.batch_size * lm_config.seq_len
print(f"每步 {tokens_per_step:,} 个字符，共 {train_config.max_steps} 步，"
      f"每个模型看过 {tokens_per_step * train_config.max_steps:,} 个字符"
      f"（约 {tokens_per_step * train_config.max_steps / len(dataset.train):.1f} 遍训练集）")

mode = "quick" if QUICK else "full"
run_root = runs_dir() / mode / f"training-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
print(f"输出目录：{run_root}")

# %% [markdown]
# 下面依次训练两个模型。进度条显示当前步数、最近的训练损失与每秒处理的字符数（词元/秒）。

# %%
results = {}
chapter_start = time.perf_counter()
for name in ("s4d", "transformer"):
    results[name] = train(name, lm_config, train_config, dataset, run_root / name, device=device)
    r = results[name]
    print(f"{MODEL_LABELS[name]}：最终验证损失 {r['final_val_loss']:.4f}，"
          f"训练用时 {r['train_seconds']:.0f} 秒，{r['tokens_per_second']:,.0f} 词元/秒")
training_minutes = (time.perf_counter() - chapter_start) / 60
print(f"两个模型共用时 {training_minutes:.1f} 分钟")

# 记录本次运行的位置，供后面的章节读取检查点与指标。
latest = runs_dir() / mode / "training-latest.json"
_ = latest.write_text(json.dumps({name: r["out_dir"] for name, r in results.items()}, ensure_ascii=False, indent=2),
                  encoding="utf-8")

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
# {numref}`fig-training-seconds` 把横轴换成实际经过的秒数，两个模型每一步的耗时不同时，
# 这张图回答的是“同样的计算时间能得到多低的损失”。

# %%
metrics = {name: read_metrics(run_root / name / "metrics.jsonl") for name in results}
colors = {"s4d": "tab:blue", "transformer": "tab:orange"}

# %% mystnb={"figure": {"caption": "两个模型的训练损失（细线）与验证损失（圆点连线）随训练步数的变化。", "name": "fig-training-steps"}}
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

# %% mystnb={"figure": {"caption": "同样的曲线，横轴换成实际经过的秒数（含评估时间）。", "name": "fig-training-seconds"}}
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
# ## 结果汇总
#
# 下表的每个数字都由上面的训练计算得出。每字符比特数（bits per character）等于以 nats 计的损失
# 除以 $\ln 2$。

# %%
header = f"{'模型':<12}{'参数量':>10}{'验证损失':>10}{'比特/字符':>10}{'词元/秒':>10}{'训练秒数':>10}"
print(header)
for name, r in results.items():
    print(f"{MODEL_LABELS[name]:<12}{r['parameters']:>12,}{r['final_val_loss']:>12.4f}"
          f"{r['final_val_loss'] / math.log(2):>12.3f}{r['tokens_per_second']:>12,.0f}{r['train_seconds']:>12.0f}")
s4d_loss, tf_loss = results["s4d"]["final_val_loss"], results["transformer"]["final_val_loss"]
better = "S4D" if s4d_loss < tf_loss else "Transformer"
print(f"\n在本次运行中，{better} 的验证损失更低，差值为 {abs(s4d_loss - tf_loss):.4f} nats/字符。")
print("这只是单个种子的一次运行：差值是否大于不同种子之间的波动，需要重复实验才能判断。")

# %% [markdown]
# 读这张表时要注意三点。第一，它来自单个随机种子，差值是否超出种子间的波动，这里还不能断定；
# 第二，两个模型用的是同一个学习率，没有各自调优；第三，上下文只有 $L = 256$ 个字符，
# 注意力在这个长度上的二次代价还不明显，S4D 的优势（长序列上的 $O(L \log L)$ 代价）在这里体现不出来。
#
# ## 小结
#
# - 两个语言模型共用同一个骨干，只在序列混合层上不同，参数量相差不到 10 %；
# - 训练使用 AdamW、预热加余弦衰减与梯度裁剪；SSM 参数单独成组，不做权重衰减、学习率更小；
# - 初始损失接近 $\ln 65$，训练后两个模型的验证损失都远低于这个均匀基线；
# - 损失曲线既按步数画，也按时间画，两种横轴回答的是不同的问题。
#
# ## 练习
#
# 1. 把 `ssm` 组的学习率改成与其他参数相同，重新训练 S4D，比较验证损失。`log_dt` 的分布有什么变化？
# 2. 给 `ssm` 组加上权重衰减 0.1，训练后画出各通道 $\Delta$ 的分布，解释你看到的变化。
# 3. 去掉 Transformer 的旋转位置编码（`CausalSelfAttention(..., rope=False)`），它还能学会语言模型吗？为什么？
# 4. 在 {numref}`fig-training-seconds` 中，哪个模型在相同的时间内达到更低的损失？如果把上下文长度加倍，你预计这个结论会怎样变化？
