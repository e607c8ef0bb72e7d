"""引用两侧的空格：引用显示成汉字时删去它与相邻汉字之间的空格，显示成拉丁字母、数字或方括号时保留。"""

import sys
from pathlib import Path

import pytest
from docutils import nodes
from docutils.utils import new_document

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "book" / "_ext"))

import math_search  # noqa: E402


def _paragraph(before, reference_text, after, pasted=False):
    document = new_document("page")
    if pasted:
        middle = nodes.inline(reference_text, reference_text, classes=["pasted-text"])
    else:
        middle = nodes.reference("", "", nodes.inline(reference_text, reference_text), refuri="#x")
    document += nodes.paragraph("", "", nodes.Text(before), middle, nodes.Text(after))
    math_search.tighten_reference_spaces(None, document, "page")
    return document.astext()


@pytest.mark.parametrize(
    "before, reference_text, after, expected",
    [
        ("由 ", "结论：结果表与如何解读", " 从各章读出", "由结论：结果表与如何解读从各章读出"),
        ("见 ", "图 3", "。", "见图 3。"),
        ("见 ", "S4D 初始化与 HiPPO", " 一章", "见 S4D 初始化与 HiPPO 一章"),
        ("见 ", "FFT 卷积", "。", "见 FFT 卷积。"),
        ("模型 ", "[6]", " 的", "模型 [6] 的"),
        ("a ", "结论", " b", "a 结论 b"),
        # 源码折行留下的换行与空格一样处理。
        ("独立做\n", "式 (35)", "，最后", "独立做式 (35)，最后"),
        ("独立做 \n ", "式 (35)", "，最后", "独立做式 (35)，最后"),
        ("见", "结论", "\n一节", "见结论一节"),
        ("见", "式 (35)", "\n一节", "见式 (35)\n一节"),
        ("model\n", "式 (35)", "。", "model\n式 (35)。"),
    ],
)
def test_reference_spaces(before, reference_text, after, expected):
    assert _paragraph(before, reference_text, after) == expected


def test_pasted_glue_text_spaces():
    assert _paragraph("上以 ", "完整模式", " 执行", pasted=True) == "上以完整模式执行"
    assert _paragraph("前 ", "12", " 章", pasted=True) == "前 12 章"


def test_code_next_to_reference_keeps_space():
    document = new_document("page")
    reference = nodes.reference("", "", nodes.inline("结论", "结论"), refuri="#x")
    document += nodes.paragraph("", "", nodes.literal("x", "x"), nodes.Text(" "), reference)
    math_search.tighten_reference_spaces(None, document, "page")
    assert document.astext() == "x 结论"

