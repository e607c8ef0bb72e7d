"""``s4lab train`` 与 ``s4lab sample`` 的命令行行为：退出码、中文报错、无效配置时不写任何文件，以及采样函数。"""

import shutil

import pytest
import torch

from s4lab import train_cli
from s4lab.models import LMConfig, build_model
from s4lab.sampling import generate
from s4lab.train import read_checkpoint

TINY = """\
model: {model}
lm: {{seq_len: 32, d_model: 16, n_layers: 2, d_state: 8, n_heads: 2}}
train: {{batch_size: 4, max_steps: 6, warmup_steps: 2, eval_interval: 3, eval_max_windows: 4, log_interval: 3}}
data: {{path: "{corpus}", max_chars: 60000}}
run: {{out_dir: "{out}", device: cpu}}
"""


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def write_config(corpus_file, tmp_path):
    def make(model="s4d", out="run"):
        path = tmp_path / f"{model}.yaml"
        path.write_text(TINY.format(model=model, corpus=corpus_file.as_posix(), out=(tmp_path / out).as_posix()))
        return path

    return make


@pytest.fixture(scope="module")
def trained_run(corpus_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    path = root / "s4d.yaml"
    path.write_text(TINY.format(model="s4d", corpus=corpus_file.as_posix(), out=(root / "run").as_posix()))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_cli.main(["train", "--config", str(path), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(previous)
    return root / "run"


def test_train_writes_run_folder(trained_run, capsys):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "loss_curve.png", "summary.json"} <= names
    assert read_checkpoint(trained_run / "last.pt")["step"] == 6


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.lr=-1", "train.lr = -1 无效"),
        ("lm.d_state=7", "lm.d_state = 7 无效"),
        ("lm.seq_len=0", "lm.seq_len = 0 无效"),
        ("model=mamba", "model = 'mamba' 无效"),
        ("train.bogus=1", "train.bogus 是未知的键"),
        ("train.batch_size=many", "train.batch_size = 'many' 无效"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(write_config, tmp_path, capsys, override, fragment):
    config = write_config()
    code = train_cli.main(["train", "--config", str(config), "--set", override, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    assert fragment in captured.err
    assert captured.err.startswith("错误：配置无效")
    assert not (tmp_path / "run").exists()


def test_stop_at_beyond_max_steps_rejected(write_config, tmp_path, capsys):
    code = train_cli.main(["train", "--config", str(write_config()), "--stop-at", "99", "--no-progress"])
    assert code == 2
    assert "--stop-at 99 无效" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_missing_config_rejected(capsys):
    assert train_cli.main(["train", "--no-progress"]) == 2
    assert "需要 --config" in capsys.readouterr().err


def test_resume_of_missing_run_rejected(write_config, tmp_path, capsys):
    code = train_cli.main(["train", "--config", str(write_config()), "--resume", "--no-progress"])
    assert code == 1
    assert "没有 metrics.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_existing_run_not_overwritten(trained_run, capsys):
    before = (trained_run / "metrics.jsonl").read_bytes()
    code = train_cli.main(["train", "--config", str(trained_run / "config.yaml"), "--no-progress"])
    assert code == 1
    assert "已存在" in capsys.readouterr().err
    assert (trained_run / "metrics.jsonl").read_bytes() == before


def test_resume_of_finished_run_is_a_no_op(trained_run, capsys):
    before = {name: (trained_run / name).read_bytes() for name in ("metrics.jsonl", "last.pt", "summary.json")}
    # 不加 --no-progress：已经完成的运行也不应显示（空的）进度条。
    assert train_cli.main(["train", "--resume", "--out-dir", str(trained_run)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"运行 {trained_run} 已经训练完成（第 6 步，共 6 步），没有可以继续的步数；"
        f"检查点与指标在 {trained_run}（last.pt、best.pt、metrics.jsonl、loss_curve.png）。"
        "要多训练一些步，请用 --set train.max_steps=… 加大总步数后再 --resume。"
    ]
    assert captured.err == ""
    for name, content in before.items():
        assert (trained_run / name).read_bytes() == content


def test_finished_run_other_model_rejected(trained_run, capsys):
    code = train_cli.main(["train", "--resume", "--out-dir", str(trained_run), "--set", "model=transformer", "--no-progress"])
    assert code == 1
    assert "不兼容" in capsys.readouterr().err


def test_resume_with_more_steps_continues(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code = train_cli.main(["train", "--resume", "--out-dir", str(run), "--set", "train.max_steps=9", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert "恢复训练" in captured.err
    assert "训练到第 9 步" in captured.out
    assert read_checkpoint(run / "last.pt")["step"] == 9


def test_missing_corpus_reported(write_config, tmp_path, capsys):
    code = train_cli.main(
        ["train", "--config", str(write_config()), "--set", f"data.path={tmp_path / 'none.txt'}", "--no-progress"]
    )
    assert code == 1
    assert "不存在" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_sample_prints_prompt_and_continuation(trained_run, capsys):
    args = ["sample", "--checkpoint", str(trained_run / "best.pt"), "--prompt", "ROMEO:", "--max-new-tokens", "40"]
    assert train_cli.main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:")
    assert len(first.rstrip("\n")) == len("ROMEO:") + 40
    assert train_cli.main(args) == 0
    assert capsys.readouterr().out == first  # 同一个种子，结果相同
    # 提示 6 个字符加 20 个新字符不超过 seq_len = 32，递推模式与重算给出同样的贪心结果。
    greedy_args = [*args[:-1], "20", "--temperature", "0"]
    assert train_cli.main([*greedy_args, "--no-cache"]) == 0
    recomputed = capsys.readouterr().out
    assert train_cli.main(greedy_args) == 0
    assert capsys.readouterr().out == recomputed


def test_sample_unknown_character_rejected(trained_run, capsys):
    code = train_cli.main(["sample", "--checkpoint", str(trained_run / "last.pt"), "--prompt", "你好"])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 种字符不在检查点的词表里：'你'、'好'" in err


def test_sample_empty_prompt_rejected(trained_run, capsys):
    assert train_cli.main(["sample", "--checkpoint", str(trained_run / "last.pt"), "--prompt", ""]) == 2
    assert "--prompt 不能为空" in capsys.readouterr().err


@pytest.mark.parametrize("content, fragment", [(None, "不存在"), (b"garbage", "已损坏")])
def test_sample_bad_checkpoint_rejected(tmp_path, capsys, content, fragment):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    assert train_cli.main(["sample", "--checkpoint", str(path), "--prompt", "A"]) == 1
    assert fragment in capsys.readouterr().err


# ---------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------

SMALL = LMConfig(vocab_size=11, seq_len=8, d_model=16, n_layers=2, d_state=8, n_heads=2, dropout=0.3)


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_generate_greedy_matches_argmax_and_restores_mode(name):
    torch.manual_seed(0)
    model = build_model(name, SMALL).train()
    idx = torch.randint(0, 11, (2, 5))
    out = generate(model, idx, 12, temperature=0, use_cache=False)
    assert out.shape == (2, 17)
    assert torch.equal(out[:, :5], idx)
    assert model.training
    model.eval()
    with torch.no_grad():
        for t in range(5, 17):
            context = out[:, max(0, t - SMALL.seq_len) : t]  # 截到 seq_len
            assert torch.equal(out[:, t], model(context)[:, -1].argmax(-1))


@pytest.mark.parametrize("name", ["s4d", "transformer"])
def test_generate_cache_matches_recompute(name):
    torch.manual_seed(0)
    model = build_model(name, SMALL)
    idx = torch.randint(0, 11, (2, 3))
    # 总长度 3 + 5 = seq_len：两条路径看到的上下文完全相同。
    cached = generate(model, idx, 5, temperature=0)
    recomputed = generate(model, idx, 5, temperature=0, use_cache=False)
    assert torch.equal(cached, recomputed)


def test_generate_transformer_window_slides_past_seq_len():
    torch.manual_seed(0)
    model = build_model("transformer", SMALL)
    idx = torch.randint(0, 11, (1, 10))  # 提示已经比 seq_len = 8 长
    cached = generate(model, idx, 12, temperature=0)
    recomputed = generate(model, idx, 12, temperature=0, use_cache=False)
    assert torch.equal(cached, recomputed)


def test_generate_s4d_recurrent_past_seq_len_is_finite():
    torch.manual_seed(0)
    model = build_model("s4d", SMALL)
    out = generate(model, torch.zeros(1, 1, dtype=torch.long), 30, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 31)
    assert int(out.min()) >= 0
    assert int(out.max()) < SMALL.vocab_size


def test_generate_top_k_one_is_greedy():
    torch.manual_seed(0)
    model = build_model("s4d", SMALL)
    idx = torch.randint(0, 11, (1, 3))
    greedy = generate(model, idx, 10, temperature=0)
    sampled = generate(model, idx, 10, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(greedy, sampled)


def test_generate_seeded_sampling_repeats():
    torch.manual_seed(0)
    model = build_model("transformer", SMALL)
    idx = torch.zeros(1, 1, dtype=torch.long)
    a = generate(model, idx, 20, generator=torch.Generator().manual_seed(5))
    b = generate(model, idx, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, fragment):
    model = build_model("s4d", SMALL)
    args = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        generate(model, torch.zeros(1, 2, dtype=torch.long), **args)


def test_generate_rejects_empty_prompt():
    model = build_model("s4d", SMALL)
    with pytest.raises(ValueError, match="至少要有一个字符"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)


def test_sample_invalid_device_rejected(trained_run, capsys):
    args = ["sample", "--checkpoint", str(trained_run / "best.pt"), "--prompt", "ROMEO:", "--device", "nosuch"]
    assert train_cli.main(args) == 2
    assert capsys.readouterr().err == "错误：--device 'nosuch' 无效：允许 auto、cpu、cuda 或 cuda:0 这样的写法。\n"
