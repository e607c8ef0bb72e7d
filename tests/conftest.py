"""测试共用的夹具：真实语料的位置。CI 通过环境变量 S4LAB_DATA 指向 ../shared/data/tinyshakespeare.txt。"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_path() -> Path | None:
    """返回真实语料的路径：优先 S4LAB_DATA，其次仓库旁边的 ../shared/data/tinyshakespeare.txt。"""
    value = os.environ.get("S4LAB_DATA")
    if value and Path(value).is_file():
        return Path(value)
    fallback = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    return fallback if fallback.is_file() else None


@pytest.fixture(scope="session")
def corpus_file() -> Path:
    path = corpus_path()
    if path is None:
        pytest.skip("没有找到 TinyShakespeare：请把环境变量 S4LAB_DATA 设为 tinyshakespeare.txt 的路径。")
    return path
