"""绘图：注册随包附带的中文字体，以及全书共用的图表辅助函数。

本模块只接收数组与数字，不导入任何模型或训练代码。
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib import font_manager

# mplfonts 包里附带的思源黑体（Noto Sans CJK SC，SIL Open Font License）。
# 同一个包里还有 SimHei，但它不是自由授权的字体，这里不用。
_FONT_FILE = "NotoSansCJKsc-Regular.otf"
CHINESE_FONT_FAMILY = "Noto Sans CJK SC"


def chinese_font_path() -> Path:
    """返回 mplfonts 附带的 Noto Sans CJK SC 字体文件路径。"""
    import mplfonts

    root = Path(mplfonts.__file__).parent
    matches = sorted(root.rglob(_FONT_FILE))
    if not matches:
        raise FileNotFoundError(
            f"在 {root} 中没有找到字体文件 {_FONT_FILE}：请重新安装 mplfonts==0.0.11"
            "（pip install --force-reinstall mplfonts==0.0.11）。"
        )
    return matches[0]


def setup_chinese_font() -> str:
    """注册中文字体并设为 matplotlib 的默认无衬线字体，返回字体族名。

    不需要系统装有中文字体，也不联网；可以重复调用。同时让负号使用真正的减号 U+2212
    （这个字体含有该字形），数学公式使用 matplotlib 自带的 DejaVu 字形。
    """
    path = chinese_font_path()
    known = {Path(f.fname) for f in font_manager.fontManager.ttflist}
    if path not in known:
        font_manager.fontManager.addfont(str(path))
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != CHINESE_FONT_FAMILY]
    matplotlib.rcParams["font.sans-serif"] = [CHINESE_FONT_FAMILY, *sans]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = True
    matplotlib.rcParams["mathtext.fontset"] = "dejavusans"
    return CHINESE_FONT_FAMILY
