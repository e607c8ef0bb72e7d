"""n-gram 基线：概率对词表求和为 1、从不为 0、α 在验证集上选取、阶数越高训练集拟合越好。"""

import itertools
import math

import numpy as np
import pytest

from s4lab.ngram import NGramModel, fit_ngram

RNG = np.random.default_rng(0)
# 一个有规律的小语料：字符 0,1,2 大多按顺序循环，偶尔出现随机字符。
TRAIN = np.where(RNG.random(3000) < 0.8, np.arange(3000) % 3, RNG.integers(0, 4, 3000))
VAL = np.where(RNG.random(500) < 0.8, np.arange(500) % 3, RNG.integers(0, 4, 500))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probs_sum_to_one_every_context(order):
    model = fit_ngram(order, 4, TRAIN, VAL)
    for context in itertools.product(range(4), repeat=order - 1):
        probs = model.next_char_probs(np.array(context, dtype=np.int64))
        assert probs.shape == (4,)
        assert abs(probs.sum() - 1.0) < 1e-12, context


def test_unseen_char_has_positive_prob():
    # 字符 4 从未在训练集中出现，平滑后的概率仍必须大于 0。
    model = fit_ngram(3, 5, TRAIN, VAL)
    probs = model.next_char_probs(np.array([0, 1]))
    assert probs[4] > 0
    assert abs(probs.sum() - 1.0) < 1e-12


def test_target_probs_match_next_char_probs():
    model = fit_ngram(3, 4, TRAIN, VAL)
    data = VAL[:50]
    probs = model.target_probs(data)
    for t in (1, 2, 17, 49):
        assert math.isclose(probs[t - 1], model.next_char_probs(data[:t])[data[t]], rel_tol=1e-12)


def test_tune_picks_lowest_val_loss():
    tuned = fit_ngram(2, 4, TRAIN, VAL)
    for alpha in (0.01, 1.0, 100.0):
        other = NGramModel(2, 4, [tuned.alphas[0], alpha]).fit(TRAIN)
        assert tuned.loss(VAL) <= other.loss(VAL) + 1e-12


def test_higher_order_fits_train_better():
    losses = [NGramModel(order, 4).fit(TRAIN).loss(TRAIN) for order in (1, 2, 3)]
    assert losses[0] > losses[1] > losses[2]
    assert losses[0] < math.log(4) + 1e-9


def test_invalid_order_rejected():
    with pytest.raises(ValueError):
        NGramModel(0, 4)
