"""本书的 Sphinx 扩展：离线的数学公式与中文术语搜索。

- MathJax 3：从 PyPI 包 ``django-static-mathjax``（MathJax 3.2.2 的完整文件）里复制 ``es5`` 目录到
  构建结果的 ``_static/mathjax/``，并把 ``mathjax_path`` 指向它。Sphinx 只在含公式的页面上加这个脚本。
  我们不把 MathJax 放进仓库的 ``_static/``，因为 Jupyter Book 1 会把那里的每个 ``.js`` 加到每一页。
- jieba 词表：Sphinx 的中文搜索按当前工作目录解析 ``html_search_options["dict"]``，文件不存在时
  静默忽略。这里把相对路径解析为相对书的源目录的绝对路径，文件不存在时报错。
- 中文段落里的换行：Markdown 源码里一段中文常常折成几行，浏览器（例如 Chromium）把这个换行显示成
  一个空格，于是全角标点旁边或两个汉字之间多出空格。这里删去正文里紧挨全角标点、或夹在两个汉字
  之间的换行；汉字与拉丁字母、公式或代码之间的换行保留，它显示成规定的那一个空格。
- 浏览器控制台：sphinx-thebe 0.3.1 在本书的构建里把同一段内联配置脚本（``const THEBE_JS_URL = …``）
  加进每页两次，第二次在浏览器里抛出 SyntaxError；这里删去完全相同的重复脚本。pydata-sphinx-theme
  0.17.1 在模板变量 ``default_mode`` 为空时往控制台写一条错误，这里把它设为 ``auto``（主题本来的行为）。
- 引用两侧的空格：源码里角色两侧留空格；引用显示成汉字（章节标题、“图 3”）时，删去它与相邻汉字之间的空格。
- 术语的子词：jieba 的 ``cut_for_search`` 只把长词再切出 2 字和 3 字的词，所以“状态空间模型”
  不会给索引带来“状态空间”。这里在每个切出的词里再找词表中 4 字及以上的术语，一并加入索引。
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError, ExtensionError
from sphinx.search.zh import SearchChinese

# 与 Sphinx 7.4 默认的 CDN 地址（mathjax@3/es5/tex-mml-chtml.js）用同一个组件。
MATHJAX_ENTRY = "tex-mml-chtml.js"
MATHJAX_FOLDER = "mathjax"  # 构建结果里 _static/ 下的目录名
# cut_for_search 自己会切出的子词最长 3 字，更长的术语由 GlossarySearchChinese 补上。
SHORTEST_ADDED_TERM = 4

HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")  # 汉字：基本区与扩展 A 区
FULL_WIDTH_PUNCTUATION = re.compile("[\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\u2018\u2019\u201c\u201d\u2026\u2014]")
LINE_BREAK = re.compile("[ \t]*\n[ \t]*")
TRAILING_GAP = re.compile("[ \t]*\n?[ \t]*$")
LEADING_GAP = re.compile("^[ \t]*\n?[ \t]*")
# 这些节点里的文本原样显示，不动它们的换行。
VERBATIM_NODES = (nodes.FixedTextElement, nodes.literal, nodes.math, nodes.raw)


def mathjax_es5_dir() -> Path:
    """返回已安装的 ``django-static-mathjax`` 包里 MathJax 的 ``es5`` 目录。"""
    try:
        package = resources.files("mathjax")
    except ModuleNotFoundError:
        raise ExtensionError(
            '没有找到 Python 包 django-static-mathjax（导入名 mathjax）：请先运行 pip install -e ".[book]"。'
        ) from None
    es5 = Path(str(package)) / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_ENTRY).is_file():
        raise ExtensionError(f"{es5} 里没有 {MATHJAX_ENTRY}：django-static-mathjax 的安装不完整。")
    return es5


def read_dictionary_words(path) -> list[str]:
    """读取 jieba 词表（每行“词 [词频] [词性]”），返回词的列表，跳过空行。"""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields:
            words.append(fields[0])
    return words


class GlossarySearchChinese(SearchChinese):
    """Sphinx 的中文搜索，另外把长词里包含的词表术语（4 字及以上）加入索引。"""

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        dict_path = options.get("dict")
        words = read_dictionary_words(dict_path) if dict_path else []
        self.long_terms = sorted({word for word in words if len(word) >= SHORTEST_ADDED_TERM})

    def split(self, input: str) -> list[str]:
        terms = super().split(input)
        contained = [
            glossary_term
            for term in terms
            if len(term) > SHORTEST_ADDED_TERM
            for glossary_term in self.long_terms
            if glossary_term != term and glossary_term in term
        ]
        return terms + contained


def should_join(before: str, after: str) -> bool:
    """判断夹在字符 ``before`` 与 ``after`` 之间的换行是否应当删去（空串表示公式、代码或段落边界）。"""
    if FULL_WIDTH_PUNCTUATION.fullmatch(before) or FULL_WIDTH_PUNCTUATION.fullmatch(after):
        return True
    return bool(HAN.fullmatch(before) and HAN.fullmatch(after))


def join_wide_lines(app: Sphinx, doctree: nodes.document) -> None:
    """删去正文里紧挨全角标点、或夹在两个汉字之间的换行（见模块说明）。

    MyST 把段落里的软换行解析成单独的 ``Text("\\n")`` 节点，所以换行在文本的开头或结尾时，要看前后的兄弟节点。
    """
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or _is_verbatim(parent) or "\n" not in text:
            continue
        value = str(text)
        index = parent.index(text)
        previous = _edge_character(parent[index - 1], last=True) if index > 0 else ""
        following = _edge_character(parent[index + 1], last=False) if index + 1 < len(parent) else ""

        def replace(match: re.Match) -> str:
            before = value[match.start() - 1] if match.start() > 0 else previous
            after = value[match.end()] if match.end() < len(value) else following
            return "" if should_join(before, after) else match.group()

        joined = LINE_BREAK.sub(replace, value)
        if joined != value:
            parent.replace(text, nodes.Text(joined))


def _is_shown_reference(node: nodes.Node) -> bool:
    """交叉引用（{ref}、{numref}、{cite} 解析后的链接）或粘贴进来的 glue 文本。"""
    if isinstance(node, nodes.reference):
        return True
    return isinstance(node, nodes.inline) and "pasted-text" in node.get("classes", [])


def tighten_reference_spaces(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """删去汉字与显示成汉字的引用之间的那个空格。

    源码里 MyST 角色两侧一律留一个空格（排版测试按这条规则检查）。角色解析之后，引用显示成章节标题
    （如“结论：结果表与如何解读”）或“图 3”时，两个汉字之间就多出一个空格；显示成拉丁字母、数字或
    “[6]”时空格保留。判断与换行相同，用 ``should_join``。
    """
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or _is_verbatim(parent):
            continue
        value = str(text)
        index = parent.index(text)
        tightened = value
        # 空白可能是源码里的一个空格，也可能是折行留下的换行（join_wide_lines 运行时引用还没有解析）。
        gap = TRAILING_GAP.search(tightened)
        if gap.group() and index + 1 < len(parent) and _is_shown_reference(parent[index + 1]):
            before = tightened[: gap.start()][-1:] or (_edge_character(parent[index - 1], last=True) if index > 0 else "")
            if should_join(before, _edge_character(parent[index + 1], last=False)):
                tightened = tightened[: gap.start()]
        gap = LEADING_GAP.match(tightened)
        if gap.group() and index > 0 and _is_shown_reference(parent[index - 1]):
            rest = tightened[gap.end():]
            after = rest[:1] or (_edge_character(parent[index + 1], last=False) if index + 1 < len(parent) else "")
            if should_join(_edge_character(parent[index - 1], last=True), after):
                tightened = rest
        if tightened != value:
            parent.replace(text, nodes.Text(tightened))


def _is_verbatim(node: nodes.Node) -> bool:
    while node is not None:
        if isinstance(node, VERBATIM_NODES):
            return True
        node = node.parent
    return False


def _edge_character(node: nodes.Node, last: bool) -> str:
    """返回兄弟节点显示出来的第一个或最后一个字符；公式与代码返回空串（它们两侧要留空格）。"""
    if _is_verbatim(node):
        return ""
    shown = node.astext()
    if not shown:
        return ""
    return shown[-1] if last else shown[0]


def configure(app: Sphinx, config: Config) -> None:
    """把 MathJax 指向本地副本，并把 jieba 词表的路径改成绝对路径。"""
    mathjax_es5_dir()  # 缺包时在构建开始时就报错，而不是构建完才发现。
    config.mathjax_path = f"{MATHJAX_FOLDER}/{MATHJAX_ENTRY}"

    options = dict(config.html_search_options or {})
    dict_path = options.get("dict")
    if dict_path:
        resolved = Path(app.srcdir, dict_path).resolve()
        if not resolved.is_file():
            raise ConfigError(f"html_search_options 的 dict 指向的 jieba 词表不存在：{resolved}")
        options["dict"] = str(resolved)
        config.html_search_options = options


def clean_page_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """删去页面上文件名、属性与内联内容都相同的重复脚本，并给主题的 ``default_mode`` 一个合法值。"""
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        # 同一段内联脚本的 filename 可能一次是 None、一次是空串。
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """HTML 类构建成功后，把 MathJax 的 es5 目录复制到 ``_static/mathjax/``。"""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir, "_static", MATHJAX_FOLDER)
    shutil.copytree(mathjax_es5_dir(), target, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.add_search_language(GlossarySearchChinese)
    # priority 900：在 Jupyter Book 与其他扩展的 config-inited 处理之后运行。
    app.connect("config-inited", configure, priority=900)
    app.connect("doctree-read", join_wide_lines)
    # 引用在 doctree-resolved 之前已经解析成显示的文字。
    app.connect("doctree-resolved", tighten_reference_spaces)
    # priority 900：在 MathJax 等扩展往页面加脚本之后运行。
    app.connect("html-page-context", clean_page_scripts, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
