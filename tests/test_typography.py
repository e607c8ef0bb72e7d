"""中文排版检查：各章笔记本的 Markdown 单元（从 jupytext 的 .py 读取）与 book/*.md 的正文。

本书的规则：
- 汉字与拉丁字母、数字、行内代码、行内公式或 MyST 角色（{ref}、{cite} 等）之间恰好一个半角空格；
- 中文句子里用全角标点（，。：；？！（）“”），不用半角的 , ; : ? ! ( ) " 和句末的 .；
- 全角标点与任何字符之间都不加空格。

不检查的部分：代码块、行内代码、公式（$…$、$$…$$、amsmath 环境、{math} 指令）、网址与链接地址、
MyST 角色与指令的目标、标签行 ``(name)=``、HTML 注释与标签。代码块以外的指令（例如 {figure}）只检查正文与
图注，不检查参数与 ``:option:`` 行。段落内的换行不算空格：本书的 Sphinx 扩展 book/_ext/math_search.py
在构建时删去紧挨全角标点或夹在两个汉字之间的换行。
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

HAN = "\u3400-\u4dbf\u4e00-\u9fff"
# 行内代码、公式与 MyST 角色被换成这个私用区字符，它在规则里按拉丁字母处理。
PROTECTED = "\ue000"
LATIN = f"A-Za-z0-9\u0370-\u03ff{PROTECTED}"  # 含希腊字母，例如 Δ
FULL_WIDTH_PUNCTUATION = "，。、：；？！（）“”‘’《》【】"

# (规则名, 说明, 正则)。每条正则匹配一处违例。
RULES = [
    ("missing-space", "汉字与拉丁字母、数字、代码或公式之间缺少空格", re.compile(f"[{HAN}][{LATIN}]|[{LATIN}][{HAN}]")),
    ("extra-space", "汉字与拉丁字母、数字、代码或公式之间多于一个空格", re.compile(f"[{HAN}] {{2,}}[{LATIN}]|[{LATIN}] {{2,}}[{HAN}]")),
    ("wrong-space", "用了全角空格、不换行空格或制表符，应为一个半角空格", re.compile(f"[{HAN}{LATIN}][\u3000\u00a0\t]+[{HAN}{LATIN}]")),
    ("space-between-han", "两个汉字之间有空格", re.compile(f"[{HAN}] +[{HAN}]")),
    ("space-at-punctuation", "全角标点旁边有空格", re.compile(f"[{FULL_WIDTH_PUNCTUATION}] +\\S|\\S +[{FULL_WIDTH_PUNCTUATION}]")),
    ("half-width-punctuation", "中文句子里用了半角标点，应为全角标点", re.compile(f"[{HAN}][,;:?!]|[,;?!] *[{HAN}]|[{LATIN}]: *[{HAN}]|[{HAN}]\\.(?=\\s|$|[{HAN}])")),
    ("half-width-parenthesis", "中文句子里用了半角括号，应为全角括号（）", re.compile(f"[{HAN}] *\\(|\\) *[{HAN}]")),
    ("half-width-quote", "中文句子里用了半角引号，应为“”", re.compile(f"[{HAN}] *\"|\" *[{HAN}]")),
]

# 内容不是正文的指令：整块跳过。
VERBATIM_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "math", "raw", "literalinclude", "eval-rst", "bibliography", "mermaid", "csv-table", "list-table"}

INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
ROLE = re.compile(r"\{[A-Za-z][\w:+-]*\}" + INLINE_CODE.pattern)
DISPLAY_MATH_INLINE = re.compile(r"\$\$.+?\$\$")
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?:\\.|[^$\\])+?\$")
PAREN_MATH = re.compile(r"\\\((?:.+?)\\\)")
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
AUTOLINK = re.compile(r"<(?:https?|mailto):[^>]+>")
URL = re.compile(r"https?://\S+")
HTML_COMMENT = re.compile(r"<!--.*?-->")
HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]]+\]")
EMPHASIS = re.compile(r"\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")
LABEL_LINE = re.compile(r"^\s*\([\w.:-]+\)=\s*$")
FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})\s*(\{([\w:-]+)\})?(.*)$")
MATH_ENVIRONMENT = re.compile(r"^\s*\\begin\{([A-Za-z*]+)\}")
BLOCK_PREFIX = re.compile(r"^\s*(?:>\s*)*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|:\s+)?")


@dataclass(frozen=True)
class Violation:
    line: int  # 在被检查文本中的行号，从 1 开始
    rule: str
    message: str
    text: str  # 去掉代码与公式之前的原始行


def strip_inline(line: str) -> str:
    """把一行正文里不属于中文排版检查范围的部分换掉或删掉，返回剩下的正文。"""
    line = HTML_COMMENT.sub("", line)
    line = ROLE.sub(PROTECTED, line)
    line = INLINE_CODE.sub(PROTECTED, line)
    line = DISPLAY_MATH_INLINE.sub(PROTECTED, line)
    line = INLINE_MATH.sub(PROTECTED, line)
    line = PAREN_MATH.sub(PROTECTED, line)
    line = AUTOLINK.sub(PROTECTED, line)
    line = LINK.sub(r"\1", line)
    line = URL.sub(PROTECTED, line)
    line = HTML_TAG.sub("", line)
    line = FOOTNOTE_REFERENCE.sub("", line)
    line = EMPHASIS.sub("", line)
    line = BLOCK_PREFIX.sub("", line, count=1)
    return line


def prose_segments(markdown: str):
    """逐行给出 ``(行号, 原始行, 要检查的正文片段列表)``，跳过代码块、公式块、标签与指令选项。"""
    lines = markdown.splitlines()
    index = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            index = end + 1
    fences: list[tuple[str, bool]] = []  # 打开的围栏：(结束标记, 是否整块跳过)
    in_display_math = False
    math_environment = None
    directive_options = False
    while index < len(lines):
        raw = lines[index]
        number = index + 1
        index += 1
        stripped = raw.strip()

        if in_display_math:
            if stripped.endswith("$$") or stripped.startswith("$$"):
                in_display_math = False
            continue
        if math_environment:
            if f"\\end{{{math_environment}}}" in raw:
                math_environment = None
            continue

        if fences and stripped.startswith(fences[-1][0]) and stripped.strip(fences[-1][0][0]) == "":
            fences.pop()
            directive_options = False
            continue
        opened = FENCE_OPEN.match(raw)
        if opened and not (fences and fences[-1][1]):
            marker, directive = opened.group(2), opened.group(4)
            verbatim = marker[0] in "`~" and (directive is None or directive in VERBATIM_DIRECTIVES)
            verbatim = verbatim or (directive is not None and directive in VERBATIM_DIRECTIVES)
            fences.append((marker, verbatim))
            directive_options = directive is not None
            continue  # 指令的参数（图片路径、标题等）不检查
        if fences and fences[-1][1]:
            continue
        if directive_options:
            if stripped.startswith(":") and re.match(r"^:[\w-]+:", stripped):
                continue
            directive_options = False

        if stripped.startswith("$$"):
            if not (len(stripped) > 2 and stripped.endswith("$$")):
                in_display_math = True
            continue
        environment = MATH_ENVIRONMENT.match(raw)
        if environment:
            if f"\\end{{{environment.group(1)}}}" not in raw:
                math_environment = environment.group(1)
            continue
        if LABEL_LINE.match(raw) or not stripped:
            continue
        if raw.startswith("    ") and not fences:  # 缩进代码块
            continue

        if stripped.startswith("|"):  # 表格：逐格检查
            cells = [strip_inline(cell).strip() for cell in stripped.strip("|").split("|")]
            segments = [cell for cell in cells if cell and not re.fullmatch(r":?-+:?", cell)]
        else:
            segments = [strip_inline(raw).strip()]
        yield number, raw, segments


def find_violations(markdown: str) -> list[Violation]:
    """返回一段 MyST Markdown 中违反本书中文排版规则的地方。"""
    violations = []
    for number, raw, segments in prose_segments(markdown):
        for segment in segments:
            for rule, message, pattern in RULES:
                if pattern.search(segment):
                    violations.append(Violation(number, rule, message, raw.strip()))
    return violations


# ---------------------------------------------------------------- 检查器本身的单元测试

@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("共有65个字符", "missing-space"),
        ("使用PyTorch 实现", "missing-space"),
        ("矩阵$A$的特征值", "missing-space"),
        ("调用`load_text`读取", "missing-space"),
        ("见{ref}`notation`。", "missing-space"),
        ("共有  65 个字符", "extra-space"),
        ("共有\u300065 个字符", "wrong-space"),
        ("状态 空间", "space-between-han"),
        ("首先， 我们", "space-at-punctuation"),
        ("矩阵 $A$ 。", "space-at-punctuation"),
        ("**数据。** 全书", "space-at-punctuation"),
        ("首先,我们", "half-width-punctuation"),
        ("S4D, 它", "half-width-punctuation"),
        ("步长 `dt`: 它", "half-width-punctuation"),
        ("这是一句话.", "half-width-punctuation"),
        ("状态空间模型(SSM)", "half-width-parenthesis"),
        ('所谓"状态"', "half-width-quote"),
    ],
)
def test_checker_flags_bad_text(text, rule):
    rules = {violation.rule for violation in find_violations(text)}
    assert rule in rules, f"{text!r} 应当违反 {rule}，实际只找到 {sorted(rules)}"


@pytest.mark.parametrize(
    "text",
    [
        "共有 65 个字符，使用 PyTorch 实现。",
        "矩阵 $A$ 的特征值；步长 $\\Delta$。",
        "状态空间模型（state space model，SSM）",
        "见 {ref}`notation`，形状 `(B, H, L)`。",
        "公式 $f(x) = (e^x - 1)/x$ 的数值精度",
        "链接 [PyTorch](https://pytorch.org) 与 https://example.org/a,b",
        "(ch-data)=",
        "| 符号 | 含义 |\n|---|---|\n| $B$（形状中） | 批大小（batch size） |",
        "English only, (fine): yes.",
        "“输入在一步之内不变”。",
        "```python\nx=1  # 中文注释,不检查\n```",
        "$$\nx_k = \\bar{A}x\\text{中文}\n$$ (eq-x)",
        "```{figure} images/a_b.png\n:name: fig-a\n\n状态空间模型的卷积核。\n```",
        "---\ntitle: a:b\n---\n正文。",
    ],
)
def test_checker_accepts_good_text(text):
    assert find_violations(text) == []


def test_checker_reports_line_numbers():
    violations = find_violations("第一行。\n\n第二行有65个。")
    assert [violation.line for violation in violations] == [3]


def test_checker_checks_figure_caption():
    caption = "```{figure} a.png\n:name: fig-a\n\n图注里有65个字符。\n```"
    assert [violation.rule for violation in find_violations(caption)] == ["missing-space"]


# ---------------------------------------------------------------- 书的全部页面

def notebook_markdown_cells(py_path: Path) -> list[tuple[int, str]]:
    """返回 ``(.py 中的起始行号, Markdown 源码)``；行号由单元的首行在 .py 注释里的位置确定。"""
    import jupytext

    file_lines = py_path.read_text(encoding="utf-8").splitlines()
    cells = []
    cursor = 0
    for cell in jupytext.read(py_path).cells:
        if cell.cell_type != "markdown" or not cell.source.strip():
            continue
        first = cell.source.splitlines()[0]
        start = None
        for position in range(cursor, len(file_lines)):
            if file_lines[position].lstrip("# ").rstrip() == first.strip():
                start = position + 1
                break
        if start is not None:
            cursor = start
        cells.append((start or 0, cell.source))
    return cells


def book_sources() -> list[Path]:
    return sorted(REPO_ROOT.glob("book/*.md")) + sorted(REPO_ROOT.glob("notebooks/[0-9][0-9]_*.py"))


def source_violations(path: Path) -> list[str]:
    """返回一个文件里的违例，每条形如 ``文件:行号: 说明: 原文``。"""
    relative = path.relative_to(REPO_ROOT)
    found = []
    if path.suffix == ".md":
        for violation in find_violations(path.read_text(encoding="utf-8")):
            found.append(f"{relative}:{violation.line}: {violation.message}: {violation.text}")
        return found
    for start, source in notebook_markdown_cells(path):
        for violation in find_violations(source):
            line = start + violation.line - 1 if start else f"?（某个 Markdown 单元的第 {violation.line} 行）"
            found.append(f"{relative}:{line}: {violation.message}: {violation.text}")
    return found


@pytest.mark.parametrize("path", book_sources(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_book_page_typography(path):
    found = source_violations(path)
    assert not found, f"{len(found)} 处中文排版问题：\n" + "\n".join(found)


def test_book_sources_found():
    names = {path.name for path in book_sources()}
    assert "intro.md" in names
    assert any(name.endswith(".py") for name in names), "notebooks/ 下没有找到 NN_*.py 章节"
