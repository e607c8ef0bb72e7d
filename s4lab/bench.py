"""效率基准 ``s4lab bench``：序列混合层、卷积核、逐词元生成与训练吞吐量的实测。

每个用例把要比较的几个变体放在同一个进程里交替运行：先各热身一次，再轮流各计时一次，
重复至少 5 轮，报告每个变体的中位数、最小值与最大值（秒）。这样机器负载的起伏会同时落在
所有变体上，比值比单个时间可靠。

峰值内存：在一个新的子进程里建好模型与输入，读 ``/proc/self/status`` 的 VmRSS，
再运行一次前向 + 反向，读 VmHWM（进程的峰值常驻内存）；两者之差就是这一步额外占用的内存。
这个方法只在 Linux 上可用，其他系统上内存一栏为 null。

结果写成一个 JSON 文件（字段见 ``run_suite`` 的文档），并在标准输出打印一张短表。
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s4lab import generation, ssm
from s4lab.layers import CausalSelfAttention, S4DLayer
from s4lab.models import LMConfig, build_model, parameter_groups
from s4lab.runtime import is_quick, runs_dir

JSON_FORMAT = 1
LAYER_VARIANTS = ("s4d_fast", "s4d_vandermonde", "attention_sdpa", "attention_naive")
GENERATION_VARIANTS = ("s4d_recurrent", "s4d_recompute", "transformer_no_cache", "transformer_kv_cache")


def suite_sizes(quick: bool) -> dict:
    """基准的规模。完整模式是目标中写明的规模；快速模式只让 CI 走通同一条代码路径。"""
    if quick:
        return {
            "repeats": 5,
            "layer": {"batch": 2, "d_model": 32, "d_state": 16, "n_heads": 4, "lengths": [256, 1024]},
            "kernel": {"d_model": 32, "d_state": 16, "lengths": [256, 1024]},
            "generation": {"config": LMConfig(d_model=32, n_layers=2, d_state=16), "contexts": [256, 1024], "steps": 4},
            "training": {"config": LMConfig(d_model=32, n_layers=2, d_state=16, seq_len=128), "batch": 4},
            "matmul_size": 512,
        }
    return {
        "repeats": 5,
        "layer": {"batch": 8, "d_model": 128, "d_state": 64, "n_heads": 4, "lengths": [256, 1024, 4096, 16384]},
        "kernel": {"d_model": 128, "d_state": 64, "lengths": [256, 1024, 4096, 16384]},
        "generation": {"config": LMConfig(), "contexts": [256, 1024, 4096, 16384], "steps": 8},
        "training": {"config": LMConfig(), "batch": 32},
        "matmul_size": 2048,
    }


# ----------------------------------------------------------------------------- 计时


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summary(seconds: list[float]) -> dict:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "runs": len(seconds),
    }


def time_alternating(variants: dict, repeats: int, device: torch.device) -> dict:
    """交替计时：每个变体先热身一次，然后 ``repeats`` 轮里每轮按顺序各运行一次。

    ``variants``：名字 → 无参数函数。返回 名字 → {"median", "min", "max", "runs"}（秒）。
    """
    if repeats < 5:
        raise ValueError(f"repeats={repeats!r} 太少：每个用例至少计时 5 次。")
    for run in variants.values():
        run()
        _synchronize(device)
    seconds = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            _synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return {name: _summary(values) for name, values in seconds.items()}


# ----------------------------------------------------------------------------- 用例 1：混合层


class NaiveCausalAttention(nn.Module):
    """显式构造 (L, L) 注意力矩阵的因果自注意力，参数与 ``CausalSelfAttention`` 共用，用作 O(L²) 内存的对照。"""

    def __init__(self, reference: CausalSelfAttention):
        super().__init__()
        self.reference = reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from s4lab.layers import rotary_embedding

        layer = self.reference
        B, L, H = x.shape
        q, k, v = layer.qkv(x).split(H, dim=-1)  # 各为 (B, L, H)
        q, k, v = (t.view(B, L, layer.n_heads, H // layer.n_heads).transpose(1, 2) for t in (q, k, v))
        if layer.rope:
            q, k = rotary_embedding(q, k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, L, L)
        mask = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
        weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)  # (B, heads, L, L)
        y = (weights @ v).transpose(1, 2).reshape(B, L, H)
        return layer.out(y)


def build_layer(variant: str, d_model: int, d_state: int, n_heads: int) -> nn.Module:
    """按名字构建一个混合层（见 ``LAYER_VARIANTS``），种子固定。"""
    torch.manual_seed(0)
    if variant in ("s4d_fast", "s4d_vandermonde"):
        layer = S4DLayer(d_model, d_state)
        layer.kernel_method = "chunked" if variant == "s4d_fast" else "vandermonde"
        return layer
    if variant == "attention_sdpa":
        return CausalSelfAttention(d_model, n_heads)
    if variant == "attention_naive":
        return NaiveCausalAttention(CausalSelfAttention(d_model, n_heads))
    raise ValueError(f"未知的混合层变体 {variant!r}：可选 {', '.join(LAYER_VARIANTS)}。")


def naive_attention_bytes(batch: int, n_heads: int, L: int) -> int:
    """朴素注意力前向 + 反向同时存在的 (B, heads, L, L) float32 矩阵的估计字节数（得分、权重与各自的梯度，按 4 份计）。"""
    return 4 * batch * n_heads * L * L * 4


def _memory_budget_bytes() -> int:
    """朴素注意力可用的内存：物理内存的一半（读不到时按 8 GiB 估计）。"""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _layer_step(layer: nn.Module, x: torch.Tensor):
    def run():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return run


def _read_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status 中没有 {field} 字段。")


def memory_child(variant: str, batch: int, d_model: int, d_state: int, n_heads: int, L: int) -> None:
    """在子进程中运行：打印一次前向 + 反向额外占用的峰值常驻内存（MiB），JSON 一行。"""
    torch.set_num_threads(int(os.environ.get("S4LAB_BENCH_THREADS", torch.get_num_threads())))
    layer = build_layer(variant, d_model, d_state, n_heads)
    x = torch.randn(batch, L, d_model, requires_grad=True)
    baseline = _read_status_kib("VmRSS")
    _layer_step(layer, x)()
    peak = _read_status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - baseline) / 1024}))


def measure_peak_memory(variant: str, batch: int, d_model: int, d_state: int, n_heads: int, L: int):
    """在新的子进程里测一次前向 + 反向的峰值内存增量（MiB）；不是 Linux 或子进程失败时返回 None。"""
    if not Path("/proc/self/status").is_file():
        return None
    code = (
        "from s4lab.bench import memory_child; "
        f"memory_child({variant!r}, {batch}, {d_model}, {d_state}, {n_heads}, {L})"
    )
    env = dict(os.environ, S4LAB_BENCH_THREADS=str(torch.get_num_threads()))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        print(f"警告：{variant} 在 L={L} 的内存测量子进程失败：{result.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


def crossover_length(lengths: list[int], s4d: list[float], attention: list[float]):
    """S4D 从哪个长度起（并且此后一直）快于注意力。

    返回 ``(grid, estimate)``：``grid`` 是网格上的这个长度，``estimate`` 在它与前一个长度之间
    按 log(时间比) 对 log L 线性插值得到的估计；S4D 在所有长度上都快时 estimate 为 None（交点在网格之下），
    在最长的长度上仍然慢时两者都为 None。
    """
    faster = [s < a for s, a in zip(s4d, attention)]
    for i in range(len(lengths)):
        if all(faster[i:]):
            if i == 0:
                return lengths[0], None
            r0 = math.log(s4d[i - 1] / attention[i - 1])
            r1 = math.log(s4d[i] / attention[i])
            x0, x1 = math.log(lengths[i - 1]), math.log(lengths[i])
            return lengths[i], round(math.exp(x0 + (x1 - x0) * r0 / (r0 - r1)))
    return None, None


def describe_crossover(grid, estimate, lengths: list[int]) -> str:
    """把 :func:`crossover_length` 的结果写成一句话。"""
    if grid is None:
        return f"在测过的长度上（最大 L={max(lengths)}）S4D（分块核）都不比 SDPA 注意力快"
    if estimate is None:
        return f"S4D（分块核）在测过的最小长度 L={grid} 上已经快于 SDPA 注意力，交点在网格之下"
    return f"S4D（分块核）从网格上的 L={grid} 起快于 SDPA 注意力，插值估计交点 L≈{estimate}"


def case_layers(sizes: dict, repeats: int, device: torch.device, measure_memory: bool = True) -> dict:
    """用例 1：混合层前向 + 反向的时间与峰值内存随 L 的变化，以及 S4D 快于 SDPA 注意力的交点。"""
    batch, H, N, heads = sizes["batch"], sizes["d_model"], sizes["d_state"], sizes["n_heads"]
    budget = _memory_budget_bytes()
    rows = []
    for L in sizes["lengths"]:
        variants = {}
        skipped = {}
        for name in LAYER_VARIANTS:
            if name == "attention_naive" and naive_attention_bytes(batch, heads, L) > budget:
                skipped[name] = f"估计需要 {naive_attention_bytes(batch, heads, L) / 2**30:.1f} GiB，超过内存预算 {budget / 2**30:.1f} GiB"
                continue
            layer = build_layer(name, H, N, heads).to(device)
            x = torch.randn(batch, L, H, device=device, requires_grad=True)
            variants[name] = _layer_step(layer, x)
        times = time_alternating(variants, repeats, device)
        del variants
        memory = {}
        for name in times:
            memory[name] = (
                measure_peak_memory(name, batch, H, N, heads, L) if measure_memory and device.type == "cpu" else None
            )
        rows.append({"L": L, "seconds": times, "peak_memory_mib": memory, "skipped": skipped})
    lengths = [row["L"] for row in rows]
    fast = [row["seconds"]["s4d_fast"]["median"] for row in rows]
    sdpa = [row["seconds"]["attention_sdpa"]["median"] for row in rows]
    grid, estimate = crossover_length(lengths, fast, sdpa)
    return {
        "batch": batch,
        "d_model": H,
        "d_state": N,
        "n_heads": heads,
        "rows": rows,
        "crossover_L_grid": grid,
        "crossover_L_estimate": estimate,
        "slopes": _slopes(rows),
    }


def _slopes(rows: list[dict]) -> dict:
    """每个变体的中位时间在 log-log 坐标下对 L 的最小二乘斜率（只用测到的长度，至少两个）。"""
    slopes = {}
    for name in LAYER_VARIANTS:
        points = [(row["L"], row["seconds"][name]["median"]) for row in rows if name in row["seconds"]]
        if len(points) >= 2:
            x = np.log([p[0] for p in points])
            y = np.log([p[1] for p in points])
            slopes[name] = float(np.polyfit(x, y, 1)[0])
    return slopes


# ----------------------------------------------------------------------------- 用例 2：卷积核


def case_kernel(sizes: dict, repeats: int, device: torch.device) -> dict:
    """用例 2：只生成卷积核（前向），分块算法与直接的范德蒙德公式，附两者的相对误差。"""
    H, N = sizes["d_model"], sizes["d_state"]
    torch.manual_seed(0)
    layer = S4DLayer(H, N).to(device)
    A, C, log_dt = layer.A().detach(), layer.C_complex().detach(), torch.log(layer.dt()).detach()
    rows = []
    for L in sizes["lengths"]:
        variants = {
            method: (lambda m=method: ssm.s4d_kernel(A, C, log_dt, L, method=m))
            for method in ssm.KERNEL_METHODS
        }
        times = time_alternating(variants, repeats, device)
        fast = ssm.s4d_kernel(A, C, log_dt, L, method="chunked").double()
        direct = ssm.s4d_kernel(A, C, log_dt, L, method="vandermonde").double()
        error = ((fast - direct).norm() / direct.norm()).item()
        rows.append({"L": L, "seconds": times, "relative_error": error})
    return {"d_model": H, "d_state": N, "rows": rows}


# ----------------------------------------------------------------------------- 用例 3：生成


def case_generation(sizes: dict, repeats: int, device: torch.device) -> dict:
    """用例 3：已有上下文长度为 T 时再生成一个词元的代价（秒/词元），批大小 1，随机初始化的模型。

    - ``s4d_recurrent``：递推模式 ``generation.step``；
    - ``s4d_recompute``：对整段上下文重新做卷积模式前向，取最后一个位置；
    - ``transformer_no_cache``：对整段上下文重新前向；
    - ``transformer_kv_cache``：``generation.step`` 读 KV 缓存。
    带状态的两种每次计时连续生成 ``steps`` 个词元再取平均，计时前从 ``prefill`` 的状态复制一份，
    所以每轮的上下文长度相同。
    """
    config, steps = sizes["config"], sizes["steps"]
    models = {}
    for name in ("s4d", "transformer"):
        torch.manual_seed(0)
        models[name] = build_model(name, config).to(device).eval()
    rows = []
    for T in sizes["contexts"]:
        idx = torch.randint(0, config.vocab_size, (1, T), generator=torch.Generator().manual_seed(T)).to(device)
        tokens = idx[:, :steps].T.contiguous()  # (steps, 1)：生成时读入的词元，内容不影响代价
        _, s4d_state = generation.prefill(models["s4d"], idx)
        _, kv_state = generation.prefill(models["transformer"], idx)

        def stepper(model, state):
            def run():
                fresh = _copy_state(state)
                for token in tokens:
                    generation.step(model, token, fresh)

            return run

        def recompute(model):
            def run():
                with torch.no_grad():
                    model(idx)[:, -1]

            return run

        variants = {
            "s4d_recurrent": stepper(models["s4d"], s4d_state),
            "s4d_recompute": recompute(models["s4d"]),
            "transformer_no_cache": recompute(models["transformer"]),
            "transformer_kv_cache": stepper(models["transformer"], kv_state),
        }
        times = time_alternating(variants, repeats, device)
        for name in ("s4d_recurrent", "transformer_kv_cache"):
            # 这两种每次计时生成 steps 个词元；换算成每个词元
            times[name] = {k: (v / steps if k != "runs" else v) for k, v in times[name].items()}
        rows.append({"context": T, "seconds_per_token": times})
    return {"config": config.to_dict(), "steps_per_timed_run": steps, "rows": rows}


def _copy_state(state: list) -> list:
    """复制 ``generation.prefill`` 返回的状态，使计时的生成不改动原来的状态。"""
    copies = []
    for layer_state in state:
        if isinstance(layer_state, generation.S4DLayerState):
            copies.append(generation.S4DLayerState(layer_state.x.clone(), layer_state.A_bar, layer_state.B_bar, layer_state.C))
        else:
            cache = generation.KVCache()
            cache.keys = layer_state.keys.clone()
            cache.values = layer_state.values.clone()
            cache.length = layer_state.length
            copies.append(cache)
    return copies


# ----------------------------------------------------------------------------- 用例 4：训练吞吐量


def matmul_flops(size: int, repeats: int, device: torch.device) -> dict:
    """实测 (size × size) @ (size × size) float32 矩阵乘法的吞吐量（FLOP/s，按 2·size³ 计）。"""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    times = time_alternating({"matmul": lambda: a @ b}, repeats, device)["matmul"]
    flops = 2 * size**3
    return {"size": size, "seconds": times, "flops_per_second": flops / times["median"]}


def training_flops_per_token(model: nn.Module, config: LMConfig, name: str) -> float:
    """每个训练词元的浮点运算数估计：3 ×（2 × 线性层与输出头的权重数 + 注意力的 QKᵀ 与 AV）。

    注意力一项按每层 4·L·H 计（不扣除因果掩码省下的一半）；S4D 的 FFT 卷积与卷积核只有
    O(H·log L) 每词元，这里忽略不计。这是估计，用来算利用率的数量级。
    """
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    forward = 2 * linear
    if name == "transformer":
        forward += config.n_layers * 4 * config.seq_len * config.d_model
    return 3.0 * forward


def case_training(sizes: dict, repeats: int, device: torch.device) -> dict:
    """用例 4：两个完整模型的训练吞吐量（词元/秒，含 AdamW 一步），以及同一进程里的矩阵乘法吞吐量。"""
    config, batch = sizes["training"]["config"], sizes["training"]["batch"]
    matmul = matmul_flops(sizes["matmul_size"], repeats, device)
    variants, models = {}, {}
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(0, config.vocab_size, (batch, config.seq_len + 1), generator=generator).to(device)
    for name in ("s4d", "transformer"):
        torch.manual_seed(0)
        model = build_model(name, config).to(device).train()
        optimizer = torch.optim.AdamW(parameter_groups(model, lr=1e-3, weight_decay=0.1, ssm_lr=1e-3))
        models[name] = model

        def train_step(model=model, optimizer=optimizer):
            logits = model(idx[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        variants[name] = train_step
    times = time_alternating(variants, repeats, device)
    tokens = batch * config.seq_len
    result = {"config": config.to_dict(), "batch": batch, "tokens_per_step": tokens, "matmul": matmul, "models": {}}
    for name, summary in times.items():
        per_token = training_flops_per_token(models[name], config, name)
        achieved = per_token * tokens / summary["median"]
        result["models"][name] = {
            "seconds_per_step": summary,
            "tokens_per_second": tokens / summary["median"],
            "flops_per_token_estimate": per_token,
            "utilisation": achieved / matmul["flops_per_second"],
        }
    return result


# ----------------------------------------------------------------------------- 用例 5：主任务


def case_main_job() -> dict:
    """用例 5：最近一次完整模式主任务（``s4lab book``）各章的用时，读自 ``runs/main_job_full.json``。"""
    path = Path(runs_dir()) / "main_job_full.json"
    if not path.is_file():
        return {
            "available": False,
            "path": str(path),
            "message": f"没有找到 {path}：请先运行 s4lab book（完整模式），它会写下各章的用时。",
        }
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"available": True, "path": str(path), **data}


# ----------------------------------------------------------------------------- 汇总


def machine_info(device: torch.device) -> dict:
    """机器与库版本：CPU 型号、核数、线程数、Python、PyTorch、NumPy 的版本。"""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def goals(layers: dict) -> dict:
    """三个目标的实测比值；规模不是 B = 8、H = 128、N = 64 或缺少所需长度时为 None。"""
    full_size = (layers["batch"], layers["d_model"], layers["d_state"]) == (8, 128, 64)
    by_length = {row["L"]: row["seconds"] for row in layers["rows"]}

    def ratio(L, slow, fast):
        if not full_size or L not in by_length:
            return None
        return by_length[L][slow]["median"] / by_length[L][fast]["median"]

    long_rows = [L for L in by_length if L >= 512]
    min_vs_sdpa = None
    if full_size and long_rows:
        min_vs_sdpa = min(ratio(L, "attention_sdpa", "s4d_fast") for L in long_rows)
    result = {
        "speedup_vs_vandermonde_L1024": ratio(1024, "s4d_vandermonde", "s4d_fast"),
        "speedup_vs_vandermonde_L16384": ratio(16384, "s4d_vandermonde", "s4d_fast"),
        "min_speedup_vs_sdpa_L_ge_512": min_vs_sdpa,
    }
    thresholds = {
        "speedup_vs_vandermonde_L1024": 3.0,
        "speedup_vs_vandermonde_L16384": 2.0,
        "min_speedup_vs_sdpa_L_ge_512": 1.0,
    }
    # 对 SDPA 注意力的目标是“严格快于”，所以比值必须 > 1。对范德蒙德公式的两个目标是“至少快这么多倍”，等于阈值也算达到。
    strict_goals = {"min_speedup_vs_sdpa_L_ge_512"}
    met = {}
    for key, threshold in thresholds.items():
        measured = result[key]
        if measured is None:
            met[key] = None
        elif key in strict_goals:
            met[key] = measured > threshold
        else:
            met[key] = measured >= threshold
    result["met"] = met
    return result


def run_suite(quick: bool = False, device: str = "cpu", measure_memory: bool = True) -> dict:
    """运行全部用例，返回结果字典。

    顶层字段：``format``、``mode``（"quick"/"full"）、``machine``、``repeats``、``total_seconds``，
    ``cases``：``layers``（用例 1）、``kernel``（用例 2）、``generation``（用例 3）、
    ``training``（用例 4）、``main_job``（用例 5），以及 ``goals``（三个目标的比值与是否达到）。
    所有时间单位为秒，内存单位为 MiB。
    """
    device = torch.device(device)
    sizes = suite_sizes(quick)
    repeats = sizes["repeats"]
    start = time.perf_counter()
    cases = {}
    cases["layers"] = case_layers(sizes["layer"], repeats, device, measure_memory)
    cases["kernel"] = case_kernel(sizes["kernel"], repeats, device)
    cases["generation"] = case_generation(sizes["generation"], repeats, device)
    cases["training"] = case_training(sizes, repeats, device)
    cases["main_job"] = case_main_job()
    return {
        "format": JSON_FORMAT,
        "mode": "quick" if quick else "full",
        "machine": machine_info(device),
        "repeats": repeats,
        "cases": cases,
        "goals": goals(cases["layers"]),
        "total_seconds": time.perf_counter() - start,
    }


def _ms(summary: dict) -> str:
    return f"{summary['median'] * 1e3:.2f} [{summary['min'] * 1e3:.2f}, {summary['max'] * 1e3:.2f}]"


def _format_machine(results: dict) -> list[str]:
    machine = results["machine"]
    return [
        f"机器：{machine['cpu']}，{machine['cpu_count']} 核，PyTorch 线程数 {machine['torch_threads']}，设备 {machine['device']}",
        f"版本：Python {machine['python']}，PyTorch {machine['torch']}，NumPy {machine['numpy']}；模式 {results['mode']}，每个变体计时 {results['repeats']} 次",
    ]


def _format_layers(layers: dict) -> list[str]:
    lines = [f"\n[1] 混合层前向 + 反向（B={layers['batch']}, H={layers['d_model']}, N={layers['d_state']}），毫秒；峰值内存 MiB"]
    for row in layers["rows"]:
        for name in LAYER_VARIANTS:
            if name in row["seconds"]:
                memory = row["peak_memory_mib"].get(name)
                memory_text = "—" if memory is None else f"{memory:.0f}"
                lines.append(f"  L={row['L']:>6}  {name:<16} {_ms(row['seconds'][name])}  内存 {memory_text}")
            else:
                lines.append(f"  L={row['L']:>6}  {name:<16} 跳过：{row['skipped'][name]}")
    lengths = [row["L"] for row in layers["rows"]]
    lines.append("  " + describe_crossover(layers["crossover_L_grid"], layers["crossover_L_estimate"], lengths))
    lines.append("  log-log 斜率：" + "，".join(f"{k} {v:.2f}" for k, v in layers["slopes"].items()))
    return lines


def _format_kernel(kernel: dict) -> list[str]:
    lines = ["\n[2] 卷积核生成（只算前向），毫秒"]
    for row in kernel["rows"]:
        s = row["seconds"]
        lines.append(
            f"  L={row['L']:>6}  chunked {_ms(s['chunked'])}  vandermonde {_ms(s['vandermonde'])}  相对误差 {row['relative_error']:.1e}"
        )
    return lines


def _format_generation(generation_case: dict) -> list[str]:
    lines = ["\n[3] 每生成一个词元的代价（批大小 1），毫秒"]
    for row in generation_case["rows"]:
        s = row["seconds_per_token"]
        lines.append(f"  上下文 {row['context']:>6}  " + "  ".join(f"{n} {s[n]['median'] * 1e3:.2f}" for n in GENERATION_VARIANTS))
    return lines


def _format_training(training: dict) -> list[str]:
    lines = [f"\n[4] 训练吞吐量（批 {training['batch']} × 长度 {training['config']['seq_len']}）；矩阵乘法 {training['matmul']['flops_per_second'] / 1e9:.1f} GFLOP/s"]
    for name, row in training["models"].items():
        lines.append(f"  {name:<12} {row['tokens_per_second']:.0f} 词元/秒，估计利用率 {row['utilisation'] * 100:.1f} %")
    return lines


def _format_main_job(main_job: dict) -> list[str]:
    lines = ["\n[5] 主任务各章用时（秒）"]
    if main_job["available"]:
        for stem, seconds in main_job["chapters"].items():
            lines.append(f"  {stem:<24} {seconds:.1f}")
        lines.append(f"  合计 {main_job['total_seconds']:.1f}")
    else:
        lines.append(f"  {main_job['message']}")
    return lines


def _format_goals(goals: dict) -> list[str]:
    lines = ["\n目标（比值，是否达到）："]
    for key in ("speedup_vs_vandermonde_L1024", "speedup_vs_vandermonde_L16384", "min_speedup_vs_sdpa_L_ge_512"):
        if goals[key] is None:
            verdict = "未测（需要完整模式的规模）"
        else:
            verdict = f"{goals[key]:.2f}×，{'达到' if goals['met'][key] else '未达到'}"
        lines.append(f"  {key}: {verdict}")
    return lines


def format_table(results: dict) -> str:
    """把结果排成一张短表（时间为毫秒：中位数 [最小, 最大]）。"""
    cases = results["cases"]
    lines = [
        *_format_machine(results),
        *_format_layers(cases["layers"]),
        *_format_kernel(cases["kernel"]),
        *_format_generation(cases["generation"]),
        *_format_training(cases["training"]),
        *_format_main_job(cases["main_job"]),
        *_format_goals(results["goals"]),
        f"总用时 {results['total_seconds']:.0f} 秒",
    ]
    return "\n".join(lines)


def output_path_problem(out: Path) -> str | None:
    """在测量之前检查能否写出 JSON 文件 ``out``：不能时返回中文说明（写出路径与改法），能时返回 None。

    检查时会创建缺少的上级目录并在其中写一个临时文件，检查完把两者都删掉。
    """
    fix = "请用 --out 换一个可写的路径。"
    if out.is_dir():
        return f"--out {out} 无效：这是一个目录，需要的是 JSON 文件的路径。{fix}"
    missing = []  # 需要创建的目录，从深到浅
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"--out {out} 无效：{ancestor} 是一个文件，不是目录，不能在它下面写文件。{fix}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".bench-", suffix=".tmp"):
            pass
    except OSError as error:
        return f"--out {out} 无效：无法在目录 {out.parent} 中写文件（{error.strerror}）。{fix}"
    finally:
        for folder in missing:
            if folder.is_dir():
                folder.rmdir()
    return None


def cmd_bench(args) -> int:
    """运行基准、打印短表并写出 JSON。设备或输出路径无效时在测量之前返回 2。"""
    from s4lab.train_cli import DeviceOptionError, parse_device_option

    try:
        device = parse_device_option(args.device)
    except DeviceOptionError as error:
        print(f"错误：{error}", file=sys.stderr)
        return 2
    # S4LAB_QUICK 在这里才读，写错时的报错由 main() 统一打印，而不是在建解析器时抛出。
    quick = args.quick or is_quick()
    mode = "quick" if quick else "full"
    out = Path(args.out) if args.out else Path(runs_dir()) / f"bench_{mode}.json"
    problem = output_path_problem(out)
    if problem is not None:
        print(f"错误：{problem}", file=sys.stderr)
        return 2

    results = run_suite(quick=quick, device=str(device), measure_memory=not args.no_memory)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(format_table(results))
    print(f"结果已写入 {out}")
    return 0


def add_subcommands(subparsers) -> None:
    """给 ``s4lab`` 的命令行加上 ``bench`` 子命令。"""
    bench = subparsers.add_parser("bench", help="运行效率基准，写一个 JSON 文件并打印短表")
    bench.add_argument("--quick", action="store_true", help="快速模式：小规模，一分钟内跑完（供 CI 使用）；也可设置 S4LAB_QUICK=1")
    bench.add_argument("--out", default=None, help="JSON 输出路径，默认 runs/bench_full.json 或 runs/bench_quick.json")
    bench.add_argument("--device", default="cpu", help="计算设备：auto、cpu、cuda 或 cuda:0 这样的写法（默认 cpu）")
    bench.add_argument("--no-memory", action="store_true", help="不测峰值内存（省去每个变体一个子进程）")
    bench.set_defaults(func=cmd_bench)


if __name__ == "__main__":
    from s4lab.cli import ChineseArgumentParser

    parser = ChineseArgumentParser(prog="python -m s4lab.bench")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(["bench", *sys.argv[1:]])
    sys.exit(arguments.func(arguments))
