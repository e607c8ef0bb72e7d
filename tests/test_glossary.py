"""术语表：“首次出现”一栏与各章实际首次使用该术语的章节一致，每个术语都在中文搜索的 jieba 词表里。"""

import re
from pathlib import Path

import jupytext
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*\{ref\}`([\w-]+)`\s*\|\s*$")
LABEL = re.compile(r"^\((ch-[\w-]+)\)=\s*$", re.M)


def glossary_rows():
    text = (REPO_ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    return [m.groups() for line in text.splitlines() if (m := ROW.match(line))]


def chapters_in_reading_order():
    """按目录顺序返回各章的 (标签, markdown 文本)。"""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("notebooks/")]
    chapters = []
    for name in files:
        notebook = jupytext.read(REPO_ROOT / f"{name}.py")
        markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        label = LABEL.search(markdown)
        assert label, f"{name} 缺少形如 (ch-xxx)= 的章节标签"
        chapters.append((label.group(1), markdown))
    return chapters


def test_glossary_has_rows():
    assert len(glossary_rows()) >= 30


@pytest.mark.parametrize("term, english, label", glossary_rows())
def test_first_use_column_matches_chapters(term, english, label):
    first = next((lab for lab, text in chapters_in_reading_order() if term in text), None)
    assert first is not None, f"术语“{term}”没有在任何一章的正文中出现：删掉这一行，或在正文里使用它"
    assert label == first, f"术语“{term}”首次出现在 {first}，术语表写的是 {label}"


def test_every_term_is_in_search_dictionary():
    words = {
        line.split()[0]
        for line in (REPO_ROOT / "book" / "jieba_dict.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    missing = [term for term, _, _ in glossary_rows() if term not in words]
    assert missing == []
