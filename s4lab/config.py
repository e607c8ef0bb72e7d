"""训练命令的 YAML 配置：读取、``--set`` 覆盖、逐键校验，以及转换成 ``LMConfig``/``TrainConfig``。

一个配置文件有五个部分，未写出的键取下表的默认值（即 ``LMConfig``、``TrainConfig`` 的默认值）::

    model: s4d            # s4d 或 transformer
    lm: {...}             # LMConfig 的字段
    train: {...}          # TrainConfig 的字段
    data: {...}           # 语料路径、切分比例、只用前若干字符
    run: {...}            # 输出目录与设备

校验在做任何事之前完成：未知的键、错误的类型、超出范围的值都收集起来，一次性以
:class:`ConfigError` 报告，每条都写出键、收到的值与允许的范围。
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from s4lab.data import CharDataset, CharVocab, load_text
from s4lab.layers import DT_RANGE
from s4lab.models import MODEL_NAMES, LMConfig, build_model
from s4lab.train import TrainConfig

S4D_INITS = ("lin", "inv", "real")
DT_LIMITS = DT_RANGE  # Δ 的初始化范围必须落在 S4D 层截断 Δ 的范围之内


class ConfigError(ValueError):
    """配置无效。``problems`` 是逐条的中文说明，每条写出键、值与允许的范围。"""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        source_note = f"（{source}）" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"配置无效{source_note}，共 {len(self.problems)} 处：\n{lines}")


# ---------------------------------------------------------------------------
# 每个键的类型与范围
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """一个配置键的规则：类型（int、float、str、bool、path）、范围与可选值。"""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nullable: bool = False

    def describe(self) -> str:
        """用中文写出允许的取值，例如“≥ 1 的整数”“(0, 1] 内的数”。"""
        if self.choices:
            text = "、".join(repr(c) for c in self.choices) + " 之一"
        else:
            noun = {"int": "整数", "float": "有限数", "str": "字符串", "bool": "true 或 false", "path": "文件路径"}[
                self.kind
            ]
            if self.low is not None and self.high is not None:
                left = "(" if self.low_open else "["
                right = ")" if self.high_open else "]"
                text = f"{left}{self.low:g}, {self.high:g}{right} 内的{noun}"
            elif self.low is not None:
                text = f"{'>' if self.low_open else '≥'} {self.low:g} 的{noun}"
            else:
                text = noun
        return text + ("，或 null" if self.nullable else "")


POSITIVE_INT = Field("int", low=1)
POSITIVE_FLOAT = Field("float", low=0, low_open=True)

SCHEMA: dict[str, dict[str, Field]] = {
    "lm": {
        "vocab_size": POSITIVE_INT,
        "seq_len": POSITIVE_INT,
        "d_model": POSITIVE_INT,
        "n_layers": POSITIVE_INT,
        "mlp_ratio": POSITIVE_INT,
        "dropout": Field("float", low=0, high=1, high_open=True),
        "d_state": POSITIVE_INT,
        "dt_min": Field("float", low=DT_LIMITS[0], high=DT_LIMITS[1]),
        "dt_max": Field("float", low=DT_LIMITS[0], high=DT_LIMITS[1]),
        "s4d_init": Field("str", choices=S4D_INITS),
        "n_heads": POSITIVE_INT,
    },
    "train": {
        "batch_size": POSITIVE_INT,
        "max_steps": POSITIVE_INT,
        "lr": POSITIVE_FLOAT,
        "ssm_lr": POSITIVE_FLOAT,
        "weight_decay": Field("float", low=0),
        "warmup_steps": Field("int", low=0),
        "min_lr_ratio": Field("float", low=0, high=1),
        "grad_clip": POSITIVE_FLOAT,
        "eval_interval": POSITIVE_INT,
        "eval_max_windows": Field("int", low=1, nullable=True),
        "log_interval": POSITIVE_INT,
        "seed": Field("int", low=0),
        "keep_last": POSITIVE_INT,
    },
    "data": {
        "path": Field("path", nullable=True),
        "verify": Field("bool"),
        "max_chars": Field("int", low=1000, nullable=True),
        "train_frac": Field("float", low=0, high=1, low_open=True, high_open=True),
        "val_frac": Field("float", low=0, high=1, low_open=True, high_open=True),
    },
    "run": {
        "out_dir": Field("path"),
        "device": Field("str"),
    },
}
MODEL_FIELD = Field("str", choices=MODEL_NAMES)
SECTIONS = ("model", *SCHEMA)


@dataclass
class DataConfig:
    """语料的来源与切分。``path`` 为 None 时按 ``s4lab.data.load_text`` 的顺序查找（``S4LAB_DATA``、缓存）。

    ``max_chars`` 只取语料的前若干个字符再切分（用于快速试跑）；词表仍由整份语料建立，
    所以 ``vocab_size`` 不变。``verify=False`` 允许使用校验和不同的另一份文本。
    """

    path: str | None = None
    verify: bool = True
    max_chars: int | None = None
    train_frac: float = 0.9
    val_frac: float = 0.05


@dataclass
class RunSettings:
    """输出目录（相对路径相对于当前工作目录）与设备（auto、cpu、cuda 或 cuda:0 这样的写法）。"""

    out_dir: str = "runs/cli/s4d"
    device: str = "auto"


@dataclass
class RunConfig:
    """一次命令行训练的完整配置。"""

    model: str = "s4d"
    lm: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunSettings = field(default_factory=RunSettings)

    def to_dict(self) -> dict:
        """返回只含普通类型的嵌套字典，写进运行目录的 ``config.yaml`` 后可以原样读回。"""
        return {
            "model": self.model,
            "lm": self.lm.to_dict(),
            "train": self.train.to_dict(),
            "data": dataclasses.asdict(self.data),
            "run": dataclasses.asdict(self.run),
        }

    def resolve_device(self) -> torch.device:
        """把 ``run.device`` 换成 ``torch.device``；auto 在有 CUDA 时选 GPU。"""
        if self.run.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.run.device)


def default_dict() -> dict:
    """默认配置的嵌套字典。"""
    return RunConfig().to_dict()


# ---------------------------------------------------------------------------
# 读取 YAML
# ---------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """拒绝同一映射中重复的键：PyYAML 默认静默保留最后一个，写错的配置会不声不响地生效。"""


def _construct_mapping(loader, node, deep=False):
    first_line = {}  # 键 → 它第一次出现的行号（从 0 开始）
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None, None, f"键 {key!r} 重复出现（第 {first_line[key] + 1} 行与第 {key_node.start_mark.line + 1} 行）",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path) -> dict:
    """读取一个 YAML 配置文件，返回顶层映射。文件缺失、语法错误、重复键都抛出 :class:`ConfigError`。"""
    path = Path(path)
    if path.is_dir():
        raise ConfigError([f"配置文件 {path} 是一个目录：请指向其中的 .yaml 文件，例如 configs/s4d_cpu_small.yaml。"])
    if not path.is_file():
        raise ConfigError([f"配置文件 {path} 不存在：请检查路径（相对路径从当前目录 {Path.cwd()} 算起），仓库自带的配置在 configs/ 目录下。"])
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        location = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark is not None else "某处"
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{location}不是合法的 YAML：{problem}。"], source=str(path)) from None
    except UnicodeDecodeError as error:
        raise ConfigError([f"文件不是 UTF-8 文本（字节偏移 {error.start}）。"], source=str(path)) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            [f"顶层必须是映射（键: 值），收到 {type(document).__name__}。可用的部分：{'、'.join(SECTIONS)}。"],
            source=str(path),
        )
    return document


def parse_override(text: str) -> tuple[list[str], object]:
    """把 ``--set`` 的参数 ``train.lr=3e-4`` 拆成键路径与值；值按 YAML 解析（null、true、数字、字符串）。"""
    if "=" not in text:
        raise ConfigError([f"--set {text!r} 的格式无效：应为 部分.键=值，例如 --set train.max_steps=2000。"])
    key, raw_value = text.split("=", 1)
    key_path = key.strip().split(".")
    if not all(key_path):
        raise ConfigError([f"--set {text!r} 的键 {key!r} 无效：应为 部分.键，例如 train.lr。"])
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else raw_value
    except yaml.YAMLError:
        value = raw_value
    return key_path, value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """返回 ``values`` 的副本，逐条应用 ``--set``；键是否存在留给 :func:`validate` 检查。"""
    values = copy.deepcopy(values)
    for override in overrides:
        key_path, value = parse_override(override)
        if len(key_path) == 1:
            values[key_path[0]] = value
            continue
        if len(key_path) > 2:
            raise ConfigError([f"--set {override!r} 的键有 {len(key_path)} 层：配置只有两层，应为 部分.键。"])
        section, key = key_path
        section_values = values.setdefault(section, {})
        if not isinstance(section_values, dict):
            raise ConfigError([f"--set {override!r} 无效：{section} 不是一个部分（它的值是 {section_values!r}）。"])
        section_values[key] = value
    return values


# ---------------------------------------------------------------------------
# 校验
# ---------------------------------------------------------------------------


def _check_value(key: str, value, rule: Field, problems: list[str]):
    """检查一个值的类型与范围，返回转换后的值；无效时把说明追加到 ``problems`` 并返回 None。"""
    allowed = rule.describe()

    def reject(reason: str, *, name_allowed: bool = True):
        # name_allowed=False：reason 已经写出了允许的取值（布尔值的“需要 true 或 false”），不再重复一遍。
        suffix = f"，允许的取值是 {allowed}" if name_allowed else ""
        problems.append(f"{key} = {value!r} 无效：{reason}{suffix}。")

    if value is None:
        if not rule.nullable:
            reject("不能为空")
        return None
    if rule.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return reject(f"类型是 {type(value).__name__}，需要整数")
        number = value
    elif rule.kind == "float":
        # PyYAML 按 YAML 1.1 把不带小数点的 1e-3 读成字符串，所以这里也接受能解析成数的字符串。
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return reject("类型是 str，需要数值")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return reject(f"类型是 {type(value).__name__}，需要数值")
        else:
            number = float(value)
        if not math.isfinite(number):
            return reject("不是有限数")
    elif rule.kind == "bool":
        if not isinstance(value, bool):
            return reject(f"类型是 {type(value).__name__}，需要 {allowed}", name_allowed=False)
        return value
    else:  # str、path
        if not isinstance(value, str) or not value.strip():
            return reject(f"类型是 {type(value).__name__}，需要非空字符串")
        if rule.choices and value not in rule.choices:
            return reject("不在可选值中")
        return value

    too_low = rule.low is not None and (number <= rule.low if rule.low_open else number < rule.low)
    too_high = rule.high is not None and (number >= rule.high if rule.high_open else number > rule.high)
    if too_low or too_high:
        return reject("超出范围")
    return number


def _check_section(name: str, section_values, problems: list[str]) -> dict:
    """校验配置文件中的一个部分（lm、train、data、run），返回补全了默认值的字典。"""
    defaults = default_dict()[name]
    if section_values is None:
        section_values = {}
    if not isinstance(section_values, dict):
        problems.append(f"{name} = {section_values!r} 无效：必须是映射（键: 值），可用的键是 {'、'.join(SCHEMA[name])}。")
        return defaults
    resolved = dict(defaults)
    for key, value in section_values.items():
        rule = SCHEMA[name].get(key)
        if rule is None:
            problems.append(
                f"{name}.{key} 是未知的键（值为 {value!r}）：{name} 部分可用的键是 {'、'.join(SCHEMA[name])}。"
            )
            continue
        converted = _check_value(f"{name}.{key}", value, rule, problems)
        if converted is not None or (value is None and rule.nullable):
            resolved[key] = converted
    return resolved


def _check_combinations(model: str, lm: dict, train: dict, data: dict, run: dict, problems: list[str]) -> None:
    """检查涉及多个键的约束，以及与所选模型有关的约束。"""
    if model == "s4d" and isinstance(lm["d_state"], int) and lm["d_state"] % 2 != 0:
        problems.append(
            f"lm.d_state = {lm['d_state']!r} 无效：S4D 的模态成共轭对出现，状态维数 N 必须是 ≥ 2 的偶数，例如 64。"
        )
    if lm["dt_min"] >= lm["dt_max"]:
        problems.append(
            f"lm.dt_min = {lm['dt_min']!r} 与 lm.dt_max = {lm['dt_max']!r} 无效：需要 dt_min < dt_max，"
            f"两者都在 [{DT_LIMITS[0]:g}, {DT_LIMITS[1]:g}] 内。"
        )
    if model == "transformer":
        heads, width = lm["n_heads"], lm["d_model"]
        if width % heads != 0:
            problems.append(f"lm.n_heads = {heads!r} 无效：必须整除 lm.d_model = {width!r}。")
        elif (width // heads) % 2 != 0:
            problems.append(
                f"lm.n_heads = {heads!r} 无效：旋转位置编码要求每个头的维数 d_model / n_heads 是偶数，"
                f"当前为 {width // heads}。"
            )
    if data["train_frac"] + data["val_frac"] >= 1:
        problems.append(
            f"data.train_frac + data.val_frac = {data['train_frac'] + data['val_frac']!r} 无效：必须 < 1，测试集才不为空。"
        )
    if train["warmup_steps"] > train["max_steps"]:
        problems.append(
            f"train.warmup_steps = {train['warmup_steps']!r} 无效：不能超过 train.max_steps = {train['max_steps']!r}"
            "（训练很短时可以同时设置 --set train.warmup_steps=0）。"
        )
    device = run["device"]
    try:
        torch_device = None if device == "auto" else torch.device(device)
    except RuntimeError:
        problems.append(f"run.device = {device!r} 无效：允许的取值是 auto、cpu、cuda 或 cuda:0 这样的写法。")
        return
    if torch_device is not None and torch_device.type not in ("cpu", "cuda"):
        problems.append(f"run.device = {device!r} 无效：允许的取值是 auto、cpu、cuda 或 cuda:0 这样的写法。")
    elif torch_device is not None and torch_device.type == "cuda" and not torch.cuda.is_available():
        problems.append(f"run.device = {device!r} 无效：这台机器上没有可用的 CUDA 设备，请改用 cpu 或 auto。")


def validate(values: dict, source: str | None = None) -> RunConfig:
    """校验一个嵌套字典并构建 :class:`RunConfig`；有任何问题都抛出 :class:`ConfigError`，列出全部问题。"""
    problems: list[str] = []
    for key in values:
        if key not in SECTIONS:
            problems.append(f"{key} 是未知的部分（值为 {values[key]!r}）：顶层可用的键是 {'、'.join(SECTIONS)}。")
    model = _check_value("model", values.get("model", "s4d"), MODEL_FIELD, problems)
    sections = {name: _check_section(name, values.get(name), problems) for name in SCHEMA}
    if problems:
        raise ConfigError(problems, source)
    _check_combinations(model, **sections, problems=problems)
    if problems:
        raise ConfigError(problems, source)

    try:
        lm = LMConfig(**sections["lm"])
        train = TrainConfig(**sections["train"])
        # 试着构建一次模型，把层内部的检查也放在开始训练之前。
        build_model(model, lm)
    except ValueError as error:
        raise ConfigError([str(error)], source) from None
    return RunConfig(model, lm, train, DataConfig(**sections["data"]), RunSettings(**sections["run"]))


def load_config(path=None, overrides: list[str] | None = None) -> RunConfig:
    """读取 YAML 文件（``path`` 为 None 时从默认值开始），应用 ``--set`` 覆盖，校验后返回 :class:`RunConfig`。"""
    values = read_yaml(path) if path is not None else {}
    values = apply_overrides(values, overrides or [])
    return validate(values, source=str(path) if path is not None else None)


def write_config(config: RunConfig, path) -> None:
    """把解析后的完整配置写成 YAML（键的顺序与 dataclass 字段一致）。"""
    text = yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False)
    Path(path).write_text(text, encoding="utf-8")


def load_dataset(data: DataConfig) -> CharDataset:
    """按 ``data`` 读取语料并切分。词表由整份语料建立，再按 ``max_chars`` 截取开头部分切分。"""
    text = load_text(data.path, verify=data.verify)
    vocab = CharVocab.from_text(text)
    if data.max_chars is not None:
        text = text[: data.max_chars]
    return CharDataset.from_text(text, train_frac=data.train_frac, val_frac=data.val_frac, vocab=vocab)
