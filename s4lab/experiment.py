"""公平对比实验的协议：学习率搜索、多种子短跑与最终训练，以及结果文件的读写。

协议对两个模型完全相同：同样的数据与切分、上下文长度、批大小、步数（因此词元预算相同）、
AdamW 与“预热 + 余弦衰减”日程。每个模型的学习率由同一个网格上的短跑在验证集上选出，
测试集不参与任何选择。

结果写在 ``runs_dir()/<mode>/experiment-<时间>/`` 下（mode 为 ``full`` 或 ``quick``），
``runs_dir()/<mode>/experiment-latest.json`` 指向最近一次实验的目录，后面的章节由它找到结果。
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from s4lab.models import MODEL_NAMES, LMConfig, build_model
from s4lab.runtime import is_quick, runs_dir
from s4lab.train import TrainConfig, load_checkpoint, train

PLAN_NAMES = ("cpu", "gpu", "quick")
POINTER_NAME = "experiment-latest.json"

# 读取结果的函数在文件缺失时，提示先运行写出这个结果的章节。
PRODUCER_CHAPTERS = {
    "lr_search": "10_training（训练两个模型）",
    "final": "10_training（训练两个模型）",
    "seeds": "11_evaluation（评估与分析）",
    "evaluation": "11_evaluation（评估与分析）",
}


@dataclass(frozen=True)
class ExperimentPlan:
    """一个预设下的全部实验设置。

    ``lr_grid`` 是学习率搜索的候选峰值学习率，每个候选用种子 ``seeds[0]`` 短跑 ``search_steps`` 步；
    ``seeds`` 是多种子短跑用的种子（第一个种子的短跑就是学习率搜索中选中的那一次）；
    ``final_steps`` 是最终训练的步数。SSM 参数组的学习率取峰值学习率乘 ``ssm_lr_ratio``。
    """

    name: str
    lm_config: LMConfig
    batch_size: int
    lr_grid: tuple[float, ...]
    search_steps: int
    seeds: tuple[int, ...]
    final_steps: int
    ssm_lr_ratio: float = 0.5
    eval_interval: int = 100
    eval_max_windows: int | None = None

    def search_config(self, lr: float, seed: int) -> TrainConfig:
        """学习率搜索与多种子短跑共用的训练设置：只在最后一步评估一次。"""
        return TrainConfig(
            batch_size=self.batch_size,
            max_steps=self.search_steps,
            lr=lr,
            ssm_lr=lr * self.ssm_lr_ratio,
            warmup_steps=max(1, self.search_steps // 10),
            eval_interval=self.search_steps,
            eval_max_windows=self.eval_max_windows,
            log_interval=max(1, self.search_steps // 10),
            seed=seed,
        )

    def final_config(self, lr: float) -> TrainConfig:
        """最终训练的设置：种子 ``seeds[0]``，每 ``eval_interval`` 步在验证集上评估一次。"""
        return TrainConfig(
            batch_size=self.batch_size,
            max_steps=self.final_steps,
            lr=lr,
            ssm_lr=lr * self.ssm_lr_ratio,
            warmup_steps=max(1, self.final_steps // 10),
            eval_interval=min(self.eval_interval, self.final_steps),
            eval_max_windows=self.eval_max_windows,
            log_interval=max(1, min(10, self.final_steps // 10)),
            seed=self.seeds[0],
        )

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["lm_config"] = self.lm_config.to_dict()
        return values


def experiment_plan(name: str) -> ExperimentPlan:
    """返回名为 ``name`` 的实验预设。

    ``cpu`` 按 2 核 CPU 上每步约 0.5 秒（批大小 32、默认 ``LMConfig``）估算：搜索 4 × 2 × 150 步加
    最终 2 × 900 步，约 22–28 分钟。网格取到 8e-3，因为只到 4e-3 时 S4D 选中的正是网格的上沿。``quick`` 与 ``cpu`` 的模型结构相同，只把步数缩到几步，供 CI 走通同一条代码路径。
    """
    if name == "cpu":
        return ExperimentPlan(
            "cpu", LMConfig(), batch_size=32, lr_grid=(1e-3, 2e-3, 4e-3, 8e-3), search_steps=150, seeds=(0, 1, 2),
            final_steps=900,
        )
    if name == "gpu":
        return ExperimentPlan(
            "gpu", LMConfig(d_model=256, n_layers=6, n_heads=8, dropout=0.1), batch_size=64,
            lr_grid=(5e-4, 1e-3, 2e-3), search_steps=500, seeds=(0, 1, 2), final_steps=5000, eval_interval=250,
        )
    if name == "quick":
        return ExperimentPlan(
            "quick", LMConfig(), batch_size=4, lr_grid=(1e-3, 4e-3), search_steps=3, seeds=(0, 1), final_steps=8,
            eval_interval=4, eval_max_windows=4,
        )
    raise ValueError(f"未知的实验预设 {name!r}：可选 {', '.join(PLAN_NAMES)}。")


def default_plan_name(device: torch.device) -> str:
    """快速模式用 ``quick``；否则有 CUDA 时用 ``gpu``，CPU 上用默认的 ``cpu``。"""
    if is_quick():
        return "quick"
    return "gpu" if torch.device(device).type == "cuda" else "cpu"


def mode_name() -> str:
    """结果目录按运行模式分开：``quick`` 或 ``full``，快速模式的结果不会被当成完整模式的结果读到。"""
    return "quick" if is_quick() else "full"


# ---------------------------------------------------------------------------
# 结果文件
# ---------------------------------------------------------------------------


def _write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def new_experiment_dir(mode: str | None = None) -> Path:
    """新建 ``runs_dir()/<mode>/experiment-<时间>/``，并让 ``experiment-latest.json`` 指向它。"""
    mode = mode or mode_name()
    parent = Path(runs_dir()) / mode
    root = parent / f"experiment-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    root.mkdir(parents=True)
    _write_json({"root": str(root)}, parent / POINTER_NAME)
    return root


def latest_experiment_dir(mode: str | None = None) -> Path:
    """``experiment-latest.json`` 指向的实验目录；没有时抛出 FileNotFoundError，说明先运行哪一章。"""
    mode = mode or mode_name()
    pointer = Path(runs_dir()) / mode / POINTER_NAME
    if not pointer.is_file():
        raise FileNotFoundError(
            f"没有找到 {pointer}：{mode} 模式下还没有训练结果。请先在同一模式下运行 {PRODUCER_CHAPTERS['final']}。"
        )
    root = Path(json.loads(pointer.read_text(encoding="utf-8"))["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"{pointer} 指向的目录 {root} 不存在：请重新运行 {PRODUCER_CHAPTERS['final']}。")
    return root


def save_results(root, kind: str, data: dict) -> Path:
    """把一类结果（``lr_search``、``final``、``seeds``、``evaluation``）写成 ``root/<kind>.json``。"""
    if kind not in PRODUCER_CHAPTERS:
        raise ValueError(f"未知的结果类型 {kind!r}：可选 {', '.join(PRODUCER_CHAPTERS)}。")
    path = Path(root) / f"{kind}.json"
    _write_json(data, path)
    return path


def load_results(kind: str, root=None) -> dict:
    """读取一类结果；``root`` 缺省时用最近一次实验。文件缺失时的错误说明要先运行哪一章。"""
    if kind not in PRODUCER_CHAPTERS:
        raise ValueError(f"未知的结果类型 {kind!r}：可选 {', '.join(PRODUCER_CHAPTERS)}。")
    root = Path(root) if root is not None else latest_experiment_dir()
    path = root / f"{kind}.json"
    if not path.is_file():
        raise FileNotFoundError(f"结果文件 {path} 不存在：请先在同一模式下运行 {PRODUCER_CHAPTERS[kind]}。")
    return json.loads(path.read_text(encoding="utf-8"))


def load_final_model(model_name: str, root=None, checkpoint_name: str = "last"):
    """读取最终训练写出的检查点（``last`` 或 ``best``），返回 ``(model, checkpoint)``。"""
    final = load_results("final", root)
    if model_name not in final["models"]:
        raise FileNotFoundError(
            f"最近一次实验的最终训练结果里没有模型 {model_name!r}（只有 {sorted(final['models'])}）："
            f"那次训练可能中途停止了。请重新运行 {PRODUCER_CHAPTERS['final']}。"
        )
    return load_checkpoint(Path(final["models"][model_name]["out_dir"]) / f"{checkpoint_name}.pt")


def initial_model(model_name: str, lm_config: LMConfig, seed: int):
    """重建种子为 ``seed`` 的训练开始前的模型：``train`` 先调用 ``torch.manual_seed(seed)`` 再构建模型。

    NOTE: 这依赖 ``s4lab.train.train`` 中“设种子后立即构建模型”的顺序；那里的顺序改变后，这里得到的就不是真正的初值。
    """
    torch.manual_seed(seed)
    return build_model(model_name, lm_config)


# ---------------------------------------------------------------------------
# 实验步骤
# ---------------------------------------------------------------------------


def _summary(result: dict) -> dict:
    """``train`` 返回值中可以写进 JSON 的部分。"""
    return {key: value for key, value in result.items() if key != "model"}


def lr_search(plan: ExperimentPlan, model_name: str, dataset, root, device=None, progress: bool = True) -> dict:
    """在 ``plan.lr_grid`` 的每个学习率上用种子 ``plan.seeds[0]`` 短跑，按验证损失选出最好的学习率。

    返回 ``{"model", "lrs", "val_losses", "best_lr", "runs"}``，``runs`` 是每次短跑的摘要（含输出目录）。
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"未知的模型名 {model_name!r}：可选 {', '.join(MODEL_NAMES)}。")
    runs = []
    for lr in plan.lr_grid:
        out_dir = Path(root) / "lr_search" / f"{model_name}-lr{lr:g}"
        result = train(model_name, plan.lm_config, plan.search_config(lr, plan.seeds[0]), dataset, out_dir,
                       device=device, progress=progress)
        runs.append({"lr": lr, **_summary(result)})
    val_losses = [r["final_val_loss"] for r in runs]
    best = min(range(len(runs)), key=lambda i: val_losses[i])
    return {"model": model_name, "lrs": list(plan.lr_grid), "val_losses": val_losses,
            "best_lr": plan.lr_grid[best], "runs": runs}


def seed_runs(plan: ExperimentPlan, model_name: str, search: dict, dataset, root, device=None,
              progress: bool = True) -> list[dict]:
    """用搜索选中的学习率，对 ``plan.seeds`` 中的每个种子各做一次与搜索相同长度的短跑。

    第一个种子直接复用学习率搜索中选中的那一次短跑（设置完全相同），其余种子新训练，
    写在 ``root/seeds/<时间>/`` 下，所以同一个实验目录可以重复调用而不覆盖之前的短跑。
    每项是 ``{"seed", "out_dir", "final_val_loss", ...}``。
    """
    lr = search["best_lr"]
    folder = Path(root) / "seeds" / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    reused = next(r for r in search["runs"] if r["lr"] == lr)
    runs = [{"seed": plan.seeds[0], **reused}]
    for seed in plan.seeds[1:]:
        out_dir = folder / f"{model_name}-seed{seed}"
        result = train(model_name, plan.lm_config, plan.search_config(lr, seed), dataset, out_dir,
                       device=device, progress=progress)
        runs.append({"seed": seed, "lr": lr, **_summary(result)})
    return runs
