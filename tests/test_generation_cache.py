"""逐词元生成：S4D 递推与 Transformer KV 缓存给出的 logits 与整段前向计算一致。"""

import pytest
import torch

from s4lab import generation
from s4lab.models import LMConfig, build_model

CONFIG = LMConfig(vocab_size=13, seq_len=64, d_model=32, n_layers=3, d_state=16, n_heads=4, dt_min=1e-3, dt_max=1.0)
LENGTH = 48


def _model(name):
    torch.manual_seed(0)
    model = build_model(name, CONFIG).eval()
    # 放大输出头，让 logits 远离 0，相对误差才有意义；初始化时它的标准差只有 0.002。
    with torch.no_grad():
        model.head.weight.mul_(100)
    return model


def _relative_errors(logits, reference):
    """每个位置 logits 的相对误差，形状 (B, L)。"""
    return (logits - reference).norm(dim=-1) / reference.norm(dim=-1)


@pytest.mark.parametrize("name", ["s4d", "transformer"])
@pytest.mark.parametrize("prompt_length", [1, 17])
def test_step_logits_match_forward(name, prompt_length):
    model = _model(name)
    idx = torch.randint(0, 13, (2, LENGTH), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(idx)  # (B, L, V)
    logits, state = generation.prefill(model, idx[:, :prompt_length])
    outputs = [logits]
    for t in range(prompt_length, LENGTH):
        outputs.append(generation.step(model, idx[:, t], state).unsqueeze(1))
    logits = torch.cat(outputs, dim=1)  # (B, L, V)
    assert logits.shape == reference.shape
    assert _relative_errors(logits, reference).max() <= 1e-4


def test_s4d_state_carries_context():
    """把前缀换掉，之后的 logits 必须改变：状态确实携带了前缀的信息。"""
    model = _model("s4d")
    idx = torch.randint(0, 13, (1, 20), generator=torch.Generator().manual_seed(2))
    other = idx.clone()
    other[:, :10] = (other[:, :10] + 1) % 13
    _, state = generation.prefill(model, idx[:, :19])
    _, other_state = generation.prefill(model, other[:, :19])
    last = generation.step(model, idx[:, 19], state)
    other_last = generation.step(model, idx[:, 19], other_state)
    assert not torch.allclose(last, other_last, atol=1e-4)


def test_kv_cache_grows_past_capacity():
    cache = generation.KVCache()
    keys = torch.randn(1, 2, 5, 4)
    values = torch.randn(1, 2, 5, 4)
    for t in range(5):
        k, v = cache.append(keys[:, :, t : t + 1], values[:, :, t : t + 1])
    assert cache.length == 5
    assert torch.equal(k, keys)
    assert torch.equal(v, values)


def test_step_rejects_state_of_other_depth():
    model = _model("s4d")
    _, state = generation.prefill(model, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="层"):
        generation.step(model, torch.zeros(1, dtype=torch.long), state[:-1])
