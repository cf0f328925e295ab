"""Feature extraction throughput on this CPU: VAE latents (audio seconds per second) and T5 text embeddings.

Weights are random (initialised from the configs): throughput depends on the architecture, not on the
values, so the figures hold for trained weights of the same configs.

(a) Latents through ``LatentEncoder.encode`` (the stage's real path: length-sorted padded batches plus
    the exact tail windows), fp32, for the tiny VAE (``VaeConfig.tiny()``) and the paper VAE
    (``VaeConfig.paper()``: 128 channels, mults 1/2/4/8, 128 latents). Clips are 2-8 s of speech-like
    audio at 24 kHz, as TTS shards hold.
(b) Text embeddings through ``TextEncoder.encode`` for a tiny T5 and for a T5 encoder built at
    flan-t5-large's configuration (24 layers, d_model 1024, gated-GELU d_ff 2816). Both use the
    byte-level ByT5 tokenizer (the real SentencePiece vocabulary is not available offline), so one
    token is one byte; tokens/s is the architecture's figure, texts/s depends on the tokenizer.

Each is timed pinned to one core (``os.sched_setaffinity`` + ``torch.set_num_threads(1)``) and with 2 threads.

    .venv/bin/python benchmarks/bench_features.py [--seconds 60] [--paper-seconds 16] [--texts 64] [--large-texts 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniflow.features.frozen import freeze, start_frozen  # noqa: E402
from uniflow.features.latents import LatentEncoder, LatentSettings  # noqa: E402
from uniflow.features.text import TextEncoder  # noqa: E402
from uniflow.model.vae import UniflowVae, VaeConfig  # noqa: E402

CAPTIONS = [
    "A dog barks twice while cars pass by on a wet street",
    "Soft piano music with a slow melody and gentle strings in the background",
    "A crowd cheers and applauds loudly in a large stadium",
    "Birds chirp in the morning as wind rustles through the leaves",
    "An electric guitar plays a distorted riff over heavy drums",
    "Someone types on a keyboard and a phone rings in an office",
]


def speech_like(seconds: float, rng: np.random.Generator, rate: int = 24_000) -> np.ndarray:
    frames = int(seconds * rate)
    time_axis = np.arange(frames) / rate
    phase = 2 * np.pi * np.cumsum(rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.4 * time_axis))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.15
    envelope = np.abs(np.sin(np.pi * rng.uniform(3, 6) * time_axis)) ** 1.5
    return (voiced * envelope + 0.01 * rng.standard_normal(frames)).astype(np.float32)


def clips_totalling(seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips: list[np.ndarray] = []
    while sum(clip.size for clip in clips) < seconds * 24_000:
        clips.append(speech_like(float(rng.uniform(2.0, 8.0)), rng))
    return clips


def timed(run: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` wall times after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def set_threads(threads: int) -> None:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]) if threads == 1 else ALL_CORES)
    torch.set_num_threads(threads)


ALL_CORES = os.sched_getaffinity(0)


def bench_vae(name: str, config: VaeConfig, seconds: float, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        UniflowVae(config).save_pretrained(folder)
        encoder = LatentEncoder(LatentSettings(directory=folder), "cpu")
    clips = clips_totalling(seconds)
    audio_seconds = sum(clip.size for clip in clips) / 24_000
    params = sum(p.numel() for p in encoder.model.encoder.parameters()) / 1e6
    for threads in (1, 2):
        set_threads(threads)
        elapsed = timed(lambda: encoder.encode(clips), repeats)
        print(
            f"  VAE {name:<5} encoder {params:6.2f} M params, {threads} thread(s): {audio_seconds:6.1f} s of audio in "
            f"{elapsed:7.2f} s = {audio_seconds / elapsed:8.1f} audio s/s ({len(clips)} clips)"
        )


def tiny_t5_config():
    from transformers import T5Config

    return T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0, eos_token_id=1)


def flan_t5_large_config():
    from transformers import T5Config

    # google/flan-t5-large's published config.json (encoder side), with ByT5's 384-token vocabulary.
    return T5Config(
        vocab_size=384,
        d_model=1024,
        d_kv=64,
        d_ff=2816,
        num_layers=24,
        num_heads=16,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )


def bench_text(name: str, config, count: int, repeats: int) -> None:  # noqa: ANN001
    from transformers import ByT5Tokenizer, T5EncoderModel

    torch.manual_seed(0)
    model = freeze(T5EncoderModel(config))
    tokenizer = ByT5Tokenizer()
    device = torch.device("cpu")
    identity = start_frozen(model, name, "fp32", 1, lambda: model(input_ids=torch.tensor([[5, 6, 7, 1]])).last_hidden_state)
    encoder = TextEncoder(model, tokenizer, identity, device, batch_size=16)
    texts = [CAPTIONS[index % len(CAPTIONS)] for index in range(count)]
    tokens = sum(encoder.token_counts(texts))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    for threads in (1, 2):
        set_threads(threads)
        elapsed = timed(lambda: encoder.encode(texts), repeats)
        print(
            f"  T5 {name:<15} {params:7.2f} M params, {threads} thread(s): {count / elapsed:8.1f} texts/s, "
            f"{tokens / elapsed:9.1f} tokens/s ({count} texts, {tokens / count:.0f} byte tokens each)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio seconds per timing, tiny VAE")
    parser.add_argument("--paper-seconds", type=float, default=16.0, help="audio seconds per timing, paper VAE")
    parser.add_argument("--texts", type=int, default=64, help="captions per timing, tiny T5")
    parser.add_argument("--large-texts", type=int, default=16, help="captions per timing, flan-t5-large config")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {len(ALL_CORES)} cores available; random-init weights (throughput only)")
    print("(a) VAE latents, fp32, LatentEncoder.encode")
    bench_vae("tiny", VaeConfig.tiny(), args.seconds, args.repeats)
    bench_vae("paper", VaeConfig.paper(), args.paper_seconds, args.repeats)
    print("(b) T5 text embeddings, fp32, TextEncoder.encode")
    bench_text("tiny", tiny_t5_config(), args.texts, args.repeats)
    bench_text("flan-t5-large", flan_t5_large_config(), args.large_texts, args.repeats)


if __name__ == "__main__":
    main()
