"""训练循环：AdamW、学习率预热后余弦衰减、梯度裁剪、定期在验证集上评估、可中断与恢复。

每次运行写一个输出目录（已被 git 忽略）：
- ``config.yaml``：命令行训练时解析后的完整配置（由调用者通过 ``run_config`` 传入）；
- ``metrics.jsonl``：每 ``log_interval`` 步一行，字段为 step、tokens、wall_seconds、train_loss、
  val_loss（只在评估步有值，否则为 null）、lr；
- 检查点：``step-0001000.pt``（只保留最近 ``keep_last`` 个）、``last.pt``（最新）与
  ``best.pt``（验证损失最低）。检查点只含普通类型（state dict、数字、字符串、列表、
  随机数生成器状态的 ByteTensor），可以用 ``torch.load(..., weights_only=True)`` 读取，
  其中包括词表、配置以及恢复训练所需的优化器与随机数状态；
- ``loss_curve.png``：每次评估后刷新的损失曲线；``summary.json``、``config.json``：结束时写入。

每个文件都先写临时文件再改名，进程在写入中途被杀时旧文件仍然完整。
同一台机器、同一个种子、在 CPU 上运行两次，``metrics.jsonl`` 中除 ``wall_seconds`` 之外的字段完全相同；
训练到一半停下、在新进程中用 ``resume=True`` 继续，在 CPU 上结果与一次跑完相同（``tests/test_resume.py``）。
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from s4lab.data import eval_windows, get_batch
from s4lab.models import MODEL_NAMES, CharLM, LMConfig, build_model, count_parameters, parameter_groups
from s4lab.runtime import default_device
from s4lab.checkpoints import (  # noqa: F401  （load_checkpoint 等名字仍可从 s4lab.train 导入）
    CHECKPOINT_FORMAT,
    RESUMABLE_CHANGES,
    CheckpointError,
    _atomic_copy,
    _atomic_save,
    _atomic_write_text,
    _newest_resumable,
    check_compatible,
    checkpoint_dict,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint,
)

MODEL_LABELS = {"s4d": "S4D", "transformer": "Transformer"}



@dataclass
class TrainConfig:
    """一次训练的超参数。步数、批大小等都以“步”为单位；学习率是峰值学习率。

    ``keep_last`` 是保留的按步编号的检查点个数，``last.pt`` 与 ``best.pt`` 另外保存。
    """

    batch_size: int = 32
    max_steps: int = 1000
    lr: float = 2e-3
    ssm_lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_max_windows: int | None = None
    log_interval: int = 10
    seed: int = 0
    keep_last: int = 3

    def __post_init__(self):
        for name in ("batch_size", "max_steps", "eval_interval", "log_interval", "keep_last"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name}={value!r} 无效：必须是 ≥ 1 的整数。")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps={self.warmup_steps!r} 无效：必须 ≥ 0。")
        for name in ("lr", "ssm_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig.{name}={value!r} 无效：学习率必须是有限的正数，例如 1e-3。")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio!r} 无效：必须在 [0, 1] 内。")
        if self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError(
                f"weight_decay={self.weight_decay!r} 必须 ≥ 0，grad_clip={self.grad_clip!r} 必须 > 0。"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class NonFiniteLossError(FloatingPointError):
    """训练损失或梯度范数不是有限数；``step`` 是出错的步（从 1 开始）。"""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class TrainingInterrupted(KeyboardInterrupt):
    """收到 Ctrl-C（SIGINT）后，在一步结束时保存了检查点并停止；``step`` 与 ``checkpoint`` 记录保存的位置。"""

    def __init__(self, message: str, step: int, checkpoint: Path):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


def lr_factor(step: int, config: TrainConfig) -> float:
    """第 ``step`` 步（从 0 开始）的学习率倍数：线性预热到 1，再余弦衰减到 ``min_lr_ratio``。"""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_steps = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine


@torch.no_grad()
def evaluate_loss(model: CharLM, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> float:
    """在固定的评估窗口上求平均交叉熵（nats/字符）。在 eval 模式下计算，结束后恢复原来的模式。"""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)  # (b, L)
            yb = y[start : start + batch_size].to(device)  # (b, L)
            logits = model(xb)  # (b, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), yb.flatten(), reduction="sum")
            total += loss.item()
            count += yb.numel()
    finally:
        model.train(was_training)
    return total / count


# ---------------------------------------------------------------------------
# 训练过程中的辅助：中断信号、损失曲线、指标文件
# ---------------------------------------------------------------------------


class _InterruptFlag:
    """训练期间接管 SIGINT：第一次 Ctrl-C 只做标记，训练循环在这一步结束后保存检查点再退出；
    第二次 Ctrl-C 立即抛出 KeyboardInterrupt（不保存）。只在主线程中接管，退出时恢复原来的处理函数。
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\n收到中断信号：这一步结束后保存检查点并退出（再按一次 Ctrl-C 立即退出，不保存）。", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def plot_loss_curve(rows: list[dict], path: Path, title: str) -> None:
    """把 ``metrics.jsonl`` 的行画成损失曲线（中文标注）并原子地写成 PNG。

    用 Figure 与 Agg 画布而不经过 pyplot，所以在笔记本里调用也不会改变当前的后端与图形。
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from s4lab.plotting import setup_chinese_font

    setup_chinese_font()
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], alpha=0.5, linewidth=1, label="训练损失")
    val = [r for r in rows if r["val_loss"] is not None]
    ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="验证损失")
    ax.set_xlabel("训练步数")
    ax.set_ylabel("交叉熵（nats/字符）")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> list[dict]:
    """只保留 ``step`` 及之前的行（检查点之后记下的行在恢复时会重新产生），返回保留的行。"""
    rows = read_metrics(path) if path.is_file() else []
    kept = [r for r in rows if r["step"] <= step]
    _atomic_write_text("".join(json.dumps(r) + "\n" for r in kept), path)
    return kept


# ---------------------------------------------------------------------------
# 训练
# ---------------------------------------------------------------------------


def train(
    model_name: str,
    lm_config: LMConfig,
    train_config: TrainConfig,
    dataset,
    out_dir,
    device=None,
    progress: bool = True,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    run_config: dict | None = None,
) -> dict:
    """训练一个模型并把指标与检查点写入 ``out_dir``，返回结果摘要。

    ``dataset`` 是 ``s4lab.data.CharDataset``（需要 ``train``、``val`` 两个编码后的张量与 ``vocab``）。
    ``out_dir`` 若已含有 ``metrics.jsonl`` 则拒绝运行，以免覆盖之前的结果，除非 ``resume=True``：
    那时从最新的检查点恢复模型、优化器、学习率日程的位置、取批次的随机数生成器与全局随机数状态，
    继续训练到 ``max_steps``。``stop_at`` 让训练在这一步保存检查点后停下（之后可以恢复）。
    ``run_config`` 是命令行解析后的完整配置，开始（或恢复）时写入 ``config.yaml``。

    损失或梯度不是有限数时抛出 :class:`NonFiniteLossError`，不写新的检查点；
    Ctrl-C 时在当前这一步结束后保存检查点，再抛出 :class:`TrainingInterrupted`。
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"未知的模型名 {model_name!r}：可选 {'、'.join(MODEL_NAMES)}。")
    if len(dataset.vocab) != lm_config.vocab_size:
        raise ValueError(
            f"词表大小 {len(dataset.vocab)} 与 LMConfig.vocab_size={lm_config.vocab_size} 不一致："
            "请把 vocab_size 设为 len(dataset.vocab)（命令行：--set lm.vocab_size=…）。"
        )
    end_step = train_config.max_steps if stop_at is None else stop_at
    if isinstance(end_step, bool) or not isinstance(end_step, int) or not 1 <= end_step <= train_config.max_steps:
        raise ValueError(f"stop_at={stop_at!r} 无效：必须是 1 到 max_steps={train_config.max_steps} 之间的整数。")
    out_dir = Path(out_dir)
    metrics_path = out_dir / "metrics.jsonl"
    checkpoint = None
    if resume:
        if not out_dir.is_dir():
            raise FileNotFoundError(f"运行目录 {out_dir} 不存在，无法恢复：请检查路径，或去掉 --resume 从头训练。")
        checkpoint, checkpoint_path = _newest_resumable(out_dir)
        check_compatible(checkpoint, checkpoint_path, model_name, lm_config, train_config, dataset.vocab.chars)
        saved_max = checkpoint["train_config"].get("max_steps")
        if saved_max != train_config.max_steps:
            print(
                f"警告：max_steps 从 {saved_max} 改为 {train_config.max_steps}，"
                "学习率日程按新的总步数重新计算，恢复后的学习率会与原计划不同。",
                file=sys.stderr,
            )
        if checkpoint["step"] > end_step:
            raise ValueError(
                f"检查点 {checkpoint_path} 已经训练到第 {checkpoint['step']} 步，超过了要停下的第 {end_step} 步。"
            )
    elif metrics_path.exists() or list_checkpoints(out_dir):
        existing = metrics_path if metrics_path.exists() else list_checkpoints(out_dir)[0]
        raise FileExistsError(
            f"{existing} 已存在：为了不覆盖之前的结果，请换一个输出目录、先手动删除这个目录，"
            "或用 resume=True（命令行 --resume）继续这次运行。"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    if run_config is not None:
        import yaml

        _atomic_write_text(yaml.safe_dump(run_config, allow_unicode=True, sort_keys=False), out_dir / "config.yaml")
    device = torch.device(device) if device is not None else default_device()

    torch.manual_seed(train_config.seed)
    model = build_model(model_name, lm_config).to(device)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, train_config.lr, train_config.weight_decay, train_config.ssm_lr),
        betas=(0.9, 0.95),
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator().manual_seed(train_config.seed + 1)
    val_x, val_y = eval_windows(dataset.val, lm_config.seq_len, train_config.eval_max_windows)

    state = {
        "best_val": math.inf,
        "last_val": None,
        "running_loss": 0.0,
        "running_count": 0,
        "train_seconds": 0.0,  # 只计训练步，不含评估与写检查点
        "wall_seconds": 0.0,  # 之前各次进程已经用去的墙钟时间
    }
    start_step = 0
    rows: list[dict] = []
    if checkpoint is not None:
        start_step = checkpoint["step"]
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        trainer = checkpoint["trainer"]
        generator.set_state(trainer["data_generator"])
        torch.set_rng_state(trainer["torch_rng"])
        if device.type == "cuda" and trainer.get("cuda_rng"):
            torch.cuda.set_rng_state_all(trainer["cuda_rng"])
        for key in state:
            state[key] = trainer[key]
        rows = _truncate_metrics(metrics_path, start_step)
        print(f"从 {checkpoint_path}（第 {start_step} 步）恢复训练。", file=sys.stderr)

    label = MODEL_LABELS[model_name]
    tokens_per_step = train_config.batch_size * lm_config.seq_len
    last_saved = None  # (step, path)：这个进程最后写出的检查点
    if checkpoint is not None:
        last_saved = (start_step, checkpoint_path)

    def save(done: int, val_loss) -> Path:
        is_best = val_loss is not None and val_loss < state["best_val"]
        if is_best:
            state["best_val"] = val_loss
        trainer = {
            **state,
            "wall_seconds": state["wall_seconds"] + (time.perf_counter() - start),
            "data_generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": list(torch.cuda.get_rng_state_all()) if device.type == "cuda" else [],
        }
        ckpt = checkpoint_dict(
            model_name, model, optimizer, done, lm_config, train_config, dataset.vocab.chars, val_loss, trainer
        )
        step_path = out_dir / f"step-{done:07d}.pt"
        _atomic_save(ckpt, step_path)
        _atomic_copy(step_path, out_dir / "last.pt")
        if is_best:
            _atomic_copy(step_path, out_dir / "best.pt")
        for old in list_checkpoints(out_dir)[1 + train_config.keep_last :]:
            old.unlink(missing_ok=True)
        return step_path

    start = time.perf_counter()
    bar = tqdm(
        total=end_step,
        initial=start_step,
        desc=f"训练 {label}",
        unit="步",
        disable=not progress,
        file=sys.stderr,
        mininterval=5.0,
        ascii=True,
    )
    model.train()
    with _InterruptFlag() as interrupt, metrics_path.open("a", encoding="utf-8") as metrics_file:
        for step in range(start_step, end_step):
            done = step + 1
            factor = lr_factor(step, train_config)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            step_start = time.perf_counter()
            x, y = get_batch(dataset.train, train_config.batch_size, lm_config.seq_len, generator)
            x, y = x.to(device), y.to(device)
            logits = model(x)  # (B, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            if not torch.isfinite(loss):
                raise NonFiniteLossError(_non_finite_message(done, "训练损失", loss.item(), last_saved), done)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
            if not torch.isfinite(grad_norm):
                # 在 optimizer.step() 之前停下：参数与优化器状态都还没有被非有限的梯度污染。
                raise NonFiniteLossError(_non_finite_message(done, "梯度范数", grad_norm.item(), last_saved), done)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            state["train_seconds"] += time.perf_counter() - step_start
            state["running_loss"] += loss.item()
            state["running_count"] += 1
            bar.update(1)

            is_eval = done % train_config.eval_interval == 0 or done == train_config.max_steps
            val_loss = None
            if done % train_config.log_interval == 0 or is_eval:
                if is_eval:
                    val_loss = evaluate_loss(model, val_x, val_y)
                    state["last_val"] = val_loss
                train_loss = state["running_loss"] / state["running_count"]
                record = {
                    "step": done,
                    "tokens": done * tokens_per_step,
                    "wall_seconds": round(state["wall_seconds"] + time.perf_counter() - start, 3),
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "lr": train_config.lr * factor,
                }
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                rows.append(record)
                state["running_loss"], state["running_count"] = 0.0, 0
                bar.set_postfix_str(
                    f"损失={train_loss:.3f} 词元/秒={(done - start_step) * tokens_per_step / max(state['train_seconds'], 1e-9):.0f}"
                )
            if is_eval or done == end_step or interrupt.requested:
                if is_eval:
                    plot_loss_curve(rows, out_dir / "loss_curve.png", f"{label} 的损失曲线")
                last_saved = (done, save(done, val_loss))
            if interrupt.requested:
                bar.close()
                raise TrainingInterrupted(
                    f"训练在第 {done} 步被中断，检查点已保存到 {last_saved[1]}；"
                    f"用同一个配置加 --resume（或 resume=True）可以从这里继续。",
                    done,
                    last_saved[1],
                )
    bar.close()

    done = end_step
    tokens = done * tokens_per_step
    summary = {
        "model_name": model_name,
        "parameters": count_parameters(model),
        "steps": done,
        "tokens": tokens,
        "final_val_loss": state["last_val"],
        "best_val_loss": state["best_val"],
        "train_seconds": state["train_seconds"],
        "wall_seconds": state["wall_seconds"] + time.perf_counter() - start,
        "tokens_per_second": tokens / max(state["train_seconds"], 1e-9),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    _atomic_write_text(json.dumps(summary, ensure_ascii=False, indent=2), out_dir / "summary.json")
    _atomic_write_text(
        json.dumps({"model_name": model_name, "lm_config": lm_config.to_dict(),
                    "train_config": train_config.to_dict()}, ensure_ascii=False, indent=2),
        out_dir / "config.json",
    )
    return {**summary, "model": model, "out_dir": str(out_dir)}


def _non_finite_message(step: int, what: str, value: float, last_saved) -> str:
    if last_saved is None:
        kept = "这次运行还没有保存过检查点"
    else:
        kept = f"最后一个正常的检查点是 {last_saved[1]}（第 {last_saved[0]} 步），没有被覆盖"
    return (
        f"第 {step} 步的{what}不是有限数（{value}），训练已停止。{kept}。"
        "请降低学习率（train.lr、train.ssm_lr）或检查数据后，用 --resume 从检查点继续或重新开始。"
    )


def read_metrics(path) -> list[dict]:
    """读取 ``metrics.jsonl``。"""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"指标文件 {path} 不存在：请先运行训练那一章（10_training）或 s4lab train。")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
