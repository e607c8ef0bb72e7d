"""训练循环：确定性、检查点只含普通类型、学习率日程、评估模式、不覆盖已有结果。"""

import json
import math

import pytest
import torch

from s4lab.data import CharDataset
from s4lab.models import LMConfig
from s4lab.train import TrainConfig, evaluate_loss, load_checkpoint, lr_factor, read_metrics, train


@pytest.fixture(autouse=True)
def one_thread():
    # 模型很小，多线程的同步开销大于收益。
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def small_dataset(corpus_file):
    text = corpus_file.read_text(encoding="utf-8")
    return CharDataset.from_text(text[:60_000])


def small_configs(dataset):
    lm = LMConfig(vocab_size=len(dataset.vocab), seq_len=32, d_model=16, n_layers=2, d_state=8, n_heads=2)
    tc = TrainConfig(batch_size=4, max_steps=8, warmup_steps=2, eval_interval=4, eval_max_windows=6, log_interval=2)
    return lm, tc


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_same_seed_same_metrics(name, small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train(name, lm, tc, small_dataset, tmp_path / "a", device="cpu", progress=False)
    train(name, lm, tc, small_dataset, tmp_path / "b", device="cpu", progress=False)
    rows_a = read_metrics(tmp_path / "a" / "metrics.jsonl")
    rows_b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in rows_a] == [2, 4, 6, 8]
    # wall_seconds 是墙钟时间，两次运行不可能相同；其余字段必须逐位相同。
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)
    assert all(b["wall_seconds"] >= a["wall_seconds"] for a, b in zip(rows_a, rows_a[1:]))


def test_different_seed_different_metrics(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "a", device="cpu", progress=False)
    tc.seed = 1
    train("s4d", lm, tc, small_dataset, tmp_path / "b", device="cpu", progress=False)
    losses = lambda p: [r["train_loss"] for r in read_metrics(p / "metrics.jsonl")]  # noqa: E731
    assert losses(tmp_path / "a") != losses(tmp_path / "b")


def test_checkpoint_loads_weights_only(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    result = train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    raw = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert raw["vocab"] == small_dataset.vocab.chars
    assert raw["lm_config"]["d_model"] == 16
    assert raw["step"] == 8
    model, checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    x = small_dataset.val[:33][None, :32]
    with torch.no_grad():
        assert torch.allclose(model(x), result["model"].cpu()(x), atol=1e-6)
    assert (tmp_path / "run" / "best.pt").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["final_val_loss"] == pytest.approx(checkpoint["val_loss"])


def test_refuses_to_overwrite_existing_run(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="metrics.jsonl"):
        train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == before


def test_vocab_mismatch_is_rejected(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    lm.vocab_size = len(small_dataset.vocab) + 1
    with pytest.raises(ValueError, match="vocab_size"):
        train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run").exists()


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, tc) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10]))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)


def test_evaluate_restores_train_mode(small_dataset):
    lm, _ = small_configs(small_dataset)
    lm.dropout = 0.5
    from s4lab.models import build_model

    model = build_model("transformer", lm).train()
    x = small_dataset.val[:64].view(2, 32)
    y = small_dataset.val[1:65].view(2, 32)
    first = evaluate_loss(model, x, y)
    assert model.training
    assert evaluate_loss(model, x, y) == first  # dropout 关闭时结果确定
    assert math.isfinite(first)


@pytest.mark.parametrize(
    "field, value", [("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")), ("max_steps", 0), ("batch_size", 1.5)]
)
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


# ---------------------------------------------------------------------------
# 检查点、恢复、非有限损失（同一进程内；跨进程的情形见 test_resume.py）
# ---------------------------------------------------------------------------

from s4lab.train import (  # noqa: E402
    CheckpointError,
    NonFiniteLossError,
    check_compatible,
    list_checkpoints,
    read_checkpoint,
)


def test_keeps_last_k_and_best(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    tc.max_steps, tc.eval_interval, tc.keep_last = 12, 2, 2
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    names = sorted(p.name for p in (tmp_path / "run").glob("*.pt"))
    assert names == ["best.pt", "last.pt", "step-0000010.pt", "step-0000012.pt"]
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["val_loss"] is not None]
    best = min(rows, key=lambda r: r["val_loss"])
    assert read_checkpoint(tmp_path / "run" / "best.pt")["step"] == best["step"]
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 12
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000


def test_checkpoint_contains_only_plain_types(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    trainer = checkpoint["trainer"]
    assert trainer["data_generator"].dtype == torch.uint8
    assert trainer["torch_rng"].dtype == torch.uint8
    assert set(checkpoint) >= {"format", "model_name", "model", "optimizer", "step", "lm_config", "vocab"}


def test_non_plain_checkpoint_rejected(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": TrainConfig()}, path)  # 含一个 dataclass 对象
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(path)


def test_corrupt_checkpoint_rejected(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="已损坏"):
        load_checkpoint(path)


def test_edited_checkpoint_shape_mismatch_is_clear(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    checkpoint["lm_config"]["d_model"] = 32
    torch.save(checkpoint, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="不一致"):
        load_checkpoint(tmp_path / "edited.pt")


def test_resume_in_process_matches_full_run(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    lm.dropout = 0.2  # 恢复全局随机数状态后，dropout 的掩码也相同
    tc.log_interval = 3  # 停下的第 5 步既不是记录步也不是评估步
    full = train("transformer", lm, tc, small_dataset, tmp_path / "full", device="cpu", progress=False)
    train("transformer", lm, tc, small_dataset, tmp_path / "split", device="cpu", progress=False, stop_at=5)
    assert read_checkpoint(tmp_path / "split" / "last.pt")["step"] == 5
    resumed = train("transformer", lm, tc, small_dataset, tmp_path / "split", device="cpu", progress=False, resume=True)
    for a, b in zip(full["model"].parameters(), resumed["model"].parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "full" / "metrics.jsonl")) == strip(
        read_metrics(tmp_path / "split" / "metrics.jsonl")
    )


def test_resume_drops_metrics_after_checkpoint(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, stop_at=4)
    # 模拟进程在第 4 步的检查点之后、下一个检查点之前被杀：指标里多出第 6 步的一行。
    with (tmp_path / "run" / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 6, "tokens": 0, "wall_seconds": 0, "train_loss": 0, "val_loss": None, "lr": 0}) + "\n")
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, resume=True)
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert steps == [2, 4, 6, 8]


def test_resume_without_checkpoint_rejected(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CheckpointError, match="没有检查点"):
        train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, resume=True)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda lm, tc: setattr(lm, "d_model", 32), "lm.d_model：检查点是 16，当前配置是 32"),
        (lambda lm, tc: setattr(tc, "lr", 1e-4), "train.lr：检查点是 0.002，当前配置是 0.0001"),
        (lambda lm, tc: setattr(tc, "seed", 3), "train.seed"),
    ],
)
def test_incompatible_config_rejected_on_resume(small_dataset, tmp_path, change, fragment):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, stop_at=4)
    change(lm, tc)
    with pytest.raises(CheckpointError, match=fragment):
        train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, resume=True)


def test_other_vocabulary_rejected(small_dataset, tmp_path):
    lm, tc = small_configs(small_dataset)
    train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False, stop_at=4)
    checkpoint = read_checkpoint(tmp_path / "run" / "last.pt")
    other = "".join(chr(ord("a") + i) for i in range(len(small_dataset.vocab)))
    with pytest.raises(CheckpointError, match=f"词表：检查点有 {len(small_dataset.vocab)} 个字符"):
        check_compatible(checkpoint, "last.pt", "s4d", lm, tc, other)
    with pytest.raises(CheckpointError, match="模型：检查点是 's4d'"):
        check_compatible(checkpoint, "last.pt", "transformer", lm, tc, small_dataset.vocab.chars)


def _poison_after(monkeypatch, bad_step, where):
    """让第 ``bad_step`` 步（从 1 开始）的损失或梯度变成 NaN。"""
    import s4lab.train as train_module

    original = train_module.build_model
    calls = {"n": 0}

    def build(name, config):
        model = original(name, config)

        def hook(module, inputs, output):
            if not module.training:
                return output
            calls["n"] += 1
            if calls["n"] == bad_step and where == "loss":
                return output * float("nan")
            if calls["n"] == bad_step and where == "grad":
                output.register_hook(lambda g: g * float("nan"))
            return output

        model.head.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_module, "build_model", build)


@pytest.mark.parametrize("where, what", [("loss", "训练损失"), ("grad", "梯度范数")])
def test_non_finite_stops_and_keeps_checkpoint(small_dataset, tmp_path, monkeypatch, where, what):
    lm, tc = small_configs(small_dataset)
    _poison_after(monkeypatch, 6, where)
    with pytest.raises(NonFiniteLossError, match=f"第 6 步的{what}不是有限数") as info:
        train("s4d", lm, tc, small_dataset, tmp_path / "run", device="cpu", progress=False)
    assert info.value.step == 6
    assert "step-0000004.pt（第 4 步）" in str(info.value)
    checkpoint = read_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [2, 4]
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["last.pt", "step-0000004.pt"]
