"""序列混合层：S4D 层与因果自注意力，以及两者共用的残差块。

两个混合层的接口相同：输入输出都是 ``(B, L, H)``。语言模型只在这一层上不同，
其余部分（嵌入、前馈网络、归一化、输出头）完全共用，见 ``s4lab.models``。
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from s4lab import ssm

# 原始参数的截断范围。截断只发生在远离初始值的地方，用来保证数值有限：
# Re(A) = −exp(log_A_real) 始终严格小于 0，Δ 始终落在 [1e-4, 10]。
# NOTE: 下限处 Re(A) ≈ −2e-9，配合 Δ = 1e-4 时 float32 中的 Ā = e^{ΔA} 会舍入成 1：
# 连续系统严格稳定，离散后的 |Ā| 在 float32 中却可能等于 1（不会大于 1）。
LOG_A_REAL_RANGE = (-20.0, 20.0)
DT_RANGE = (1e-4, 10.0)


class S4DLayer(nn.Module):
    """S4D 层（对角状态空间模型，S4D-Lin/S4D-Inv 初始化，零阶保持离散化）。

    每个通道 h 是一个独立的单输入单输出 SSM，整个系统有 N = ``d_state`` 个复模态，
    它们成共轭对出现，所以只存 N/2 个，输出取 2·Re(…)，因此 N 必须是正偶数。

    参数都存成实数张量，这样梯度裁剪与优化器按普通实数参数处理它们：
    ``log_dt`` (H,)、``log_A_real`` (H, N/2)、``A_imag`` (H, N/2)、``C`` (H, N/2, 2)（复数 C 的实部与虚部）、
    ``D`` (H,)，以及输出混合 ``output_linear``：Linear(H → 2H) 之后接 GLU。
    """

    ssm_parameter_names = ("log_dt", "log_A_real", "A_imag")
    # 卷积核的算法，见 ``ssm.s4d_kernel``；基准测试把它改成 "vandermonde" 来对照直接公式。
    kernel_method = "chunked"

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        init: str = "lin",
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model 必须 ≥ 1，收到 {d_model!r}。")
        if d_state < 2 or d_state % 2 != 0:
            raise ValueError(
                f"d_state={d_state!r} 无效：S4D 的模态成共轭对出现，状态维数 N 必须是正偶数（例如 64）。"
            )
        if not (DT_RANGE[0] <= dt_min < dt_max <= DT_RANGE[1]):
            raise ValueError(
                f"Δ 的初始化范围 [{dt_min!r}, {dt_max!r}] 无效：需要 {DT_RANGE[0]} ≤ dt_min < dt_max ≤ {DT_RANGE[1]}。"
            )
        H, n = d_model, d_state // 2
        self.d_model, self.d_state = H, d_state

        # log Δ 在 [log dt_min, log dt_max] 上均匀分布：各通道覆盖从 1/dt_max 到 1/dt_min 步的时间尺度。
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        A = ssm.s4d_init_A(n, init).unsqueeze(0).expand(H, n)  # (H, N/2)
        C = torch.randn(H, n, dtype=torch.complex64)  # (H, N/2)，每个分量方差为 1/2

        self.log_dt = nn.Parameter(log_dt)  # (H,)
        self.log_A_real = nn.Parameter(torch.log(-A.real).clone())  # (H, N/2)
        self.A_imag = nn.Parameter(A.imag.clone())  # (H, N/2)
        self.C = nn.Parameter(torch.view_as_real(C).clone())  # (H, N/2, 2)
        self.D = nn.Parameter(torch.randn(H))  # (H,)
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(H, 2 * H)

    def A(self) -> torch.Tensor:
        """连续时间的对角 A，形状 (H, N/2)，复数；实部对任意原始参数值都严格为负。"""
        real = -torch.exp(self.log_A_real.clamp(*LOG_A_REAL_RANGE))
        return torch.complex(real, self.A_imag)

    def C_complex(self) -> torch.Tensor:
        """复数 C，形状 (H, N/2)。"""
        return torch.view_as_complex(self.C)

    def dt(self) -> torch.Tensor:
        """步长 Δ，形状 (H,)，截断在 [1e-4, 10]。"""
        # 先截断 log Δ 再取指数：log Δ 极大时 exp 溢出为 inf，反向传播里的 0·inf 会变成 NaN。
        return torch.exp(self.log_dt.clamp(math.log(DT_RANGE[0]), math.log(DT_RANGE[1])))

    def kernel(self, L: int) -> torch.Tensor:
        """长度为 L 的卷积核，形状 (H, L)，实数。"""
        return ssm.s4d_kernel(self.A(), self.C_complex(), torch.log(self.dt()), L, method=self.kernel_method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, H) → (B, L, H)。"""
        L = x.shape[1]
        u = x.transpose(1, 2)  # (B, H, L)
        # 卷积核与卷积至少在 float32 中计算：FFT 不支持 bfloat16，而且长序列的求和需要这个精度；
        # float64 保持 float64。关闭 autocast，否则它会把卷积核里的 einsum 降到 bfloat16。
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            K = self.kernel(L)  # (H, L)
            y = ssm.causal_fft_conv(u.to(work), K.to(work)) + self.D.unsqueeze(-1) * u.to(work)  # (B, H, L)
        y = self.dropout(F.gelu(y.to(x.dtype)))
        y = y.transpose(1, 2)  # (B, L, H)
        return F.glu(self.output_linear(y), dim=-1)  # (B, L, H)


def rotary_embedding(q: torch.Tensor, k: torch.Tensor, base: float = 10000.0, offset: int = 0):
    """给 q、k 施加旋转位置编码（RoPE）。q, k: (B, heads, L, head_dim)，head_dim 为偶数。

    第 j 对通道以角速度 base^(−2j/head_dim) 随位置旋转，于是 q·k 只依赖两者的相对位置。
    ``offset`` 是第一个位置的编号：带 KV 缓存逐步生成时，新词元的位置从缓存长度开始。
    """
    L, head_dim = q.shape[-2], q.shape[-1]
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=q.device, dtype=torch.float32) / head_dim)
    positions = torch.arange(offset, offset + L, device=q.device, dtype=torch.float32)  # (L,)
    angles = positions.unsqueeze(-1) * inv_freq  # (L, head_dim/2)
    cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)

    def rotate(t):
        t1, t2 = t[..., 0::2], t[..., 1::2]  # (B, heads, L, head_dim/2)
        return torch.stack((t1 * cos - t2 * sin, t1 * sin + t2 * cos), dim=-1).flatten(-2)

    return rotate(q), rotate(k)


class CausalSelfAttention(nn.Module):
    """多头因果自注意力，位置信息来自旋转位置编码（RoPE），不引入额外参数。

    用 ``torch.nn.functional.scaled_dot_product_attention`` 加因果掩码计算；输入输出 (B, L, H)。
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, rope: bool = True):
        super().__init__()
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model!r} 必须能被 n_heads={n_heads!r} 整除，且 n_heads ≥ 1。")
        if rope and (d_model // n_heads) % 2 != 0:
            raise ValueError(f"使用 RoPE 时每个头的维数必须是偶数，当前为 {d_model // n_heads}。")
        self.n_heads, self.rope, self.dropout_p = n_heads, rope, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, H) → (B, L, H)。"""
        B, L, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=-1)  # 各为 (B, L, H)
        q, k, v = (t.view(B, L, self.n_heads, H // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if self.rope:
            q, k = rotary_embedding(q, k)  # (B, heads, L, head_dim)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, heads, L, head_dim)
        y = y.transpose(1, 2).reshape(B, L, H)
        return self.dropout(self.out(y))


class FeedForward(nn.Module):
    """逐位置的前馈网络：Linear(H → rH) → GELU → Linear(rH → H)。"""

    def __init__(self, d_model: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, mlp_ratio * d_model)
        self.proj = nn.Linear(mlp_ratio * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """预归一化残差块：x + mixer(LN(x))，再 x + FFN(LN(x))。序列混合层由调用者传入。"""

    def __init__(self, mixer: nn.Module, d_model: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.ffn(self.norm2(x))
