"""命令行子命令 ``s4lab train`` 与 ``s4lab sample``。

``add_subcommands(subparsers)`` 把两个子命令加到 ``s4lab`` 的解析器上；也可以直接运行
``python -m s4lab.train_cli train ...``。退出码：0 成功，1 运行时出错（数据、检查点、非有限损失），
2 配置或参数无效（此时什么也没写），130 被 Ctrl-C 中断。
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def _checked_number(convert, type_name: str, is_valid, requirement: str):
    """返回给 argparse 的 ``type`` 用的函数：先用 ``convert`` 把参数文本转成数，再要求 ``is_valid(数)`` 成立。

    转换失败时消息是“'x' 不是{type_name}”，检查不通过时是“x 无效：{requirement}”，x 是命令行上写的原文。
    """

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} 不是{type_name}") from None
        if not is_valid(value):
            raise argparse.ArgumentTypeError(f"{text} 无效：{requirement}")
        return value

    return parse


_positive_int = _checked_number(int, "整数", lambda value: value >= 1, "必须 ≥ 1")
_non_negative_int = _checked_number(int, "整数", lambda value: value >= 0, "必须 ≥ 0")
_temperature = _checked_number(
    float, "数", lambda value: math.isfinite(value) and value >= 0, "必须是 ≥ 0 的有限数（0 表示贪心解码）"
)


class DeviceOptionError(ValueError):
    """``--device`` 的值无效，或者这台机器上没有它要的设备。"""


def parse_device_option(text: str):
    """把 ``--device`` 的值（auto、cpu、cuda 或 cuda:0 这样的写法）转成 ``torch.device``。

    auto 在有 CUDA 时选 GPU。写法无效或这台机器没有 CUDA 时抛出 :class:`DeviceOptionError`，消息是中文。
    """
    import torch

    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceOptionError(f"--device {text!r} 无效：允许 auto、cpu、cuda 或 cuda:0 这样的写法。") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceOptionError(f"--device {text!r} 无效：允许 auto、cpu、cuda 或 cuda:0 这样的写法。")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceOptionError(f"--device {text!r} 无效：这台机器上没有可用的 CUDA 设备。")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceOptionError(
            f"--device {text!r} 无效：这台机器只有 {torch.cuda.device_count()} 个 CUDA 设备，编号从 0 开始。"
        )
    return device


def _error(message: str, code: int) -> int:
    print(f"错误：{message}", file=sys.stderr)
    return code


def cmd_train(args) -> int:
    """按配置训练一个模型；``--resume`` 时从运行目录中最新的检查点继续。"""
    try:
        return _train(args)
    except KeyboardInterrupt:
        # 训练循环之外（读取数据、建模型时）的 Ctrl-C：还没有开始写检查点。
        print("\n已中断，没有保存新的检查点；运行目录中已有的检查点不受影响。", file=sys.stderr)
        return EXIT_INTERRUPTED


def _train(args) -> int:
    from s4lab.config import ConfigError, load_config, load_dataset
    from s4lab.data import DataError
    from s4lab.train import CheckpointError, NonFiniteLossError, TrainingInterrupted, train

    overrides = list(args.set or [])
    if args.out_dir is not None:
        overrides.append(f"run.out_dir={args.out_dir}")
    config_path = args.config
    if config_path is None:
        if not (args.resume and args.out_dir is not None):
            return _error("需要 --config 配置文件；只有同时给出 --resume 与 --out-dir 时，才会读取运行目录里的 config.yaml。", EXIT_CONFIG)
        config_path = Path(args.out_dir) / "config.yaml"
        if not Path(args.out_dir).is_dir():
            return _error(
                f"运行目录 {args.out_dir} 不存在，没有可以恢复的运行：请检查 --out-dir，或去掉 --resume 并用 --config 从头训练。",
                EXIT_ERROR,
            )
    try:
        config = load_config(config_path, overrides)
    except ConfigError as error:
        return _error(str(error), EXIT_CONFIG)
    if args.stop_at is not None and args.stop_at > config.train.max_steps:
        return _error(
            f"--stop-at {args.stop_at} 无效：必须在 1 到 train.max_steps = {config.train.max_steps} 之间。", EXIT_CONFIG
        )
    out_dir = Path(config.run.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        return _error(f"run.out_dir = {str(out_dir)!r} 无效：这个路径是一个文件，不是目录。请换一个输出目录（--out-dir）。", EXIT_CONFIG)
    if not out_dir.exists():
        try:
            out_dir.mkdir(parents=True)
            out_dir.rmdir()  # 只检查能否创建；真正的目录由训练循环创建
        except OSError as error:
            return _error(
                f"run.out_dir = {str(out_dir)!r} 无效：无法创建这个目录（{error.strerror}）。请换一个可写的输出目录（--out-dir）。",
                EXIT_CONFIG,
            )
    if args.resume and not (out_dir / "metrics.jsonl").is_file():
        return _error(f"运行目录 {out_dir} 中没有 metrics.jsonl，不是一次可以恢复的运行：请检查 run.out_dir，或去掉 --resume。", EXIT_ERROR)

    if args.resume:
        try:
            completed = _completed_run_message(config, out_dir)
        except CheckpointError as error:
            return _error(str(error), EXIT_ERROR)
        if completed is not None:
            print(completed)
            return 0

    try:
        dataset = load_dataset(config.data)
    except (DataError, TypeError) as error:
        return _error(str(error), EXIT_ERROR)
    device = config.resolve_device()
    print(f"模型 {config.model}，设备 {device}，输出目录 {out_dir}", file=sys.stderr)

    try:
        result = train(
            config.model,
            config.lm,
            config.train,
            dataset,
            out_dir,
            device=device,
            progress=not args.no_progress,
            resume=args.resume,
            stop_at=args.stop_at,
            run_config=config.to_dict(),
        )
    except TrainingInterrupted as interrupted:
        print(f"\n{interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NonFiniteLossError as error:
        return _error(str(error), EXIT_ERROR)
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as error:
        return _error(str(error), EXIT_ERROR)

    final = result["final_val_loss"]
    final_text = f"{final:.4f} nats/字符" if final is not None else "还没有评估过"
    print(
        f"训练到第 {result['steps']} 步，最后一次验证损失：{final_text}；"
        f"检查点与指标在 {out_dir}（last.pt、best.pt、metrics.jsonl、loss_curve.png）。"
    )
    if result["steps"] < config.train.max_steps:
        print(f"还剩 {config.train.max_steps - result['steps']} 步：用 s4lab train --resume --out-dir {out_dir} 继续。")
    return 0


def _completed_run_message(config, out_dir: Path) -> str | None:
    """运行目录里最新的检查点已经训练到 ``train.max_steps`` 时返回一行说明，否则返回 None（照常恢复训练）。

    检查点与配置不兼容时抛出 ``CheckpointError``，与真正恢复训练时一样。
    """
    from s4lab.checkpoints import _newest_resumable, check_compatible

    checkpoint, path = _newest_resumable(out_dir)
    step = checkpoint["step"]
    max_steps = config.train.max_steps
    if step != max_steps:
        return None
    # 词表要读完语料才知道，所以这里不比较词表：不会再训练，也就不会写出词表不符的检查点。
    check_compatible(checkpoint, path, config.model, config.lm, config.train, checkpoint.get("vocab", ""))
    return (
        f"运行 {out_dir} 已经训练完成（第 {step} 步，共 {max_steps} 步），没有可以继续的步数；"
        f"检查点与指标在 {out_dir}（last.pt、best.pt、metrics.jsonl、loss_curve.png）。"
        f"要多训练一些步，请用 --set train.max_steps=… 加大总步数后再 --resume。"
    )


def cmd_sample(args) -> int:
    """读取检查点，在提示文本后续写并打印。"""
    import torch

    from s4lab.data import CharVocab, DataError
    from s4lab.sampling import generate
    from s4lab.train import CheckpointError, load_checkpoint

    if not args.prompt:
        return _error("--prompt 不能为空：生成需要至少一个字符作为开头，例如 --prompt 'ROMEO:'。", EXIT_CONFIG)
    try:
        model, checkpoint = load_checkpoint(args.checkpoint)
        vocab = CharVocab(checkpoint["vocab"])
    except (CheckpointError, DataError, FileNotFoundError) as error:
        return _error(str(error), EXIT_ERROR)
    unknown = sorted(set(args.prompt) - set(vocab.chars))
    if unknown:
        shown = "、".join(repr(c) for c in unknown[:10])
        return _error(
            f"--prompt 中有 {len(unknown)} 种字符不在检查点的词表里：{shown}。"
            f"模型只认识训练语料中出现过的 {len(vocab)} 个字符，请去掉或替换这些字符。",
            EXIT_ERROR,
        )
    prompt = vocab.encode(args.prompt)  # (T,)
    try:
        device = parse_device_option(args.device)
    except DeviceOptionError as error:
        return _error(str(error), EXIT_CONFIG)
    model.to(device)
    generator = torch.Generator().manual_seed(args.seed)
    out = generate(
        model, prompt.unsqueeze(0), args.max_new_tokens, args.temperature, args.top_k, generator,
        use_cache=not args.no_cache,
    )  # (1, T + max_new_tokens)
    print(vocab.decode(out[0].cpu()))
    return 0


def add_subcommands(subparsers) -> None:
    """把 ``train`` 与 ``sample`` 两个子命令加到 ``subparsers``（``add_subparsers()`` 的返回值）上。"""
    train = subparsers.add_parser("train", help="按 YAML 配置训练一个模型（可中断、可恢复）")
    train.add_argument("--config", type=Path, default=None, help="YAML 配置文件，例如 configs/s4d_cpu_small.yaml")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="覆盖配置中的一个值，可重复，例如 --set train.max_steps=2000 --set lm.dropout=0.1",
    )
    train.add_argument("--out-dir", default=None, help="运行目录（等同于 --set run.out_dir=…）")
    train.add_argument("--resume", action="store_true", help="从运行目录中最新的检查点继续训练")
    train.add_argument(
        "--stop-at", type=_positive_int, default=None, metavar="STEP",
        help="训练到第 STEP 步时保存检查点并停下，之后可用 --resume 继续",
    )
    train.add_argument("--no-progress", action="store_true", help="不显示进度条")
    train.set_defaults(func=cmd_train)

    sample = subparsers.add_parser("sample", help="读取检查点，在提示文本后续写字符")
    sample.add_argument("--checkpoint", type=Path, required=True, help="检查点文件，例如 runs/cli/s4d/best.pt")
    sample.add_argument("--prompt", required=True, help="开头的文本，每个字符都必须在训练语料的词表里")
    sample.add_argument("--max-new-tokens", type=_non_negative_int, default=500, help="生成的字符数（默认 500）")
    sample.add_argument("--temperature", type=_temperature, default=0.8, help="温度，0 为贪心解码（默认 0.8）")
    sample.add_argument("--top-k", type=_positive_int, default=None, help="只在概率最大的 k 个字符中抽样")
    sample.add_argument("--seed", type=int, default=0, help="抽样的随机种子（默认 0）")
    sample.add_argument("--device", default="auto", help="auto、cpu 或 cuda（默认 auto）")
    sample.add_argument(
        "--no-cache", action="store_true",
        help="每生成一个字符都重算整个上下文，不用 S4D 的递推模式或 Transformer 的 KV 缓存（用于对照）",
    )
    sample.set_defaults(func=cmd_sample)


def main(argv=None) -> int:
    """单独运行这两个子命令：``python -m s4lab.train_cli train|sample ...``。"""
    # 在函数里导入，因为 s4lab.cli 在模块顶层导入本模块。
    from s4lab.cli import ChineseArgumentParser

    parser = ChineseArgumentParser(prog="s4lab", description="训练与采样命令。")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
