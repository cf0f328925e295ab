"""Training and generation speed of the dual-fusion DiT backbone on this machine's CPU.

(a) Training: forward + backward of the backbone (fp32, 2 threads) on a batch of 4 x 500 latent frames (10 s of
    audio each) with 32 context tokens, one sample padded to 450 frames and one context to 20 tokens so the
    masked attention paths run. Reports seconds per step, latent frames/s and the process's peak RSS for the
    tiny and small configs, eager and with `compile_blocks()` (torch.compile per block; compile time reported).
    Target: the small backbone trains at >= 240 latent frames/s (the authors' backbone of that size does ~239).
(b) Generation: 25 Euler steps with sway sampling for 10 s of audio (500 latent frames), batch 1, small config,
    with CFG (w = 5, two network passes per step) and without (SE/SR); real-time factor = compute s / audio s.
    The VAE decoder is not included (it is the same for every backbone).

Each (config, mode) runs in a fresh subprocess so its peak RSS is its own. Other jobs on the machine slow the
figures down a lot on 2 cores: every measurement is repeated and the best is reported together with `uptime`.

    .venv/bin/python benchmarks/bench_model.py [--repeats 3] [--no-compile] [--sizes tiny small]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniflow.infer.sampler import EulerSampler  # noqa: E402
from uniflow.model.dit import DitConfig, DualFusionDit  # noqa: E402

BATCH, FRAMES, CONTEXT_TOKENS = 4, 500, 32
FRAME_RATE = 50.0
TARGET_FRAMES_PER_SECOND = 240.0


def _config(size: str) -> DitConfig:
    # The tiny bench config keeps the real latent/content widths so the input shapes are the benchmark's.
    if size == "tiny":
        return DitConfig.tiny(latent_dim=128, content_dim=1024)
    return getattr(DitConfig, size)()


def _training_inputs(config: DitConfig) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    latent_mask = torch.ones(BATCH, FRAMES, dtype=torch.bool)
    latent_mask[1, 450:] = False
    context_mask = torch.ones(BATCH, CONTEXT_TOKENS, dtype=torch.bool)
    context_mask[0, 20:] = False
    return {
        "x": torch.randn(BATCH, FRAMES, config.latent_dim, generator=generator),
        "sigma": torch.rand(BATCH, generator=generator),
        "latent_mask": latent_mask,
        "ta_content": torch.randn(BATCH, FRAMES, config.content_dim, generator=generator),
        "context": torch.randn(BATCH, CONTEXT_TOKENS, config.content_dim, generator=generator),
        "context_mask": context_mask,
    }


def measure_training(size: str, compiled: bool, repeats: int) -> dict:
    torch.manual_seed(0)
    config = _config(size)
    model = DualFusionDit(config).train()
    if compiled:
        model.compile_blocks()
    inputs = _training_inputs(config)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        velocity = model(**inputs)
        velocity.square().mean().backward()

    started = time.perf_counter()
    step()  # warm-up (and compilation)
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    best = min(times)
    return {
        "size": size,
        "mode": "compiled" if compiled else "eager",
        "parameters": model.num_trainable_parameters(),
        "first_step_s": round(first, 2),
        "step_s": [round(t, 2) for t in times],
        "best_step_s": round(best, 3),
        "frames_per_s": round(BATCH * FRAMES / best, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure_generation(size: str, compiled: bool, repeats: int) -> dict:
    torch.manual_seed(0)
    config = _config(size)
    model = DualFusionDit(config).eval()
    if compiled:
        model.compile_blocks()
    generator = torch.Generator().manual_seed(0)
    ta = torch.randn(1, FRAMES, config.content_dim, generator=generator)
    context = torch.randn(1, CONTEXT_TOKENS, config.content_dim, generator=generator)
    cond, uncond = (ta, context), (torch.zeros_like(ta), torch.zeros_like(context))

    def velocity(x: torch.Tensor, sigma: torch.Tensor, c: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return model(x, sigma, None, c[0], c[1], None)

    sampler = EulerSampler(steps=25, sway_coefficient=-1.0)
    audio_seconds = FRAMES / FRAME_RATE
    result: dict = {"size": size, "mode": "compiled" if compiled else "eager", "audio_s": audio_seconds}
    for label, scale in (("cfg", 5.0), ("no_cfg", 1.0)):
        times = []
        for _ in range(repeats + 1):
            noise = sampler.initial_noise((1, FRAMES, config.latent_dim), generator)
            started = time.perf_counter()
            sampler.sample(velocity, noise, cond, uncond, guidance_scale=scale)
            times.append(time.perf_counter() - started)
        best = min(times[1:])  # the first run pays for warm-up / compilation
        result[f"{label}_s"] = round(best, 2)
        result[f"{label}_rtf"] = round(best / audio_seconds, 3)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _run_child(kind: str, size: str, compiled: bool, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, size, "1" if compiled else "0", "--repeats", str(repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurements")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SIZE", "COMPILED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    sys.stdout.reconfigure(line_buffering=True)  # partial results stay visible in a log if a run is cut short
    if args.child:
        kind, size, compiled = args.child
        measure = measure_training if kind == "train" else measure_generation
        print(json.dumps(measure(size, compiled == "1", args.repeats)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load before: {os.getloadavg()}")
    modes = [False] if args.no_compile else [False, True]
    for size in args.sizes:
        for compiled in modes:
            result = _run_child("train", size, compiled, args.repeats)
            note = ""
            if size == "small":
                meets = result["frames_per_s"] >= TARGET_FRAMES_PER_SECOND
                note = f"  target >= {TARGET_FRAMES_PER_SECOND:.0f}: {'met' if meets else 'NOT met'}"
            print(
                f"train {size:5s} {result['mode']:8s} params {result['parameters'] / 1e6:7.2f}M  "
                f"step {result['best_step_s']:.2f}s (all {result['step_s']}, first {result['first_step_s']}s)  "
                f"{result['frames_per_s']:.1f} latent frames/s  peak RSS {result['peak_rss_mib']:.0f} MiB{note}"
            )
    for compiled in modes:
        result = _run_child("generate", "small", compiled, args.repeats)
        print(
            f"generate small {result['mode']:8s} 25 steps, {result['audio_s']:.0f} s audio: "
            f"CFG {result['cfg_s']:.2f}s (RTF {result['cfg_rtf']:.3f}), no CFG {result['no_cfg_s']:.2f}s "
            f"(RTF {result['no_cfg_rtf']:.3f})  peak RSS {result['peak_rss_mib']:.0f} MiB"
        )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
