"""无头 Chromium 的可执行文件与启动参数，scripts/print_pdf.py 与 tests/browser/check_built_book.py 共用。"""

import os

# 默认是 Debian 的 chromium，环境变量 S4LAB_CHROMIUM 可以换成别的路径。
CHROMIUM = os.environ.get("S4LAB_CHROMIUM", "/usr/bin/chromium")

# Debian 的 chromium 在容器里以 root 运行需要 --no-sandbox；其余参数关掉后台联网与组件更新。
# --host-resolver-rules 让除 127.0.0.1 以外的主机名都解析失败，作为请求拦截之外的第二道保险。
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
