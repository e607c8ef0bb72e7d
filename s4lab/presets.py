"""命令行配置 ``configs/*_cpu_small.yaml`` 与 ``configs/*_gpu.yaml`` 对应的预设。

它们取自训练那一章的实验预设（``s4lab.experiment.experiment_plan``）中最终训练的设置，学习率取搜索网格的
中间值（候选个数为偶数时取中间偏小的那个）；那一章自己会在验证集上为每个模型重新选择学习率。``tests/test_config.py`` 检查 YAML 与这里一致。
"""

from __future__ import annotations

from s4lab.experiment import PLAN_NAMES, experiment_plan
from s4lab.models import LMConfig
from s4lab.train import TrainConfig

PRESET_NAMES = PLAN_NAMES


def training_preset(name: str) -> tuple[LMConfig, TrainConfig]:
    """返回名为 ``name``（``"cpu"``、``"gpu"`` 或 ``"quick"``）的预设 ``(LMConfig, TrainConfig)``。"""
    plan = experiment_plan(name)
    lr = plan.lr_grid[(len(plan.lr_grid) - 1) // 2]
    return plan.lm_config, plan.final_config(lr)
