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
# (ch-conclusion)=
# # 结论：结果表与如何解读
#
# 本章不训练任何模型。它读取 {ref}`ch-training` 与 {ref}`ch-evaluation` 保存的结果，
# 把全书的对比实验汇总成一张表，并说明这些数字能支持什么结论、不能支持什么结论。
# 表中和正文中的每个数字都由下面的代码从结果文件读出，不是手写的。
#
# ## 学习目标
#
# - 回顾从连续时间系统到 S4D 语言模型的推导链；
# - 读懂汇总表：质量（测试损失）、代价（参数量、吞吐量）与波动（种子间标准差）放在一起看；
# - 知道这个对比的适用范围，以及在更长的上下文下哪些结论可能改变。

# %%
import html

from IPython.display import HTML, Markdown, display
from myst_nb import glue

from s4lab.experiment import latest_experiment_dir, load_results
from s4lab.notebooks import find_root, recorded_times
from s4lab.runtime import display_path
from s4lab.train import MODEL_LABELS

root = latest_experiment_dir()
final = load_results("final", root)
evaluation = load_results("evaluation", root)
MODELS = ("s4d", "transformer")
print(f"实验目录：{display_path(root)}（预设 {final['plan']['name']}，设备 {final['device']}，{final['threads']} 个线程）")

# %% [markdown]
# ## 我们推导了什么
#
# 本书沿着一条链从微分方程走到了一个训练好的语言模型，每一环都有一个可能失败的数值检查：
#
# 1. {ref}`ch-continuous`：连续时间状态空间模型 $x'(t) = Ax(t) + Bu(t)$、$y(t) = Cx(t) + Du(t)$，它的冲激响应 $Ce^{At}B$，以及对角化之后彼此独立的模态；
# 2. {ref}`ch-discretization`：用前向欧拉法、双线性变换和零阶保持得到离散系统 $x_k = \bar{A}x_{k-1} + \bar{B}u_k$，以及三种方法的误差阶与稳定性；
# 3. {ref}`ch-kernel`：把递推展开成卷积 $y = K * u$，对角矩阵 $A$ 的卷积核是一个范德蒙德矩阵乘积，共轭对让我们只存一半模态；
# 4. {ref}`ch-fft`：用长度至少为 $2L - 1$ 的 FFT 计算线性卷积，既得到 $O(L \log L)$ 的代价，又不让未来泄漏到过去；
# 5. {ref}`ch-recurrence`：同一个层按递推模式逐步计算，每一步的代价与已处理的序列长度无关；
# 6. {ref}`ch-s4d-init`：S4D-Lin 与 S4D-Inv 初始化，它们与 HiPPO {cite}`gu2020hippo` 的联系，以及步长 $\Delta$ 如何决定每个通道的时间尺度；
# 7. {ref}`ch-s4d-layer`：卷积核、FFT 卷积、直通项 $D$、GELU 与门控线性单元组装成 S4D 层 {cite}`gu2022s4d`；
# 8. {ref}`ch-transformer`：作为对照的多头因果自注意力与旋转位置编码；
# 9. {ref}`ch-training` 与 {ref}`ch-evaluation`：在同一个主干网络里分别放入两种混合层，按同一套协议训练、在测试集上评估。
#
# ## 结果表

# %%
test, baselines, spread = evaluation["test"], evaluation["baselines"], evaluation["seed_spread"]
header = ["模型", "参数量", "学习率", "测试损失（nats）", "BPC", "困惑度", "种子间标准差（nats）", "词元/秒", "每轮耗时（分钟）"]
table = []
for name in MODELS:
    run, m = final["models"][name], test[name]
    epoch_minutes = final["train_chars"] / run["tokens_per_second"] / 60
    table.append([MODEL_LABELS[name], f"{run['parameters']:,}", f"{run['lr']:g}", f"{m['nats']:.4f}", f"{m['bpc']:.3f}",
                  f"{m['perplexity']:.2f}", f"{spread[name]['std']:.4f}", f"{run['tokens_per_second']:,.0f}",
                  f"{epoch_minutes:.1f}"])
for label, m in baselines.items():
    table.append([label, "–", "–", f"{m['nats']:.4f}", f"{m['bpc']:.3f}", f"{m['perplexity']:.2f}", "–", "–", "–"])
# 用 HTML 表格显示：书中的 Markdown 输出按 CommonMark 渲染，不支持管道表格。
cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in table)
display(HTML(f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"))

# %%
s4d, tf = test["s4d"], test["transformer"]
s4d_run, tf_run = final["models"]["s4d"], final["models"]["transformer"]
glue("s4d_params", s4d_run["parameters"], display=False)
glue("tf_params", tf_run["parameters"], display=False)
glue("s4d_nats", s4d["nats"], display=False)
glue("tf_nats", tf["nats"], display=False)
glue("s4d_bpc", s4d["bpc"], display=False)
glue("tf_bpc", tf["bpc"], display=False)
glue("s4d_tps", s4d_run["tokens_per_second"], display=False)
glue("tf_tps", tf_run["tokens_per_second"], display=False)
glue("training_minutes", final["chapter_minutes"], display=False)
glue("ngram5_nats", baselines["5-gram"]["nats"], display=False)
glue("test_gap", abs(s4d["nats"] - tf["nats"]), display=False)
glue("seed_noise", max(spread["s4d"]["std"], spread["transformer"]["std"]), display=False)
glue("speed_ratio", s4d_run["tokens_per_second"] / tf_run["tokens_per_second"], display=False)
print("结果已读入。")

# %% [markdown]
# 在这次运行中，S4D 模型有 {glue:text}`s4d_params:,` 个参数，测试损失 {glue:text}`s4d_nats:.4f` nats
# （{glue:text}`s4d_bpc:.3f` BPC），训练速度 {glue:text}`s4d_tps:,.0f` 词元/秒；
# Transformer 有 {glue:text}`tf_params:,` 个参数，测试损失 {glue:text}`tf_nats:.4f` nats
# （{glue:text}`tf_bpc:.3f` BPC），训练速度 {glue:text}`tf_tps:,.0f` 词元/秒。
# {ref}`ch-training` 整章（学习率搜索加最终训练）在当时的机器上用了 {glue:text}`training_minutes:.1f` 分钟。
#
# 两个模型的测试损失相差 {glue:text}`test_gap:.4f` nats，多种子短跑中较大的种子间标准差是
# {glue:text}`seed_noise:.4f` nats；S4D 的吞吐量是 Transformer 的 {glue:text}`speed_ratio:.2f` 倍。
# 作为参照，平滑的 5-gram 模型的测试损失是 {glue:text}`ngram5_nats:.4f` nats。
#
# ## 如何解读
#
# 下面几段结论由代码根据上表的数字选出，措辞随结果变化。判断质量差距时，我们拿最终训练的测试损失之差
# 与多种子短跑的标准差比较：短跑比最终训练短，它的标准差只是最终训练波动的一个近似。
# 差距超过标准差的三倍时，我们说一个模型更好；在两倍与三倍之间时，只说它多半更好；不到两倍时不下结论。

# %%
noise = max(spread["s4d"]["std"], spread["transformer"]["std"])
gap = tf["nats"] - s4d["nats"]
better, worse = ("S4D", "Transformer") if gap > 0 else ("Transformer", "S4D")
faster = "S4D" if s4d_run["tokens_per_second"] > tf_run["tokens_per_second"] else "Transformer"
lines = []
if abs(gap) > 3 * noise:
    lines.append(f"- **质量**：{better} 的测试损失比 {worse} 低 {abs(gap):.4f} nats，超过多种子短跑中种子间标准差"
                 f"（{noise:.4f}）的三倍，在这个规模与预算下可以认为它更好。")
elif abs(gap) > 2 * noise:
    lines.append(f"- **质量**：{better} 的测试损失比 {worse} 低 {abs(gap):.4f} nats，是多种子短跑中种子间标准差"
                 f"（{noise:.4f}）的 {abs(gap) / noise:.2f} 倍：超过两倍，但不到三倍。在这个规模与预算下 {better} 多半更好，"
                 f"但差距与种子间的波动在同一量级，换一组种子或训练得更久，这个结论有可能改变。")
else:
    lines.append(f"- **质量**：两个模型的测试损失相差 {abs(gap):.4f} nats，不到多种子短跑中种子间标准差"
                 f"（{noise:.4f}）的两倍，在这个规模与预算下不能断定谁更好。")
ratio = s4d_run["tokens_per_second"] / tf_run["tokens_per_second"]
lines.append(f"- **代价**：两者参数量相差不到 10 %；在同一次运行中，{faster} 每秒处理的字符更多"
             f"（S4D 与 Transformer 的吞吐量之比为 {ratio:.2f}）。这个比例依赖硬件与实现，只对这台机器成立。")
beats = [MODEL_LABELS[n] for n in MODELS if test[n]["nats"] < baselines["5-gram"]["nats"]]
if len(beats) == len(MODELS):
    lines.append("- **基线**：两个模型都胜过平滑的 5-gram，说明它们利用了比前 4 个字符更多的信息。")
elif beats:
    lines.append(f"- **基线**：只有 {'、'.join(beats)} 胜过平滑的 5-gram；另一个模型在这个预算下还不如只看前 4 个字符的计数模型。")
else:
    lines.append("- **基线**：两个模型都没有胜过平滑的 5-gram：在这个训练预算下，它们还没有学到比前 4 个字符的计数更多的东西。")
display(Markdown("\n".join(lines)))

# %% [markdown]
# 这个对比能说明的是：在同一份数据、同一个主干网络、同一套训练协议下，在这个规模上，
# 两种序列混合层各自训练出的模型在测试集上的损失与训练开销。因为其他部分都相同，学习率也各自在验证集上选过，
# 这些差别主要来自序列混合层本身。
#
# 它不能说明的是：在更大的模型、更长的训练、其他语料上谁更好。TinyShakespeare 只有一百多万个字符，
# 模型很小，训练步数受一台 CPU 的时间限制，种子数也很少；这里的差别应当看作这个设置下的估计。
#
# ## 在更长的上下文下会怎样
#
# 本书的上下文只有 $L = 256$ 个字符。{ref}`ch-evaluation` 中按位置的损失曲线显示，两个模型在窗口的后半段
# 还能从更多的上下文中获益多少；如果曲线在窗口末尾已经变平，加长上下文对这份语料的损失帮助有限。
# 代价上的变化则可以从算法推出：注意力每层的计算量按 $O(L^2 H)$ 增长，生成时要保存所有历史位置的键和值；
# S4D 层用 FFT 卷积是 $O(H L \log L)$，按递推模式生成时每一步的代价与历史长度无关。
# 所以上下文越长，吞吐量的比较越偏向 S4D；质量上谁受益更多，需要在更长的上下文上重新做同样的实验才能回答。
#
# ## 本书的运行时间
#
# 主任务 `s4lab book` 按顺序执行各章，每执行完一章就把它的用时与模式写进那一章 `.ipynb` 的元数据。
# 下面读出这些记录（本章自己的用时要等本章执行完才有，所以不在表中）。{ref}`preface` 里的运行时间就取自这里。

# %%
mode_labels = {"full": "完整", "quick": "快速"}
times = [row for row in recorded_times(find_root()) if row["chapter"] != "13_conclusion"]
rows_html = "".join(
    f"<tr><td>{html.escape(row['chapter'])}</td><td>{mode_labels.get(row['mode'], row['mode'])}</td>"
    f"<td>{row['seconds']:.1f}</td></tr>" for row in times
)
display(HTML(f"<table><thead><tr><th>章节</th><th>模式</th><th>用时（秒）</th></tr></thead><tbody>{rows_html}</tbody></table>"))
book_minutes = sum(row["seconds"] for row in times) / 60
run_device = f"{final['threads']} 个线程的 CPU" if final["device"] == "cpu" else f"CUDA GPU（{final['device']}）"
training_seconds = {row["chapter"]: row["seconds"] for row in times}.get("10_training", float("nan"))
if {row["mode"] for row in times} == {"full"}:
    run_mode = "完整模式"
else:
    run_mode = "快速模式（至少有一章的输出来自快速模式：这一版页面不是本书提交的完整输出，这些用时也不代表完整运行）"
print(f"以上 {len(times)} 章共用 {book_minutes:.1f} 分钟，其中训练一章 {training_seconds / 60:.1f} 分钟；"
      f"训练一章的设备：{run_device}；模式：{run_mode}。")
glue("book_minutes", book_minutes, display=False)
glue("timed_chapters", len(times), display=False)
glue("run_device", run_device, display=False)
glue("run_mode", run_mode, display=False)
glue("training_chapter_minutes", training_seconds / 60, display=False)

# ## 接下来可以做什么
#
# - **更长的上下文**。S4 最初就是为长序列设计的 {cite}`gu2022s4`。把 $L$ 加倍再加倍，按本书的协议重做对比。
# - **更多的状态空间模型**。S4 {cite}`gu2022s4` 把矩阵 $A$ 表示成正规矩阵加低秩矩阵；DSS {cite}`gupta2022dss`
#   只用对角矩阵 $A$；S5 {cite}`smith2023s5` 用一个多输入多输出的状态空间模型和并行扫描；
#   Mamba {cite}`gu2023mamba` 让 $\Delta$、$B$、$C$ 随输入变化（选择性，selective），改用并行扫描按递推模式计算。
#   这些模型的效果请以原论文及其实验设置为准。
# - **The Annotated S4** {cite}`rush2022annotateds4` 用 JAX 写出了同样的推导与 S4 的完整形式，是很好的下一篇读物。
#
# ## 小结
#
# - 结果表中的每个数字都由 {ref}`ch-training` 与 {ref}`ch-evaluation` 计算并保存，本章只读取；
# - 两个模型的差距要与种子间的波动比较，结论的措辞由数字决定；
# - 吞吐量依赖硬件与实现，长上下文下的代价趋势可以从算法推出，质量趋势需要实验回答。
#
# ## 练习
#
# 1. 用 `S4LAB_QUICK=1` 重新运行三章实验，结果表的哪些列变了，哪些没变？为什么？
# 2. 把种子数从 3 增加到 5，种子间标准差的估计会更可靠吗？预算会增加多少？
# 3. 把上下文长度改为 512 重新运行 {ref}`ch-training`，吞吐量之比如何变化？与 $O(L^2)$ 和 $O(L \log L)$ 的预期一致吗？
