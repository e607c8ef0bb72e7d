"""用无头 Chromium 把单页 HTML 书打印成 PDF（scripts/pdf.sh 调用它）。

页面由 127.0.0.1 上的临时静态文件服务器提供，浏览器对其他地址的请求一律拦下；等 MathJax 排版完、
图片解码完再打印。浏览器是 Debian 的 chromium（可用 S4LAB_CHROMIUM 改写），由 playwright 驱动。
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# 同一目录下的模块：python scripts/print_pdf.py 把 scripts/ 放在 sys.path 的最前面，所以可以直接导入。
from headless_chromium import CHROMIUM, CHROMIUM_ARGS

READY_SCRIPT = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const images = Array.from(document.images);
  for (const image of images) image.loading = "eager";
  await Promise.all(images.map((image) => image.decode().catch(() => null)));
  return images.filter((image) => image.naturalWidth === 0).map((image) => image.src);
}
"""


def entry_page(build_dir: Path) -> Path:
    """返回单页 HTML 构建的入口页：Jupyter Book 的 index.html 只是跳转到根文档（例如 book/intro.html）。"""
    index = build_dir / "index.html"
    redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index.read_text(encoding="utf-8"))
    return build_dir / redirect.group(1) if redirect else index


class BookHandler(SimpleHTTPRequestHandler):
    """静态文件服务器；根地址返回入口页。

    Sphinx 的 singlehtml 把根文档写在 book/intro.html，但页面里的 _static/ 与 _images/ 是相对构建根目录写的，
    所以入口页必须从根地址打开。
    """

    def __init__(self, *args, entry: str, **kwargs):
        self.entry = entry
        super().__init__(*args, **kwargs)

    def translate_path(self, path):
        if urlsplit(path).path == "/":
            path = "/" + self.entry
        return super().translate_path(path)

    def log_message(self, format, *args):
        pass


def print_pdf(build_dir: Path, pdf_path: Path) -> list[str]:
    """把 ``build_dir`` 里的单页 HTML 书打印到 ``pdf_path``，返回加载时的问题（被拦下或失败的请求、未加载的图片）。"""
    from playwright.sync_api import sync_playwright

    page_path = entry_page(build_dir).relative_to(build_dir).as_posix()
    handler = functools.partial(BookHandler, directory=str(build_dir), entry=page_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local_host = f"127.0.0.1:{server.server_address[1]}"
    problems: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == local_host:
            request_route.continue_()
        else:
            problems.append(f"拦下了对外部地址的请求：{url}")
            request_route.abort()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(locale="zh-CN")
            page.set_default_timeout(120_000)
            page.route("**/*", route)
            # singlehtml 不生成搜索索引，页面却仍引用 searchindex.js；打印用不到搜索，所以不算问题。
            page.on(
                "requestfailed",
                lambda request: None if request.url.endswith("/searchindex.js") else problems.append(f"请求失败：{request.url}"),
            )
            page.goto(f"http://{local_host}/", wait_until="load")
            broken = page.evaluate(READY_SCRIPT)
            problems.extend(f"图片没有加载出来：{src}" for src in broken)
            pdf_path.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "15mm", "bottom": "15mm", "left": "15mm", "right": "15mm"})
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="用无头 Chromium 把单页 HTML 书打印成 PDF。")
    parser.add_argument("html", type=Path, help="单页 HTML 的构建目录，例如 _build/singlehtml")
    parser.add_argument("pdf", type=Path, help="输出的 PDF 文件")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        print(f"错误：没有找到 {args.html}：先构建单页 HTML（jupyter-book build . --builder singlehtml）。", file=sys.stderr)
        return 1
    if not Path(CHROMIUM).is_file():
        print(f"错误：没有找到 chromium（{CHROMIUM}）：运行 bash scripts/ci_system_deps.sh 安装。", file=sys.stderr)
        return 1
    problems = print_pdf(args.html.resolve(), args.pdf)
    if problems:
        print("错误：打印时页面没有完整加载：\n" + "\n".join(problems), file=sys.stderr)
        return 1
    size_mb = args.pdf.stat().st_size / 1e6
    print(f"PDF 已生成：{args.pdf}（{size_mb:.1f} MB）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
