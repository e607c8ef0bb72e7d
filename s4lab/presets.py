"""训练章节使用的预设：CPU（默认）、GPU 与快速模式。

CPU 预设按 2 核 CPU 上整章约 20 分钟来定步数；GPU 预设只在有 CUDA 时使用，模型更大、步数更多；
快速模式与 CPU 预设的模型结构相同（参数量一样），只把训练缩短到几十步，供 CI 走通同一条代码路径。
"""

from __future__ import annotations

from s4lab.models import LMConfig
from s4lab.train import TrainConfig

PRESET_NAMES = ("cpu", "gpu", "quick")


def training_preset(name: str) -> tuple[LMConfig, TrainConfig]:
    """返回名为 ``name`` 的预设 ``(LMConfig, TrainConfig)``。"""
    if name == "cpu":
        return LMConfig(), TrainConfig(batch_size=32, max_steps=1200, warmup_steps=100, eval_interval=100)
    if name == "gpu":
        return (
            LMConfig(d_model=256, n_layers=6, n_heads=8, dropout=0.1),
            TrainConfig(batch_size=64, max_steps=5000, lr=1e-3, warmup_steps=200, eval_interval=250),
        )
    if name == "quick":
        return LMConfig(), TrainConfig(
            batch_size=8, max_steps=20, warmup_steps=5, eval_interval=10, eval_max_windows=8, log_interval=5
        )
    raise ValueError(f"未知的预设 {name!r}：可选 {', '.join(PRESET_NAMES)}。")
