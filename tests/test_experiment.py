"""实验协议：预设的一致性、学习率搜索按验证损失选择、种子短跑复用搜索结果、结果文件缺失时的提示。"""

import json

import pytest
import torch

from s4lab.data import CharDataset
from s4lab.evaluation import s4d_kernels
from s4lab.experiment import (
    PLAN_NAMES,
    ExperimentPlan,
    experiment_plan,
    initial_model,
    latest_experiment_dir,
    load_final_model,
    load_results,
    lr_search,
    new_experiment_dir,
    save_results,
    seed_runs,
)
from s4lab.models import LMConfig
from s4lab.train import TrainConfig, train

TEXT = "To be, or not to be, that is the question.\n" * 40
TINY = ExperimentPlan(
    "tiny", LMConfig(vocab_size=len(set(TEXT)), seq_len=16, d_model=16, n_layers=1, d_state=8, n_heads=2),
    batch_size=2, lr_grid=(1e-4, 1e-2), search_steps=3, seeds=(0, 5), final_steps=4, eval_interval=2,
    eval_max_windows=2,
)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("S4LAB_RUNS", str(tmp_path))
    monkeypatch.setenv("S4LAB_QUICK", "1")
    return tmp_path


def test_plans_share_budget_between_models():
    for name in PLAN_NAMES:
        plan = experiment_plan(name)
        assert plan.seeds[0] == plan.final_config(plan.lr_grid[0]).seed
        assert len(plan.lr_grid) >= 2
        assert len(plan.seeds) >= 2
        search = plan.search_config(plan.lr_grid[-1], plan.seeds[1])
        assert search.max_steps == plan.search_steps
        assert search.ssm_lr == pytest.approx(plan.lr_grid[-1] * plan.ssm_lr_ratio)
    assert experiment_plan("quick").lm_config == experiment_plan("cpu").lm_config
    with pytest.raises(ValueError):
        experiment_plan("tpu")


def test_lr_search_picks_min_val_and_seeds_reuse(runs):
    dataset = CharDataset.from_text(TEXT)
    root = new_experiment_dir()
    search = lr_search(TINY, "s4d", dataset, root, device="cpu", progress=False)
    assert search["lrs"] == list(TINY.lr_grid)
    assert search["val_losses"][search["lrs"].index(search["best_lr"])] == min(search["val_losses"])
    seeds = seed_runs(TINY, "s4d", search, dataset, root, device="cpu", progress=False)
    assert [r["seed"] for r in seeds] == [0, 5]
    chosen = next(r for r in search["runs"] if r["lr"] == search["best_lr"])
    assert seeds[0]["out_dir"] == chosen["out_dir"]
    assert seeds[1]["final_val_loss"] != seeds[0]["final_val_loss"]
    json.dumps(search), json.dumps(seeds)  # 结果必须能写成 JSON
    again = seed_runs(TINY, "s4d", search, dataset, root, device="cpu", progress=False)
    assert again[1]["out_dir"] != seeds[1]["out_dir"]
    assert again[1]["final_val_loss"] == seeds[1]["final_val_loss"]


def test_missing_results_name_chapter(runs):
    with pytest.raises(FileNotFoundError, match="10_training"):
        latest_experiment_dir()
    root = new_experiment_dir()
    assert latest_experiment_dir() == root
    with pytest.raises(FileNotFoundError, match="11_evaluation"):
        load_results("seeds")
    with pytest.raises(FileNotFoundError, match="10_training"):
        load_final_model("s4d")
    save_results(root, "final", {"models": {}})  # 训练开始时写入、中途停止的状态
    with pytest.raises(FileNotFoundError, match="10_training"):
        load_final_model("s4d")


def test_results_round_trip(runs):
    root = new_experiment_dir()
    save_results(root, "final", {"models": {"s4d": {"lr": 0.002}}})
    assert load_results("final") == {"models": {"s4d": {"lr": 0.002}}}
    with pytest.raises(ValueError):
        save_results(root, "other", {})


def test_quick_and_full_results_separate(runs, monkeypatch):
    root = new_experiment_dir()
    save_results(root, "final", {"models": {}})
    monkeypatch.setenv("S4LAB_QUICK", "0")
    with pytest.raises(FileNotFoundError):
        load_results("final")


def test_initial_model_matches_training_start(tmp_path):
    # 学习率极小时训练一步几乎不改变参数，所以重建的初始模型应与训练得到的模型几乎相同。
    dataset = CharDataset.from_text(TEXT)
    config = TrainConfig(batch_size=2, max_steps=1, lr=1e-9, ssm_lr=1e-9, warmup_steps=0, eval_max_windows=2, seed=3)
    result = train("s4d", TINY.lm_config, config, dataset, tmp_path / "run", device="cpu", progress=False)
    rebuilt = initial_model("s4d", TINY.lm_config, seed=3)
    other_seed = initial_model("s4d", TINY.lm_config, seed=4)
    trained_kernel = s4d_kernels(result["model"], 16)
    assert torch.allclose(s4d_kernels(rebuilt, 16), trained_kernel, atol=1e-6)
    assert not torch.allclose(s4d_kernels(other_seed, 16), trained_kernel, atol=1e-6)
