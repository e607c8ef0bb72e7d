#!/usr/bin/env bash
# 本书的测试命令（CI 也运行它）：笔记本新鲜度检查、单元测试、快速基准测试、快速模式下的 nbval、
# 严格模式构建 HTML 书，以及在 chromium 中逐页检查构建结果。
# 需要真实语料：把 S4LAB_DATA 设为 tinyshakespeare.txt 的路径。
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi
if [ -z "${S4LAB_DATA:-}" ]; then
  echo "错误：没有设置 S4LAB_DATA。请把它设为 tinyshakespeare.txt 的路径，例如 export S4LAB_DATA=/path/to/tinyshakespeare.txt" >&2
  exit 2
fi
step() { printf '\n== %s ==\n' "$1"; }
start=$SECONDS

step "1/6 笔记本配对与新鲜度"
s4lab check

step "2/6 单元测试"
python -m pytest -q -p no:cacheprovider

step "3/6 基准测试（快速模式）"
s4lab bench --quick --out runs/bench_quick.json

step "4/6 nbval（快速模式）"
S4LAB_QUICK=1 python -m pytest -q -p no:cacheprovider --nbval-lax notebooks/

step "5/6 构建 HTML 书（警告即错误）"
s4lab book --no-execute --strict

step "6/6 浏览器里检查构建好的书（chromium）"
python -m pytest -q -p no:cacheprovider tests/browser/check_built_book.py

echo "全部测试通过，用时 $((SECONDS - start)) 秒。"
