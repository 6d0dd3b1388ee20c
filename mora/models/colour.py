"""Tiny generators of colour scenes, for claims about what the pixels look like.

The random tiny generators cannot carry such a claim. Their VAEs end every block in a group norm, so
whatever the latent, the decoded frames have the same mean colour (decoding what they encode from a
black and from a white frame gives the same mean brightness within 1%): no fine-tuning can move the
brightness of what they make. And their random image-to-video transformer ignores the frame it is
given: the clip's colour is whatever its noise decodes to.

So ``configs/tiny-learns.yaml`` uses copies of the tiny SD3 and LTX-Video pipelines taught, for a few
hundred steps each, on synthetic colour scenes (``mora.models.scenes``): the VAEs to reconstruct them
(SD3's replaced by a coarser one, 4 x 4 latents, so that candidates differ in colour as their seeds
differ), then the transformers with the very losses mora's fine-tuning uses (``mora.training.chain``):
the text-to-image one to make scenes, the image-to-video one to continue the frame it is given. Prompts
are drawn at random and carry no meaning: the generator makes colour scenes, whatever it is asked.

The taught VAEs are deterministic autoencoders: the encoders' log-variance is set to a constant
(standard deviation 0.0025), since an untaught one adds noise as large as the signal to every latent
(the LTX pipeline conditions on such a sample). Latent statistics are measured on scenes and written
where diffusers reads them (SD3: ``shift_factor`` and ``scaling_factor``; LTX-Video: ``latents_mean``
and ``latents_std``), so the transformers see latents of unit scale, as trained VAEs give them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mora.models.scenes import scene
from mora.prompts.synthesizer import synthesize_prompts

LOG_VARIANCE = -12.0
TEACH_SIDE = 32  # scenes are taught at 32 px (convolutions carry over to the 64 px the tiny presets make)


def _scenes(rng: np.random.Generator, count: int, side: int, frames: int) -> torch.Tensor:
    """``[N, 3, T, H, W]`` in [-1, 1]."""
    clips = np.stack([scene(rng, side, frames) for _ in range(count)]).astype(np.float32)
    return torch.from_numpy(clips * 2 - 1).permute(0, 4, 1, 2, 3)


def _fixed_log_variance(conv: torch.nn.Conv2d | torch.nn.Conv3d, channels: slice) -> None:
    with torch.no_grad():
        conv.weight[channels] = 0.0
        conv.bias[channels] = LOG_VARIANCE


def _teach(vae, batch, steps: int, lr: float = 3e-3) -> None:
    """Reconstruction, full resolution plus 4x4-pooled colour (what brightness and saturation read)."""
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    vae.train()
    for _ in range(steps):
        x = batch()
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
        pool = F.avg_pool2d if x.dim() == 4 else (lambda t, k: F.avg_pool3d(t, (1, k, k)))
        loss = F.mse_loss(y, x) + 4 * F.mse_loss(pool(y, 4), pool(x, 4))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    vae.eval()


def _teach_transformer(pipe, batch, steps: int, rng: np.random.Generator, video: bool, lr: float = 1e-3) -> None:
    """The whole transformer, with the flow-matching loss of ``mora.training.chain`` (its VAE frozen)."""
    from mora.training.chain import ImageToVideoStage, TextToImageStage

    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    transformer = pipe.transformer.requires_grad_(True).train()
    stage = ImageToVideoStage(pipe) if video else TextToImageStage(pipe)
    prompts = synthesize_prompts(64, int(rng.integers(1 << 30)))
    optimizer = torch.optim.Adam(transformer.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    for step in range(steps):
        x = batch()
        n = len(x)
        text = stage.encode([prompts[i] for i in rng.integers(len(prompts), size=n)])
        generators = [torch.Generator().manual_seed(int(rng.integers(1 << 30))) for _ in range(n)]
        keys = [f"{step}/{i}" for i in range(n)]
        if video:  # [B, T, 3, H, W], conditioned on its first frame
            clips = x.permute(0, 2, 1, 3, 4)
            loss = stage(clips, clips[:, 0], text, None, 8.0, generators, None, keys)
        else:
            loss = stage(x, text, None, generators, None, keys)[0]
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        stage.latents.cache.clear()
    transformer.eval().requires_grad_(False)


def _save(pipe, source: Path, out: Path) -> None:
    pipe.save_pretrained(out)
    for extra in source.glob("*.json"):  # anything beside the components (model_index is rewritten)
        if not (out / extra.name).exists():
            shutil.copy(extra, out / extra.name)


def coarse_vae():
    """An SD3-style VAE that compresses 16 x (64 px to 4 x 4 latents): i.i.d. noise over 16 latent positions
    averages out far less than over 256, so candidates of one prompt differ in colour as seeds differ."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16, 16),
                         down_block_types=("DownEncoderBlock2D",) * 5, up_block_types=("UpDecoderBlock2D",) * 5,
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, use_quant_conv=False,
                         use_post_quant_conv=False)


def build_sd3_colour(out: Path, source: Path, steps: int = 400, seed: int = 0) -> None:
    """The tiny SD3 pipeline at ``source`` with a coarse VAE taught to reconstruct colour scenes."""
    from diffusers import StableDiffusion3Pipeline

    torch.manual_seed(seed)
    vae = coarse_vae()
    pipe = StableDiffusion3Pipeline(**(StableDiffusion3Pipeline.from_pretrained(source).components | {"vae": vae}))
    rng = np.random.default_rng(seed)
    _teach(vae, lambda: _scenes(rng, 4, 64, 1)[:, :, 0], steps)
    _fixed_log_variance(vae.encoder.conv_out, slice(vae.config.latent_channels, None))
    with torch.no_grad():
        latents = vae.encode(_scenes(rng, 32, 64, 1)[:, :, 0]).latent_dist.mean
    vae.register_to_config(shift_factor=round(float(latents.mean()), 6),
                           scaling_factor=round(float(1 / latents.std()), 6))
    _teach_transformer(pipe, lambda: _scenes(rng, 16, 64, 1)[:, :, 0], steps, rng, video=False)
    _save(pipe, source, out)


def video_vae():
    """An LTX-Video VAE that reconstructs colour at this size: 4 x 4 patches, one spatio-temporal downsampling
    (8 x in space, 2 x in time). The tiny models' one (1 x 1 patches, three downsamplings) learns to decode
    every brightness to one of two levels."""
    from diffusers import AutoencoderKLLTXVideo

    return AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(16,) * 4,
        decoder_block_out_channels=(16,) * 4, layers_per_block=(1,) * 5, decoder_layers_per_block=(1,) * 5,
        spatio_temporal_scaling=(True, False, False, False),
        decoder_spatio_temporal_scaling=(True, False, False, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        timestep_conditioning=False, patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)


def build_ltx_colour(out: Path, source: Path, steps: int = 300, seed: int = 0) -> None:
    """The tiny LTX-Video pipeline at ``source`` with a VAE taught to reconstruct colour scenes."""
    from diffusers import LTXImageToVideoPipeline

    torch.manual_seed(seed)
    vae, rng = video_vae(), np.random.default_rng(seed)
    pipe = LTXImageToVideoPipeline(**(LTXImageToVideoPipeline.from_pretrained(source).components | {"vae": vae}))
    _teach(vae, lambda: _scenes(rng, 4, TEACH_SIDE, 9), steps)
    _fixed_log_variance(vae.encoder.conv_out.conv, slice(vae.config.latent_channels, None))
    with torch.no_grad():
        latents = vae.encode(_scenes(rng, 8, 64, 9)).latent_dist.mean
        vae.latents_mean.copy_(latents.mean((0, 2, 3, 4)))
        vae.latents_std.copy_(latents.std((0, 2, 3, 4)))
    _teach_transformer(pipe, lambda: _scenes(rng, 4, 64, 9), steps, rng, video=True)
    _save(pipe, source, out)
