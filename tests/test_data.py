"""s4lab.data 的测试：真实语料的大小与校验和、词表、切分、批次、评估窗口和 load_text 的查找顺序。

需要真实语料的测试使用 conftest.py 中的 corpus_file 夹具（S4LAB_DATA，或仓库上一级的 shared/data），
两者都没有时跳过。下载相关的测试在 test_download.py。
"""

from __future__ import annotations

import hashlib
import io
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from s4lab import data
from s4lab.data import (
    CACHE_FILE_NAME,
    DEFAULT_URL,
    N_CHARS,
    SHA256,
    CharDataset,
    CharVocab,
    DataError,
    eval_windows,
    get_batch,
    load_text,
    split_text,
)

@pytest.fixture(scope="module")
def corpus_path(corpus_file) -> Path:
    return corpus_file


@pytest.fixture(scope="module")
def text(corpus_path) -> str:
    return load_text(corpus_path)


@pytest.fixture(scope="module")
def vocab(text) -> CharVocab:
    return CharVocab.from_text(text)


@pytest.fixture
def no_download(monkeypatch):
    """让任何下载尝试立即失败，证明被测的调用没有走到下载那一步。"""

    def fail(*args, **kwargs):
        raise AssertionError(f"不应该下载，却调用了 urlopen{args}")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


# ---------------------------------------------------------------------------
# 真实语料
# ---------------------------------------------------------------------------


def test_corpus_size_and_checksum(corpus_path, text):
    raw = corpus_path.read_bytes()
    assert len(text) == N_CHARS == 1115394
    assert hashlib.sha256(raw).hexdigest() == SHA256
    assert text == raw.decode("utf-8")


def test_vocab_has_65_chars(vocab, text):
    assert len(vocab) == 65
    assert vocab.chars == "".join(sorted(set(text)))
    assert vocab.chars[0] == "\n"
    assert vocab.chars[1] == " "


def test_encode_decode_roundtrip_corpus(text, vocab):
    start = time.perf_counter()
    ids = vocab.encode(text)
    elapsed = time.perf_counter() - start
    assert ids.dtype == torch.long
    assert ids.shape == (N_CHARS,)
    assert int(ids.min()) == 0
    assert int(ids.max()) == len(vocab) - 1
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()[:1000]) == text[:1000]
    # 要求是整份语料编码远小于 1 秒（向量化实现约 0.03 秒，2 核 CPU）。这里只断言 < 1 秒，
    # 给共享 CPU 的抖动留余地，所以它抓不住逐字符字典查找（同一机器约 0.16 秒）这类慢一些的实现。
    assert elapsed < 1.0


def test_encode_matches_dict_lookup(text, vocab):
    stoi = {c: i for i, c in enumerate(vocab.chars)}
    sample = text[:5000]
    expected = torch.tensor([stoi[c] for c in sample], dtype=torch.long)
    assert torch.equal(vocab.encode(sample), expected)


def test_split_sizes_and_contiguity(text):
    n = len(text)
    train, val, test = split_text(text)
    n_train = int(n * 0.9)
    n_val = int(n * 0.05)
    assert len(train) == n_train == 1003854
    assert len(val) == n_val == 55769
    assert len(test) == n - n_train - n_val == 55771
    assert train + val + test == text


def test_dataset_load_matches_parts(corpus_path, text, vocab):
    ds = CharDataset.load(corpus_path)
    assert ds.text == text
    assert ds.vocab == vocab
    assert ds.train_text + ds.val_text + ds.test_text == text
    assert torch.equal(ds.train, vocab.encode(ds.train_text))
    assert torch.equal(ds.val, vocab.encode(ds.val_text))
    assert torch.equal(ds.test, vocab.encode(ds.test_text))


def test_get_batch_on_corpus(text, vocab):
    train = vocab.encode(split_text(text)[0])
    gen = torch.Generator().manual_seed(0)
    x, y = get_batch(train, 4, 64, gen)
    assert x.shape == (4, 64)
    assert y.shape == (4, 64)
    assert x.dtype == torch.long
    for row_x, row_y in zip(x, y):
        window = vocab.decode(row_x) + vocab.decode(row_y[-1:])
        assert window in text
        assert vocab.decode(row_y) == window[1:]


# ---------------------------------------------------------------------------
# 词表（合成文本）
# ---------------------------------------------------------------------------


def test_vocab_unknown_char_error_names_it():
    vocab = CharVocab.from_text("hello world")
    with pytest.raises(DataError) as info:
        vocab.encode("hello, wörld")
    message = str(info.value)
    assert "','" in message
    assert "'ö'" in message
    assert "2 种" in message


def test_vocab_unknown_chars_listed_at_most_ten():
    vocab = CharVocab.from_text("a")
    unknown = "bcdefghijklmnop"  # 15 种
    with pytest.raises(DataError) as info:
        vocab.encode("a" + unknown + unknown)
    message = str(info.value)
    assert "15 种" in message
    assert "30 次" in message
    assert "'k'" in message  # 第 10 个
    assert "'l'" not in message  # 第 11 个不再列出


def test_vocab_decode_out_of_range_names_id():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(DataError, match="id 7"):
        vocab.decode([0, 1, 7])
    with pytest.raises(DataError, match="id -1"):
        vocab.decode(torch.tensor([-1]))


def test_vocab_decode_rejects_float_and_2d():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(DataError):
        vocab.decode(torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError):
        vocab.decode([0, 1.5])
    with pytest.raises(DataError, match="一维"):
        vocab.decode(torch.zeros(2, 3, dtype=torch.long))


def test_vocab_list_roundtrip_and_equality():
    vocab = CharVocab.from_text("to be or not to be\n")
    restored = CharVocab.from_list(vocab.to_list())
    assert restored == vocab
    assert all(type(c) is str for c in vocab.to_list())
    assert restored != CharVocab.from_text("to be")
    assert len(vocab) == len(set("to be or not to be\n"))


def test_vocab_non_ascii_roundtrip():
    text = "状态空间 x′ = Ax + Bu 🙂\n"
    vocab = CharVocab.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode("").shape == (0,)
    assert vocab.decode([]) == ""


def test_vocab_rejects_duplicates_and_empty():
    with pytest.raises(DataError, match="重复"):
        CharVocab("abca")
    with pytest.raises(DataError):
        CharVocab.from_text("")
    with pytest.raises(DataError):
        CharVocab.from_list(["a", "bc"])


def test_dataset_keeps_given_larger_vocab():
    vocab = CharVocab.from_text("abcdefghij")
    dataset = CharDataset.from_text("abc" * 8, vocab=vocab)
    assert dataset.vocab == vocab
    assert len(dataset.vocab) == 10
    assert vocab.decode(dataset.train) == dataset.train_text
    assert vocab.decode(dataset.test) == dataset.test_text


def test_dataset_rejects_text_outside_given_vocab():
    with pytest.raises(DataError, match="'z'"):
        CharDataset.from_text("abz" * 20, vocab=CharVocab.from_text("ab"))


# ---------------------------------------------------------------------------
# 切分
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "train_frac, val_frac",
    [(0.0, 0.05), (0.9, 0.0), (-0.1, 0.05), (0.9, 0.1), (0.95, 0.1), (1.0, 0.05), (float("nan"), 0.05)],
)
def test_split_rejects_bad_fractions(train_frac, val_frac):
    with pytest.raises(DataError):
        split_text("x" * 1000, train_frac, val_frac)


def test_split_rejects_empty_part():
    with pytest.raises(DataError, match="空的切分"):
        split_text("abcdefghij")  # int(10 * 0.05) == 0


def test_split_custom_fractions():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val, test = split_text(text, 0.8, 0.1)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert train + val + test == text


# ---------------------------------------------------------------------------
# 批次
# ---------------------------------------------------------------------------


def test_batch_shape_and_shift():
    series = torch.arange(100)
    x, y = get_batch(series, 8, 10, torch.Generator().manual_seed(1))
    assert x.shape == (8, 10)
    assert y.shape == (8, 10)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)  # 数据是 0, 1, 2, …，所以错一位就是加 1
    assert x.is_contiguous()
    assert y.is_contiguous()


def test_batch_same_seed_same_batches():
    series = torch.arange(1000)
    a = get_batch(series, 16, 32, torch.Generator().manual_seed(123))
    b = get_batch(series, 16, 32, torch.Generator().manual_seed(123))
    c = get_batch(series, 16, 32, torch.Generator().manual_seed(124))
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_batch_windows_stay_inside_split():
    # 长 20、seq_len 5 时起点只能是 0…14。种子固定，而且 2000 次抽取漏掉某一端的概率约为 (14/15)^2000 ≈ 1e-60。
    length, seq_len = 20, 5
    series = torch.arange(length)
    x, y = get_batch(series, 2000, seq_len, torch.Generator().manual_seed(0))
    starts = x[:, 0]
    assert int(starts.min()) == 0
    assert int(starts.max()) == length - seq_len - 1
    assert int(y.max()) == length - 1
    assert set(starts.tolist()) == set(range(length - seq_len))


def test_batch_exact_length_split():
    series = torch.arange(11)
    x, y = get_batch(series, 3, 10, torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.arange(10).expand(3, 10))
    assert torch.equal(y, torch.arange(1, 11).expand(3, 10))


def test_batch_too_short_split_error():
    with pytest.raises(DataError) as info:
        get_batch(torch.arange(10), 2, 10, torch.Generator())
    message = str(info.value)
    assert "10 个字符" in message
    assert "seq_len + 1 = 11" in message


@pytest.mark.parametrize("batch_size, seq_len", [(0, 4), (4, 0), (-1, 4)])
def test_batch_rejects_nonpositive_sizes(batch_size, seq_len):
    with pytest.raises(DataError):
        get_batch(torch.arange(100), batch_size, seq_len, torch.Generator())


def test_batch_rejects_bad_data():
    with pytest.raises(DataError):
        get_batch(torch.zeros(4, 50, dtype=torch.long), 2, 4, torch.Generator())
    with pytest.raises(DataError):
        get_batch(torch.zeros(50), 2, 4, torch.Generator())
    with pytest.raises(TypeError):
        get_batch(torch.arange(50), 2, 4, 0)


# ---------------------------------------------------------------------------
# 评估窗口
# ---------------------------------------------------------------------------


def test_eval_windows_cover_split():
    series = torch.arange(103)
    x, y = eval_windows(series, 10)
    assert x.shape == (10, 10)  # (103 - 1) // 10
    assert torch.equal(x.flatten(), torch.arange(100))
    assert torch.equal(y.flatten(), torch.arange(1, 101))


def test_eval_windows_deterministic_and_spread():
    series = torch.arange(1001)
    x1, y1 = eval_windows(series, 10, max_windows=7)
    x2, y2 = eval_windows(series, 10, max_windows=7)
    assert torch.equal(x1, x2)
    assert torch.equal(y1, y2)
    starts = x1[:, 0].tolist()
    assert len(set(starts)) == 7
    assert starts[0] == 0
    assert starts[-1] == 990  # 最后一个窗口 (100 个窗口中的第 99 个)
    assert all(s % 10 == 0 for s in starts)
    assert starts == sorted(starts)


def test_eval_windows_max_larger_than_count():
    series = torch.arange(51)
    x, _ = eval_windows(series, 10, max_windows=1000)
    assert x.shape == (5, 10)
    x1, _ = eval_windows(series, 10, max_windows=1)
    assert x1.shape == (1, 10)


@pytest.mark.parametrize("n_windows, max_windows", [(50, 49), (50, 2), (97, 10), (1000, 333)])
def test_eval_windows_evenly_spaced(n_windows, max_windows):
    seq_len = 4
    series = torch.arange(n_windows * seq_len + 1)
    x, _ = eval_windows(series, seq_len, max_windows=max_windows)
    window_ids = (x[:, 0] // seq_len).tolist()
    gaps = [b - a for a, b in zip(window_ids, window_ids[1:])]
    assert len(window_ids) == max_windows
    assert window_ids[0] == 0
    assert window_ids[-1] == n_windows - 1
    assert min(gaps) >= 1  # 互不相同且递增
    assert max(gaps) - min(gaps) <= 1  # 间隔最多相差一个窗口


def test_eval_windows_too_short_error():
    with pytest.raises(DataError, match="seq_len \\+ 1 = 9"):
        eval_windows(torch.arange(8), 8)
    with pytest.raises(DataError):
        eval_windows(torch.arange(100), 8, max_windows=0)


# ---------------------------------------------------------------------------
# load_text：查找顺序与错误输入
# ---------------------------------------------------------------------------


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


@pytest.fixture
def sources(tmp_path, monkeypatch, no_download):
    """三个内容不同的候选来源：显式路径、环境变量、缓存文件。"""
    explicit = write(tmp_path / "explicit.txt", "from path\n")
    env = write(tmp_path / "env.txt", "from env\n")
    cache_dir = tmp_path / "cache"
    write(cache_dir / CACHE_FILE_NAME, "from cache\n")
    monkeypatch.setenv(data.DATA_ENV, str(env))
    monkeypatch.delenv(data.CACHE_DIR_ENV, raising=False)
    return explicit, env, cache_dir


def test_lookup_path_beats_env(sources):
    explicit, _, cache_dir = sources
    assert load_text(explicit, cache_dir=cache_dir, verify=False) == "from path\n"


def test_lookup_env_beats_cache(sources):
    _, _, cache_dir = sources
    assert load_text(cache_dir=cache_dir, verify=False) == "from env\n"


def test_lookup_cache_beats_download(sources, monkeypatch):
    _, _, cache_dir = sources
    monkeypatch.delenv(data.DATA_ENV)
    assert load_text(cache_dir=cache_dir, verify=False) == "from cache\n"


def test_lookup_cache_dir_from_env(sources, monkeypatch):
    _, _, cache_dir = sources
    monkeypatch.delenv(data.DATA_ENV)
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(cache_dir))
    assert load_text(verify=False) == "from cache\n"


class FakeResponse(io.BytesIO):
    """urlopen 返回值的替身：只有 read、headers 和上下文管理器。"""

    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def test_lookup_downloads_default_url(tmp_path, monkeypatch, corpus_path):
    # 用替身代替网络：只检查没有其他来源时会去 DEFAULT_URL 下载，真实 HTTP 见 test_download.py。
    requested = []
    payload = corpus_path.read_bytes()

    def fake_urlopen(url, timeout):
        requested.append((url, timeout))
        return FakeResponse(payload)

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.delenv(data.DATA_URL_ENV, raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert load_text(cache_dir=tmp_path, timeout=5.0) == payload.decode("utf-8")
    assert requested == [(DEFAULT_URL, 5.0)]
    assert (tmp_path / CACHE_FILE_NAME).read_bytes() == payload


def test_explicit_missing_file_error(tmp_path, no_download):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="不存在") as info:
        load_text(missing, cache_dir=tmp_path)
    assert str(missing) in str(info.value)


def test_env_missing_file_error(tmp_path, monkeypatch, no_download):
    missing = tmp_path / "nope.txt"
    monkeypatch.setenv(data.DATA_ENV, str(missing))
    with pytest.raises(DataError) as info:
        load_text(cache_dir=tmp_path)
    message = str(info.value)
    assert str(missing) in message
    assert data.DATA_ENV in message


def test_empty_file_error(tmp_path):
    empty = write(tmp_path / "empty.txt", b"")
    for verify in (True, False):
        with pytest.raises(DataError, match="空的") as info:
            load_text(empty, verify=verify)
        assert str(empty) in str(info.value)


def test_non_utf8_names_offset(tmp_path):
    bad = write(tmp_path / "latin1.txt", "First Citizen:\nbien sûr\n".encode("latin-1"))
    offset = len("First Citizen:\nbien s")
    for verify in (True, False):
        with pytest.raises(DataError, match="UTF-8") as info:
            load_text(bad, verify=verify)
        message = str(info.value)
        assert f"偏移 {offset}" in message
        assert "fb" in message  # latin-1 的 û
        assert str(bad) in message


def test_directory_error(tmp_path):
    with pytest.raises(DataError, match="目录") as info:
        load_text(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_local_checksum_mismatch(tmp_path, corpus_path):
    raw = bytearray(corpus_path.read_bytes())
    raw[1000] = ord("#")  # 改一个字节，长度不变
    other = write(tmp_path / "tampered.txt", bytes(raw))
    with pytest.raises(DataError, match="sha256") as info:
        load_text(other)
    message = str(info.value)
    assert SHA256 in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    assert str(other) in message
    assert "verify=False" in message


def test_verify_false_accepts_other_text(tmp_path):
    other = write(tmp_path / "other.txt", "To be, or not to be\n")
    assert load_text(other, verify=False) == "To be, or not to be\n"


@pytest.mark.parametrize("content", [b"half a download", b"", b"\xff\xfe broken"], ids=["checksum", "empty", "utf8"])
def test_corrupt_cache_named_not_deleted(tmp_path, monkeypatch, no_download, content):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    cache_file = write(tmp_path / CACHE_FILE_NAME, content)
    with pytest.raises(DataError) as info:
        load_text(cache_dir=tmp_path)
    message = str(info.value)
    assert str(cache_file) in message
    assert "请删除" in message
    assert cache_file.read_bytes() == content
