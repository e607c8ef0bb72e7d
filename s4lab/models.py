"""字符级语言模型：一个共用的骨干网络，两种序列混合层。

嵌入 → n_layers 个预归一化残差块（序列混合层 + 前馈网络）→ 最终 LayerNorm → 线性输出头。
``S4DLM`` 与 ``TransformerLM`` 只在序列混合层上不同；同一份 ``LMConfig`` 给出的两个模型
参数量相差不到 10 %（``tests/test_models.py`` 检查这一点）。
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from s4lab.layers import Block, CausalSelfAttention, S4DLayer

MODEL_NAMES = ("s4d", "transformer")


@dataclass
class LMConfig:
    """两个语言模型共用的结构配置。``d_state`` 只用于 S4D，``n_heads`` 只用于 Transformer。"""

    vocab_size: int = 65
    seq_len: int = 256
    d_model: int = 128
    n_layers: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    d_state: int = 64
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    s4d_init: str = "lin"
    n_heads: int = 4

    def __post_init__(self):
        positive = ("vocab_size", "seq_len", "d_model", "n_layers", "mlp_ratio", "d_state", "n_heads")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LMConfig.{name}={value!r} 无效：必须是 ≥ 1 的整数。")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LMConfig.dropout={self.dropout!r} 无效：必须在 [0, 1) 内。")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"LMConfig 不认识这些键：{unknown}；可用的键是 {sorted(known)}。")
        return cls(**values)


class CharLM(nn.Module):
    """共用骨干：``mixer_factory(config)`` 为每个块生成一个序列混合层。"""

    def __init__(self, config: LMConfig, mixer_factory):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(mixer_factory(config), config.d_model, config.mlp_ratio, config.dropout)
            for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        # 线性层与嵌入用 N(0, 0.02²)；输出头再缩小，使初始预测接近均匀分布（损失 ≈ ln V）。
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.weight, mean=0.0, std=0.002)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: (B, L) 字符编号 → (B, L, V) 的 logits。"""
        if idx.dim() != 2:
            raise ValueError(f"输入形状应为 (B, L)，收到 {tuple(idx.shape)}。")
        x = self.dropout(self.embedding(idx))  # (B, L, H)
        for block in self.blocks:
            x = block(x)  # (B, L, H)
        return self.head(self.norm(x))  # (B, L, V)


class S4DLM(CharLM):
    """以 S4D 层为序列混合层的语言模型。"""

    def __init__(self, config: LMConfig):
        super().__init__(
            config,
            lambda c: S4DLayer(c.d_model, c.d_state, c.dt_min, c.dt_max, c.s4d_init, c.dropout),
        )


class TransformerLM(CharLM):
    """以因果自注意力（RoPE）为序列混合层的语言模型。"""

    def __init__(self, config: LMConfig):
        super().__init__(config, lambda c: CausalSelfAttention(c.d_model, c.n_heads, c.dropout))


def build_model(name: str, config: LMConfig) -> CharLM:
    """按名字（``"s4d"`` 或 ``"transformer"``）构建模型。"""
    if name == "s4d":
        return S4DLM(config)
    if name == "transformer":
        return TransformerLM(config)
    raise ValueError(f"未知的模型名 {name!r}：可选 {', '.join(MODEL_NAMES)}。")


def count_parameters(model: nn.Module) -> int:
    """可训练参数的个数（S4D 的复数参数按实部、虚部各算一个）。"""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, ssm_lr: float) -> list[dict]:
    """把参数分成三组，每个参数恰好属于一组。

    - ``ssm``：S4D 的 log Δ 与 A，不做权重衰减，学习率为 ``ssm_lr``。衰减会把它们拉向 0，
      也就是把 Δ 拉向 1、Re(A) 拉向 −1，改变的是时间尺度而不是缩小某个权重；
    - ``decay``：矩阵形状的权重（线性层、嵌入、S4D 的 C），使用 ``weight_decay``；
    - ``no_decay``：偏置、归一化层参数与 D 等一维参数，不做权重衰减。
    """
    ssm_ids = set()
    for module in model.modules():
        if isinstance(module, S4DLayer):
            ssm_ids.update(id(getattr(module, name)) for name in module.ssm_parameter_names)
    groups = {"ssm": [], "decay": [], "no_decay": []}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if id(param) in ssm_ids:
            groups["ssm"].append(param)
        elif param.dim() >= 2:
            groups["decay"].append(param)
        else:
            groups["no_decay"].append(param)
    settings = {
        "ssm": {"lr": ssm_lr, "weight_decay": 0.0},
        "decay": {"lr": lr, "weight_decay": weight_decay},
        "no_decay": {"lr": lr, "weight_decay": 0.0},
    }
    return [
        {"name": name, "params": params, **settings[name]}
        for name, params in groups.items()
        if params
    ]
