"""训练循环：确定性、检查点只含普通类型、学习率日程、评估模式、不覆盖已有结果。"""

import json
import math

import pytest
import torch

from s4lab.data import CharDataset
from s4lab.models import LMConfig
from s4lab.train import TrainConfig, evaluate_loss, load_checkpoint, lr_factor, read_metrics, train


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
