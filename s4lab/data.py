"""语料：读取 TinyShakespeare、字符词表、连续切分与批次采样。

TinyShakespeare 是 Karpathy 为 char-rnn 整理的莎士比亚剧本选段，共 1,115,394 个字符（纯 ASCII，
所以也是 1,115,394 个字节）。本模块只处理文本和整数张量，不依赖任何模型代码。

查找语料的顺序见 :func:`load_text`：显式参数 ``path``，环境变量 ``S4LAB_DATA``，缓存文件，
最后才从网络下载。下载内容先在内存中校验 sha256，通过后才写入缓存。

形状约定：一个切分是一维 ``LongTensor``；批次 ``x``、``y`` 的形状是 ``(B, L)``，
``y`` 是 ``x`` 向后错一位的结果，即 ``y[b, t] == data[offset_b + t + 1]``。
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SHA256",
    "N_CHARS",
    "DEFAULT_URL",
    "DATA_ENV",
    "DATA_URL_ENV",
    "CACHE_DIR_ENV",
    "CACHE_FILE_NAME",
    "DataError",
    "default_cache_dir",
    "load_text",
    "CharVocab",
    "split_text",
    "get_batch",
    "eval_windows",
    "CharDataset",
]

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
N_CHARS = 1115394
DEFAULT_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"

DATA_ENV = "S4LAB_DATA"
DATA_URL_ENV = "S4LAB_DATA_URL"
CACHE_DIR_ENV = "S4LAB_CACHE_DIR"
CACHE_FILE_NAME = "tinyshakespeare.txt"

# 语料只有约 1.1 MB。响应超过这个上限说明下载地址指向了别的东西，不值得全部读进内存。
_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024

# 报告未知字符时最多列出的个数，其余只给出数量。
_MAX_UNKNOWN_SHOWN = 10


class DataError(ValueError):
    """语料文件、下载、词表、切分或批次参数无效时抛出；消息说明出错的路径或数值以及解决办法。"""


# ---------------------------------------------------------------------------
# 读取语料
# ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """返回缓存目录：环境变量 ``S4LAB_CACHE_DIR``，未设置时为 ``~/.cache/s4lab``。"""
    configured_dir = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured_dir:
        return Path(configured_dir).expanduser()
    return Path.home() / ".cache" / "s4lab"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode_utf8(data: bytes, source: str, fix_hint: str) -> str:
    """严格按 UTF-8 解码。失败时，消息给出第一个非法字节的偏移。"""
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        bad_bytes = data[err.start : err.end]
        raise DataError(
            f"{source}：不是合法的 UTF-8 文本，字节偏移 {err.start} 处的字节 {bad_bytes.hex(' ')} "
            f"无法解码（{err.reason}）。{fix_hint}如果这是另一份文本，请先把它转换成 UTF-8 编码。"
        ) from None


def _text_from_bytes(data: bytes, source: str, verify: bool, fix_hint: str) -> str:
    """检查字节内容（非空、UTF-8、校验和）并返回解码后的文本。

    ``source`` 说明数据从哪里来（来源与路径或 URL），写在每条错误消息的开头。
    ``fix_hint`` 是针对这个来源的处理建议，附在每条错误消息里。
    """
    if not data:
        raise DataError(f"{source}：内容是空的（0 字节）。{fix_hint}")
    text = _decode_utf8(data, source, fix_hint)
    if verify:
        actual_sha256 = _sha256(data)
        if actual_sha256 != SHA256:
            raise DataError(
                f"{source}：sha256 校验和不符，期望 {SHA256}，实际 {actual_sha256}"
                f"（{len(data)} 字节，期望 {N_CHARS} 字节）。{fix_hint}"
                "如果你有意使用另一份文本，请传入 verify=False（命令行：--set data.verify=false）。"
            )
    return text


def _read_local(path: Path, origin: str, verify: bool, fix_hint: str) -> str:
    """读取本地文件。``origin`` 说明路径的来源（参数、环境变量或缓存），写进错误消息。"""
    source = f"{origin} {path}"
    if path.is_dir():
        raise DataError(
            f"{source}：这是一个目录，不是文本文件。请指向目录里的 {CACHE_FILE_NAME} 或 input.txt 文件本身。"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{source}：文件不存在。请检查路径，或者不指定路径、不设置 {DATA_ENV}，让程序使用缓存或下载（命令行里对应 data.path 为 null）。"
        ) from None
    except OSError as err:
        raise DataError(f"{source}：无法读取（{err.strerror or err}）。请检查文件权限。") from None
    return _text_from_bytes(data, source, verify, fix_hint)


def _download(url: str, timeout: float) -> bytes:
    """把 ``url`` 的全部内容读进内存并返回。网络错误都转换成消息里带 URL 的 DataError。"""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DataError(
            f"下载地址 {url!r} 无效：只支持 http 或 https。本地文件请用参数 path 或环境变量 {DATA_ENV} 指定。"
        )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = _read_response(response, url)
    except urllib.error.HTTPError as err:
        raise DataError(f"从 {url} 下载失败：服务器返回 HTTP {err.code}（{err.reason}）。") from None
    except urllib.error.URLError as err:
        raise DataError(f"从 {url} 下载失败：无法连接（{err.reason}）。") from None
    except TimeoutError:
        raise DataError(f"从 {url} 下载失败：{timeout} 秒内没有收到数据（超时）。") from None
    except (OSError, http.client.HTTPException) as err:
        # 例如连接中途被重置（ConnectionResetError），或分块传输提前结束（IncompleteRead）。
        raise DataError(f"从 {url} 下载失败：传输中断（{type(err).__name__}: {err}）。") from None
    return data


def _read_response(response, url: str) -> bytes:
    """分块读取响应体，超过 ``_MAX_DOWNLOAD_BYTES`` 即停止，并核对 Content-Length。

    ``HTTPResponse.read(amt)`` 在连接提前关闭时只返回较少的字节而不报错（Python 3.11），
    所以这里自己比较收到的字节数与 Content-Length。
    """
    chunks = []
    received = 0
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        received += len(chunk)
        if received > _MAX_DOWNLOAD_BYTES:
            raise DataError(
                f"从 {url} 下载的内容超过 {_MAX_DOWNLOAD_BYTES} 字节，而语料只有 {N_CHARS} 字节：请检查下载地址。"
            )
        chunks.append(chunk)
    declared_length = response.headers.get("Content-Length")
    if declared_length is not None and declared_length.strip().isdigit() and int(declared_length) != received:
        raise DataError(
            f"从 {url} 下载失败：传输中断，服务器声明 {int(declared_length)} 字节（Content-Length），只收到 {received} 字节。"
        )
    return b"".join(chunks)


def _write_atomically(data: bytes, target: Path) -> None:
    """先写入同一目录下的临时文件，再用 ``os.replace`` 换到目标位置。

    同一文件系统内的 rename 是原子的，所以其他进程要么看到旧状态，要么看到完整的新文件。
    写入失败时删除临时文件。
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_text(
    path: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
    timeout: float = 30.0,
) -> str:
    """读取 TinyShakespeare 语料并返回整段文本（严格按 UTF-8 解码）。

    查找顺序：

    1. 参数 ``path``；
    2. 环境变量 ``S4LAB_DATA``；
    3. 缓存文件 ``cache_dir / "tinyshakespeare.txt"``（``cache_dir`` 默认见 :func:`default_cache_dir`）；
    4. 从 ``url`` 下载（默认取环境变量 ``S4LAB_DATA_URL``，再默认 ``DEFAULT_URL``），
       校验通过后写入缓存。

    前两步指定的文件不存在时直接报错，不会退回缓存或下载：那通常是路径写错了。
    ``verify=True`` 时，任何来源的内容的 sha256 都必须等于 ``SHA256``；
    ``verify=False`` 接受另一份文本，但只有校验和相符的下载才会写入缓存，
    所以 ``load_text`` 不会把别的文本写进缓存文件。``timeout`` 是下载的超时时间，单位为秒。

    所有失败都抛出 :class:`DataError`。
    """
    if path is not None:
        return _read_local(
            Path(path).expanduser(), "参数 path 指定的文件", verify, "请检查这个文件是否完整。"
        )

    env_path = os.environ.get(DATA_ENV, "").strip()
    if env_path:
        return _read_local(
            Path(env_path).expanduser(),
            f"环境变量 {DATA_ENV} 指定的文件",
            verify,
            f"请检查这个文件是否完整，或改正 {DATA_ENV}。",
        )

    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_file = cache_root / CACHE_FILE_NAME
    if cache_file.exists():
        # 损坏的缓存不能悄悄删掉重下：那会掩盖磁盘或下载地址的问题，所以让用户自己删。
        return _read_local(
            cache_file,
            "缓存文件",
            verify,
            f"缓存可能已损坏：请删除 {cache_file}，下次调用会重新下载。",
        )

    if url is None:
        url = os.environ.get(DATA_URL_ENV, "").strip() or DEFAULT_URL
    try:
        data = _download(url, timeout)
    except DataError as err:
        raise DataError(
            f"找不到语料文件（已查看缓存 {cache_file}），下载也失败了：{err}"
            f"请把环境变量 {DATA_ENV} 设为本地 TinyShakespeare 文件的路径，或调用 load_text(path=...)（命令行：--set data.path=文件路径）；"
            f"也可以用 {DATA_URL_ENV} 或参数 url 换一个下载地址。"
        ) from None

    # 先在内存中校验，通过后才写盘：校验失败时缓存目录里什么都不会留下。
    text = _text_from_bytes(data, f"从 {url} 下载的内容", verify, "没有写入缓存。请检查下载地址。")
    if _sha256(data) == SHA256:
        _write_atomically(data, cache_file)
    return text


# ---------------------------------------------------------------------------
# 字符词表
# ---------------------------------------------------------------------------


def _code_points(s: str) -> np.ndarray:
    """把字符串转成 Unicode 码位数组（UTF-32 每个字符正好 4 字节，不需要逐字符循环）。

    ``surrogatepass`` 让孤立的代理项（例如 ``surrogateescape`` 解码留下的）也按码位处理，不会报编码错误。
    """
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class CharVocab:
    """字符词表：第 i 个字符的编号（id）是 i。

    ``from_text`` 按码位排序，所以同一份文本总是得到同一个词表。编码和解码都用 numpy
    查表完成，整份语料编码一次在 2 核 CPU 上约 0.03 秒（测量值）。
    """

    def __init__(self, chars: str):
        if not isinstance(chars, str):
            raise TypeError(f"chars 必须是字符串，收到 {type(chars).__name__}。")
        if not chars:
            raise DataError("词表不能为空：请从非空文本建立词表（CharVocab.from_text）。")
        if len(set(chars)) != len(chars):
            repeated = sorted({c for c in chars if chars.count(c) > 1})
            raise DataError(f"词表中的字符必须互不相同，重复的有 {repeated!r}。")
        self._chars = chars
        self._cps = _code_points(chars)  # (V,) 每个 id 对应的码位
        # 码位 → id 的查找表。最后一格是 -1，超出表长的码位都被截到这一格，因此也算未知字符。
        table_size = int(self._cps.max()) + 2
        self._lookup = np.full(table_size, -1, dtype=np.int64)
        self._lookup[self._cps] = np.arange(len(chars), dtype=np.int64)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """用文本中出现过的所有字符（按码位排序、去重）建立词表。"""
        if not isinstance(text, str):
            raise TypeError(f"text 必须是字符串，收到 {type(text).__name__}。")
        return cls("".join(sorted(set(text))))

    @classmethod
    def from_list(cls, chars: list[str]) -> "CharVocab":
        """从 :meth:`to_list` 的结果（每个元素一个字符）恢复词表。"""
        items = list(chars)
        invalid = [c for c in items if not isinstance(c, str) or len(c) != 1]
        if invalid:
            raise DataError(f"词表列表的每个元素必须是单个字符，无效的元素有 {invalid[:_MAX_UNKNOWN_SHOWN]!r}。")
        return cls("".join(items))

    def to_list(self) -> list[str]:
        """返回按 id 排列的字符列表，只含普通的 Python 类型，可以直接存进检查点。"""
        return list(self._chars)

    @property
    def chars(self) -> str:
        """按 id 顺序排列的全部字符。"""
        return self._chars

    def __len__(self) -> int:
        return len(self._chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocab):
            return NotImplemented
        return self._chars == other._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} 个字符: {self._chars!r})"

    def encode(self, s: str) -> torch.Tensor:
        """把字符串编码成一维 ``LongTensor``，形状 ``(len(s),)``。

        文本中有词表以外的字符时抛出 :class:`DataError`，列出这些字符（最多 10 个）和总数。
        """
        if not isinstance(s, str):
            raise TypeError(f"encode 需要字符串，收到 {type(s).__name__}。")
        cps = _code_points(s)  # (n,)
        ids = self._lookup[np.minimum(cps, len(self._lookup) - 1)]  # (n,)
        unknown_mask = ids < 0
        if unknown_mask.any():
            self._raise_unknown(s, cps[unknown_mask])
        return torch.from_numpy(ids)

    def _raise_unknown(self, s: str, unknown_cps: np.ndarray) -> None:
        # 按首次出现的顺序列出未知字符，这样第一个就是文本里最先出错的地方。
        distinct, first_index = np.unique(unknown_cps, return_index=True)
        ordered = [chr(int(cp)) for cp in distinct[np.argsort(first_index)]]
        listed = ", ".join(repr(c) for c in ordered[:_MAX_UNKNOWN_SHOWN])
        truncation_note = f" 等（只列出前 {_MAX_UNKNOWN_SHOWN} 种）" if len(ordered) > _MAX_UNKNOWN_SHOWN else ""
        raise DataError(
            f"文本中有 {len(ordered)} 种字符不在词表里（共出现 {len(unknown_cps)} 次）：{listed}{truncation_note}。"
            "请用包含这些字符的文本重新建立词表（CharVocab.from_text），或先把它们从文本中去掉。"
        )

    def decode(self, ids) -> str:
        """把一维整数 id 序列（张量、numpy 数组或 int 列表）解码成字符串。

        超出 ``[0, len(self))`` 的 id 会抛出 :class:`DataError`，消息给出该 id 和它的位置。
        """
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise DataError(f"decode 需要整数 id，收到 dtype 为 {ids.dtype} 的张量。")
            array = ids.detach().cpu().numpy().astype(np.int64, copy=False)
        else:
            items = list(ids)
            invalid = [x for x in items if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
            if invalid:
                raise DataError(f"decode 需要整数 id，收到 {invalid[:_MAX_UNKNOWN_SHOWN]!r}。")
            array = np.asarray(items, dtype=np.int64)
        if array.ndim != 1:
            raise DataError(f"decode 需要一维 id 序列，收到形状 {tuple(array.shape)}：批次请逐行解码。")
        out_of_range = (array < 0) | (array >= len(self))
        if out_of_range.any():
            position = int(np.argmax(out_of_range))
            raise DataError(
                f"id {int(array[position])}（位置 {position}）超出词表范围 [0, {len(self) - 1}]："
                f"这个词表只有 {len(self)} 个字符，请确认 id 来自同一个词表。"
            )
        return self._cps[array].tobytes().decode("utf-32-le", "surrogatepass")


# ---------------------------------------------------------------------------
# 切分与批次
# ---------------------------------------------------------------------------


def split_text(text: str, train_frac: float = 0.9, val_frac: float = 0.05) -> tuple[str, str, str]:
    """把文本按顺序连续切成训练、验证、测试三段。

    训练集是前 ``int(n * train_frac)`` 个字符，验证集是接下来的 ``int(n * val_frac)`` 个，
    测试集是剩下的部分。训练集的切分点与 nanoGPT 的 ``data/shakespeare_char/prepare.py`` 相同，
    nanoGPT 把其余部分全部作为验证集。三段拼起来等于原文。
    """
    for name, fraction in (("train_frac", train_frac), ("val_frac", val_frac)):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise DataError(f"{name}={fraction!r} 无效：必须是 0 和 1 之间（不含端点）的数。")
    if train_frac + val_frac >= 1:
        raise DataError(
            f"train_frac + val_frac = {train_frac + val_frac!r} 无效：必须小于 1，测试集才不为空。"
        )
    n = len(text)
    n_train = int(n * train_frac)
    n_val = int(n * val_frac)
    train, val, test = text[:n_train], text[n_train : n_train + n_val], text[n_train + n_val :]
    if not (train and val and test):
        raise DataError(
            f"文本只有 {n} 个字符，按 train_frac={train_frac}、val_frac={val_frac} 切分后"
            f"得到的长度是 {len(train)}/{len(val)}/{len(test)}，有空的切分：请使用更长的文本或调整比例。"
        )
    return train, val, test


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} 必须是整数，收到 {type(value).__name__}。")
    if value < 1:
        raise DataError(f"{name}={value} 无效：必须 ≥ 1。")


def _check_split(data, seq_len: int) -> None:
    """检查 ``data`` 是一维整数张量，且至少能放下一个长 ``seq_len + 1`` 的窗口。"""
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data 必须是一维 LongTensor，收到 {type(data).__name__}。")
    if data.dim() != 1 or data.is_floating_point() or data.is_complex() or data.dtype == torch.bool:
        raise DataError(
            f"data 必须是一维整数张量（一个切分的编码），收到形状 {tuple(data.shape)}、dtype {data.dtype}。"
        )
    _check_positive_int("seq_len", seq_len)
    if len(data) < seq_len + 1:
        raise DataError(
            f"切分只有 {len(data)} 个字符，短于一个窗口所需的 seq_len + 1 = {seq_len + 1} 个字符"
            "（输入 x 与错一位的目标 y 共需这么多）：请减小 seq_len，或给这个切分分配更多文本。"
        )


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """从一个切分中随机取 ``batch_size`` 个窗口，返回 ``(x, y)``，形状都是 ``(B, L)``。

    起点在 ``[0, len(data) - seq_len - 1]`` 中均匀抽取（两端都可取到），所以每个长 ``seq_len + 1``
    的窗口都完整地落在这个切分里；``y[b, t] == x[b, t + 1]``，``y`` 的最后一列是窗口的最后一个字符。
    随机数只来自 ``generator``（须在 CPU 上），同一个种子得到同样的批次。
    """
    _check_split(data, seq_len)
    _check_positive_int("batch_size", batch_size)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator 必须是 torch.Generator，收到 {type(generator).__name__}。")
    # randint 的上界不含在内，所以最大起点是 len(data) - seq_len - 1。
    offsets = torch.randint(0, len(data) - seq_len, (batch_size,), generator=generator)  # (B,)
    positions = offsets.unsqueeze(1) + torch.arange(seq_len)  # (B, L)
    positions = positions.to(data.device)
    x = data[positions]  # (B, L)
    y = data[positions + 1]  # (B, L)
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def eval_windows(
    data: torch.Tensor, seq_len: int, max_windows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """返回确定的评估窗口 ``(x, y)``，形状 ``(W, L)``，不用随机数。

    第 i 个窗口从 ``i * seq_len`` 开始、占 ``seq_len + 1`` 个字符，所以相邻窗口的目标 ``y`` 首尾相接、
    互不重叠，共有 ``W = (len(data) - 1) // seq_len`` 个；末尾不足一个窗口的零头（少于 ``seq_len``
    个目标字符）不参与评估。给出 ``max_windows`` = m 且 m < W 时，取第 ⌊k(W−1)/(m−1)⌋ 个窗口
    （k = 0…m−1），即包含第一个和最后一个、等间隔的 m 个。
    """
    _check_split(data, seq_len)
    n_windows = (len(data) - 1) // seq_len
    window_ids = torch.arange(n_windows)  # (W,)
    if max_windows is not None:
        _check_positive_int("max_windows", max_windows)
        if max_windows < n_windows:
            if max_windows == 1:
                window_ids = torch.zeros(1, dtype=torch.long)
            else:
                # 用整数运算。因为间隔 (W-1)/(m-1) ≥ 1，向下取整后的编号严格递增，不会重复。
                k = torch.arange(max_windows)
                window_ids = (k * (n_windows - 1)) // (max_windows - 1)
    positions = window_ids.unsqueeze(1) * seq_len + torch.arange(seq_len)  # (W, L)
    positions = positions.to(data.device)
    return data[positions], data[positions + 1]


# ---------------------------------------------------------------------------
# 打包
# ---------------------------------------------------------------------------


@dataclass
class CharDataset:
    """一份语料的全部内容：原文、词表、三段切分的文本与编码。

    词表包含原文中的全部字符（默认就由原文建立），所以三段切分一定都能编码。
    """

    text: str
    vocab: CharVocab
    train_text: str
    val_text: str
    test_text: str
    train: torch.Tensor  # (n_train,) LongTensor
    val: torch.Tensor  # (n_val,)
    test: torch.Tensor  # (n_test,)

    @classmethod
    def from_text(
        cls, text: str, *, train_frac: float = 0.9, val_frac: float = 0.05, vocab: CharVocab | None = None
    ) -> "CharDataset":
        """按 :func:`split_text` 切分一段文本并编码。

        ``vocab`` 默认由 ``text`` 建立。传入更大的词表（例如由整份语料建立、而 ``text`` 只是它的开头）时，
        词表大小与整份语料一致。``text`` 中有词表以外的字符时抛出 :class:`DataError`。
        """
        if vocab is None:
            vocab = CharVocab.from_text(text)
        train_text, val_text, test_text = split_text(text, train_frac, val_frac)
        return cls(
            text=text,
            vocab=vocab,
            train_text=train_text,
            val_text=val_text,
            test_text=test_text,
            train=vocab.encode(train_text),
            val=vocab.encode(val_text),
            test=vocab.encode(test_text),
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike | None = None, *, train_frac: float = 0.9, val_frac: float = 0.05, **kw
    ) -> "CharDataset":
        """用 :func:`load_text` 读取语料（其余关键字参数原样传给它），再调用 :meth:`from_text`。"""
        return cls.from_text(load_text(path, **kw), train_frac=train_frac, val_frac=val_frac)
