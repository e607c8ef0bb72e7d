"""Colab/Binder 启动按钮：仓库地址从哪里来，找不到时不留下指向别人仓库的链接，构建出的链接指向正确的笔记本。"""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils import nodes
from docutils.utils import new_document
from sphinx.errors import ConfigError

from s4lab import notebooks, repository

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "book" / "_ext"))

import repository_links  # noqa: E402


@pytest.mark.parametrize(
    "remote",
    [
        "https://github.com/example-org/s4d-book",
        "https://github.com/example-org/s4d-book.git",
        "https://github.com/example-org/s4d-book/",
        "git@github.com:example-org/s4d-book.git",
        "ssh://git@github.com/example-org/s4d-book.git",
        "  https://github.com/example-org/s4d-book\n",
    ],
)
def test_github_remotes_are_normalised(remote):
    assert repository.github_url(remote) == "https://github.com/example-org/s4d-book"


@pytest.mark.parametrize(
    "remote",
    [
        "/work/main",
        "file:///work/main",
        "https://gitlab.com/example-org/s4d-book.git",
        "https://github.com/example-org",
        "https://github.com/example-org/s4d-book/tree/main",
        "http://github.com/example-org/s4d-book",
        "https://github.com/example-org/..",
        "https://github.com/example-org/.",
        "",
    ],
)
def test_other_remotes_give_none(remote):
    assert repository.github_url(remote) is None


def _git_repo(path, origin=None, branch="trunk"):
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", branch, str(path)], check=True)
    if origin is not None:
        subprocess.run(["git", "-C", str(path), "remote", "add", "origin", origin], check=True)
    return path


def test_github_origin_gives_url_branch(tmp_path):
    repo = _git_repo(tmp_path / "book", origin="git@github.com:someone/book.git")
    assert repository.find_repository(repo, environ={}) == ("https://github.com/someone/book", "trunk")


def test_local_origin_gives_nothing(tmp_path):
    local = _git_repo(tmp_path / "clone", origin="/srv/git/book")
    assert repository.find_repository(local, environ={}) is None
    no_origin = _git_repo(tmp_path / "fresh")
    assert repository.find_repository(no_origin, environ={}) is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert repository.find_repository(plain, environ={}) is None


def test_environment_overrides_origin_and_branch(tmp_path):
    repo = _git_repo(tmp_path / "book", origin="/srv/git/book")
    environ = {
        repository.REPOSITORY_ENV: "https://github.com/org/s4lab.git",
        repository.BRANCH_ENV: "release",
    }
    assert repository.find_repository(repo, environ=environ) == ("https://github.com/org/s4lab", "release")


def test_non_github_environment_url_rejected(tmp_path):
    environ = {repository.REPOSITORY_ENV: "https://gitlab.com/org/s4lab"}
    with pytest.raises(ValueError) as error:
        repository.find_repository(tmp_path, environ=environ)
    message = str(error.value)
    assert "https://gitlab.com/org/s4lab" in message
    assert repository.BRANCH_ENV in message
    assert "https://github.com/<用户>/<仓库>" in message


def _configure(tmp_path, monkeypatch, origin):
    repo = _git_repo(tmp_path / "book", origin=origin, branch="main")
    monkeypatch.delenv(repository.REPOSITORY_ENV, raising=False)
    monkeypatch.delenv(repository.BRANCH_ENV, raising=False)
    # Jupyter Book 1 在没有配置仓库时填入的默认值。
    options = {"repository_url": "https://github.com/executablebooks/jupyter-book", "repository_branch": "master"}
    config = SimpleNamespace(html_theme_options=options, thebe_config={})
    repository_links.configure(SimpleNamespace(srcdir=str(repo)), config)
    return config


def test_default_repository_url_removed(tmp_path, monkeypatch):
    options = _configure(tmp_path, monkeypatch, origin="/srv/git/book").html_theme_options
    assert "repository_url" not in options
    assert "launch_buttons" not in options


def test_launch_buttons_configured(tmp_path, monkeypatch):
    config = _configure(tmp_path, monkeypatch, origin="https://github.com/someone/book.git")
    options = config.html_theme_options
    assert config.thebe_config["repository_url"] == "https://github.com/someone/book"
    assert options["repository_url"] == "https://github.com/someone/book"
    assert options["repository_branch"] == "main"
    assert options["launch_buttons"]["colab_url"] == repository.COLAB_URL
    assert options["launch_buttons"]["binderhub_url"] == repository.BINDER_URL


def test_bad_environment_url_is_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv(repository.REPOSITORY_ENV, "https://gitlab.com/org/s4lab")
    config = SimpleNamespace(html_theme_options={}, thebe_config={})
    with pytest.raises(ConfigError):
        repository_links.configure(SimpleNamespace(srcdir=str(tmp_path)), config)


def test_main_job_rejects_bad_url_before_running(monkeypatch):
    monkeypatch.setenv(repository.REPOSITORY_ENV, "https://gitlab.com/org/s4lab")
    with pytest.raises(ValueError) as error:
        notebooks.run_main_job(REPO_ROOT, only=["no_such_chapter"])
    assert repository.REPOSITORY_ENV in str(error.value)


def _page_with_thebe_config():
    document = new_document("page")
    document += nodes.paragraph(text="正文")
    document += nodes.raw(text='<script type="text/x-thebe-config">{binderOptions: {repo: "x/y"}}</script>', format="html")
    return document


def test_thebe_config_dropped_without_repository():
    document = _page_with_thebe_config()
    app = SimpleNamespace(config=SimpleNamespace(html_theme_options={}))
    repository_links.drop_thebe_config(app, document, "page")
    assert "x-thebe-config" not in document.astext()
    assert "正文" in document.astext()


def test_thebe_config_kept_with_repository():
    document = _page_with_thebe_config()
    app = SimpleNamespace(config=SimpleNamespace(html_theme_options={"repository_url": "https://github.com/o/r"}))
    repository_links.drop_thebe_config(app, document, "page")
    assert "x-thebe-config" in document.astext()


def test_built_pages_link_chapter_notebooks(tmp_path, monkeypatch):
    """真实构建一次（用已提交的输出）：每章页面的 Colab 与 Binder 链接指向仓库里同名的 .ipynb。"""
    monkeypatch.setenv(repository.REPOSITORY_ENV, "git@github.com:example-org/s4d-book.git")
    monkeypatch.setenv(repository.BRANCH_ENV, "main")
    command = [*notebooks.jupyter_book_command(), "build", str(REPO_ROOT), "--all", "--path-output", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    html_dir = tmp_path / "_build" / "html"
    for py_path in notebooks.list_notebooks(REPO_ROOT):
        page = (html_dir / "notebooks" / f"{py_path.stem}.html").read_text(encoding="utf-8")
        notebook = f"notebooks/{py_path.stem}.ipynb"
        colab = f"https://colab.research.google.com/github/example-org/s4d-book/blob/main/{notebook}"
        binder = f"https://mybinder.org/v2/gh/example-org/s4d-book/main?urlpath=lab/tree/{notebook}"
        assert colab in page
        assert binder in page
        assert 'repo: "example-org/s4d-book"' in page
        assert "binder-examples" not in page
    # 非笔记本页面没有启动按钮，但有仓库按钮。
    preface = (html_dir / "book" / "preface.html").read_text(encoding="utf-8")
    assert "colab.research.google.com" not in preface
    assert 'href="https://github.com/example-org/s4d-book"' in preface
