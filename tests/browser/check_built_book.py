"""在真实的无头浏览器里检查构建好的 HTML 书（_build/html）。

这个文件故意不叫 ``test_*.py``：它检查的是构建结果，所以默认的 ``pytest`` 不收集它；
``scripts/test.sh`` 在构建 HTML 之后显式运行它：

    python -m pytest -q tests/browser/check_built_book.py

浏览器是 Debian 的 ``chromium``（``/usr/bin/chromium``，可用 ``S4LAB_CHROMIUM`` 改写），由 PyPI 的
``playwright`` 驱动，不下载 playwright 自己的浏览器。测试在 127.0.0.1 上起一个静态文件服务器；浏览器发往
其他地址的请求一律被拦下并记为失败，所以页面必须完全离线可用。

本地没有 chromium 或还没有构建 HTML 时，相关测试跳过并说明原因；设置 ``S4LAB_REQUIRE_BROWSER=1``
（CI 这样做）时改为失败。第一章与训练章的整页截图保存在 ``artifacts/browser/``（不提交）。
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# chromium 的路径与启动参数和 scripts/print_pdf.py 共用一份，放在 scripts/headless_chromium.py。
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from headless_chromium import CHROMIUM, CHROMIUM_ARGS

HTML_DIR = Path(os.environ.get("S4LAB_BOOK_HTML", REPO_ROOT / "_build" / "html"))
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"
REQUIRE_BROWSER = os.environ.get("S4LAB_REQUIRE_BROWSER") == "1"

SCREENSHOT_PAGES = {"notebooks/01_data": "01_data.png", "notebooks/10_training": "10_training.png"}
SEARCH_QUERIES = ["卷积", "状态空间", "卷积核", "离散化", "困惑度"]
PAGE_TIMEOUT_MS = 60_000
# 可见文本里出现这些串，说明 MathJax 没有排版那处公式。
RAW_TEX_DELIMITERS = ["$$", "\\(", "\\[", "\\begin{"]
# 收集可见文本时跳过原样显示的代码（pre、code）与 MathJax 排版出的公式（mjx-container）。
VISIBLE_TEXT_SCRIPT = """
() => {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "NOSCRIPT", "TEXTAREA", "MJX-CONTAINER", "TEMPLATE"]);
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName)) return NodeFilter.FILTER_REJECT;
      }
      const style = window.getComputedStyle(node.parentElement);
      if (style.display === "none" || style.visibility === "hidden") return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  return parts.join("");
}
"""
IMAGES_SCRIPT = """
async () => {
  const images = Array.from(document.images);
  for (const image of images) image.loading = "eager";
  await Promise.all(images.map((image) => image.decode().catch(() => null)));
  return images.map((image) => ({src: image.currentSrc || image.src, width: image.naturalWidth}));
}
"""
MATHJAX_READY_SCRIPT = """
async () => {
  if (!window.MathJax) return "none";
  if (MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; return MathJax.version; }
  return "not-started";
}
"""


def toc_docnames(toc_path: Path) -> list[str]:
    """按目录顺序返回 ``_toc.yml`` 里的全部文档名（root、各部分的章与节）。"""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    names = [toc["root"]]

    def visit(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            visit(entry.get("sections"))
            visit(entry.get("chapters"))

    visit(toc.get("parts"))
    visit(toc.get("chapters"))
    return names


DOCNAMES = toc_docnames(REPO_ROOT / "_toc.yml")


def skip_or_fail(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}（设置了 S4LAB_REQUIRE_BROWSER=1，所以这是失败而不是跳过）")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML_DIR / "index.html").is_file():
        skip_or_fail(f"{HTML_DIR} 里没有构建好的书：先运行 s4lab book --no-execute")
    return HTML_DIR


@pytest.fixture(scope="session")
def server_url(html_dir):
    """在 127.0.0.1 的空闲端口上提供 ``html_dir``，返回根地址。"""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # 成功的请求不写日志，失败由浏览器一侧报告
            pass

    handler = functools.partial(QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file() and shutil.which(CHROMIUM) is None:
        skip_or_fail(f"没有找到 chromium（{CHROMIUM}）：在 Debian 上运行 apt-get install chromium fonts-wqy-microhei")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail('没有安装 playwright：运行 pip install -e ".[test]"')
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class PageProblems:
    """记录一个页面上的 JS 控制台错误、未捕获异常、被拦下的外部请求与失败的请求。"""

    def __init__(self, page, server_url: str):
        self.errors: list[str] = []
        self.local_host = urlsplit(server_url).netloc
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"未捕获的异常：{error}"))
        page.on("requestfailed", lambda request: self.errors.append(f"请求失败：{request.url}（{request.failure}）"))
        page.on("response", self._on_response)
        page.route("**/*", self._route)

    def _on_console(self, message):
        if message.type == "error":
            self.errors.append(f"控制台错误：{message.text}（{message.location.get('url', '')}）")

    def _on_response(self, response):
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}：{response.url}")

    def _route(self, route):
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.netloc == self.local_host:
            route.continue_()
        else:
            self.errors.append(f"页面试图访问外部地址：{route.request.url}")
            route.abort()


@pytest.fixture
def open_page(browser, server_url):
    """打开一个相对地址，返回 ``(page, problems)``；MathJax 排版完之后才返回。"""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")

    def open_(relative_url: str):
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        problems = PageProblems(page, server_url)
        page.goto(server_url + relative_url, wait_until="load")
        page.evaluate(MATHJAX_READY_SCRIPT)
        return page, problems

    yield open_
    context.close()


# ---------------------------------------------------------------- 不需要浏览器的检查

def test_toc_pages_built(html_dir):
    missing = [name for name in DOCNAMES if not (html_dir / f"{name}.html").is_file()]
    assert not missing, f"目录里的这些页面没有构建出来：{missing}"


def test_no_remote_scripts_or_styles(html_dir):
    """页面不从网络加载脚本、样式或 MathJax（启动按钮等普通链接不算）。"""
    import re

    remote_asset = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"[^>]*>")
    mathjax_cdn = re.compile(r"cdn\.jsdelivr\.net|mathjax@|cdnjs\.cloudflare\.com/ajax/libs/mathjax", re.IGNORECASE)
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        relative = page.relative_to(html_dir)
        for tag in remote_asset.findall(text):
            if "stylesheet" in tag or "<script" in tag or "preload" in tag:
                problems.append(f"{relative}：{tag}")
        for match in mathjax_cdn.finditer(text):
            problems.append(f"{relative}：CDN 地址 {match.group()}")
    assert not problems, "页面引用了网络上的资源：\n" + "\n".join(problems[:50])


def test_mathjax_served_locally(html_dir):
    page = (html_dir / "notebooks" / "03_discretization.html").read_text(encoding="utf-8")
    assert '../_static/mathjax/tex-mml-chtml.js' in page
    assert (html_dir / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (html_dir / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_mathjax_not_on_pages_without_math(html_dir):
    page = (html_dir / "search.html").read_text(encoding="utf-8")
    assert "tex-mml-chtml.js" not in page


@pytest.mark.parametrize("term", ["状态空间", "卷积核", "离散化", "困惑度", "卷积"])
def test_search_index_contains_term(html_dir, term):
    text = (html_dir / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1 : text.rindex(")")])
    assert term in index["terms"], f"搜索索引里没有“{term}”：检查 book/jieba_dict.txt 与 html_search_options"


def test_pages_declare_chinese(html_dir):
    page = (html_dir / "book" / "intro.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN"' in page or "<html lang=\"zh_CN\"" in page


def test_notebook_pages_have_download_button(html_dir):
    # NOTE: Colab/Binder 启动按钮需要本书公开仓库的地址，仓库地址确定之前不配置它们。
    page = (html_dir / "notebooks" / "01_data.html").read_text(encoding="utf-8")
    assert "01_data.ipynb" in page
    assert "mybinder.org" not in page


# ---------------------------------------------------------------- 浏览器里的检查

@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_in_browser(open_page, docname):
    page, problems = open_page(f"{quote(docname)}.html")

    images = page.evaluate(IMAGES_SCRIPT)
    broken = [image["src"] for image in images if image["width"] == 0]
    assert not broken, f"{docname}：这些图片没有加载出来（naturalWidth 为 0）：{broken}"

    visible = page.evaluate(VISIBLE_TEXT_SCRIPT)
    raw = [delimiter for delimiter in RAW_TEX_DELIMITERS if delimiter in visible]
    assert not raw, f"{docname}：MathJax 之后可见文本里仍有 TeX 定界符 {raw}"

    assert not problems.errors, f"{docname}：\n" + "\n".join(problems.errors)

    screenshot = SCREENSHOT_PAGES.get(docname)
    if screenshot:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)


def test_math_typeset_in_browser(open_page):
    page, problems = open_page("notebooks/03_discretization.html")
    count = page.evaluate("() => document.querySelectorAll('mjx-container').length")
    assert count > 0, "离散化一章没有 MathJax 排版出的公式"
    assert not problems.errors, "\n".join(problems.errors)


@pytest.mark.parametrize("query", SEARCH_QUERIES)
def test_search_in_browser(open_page, query):
    page, problems = open_page(f"search.html?q={quote(query)}")
    page.wait_for_function(
        "() => { const s = document.querySelector('#search-results .search-summary'); return s && s.textContent.trim().length > 0; }"
    )
    results = page.evaluate("() => Array.from(document.querySelectorAll('#search-results ul.search li')).length")
    assert results >= 1, f"搜索“{query}”没有结果"
    assert not problems.errors, f"搜索“{query}”：\n" + "\n".join(problems.errors)
