"""训练好的语言模型的评估与分析：测试集指标、按位置的损失、预测熵、注意力图、S4D 的卷积核与 Δ。

所有函数都在 eval 模式（dropout 关闭）、不求梯度的情况下计算，结束后恢复模型原来的模式。
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from s4lab.data import eval_windows
from s4lab.layers import CausalSelfAttention, S4DLayer, rotary_embedding


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """在 ``with`` 块内把模型切到 eval 模式并关闭梯度，退出时（包括出错时）恢复原来的模式。"""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def loss_metrics(nats: float) -> dict:
    """把每字符的交叉熵（nats）换算成每字符比特数（bits per character，÷ ln 2）与困惑度（perplexity，e^nats）。"""
    return {"nats": nats, "bpc": nats / math.log(2), "perplexity": math.exp(nats)}


def per_position_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """每个窗口内位置 0 … L−1 的平均交叉熵（nats），形状 (L,)。x, y: (W, L)。

    位置 i 的预测只能看到窗口内的前 i + 1 个字符，所以这条曲线显示模型能从多长的上下文中获益。
    所有窗口长度相同，因此这条曲线的平均值等于整体的平均损失。
    """
    device = next(model.parameters()).device
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)  # (b, L)
            yb = y[start : start + batch_size].to(device)  # (b, L)
            logits = model(xb).float()  # (b, L, V)
            loss = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (b, L)
            total += loss.sum(dim=0).double().cpu()
    return total / x.shape[0]


def split_metrics(model: nn.Module, data: torch.Tensor, seq_len: int, max_windows: int | None = None) -> dict:
    """在一个切分（例如测试集）的不重叠窗口上求 nats、bpc、困惑度，并附上按位置的损失与窗口数。"""
    x, y = eval_windows(data, seq_len, max_windows)
    by_position = per_position_loss(model, x, y)
    return {**loss_metrics(by_position.mean().item()), "per_position": by_position, "windows": x.shape[0]}


def prediction_entropy(model: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """沿一段文本 ``idx``（(T,) 字符编号，T ≤ L）返回每个位置上下一个字符分布的熵与真实下一个字符的损失。

    返回 ``(entropy, loss)``，单位都是 nats，形状 (T − 1,)：第 t 项是读完 ``idx[: t + 1]`` 后对
    ``idx[t + 1]`` 的预测。熵高表示模型在这里犹豫。
    """
    if idx.dim() != 1 or len(idx) < 2:
        raise ValueError(f"idx 应是长度 ≥ 2 的一维字符编号，收到形状 {tuple(idx.shape)}。")
    device = next(model.parameters()).device
    with eval_mode(model):
        logits = model(idx[None, :-1].to(device))[0].float()  # (T−1, V)
    log_probs = torch.log_softmax(logits, dim=-1).cpu()
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)  # (T−1,)
    loss = -log_probs.gather(1, idx[1:, None].cpu())[:, 0]  # (T−1,)
    return entropy, loss


def attention_weights(mixer: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """按定义手算注意力权重 softmax(q kᵀ / √d + 因果掩码)，x: (B, L, H) → (B, heads, L, L)。

    q、k 来自 ``mixer.qkv``，启用 RoPE 时再经过 ``rotary_embedding``，与层内的计算相同。
    """
    B, L, H = x.shape
    q, k, _ = mixer.qkv(x).split(H, dim=-1)  # 各为 (B, L, H)
    head_dim = H // mixer.n_heads
    q, k = (t.view(B, L, mixer.n_heads, head_dim).transpose(1, 2) for t in (q, k))  # (B, heads, L, head_dim)
    if mixer.rope:
        q, k = rotary_embedding(q, k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)  # (B, heads, L, L)
    future = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
    return torch.softmax(scores.masked_fill(future, -math.inf), dim=-1)


def attention_maps(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """Transformer 每一层、每个头在文本 ``idx``（(T,)）上的注意力权重，形状 (n_layers, heads, T, T)。

    用前向预钩子（forward pre-hook）截下每个块送进混合层的输入，再用 :func:`attention_weights` 手算，
    不修改层的代码。
    """
    blocks = [b for b in model.blocks if isinstance(b.mixer, CausalSelfAttention)]
    if not blocks:
        raise ValueError("这个模型没有因果自注意力层：注意力图只适用于 Transformer。")
    inputs = []
    handles = [b.mixer.register_forward_pre_hook(lambda module, args: inputs.append(args[0])) for b in blocks]
    device = next(model.parameters()).device
    try:
        with eval_mode(model):
            model(idx[None].to(device))
            maps = [attention_weights(b.mixer, x)[0] for b, x in zip(blocks, inputs)]  # 每项 (heads, T, T)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(maps).cpu()


def s4d_kernels(model: nn.Module, L: int) -> torch.Tensor:
    """每个 S4D 层长度为 L 的卷积核（脉冲响应），形状 (n_layers, H, L)。"""
    layers = [m for m in model.modules() if isinstance(m, S4DLayer)]
    if not layers:
        raise ValueError("这个模型没有 S4D 层。")
    with eval_mode(model):
        return torch.stack([layer.kernel(L).float() for layer in layers]).cpu()


def s4d_step_sizes(model: nn.Module) -> torch.Tensor:
    """每个 S4D 层各通道的步长 Δ，形状 (n_layers, H)。"""
    layers = [m for m in model.modules() if isinstance(m, S4DLayer)]
    if not layers:
        raise ValueError("这个模型没有 S4D 层。")
    with eval_mode(model):
        return torch.stack([layer.dt().float() for layer in layers]).cpu()
