"""``s4lab`` 命令行解析器的中文输出：参数无效时的报错与退出码 2，以及 -h 的帮助文本。"""

import subprocess
import sys

import pytest

from s4lab import cli, train_cli

SAMPLE = ["sample", "--checkpoint", "missing.pt", "--prompt", "ROMEO:"]

# 每一行：命令行参数、报错行开头的程序名、报错里必须出现的片段（参数名与收到的值）。
BAD_ARGUMENTS = [
    (["train", "--stop-at", "0"], "s4lab train", ["参数 --stop-at：", "0 无效：必须 ≥ 1"]),
    (["train", "--stop-at", "ten"], "s4lab train", ["参数 --stop-at：", "'ten' 不是整数"]),
    ([*SAMPLE, "--top-k", "0"], "s4lab sample", ["参数 --top-k：", "0 无效：必须 ≥ 1"]),
    ([*SAMPLE, "--max-new-tokens", "-5"], "s4lab sample", ["参数 --max-new-tokens：", "-5 无效：必须 ≥ 0"]),
    ([*SAMPLE, "--temperature", "-0.5"], "s4lab sample", ["参数 --temperature：", "-0.5 无效：必须是 ≥ 0 的有限数"]),
    ([*SAMPLE, "--temperature", "inf"], "s4lab sample", ["参数 --temperature：", "inf 无效"]),
    ([*SAMPLE, "--temperature", "hot"], "s4lab sample", ["参数 --temperature：", "'hot' 不是数"]),
    ([*SAMPLE, "--seed", "x1"], "s4lab sample", ["参数 --seed：", "'x1' 无效：需要 int 类型的值"]),
    (["sample", "--prompt", "ROMEO:"], "s4lab sample", ["缺少必需的参数：--checkpoint"]),
    (["sample", "--checkpoint"], "s4lab sample", ["参数 --checkpoint：需要一个值"]),
    (["book", "--only"], "s4lab book", ["参数 --only：至少需要一个值"]),
    (["bench", "--quick=yes"], "s4lab bench", ["参数 --quick：", "不接受值", "'yes'"]),
    (["train", "--frobnicate"], "s4lab train", ["无法识别的参数：--frobnicate"]),
    (["check", "extra"], "s4lab check", ["无法识别的参数：extra"]),
    (["bench", "--repeats", "x"], "s4lab bench", ["无法识别的参数：--repeats x"]),
    (["fly"], "s4lab", ["子命令 'fly' 无效：可选的值是 'book'、'check'、'train'、'sample'、'bench'"]),
    ([], "s4lab", ["缺少子命令：可选的值是 'book'、'check'、'train'、'sample'、'bench'"]),
]


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("argv, prog, fragments", BAD_ARGUMENTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_argument_reported_in_chinese(argv, prog, fragments, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith(f"用法：{prog} ")
    error_line = lines[-1]
    assert error_line.startswith(f"{prog}: 错误：")
    for fragment in fragments:
        assert fragment in error_line
    assert "usage:" not in err
    assert "error:" not in err
    assert "argument" not in err


def test_standalone_train_cli_uses_same_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["sample", "--checkpoint", "missing.pt", "--prompt", "a", "--top-k", "-3"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "s4lab sample: 错误：参数 --top-k：-3 无效：必须 ≥ 1" in err


def test_console_command_exits_2_in_chinese():
    result = subprocess.run(
        [sys.executable, "-m", "s4lab.cli", "train", "--stop-at", "-1"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("用法：s4lab train ")
    assert "s4lab train: 错误：参数 --stop-at：-1 无效：必须 ≥ 1" in result.stderr


@pytest.mark.parametrize("argv, prog", [([], "s4lab"), (["train"], "s4lab train"), (["bench"], "s4lab bench")])
def test_help_is_chinese(argv, prog, capsys):
    code, out, err = _run([*argv, "-h"], capsys)
    assert code == 0
    assert err == ""
    assert out.startswith(f"用法：{prog} ")
    assert "\n选项：\n" in out
    assert "-h, --help" in out
    assert "显示帮助并退出" in out
    for english in ("usage:", "options:", "positional arguments:", "show this help message"):
        assert english not in out


def test_top_level_help_lists_subcommands(capsys):
    _, out, _ = _run(["-h"], capsys)
    assert out.startswith("用法：s4lab [-h] {book,check,train,sample,bench} ...")
    assert "\n子命令：\n" in out
    for command in ("book", "check", "train", "sample", "bench"):
        assert f"\n    {command} " in out


def test_unrecognized_argument_uses_subcommand_usage(capsys):
    code, _, err = _run(["check", "extra"], capsys)
    assert code == 2
    assert err.startswith("用法：s4lab check [-h] [--root ROOT]\n")
    assert "{book,check" not in err


def test_standalone_cli_extras_use_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["train", "--frobnicate"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "s4lab train: 错误：无法识别的参数：--frobnicate" in err


def test_invalid_choices_joined_with_dunhao():
    message = "argument --mode: invalid choice: 'x' (choose from 'a', 'b', 'c')"
    assert cli.translate_argparse_message(message) == "参数 --mode：'x' 无效：可选的值是 'a'、'b'、'c'"


def test_unknown_argparse_message_kept_as_is():
    assert cli.translate_argparse_message("something new in argparse") == "something new in argparse"
    assert cli.translate_argparse_message("argument --x: something new") == "参数 --x：something new"
