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
# (ch-transformer)=
# # Transformer 基线：因果自注意力
#
# 要判断 S4D 层好不好，需要一个公认的对照。本章简要推导对照模型的序列混合层：
# 带因果掩码的多头自注意力（self-attention）{cite}`vaswani2017attention`，以及我们选用的
# 位置编码方案。推导完之后，我们检查手写的计算与 PyTorch 的 `scaled_dot_product_attention`
# 以及 `s4lab` 中的 `CausalSelfAttention` 完全一致。
#
# ## 学习目标
#
# - 写出缩放点积注意力（scaled dot-product attention）的公式，并说明为什么要除以 $\sqrt{d}$；
# - 理解因果掩码如何保证位置 $i$ 只看到位置 $0 \dots i$；
# - 理解多头注意力如何把宽度 $H$ 分给若干个头；
# - 知道本书为什么使用旋转位置编码（RoPE），并验证它只依赖相对位置。

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from s4lab.evaluation import attention_weights
from s4lab.layers import CausalSelfAttention, rotary_embedding
from s4lab.plotting import setup_chinese_font

setup_chinese_font()
torch.manual_seed(0)

# %% [markdown]
# ## 缩放点积注意力
#
# 设一个头的查询（query）、键（key）、值（value）分别是 $Q, K, V \in \mathbb{R}^{L \times d}$，
# 每一行对应一个位置。注意力先用点积比较每个查询与每个键，再用 softmax 把得分变成权重，
# 最后对值加权求和：
#
# $$
# \mathrm{Attn}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}} + M\right) V
# $$ (eq-attention)
#
# 其中 softmax 按行计算。如果 $q$ 与 $k$ 的各分量独立、均值为 0、方差为 1，点积 $q \cdot k$
# 的方差是 $d$；除以 $\sqrt{d}$ 让得分的方差回到 1，softmax 不会在初始化时就饱和成独热向量。
#
# 语言模型在位置 $i$ 预测第 $i + 1$ 个字符，因此只能看到位置 $0 \dots i$。
# 因果掩码（causal mask）$M$ 在 $j \le i$ 时为 0，在 $j > i$ 时为 $-\infty$，
# 于是 softmax 之后未来位置的权重恰好为 0。下面按 {eq}`eq-attention` 手写一遍。

# %%
def causal_attention(q, k, v):
    """q, k, v: (B, heads, L, d) → (B, heads, L, d)，按 eq-attention 逐步计算。"""
    L, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, heads, L, L)
    future = torch.ones(L, L, dtype=torch.bool).triu(1)  # j > i 的位置
    weights = torch.softmax(scores.masked_fill(future, -math.inf), dim=-1)  # (B, heads, L, L)
    return weights @ v, weights


B, n_heads, L, d = 2, 4, 32, 16
q, k, v = (torch.randn(B, n_heads, L, d) for _ in range(3))
y_hand, w_hand = causal_attention(q, k, v)

# %% [markdown]
# PyTorch 的 `scaled_dot_product_attention` 计算的是同一个公式（`is_causal=True` 时加上因果掩码），
# 但可能选用融合的高效实现。两者在浮点误差范围内应当一致；
# 同时检查每行权重之和为 1、未来位置的权重为 0。

# %%
# NBVAL_CHECK_OUTPUT
y_sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
err = (y_hand - y_sdpa).abs().max().item()
print(f"手写注意力与 SDPA 的最大绝对误差 < 1e-5：{err < 1e-5}")
print(f"每行权重之和为 1：{torch.allclose(w_hand.sum(-1), torch.ones(B, n_heads, L))}")
print(f"未来位置的权重全为 0：{bool((w_hand.triu(1) == 0).all())}")
assert err < 1e-5

# %% [markdown]
# 掩码的效果也可以用另一种方式检查：改动位置 $j$ 之后的输入，位置 $0 \dots j$ 的输出不应改变。
# 这正是训练时不会“偷看答案”的保证。

# %%
# NBVAL_CHECK_OUTPUT
j = 10
k2, v2 = k.clone(), v.clone()
k2[..., j + 1 :, :] = torch.randn_like(k2[..., j + 1 :, :])
v2[..., j + 1 :, :] = torch.randn_like(v2[..., j + 1 :, :])
y2, _ = causal_attention(q, k2, v2)
same = torch.allclose(y2[..., : j + 1, :], y_hand[..., : j + 1, :])
print(f"改动位置 {j} 之后的键和值，位置 0…{j} 的输出不变：{same}")
assert same

# %% [markdown]
# ## 多头注意力
#
# 模型宽度为 $H$ 时，一个线性层同时算出所有位置的 $Q, K, V \in \mathbb{R}^{L \times H}$，
# 再把宽度切成 $n_\text{heads}$ 份，每个头在 $d = H / n_\text{heads}$ 维的子空间里独立做
# {eq}`eq-attention`，最后把各头的输出拼回 $H$ 维，再经过一个输出线性层：
#
# $$
# \mathrm{MHA}(X) = \big[\mathrm{Attn}(Q_1, K_1, V_1), \dots, \mathrm{Attn}(Q_{n}, K_{n}, V_{n})\big] W_O,
# \qquad [Q, K, V] = X W_{QKV}
# $$ (eq-mha)
#
# 多个头让同一层可以同时关注不同的位置，例如一个头看前一个字符，另一个头看同一单词的开头。
# 参数只在 $W_{QKV}$（$H \times 3H$）与 $W_O$（$H \times H$）中，与头数无关。
#
# ## 位置信息：旋转位置编码
#
# {eq}`eq-attention` 对键和值的顺序没有感知：把历史位置打乱，得分集合不变。
# 因此 Transformer 必须另外注入位置信息。常见的方案有三种：原始论文的正弦位置编码加在输入上；
# 可学习的绝对位置嵌入（GPT 系列）；旋转位置编码（rotary position embedding，RoPE）
# {cite}`su2021roformer`。本书使用 RoPE，理由有两点：
#
# - 它不增加参数，所以两个模型的参数差别只来自混合层本身；
# - 它让得分只依赖相对位置 $i - j$，这与 S4D 卷积核 $K_{i-j}$ 只依赖时间差的性质相同，比较更对等。
#
# RoPE 把每个头的 $d$ 个通道分成 $d/2$ 对，第 $m$ 对在位置 $i$ 上旋转角度 $i\,\theta_m$，
# 其中 $\theta_m = 10000^{-2m/d}$：
#
# $$
# \begin{pmatrix} q'_{2m} \\ q'_{2m+1} \end{pmatrix}
# = \begin{pmatrix} \cos i\theta_m & -\sin i\theta_m \\ \sin i\theta_m & \cos i\theta_m \end{pmatrix}
# \begin{pmatrix} q_{2m} \\ q_{2m+1} \end{pmatrix}
# $$ (eq-rope)
#
# 键用同样的方式旋转。两个旋转矩阵相乘时，$R(i\theta)^\top R(j\theta) = R((j - i)\theta)$，
# 所以 $q'_i \cdot k'_j$ 只依赖 $j - i$。下面用 `s4lab.layers.rotary_embedding` 检查这一点：
# 把同一对向量放在位置 $(i, j)$ 与 $(i + s, j + s)$，点积应当相同。

# %%
# NBVAL_CHECK_OUTPUT
q1, k1 = torch.randn(d), torch.randn(d)
seq = 64
q_all = q1.expand(1, 1, seq, d).contiguous()  # 每个位置放同一个 q
k_all = k1.expand(1, 1, seq, d).contiguous()
q_rot, k_rot = rotary_embedding(q_all, k_all)
scores = (q_rot[0, 0] @ k_rot[0, 0].T)  # (seq, seq)，第 (i, j) 项是位置 i 的查询与位置 j 的键
shifted = [(scores[i, i - 5] - scores[i + 20, i + 15]).abs().item() for i in range(5, 40)]
print(f"平移 20 个位置后得分不变（最大差 < 1e-4）：{max(shifted) < 1e-4}")
assert max(shifted) < 1e-4

# %% [markdown]
# ## 与 `s4lab` 的实现对照
#
# `s4lab.layers.CausalSelfAttention` 按 {eq}`eq-mha` 实现多头注意力，
# 在 $Q, K$ 上施加 RoPE 后调用 `scaled_dot_product_attention`。
# 我们用本章手写的 `causal_attention` 按同样的步骤重算一遍，输出应当一致。

# %%
# NBVAL_CHECK_OUTPUT
H = 64
layer = CausalSelfAttention(H, n_heads=4).eval()
x = torch.randn(2, L, H)  # (B, L, H)
with torch.no_grad():
    q_l, k_l, v_l = layer.qkv(x).split(H, dim=-1)  # 各为 (B, L, H)
    q_l, k_l, v_l = (t.view(2, L, 4, H // 4).transpose(1, 2) for t in (q_l, k_l, v_l))  # (B, heads, L, d)
    q_l, k_l = rotary_embedding(q_l, k_l)
    y_heads, w_layer = causal_attention(q_l, k_l, v_l)
    y_manual = layer.out(y_heads.transpose(1, 2).reshape(2, L, H))  # (B, L, H)
    y_layer = layer(x)
err = (y_manual - y_layer).abs().max().item()
print(f"手写多头注意力与 CausalSelfAttention 的最大绝对误差 < 1e-5：{err < 1e-5}")
assert err < 1e-5

# %% [markdown]
# 后面的 {ref}`ch-evaluation` 要画出训练好的模型的注意力图。层内调用的是融合实现，
# 不返回权重，所以 `s4lab.evaluation.attention_weights` 按本章的公式重算权重。它与上面的手写结果一致：

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    w_lib = attention_weights(layer, x)  # (B, heads, L, L)
err = (w_lib - w_layer).abs().max().item()
print(f"attention_weights 与手写权重的最大绝对误差 < 1e-6：{err < 1e-6}")
assert err < 1e-6

# %% [markdown]
# {numref}`fig-transformer-weights` 画出这个随机初始化的层在一个头上的权重。
# 右上三角全为 0（因果掩码）；随机初始化时得分很接近，每行的权重大致均匀地分给已经看到的位置，
# 所以越往下的行颜色越浅。训练之后的注意力图见 {ref}`ch-evaluation`。

# %% mystnb={"figure": {"caption": "随机初始化的因果自注意力在一个头上的权重：第 i 行是位置 i 分给位置 j 的权重。", "name": "fig-transformer-weights"}}
fig, ax = plt.subplots(figsize=(5, 4.2))
image = ax.imshow(w_layer[0, 0].numpy(), cmap="viridis")
ax.set_xlabel("被关注的位置 j（键）")
ax.set_ylabel("当前位置 i（查询）")
ax.set_title("随机初始化时第 1 个头的注意力权重")
fig.colorbar(image, ax=ax, label="权重")
plt.show()

# %% [markdown]
# ## 代价
#
# 得分矩阵 $QK^\top$ 有 $L \times L$ 项，所以一层注意力的计算量随上下文长度按 $O(L^2 H)$ 增长，
# 生成时还要保存所有历史位置的键和值；S4D 层用 FFT 卷积的代价是 $O(H L \log L)$，
# 按递推模式生成时每一步的代价与历史长度无关（{ref}`ch-recurrence`）。
# 在本书的 $L = 256$ 上两者实际差多少，要靠测量回答：{ref}`ch-training` 在同一次运行中测量了两个模型的吞吐量。
#
# ## 小结
#
# - 缩放点积注意力按 {eq}`eq-attention` 计算，除以 $\sqrt{d}$ 让初始得分的方差约为 1；
# - 因果掩码把未来位置的得分设为 $-\infty$，改动未来的输入不会影响过去的输出；
# - 多头注意力把宽度 $H$ 分给若干个头，参数量与头数无关；
# - 本书用 RoPE 注入位置信息：不增加参数，得分只依赖相对位置；
# - 手写的计算与 `scaled_dot_product_attention`、`CausalSelfAttention` 在浮点误差内一致。
#
# ## 练习
#
# 1. 去掉 `causal_attention` 中除以 $\sqrt{d}$ 的一步，取 $d = 256$，观察随机输入下每行权重的最大值如何变化。
# 2. 证明 $R(i\theta)^\top R(j\theta) = R((j - i)\theta)$，并解释为什么这使 RoPE 的得分只依赖相对位置。
# 3. 一层注意力的参数量是多少？用 $H$ 表示，并与 `sum(p.numel() for p in layer.parameters())` 对照。
# 4. 把上下文长度 $L$ 加倍，得分矩阵的大小与一层的计算量各变为原来的几倍？S4D 层呢？
