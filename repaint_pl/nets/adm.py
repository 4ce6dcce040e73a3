"""The ADM network of Dhariwal & Nichol (guided-diffusion): UNet and noisy-image classifier.

Written for this project; module and parameter names follow guided-diffusion so the
released checkpoints load with ``strict=True``.  ``use_fp16`` reproduces the released
half-precision inference exactly: the convolutions of the torso (input, middle and
output blocks) hold float16 weights and run in float16, while time embeddings,
linear layers, normalisation statistics and the output head stay in float32.

The networks know nothing about inpainting: ``forward(x, timesteps, y=None)``.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Attention = Literal["einsum", "sdpa"]


def sinusoid_freqs(dim: int, max_period: int = 10000) -> Tensor:
    """Frequencies of the timestep embedding, computed on the CPU (the same float32 values on every device)."""
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)


def timestep_embedding(timesteps: Tensor, dim: int, freqs: Optional[Tensor] = None) -> Tensor:
    """Sinusoidal embedding ``[N, dim]`` (float32) of (possibly fractional) timesteps ``[N]``: (cos, sin) halves.

    Computed in float32 whatever the network's precision: in bfloat16, t·f for t near 1000 would be
    off by several radians."""
    freqs = sinusoid_freqs(dim).to(timesteps.device) if freqs is None else freqs
    args = timesteps[:, None].float() * freqs[None].float()
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = (p.float() if p is not None else None for p in (self.weight, self.bias))
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type(x.dtype)


def norm(channels: int) -> GroupNorm32:
    return GroupNorm32(32, channels)


def zeroed(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.detach().zero_()
    return module


class EmbedSequential(nn.Sequential):
    """Sequential whose ResBlocks also receive the timestep embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        self.channels = channels
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        self.channels = channels
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (FiLM with ``use_scale_shift_norm``).

    ``up``/``down`` resample both branches in the middle of the block (BigGAN style).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: Optional[int] = None,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        resample = Upsample if up else Downsample
        self.h_upd = resample(channels, False) if self.updown else nn.Identity()
        self.x_upd = resample(channels, False) if self.updown else nn.Identity()
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            norm(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zeroed(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.updown:
            h = self.h_upd(self.in_layers[:-1](x))
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


def qkv_attention(qkv: Tensor, n_heads: int, legacy_order: bool, backend: Attention = "einsum") -> Tensor:
    """Multi-head self-attention over the last axis of ``qkv`` ``[N, 3·H·C, T]`` -> ``[N, H·C, T]``.

    ``legacy_order``: heads are split before q/k/v (guided-diffusion's default layout);
    otherwise q/k/v first (``use_new_attention_order``).  ``einsum`` reproduces the
    released numerics (scaled q and k, softmax in float32); ``sdpa`` uses PyTorch's
    fused scaled-dot-product attention.
    """
    bs, width, length = qkv.shape
    ch = width // (3 * n_heads)
    if legacy_order:
        q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    else:
        q, k, v = (z.reshape(bs * n_heads, ch, length) for z in qkv.chunk(3, dim=1))
    if backend == "sdpa":
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).reshape(bs, -1, length)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)  # scaling both is stabler in fp16
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(bs, -1, length)


class QKVAttention(nn.Module):
    """Parameter-free attention op (kept as a module so ``backend`` can be switched per net)."""

    def __init__(self, n_heads: int, legacy_order: bool):
        super().__init__()
        self.n_heads, self.legacy_order, self.backend = n_heads, legacy_order, "einsum"

    def forward(self, qkv: Tensor) -> Tensor:
        return qkv_attention(qkv, self.n_heads, self.legacy_order, self.backend)


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual connection."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1, new_order: bool = False):
        super().__init__()
        if num_head_channels != -1:
            if channels % num_head_channels:
                raise ValueError(
                    f"attention: {channels} channels not divisible by num_head_channels={num_head_channels}"
                )
            num_heads = channels // num_head_channels
        self.norm = norm(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention = QKVAttention(num_heads, legacy_order=not new_order)
        self.proj_out = zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(b, c, *spatial)


class AttentionPool2d(nn.Module):
    """CLIP-style attention pooling: the mean token attends over all positions."""

    def __init__(self, spatial_dim: int, embed_dim: int, num_head_channels: int, output_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(embed_dim, spatial_dim**2 + 1) / embed_dim**0.5)
        self.qkv_proj = nn.Conv1d(embed_dim, 3 * embed_dim, 1)
        self.c_proj = nn.Conv1d(embed_dim, output_dim, 1)
        self.attention = QKVAttention(embed_dim // num_head_channels, legacy_order=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, *_ = x.shape
        x = x.reshape(b, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)
        x = x + self.positional_embedding[None].to(x.dtype)
        return self.c_proj(self.attention(self.qkv_proj(x)))[:, :, 0]


def _to_half(module: nn.Module) -> None:
    """Half-precision weights for convolutions only (what guided-diffusion's convert_to_fp16 does)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            m.half()


class _Encoder(nn.Module):
    """Time embedding, downsampling path and middle block shared by the UNet and the classifier."""

    def _build_encoder(
        self,
        in_channels: int,
        model_channels: int,
        num_res_blocks: int,
        attention_ds: Sequence[int],
        dropout: float,
        channel_mult: Sequence[float],
        num_heads: int,
        num_head_channels: int,
        use_scale_shift_norm: bool,
        resblock_updown: bool,
        new_order: bool,
        conv_resample: bool = True,
    ) -> list[int]:
        """Create time_embed, input_blocks and middle_block; return the skip channels."""
        emb_dim = model_channels * 4
        self.model_channels = model_channels
        # float32 whatever the module is cast to (see _apply)
        self.register_buffer("time_freqs", sinusoid_freqs(model_channels), persistent=False)
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skips, ds = [ch], 1
        block = dict(emb_channels=emb_dim, dropout=dropout, use_scale_shift_norm=use_scale_shift_norm)
        attn = dict(num_heads=num_heads, num_head_channels=num_head_channels, new_order=new_order)
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, out_channels=int(mult * model_channels), **block)]
                ch = int(mult * model_channels)
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, **attn))
                self.input_blocks.append(EmbedSequential(*layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                down = ResBlock(ch, down=True, **block) if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(EmbedSequential(down))
                skips.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(ResBlock(ch, **block), AttentionBlock(ch, **attn), ResBlock(ch, **block))
        self._torso_channels, self._torso_ds = ch, ds
        return skips

    def _apply(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """``.to(dtype)``/``.half()``/… as usual, but the timestep frequencies stay float32 (true-precision modes)."""
        super()._apply(fn, *args, **kwargs)
        self.time_freqs = sinusoid_freqs(self.model_channels).to(self.time_freqs.device)
        return self

    def _embed_time(self, timesteps: Tensor) -> Tensor:
        """The timestep embedding (float32 sinusoids) through ``time_embed`` in that layer's precision."""
        emb = timestep_embedding(timesteps, self.model_channels, self.time_freqs)
        return self.time_embed(emb.to(self.time_embed[0].weight.dtype))

    @property
    def torso_dtype(self) -> torch.dtype:
        """Precision of the torso's convolutions (float16 with use_fp16; the module's dtype in true-precision modes)."""
        return self.input_blocks[0][0].weight.dtype

    def set_attention_backend(self, backend: Attention) -> None:
        for m in self.modules():
            if isinstance(m, QKVAttention):
                m.backend = backend


class UNetModel(_Encoder):
    """guided-diffusion's UNet: ``forward(x [N,C,H,W], timesteps [N], y [N] | None) -> [N, out_channels, H, W]``.

    ``attention_ds``: downsampling rates with attention (image_size // resolution).
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_ds: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        num_classes: Optional[int] = None,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
    ):
        super().__init__()
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.num_classes = num_classes
        skips = self._build_encoder(
            in_channels,
            model_channels,
            num_res_blocks,
            attention_ds,
            dropout,
            channel_mult,
            num_heads,
            num_head_channels,
            use_scale_shift_norm,
            resblock_updown,
            use_new_attention_order,
            conv_resample,
        )
        emb_dim = model_channels * 4
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_dim)
        block = dict(emb_channels=emb_dim, dropout=dropout, use_scale_shift_norm=use_scale_shift_norm)
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample
        attn = dict(num_heads=heads_up, num_head_channels=num_head_channels, new_order=use_new_attention_order)
        ch, ds = self._torso_channels, self._torso_ds
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), out_channels=int(model_channels * mult), **block)]
                ch = int(model_channels * mult)
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, **attn))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, up=True, **block) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        first_ch = int(channel_mult[0] * model_channels)
        self.out = nn.Sequential(norm(ch), nn.SiLU(), zeroed(nn.Conv2d(first_ch, out_channels, 3, padding=1)))
        if use_fp16:
            self.convert_to_fp16()

    def convert_to_fp16(self) -> None:
        for part in (self.input_blocks, self.middle_block, self.output_blocks):
            _to_half(part)

    def forward(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        emb = self._embed_time(timesteps)
        if self.num_classes is not None:
            if y is None or y.shape != (x.shape[0],):
                raise ValueError("this UNet is class-conditional: pass one class label per image (y of shape [N])")
            emb = emb + self.label_emb(y)
        h, skips = x.type(self.torso_dtype), []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(self.out[-1].weight.dtype))


class EncoderUNetModel(_Encoder):
    """guided-diffusion's noisy-image classifier (half UNet): ``forward(x, timesteps) -> logits [N, out_channels]``."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_ds: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
        pool: Literal["adaptive", "attention"] = "adaptive",
    ):
        super().__init__()
        self._build_encoder(
            in_channels,
            model_channels,
            num_res_blocks,
            attention_ds,
            dropout,
            channel_mult,
            num_heads,
            num_head_channels,
            use_scale_shift_norm,
            resblock_updown,
            use_new_attention_order,
            conv_resample,
        )
        ch, ds = self._torso_channels, self._torso_ds
        if pool == "adaptive":
            head = [nn.AdaptiveAvgPool2d((1, 1)), zeroed(nn.Conv2d(ch, out_channels, 1)), nn.Flatten()]
        elif pool == "attention":
            if num_head_channels == -1:
                raise ValueError("classifier pool='attention' needs num_head_channels")
            head = [AttentionPool2d(image_size // ds, ch, num_head_channels, out_channels)]
        else:
            raise ValueError(f"classifier_pool: {pool!r} is not supported (use 'adaptive' or 'attention')")
        self.out = nn.Sequential(norm(ch), nn.SiLU(), *head)
        if use_fp16:
            self.convert_to_fp16()

    def convert_to_fp16(self) -> None:
        for part in (self.input_blocks, self.middle_block):
            _to_half(part)

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        emb = self._embed_time(timesteps)
        h = x.type(self.torso_dtype)
        for block in self.input_blocks:
            h = block(h, emb)
        return self.out(self.middle_block(h, emb).type(self.time_embed[0].weight.dtype))
