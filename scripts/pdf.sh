#!/usr/bin/env bash
# 生成整本书的 PDF：先用 Jupyter Book 构建单页 HTML（_build/singlehtml），再用无头 Chromium 打印成
# _build/pdf/book.pdf。需要 Debian 的 chromium 与中文字体（见 scripts/ci_system_deps.sh）和 playwright（.[test]）。
# 用法：bash scripts/pdf.sh [输出文件]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi
output="${1:-_build/pdf/book.pdf}"
jupyter-book build . --builder singlehtml -W -n --keep-going
python scripts/print_pdf.py _build/singlehtml "$output"
