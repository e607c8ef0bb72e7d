"""测试共用的夹具：真实语料的位置。CI 通过环境变量 S4LAB_DATA 指向 ../shared/data/tinyshakespeare.txt。"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FALLBACK_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="session")
def corpus_file() -> Path:
    """真实语料的路径：先看 S4LAB_DATA，再看仓库上一级的 shared/data；都没有时跳过。

    设置了 S4LAB_DATA 却指向不存在的文件是配置错误，测试失败而不是跳过。
    """
    env = os.environ.get("S4LAB_DATA", "").strip()
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"S4LAB_DATA={env} 不是一个文件：请改正这个环境变量。")
        return path
    if FALLBACK_CORPUS.is_file():
        return FALLBACK_CORPUS
    pytest.skip(f"没有真实语料：请把 S4LAB_DATA 设为 tinyshakespeare.txt 的路径（也没有找到 {FALLBACK_CORPUS}）。")
