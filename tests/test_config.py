"""YAML 配置：默认值、覆盖、预设一致性，以及每一类无效输入的中文报错（写出键、值与允许的范围）。"""

import math
from pathlib import Path

import pytest
import torch
import yaml

from s4lab.config import (
    ConfigError,
    load_config,
    load_dataset,
    read_yaml,
    validate,
    write_config,
)
from s4lab.models import LMConfig
from s4lab.presets import training_preset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_shipped_config_is_valid():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    expected = [f"{m}{s}.yaml" for m in ("s4d", "transformer") for s in ("", "_cpu_small", "_gpu")]
    assert names == sorted(expected)
    for name in names:
        config = load_config(CONFIGS / name, ["run.device=cpu"])
        assert config.model == name.split("_")[0].split(".")[0]


@pytest.mark.parametrize("preset, suffix", [("cpu", "_cpu_small"), ("gpu", "_gpu")])
@pytest.mark.parametrize("model", ["s4d", "transformer"])
def test_yaml_presets_match_notebook_presets(preset, suffix, model):
    config = load_config(CONFIGS / f"{model}{suffix}.yaml", ["run.device=cpu"])
    lm, tc = training_preset(preset)
    assert config.lm == lm
    assert config.train == tc


def test_overrides_change_values():
    config = load_config(
        CONFIGS / "s4d_cpu_small.yaml",
        ["train.max_steps=2000", "train.lr=3e-4", "lm.dropout=0.1", "train.eval_max_windows=8", "data.path=null"],
    )
    assert config.train.max_steps == 2000
    assert config.train.lr == pytest.approx(3e-4)
    assert config.lm.dropout == 0.1
    assert config.train.eval_max_windows == 8
    assert config.data.path is None


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    # PyYAML 按 YAML 1.1 把 1e-3 读成字符串；配置仍应把它当作数。
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n", encoding="utf-8")
    assert load_config(path).train.lr == pytest.approx(1e-3)


def test_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "transformer.yaml", ["train.seed=7"])
    write_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config


def test_missing_keys_take_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: transformer\n", encoding="utf-8")
    config = load_config(path)
    assert config.model == "transformer"
    assert config.lm == LMConfig()
    assert config.train.max_steps == 1000


def test_max_chars_keeps_full_corpus_vocabulary(corpus_file):
    config = load_config(overrides=[f"data.path={corpus_file.as_posix()}", "data.max_chars=2000", "run.device=cpu"])
    dataset = load_dataset(config.data)
    assert len(dataset.text) == 2000
    assert dataset.train_text + dataset.val_text + dataset.test_text == dataset.text
    # 词表来自整份语料（65 个字符），比这 2000 个字符里出现过的字符多。
    assert len(dataset.vocab) == 65
    assert len(set(dataset.text)) < 65
    assert dataset.vocab.decode(dataset.val) == dataset.val_text


# 每一行：--set 覆盖、报错中必须出现的片段（键、值、允许的范围）。
BAD_OVERRIDES = [
    (["train.lr=0"], ["train.lr", "0", "> 0"]),
    (["train.lr=-1e-3"], ["train.lr", "-1e-3", "> 0"]),
    (["train.lr=.nan"], ["train.lr", "nan", "有限"]),
    (["train.lr=abc"], ["train.lr", "'abc'", "> 0"]),
    (["train.lr=true"], ["train.lr", "True", "需要数"]),
    (["lm.d_state=3"], ["lm.d_state", "3", "偶数"]),
    (["lm.d_state=0"], ["lm.d_state", "0", "≥ 1"]),
    (["lm.seq_len=0"], ["lm.seq_len", "0", "≥ 1 的整数"]),
    (["lm.seq_len=-5"], ["lm.seq_len", "-5", "≥ 1 的整数"]),
    (["lm.d_model=1.5"], ["lm.d_model", "1.5", "整数"]),
    (["lm.n_layers=four"], ["lm.n_layers", "'four'", "整数"]),
    (["model=rnn"], ["model", "'rnn'", "'s4d'", "'transformer'"]),
    (["lm.dropout=1.0"], ["lm.dropout", "1.0", "[0, 1)"]),
    (["lm.dt_min=1e-6"], ["lm.dt_min", "1e-6", "[0.0001, 10]"]),
    (["lm.dt_min=0.5", "lm.dt_max=0.1"], ["lm.dt_min", "0.5", "dt_min < dt_max"]),
    (["lm.s4d_init=fourier"], ["lm.s4d_init", "'fourier'", "'lin'"]),
    (["train.batch_size=0"], ["train.batch_size", "0", "≥ 1"]),
    (["train.warmup_steps=-1"], ["train.warmup_steps", "-1", "≥ 0"]),
    (["train.warmup_steps=5000"], ["train.warmup_steps", "5000", "max_steps"]),
    (["train.min_lr_ratio=1.5"], ["train.min_lr_ratio", "1.5", "[0, 1]"]),
    (["train.grad_clip=0"], ["train.grad_clip", "0", "> 0"]),
    (["train.keep_last=0"], ["train.keep_last", "0", "≥ 1"]),
    (["train.eval_max_windows=0"], ["train.eval_max_windows", "0", "null"]),
    (["train.max_step=10"], ["train.max_step", "未知的键", "max_steps"]),
    (["lm.foo=1"], ["lm.foo", "未知的键", "d_state"]),
    (["optimizer.name=adam"], ["optimizer", "未知的部分", "train"]),
    (["data.train_frac=0.96"], ["train_frac + data.val_frac", "< 1"]),
    (["data.verify=yes please"], ["data.verify", "'yes please'", "true 或 false"]),
    (["run.device=tpu"], ["run.device", "'tpu'", "cuda:0"]),
]


# 每一行：--set 覆盖、完整的一条报错（措辞一字不差）。
EXACT_MESSAGES = [
    ("train.lr=true", "train.lr = True 无效：类型是 bool，需要数值，允许的取值是 > 0 的有限数。"),
    ("train.lr=abc", "train.lr = 'abc' 无效：类型是 str，需要数值，允许的取值是 > 0 的有限数。"),
    ("data.verify=yes please", "data.verify = 'yes please' 无效：类型是 str，需要 true 或 false。"),
    (
        "lm.foo=1",
        "lm.foo 是未知的键（值为 1）：lm 部分可用的键是 "
        + "、".join(LMConfig().to_dict())
        + "。",
    ),
]


@pytest.mark.parametrize("override, expected", EXACT_MESSAGES, ids=[row[0] for row in EXACT_MESSAGES])
def test_bad_value_message_wording(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "s4d_cpu_small.yaml", [override])
    assert info.value.problems == [expected]


def test_unknown_section_list_uses_dunhao():
    with pytest.raises(ConfigError) as info:
        validate({"optimizer": {"name": "adam"}})
    assert info.value.problems[0].endswith("顶层可用的键是 model、lm、train、data、run。")


@pytest.mark.parametrize("overrides, fragments", BAD_OVERRIDES, ids=lambda v: v[0] if isinstance(v, list) else "")
def test_bad_value_names_key_value_and_range(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "s4d_cpu_small.yaml", overrides)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_transformer_heads_must_divide_width():
    with pytest.raises(ConfigError, match=r"lm.n_heads = 3 无效：必须整除 lm.d_model = 128"):
        load_config(CONFIGS / "transformer_cpu_small.yaml", ["lm.n_heads=3"])


def test_odd_state_size_allowed_for_transformer():
    # d_state 只用于 S4D，Transformer 不要求它是偶数。
    config = load_config(CONFIGS / "transformer_cpu_small.yaml", ["lm.d_state=3"])
    assert config.lm.d_state == 3


def test_all_problems_reported_together():
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "s4d_cpu_small.yaml", ["train.lr=0", "lm.seq_len=0", "lm.bogus=1"])
    assert len(info.value.problems) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="这台机器有 CUDA，cuda 设备是有效的")
def test_cuda_device_without_cuda_rejected():
    with pytest.raises(ConfigError, match="run.device = 'cuda' 无效：这台机器上没有可用的 CUDA 设备"):
        load_config(CONFIGS / "s4d_gpu.yaml")


@pytest.mark.parametrize(
    "override, fragment",
    [("train.lr", "格式无效"), ("train.=3", "键 'train.' 无效"), ("a.b.c=1", "有 3 层"), ("model.x=1", "不是一个部分")],
)
def test_malformed_set_rejected(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(CONFIGS / "s4d_cpu_small.yaml", [override])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("train:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", "键 'lr' 重复出现"),
        ("train:\n  lr: [1\n", "第 3 行"),
        ("- model\n- s4d\n", "顶层必须是映射"),
        ("train: 5\n", "train = 5 无效：必须是映射"),
    ],
)
def test_malformed_yaml_rejected(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_missing_config_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="不存在"):
        read_yaml(tmp_path / "nope.yaml")


def test_validate_accepts_plain_dict():
    config = validate({"model": "s4d", "train": {"lr": 1}})
    assert config.train.lr == 1.0
    assert math.isfinite(config.train.lr)
    assert yaml.safe_load(yaml.safe_dump(config.to_dict()))["train"]["lr"] == 1.0
