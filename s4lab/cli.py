"""命令行入口 ``s4lab``。

- ``s4lab book``：主任务，按顺序在完整模式下执行全部章节、写回输出，再构建 HTML 书；
- ``s4lab check``：检查每一对 ``.py``/``.ipynb`` 是否同步、已执行、没有错误输出、没有过期；
- ``s4lab train`` / ``s4lab sample``：按 YAML 配置训练（可续训）与从检查点生成文本；
- ``s4lab bench``：效率基准测试（``--quick`` 供 CI 使用），结果写成 JSON 并打印一张表。
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s4lab import bench, notebooks, train_cli
from s4lab.runtime import is_quick


def _root(value) -> Path:
    return notebooks.find_root(value)


def cmd_book(args) -> int:
    root = _root(args.root)
    if args.no_execute:
        if args.only or args.quick or args.no_build:
            print("错误：--no-execute 只构建 HTML，不能与 --only、--quick 或 --no-build 同时使用。", file=sys.stderr)
            return 2
        notebooks.build_book(root, strict=args.strict)
        print(f"HTML 书已生成：{root / '_build' / 'html' / 'index.html'}")
        return 0
    notebooks.run_main_job(root, only=args.only, quick=args.quick or is_quick(), build=not args.no_build, strict=args.strict)
    return 0


def cmd_check(args) -> int:
    root = _root(args.root)
    problems = notebooks.check_notebooks(root)
    count = len(notebooks.list_notebooks(root))
    if problems:
        print(f"发现 {len(problems)} 个问题：", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{count} 章笔记本全部同步、已在完整模式下执行且输出新鲜。")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4lab", description="《S4D：从状态空间模型到语言模型》的配套命令。")
    sub = parser.add_subparsers(dest="command", required=True)

    book = sub.add_parser("book", help="执行全部章节（完整模式）并构建 HTML 书")
    book.add_argument("--root", default=None, help="书的根目录（含 _toc.yml），默认从当前目录向上寻找")
    book.add_argument("--only", nargs="+", metavar="CHAPTER", help="只执行这些章节，例如 01_data")
    book.add_argument("--quick", action="store_true", help="快速模式（与设置 S4LAB_QUICK=1 相同），输出不能用于提交")
    book.add_argument("--no-build", action="store_true", help="只执行章节，不构建 HTML")
    book.add_argument("--no-execute", action="store_true", help="不执行章节，只用已提交的输出构建 HTML")
    book.add_argument("--strict", action="store_true", help="构建时把警告当作错误（-W -n --keep-going）")
    book.set_defaults(func=cmd_book)

    check = sub.add_parser("check", help="检查笔记本是否同步、已执行且输出新鲜")
    check.add_argument("--root", default=None, help="书的根目录（含 _toc.yml）")
    check.set_defaults(func=cmd_check)

    train_cli.add_subcommands(sub)
    bench.add_subcommands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"错误：{error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
