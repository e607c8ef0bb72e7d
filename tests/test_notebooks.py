"""笔记本新鲜度检查：未执行、错误输出、输入不一致、源码或 s4lab 改动后过期、快速模式输出，都要被发现。"""

import copy
import json
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from s4lab import notebooks

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADER = (REPO_ROOT / "notebooks" / "HEADER.txt").read_text(encoding="utf-8")
SOURCE = HEADER + '\n# %% [markdown]\n# # 小测试\n\n# %%\nprint("你好", 1 + 1)\n'


@pytest.fixture(scope="module")
def executed_book(tmp_path_factory):
    """一本只有一章的小书，在完整模式下真实执行过一次。"""
    root = tmp_path_factory.mktemp("book")
    (root / "_toc.yml").write_text("format: jb-book\nroot: notebooks/01_tiny\n", encoding="utf-8")
    (root / "notebooks").mkdir()
    py_path = root / "notebooks" / "01_tiny.py"
    py_path.write_text(SOURCE, encoding="utf-8")
    notebook, _ = notebooks.execute_notebook(py_path)
    notebooks.write_notebook(notebook, py_path.with_suffix(".ipynb"))
    return root


@pytest.fixture
def book(executed_book, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(executed_book, root)
    return root


def _edit_ipynb(root, edit):
    path = root / "notebooks" / "01_tiny.ipynb"
    notebook = jupytext.read(path)
    edit(notebook)
    jupytext.write(notebook, path, fmt="ipynb")


def test_fresh_notebook_passes(book):
    assert notebooks.check_notebooks(book) == []
    outputs = jupytext.read(book / "notebooks" / "01_tiny.ipynb").cells[1].outputs
    assert "你好 2" in outputs[0]["text"]


def test_edited_source_is_stale(book):
    py_path = book / "notebooks" / "01_tiny.py"
    py_path.write_text(SOURCE.replace("1 + 1", "1 + 2"), encoding="utf-8")
    problems = notebooks.check_notebooks(book)
    assert any("不一致" in p for p in problems)
    assert any("过期" in p for p in problems)


def test_changed_package_is_stale(book, monkeypatch):
    monkeypatch.setattr(notebooks, "package_hash", lambda: "0" * 64)
    assert any("s4lab 包又改过" in p for p in notebooks.check_notebooks(book))


def test_unexecuted_cell_is_reported(book):
    def clear(nb):
        nb.cells[1].execution_count = None
        nb.cells[1].outputs = []

    _edit_ipynb(book, clear)
    assert any("没有执行过" in p for p in notebooks.check_notebooks(book))


def test_error_output_is_reported(book):
    def add_error(nb):
        nb.cells[1].outputs.append(
            nbformat.v4.new_output("error", ename="ValueError", evalue="坏了", traceback=[])
        )

    _edit_ipynb(book, add_error)
    assert any("ValueError" in p for p in notebooks.check_notebooks(book))


def test_quick_mode_output_is_rejected(book):
    def mark_quick(nb):
        record = copy.deepcopy(nb.metadata["s4lab"])
        record["mode"] = "quick"
        nb.metadata["s4lab"] = record

    _edit_ipynb(book, mark_quick)
    assert any("完整模式" in p for p in notebooks.check_notebooks(book))


def test_missing_ipynb_is_reported(book):
    (book / "notebooks" / "01_tiny.ipynb").unlink()
    assert any("缺少配对" in p for p in notebooks.check_notebooks(book))


def test_failed_execution_keeps_committed_ipynb(book):
    ipynb = book / "notebooks" / "01_tiny.ipynb"
    before = ipynb.read_bytes()
    py_path = book / "notebooks" / "01_tiny.py"
    py_path.write_text(SOURCE.replace('print("你好", 1 + 1)', 'raise ValueError("故意出错")'), encoding="utf-8")
    with pytest.raises(RuntimeError, match="保持不变"):
        notebooks.run_main_job(book, build=False)
    assert ipynb.read_bytes() == before


def test_repository_chapters_are_numbered_pairs():
    for py_path in notebooks.list_notebooks(REPO_ROOT):
        assert py_path.with_suffix(".ipynb").is_file(), py_path.name
        assert jupytext.read(py_path).metadata["kernelspec"]["name"] == "python3"


def test_partial_run_keeps_other_chapter_times(book):
    (book / "notebooks" / "02_other.py").write_text(SOURCE, encoding="utf-8")
    record_path = book / "runs" / "main_job_full.json"
    record_path.parent.mkdir(exist_ok=True)
    record = {"mode": "full", "chapters": {"01_tiny": 99.0, "02_other": 12.5, "03_removed": 1.0}}
    record_path.write_text(json.dumps(record), encoding="utf-8")
    notebooks.run_main_job(book, only=["01_tiny"], build=False)
    chapters = json.loads(record_path.read_text(encoding="utf-8"))["chapters"]
    assert list(chapters) == ["01_tiny", "02_other"]
    assert chapters["02_other"] == 12.5
    assert chapters["01_tiny"] != 99.0


def test_partial_run_without_record_uses_metadata(book):
    """还没有用时记录时，其余章节的用时取自它们 .ipynb 元数据里同一模式的记录。"""
    second = book / "notebooks" / "02_other.py"
    second.write_text(SOURCE, encoding="utf-8")
    notebooks.run_main_job(book, only=["02_other"], build=False)
    record_path = book / "runs" / "main_job_full.json"
    record_path.unlink()
    notebooks.run_main_job(book, only=["01_tiny"], build=False)
    chapters = json.loads(record_path.read_text(encoding="utf-8"))["chapters"]
    assert list(chapters) == ["01_tiny", "02_other"]
    assert chapters["02_other"] == notebooks.recorded_times(book)[1]["seconds"]


def test_rerun_keeps_cell_ids(book):
    ipynb_path = book / "notebooks" / "01_tiny.ipynb"
    before = [cell["id"] for cell in jupytext.read(ipynb_path).cells]
    py_path = book / "notebooks" / "01_tiny.py"
    py_path.write_text(SOURCE.replace("1 + 1", "1 + 2"), encoding="utf-8")
    notebooks.run_main_job(book, only=["01_tiny"], build=False)
    after = [cell["id"] for cell in jupytext.read(ipynb_path).cells]
    assert after == before


def test_edit_during_execution_is_stale(tmp_path):
    """执行期间改了 .py：记录的哈希来自执行的单元，所以检查报告输出过期。"""
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: notebooks/01_tiny\n", encoding="utf-8")
    py_path = root / "notebooks" / "01_tiny.py"
    edited = SOURCE.replace("1 + 1", "1 + 3")
    # 这个单元在执行时把 .py 改写成 edited（与 SOURCE 只差一个数字）。
    cell = (
        "from pathlib import Path\n"
        f"Path({str(py_path)!r}).write_text({edited!r}, encoding='utf-8')\n"
        'print("你好", 1 + 1)'
    )
    py_path.write_text(SOURCE.replace('print("你好", 1 + 1)', cell), encoding="utf-8")
    notebook, _ = notebooks.execute_notebook(py_path)
    notebooks.write_notebook(notebook, py_path.with_suffix(".ipynb"))
    problems = notebooks.check_notebooks(root)
    assert any("执行之后 01_tiny.py 又改过" in p for p in problems)


def test_recorded_times_read_metadata(book):
    rows = notebooks.recorded_times(book)
    assert [row["chapter"] for row in rows] == ["01_tiny"]
    assert rows[0]["mode"] == "full"
    assert rows[0]["seconds"] > 0


def test_recorded_times_skip_unrecorded(book):
    _edit_ipynb(book, lambda nb: nb.metadata.pop(notebooks.METADATA_KEY))
    assert notebooks.recorded_times(book) == []


@pytest.mark.parametrize("seconds, text", [(2.34, "2.3 秒"), (59.9, "59.9 秒"), (60, "1.0 分钟"), (1496.0, "24.9 分钟")])
def test_format_duration_units(seconds, text):
    assert notebooks.format_duration(seconds) == text


def test_kernel_log_is_quiet_but_cell_warnings_kept(tmp_path, capfd):
    """内核启动时的 TCP 警告不再打到终端，单元里的 warnings 仍写进输出。"""
    py_path = tmp_path / "01_warn.py"
    cell = 'import warnings\nwarnings.warn("单元里的警告")\nprint("你好")'
    py_path.write_text(SOURCE.replace('print("你好", 1 + 1)', cell), encoding="utf-8")
    notebook, _ = notebooks.execute_notebook(py_path)
    terminal = capfd.readouterr().err
    assert "without encryption" not in terminal
    texts = "".join(output.get("text", "") for output in notebook.cells[1].outputs)
    assert "单元里的警告" in texts
    assert "你好" in texts


def test_build_warns_about_quick_chapters(book, monkeypatch, capsys):
    """已执行章节里有快速模式的输出时，构建之前在 stderr 上列出这些章节。"""
    _edit_ipynb(book, lambda nb: nb.metadata[notebooks.METADATA_KEY].update(mode="quick"))
    # 用 true 代替 jupyter-book：只检查构建之前的提示。
    monkeypatch.setattr(notebooks, "jupyter_book_command", lambda: ["true"])
    notebooks.build_book(book)
    assert "这些章节的输出来自快速模式：01_tiny" in capsys.readouterr().err
