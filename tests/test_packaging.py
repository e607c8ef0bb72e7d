"""安装配置：environment.yml 的 pip 部分与 pyproject.toml 一致，命令行入口可用。"""

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _conda_pip_section():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_parts = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_parts) == 1
    return env, pip_parts[0]


def test_environment_installs_project_with_same_extras():
    _, pip_lines = _conda_pip_section()
    extras = sorted(_pyproject()["project"]["optional-dependencies"])
    assert f'-e ".[{",".join(extras)}]"' in pip_lines


def test_environment_installs_torch_before_project():
    _, pip_lines = _conda_pip_section()
    assert pip_lines[0].startswith("torch==")
    assert pip_lines.index(pip_lines[0]) < next(i for i, l in enumerate(pip_lines) if l.startswith("-e"))


def test_environment_python_satisfies_requires_python():
    env, _ = _conda_pip_section()
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    major, minor = (int(x) for x in python.split("=")[1].split(".")[:2])
    required = _pyproject()["project"]["requires-python"]
    assert required.startswith(">=")
    req_major, req_minor = (int(x) for x in required[2:].split(".")[:2])
    assert (major, minor) >= (req_major, req_minor)


def test_torch_lower_bound_admits_measured_version():
    deps = _pyproject()["project"]["dependencies"]
    torch_spec = next(d for d in deps if d.startswith("torch"))
    assert torch_spec.startswith("torch>=")
    bound = tuple(int(x) for x in torch_spec.split(">=")[1].split("."))
    assert bound <= (2, 13, 0)


def test_book_tools_are_pinned():
    book = _pyproject()["project"]["optional-dependencies"]["book"]
    for name in ("jupyter-book==1.", "jupytext==", "nbclient==", "nbconvert==", "ipykernel==", "jieba=="):
        assert any(d.startswith(name) for d in book), name


def test_console_script_is_installed():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("s4lab") == "s4lab.cli:main"
    result = subprocess.run([sys.executable, "-m", "s4lab.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "book" in result.stdout
    assert "check" in result.stdout


def test_display_path_is_relative_inside_the_book(monkeypatch, tmp_path):
    from s4lab.runtime import display_path

    monkeypatch.chdir(REPO_ROOT)
    assert display_path(REPO_ROOT / "runs" / "full" / "x") == "runs/full/x"
    assert display_path(tmp_path) == str(tmp_path.resolve())


def test_runs_dir_inside_and_outside_the_book(monkeypatch, tmp_path):
    from s4lab.runtime import runs_dir

    monkeypatch.delenv("S4LAB_RUNS", raising=False)
    monkeypatch.chdir(REPO_ROOT / "book")
    assert runs_dir() == REPO_ROOT / "runs"
    monkeypatch.chdir(tmp_path)
    assert runs_dir() == tmp_path.resolve() / "runs"
    monkeypatch.setenv("S4LAB_RUNS", str(tmp_path / "elsewhere"))
    assert runs_dir() == tmp_path / "elsewhere"


def test_binder_pins_same_cpu_torch_and_python():
    """Binder 的配置与 environment.yml 用同一个 PyTorch 与 Python 版本，PyTorch 取 CPU 构建。"""
    env, pip_lines = _conda_pip_section()
    requirements = (REPO_ROOT / ".binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    lines = [line for line in requirements if line and not line.startswith("#")]
    assert pip_lines[0] in lines
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    runtime = (REPO_ROOT / ".binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime == "python-" + python.split("=")[1]
    post_build = REPO_ROOT / ".binder" / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert 'pip install --no-cache-dir -e ".[book]"' in post_build.read_text(encoding="utf-8")
