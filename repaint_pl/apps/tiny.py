"""Tiny random diffusers components, built offline: Stable Diffusion, SD inpainting, SDXL (and SDXL
inpainting), SD3 and FLUX pipelines and a pixel DDPM.

For the tests and the benchmarks (nothing is downloaded): CLIP's tokenizer gets a byte-level
vocabulary directly, the networks get random weights (the zero-initialised output layers too).
"""

from __future__ import annotations

import torch


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Random values for every parameter, the zero-initialised output layers included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def byte_vocab() -> dict[str, int]:
    """CLIP's byte-level alphabet (256 symbols), each also as a word end, plus the two special tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(c) for c in printable] + [chr(256 + n) for n in range(len(others))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return vocab


def tiny_sd_pipeline(prediction_type: str = "epsilon"):
    """A Stable Diffusion pipeline with 64² pictures → 8² latents (VAE factor 8), CLIP width 32."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = tiny_vae()  # drawn from the seeded generator after the UNet, as before
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        clip_sample=False,
        prediction_type=prediction_type,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=tiny_clip(1),
        tokenizer=tiny_clip_tokenizer(),
        unet=randomize(unet, 2, 0.15),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )

def tiny_ddpm_pipeline(sample_size: int = 32):
    """A diffusers DDPMPipeline: a small UNet2DModel (RGB) and the default linear DDPMScheduler."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    return DDPMPipeline(unet=randomize(unet, 3), scheduler=DDPMScheduler(num_train_timesteps=1000))


def tiny_clip(seed: int, projection: bool = False, hidden_size: int = 32):
    """A random CLIP text encoder over ``byte_vocab`` (16 positions); ``projection``: with the pooled
    projection (``CLIPTextModelWithProjection``, projection width = ``hidden_size``), as SDXL's second encoder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    vocab = byte_vocab()
    config = CLIPTextConfig(
        hidden_size=hidden_size,
        intermediate_size=37,
        projection_dim=hidden_size,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(vocab),
        max_position_embeddings=16,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return randomize(cls(config), seed, 0.2)


def tiny_clip_tokenizer():
    """CLIP's tokenizer with the byte-level vocabulary and no merges, 16 tokens long."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_vocab(), merges=[], model_max_length=16)


def tiny_vae():
    """An AutoencoderKL with four blocks (factor 8: 64² pictures → 8² latents), 4 latent channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )


def tiny_sd_inpaint_pipeline():
    """A Stable Diffusion inpainting pipeline: the tiny SD components with a 9-channel UNet
    (latents, hole mask, masked-image latents)."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    sd = tiny_sd_pipeline()
    unet = UNet2DConditionModel.from_config(dict(sd.unet.config, in_channels=9))
    return StableDiffusionInpaintPipeline(
        **{k: getattr(sd, k) for k in ("vae", "text_encoder", "tokenizer", "scheduler")},
        unet=randomize(unet, 4, 0.15),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_sdxl_pipeline(inpainting: bool = False):
    """An SDXL pipeline (``inpainting``: SDXL inpainting, a 9-channel UNet), 64² pictures → 8² latents.

    Two CLIP encoders of width 32 (cross-attention width 64 = both hidden states side by side; the second
    one's pooled projection, 32 wide, conditions the UNet), micro-conditioning by six time ids embedded
    8 wide each (the added embedding takes 6·8 + 32 = 80 inputs), SDXL's Euler scheduler config.
    """
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,
        norm_num_groups=8,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1, timestep_spacing="leading"
    )
    cls = StableDiffusionXLInpaintPipeline if inpainting else StableDiffusionXLPipeline
    return cls(
        vae=tiny_vae(),
        text_encoder=tiny_clip(5),
        text_encoder_2=tiny_clip(6, projection=True),
        tokenizer=tiny_clip_tokenizer(),
        tokenizer_2=tiny_clip_tokenizer(),
        unet=randomize(unet, 7, 0.15),
        scheduler=scheduler,
        add_watermarker=False,
    )


def tiny_t5():
    """(T5 encoder of width 32, fast T5 tokenizer over a small Unigram vocabulary, 16 tokens long).

    No sentencepiece file is needed: the tokenizer is built from its pieces (the three specials, the word
    start ``▁``, and every ASCII letter and digit, alone and at a word start), with a ``</s>`` appended.
    """
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    symbols = string.ascii_letters + string.digits
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in symbols] + [("▁" + c, -2.5) for c in symbols]
    core = Tokenizer(models.Unigram(pieces, unk_id=2))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=16
    )
    config = T5Config(vocab_size=len(pieces), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4)
    return randomize(T5EncoderModel(config), 11, 0.2), tokenizer


def tiny_flow_vae(scaling_factor: float, shift_factor: float):
    """An AutoencoderKL as SD3's and FLUX's: 16 latent channels, no quant convolutions, a scaling and a
    shift factor; four blocks (factor 8: 64² pictures → 8² latents)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=16,
        norm_num_groups=4,
        layers_per_block=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    )


def tiny_sd3_pipeline():
    """An SD3 pipeline, 64² pictures → 8² latents → 4² patches of 2²: two CLIP encoders of width 16 (hidden
    states side by side = 32 = the T5 width; pooled 2·16 = 32), the tiny T5, SD3's flow scheduler (shift 3)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=32,
        pos_embed_max_size=16,
    )
    t5, t5_tokenizer = tiny_t5()
    return StableDiffusion3Pipeline(
        transformer=randomize(transformer, 12, 0.1),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_flow_vae(1.5305, 0.0609),
        text_encoder=tiny_clip(13, projection=True, hidden_size=16),
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=tiny_clip(14, projection=True, hidden_size=16),
        tokenizer_2=tiny_clip_tokenizer(),
        text_encoder_3=t5,
        tokenizer_3=t5_tokenizer,
    )


def tiny_flux_pipeline(guidance_embeds: bool = True):
    """A FLUX pipeline, 64² pictures → 8² latents → 4² packed tokens of 2×2×16 = 64 channels: a CLIP encoder of
    width 32 (pooled), the tiny T5, guidance embedding (FLUX.1-dev's distilled guidance), FLUX's scheduler
    config (dynamic shifting)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=[2, 2, 4],
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
        max_image_seq_len=4096,
    )  # fmt: skip
    t5, t5_tokenizer = tiny_t5()
    return FluxPipeline(
        transformer=randomize(transformer, 15, 0.1),
        scheduler=scheduler,
        vae=tiny_flow_vae(0.3611, 0.1159),
        text_encoder=tiny_clip(16),
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
    )
