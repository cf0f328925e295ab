"""The data card as a person sees it: rendered by headless Chromium, the hours table is readable in the picture (OCR)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from small_build import make_build

from support import DATASETS
from uniflow.reporting.data_card import format_hours, publish_data_card, read_previous_card

CHROMIUM = shutil.which("chromium-headless-shell")
TESSERACT = shutil.which("tesseract")
FFMPEG = shutil.which("ffmpeg") and shutil.which("ffprobe")


def grey_pixels(picture: Path) -> tuple[int, int, bytes]:
    """Width, height and 8-bit grey pixels of a PNG, decoded by ffmpeg (a uniflow system dependency)."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", str(picture)], check=True, capture_output=True, text=True).stdout
    width, height = (int(value) for value in probe.strip().split(","))
    pixels = subprocess.run(["ffmpeg", "-v", "error", "-i", str(picture), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                            check=True, capture_output=True).stdout
    assert len(pixels) == width * height
    return width, height, pixels


@pytest.mark.skipif(not (CHROMIUM and TESSERACT and FFMPEG),
                    reason="needs chromium-headless-shell, tesseract and ffmpeg (apt: chromium-headless-shell tesseract-ocr "
                    "ffmpeg; scripts/bootstrap.sh installs them)")
def test_hours_table_is_readable_in_a_headless_chromium_screenshot(tmp_path: Path) -> None:
    storage, plan = make_build(tmp_path / "build")
    html = Path(publish_data_card(storage, plan, DATASETS))
    card = read_previous_card(storage)  # the card just written
    assert card is not None
    height = 420 + 48 * len(card["hours"])  # heading, intro and every row of the hours table
    picture = tmp_path / "card.png"
    subprocess.run([CHROMIUM, "--no-sandbox", "--headless", "--hide-scrollbars", f"--screenshot={picture}",
                    f"--window-size=1280,{height}", html.as_uri()], check=True, capture_output=True, timeout=60)

    width, rows, pixels = grey_pixels(picture)
    assert (width, rows) == (1280, height)
    dark = sum(value < 96 for value in pixels[::5])
    assert dark > 0.002 * len(pixels) / 5, "the page has text on it, not a blank picture"
    assert max(pixels) - min(pixels) > 200, "black text on a white page"

    # One thread: tesseract's OpenMP threads only compete with each other on a small machine.
    text = subprocess.run([TESSERACT, str(picture), "-"], check=True, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout
    assert "Hours per task" in text
    lines = [line.split() for line in text.splitlines()]
    built = [row for row in card["hours"] if row["level"] == "task" and row["shards"]]
    assert {row["task"] for row in built} == {"tts", "se"}
    for row in built:
        printed = format_hours(row["hours"])
        # A task total reads "<task> all <split> <hours> ...": find that line and its hours as printed.
        found = [words for words in lines if words[:3] == [row["task"], "all", row["split"]]]
        assert found, f"no line for the {row['task']} {row['split']} total in the OCR text:\n{text}"
        assert printed in found[0], f"{row['task']} {row['split']}: {printed} not read in {found[0]}"
    for total in (row for row in card["hours"] if row["level"] == "total"):
        assert re.search(rf"all\s+all\s+{total['split']}\s+{re.escape(format_hours(total['hours']))}", text)
