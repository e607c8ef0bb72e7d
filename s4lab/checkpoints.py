"""检查点：只含普通类型的字典，原子写入，用 ``torch.load(..., weights_only=True)`` 读取，以及恢复训练前的兼容性检查。"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from s4lab.models import CharLM, LMConfig, build_model

if TYPE_CHECKING:
    from s4lab.train import TrainConfig

CHECKPOINT_FORMAT = 1
STEP_CHECKPOINT = re.compile(r"step-(\d+)\.pt")

# 恢复训练时允许与检查点不同的训练设置。改 max_steps 可以延长训练（学习率日程随之改变，会打印警告），
# 其余几个只影响记录与保存的频率。
RESUMABLE_CHANGES = ("max_steps", "eval_interval", "log_interval", "keep_last")


class CheckpointError(ValueError):
    """检查点无法读取，或与当前的模型、配置、词表不兼容。"""


def _atomic_save(obj, path: Path) -> None:
    """先写同目录下的临时文件并刷到磁盘，再改名：进程中途被杀时 ``path`` 仍是旧的完整文件。"""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_copy(source: Path, target: Path) -> None:
    """把 ``source`` 原子地发布为 ``target``：优先用硬链接（不复制数据），文件系统不支持时复制。"""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def checkpoint_dict(
    model_name, model, optimizer, step, lm_config, train_config, vocab_chars, val_loss, trainer=None
):
    """组装只含普通类型的检查点字典。``trainer`` 是恢复训练所需的状态（随机数、累计的损失与时间）。"""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "lm_config": lm_config.to_dict(),
        "train_config": train_config.to_dict(),
        "vocab": vocab_chars,
        "val_loss": val_loss,
    }
    if trainer is not None:
        checkpoint["trainer"] = trainer
    return checkpoint


def read_checkpoint(path, map_location="cpu") -> dict:
    """用 ``torch.load(..., weights_only=True)`` 读取检查点字典，不重建模型。

    文件缺失、损坏、含有普通类型以外的对象或格式版本不符时抛出中文说明的异常。
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"检查点 {path} 是一个目录：请指向其中的 .pt 文件，例如 {path / 'best.pt'}。")
    if not path.is_file():
        raise FileNotFoundError(f"检查点 {path} 不存在：请先运行训练（例如训练那一章或 s4lab train），或检查路径。")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # 损坏的文件可能引发 UnpicklingError、RuntimeError、EOFError 等多种异常
        raise CheckpointError(
            f"无法读取检查点 {path}：文件已损坏、不完整，或含有普通类型以外的对象"
            f"（weights_only=True 拒绝加载）。原始错误：{type(error).__name__}: {str(error)[:200]}"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        version = checkpoint.get("format") if isinstance(checkpoint, dict) else None
        raise CheckpointError(
            f"检查点 {path} 的格式版本是 {version!r}，本版本的 s4lab 只读版本 {CHECKPOINT_FORMAT}："
            "它可能不是 s4lab 写出的检查点。"
        )
    return checkpoint


def _build_from_checkpoint(checkpoint: dict, path: Path) -> CharLM:
    try:
        config = LMConfig.from_dict(checkpoint["lm_config"])
        model = build_model(checkpoint["model_name"], config)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"检查点 {path} 中的模型配置无效：{error}") from None
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        first_line = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise CheckpointError(
            f"检查点 {path} 中的权重与其中记录的配置（{checkpoint['model_name']}，"
            f"d_model={config.d_model}，n_layers={config.n_layers}，vocab_size={config.vocab_size}）不一致，"
            f"文件可能被改动过：{first_line[:200]}"
        ) from None
    broken = [
        name for name, tensor in checkpoint["model"].items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if broken:
        raise CheckpointError(
            f"检查点 {path} 中有 {len(broken)} 个权重张量含有 NaN 或无穷大（例如 {broken[0]}）："
            "文件可能已损坏，请换用运行目录里较早的检查点（step-*.pt）。"
        )
    return model


def load_checkpoint(path, map_location="cpu"):
    """读取检查点并重建模型，返回 ``(model, checkpoint)``。只用 ``weights_only=True`` 加载。"""
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location)
    return _build_from_checkpoint(checkpoint, path), checkpoint


def list_checkpoints(out_dir) -> list[Path]:
    """运行目录中可用于恢复的检查点，从新到旧：先 ``last.pt``，再按步数从大到小的 ``step-*.pt``。"""
    out_dir = Path(out_dir)
    steps = sorted(
        (int(m.group(1)), p) for p in out_dir.glob("step-*.pt") if (m := STEP_CHECKPOINT.fullmatch(p.name))
    )
    found = [p for _, p in reversed(steps)]
    last = out_dir / "last.pt"
    return ([last] if last.is_file() else []) + found


def _newest_resumable(out_dir: Path) -> tuple[dict, Path]:
    """读取最新的可恢复检查点；损坏的文件跳过并打印警告，接着试下一个较旧的。"""
    candidates = list_checkpoints(out_dir)
    if not candidates:
        raise CheckpointError(
            f"运行目录 {out_dir} 中没有检查点（last.pt 或 step-*.pt），无法恢复：在写出第一个检查点之前就停止的运行"
            "（例如第一次评估之前被杀掉）没有可恢复的状态，请删除这个目录后重新开始。"
        )
    for path in candidates:
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as error:
            print(f"警告：跳过无法读取的检查点。{error}", file=sys.stderr)
            continue
        if "trainer" not in checkpoint:
            raise CheckpointError(f"检查点 {path} 不含恢复训练所需的状态（优化器之外的随机数与计数），无法恢复。")
        return checkpoint, path
    raise CheckpointError(f"运行目录 {out_dir} 中的检查点都无法读取，无法恢复。")


def check_compatible(checkpoint: dict, path, model_name: str, lm_config: LMConfig, train_config: TrainConfig, vocab_chars: str):
    """检查检查点与当前的模型名、配置、词表是否一致；不一致时抛出 :class:`CheckpointError`，列出每个不同的键。

    训练设置中只有 ``RESUMABLE_CHANGES`` 里的键允许不同。
    """
    problems = []
    if checkpoint.get("model_name") != model_name:
        problems.append(f"模型：检查点是 {checkpoint.get('model_name')!r}，当前配置是 {model_name!r}")
    saved_vocab = checkpoint.get("vocab", "")
    if saved_vocab != vocab_chars:
        differing = sorted(set(saved_vocab) ^ set(vocab_chars))
        problems.append(
            f"词表：检查点有 {len(saved_vocab)} 个字符，当前语料有 {len(vocab_chars)} 个"
            + (f"，只在一边出现的字符有 {''.join(differing[:10])!r}" if differing else "，字符顺序不同")
        )
    for section, current, allowed in (
        ("lm", lm_config.to_dict(), ()),
        ("train", train_config.to_dict(), RESUMABLE_CHANGES),
    ):
        saved = checkpoint.get(f"{section}_config", {})
        for key in sorted(set(saved) | set(current)):
            if key in allowed or saved.get(key) == current.get(key):
                continue
            problems.append(f"{section}.{key}：检查点是 {saved.get(key)!r}，当前配置是 {current.get(key)!r}")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CheckpointError(
            f"检查点 {path} 与当前配置不兼容，不能在它上面继续训练：\n{lines}\n"
            "请改用与这次运行相同的配置（运行目录里的 config.yaml），或换一个新的输出目录从头训练。"
        )
