"""命令行入口 ``s4lab``。

- ``s4lab book``：主任务，按顺序在完整模式下执行全部章节、写回输出，再构建 HTML 书；
- ``s4lab check``：检查每一对 ``.py``/``.ipynb`` 是否同步、已执行、没有错误输出、没有过期；
- ``s4lab train`` / ``s4lab sample``：按 YAML 配置训练（可续训）与从检查点生成文本；
- ``s4lab bench``：效率基准测试（``--quick`` 供 CI 使用），结果写成 JSON 并打印一张表。
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from s4lab import bench, notebooks, train_cli
from s4lab.runtime import is_quick

# argparse 自己的报错是写死在模块里的英文（下面按 Python 3.11 的原文匹配）。ChineseArgumentParser.error
# 按原文匹配后改写成中文，所以不需要改 gettext 的全局设置。
# NOTE: 表里没有的报错（例如 s4lab 用不到的互斥参数组）和新版 Python 改过措辞的报错仍是英文。
_ARGPARSE_MESSAGES = [
    (re.compile(r"the following arguments are required: (?P<names>.+)"), "缺少必需的参数：{names}"),
    (re.compile(r"unrecognized arguments: (?P<values>.+)"), "无法识别的参数：{values}"),
    (re.compile(r"invalid choice: (?P<value>.+) \(choose from (?P<choices>.+)\)"), "{value} 无效：可选的值是 {choices}"),
    (re.compile(r"invalid (?P<type>\w+) value: (?P<value>.+)"), "{value} 无效：需要 {type} 类型的值"),
    (re.compile(r"expected one argument"), "需要一个值"),
    (re.compile(r"expected at most one argument"), "最多接受一个值"),
    (re.compile(r"expected at least one argument"), "至少需要一个值"),
    (re.compile(r"ignored explicit argument (?P<value>.+)"), "这个选项不接受值，收到 {value}"),
    (re.compile(r"ambiguous option: (?P<option>\S+) could match (?P<matches>.+)"), "选项 {option} 有歧义，可能是 {matches}"),
]
_ARGUMENT_PREFIX = re.compile(r"argument (?P<name>.+?): (?P<message>.+)", re.DOTALL)


def translate_argparse_message(message: str) -> str:
    """把 argparse 的英文报错改写成中文。认不出的部分原样保留。"""
    prefixed = _ARGUMENT_PREFIX.fullmatch(message)
    if prefixed:
        return f"参数 {prefixed['name']}：{translate_argparse_message(prefixed['message'])}"
    for pattern, template in _ARGPARSE_MESSAGES:
        matched = pattern.fullmatch(message)
        if matched:
            fields = matched.groupdict()
            if "choices" in fields:
                # argparse 用半角逗号分隔可选值（"'a', 'b'"），中文列举用顿号。
                fields["choices"] = "、".join(fields["choices"].split(", "))
            return template.format(**fields)
    return message


# 帮助文本中顶格、以汉字加半角冒号结尾的行，即 argparse 写出的中文分组标题，例如“选项:”。
_CHINESE_HEADING = re.compile(r"^(\S.*[\u3400-\u9fff]):$", re.MULTILINE)


class ChineseHelpFormatter(argparse.HelpFormatter):
    """用法行以“用法：”开头、分组标题后用全角冒号的帮助格式。"""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)

    def format_help(self):
        # argparse 在每个分组标题后固定加半角冒号，中文标题后应是全角冒号。
        return _CHINESE_HEADING.sub(r"\1：", super().format_help())


class ChineseArgumentParser(argparse.ArgumentParser):
    """帮助与报错都用中文的解析器。``add_subparsers`` 建出的子命令解析器也是这个类。

    报错的格式是 ``s4lab train: 错误：…``，先打印用法行，退出码 2（与 argparse 相同）。
    子命令后面无法识别的参数由这个子命令的解析器报错，用法行与程序名都是子命令的。
    """

    def __init__(self, *args, **kwargs):
        add_help = kwargs.pop("add_help", True)
        kwargs.setdefault("formatter_class", ChineseHelpFormatter)
        super().__init__(*args, add_help=False, **kwargs)
        self._commands = None  # add_subparsers() 返回的动作
        self._positionals.title = "位置参数"
        self._optionals.title = "选项"
        if add_help:
            # 与 argparse 自带的 -h 相同，只换掉英文的说明。
            prefix = "-" if "-" in self.prefix_chars else self.prefix_chars[0]
            self.add_argument(
                prefix + "h", prefix * 2 + "help", action="help", default=argparse.SUPPRESS, help="显示帮助并退出"
            )

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("title", "子命令")
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def _show_commands_in_usage(self) -> None:
        # 用法行里列出全部子命令。子命令在 add_subparsers() 之后才加入，所以在格式化与解析前再设置。
        if self._commands is not None:
            self._commands.metavar = "{" + ",".join(self._commands.choices) + "}"

    def format_usage(self):
        self._show_commands_in_usage()
        return super().format_usage()

    def format_help(self):
        self._show_commands_in_usage()
        return super().format_help()

    def parse_known_args(self, args=None, namespace=None):
        self._show_commands_in_usage()
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner = self
            if self._commands is not None:
                command = getattr(parsed, self._commands.dest, None)
                owner = self._commands.choices.get(command, self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _describe_command_error(self, message: str) -> str | None:
        """把缺少子命令、子命令无效这两种报错写成中文；其他报错返回 None。"""
        if self._commands is None:
            return None
        metavar = self._commands.metavar
        choices = "、".join(repr(name) for name in self._commands.choices)
        if message == f"the following arguments are required: {metavar}":
            return f"缺少子命令：可选的值是 {choices}"
        invalid = re.fullmatch(rf"argument {re.escape(metavar)}: invalid choice: (?P<value>.+?) \(choose from .+\)", message)
        if invalid:
            return f"子命令 {invalid['value']} 无效：可选的值是 {choices}"
        return None

    def error(self, message):
        self.print_usage(sys.stderr)
        text = self._describe_command_error(message) or translate_argparse_message(message)
        self.exit(2, f"{self.prog}: 错误：{text}\n")


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
    parser = ChineseArgumentParser(prog="s4lab", description="《S4D：从状态空间模型到语言模型》的配套命令。")
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
