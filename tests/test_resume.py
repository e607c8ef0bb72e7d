"""跨进程的恢复与写检查点时被杀：每个情形都在独立的子进程中运行真实的训练命令。"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from s4lab.config import load_config, load_dataset
from s4lab.train import list_checkpoints, read_checkpoint, read_metrics, train

TINY = """\
model: s4d
lm: {{seq_len: 32, d_model: 16, n_layers: 2, d_state: 8, n_heads: 2, dropout: {dropout}}}
train: {{batch_size: 4, max_steps: 20, warmup_steps: 3, eval_interval: 6, eval_max_windows: 4, log_interval: 1}}
data: {{path: "{corpus}", max_chars: 60000}}
run: {{device: cpu}}
"""


@pytest.fixture
def tiny_config(corpus_file, tmp_path):
    def make(dropout=0.0):
        path = tmp_path / f"tiny-{dropout}.yaml"
        path.write_text(TINY.format(dropout=dropout, corpus=corpus_file.as_posix()), encoding="utf-8")
        return path

    return make


# 子进程只用一个线程：模型很小，多线程的同步开销大于收益。
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_cli(*args, timeout=120):
    """在新进程中运行 ``s4lab train``，返回 CompletedProcess。"""
    command = [sys.executable, "-m", "s4lab.train_cli", "train", "--no-progress", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=SUBPROCESS_ENV)


def test_resume_across_processes_matches_full_run(tiny_config, tmp_path):
    # 用 dropout > 0 让检查更严：全局随机数状态没有恢复时，dropout 掩码不同，参数就会不同。
    config = tiny_config(dropout=0.1)
    full = run_cli("--config", config, "--out-dir", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    first = run_cli("--config", config, "--out-dir", tmp_path / "split", "--stop-at", 10)
    assert first.returncode == 0, first.stderr
    assert read_checkpoint(tmp_path / "split" / "last.pt")["step"] == 10
    second = run_cli("--resume", "--out-dir", tmp_path / "split")  # 配置取自运行目录里的 config.yaml
    assert second.returncode == 0, second.stderr
    assert "第 10 步）恢复训练" in second.stderr

    a = read_checkpoint(tmp_path / "full" / "last.pt")
    b = read_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 20
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor, b["model"][name], atol=1e-6, rtol=0), name
    rows_a = read_metrics(tmp_path / "full" / "metrics.jsonl")
    rows_b = read_metrics(tmp_path / "split" / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == list(range(1, 21))
    assert [r["lr"] for r in rows_a] == [r["lr"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=1e-6)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    from s4lab.config import load_config, load_dataset
    from s4lab.train import train

    real_save = torch.save
    calls = {"n": 0}

    def slow_save(obj, f, *args, **kwargs):
        # 第二次保存时只写一部分字节，然后停住，等父进程用 SIGKILL 杀掉。
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"partial" * 1000)
            f.flush()
            print("SAVING", flush=True)
            time.sleep(120)
        return real_save(obj, f, *args, **kwargs)

    torch.save = slow_save
    config = load_config(sys.argv[1], ["run.out_dir=" + sys.argv[2]])
    train(config.model, config.lm, config.train, load_dataset(config.data), config.run.out_dir,
          device="cpu", progress=False, run_config=config.to_dict())
    """
)


def test_kill_during_save_keeps_previous_checkpoint(tiny_config, tmp_path):
    config = tiny_config()
    out = tmp_path / "run"
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(config), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "SAVING", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # 被杀时第 12 步的检查点只写了一半，停在临时文件里；第 6 步的检查点完整可读。
    assert (out / "step-0000012.pt.tmp").is_file()
    assert not (out / "step-0000012.pt").exists()
    assert read_checkpoint(out / "last.pt")["step"] == 6
    assert [p.name for p in list_checkpoints(out)] == ["last.pt", "step-0000006.pt"]

    # 从它恢复能正常跑完，指标中没有重复或缺失的步。
    run = load_config(config, [f"run.out_dir={out}"])
    result = train(run.model, run.lm, run.train, load_dataset(run.data), out, device="cpu", progress=False, resume=True)
    assert result["steps"] == 20
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, 21))


def test_ctrl_c_saves_checkpoint_then_resumes(tiny_config, tmp_path):
    config = tiny_config()
    out = tmp_path / "run"
    command = [sys.executable, "-m", "s4lab.train_cli", "train", "--no-progress", "--config", str(config),
               "--out-dir", str(out), "--set", "train.max_steps=5000", "--set", "train.eval_interval=5000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    try:
        deadline = time.monotonic() + 60
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "收到中断信号" in stderr
    assert "被中断，检查点已保存到" in stderr
    step = read_checkpoint(out / "last.pt")["step"]
    assert step >= 3
    assert f"训练在第 {step} 步被中断" in stderr
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == step

    run = load_config(out / "config.yaml")
    train(run.model, run.lm, run.train, load_dataset(run.data), out, device="cpu", progress=False,
          resume=True, stop_at=step + 2)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, step + 3))
