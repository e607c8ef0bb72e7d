"""中文字体：图中的中文、负号与 Δ 都有字形，不能出现“missing from font”的警告或日志。"""

import logging
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from s4lab.plotting import CHINESE_FONT_FAMILY, setup_chinese_font  # noqa: E402


def _draw_chinese_figure():
    fig, ax = plt.subplots()
    ax.plot([-3, -1, 2], [-0.5, 0.25, -1.5], label="验证损失（负值）")
    ax.set_title("中文标题：状态空间模型")
    ax.set_xlabel("步长 $\\Delta$")
    ax.set_ylabel("卷积核 $K_l$ 的数值")
    ax.legend()
    fig.canvas.draw()
    plt.close(fig)


def _missing_glyph_reports(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="matplotlib"):
            _draw_chinese_figure()
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    return [m for m in messages if "missing from font" in m or "Glyph" in m]


def test_chinese_figure_has_no_missing_glyphs(caplog):
    assert setup_chinese_font() == CHINESE_FONT_FAMILY
    assert _missing_glyph_reports(caplog) == []


def test_detector_catches_missing_glyphs(caplog):
    """对照：只用 DejaVu Sans 时同一张图必须报缺字形，证明上面的检查能失败。"""
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        assert _missing_glyph_reports(caplog) != []


def test_real_minus_sign_enabled():
    setup_chinese_font()
    assert matplotlib.rcParams["axes.unicode_minus"] is True
    assert matplotlib.rcParams["font.sans-serif"][0] == CHINESE_FONT_FAMILY
