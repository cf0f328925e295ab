"""Mirror of the RIR and noise database (OpenSLR 28): rirs_noises.zip with RIRS_NOISES/.

Real format: 16 kHz 16-bit wav; simulated RIRs are mono, real RIRs and isotropic noises are
multichannel. The Kaldi list files (rir_list, noise_list) index everything, with locations relative
to the folder holding RIRS_NOISES. RIRs here are simulated with pyroomacoustics.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 16_000
TOP = "RIRS_NOISES"
# room size -> (rooms, RIRs per room, RT60 range)
SIMULATED = {"small": (1, 2, (0.2, 0.4)), "medium": (1, 1, (0.4, 0.6)), "large": (1, 1, (0.6, 0.8))}
# Real RIRs: (file stem, room id as Kaldi's aspire list derives it, channels)
REAL_RIRS = (
    ("RVB2014_type1_rir_largeroom1_near_angla", "RVB2014_largeroom1", 8),
    ("RWCP_type4_rir_p70r", "RWCP_p70r", 1),
    ("air_type1_air_binaural_stairway_1_1_90", "air_binaural_stairway_1_1", 2),
)
ISOTROPIC_NOISES = (("RVB2014_type1_noise_largeroom1_1", "RVB2014_largeroom1", 8),)
POINT_SOURCE_NOISES = (("noise-free-sound-0000", "foreground"), ("noise-free-sound-0001", "background"))


def _multichannel_rir(ctx: MirrorContext, channels: int, rt60: float) -> np.ndarray:
    responses = [synth.room_impulse_response(ctx.rng, SAMPLE_RATE, rt60=rt60) for _ in range(channels)]
    length = max(len(response) for response in responses)
    stacked = np.zeros((length, channels), dtype=np.float32)
    for channel, response in enumerate(responses):
        stacked[: len(response), channel] = response
    return stacked[:, 0] if channels == 1 else stacked


def build(ctx: MirrorContext) -> None:
    for size, (rooms, per_room, (low, high)) in SIMULATED.items():
        folder = f"{TOP}/simulated_rirs/{size}room"
        lines = []
        for room_number in range(1, rooms + 1):
            room = f"Room{room_number:03d}"
            for rir_number in range(1, per_room + 1):
                name = f"{room}-{rir_number:05d}"
                location = f"{folder}/{room}/{name}.wav"
                rir = synth.room_impulse_response(ctx.rng, SAMPLE_RATE, rt60=float(ctx.rng.uniform(low, high)))
                ctx.write_audio(location, rir, SAMPLE_RATE, "PCM_16")
                lines.append(f"--rir-id {size}-{name} --room-id {size}-{room} {location}")
        ctx.write_text(f"{folder}/rir_list", "\n".join(lines) + "\n")

    real = f"{TOP}/real_rirs_isotropic_noises"
    rir_lines = []
    for number, (stem, room, channels) in enumerate(REAL_RIRS, 1):
        location = f"{real}/{stem}.wav"
        rir = _multichannel_rir(ctx, channels, float(ctx.rng.uniform(0.3, 0.7)))
        ctx.write_audio(location, rir, SAMPLE_RATE, "PCM_16")
        rir_lines.append(f"--rir-id {number:05d} --room-id {room} {location}")
    ctx.write_text(f"{real}/rir_list", "\n".join(rir_lines) + "\n")
    noise_lines = []
    for number, (stem, room, channels) in enumerate(ISOTROPIC_NOISES, 1):
        location = f"{real}/{stem}.wav"
        noise = np.stack([synth.noise(ctx.rng, 1.5, SAMPLE_RATE, "pink") for _ in range(channels)], axis=1)
        ctx.write_audio(location, noise, SAMPLE_RATE, "PCM_16")
        noise_lines.append(f"--noise-id {number:05d} --noise-type isotropic --room-linkage {room} {location}")
    ctx.write_text(f"{real}/noise_list", "\n".join(noise_lines) + "\n")

    point = f"{TOP}/pointsource_noises"
    point_lines = []
    for stem, kind in POINT_SOURCE_NOISES:
        location = f"{point}/{stem}.wav"
        if kind == "background":
            audio = synth.noise(ctx.rng, 1.5, SAMPLE_RATE, "brown")
        else:
            audio = synth.event_sound(ctx.rng, "knock", 0.8, SAMPLE_RATE)
        ctx.write_audio(location, audio, SAMPLE_RATE, "PCM_16")
        point_lines.append(f"--noise-id {stem} --noise-type point-source --bg-fg-type {kind} {location}")
    ctx.write_text(f"{point}/noise_list", "\n".join(point_lines) + "\n")

    ctx.pack("rirs_noises", ctx.staging)
