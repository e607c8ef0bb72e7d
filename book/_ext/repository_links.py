"""本书的 Sphinx 扩展：按仓库地址生成 Colab/Binder 启动按钮与 GitHub 按钮。

地址从哪里来见 ``s4lab.repository``：环境变量 ``S4LAB_REPOSITORY_URL``，否则是 git 的 ``origin``，
只要它在 GitHub 上。找到时，笔记本页面右上角出现火箭按钮（Binder 与 Colab），页眉出现指向仓库的
GitHub 按钮；找不到时（例如从本地路径克隆的副本）不生成这些按钮，构建日志里有一行说明。

不让任何链接指向别人的仓库：Jupyter Book 1 在没有配置仓库时默认填入它自己的仓库地址，这里去掉；
sphinx-thebe 在每页写一段内联配置，其中的 Binder 仓库默认是一个示例仓库。本书不启用 Thebe，
有仓库地址时把它换成本书的仓库，没有时删去这段配置。
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError
from sphinx.util import logging

from s4lab.repository import REPOSITORY_ENV, find_repository, theme_options

THEBE_CONFIG_MARK = "text/x-thebe-config"

logger = logging.getLogger(__name__)


def configure(app: Sphinx, config: Config) -> None:
    """按找到的仓库地址设置主题选项，或者去掉 Jupyter Book 填入的默认地址。"""
    try:
        repository = find_repository(app.srcdir)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    options = config.html_theme_options
    if repository is None:
        for key in ("repository_url", "repository_branch", "launch_buttons", "use_repository_button"):
            options.pop(key, None)
        logger.info(
            f"没有找到 GitHub 上的仓库地址（环境变量 {REPOSITORY_ENV} 或 git 的 origin），不生成 Colab/Binder 启动按钮。"
        )
        return
    options.update(theme_options(repository))
    url, branch = repository
    config.thebe_config = {**(config.thebe_config or {}), "repository_url": url, "repository_branch": branch}
    logger.info(f"启动按钮指向 {url} 的 {branch} 分支。")


def drop_thebe_config(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """没有仓库地址时，删去 sphinx-thebe 写进页面、指向示例仓库的内联配置。"""
    if app.config.html_theme_options.get("repository_url"):
        return
    for node in list(doctree.findall(nodes.raw)):
        if THEBE_CONFIG_MARK in node.astext():
            node.parent.remove(node)


def setup(app: Sphinx) -> dict:
    # priority 900：在 Jupyter Book 把 _config.yml 转成主题选项之后、在 sphinx-thebe 写入配置之后运行。
    app.connect("config-inited", configure, priority=900)
    app.connect("doctree-resolved", drop_thebe_config, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
