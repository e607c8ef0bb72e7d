"""本书的主任务：按顺序执行各章笔记本，检查它们是否新鲜，并构建 HTML 书。

每章是一对 jupytext 文件：``notebooks/NN_name.py``（百分号格式，是源文件）与
``notebooks/NN_name.ipynb``（提交时带着完整模式下真实运行的输出）。执行一章时，我们在
``.ipynb`` 的元数据 ``s4lab`` 里记录章节源码的哈希与 ``s4lab`` 包源码的哈希；之后任何一方
改动，``check_notebooks`` 都会报告该章的输出已过期。
"""

from __future__ import annotations

import difflib
import hashlib
import re
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import s4lab
from s4lab.repository import find_repository
from s4lab.runtime import QUICK_ENV

METADATA_KEY = "s4lab"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def find_root(start=None) -> Path:
    """寻找书的根目录（含 ``_toc.yml`` 与 ``notebooks/``）。

    给出 ``start`` 时它本身必须是根目录；否则从当前目录向上寻找。
    """
    if start is not None:
        root = Path(start).resolve()
        if (root / "_toc.yml").is_file() and (root / "notebooks").is_dir():
            return root
        raise FileNotFoundError(f"--root {start} 不是本书的根目录：那里没有 _toc.yml 与 notebooks/。请指向仓库的根目录。")
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        f"从 {here} 向上没有找到含 _toc.yml 与 notebooks/ 的目录：请在本书仓库的根目录下运行，或用 --root 指定。"
    )


def format_duration(seconds: float) -> str:
    """把秒数写成“12.3 秒”或“4.5 分钟”（一分钟以内用秒）。"""
    if seconds < 60:
        return f"{seconds:.1f} 秒"
    return f"{seconds / 60:.1f} 分钟"


def list_notebooks(root) -> list[Path]:
    """按阅读顺序（文件名的编号）返回 ``notebooks/NN_*.py``。"""
    paths = sorted(Path(root, "notebooks").glob("[0-9][0-9]_*.py"))
    if not paths:
        raise FileNotFoundError(f"{Path(root, 'notebooks')} 下没有形如 NN_name.py 的章节文件。")
    return paths


def package_hash() -> str:
    """``s4lab`` 包内全部 ``.py`` 文件（按相对路径排序）内容的 SHA-256。"""
    package_dir = Path(s4lab.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _cell_signature(notebook) -> list:
    """笔记本内容的签名：每个单元的类型与源码（不含输出与元数据中的运行信息）。"""
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def _signature_hash(notebook) -> str:
    """笔记本各单元的类型与源码的 SHA-256。"""
    payload = json.dumps(_cell_signature(notebook), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def source_hash(py_path) -> str:
    """章节源码（``.py`` 中各单元的类型与源码）的 SHA-256。"""
    import jupytext

    return _signature_hash(jupytext.read(py_path))


def execute_notebook(py_path, quick: bool = False) -> tuple[object, float]:
    """在新的内核里执行一章（工作目录为 ``notebooks/``），返回 ``(notebook, 秒数)``。

    出错时抛出 ``nbclient`` 的 ``CellExecutionError``，此时不写任何文件。记录的源码哈希取自
    开始执行时读到的单元，所以执行期间再改 ``.py``，``check_notebooks`` 会报告输出已过期。
    """
    import jupytext
    from nbclient import NotebookClient

    py_path = Path(py_path)
    notebook = jupytext.read(py_path)
    executed_source = _signature_hash(notebook)
    executed_package = package_hash()
    previous = os.environ.get(QUICK_ENV)
    os.environ[QUICK_ENV] = "1" if quick else "0"
    start = time.perf_counter()
    try:
        client = NotebookClient(
            notebook,
            timeout=None,
            kernel_name="python3",
            # 内核自己的日志只留错误：ipykernel 7 每次启动都警告“内核走未加密的 TCP”，这里是本机执行，这条警告只是噪声。
            # 单元里的 warnings 与 stderr 输出不受影响，照常写进笔记本。
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            resources={"metadata": {"path": str(py_path.parent)}},
        )
        client.execute()
    finally:
        if previous is None:
            os.environ.pop(QUICK_ENV, None)
        else:
            os.environ[QUICK_ENV] = previous
    seconds = time.perf_counter() - start
    notebook.metadata[METADATA_KEY] = {
        "source_sha256": executed_source,
        "package_sha256": executed_package,
        "mode": "quick" if quick else "full",
        "seconds": round(seconds, 1),
    }
    return notebook, seconds


def recorded_times(root) -> list[dict]:
    """各章 ``.ipynb`` 的元数据里记录的执行情况，按阅读顺序返回。

    每项是 ``{"chapter": 章节名, "mode": "full" 或 "quick", "seconds": 秒数}``；没有执行记录的章节不列出。
    主任务按顺序执行并立即写回每一章，所以后面的章节读到的是同一次运行里前面各章的用时。
    """
    rows = []
    for py_path in list_notebooks(root):
        ipynb_path = py_path.with_suffix(".ipynb")
        if not ipynb_path.is_file():
            continue
        record = json.loads(ipynb_path.read_text(encoding="utf-8")).get("metadata", {}).get(METADATA_KEY)
        if record and "seconds" in record:
            rows.append({"chapter": py_path.stem, "mode": record.get("mode"), "seconds": float(record["seconds"])})
    return rows


def _keep_cell_ids(notebook, previous) -> None:
    """沿用上一版 ``.ipynb`` 的单元 id，免得每次重新执行都改写每个单元的 id、让 git 的差异变得很长。

    源码没变的单元按内容配对；改过的单元若与上一版同一位置的单元类型相同，沿用那个位置的 id。
    """
    ids_by_content = {}
    for cell in previous.cells:
        ids_by_content.setdefault((cell.cell_type, cell.source), []).append(cell.get("id"))
    used = set()
    for index, cell in enumerate(notebook.cells):
        candidates = ids_by_content.get((cell.cell_type, cell.source))
        if candidates:
            cell_id = candidates.pop(0)
        elif index < len(previous.cells) and previous.cells[index].cell_type == cell.cell_type:
            cell_id = previous.cells[index].get("id")
        else:
            cell_id = None
        if cell_id and cell_id not in used:
            cell["id"] = cell_id
            used.add(cell_id)


def write_notebook(notebook, ipynb_path) -> None:
    """把执行后的笔记本写到 ``.ipynb``（先写临时文件再改名），单元 id 沿用已有的那一版。"""
    import jupytext

    ipynb_path = Path(ipynb_path)
    if ipynb_path.is_file():
        _keep_cell_ids(notebook, jupytext.read(ipynb_path))
    tmp = ipynb_path.with_name(ipynb_path.stem + ".tmp.ipynb")
    jupytext.write(notebook, tmp, fmt="ipynb")
    os.replace(tmp, ipynb_path)


def check_notebooks(root) -> list[str]:
    """检查每一对 ``.py``/``.ipynb`` 是否同步、是否在完整模式下执行过、输出是否新鲜。返回问题列表。"""
    import jupytext

    problems = []
    current_package = package_hash()
    for py_path in list_notebooks(root):
        ipynb_path = py_path.with_suffix(".ipynb")
        name = py_path.name
        if not ipynb_path.is_file():
            problems.append(f"{name}：缺少配对的 {ipynb_path.name}，请运行 s4lab book 生成。")
            continue
        source = jupytext.read(py_path)
        executed = jupytext.read(ipynb_path)
        if _cell_signature(source) != _cell_signature(executed):
            problems.append(f"{ipynb_path.name}：单元内容与 {name} 不一致，请重新执行该章（s4lab book --only {py_path.stem}）。")
        rerun = f"请运行 s4lab book --only {py_path.stem} 重新执行。"
        unexecuted = [
            index + 1 for index, cell in enumerate(executed.cells)
            if cell.cell_type == "code" and cell.get("execution_count") is None
        ]
        if unexecuted:
            shown = "、".join(str(i) for i in unexecuted[:5]) + ("……" if len(unexecuted) > 5 else "")
            problems.append(f"{ipynb_path.name}：有 {len(unexecuted)} 个没有执行过的代码单元（第 {shown} 个）。{rerun}")
        for index, cell in enumerate(executed.cells):
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    problems.append(f"{ipynb_path.name}：第 {index + 1} 个单元的输出是错误 {output.get('ename')}。{rerun}")
        record = executed.metadata.get(METADATA_KEY)
        if not record:
            problems.append(f"{ipynb_path.name}：元数据里没有执行记录。{rerun}")
            continue
        if record.get("mode") != "full":
            problems.append(f"{ipynb_path.name}：输出来自 {record.get('mode')!r} 模式，提交的输出必须来自完整模式。{rerun}")
        if record.get("source_sha256") != source_hash(py_path):
            problems.append(f"{ipynb_path.name}：执行之后 {name} 又改过，输出已过期。{rerun}")
        if record.get("package_sha256") != current_package:
            problems.append(f"{ipynb_path.name}：执行之后 s4lab 包又改过，输出已过期。{rerun}")
    return problems


def jupyter_book_command() -> list[str]:
    """与当前 Python 同一环境里的 ``jupyter-book`` 命令。"""
    candidate = Path(sys.executable).parent / "jupyter-book"
    if candidate.is_file():
        return [str(candidate)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise FileNotFoundError('没有找到 jupyter-book 命令：请先安装本书的依赖（pip install -e ".[book,test]"）。')


def build_book(root, strict: bool = False) -> None:
    """用 Jupyter Book 1 构建 HTML（使用已提交的输出，不重新执行），结果在 ``_build/html``。"""
    find_repository(root)  # 启动按钮的仓库地址写错时，在调用 Jupyter Book 之前报错
    not_full = [row["chapter"] for row in recorded_times(root) if row["mode"] != "full"]
    if not_full:
        print(
            f"注意：这些章节的输出来自快速模式：{'、'.join(not_full)}。构建出的书（包括前言里的运行时间）不代表完整运行；"
            "要恢复已提交的输出，运行 git checkout -- notebooks/，或用 s4lab book 重新执行。",
            file=sys.stderr,
        )
    command = [*jupyter_book_command(), "build", str(root), "--all"]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    result = subprocess.run(command, cwd=root)
    if result.returncode != 0:
        raise RuntimeError(f"构建 HTML 书失败（退出码 {result.returncode}）：见上方 jupyter-book 的输出。")


def run_main_job(root, only=None, quick: bool = False, build: bool = True, strict: bool = False) -> dict:
    """主任务：按顺序执行各章并写回 ``.ipynb``，然后构建 HTML 书。返回各章用时（秒）。"""
    from nbclient.exceptions import CellExecutionError

    root = Path(root)
    notebooks = list_notebooks(root)
    if build:
        # 构建时才用到仓库地址；写错时在执行任何章节之前就报错，而不是几十分钟后构建时才报。
        find_repository(root)
    if only:
        wanted = set(only)
        unknown = wanted - {p.stem for p in notebooks}
        if unknown:
            stems = [p.stem for p in notebooks]
            hints = []
            for name in sorted(unknown):
                close = difflib.get_close_matches(Path(name).stem, stems, n=1, cutoff=0.3)
                close = close or [s for s in stems if s.startswith(Path(name).stem)][:1]
                hints.append(f"{name}（你是不是想写 {close[0]}？）" if close else name)
            raise ValueError(f"没有这些章节：{'，'.join(hints)}。可选的章节：{'、'.join(stems)}。")
        notebooks = [p for p in notebooks if p.stem in wanted]
    times = {}
    total_start = time.perf_counter()
    mode = "快速模式" if quick else "完整模式"
    for number, py_path in enumerate(notebooks, start=1):
        print(f"[{number}/{len(notebooks)}] 执行 {py_path.name}（{mode}）……", flush=True)
        try:
            notebook, seconds = execute_notebook(py_path, quick=quick)
        except CellExecutionError as error:
            plain = ANSI_ESCAPE.sub("", str(error)).strip()
            raise RuntimeError(
                f"执行 {py_path.name} 失败，已有的 {py_path.with_suffix('.ipynb').name} 保持不变。\n{plain}"
            ) from None
        write_notebook(notebook, py_path.with_suffix(".ipynb"))
        times[py_path.stem] = round(seconds, 1)
        print(f"[{number}/{len(notebooks)}] {py_path.name} 完成，用时 {seconds:.1f} 秒。", flush=True)
    total = time.perf_counter() - total_start
    mode_name = "quick" if quick else "full"
    runs = root / "runs"
    runs.mkdir(exist_ok=True)
    record_path = runs / f"main_job_{mode_name}.json"
    chapters = dict(times)
    if only:
        # 只执行了部分章节：其余章节的用时取上一次的记录；还没有记录时，取各章 .ipynb 元数据里同一模式的用时。
        if record_path.is_file():
            previous = json.loads(record_path.read_text(encoding="utf-8")).get("chapters", {})
        else:
            previous = {row["chapter"]: row["seconds"] for row in recorded_times(root) if row["mode"] == mode_name}
        merged = {**previous, **times}
        # 按阅读顺序排列；记录里已经不存在的章节不再保留。
        chapters = {path.stem: merged[path.stem] for path in list_notebooks(root) if path.stem in merged}
    record = {"mode": mode_name, "chapters": chapters, "total_seconds": round(sum(chapters.values()), 1)}
    record_path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    scope = f"{len(notebooks)} 章" if only else f"全部 {len(notebooks)} 章"
    print(f"{scope}执行完毕，共用时 {format_duration(total)}。", flush=True)
    if quick:
        print("注意：这些 .ipynb 现在带着快速模式的输出，不能提交；要恢复已提交的输出，运行 git checkout -- notebooks/。")
    if build:
        build_start = time.perf_counter()
        build_book(root, strict=strict)
        print(f"HTML 书已生成：{root / '_build' / 'html' / 'index.html'}（构建用时 {time.perf_counter() - build_start:.1f} 秒）。")
    return record
