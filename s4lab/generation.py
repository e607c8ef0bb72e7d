"""逐词元生成：S4D 语言模型的递推模式，Transformer 的 KV 缓存。

两种模型用同一对函数驱动：

- ``prefill(model, idx)``：一次处理整段提示 idx (B, T)，返回全部位置的 logits (B, T, V) 与生成状态；
- ``step(model, token, state)``：再读入一个词元 (B,)，返回它之后的 logits (B, V)，并原地更新状态。

S4D 的状态是每层一个 (B, H, N/2) 的复数向量 x，读入一个词元只做 x ← Ā x + B̄ u、
y = 2·Re(C x) + D u，代价与已经生成的长度无关。Transformer 的状态是每层的键和值，
每步要对全部缓存做一次注意力，代价随长度线性增长，但不必重算前面位置的键和值。
两者给出的 logits 与 ``model(idx)`` 一致（``tests/test_generation_cache.py`` 检查）。

这些函数不切换 ``model.train()``/``model.eval()``：生成时请先调用 ``model.eval()``，否则 dropout 仍然生效。
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s4lab import ssm
from s4lab.layers import CausalSelfAttention, S4DLayer, rotary_embedding
from s4lab.models import CharLM

# 计算提示结束时的 S4D 状态时，每次处理的位置数；限制 (H, N/2, 块长) 大小的中间张量。
_STATE_CHUNK = 512


@dataclass
class S4DLayerState:
    """一个 S4D 层的递推状态与离散化后的参数（都在 float32/complex64 中）。"""

    x: torch.Tensor  # (B, H, N/2) 复数状态
    A_bar: torch.Tensor  # (H, N/2)
    B_bar: torch.Tensor  # (H, N/2)
    C: torch.Tensor  # (H, N/2)


class KVCache:
    """一个注意力层的键值缓存，容量不够时按 2 倍扩容，使追加的均摊代价与已缓存长度无关。"""

    def __init__(self):
        self.keys = None  # (B, heads, capacity, head_dim)
        self.values = None  # (B, heads, capacity, head_dim)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """追加 k, v: (B, heads, T, head_dim)，返回到目前为止全部的键和值 (B, heads, length, head_dim)。"""
        T = k.shape[-2]
        needed = self.length + T
        if self.keys is None or needed > self.keys.shape[-2]:
            capacity = max(needed, 2 * (0 if self.keys is None else self.keys.shape[-2]))
            shape = (*k.shape[:-2], capacity, k.shape[-1])
            keys, values = k.new_empty(shape), v.new_empty(shape)
            if self.keys is not None:
                keys[..., : self.length, :] = self.keys[..., : self.length, :]
                values[..., : self.length, :] = self.values[..., : self.length, :]
            self.keys, self.values = keys, values
        self.keys[..., self.length : needed, :] = k
        self.values[..., self.length : needed, :] = v
        self.length = needed
        return self.keys[..., :needed, :], self.values[..., :needed, :]


def _discretized(layer: S4DLayer):
    """零阶保持离散化后的 (Ā, B̄, C)，各为 (H, N/2)，与 ``ssm.s4d_kernel`` 用的是同一组量。"""
    dt = layer.dt().unsqueeze(-1)  # (H, 1)
    dtA = dt * layer.A()  # (H, N/2)
    return torch.exp(dtA), dt * ssm.expm1_over_x(dtA), layer.C_complex()


def s4d_final_state(layer: S4DLayer, u: torch.Tensor) -> torch.Tensor:
    """读完 u: (B, L, H) 之后的状态 x_L = Σ_k Ā^{L−1−k} B̄ u_k，形状 (B, H, N/2)，复数。

    按位置分块计算幂 Ā^p = e^{pΔA}（极坐标形式），避免一次生成 (H, N/2, L) 的张量。
    """
    B, L, H = u.shape
    dt = layer.dt().unsqueeze(-1)  # (H, 1)
    dtA = dt * layer.A()  # (H, N/2)
    a, b = dtA.real.unsqueeze(-1), dtA.imag.unsqueeze(-1)  # (H, N/2, 1)
    n = dtA.shape[-1]
    x_re = u.new_zeros(B, H, n)
    x_im = u.new_zeros(B, H, n)
    for start in range(0, L, _STATE_CHUNK):
        stop = min(L, start + _STATE_CHUNK)
        p = (L - 1 - torch.arange(start, stop, device=u.device)).to(u.dtype)  # (T,) 各位置到结尾的步数
        magnitude = torch.exp(a * p)  # (H, N/2, T)
        u_chunk = u[:, start:stop, :]  # (B, T, H)
        x_re = x_re + torch.einsum("bth,hnt->bhn", u_chunk, magnitude * torch.cos(b * p))
        x_im = x_im + torch.einsum("bth,hnt->bhn", u_chunk, magnitude * torch.sin(b * p))
    B_bar = dt * ssm.expm1_over_x(dtA)  # (H, N/2)
    return torch.complex(x_re, x_im) * B_bar  # (B, H, N/2)


def s4d_layer_step(layer: S4DLayer, u: torch.Tensor, state: S4DLayerState) -> torch.Tensor:
    """S4D 层的一步递推：u: (B, H) → (B, H)，并更新 ``state.x``。与 ``S4DLayer.forward`` 同一套运算。"""
    state.x = state.A_bar * state.x + state.B_bar * u.unsqueeze(-1)  # (B, H, N/2)
    y = 2 * (state.C * state.x).sum(-1).real + layer.D * u  # (B, H)
    y = layer.dropout(F.gelu(y))
    return F.glu(layer.output_linear(y), dim=-1)  # (B, H)


def _attention(layer: CausalSelfAttention, h: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """带 KV 缓存的因果自注意力：h: (B, T, H) 是新位置的输入，位置编号从 ``cache.length`` 开始。"""
    B, T, H = h.shape
    past = cache.length
    q, k, v = layer.qkv(h).split(H, dim=-1)  # 各为 (B, T, H)
    q, k, v = (t.view(B, T, layer.n_heads, H // layer.n_heads).transpose(1, 2) for t in (q, k, v))
    if layer.rope:
        q, k = rotary_embedding(q, k, offset=past)  # (B, heads, T, head_dim)
    k, v = cache.append(k, v)  # (B, heads, past + T, head_dim)
    if past == 0:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif T == 1:
        y = F.scaled_dot_product_attention(q, k, v)  # 新位置可以看见全部缓存
    else:
        rows = torch.arange(past, past + T, device=h.device).unsqueeze(-1)  # (T, 1)
        mask = torch.arange(past + T, device=h.device) <= rows  # (T, past + T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    y = y.transpose(1, 2).reshape(B, T, H)
    return layer.dropout(layer.out(y))  # (B, T, H)


def _is_s4d(model: CharLM) -> bool:
    mixers = [block.mixer for block in model.blocks]
    if all(isinstance(m, S4DLayer) for m in mixers):
        return True
    if all(isinstance(m, CausalSelfAttention) for m in mixers):
        return False
    names = sorted({type(m).__name__ for m in mixers})
    raise TypeError(f"不支持的序列混合层组合 {names}：逐词元生成只支持全部为 S4DLayer 或全部为 CausalSelfAttention。")


@torch.no_grad()
def prefill(model: CharLM, idx: torch.Tensor):
    """处理提示 idx: (B, T)（T ≥ 1），返回 ``(logits, state)``，logits 为 (B, T, V)。

    S4D 用卷积模式算输出，再用 ``s4d_final_state`` 求出每层读完提示后的状态；
    Transformer 一次算出全部位置并把键和值写进每层的 ``KVCache``。
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"提示的形状应为 (B, T) 且 T ≥ 1，收到 {tuple(idx.shape)}。")
    s4d = _is_s4d(model)
    x = model.dropout(model.embedding(idx))  # (B, T, H)
    state = []
    for block in model.blocks:
        h = block.norm1(x)  # (B, T, H)
        if s4d:
            layer = block.mixer
            A_bar, B_bar, C = _discretized(layer)
            state.append(S4DLayerState(s4d_final_state(layer, h), A_bar, B_bar, C))
            x = x + layer(h)
        else:
            cache = KVCache()
            x = x + _attention(block.mixer, h, cache)
            state.append(cache)
        x = x + block.ffn(block.norm2(x))  # (B, T, H)
    return model.head(model.norm(x)), state  # (B, T, V)


@torch.no_grad()
def step(model: CharLM, token: torch.Tensor, state: list) -> torch.Tensor:
    """读入下一个词元 token: (B,)，返回 (B, V) 的 logits，并原地更新 ``state``（来自 ``prefill``）。"""
    if token.dim() != 1:
        raise ValueError(f"token 的形状应为 (B,)，收到 {tuple(token.shape)}。")
    if len(state) != len(model.blocks):
        raise ValueError(f"状态有 {len(state)} 层，模型有 {len(model.blocks)} 层：请用同一个模型的 prefill 得到状态。")
    x = model.dropout(model.embedding(token))  # (B, H)
    for block, layer_state in zip(model.blocks, state):
        h = block.norm1(x)  # (B, H)
        if isinstance(layer_state, S4DLayerState):
            x = x + s4d_layer_step(block.mixer, h, layer_state)
        else:
            x = x + _attention(block.mixer, h.unsqueeze(1), layer_state).squeeze(1)
        x = x + block.ffn(block.norm2(x))  # (B, H)
    return model.head(model.norm(x))  # (B, V)
