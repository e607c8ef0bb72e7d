"""从字符级语言模型中采样：温度、top-k 与贪心解码。

默认（``use_cache=True``）用 ``s4lab.generation`` 逐词元生成：S4D 走递推模式，每个新字符的代价与已生成的
长度无关；Transformer 读 KV 缓存，不必重算前面位置的键和值。``use_cache=False`` 时每生成一个字符都把
截到 ``seq_len`` 的整个上下文重新送进模型，两条路径在总长度不超过 ``seq_len`` 时给出相同的 logits。
"""

from __future__ import annotations

import math

import torch
from torch import nn

from s4lab import generation
from s4lab.layers import S4DLayer


def _next_token(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """从 (B, V) 的 logits 中取下一个字符，返回 (B, 1)。"""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    # 在 CPU 上抽样：generator 在 CPU 上，而字符词表只有几十个元素，搬运的代价可以忽略。
    probs = torch.softmax(logits, dim=-1).cpu()  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).to(logits.device)  # (B, 1)


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """在 ``idx``（(B, T) 字符编号）后面续写 ``max_new_tokens`` 个字符，返回 (B, T + max_new_tokens)。

    ``temperature`` 为 0 时取概率最大的字符（贪心，结果确定）；大于 0 时把 logits 除以它再按概率抽样，
    ``top_k`` 只在概率最大的 k 个字符中抽样。送进模型的上下文截到最后 ``model.config.seq_len`` 个字符，
    即模型训练时见过的最长长度。抽样的随机数只来自 ``generator``（CPU 上的 ``torch.Generator``，
    为 None 时用全局随机数）。生成时模型处于 eval 模式，结束后恢复原来的模式。

    ``use_cache=True`` 时，S4D 的递推状态概括了全部历史，所以生成超过 ``seq_len`` 个字符后，
    它看到的上下文比重算路径更长，两条路径的输出从那里开始可以不同；Transformer 的上下文超过
    ``seq_len`` 后每步都用最后 ``seq_len`` 个字符重建缓存，与重算路径相同。
    """
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.shape[1] < 1:
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx 的形状应为 (B, T) 且 T ≥ 1，收到 {shape}：提示文本至少要有一个字符。")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} 无效：必须是 ≥ 0 的整数。")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        math.isfinite(temperature) and temperature >= 0
    ):
        raise ValueError(f"temperature={temperature!r} 无效：必须是 ≥ 0 的有限数（0 表示贪心解码）。")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k={top_k!r} 无效：必须是 ≥ 1 的整数，或 None（不限制）。")

    seq_len = model.config.seq_len
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = idx.to(device)
    try:
        if not use_cache:
            for _ in range(max_new_tokens):
                logits = model(out[:, -seq_len:])[:, -1, :]  # (B, V)，上下文截到最后 seq_len 个字符
                out = torch.cat([out, _next_token(logits, temperature, top_k, generator)], dim=1)
            return out
        is_s4d = all(isinstance(block.mixer, S4DLayer) for block in model.blocks)
        logits, state = generation.prefill(model, out[:, -seq_len:])  # (B, T, V)
        logits = logits[:, -1, :]  # (B, V)
        for i in range(max_new_tokens):
            next_id = _next_token(logits, temperature, top_k, generator)  # (B, 1)
            out = torch.cat([out, next_id], dim=1)
            if i == max_new_tokens - 1:
                break  # 最后一个字符之后的 logits 用不到
            if is_s4d or out.shape[1] <= seq_len:
                logits = generation.step(model, next_id[:, 0], state)  # (B, V)
            else:
                # NOTE: KVCache 不能丢弃最早的位置，所以窗口滑动后每步重建缓存，代价与重算相同。
                logits, state = generation.prefill(model, out[:, -seq_len:])
                logits = logits[:, -1, :]
        return out
    finally:
        model.train(was_training)
