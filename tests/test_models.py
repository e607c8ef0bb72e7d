"""语言模型与混合层：形状、因果性、参数量、参数分组、S4D 的数值稳定性。"""

import math

import pytest
import torch

from s4lab.layers import CausalSelfAttention, S4DLayer
from s4lab.models import LMConfig, S4DLM, TransformerLM, build_model, count_parameters, parameter_groups

SMALL = LMConfig(vocab_size=11, seq_len=32, d_model=16, n_layers=2, d_state=8, n_heads=2)


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_logits_shape(name):
    torch.manual_seed(0)
    model = build_model(name, SMALL)
    idx = torch.randint(0, 11, (3, 20))
    assert model(idx).shape == (3, 20, 11)


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_model_is_causal(name):
    """改动位置 ≥ t 的输入，位置 < t 的 logits 不变。"""
    torch.manual_seed(0)
    model = build_model(name, SMALL).eval()
    idx = torch.randint(0, 11, (2, 32))
    t = 17
    changed = idx.clone()
    changed[:, t:] = (changed[:, t:] + 1 + torch.randint(0, 9, changed[:, t:].shape)) % 11
    with torch.no_grad():
        before, after = model(idx), model(changed)
    assert torch.allclose(before[:, :t], after[:, :t], atol=1e-6)
    assert not torch.allclose(before[:, t:], after[:, t:], atol=1e-3)


@pytest.mark.parametrize("layer", [S4DLayer(16, 8), CausalSelfAttention(16, 2)])
def test_mixer_maps_blh_to_blh(layer):
    x = torch.randn(2, 9, 16)
    assert layer(x).shape == (2, 9, 16)


def test_default_parameter_counts_within_ten_percent():
    config = LMConfig()
    s4d, transformer = count_parameters(S4DLM(config)), count_parameters(TransformerLM(config))
    assert abs(s4d - transformer) / max(s4d, transformer) < 0.10


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_every_parameter_in_exactly_one_group(name):
    model = build_model(name, SMALL)
    groups = parameter_groups(model, lr=1e-3, weight_decay=0.1, ssm_lr=1e-4)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters()}


def test_ssm_group_has_no_decay_and_own_lr():
    model = build_model("s4d", SMALL)
    groups = {g["name"]: g for g in parameter_groups(model, lr=1e-3, weight_decay=0.1, ssm_lr=1e-4)}
    layer = model.blocks[0].mixer
    ssm_ids = {id(p) for p in groups["ssm"]["params"]}
    assert {id(layer.log_dt), id(layer.log_A_real), id(layer.A_imag)} <= ssm_ids
    assert id(layer.C) not in ssm_ids
    assert groups["ssm"]["weight_decay"] == 0.0
    assert groups["ssm"]["lr"] == 1e-4
    assert groups["decay"]["weight_decay"] == 0.1


def test_s4d_parameters_are_real_tensors():
    layer = S4DLayer(8, 4)
    assert all(not p.is_complex() for p in layer.parameters())


@pytest.mark.parametrize("raw", [-1e4, -50.0, 0.0, 50.0, 1e4])
def test_s4d_real_part_negative_for_any_raw_value(raw):
    layer = S4DLayer(4, 4)
    with torch.no_grad():
        layer.log_A_real.fill_(raw)
    assert torch.all(layer.A().real < 0)


def test_s4d_log_dt_initialised_in_range():
    torch.manual_seed(0)
    layer = S4DLayer(256, 4, dt_min=1e-3, dt_max=1e-1)
    dt = layer.dt()
    assert dt.min() >= 1e-3
    assert dt.max() <= 1e-1
    assert dt.max() / dt.min() > 50  # 均匀分布在对数尺度上，覆盖大部分范围


@pytest.mark.parametrize("d_state", [0, 3, -2])
def test_s4d_rejects_bad_state_size(d_state):
    with pytest.raises(ValueError, match="d_state"):
        S4DLayer(8, d_state)


def test_s4d_layer_finite_after_huge_log_dt_step():
    torch.manual_seed(0)
    layer = S4DLayer(8, 8)
    x = torch.randn(2, 64, 8)
    layer(x).square().sum().backward()
    with torch.no_grad():
        layer.log_dt.sub_(1e6 * layer.log_dt.grad.sign())
    assert torch.isfinite(layer(x)).all()


def test_initial_loss_close_to_log_vocab():
    torch.manual_seed(0)
    config = LMConfig(vocab_size=65)
    idx = torch.randint(0, 65, (4, 64))
    for model in (S4DLM(config), TransformerLM(config)):
        with torch.no_grad():
            logits = model(idx)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).item()
        assert abs(loss - math.log(65)) < 0.05


def test_lm_config_rejects_bad_values():
    with pytest.raises(ValueError, match="seq_len"):
        LMConfig(seq_len=0)
    with pytest.raises(ValueError, match="dropout"):
        LMConfig(dropout=1.5)
    with pytest.raises(ValueError, match="未知的模型名"):
        build_model("rnn", SMALL)
