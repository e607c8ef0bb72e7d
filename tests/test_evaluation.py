"""评估函数：指标换算、按位置的损失、手算注意力与 SDPA 一致、eval 模式的切换与恢复。"""

import math

import pytest
import torch
import torch.nn.functional as F

from s4lab.evaluation import (
    attention_maps,
    loss_metrics,
    per_position_loss,
    prediction_entropy,
    s4d_kernels,
    s4d_step_sizes,
    split_metrics,
)
from s4lab.models import LMConfig, build_model
from s4lab.train import evaluate_loss

CONFIG = LMConfig(vocab_size=11, seq_len=16, d_model=16, n_layers=2, d_state=8, n_heads=2, dropout=0.1)


@pytest.fixture(params=["s4d", "transformer"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, CONFIG)


def test_loss_metrics_conversions():
    metrics = loss_metrics(1.3)
    assert math.isclose(metrics["bpc"], 1.3 / math.log(2))
    assert math.isclose(metrics["perplexity"], math.exp(1.3))
    assert math.isclose(loss_metrics(math.log(65))["perplexity"], 65.0)


def test_per_position_mean_equals_overall(model):
    data = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(1))
    metrics = split_metrics(model, data, CONFIG.seq_len)
    from s4lab.data import eval_windows

    x, y = eval_windows(data, CONFIG.seq_len)
    assert metrics["per_position"].shape == (CONFIG.seq_len,)
    assert math.isclose(metrics["nats"], evaluate_loss(model, x, y), rel_tol=1e-5)


def test_eval_mode_restored(model):
    data = torch.randint(0, 11, (100,), generator=torch.Generator().manual_seed(2))
    x, y = data[:64].view(4, 16), data[1:65].view(4, 16)
    calls = [
        lambda: per_position_loss(model, x, y),
        lambda: prediction_entropy(model, data[:16]),
        lambda: s4d_kernels(model, 16) if model.blocks[0].mixer.__class__.__name__ == "S4DLayer" else None,
    ]
    for call in calls:
        model.train()
        call()
        assert model.training
        model.eval()
        call()
        assert not model.training


def test_per_position_uses_eval_mode(model):
    # dropout = 0.1：训练模式下两次结果不同，而评估必须在 eval 模式下进行，结果确定。
    data = torch.randint(0, 11, (100,), generator=torch.Generator().manual_seed(3))
    x, y = data[:64].view(4, 16), data[1:65].view(4, 16)
    model.train()
    assert torch.equal(per_position_loss(model, x, y), per_position_loss(model, x, y))


def test_entropy_bounds_and_loss(model):
    idx = torch.randint(0, 11, (16,), generator=torch.Generator().manual_seed(4))
    entropy, loss = prediction_entropy(model, idx)
    assert entropy.shape == loss.shape == (15,)
    assert (entropy >= 0).all()
    assert (entropy <= math.log(11) + 1e-5).all()
    model.eval()
    with torch.no_grad():
        logits = model(idx[None, :-1])[0]
    assert torch.allclose(loss, F.cross_entropy(logits, idx[1:], reduction="none"), atol=1e-6)


def test_attention_maps_match_sdpa():
    torch.manual_seed(0)
    model = build_model("transformer", CONFIG)
    idx = torch.randint(0, 11, (16,), generator=torch.Generator().manual_seed(5))
    maps = attention_maps(model, idx)  # (layers, heads, L, L)
    assert maps.shape == (2, 2, 16, 16)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 16), atol=1e-5)
    assert (maps.triu(1) == 0).all()
    # 第一层：用手算的权重乘 v，与层内 scaled_dot_product_attention 的输出比较。
    model.eval()
    block = model.blocks[0]
    with torch.no_grad():
        x = block.norm1(model.embedding(idx[None]))  # (1, L, H)
        _, _, v = block.mixer.qkv(x).split(16, dim=-1)
        v = v.view(1, 16, 2, 8).transpose(1, 2)  # (1, heads, L, head_dim)
        y = (maps[0][None] @ v).transpose(1, 2).reshape(1, 16, 16)
        assert torch.allclose(block.mixer.out(y), block.mixer(x), atol=1e-5)
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_attention_maps_reject_s4d():
    with pytest.raises(ValueError):
        attention_maps(build_model("s4d", CONFIG), torch.zeros(4, dtype=torch.long))


def test_s4d_kernels_and_dt_shapes():
    torch.manual_seed(0)
    model = build_model("s4d", CONFIG)
    kernels = s4d_kernels(model, 16)
    assert kernels.shape == (2, 16, 16)
    assert torch.allclose(kernels[0], model.blocks[0].mixer.kernel(16).detach())
    dts = s4d_step_sizes(model)
    assert dts.shape == (2, 16)
    assert ((dts >= CONFIG.dt_min * 0.999) & (dts <= CONFIG.dt_max * 1.001)).all()
