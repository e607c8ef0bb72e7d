"""本书仓库的 GitHub 地址：Colab/Binder 启动按钮用它生成链接（见 ``book/_ext/repository_links.py``）。

按下面的顺序找：

1. 环境变量 ``S4LAB_REPOSITORY_URL``（例如 ``https://github.com/<用户>/<仓库>``），分支取
   ``S4LAB_REPOSITORY_BRANCH``，没有设置时取当前检出的分支；
2. 书的源目录所在 git 仓库的 ``origin`` 远程地址，只要它指向 GitHub（https 或 ssh 形式都可以）。

``s4lab book`` 在执行任何章节之前就调用 ``find_repository``，所以写错的环境变量立刻报错，而不是在构建时才报。
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPOSITORY_ENV = "S4LAB_REPOSITORY_URL"
BRANCH_ENV = "S4LAB_REPOSITORY_BRANCH"
DEFAULT_BRANCH = "main"
BINDER_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
# https://github.com/org/repo(.git)、git@github.com:org/repo(.git)、ssh://git@github.com/org/repo(.git)
GITHUB_REMOTE = re.compile(
    r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$"
)


def github_url(remote: str) -> str | None:
    """把 GitHub 的远程地址规范成 ``https://github.com/<用户>/<仓库>``；不是 GitHub 地址时返回 None。"""
    match = GITHUB_REMOTE.match(remote.strip())
    # GitHub 不允许名为 . 或 .. 的仓库。
    if match is None or match["name"] in (".", ".."):
        return None
    return f"https://github.com/{match['owner']}/{match['name']}"


def _git(source_dir: Path, *args: str) -> str | None:
    """在 ``source_dir`` 里运行一条只读的 git 命令，返回输出；没有 git 或命令失败时返回 None。"""
    try:
        result = subprocess.run(
            ["git", *args], cwd=source_dir, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def find_repository(source_dir, environ=None) -> tuple[str, str] | None:
    """返回 ``(仓库地址, 分支)``；既没有设置 ``S4LAB_REPOSITORY_URL``、``origin`` 也不在 GitHub 上时返回 None。"""
    environ = os.environ if environ is None else environ
    source_dir = Path(source_dir)
    configured = environ.get(REPOSITORY_ENV, "").strip()
    if configured:
        url = github_url(configured)
        if url is None:
            raise ValueError(
                f"{REPOSITORY_ENV}={configured!r} 不是 GitHub 仓库的地址：Colab 只能打开 GitHub 上的笔记本。"
                f"请写成仓库根目录的地址 https://github.com/<用户>/<仓库>（分支用 {BRANCH_ENV} 指定），"
                f"或者删去这个环境变量（那样就不生成启动按钮）。"
            )
    else:
        origin = _git(source_dir, "remote", "get-url", "origin")
        url = github_url(origin) if origin else None
        if url is None:
            return None
    branch = environ.get(BRANCH_ENV, "").strip()
    if not branch:
        # 分离头指针时 symbolic-ref 失败，这时用默认分支。
        branch = _git(source_dir, "symbolic-ref", "--short", "HEAD") or DEFAULT_BRANCH
    return url, branch


def theme_options(repository: tuple[str, str]) -> dict:
    """sphinx-book-theme 生成启动按钮与仓库按钮所需的主题选项。"""
    url, branch = repository
    return {
        "repository_url": url,
        "repository_branch": branch,
        "path_to_docs": "",
        "use_repository_button": True,
        "launch_buttons": {
            "notebook_interface": "jupyterlab",
            "binderhub_url": BINDER_URL,
            "colab_url": COLAB_URL,
        },
    }
