"""运行环境：快速模式开关与计算设备的选择。"""

from __future__ import annotations

import os
from pathlib import Path

import torch

QUICK_ENV = "S4LAB_QUICK"
RUNS_ENV = "S4LAB_RUNS"


def is_quick() -> bool:
    """返回是否处于快速模式（环境变量 ``S4LAB_QUICK=1``，供 CI 使用）。

    快速模式只缩小工作量（步数、样本数），走的仍是同一条代码路径。
    """
    quick_setting = os.environ.get(QUICK_ENV, "0").strip()
    if quick_setting not in ("0", "1", ""):
        raise ValueError(f"环境变量 {QUICK_ENV}={quick_setting!r} 无效：请设为 1（快速模式）或 0（完整模式）。")
    return quick_setting == "1"


def default_device() -> torch.device:
    """有 CUDA 时返回 GPU，否则返回 CPU。"""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _find_book_root() -> Path | None:
    """从当前目录向上找第一个含 ``_toc.yml`` 的目录（书的根目录）。找不到时返回 None。"""
    working_dir = Path.cwd().resolve()
    for folder in (working_dir, *working_dir.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def display_path(path) -> str:
    """供打印的路径：在书的根目录（含 ``_toc.yml``）之内时写成相对路径，否则原样返回。"""
    path = Path(path).resolve()
    book_root = _find_book_root()
    if book_root is not None:
        try:
            return path.relative_to(book_root).as_posix()
        except ValueError:
            pass
    return str(path)


def runs_dir() -> Path:
    """训练输出的根目录：环境变量 ``S4LAB_RUNS``，否则是书的根目录（含 ``_toc.yml``）下的 ``runs/``。

    当前目录不在书里时是当前目录下的 ``runs/``。
    """
    runs_setting = os.environ.get(RUNS_ENV)
    if runs_setting:
        return Path(runs_setting)
    book_root = _find_book_root()
    if book_root is None:
        return Path.cwd().resolve() / "runs"
    return book_root / "runs"
