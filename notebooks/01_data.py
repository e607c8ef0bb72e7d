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
# (ch-data)=
# # 数据：TinyShakespeare 字符级语料
#
# 本书比较的两个模型都是字符级（character-level）语言模型（language model）：读入一段文本的前若干个字符，
# 给出下一个字符的概率分布。本章准备它们共用的一切：语料、字符与整数编号之间的映射、训练与评估用的切分，
# 以及从切分中取出输入和目标的方法。最后我们算出一个什么都没学的模型应有的损失，作为后面所有训练曲线的起点。
#
# ## 学习目标
#
# - 知道 TinyShakespeare 语料从哪里来、有多大，以及 `s4lab.data.load_text` 按什么顺序找到它、怎样用校验和确认读到的是同一份文本；
# - 建立字符词表（vocabulary），把文本编码成整数序列，再解码回原文；
# - 理解为什么把语料按顺序连续切成训练集（training set）、验证集（validation set）和测试集（test set）；
# - 从一个切分中随机采样批次（batch），理解目标 `y` 为什么是输入 `x` 向后错开一位；
# - 用确定的评估窗口计算损失，并推导出均匀预测的交叉熵（cross-entropy）损失 $\ln V$。

# %%
import collections
import hashlib
import math
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from s4lab.data import (
    DATA_ENV,
    N_CHARS,
    SHA256,
    CharVocab,
    DataError,
    eval_windows,
    get_batch,
    load_text,
    split_text,
)
from s4lab.models import LMConfig, S4DLM, TransformerLM
from s4lab.plotting import setup_chinese_font
from s4lab.runtime import is_quick

setup_chinese_font()
QUICK = is_quick()

# %% [markdown]
# ## 语料
#
# TinyShakespeare 是 Karpathy 随 char-rnn 代码一起发布的一个纯文本文件 {cite}`karpathy2015charrnn`，
# 内容是莎士比亚剧本中的对白：每段先是一行说话人的名字和冒号，接着是台词，段与段之间空一行。
# 它足够小，可以在 CPU 上训练；又足够长，模型能从中学到拼写、标点和对白格式。
# nanoGPT 的字符级示例也用它，所以本书的数字可以和它对照。

# %%
text = load_text()
print(f"环境变量 {DATA_ENV} {'已设置' if os.environ.get(DATA_ENV) else '未设置'}")
print(f"共 {len(text):,} 个字符。开头是：\n")
print(text[:250])

# %%
# NBVAL_CHECK_OUTPUT
raw = text.encode("utf-8")
digest = hashlib.sha256(raw).hexdigest()
assert len(text) == N_CHARS, len(text)
assert digest == SHA256, digest
print(f"字符数：{len(text):,}，UTF-8 字节数：{len(raw):,}")
print(f"sha256 与 s4lab.data.SHA256 一致：{digest == SHA256}")

# %% [markdown]
# 字符数等于字节数，说明全文都是 ASCII 字符。
#
# ## `load_text` 怎样找到语料
#
# `load_text()` 依次尝试四个来源，用第一个找到的：
#
# 1. 参数 `path`；
# 2. 环境变量 `S4LAB_DATA`；
# 3. 缓存文件 `~/.cache/s4lab/tinyshakespeare.txt`（缓存目录可以用参数 `cache_dir` 或环境变量 `S4LAB_CACHE_DIR` 修改）；
# 4. 从 char-rnn 仓库下载（下载地址可以用参数 `url` 或环境变量 `S4LAB_DATA_URL` 修改）。
#
# 前两个来源指定的文件不存在时，`load_text` 直接报错，而不会退回到缓存或下载：那通常说明路径写错了。
#
# 无论内容来自哪里，`load_text` 都会计算它的 SHA-256 校验和（checksum），并与 `s4lab.data.SHA256` 比较。
# 文本只要差一个字符（例如换行符被某个编辑器改成了 Windows 的 `\r\n`），词表、切分位置和损失都可能变，
# 不同读者的数字就无法比较。
# 下载的内容先在内存中校验，通过后才写进缓存目录（先写临时文件，再原子地改名），
# 所以缓存里不会出现下载了一半或校验失败的文件。
#
# 下面把语料改掉一个字符，存到临时目录里，再交给 `load_text`：

# %%
tampered_text = text[:1000] + "#" + text[1001:]  # 长度不变，只改一个字符
with tempfile.TemporaryDirectory() as tmp_dir:
    tampered_path = Path(tmp_dir) / "tampered.txt"
    tampered_path.write_text(tampered_text, encoding="utf-8")
    try:
        load_text(tampered_path)
        tampered_rejected = False
    except DataError as err:
        tampered_rejected = True
        print(err)
    accepted_on_purpose = load_text(tampered_path, verify=False) == tampered_text

# %%
# NBVAL_CHECK_OUTPUT
assert tampered_rejected
assert accepted_on_purpose
print(f"改动一个字符的副本被拒绝：{tampered_rejected}")
print(f"verify=False 时接受这份文本：{accepted_on_purpose}")

# %% [markdown]
# 错误消息给出了期望和实际的校验和、文件路径，以及有意使用另一份文本时的做法（`verify=False`）。
#
# ## 字符词表
#
# 字符级模型的符号就是单个字符。把语料中出现过的字符按 Unicode 码位排序，第 $i$ 个字符的编号（id）就是 $i$：
#
# $$
# \mathcal{V} = \{c_0 < c_1 < \dots < c_{V-1}\}, \qquad \operatorname{id}(c_i) = i
# $$ (eq-data-vocab)
#
# 排序保证同一份文本总是得到同一个词表，编号在不同的运行和机器之间一致，保存的模型才能在别处加载。
# 先用一个 Python 字典手写这个映射：

# %%
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}  # 字符 → 编号
itos = {i: c for i, c in enumerate(chars)}  # 编号 → 字符
V = len(chars)
print(f"词表大小 V = {V}")
print(repr("".join(chars)))

# %% [markdown]
# 第一个符号是换行符，第二个是空格，接着是标点和数字 `3`，然后是大写字母和小写字母。
# `s4lab.data.CharVocab` 实现同一个映射，编码结果是一维 `LongTensor`。
# 它用 numpy 查表代替逐字符的字典查找，整份语料编码一次不到一秒。
# 下面确认它和手写的字典给出完全相同的编号：

# %%
vocab = CharVocab.from_text(text)
sample = text[:2000]
ids_by_dict = torch.tensor([stoi[c] for c in sample], dtype=torch.long)
ids_by_vocab = vocab.encode(sample)
print(ids_by_vocab[:20].tolist())
print(repr(vocab.decode(ids_by_vocab[:20])))

# %%
# NBVAL_CHECK_OUTPUT
assert len(vocab) == V == 65, len(vocab)
assert vocab.chars == "".join(chars)
assert torch.equal(ids_by_vocab, ids_by_dict)
print(f"词表大小：{len(vocab)}")
print(f"CharVocab 与手写字典的编号一致：{torch.equal(ids_by_vocab, ids_by_dict)}")

# %% [markdown]
# 各个字符出现的次数相差很大（{numref}`fig-data-char-freq`）。

# %% mystnb={"figure": {"caption": "TinyShakespeare 中每个字符的出现次数，按次数从多到少排列，纵轴为对数刻度。", "name": "fig-data-char-freq"}}
counts = collections.Counter(text)
ranked = counts.most_common()
display_names = {" ": "空格", "\n": "换行"}
# 刻度标签竖着写两个汉字，才能和单个字符的标签一样窄。
labels = ["\n".join(display_names[c]) if c in display_names else c for c, _ in ranked]

fig, ax = plt.subplots(figsize=(12, 4))
ax.bar(range(len(ranked)), [n for _, n in ranked], color="tab:blue")
ax.set_yscale("log")
ax.set_xticks(range(len(ranked)))
ax.set_xticklabels(labels, fontsize=9)
ax.set_xlim(-0.8, len(ranked) - 0.2)
ax.set_xlabel("字符（按出现次数排序）")
ax.set_ylabel("出现次数（对数刻度）")
ax.set_title("TinyShakespeare 的字符频率")
fig.tight_layout()
plt.show()

# %%
print("最常见的 5 个：", [(display_names.get(c, c), n) for c, n in ranked[:5]])
print("最少见的 5 个：", [(display_names.get(c, c), n) for c, n in ranked[-5:]])

# %% [markdown]
# 空格最多，其次是常见的小写字母；最少见的字符在全文中只出现寥寥几次。
# 这些稀有字符会在后面的切分中再次出现。
#
# ## 编码与解码
#
# 编码把文本变成编号序列，解码把编号序列变回文本。两者互为逆映射，整份语料编码再解码必须得到原文：

# %%
ids = vocab.encode(text)  # (n,)
print(f"编码后：{tuple(ids.shape)}，dtype {ids.dtype}，取值范围 [{int(ids.min())}, {int(ids.max())}]")

# %%
# NBVAL_CHECK_OUTPUT
roundtrip_ok = vocab.decode(ids) == text
assert roundtrip_ok
print(f"整份语料编码再解码等于原文：{roundtrip_ok}")

# %% [markdown]
# 词表以外的字符无法编码。`encode` 不会悄悄丢掉或替换它们，而是报错并列出这些字符：

# %%
try:
    vocab.encode("Café — naïve")
except DataError as err:
    print(err)

# %% [markdown]
# ## 连续切分
#
# 我们把语料按顺序切成三段：前 90 % 是训练集，接下来的 5 % 是验证集，最后约 5 % 是测试集。
# 设语料长 $n$ 个字符，
#
# $$
# n_\text{train} = \lfloor 0.9\, n \rfloor, \qquad n_\text{val} = \lfloor 0.05\, n \rfloor, \qquad
# n_\text{test} = n - n_\text{train} - n_\text{val}
# $$ (eq-data-split)
#
# 训练集与 nanoGPT（`data/shakespeare_char/prepare.py`）的训练集相同。nanoGPT 把剩下的 10 % 全部用作验证集，我们把它再分成验证集和测试集：
# 测试集留到最后比较模型时才使用。
#
# 为什么不先从全文中取出窗口，再随机地把窗口分给三个集合？下一节的训练窗口可以从任意位置开始，
# 相邻的窗口大量重叠：从 $s$ 和 $s + 1$ 开始的两个窗口只差一个字符。随机分配时，几乎每个验证窗口都有与它重叠的训练窗口，
# 模型在训练中已经见过验证文本，验证损失就会偏低，这叫数据泄漏（data leakage）。
# 连续切分时，三段只在两个切分点处相接；每个切分自成一个张量，窗口不会跨过切分点。

# %%
train_text, val_text, test_text = split_text(text)
n = len(text)
n_train_by_hand = int(0.9 * n)
n_val_by_hand = int(0.05 * n)
n_test_by_hand = n - n_train_by_hand - n_val_by_hand
for name, part in (("训练集", train_text), ("验证集", val_text), ("测试集", test_text)):
    print(f"{name}：{len(part):>9,} 个字符，占 {len(part) / n:.2%}")
print(f"\n验证集的开头：{val_text[:60]!r}")

# %%
# NBVAL_CHECK_OUTPUT
assert (len(train_text), len(val_text), len(test_text)) == (n_train_by_hand, n_val_by_hand, n_test_by_hand)
assert train_text + val_text + test_text == text
print(f"切分大小：{len(train_text):,} / {len(val_text):,} / {len(test_text):,}")
print(f"三段按顺序拼接等于原文：{train_text + val_text + test_text == text}")

# %% [markdown]
# 切分点只按字符数计算，不一定落在一段对白的开头。这没有关系：模型看到的本来就是从任意位置开始的窗口。
#
# 词表由整份语料建立，而不是只由训练集建立。这样验证集和测试集中的每个字符都能编码，三段共用同一套编号。
# 反过来，某些稀有字符只出现在训练集中：

# %%
for name, part in (("训练集", train_text), ("验证集", val_text), ("测试集", test_text)):
    absent = [display_names.get(c, c) for c in vocab.chars if c not in set(part)]
    print(f"{name}中没有出现的字符：{absent}")

train = vocab.encode(train_text)  # (n_train,)
val = vocab.encode(val_text)  # (n_val,)
test = vocab.encode(test_text)  # (n_test,)

# %% [markdown]
# `s4lab.data.CharDataset.load()` 把读取、建立词表、切分和编码这几步打包在一起，后面的章节直接用它。
#
# ## 批次：目标是错开一位的输入
#
# 记一个切分的编号序列为 $d_0, d_1, \dots, d_{n_\text{split} - 1}$。
# 语言模型在第 $t$ 个位置看到字符 $d_{s}, \dots, d_{s+t}$，预测下一个字符 $d_{s+t+1}$。
# 所以一个长 $L$ 的训练样本需要 $L + 1$ 个连续字符：前 $L$ 个是输入 $x$，后 $L$ 个是目标 $y$。
# 一个批次由 $B$ 个这样的窗口组成，第 $b$ 个窗口的起点 $s_b$ 在切分中均匀随机地选取：
#
# $$
# x_{b,t} = d_{s_b + t}, \qquad y_{b,t} = d_{s_b + t + 1}, \qquad t = 0, \dots, L - 1, \qquad
# s_b \in \{0, 1, \dots, n_\text{split} - L - 1\}
# $$ (eq-data-batch)
#
# 起点的上限 $n_\text{split} - L - 1$ 保证最后一个目标 $d_{s_b + L}$ 仍在切分之内。
# 先按 {eq}`eq-data-batch` 逐个窗口切片，随机数来自一个固定种子的 `torch.Generator`：

# %%
B_demo, L_demo = 4, 32
gen = torch.Generator().manual_seed(0)
starts = torch.randint(0, len(train) - L_demo, (B_demo,), generator=gen)  # (B,)，上界不含在内
x_by_hand = torch.stack([train[s : s + L_demo] for s in starts])  # (B, L)
y_by_hand = torch.stack([train[s + 1 : s + L_demo + 1] for s in starts])  # (B, L)
print("起点：", starts.tolist())

# %% [markdown]
# `s4lab.data.get_batch` 用同样的方式抽取起点，再用一次索引取出所有窗口。给它一个同样种子的生成器，结果应该完全相同：

# %%
x, y = get_batch(train, B_demo, L_demo, torch.Generator().manual_seed(0))  # (B, L), (B, L)
for b in range(2):
    print(f"x[{b}] = {vocab.decode(x[b])!r}")
    print(f"y[{b}] = {vocab.decode(y[b])!r}\n")

# %%
# NBVAL_CHECK_OUTPUT
same_as_by_hand = torch.equal(x, x_by_hand) and torch.equal(y, y_by_hand)
shifted = torch.equal(y[:, :-1], x[:, 1:])
inside_train = all(vocab.decode(x[b]) + vocab.decode(y[b, -1:]) in train_text for b in range(B_demo))
x_again, y_again = get_batch(train, B_demo, L_demo, torch.Generator().manual_seed(0))
reproducible = torch.equal(x, x_again) and torch.equal(y, y_again)
assert same_as_by_hand
assert shifted
assert inside_train
assert reproducible
print(f"批次形状：{tuple(x.shape)}")
print(f"get_batch 与逐窗口切片一致：{same_as_by_hand}")
print(f"y[:, :-1] == x[:, 1:]：{shifted}")
print(f"每个窗口都是训练集中的一段连续文本：{inside_train}")
print(f"同一个种子得到同一个批次：{reproducible}")

# %% [markdown]
# 打印出来的 `y` 正是 `x` 去掉第一个字符、再补上窗口的下一个字符。
# 训练时每一步都用同一个生成器抽取新的批次，所以固定种子就固定了整个训练过程看到的数据顺序。
#
# ## 确定的评估窗口
#
# 评估时，随机批次会让损失带上采样噪声：两次评估的差别可能来自取到的窗口不同，而不是模型变了。
# 所以评估用一组固定的窗口：第 $i$ 个窗口从 $iL$ 开始，占 $L + 1$ 个字符，相邻窗口的目标首尾相接、互不重叠。
# 长 $n_\text{split}$ 的切分能放下的窗口数是
#
# $$
# W = \left\lfloor \frac{n_\text{split} - 1}{L} \right\rfloor
# $$ (eq-data-windows)
#
# 末尾不足 $L$ 个目标字符的零头不参与评估。`s4lab.data.eval_windows` 返回这 $W$ 个窗口；
# 给出 `max_windows` $= m < W$ 时，它取第 $\lfloor k(W-1)/(m-1) \rfloor$ 个窗口（$k = 0, \dots, m-1$），
# 即包含首尾、等间隔的 $m$ 个，仍然不用随机数。

# %%
seq_len = LMConfig().seq_len
xv, yv = eval_windows(val, seq_len)  # (W, L), (W, L)
W_by_hand = (len(val) - 1) // seq_len
print(f"L = {seq_len}：验证集有 {W_by_hand} 个评估窗口，覆盖 {W_by_hand * seq_len:,} 个目标字符（共 {len(val) - 1:,} 个）")
n_picked = 8
xv_picked, _ = eval_windows(val, seq_len, max_windows=n_picked)
picked_by_hand = [k * (W_by_hand - 1) // (n_picked - 1) for k in range(n_picked)]  # 等间隔、含首尾
print(f"max_windows={n_picked} 时取第 {picked_by_hand} 个窗口")

# %%
# NBVAL_CHECK_OUTPUT
covers_targets = torch.equal(yv.flatten(), val[1 : W_by_hand * seq_len + 1])
xv_again, yv_again = eval_windows(val, seq_len)
deterministic = torch.equal(xv, xv_again) and torch.equal(yv, yv_again)
picked_match = torch.equal(xv_picked, xv[picked_by_hand])
assert xv.shape == (W_by_hand, seq_len)
assert covers_targets
assert deterministic
assert picked_match
print(f"评估窗口数 W = {xv.shape[0]}（L = {seq_len}）")
print(f"目标首尾相接地覆盖验证集：{covers_targets}")
print(f"两次调用得到相同的窗口：{deterministic}")
print(f"max_windows 取出的窗口与手算的编号一致：{picked_match}")

# %% [markdown]
# ## 均匀基线：ln V
#
# 模型对每个位置输出 $V$ 个 logits，经 softmax 得到下一个字符的分布 $p_\theta(\cdot \mid \text{上文})$。
# 训练和评估的损失是目标字符的平均负对数概率，即交叉熵：
#
# $$
# \ell = -\frac{1}{BL} \sum_{b=1}^{B} \sum_{t=0}^{L-1} \ln p_\theta\!\left(y_{b,t} \mid x_{b,0}, \dots, x_{b,t}\right)
# $$ (eq-data-ce)
#
# 这里用自然对数，损失的单位是奈特（nat）。一个什么都没学的模型对每个字符给出相同的概率 $1/V$，代入 {eq}`eq-data-ce`：
#
# $$
# \ell_\text{uniform} = -\ln \frac{1}{V} = \ln V
# $$ (eq-data-uniform)
#
# 它与目标是什么无关。用全为 0 的 logits（softmax 后正是均匀分布）检验一下：

# %%
ln_V = math.log(V)
zero_logits = torch.zeros(xv.shape[0], seq_len, V, dtype=torch.float64)  # (W, L, V)
uniform_loss = F.cross_entropy(zero_logits.reshape(-1, V), yv.reshape(-1)).item()
print(f"ln {V} = {ln_V:.6f}，全零 logits 的交叉熵 = {uniform_loss:.6f}")

# %%
# NBVAL_CHECK_OUTPUT
assert abs(uniform_loss - ln_V) < 1e-6
print(f"均匀预测的损失等于 ln V：{abs(uniform_loss - ln_V) < 1e-6}")
print(f"ln {V} ≈ {ln_V:.3f} 奈特")

# %% [markdown]
# 只要知道字符频率，就能比均匀预测好：用训练集中每个字符的出现频率作为预测分布（一元模型，unigram model），
# 不看上文，在验证集上的交叉熵是：

# %%
train_freq = torch.bincount(train, minlength=V).double() / len(train)  # (V,)
unigram_loss = -torch.log(train_freq[val]).mean().item()
print(f"一元模型在验证集上的损失：{unigram_loss:.3f} 奈特（ln {V} ≈ {ln_V:.3f}）")

# %% [markdown]
# 这两个数给了训练曲线两个参照：一个刚初始化的模型应该从 $\ln V$ 附近出发；
# 损失降到一元模型以下，说明模型开始利用上文了。
#
# ## 刚初始化的模型
#
# 后面各章的两个模型都把输出头（最后的线性层）初始化得很小，所以初始 logits 接近全零，预测接近均匀分布，
# 初始损失应该接近 $\ln V$。如果初始损失明显高于 $\ln V$，模型一开始就“自信地猜错”，训练开头的一段步数会花在纠正这一点上。
# 这里用默认配置的两个模型在验证集的评估窗口上检查这一点（快速模式下只用较少的窗口）：

# %%
config = LMConfig(vocab_size=V)
n_eval = 4 if QUICK else 16
x_eval, y_eval = eval_windows(val, config.seq_len, max_windows=n_eval)  # (n_eval, L)
initial_loss = {}
for name, model_class in (("S4D", S4DLM), ("Transformer", TransformerLM)):
    torch.manual_seed(0)
    model = model_class(config).eval()
    with torch.no_grad():
        logits = model(x_eval)  # (n_eval, L, V)
    initial_loss[name] = F.cross_entropy(logits.reshape(-1, V), y_eval.reshape(-1)).item()
    print(f"{name}：初始损失 {initial_loss[name]:.4f}，与 ln V 之差 {initial_loss[name] - ln_V:+.4f}")

# %%
# NBVAL_CHECK_OUTPUT
tolerance = 0.05
close_to_uniform = all(abs(loss - ln_V) < tolerance for loss in initial_loss.values())
assert close_to_uniform, initial_loss
print(f"两个模型的初始损失与 ln V 相差都小于 {tolerance}：{close_to_uniform}")
print(f"ln {V} ≈ {ln_V:.3f}")

# %% [markdown]
# ## 小结
#
# - TinyShakespeare 是一个纯 ASCII 文本文件；`load_text` 依次查找参数、`S4LAB_DATA`、缓存和下载，并用 SHA-256 校验和确认读到的是同一份文本。
# - 词表是语料中出现过的字符按码位排序的结果 {eq}`eq-data-vocab`，编码与解码互为逆映射。
# - 语料按顺序连续切成训练集、验证集和测试集 {eq}`eq-data-split`，每个切分自成一个张量，窗口不会跨过切分点，避免了相邻窗口造成的数据泄漏。
# - 一个批次是 $B$ 个随机起点的窗口，目标 $y$ 是输入 $x$ 向后错开一位 {eq}`eq-data-batch`；评估用确定的、互不重叠的窗口 {eq}`eq-data-windows`。
# - 均匀预测的交叉熵是 $\ln V$ {eq}`eq-data-uniform`，刚初始化的模型应从这里出发；只用字符频率的一元模型已经能低于它。
#
# ## 练习
#
# 1. 把所有大写字母换成小写后，词表有多少个字符？均匀基线 $\ln V$ 变成多少？用代码算出来。
# 2. 用训练集统计二元模型（bigram model）$P(d_{t+1} \mid d_t)$，并在验证集上计算它的交叉熵。
#    它比一元模型低多少？注意验证集里可能出现训练集中没有出现过的字符对，需要做平滑。
# 3. 假设从全文的每个起点各取一个长 $L + 1 = 257$ 的窗口，再随机地把 5 % 的窗口分给验证集。
#    一个验证窗口平均与多少个训练窗口至少共享一个字符？先推导，再用代码抽样验证。
# 4. 上面的输出显示，`eval_windows` 丢掉了验证集末尾不足一个窗口的零头。
#    怎样修改才能覆盖这些目标字符，同时让每个目标字符只被计算一次？（提示：最后一个窗口可以与前一个重叠，只对新的目标计算损失。）
# 5. 如果 `get_batch` 把起点的上限写成 $n_\text{split} - L$（大了一），会在什么时候出错？出的是什么错？
#    为什么只抽几个批次的测试很可能发现不了这个错误？
