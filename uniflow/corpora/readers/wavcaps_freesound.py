"""WavCaps FreeSound: one Entry per clip of ``fsd_final.json`` whose FLAC was extracted, with its caption.

Layout after ``fetch_huggingface``::

    hf/json_files/FreeSound/fsd_final.json    {"data": [{id, caption, duration, author, href, ...}, ...]}
    parts/FreeSound/mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/FreeSound_flac/<id>.flac

The JSON is read once and the audio folder listed once. A JSON item without audio, or audio without
a JSON item, is a Problem. WavCaps has no split: every clip is train.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

JSON_PATH = Path("hf/json_files/FreeSound/fsd_final.json")
PART = "FreeSound"
AUDIO_DIR = Path("mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/FreeSound_flac")


def find_audio_dir(part_dir: Path) -> Path | None:
    """The release's FreeSound_flac folder (at its usual depth, else the first one found)."""
    if (part_dir / AUDIO_DIR).is_dir():
        return part_dir / AUDIO_DIR
    for directory, subdirs, _ in os.walk(part_dir):
        if AUDIO_DIR.name in subdirs:
            return Path(directory) / AUDIO_DIR.name
    return None


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    corpus_dir = Path(corpus_dir)
    metadata = corpus_dir / JSON_PATH
    audio_dir = find_audio_dir(corpus_dir / "parts" / PART)
    if audio_dir is None:
        yield Problem(corpus_dir / "parts" / PART, "FreeSound_flac folder not found: is FreeSound.zip extracted?")
        return
    try:
        items = json.loads(metadata.read_text(encoding="utf-8"))["data"]
    except FileNotFoundError:
        yield Problem(metadata, "fsd_final.json is missing: is the Hugging Face snapshot complete?")
        return
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        yield Problem(metadata, f"not the WavCaps JSON layout ({{'data': [...]}}): {exc}")
        return
    with os.scandir(audio_dir) as listing:
        flacs = {item.name for item in listing if item.name.endswith(".flac")}
    described: set[str] = set()
    for number, item in enumerate(items):
        clip_id = str(item.get("id", "")).strip() if isinstance(item, dict) else ""
        if not clip_id or "/" in clip_id or "." in clip_id:
            yield Problem(metadata, f"data[{number}]: missing or unusable id {clip_id!r}")
            continue
        described.add(f"{clip_id}.flac")
        audio = audio_dir / f"{clip_id}.flac"
        caption = str(item.get("caption") or "").strip()
        if f"{clip_id}.flac" not in flacs:
            yield Problem(audio, "described in fsd_final.json but the FLAC file is missing", key=clip_id)
        elif not caption:
            yield Problem(audio, "empty caption in fsd_final.json", key=clip_id)
        else:
            extra = {name: item[name] for name in ("author", "href", "file_name", "tags") if item.get(name)}
            if isinstance(item.get("duration"), (int, float)):
                extra["listed_seconds"] = float(item["duration"])
            yield Entry(key=clip_id, split="train", audio=audio, subset=PART, caption=caption, extra=extra)
    for name in sorted(flacs - described):
        yield Problem(audio_dir / name, "not described in fsd_final.json (no caption)", key=name[:-5])
