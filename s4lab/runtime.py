"""运行环境：快速模式开关与计算设备的选择。"""

from __future__ import annotations

import os

import torch

QUICK_ENV = "S4LAB_QUICK"


def is_quick() -> bool:
    """返回是否处于快速模式（环境变量 ``S4LAB_QUICK=1``，供 CI 使用）。

    快速模式只缩小工作量（步数、样本数），走的仍是同一条代码路径。
    """
    value = os.environ.get(QUICK_ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"环境变量 {QUICK_ENV}={value!r} 无效：请设为 1（快速模式）或 0（完整模式）。")
    return value == "1"


def default_device() -> torch.device:
    """有 CUDA 时返回 GPU，否则返回 CPU。"""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


RUNS_ENV = "S4LAB_RUNS"


def display_path(path) -> str:
    """供打印的路径：在书的根目录（含 ``_toc.yml``）之内时写成相对路径，否则原样返回。"""
    from pathlib import Path

    path = Path(path).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            try:
                return path.relative_to(folder).as_posix()
            except ValueError:
                break
    return str(path)


def runs_dir() -> "os.PathLike":
    """训练输出的根目录：环境变量 ``S4LAB_RUNS``，否则是书的根目录（含 ``_toc.yml``）下的 ``runs/``。"""
    from pathlib import Path

    value = os.environ.get(RUNS_ENV)
    if value:
        return Path(value)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "runs"
    return here / "runs"
