#!/usr/bin/env bash
# 建立虚拟环境 .venv 并安装本书的全部依赖。先单独安装 PyTorch，这样 pip 不会再为 s4lab 拉取另一个构建。
# 环境变量 S4LAB_TORCH 可以改写 PyTorch 的安装参数，例如只要 CPU 版本时：
#   S4LAB_TORCH="torch --index-url https://download.pytorch.org/whl/cpu" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install ${S4LAB_TORCH:-torch==2.13.0}
fi
.venv/bin/python -m pip install -e ".[book,test]"
echo "安装完成：用 source .venv/bin/activate 进入环境。"
