"""``s4lab bench``：JSON 的字段、交替计时、交点与目标比值的计算。"""

import argparse
import json

import pytest

from s4lab import bench
from s4lab.models import LMConfig

TINY = {
    "repeats": 5,
    "layer": {"batch": 1, "d_model": 8, "d_state": 4, "n_heads": 2, "lengths": [16, 64]},
    "kernel": {"d_model": 8, "d_state": 4, "lengths": [16, 64]},
    "generation": {"config": LMConfig(d_model=8, n_layers=1, d_state=4, n_heads=2), "contexts": [16, 32], "steps": 2},
    "training": {"config": LMConfig(d_model=8, n_layers=1, d_state=4, n_heads=2, seq_len=16), "batch": 2},
    "matmul_size": 32,
}


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """用极小的规模跑一遍 ``s4lab bench --quick`` 的命令行路径（不测内存），返回写出的 JSON。"""
    tmp_path = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(bench, "suite_sizes", lambda quick: TINY)
        monkeypatch.setenv("S4LAB_RUNS", str(tmp_path / "runs"))
        parser = argparse.ArgumentParser()
        bench.add_subcommands(parser.add_subparsers(dest="command"))
        out = tmp_path / "bench.json"
        args = parser.parse_args(["bench", "--quick", "--no-memory", "--out", str(out)])
        assert args.func(args) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _check_summary(summary):
    assert summary["runs"] >= 5
    assert 0 < summary["min"] <= summary["median"] <= summary["max"]


def test_bench_json_top_level(bench_json):
    assert bench_json["mode"] == "quick"
    assert set(bench_json["cases"]) == {"layers", "kernel", "generation", "training", "main_job"}
    machine = bench_json["machine"]
    for key in ("cpu", "cpu_count", "torch_threads", "python", "torch", "numpy"):
        assert key in machine


def test_bench_layer_case(bench_json):
    layers = bench_json["cases"]["layers"]
    assert [row["L"] for row in layers["rows"]] == [16, 64]
    for row in layers["rows"]:
        assert set(row["seconds"]) == set(bench.LAYER_VARIANTS)
        for summary in row["seconds"].values():
            _check_summary(summary)
        assert set(row["peak_memory_mib"]) == set(bench.LAYER_VARIANTS)
    assert "crossover_L_grid" in layers
    assert set(layers["slopes"]) == set(bench.LAYER_VARIANTS)


def test_bench_kernel_generation_training(bench_json):
    cases = bench_json["cases"]
    for row in cases["kernel"]["rows"]:
        _check_summary(row["seconds"]["chunked"])
        assert row["relative_error"] < 1e-5
    for row in cases["generation"]["rows"]:
        assert set(row["seconds_per_token"]) == set(bench.GENERATION_VARIANTS)
    training = cases["training"]
    assert training["matmul"]["flops_per_second"] > 0
    for model in training["models"].values():
        assert model["tokens_per_second"] > 0
        assert model["utilisation"] > 0


def test_bench_reports_missing_main_job(bench_json):
    main_job = bench_json["cases"]["main_job"]
    assert main_job["available"] is False
    assert "s4lab book" in main_job["message"]


def test_goals_not_evaluated_at_small_size(bench_json):
    goals = bench_json["goals"]
    assert goals["speedup_vs_vandermonde_L1024"] is None
    assert goals["met"]["speedup_vs_vandermonde_L1024"] is None


def test_goals_from_full_size_rows():
    def row(L, fast, slow, sdpa):
        make = lambda t: {"median": t, "min": t, "max": t, "runs": 5}
        return {"L": L, "seconds": {"s4d_fast": make(fast), "s4d_vandermonde": make(slow), "attention_sdpa": make(sdpa)}}

    layers = {"batch": 8, "d_model": 128, "d_state": 64, "rows": [row(256, 1, 1, 0.5), row(1024, 1, 4, 2), row(16384, 2, 3, 10)]}
    goals = bench.goals(layers)
    assert goals["speedup_vs_vandermonde_L1024"] == pytest.approx(4.0)
    assert goals["speedup_vs_vandermonde_L16384"] == pytest.approx(1.5)
    assert goals["min_speedup_vs_sdpa_L_ge_512"] == pytest.approx(2.0)
    assert goals["met"] == {
        "speedup_vs_vandermonde_L1024": True,
        "speedup_vs_vandermonde_L16384": False,
        "min_speedup_vs_sdpa_L_ge_512": True,
    }


def test_crossover_length():
    lengths = [256, 1024, 4096]
    assert bench.crossover_length(lengths, [1, 3, 4], [2, 2, 8]) == (4096, 1708)
    assert bench.crossover_length(lengths, [1, 1, 1], [2, 2, 2]) == (256, None)
    assert bench.crossover_length(lengths, [3, 3, 3], [2, 2, 2]) == (None, None)


def test_time_alternating_interleaves_variants():
    calls = []
    bench.time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 5, bench.torch.device("cpu"))
    assert calls == ["a", "b"] * 6


def test_time_alternating_rejects_few_repeats():
    with pytest.raises(ValueError, match="至少"):
        bench.time_alternating({"a": lambda: None}, 3, bench.torch.device("cpu"))


@pytest.mark.skipif(not bench.Path("/proc/self/status").is_file(), reason="峰值内存的测量需要 Linux 的 /proc")
def test_peak_memory_grows_with_naive_attention_length():
    """朴素注意力的 (B, heads, L, L) 矩阵：L = 1024 时单个得分矩阵就有 32 MiB，子进程测到的增量必须超过它。"""
    small = bench.measure_peak_memory("attention_naive", 2, 16, 4, 4, 64)
    large = bench.measure_peak_memory("attention_naive", 2, 16, 4, 4, 1024)
    assert small is not None and large is not None
    assert large > 32
    assert large > 4 * small


def test_crossover_description_covers_every_case():
    from s4lab.bench import describe_crossover

    assert "都不比" in describe_crossover(None, None, [256, 1024])
    assert "交点在网格之下" in describe_crossover(256, None, [256, 1024])
    assert "L≈700" in describe_crossover(1024, 700, [256, 1024])


@pytest.fixture
def no_measuring(monkeypatch):
    """把 run_suite 换成一个记录调用的替身：这些测试要求在测量之前就报错。"""
    calls = []
    monkeypatch.setattr(bench, "run_suite", lambda **kwargs: calls.append(kwargs) or pytest.fail("不该开始测量"))
    return calls


def _bench_exit(argv, capsys):
    from s4lab import cli

    code = cli.main(["bench", "--no-memory", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bench_invalid_device_rejected(no_measuring, tmp_path, capsys):
    code, out, err = _bench_exit(["--device", "nosuch", "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2
    assert out == ""
    assert err == "错误：--device 'nosuch' 无效：允许 auto、cpu、cuda 或 cuda:0 这样的写法。\n"
    assert no_measuring == []


def test_bench_cuda_without_cuda_rejected(no_measuring, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    code, _, err = _bench_exit(["--device", "cuda", "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2
    assert err == "错误：--device 'cuda' 无效：这台机器上没有可用的 CUDA 设备。\n"
    assert "Traceback" not in err
    assert no_measuring == []


def test_bench_unwritable_out_rejected(no_measuring, tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("", encoding="utf-8")
    out = blocker / "sub" / "bench.json"
    code, _, err = _bench_exit(["--out", str(out)], capsys)
    assert code == 2
    assert err.startswith(f"错误：--out {out} 无效：{blocker} 是一个文件，不是目录")
    assert "请用 --out 换一个可写的路径" in err
    assert no_measuring == []
    assert blocker.read_text(encoding="utf-8") == ""


def test_bench_out_folder_rejected(no_measuring, tmp_path, capsys):
    code, _, err = _bench_exit(["--out", str(tmp_path)], capsys)
    assert code == 2
    assert "这是一个目录" in err
    assert no_measuring == []


def test_output_path_check_leaves_no_trace(tmp_path):
    out = tmp_path / "a" / "b" / "bench.json"
    assert bench.output_path_problem(out) is None
    assert list(tmp_path.iterdir()) == []


def test_bench_writes_json_after_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_suite", lambda **kwargs: {"mode": "quick", "device": kwargs["device"]})
    monkeypatch.setattr(bench, "format_table", lambda results: "表")
    out = tmp_path / "new" / "bench.json"
    code, stdout, _ = _bench_exit(["--quick", "--device", "cpu", "--out", str(out)], capsys)
    assert code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == {"mode": "quick", "device": "cpu"}
    assert f"结果已写入 {out}" in stdout


@pytest.mark.parametrize("device", ["mps", "meta"])
def test_bench_other_device_types_rejected(no_measuring, tmp_path, capsys, device):
    code, _, err = _bench_exit(["--device", device, "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2
    assert err == f"错误：--device '{device}' 无效：允许 auto、cpu、cuda 或 cuda:0 这样的写法。\n"
    assert no_measuring == []


def test_bench_missing_cuda_index_rejected(no_measuring, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench.torch.cuda, "device_count", lambda: 1)
    code, _, err = _bench_exit(["--device", "cuda:7", "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2
    assert "只有 1 个 CUDA 设备" in err
    assert no_measuring == []


def test_bad_quick_variable_is_one_line_error(no_measuring, tmp_path, monkeypatch, capsys):
    """S4LAB_QUICK 写错时，s4lab 的任何子命令都打印一行中文错误，而不是在建解析器时抛出异常。"""
    from s4lab import cli

    monkeypatch.setenv("S4LAB_QUICK", "2")
    assert cli.build_parser() is not None
    code = cli.main(["bench", "--out", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "S4LAB_QUICK='2' 无效" in err
    assert "Traceback" not in err
    assert no_measuring == []
