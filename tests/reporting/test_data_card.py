"""The data card collects a build's facts from its outputs, diffs it against the previous card, and escapes what it prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from small_build import FIRST_BUILD, SECOND_BUILD, SR_CUTOFFS, make_build, write_shard_sets

from support import DATASETS, latest_artifact
from uniflow.corpora.recipe import load_recipes
from uniflow.reporting.data_card import (
    ARTIFACT_KEY,
    HTML_NAME,
    JSON_NAME,
    PREVIOUS_NAME,
    collect_data_card,
    format_hours,
    publish_data_card,
    render_html,
)
from uniflow.reporting.svg_charts import bar_chart_svg, histogram_svg, line_chart_svg


def _row(card, level: str, task: str, corpus: str, split: str) -> dict:
    return next(row for row in card.hours if (row["level"], row["task"], row["corpus"], row["split"]) == (level, task, corpus, split))


def test_card_holds_hours_histograms_licenses_alignment_and_losses(tmp_path: Path) -> None:
    storage, plan = make_build(tmp_path)
    card = collect_data_card(storage, plan, DATASETS)

    tts = _row(card, "corpus", "tts", "libritts", "train")
    assert tts["hours"] == pytest.approx((4.0 + 6.5 + 9.0) / 3600)
    assert tts["paper_hours"] == 555
    assert tts["ratio"] == pytest.approx(tts["hours"] / 555)
    total = _row(card, "total", "all", "all", "train")
    assert total["hours"] == pytest.approx((4.0 + 6.5 + 9.0 + 6.0 + 8.0) / 3600)
    assert total["ratio"] == pytest.approx(total["hours"] / plan.paper_total_hours)

    histograms = {histogram.id: histogram for histogram in card.histograms}
    assert set(histograms) == {"durations-tts", "durations-se", "snr", "augmentations-per-pair", "augmentation-kinds", "cutoff"}
    durations = histograms["durations-tts"]
    assert durations.values == 4 and sum(durations.counts) == 4
    assert durations.mean == pytest.approx((4.0 + 6.5 + 9.0 + 3.75) / 4)
    assert durations.edges[0] <= 3.75 and durations.edges[-1] > 9.0
    snr = histograms["snr"]  # the quarantined pair is not in the build; the recorded VoiceBank pair has no SNR
    assert snr.values == 3 and snr.mean == pytest.approx((2.5 + 7.5 + 12.0) / 3)
    assert "1 recorded pair" in snr.note
    assert dict(zip(histograms["augmentations-per-pair"].labels, histograms["augmentations-per-pair"].counts, strict=True)) == {
        "0": 1, "1": 1, "2": 1}
    assert dict(zip(histograms["augmentation-kinds"].labels, histograms["augmentation-kinds"].counts, strict=True)) == {
        "clipping": 1, "codec": 2}
    assert histograms["cutoff"].values == len(SR_CUTOFFS)

    recipes = load_recipes(DATASETS)
    licenses = {row.corpus: row for row in card.licenses}
    assert set(licenses) == {"libritts", "vctk"}, "corpora in the shards (nothing else was acquired)"
    assert licenses["libritts"].license == recipes["libritts"].license
    assert licenses["libritts"].homepage == recipes["libritts"].homepage
    assert licenses["libritts"].access == recipes["libritts"].source.kind

    coverage = {(row.corpus, row.split): (row.aligned, row.total) for row in card.alignment}
    assert coverage == {("libritts", "train"): (4, 4), ("libritts", "test"): (1, 2)}

    losses = {(row.stage, row.name, row.split): row.counts for row in card.losses}
    assert losses[("acquire", "libritts", "-")] == {"quarantined": 1}
    assert losses[("align", "libritts", "test")] == {"failed": 1}
    assert losses[("simulate", "se", "train")] == {"quarantined": 1}

    html = render_html(card)
    assert '<table id="hours">' in html and "First build" in html
    assert html.count("<svg") == len(card.histograms)
    assert "<script" not in html and "src=" not in html and "<link" not in html, "one self-contained page"


def test_second_build_shows_what_changed_and_keeps_the_previous_card(tmp_path: Path) -> None:
    storage, plan = make_build(tmp_path)
    first_url = publish_data_card(storage, plan, DATASETS)
    first = json.loads(storage.read_text("reports", JSON_NAME))
    assert first["changes"]["first_build"] is True
    assert Path(first_url) == storage.path("reports", HTML_NAME)
    assert not storage.exists("reports", PREVIOUS_NAME)

    write_shard_sets(storage, SECOND_BUILD)
    publish_data_card(storage, plan, DATASETS)
    assert json.loads(storage.read_text("reports", PREVIOUS_NAME)) == first, "the previous card is kept as it was"
    changes = json.loads(storage.read_text("reports", JSON_NAME))["changes"]
    assert changes["first_build"] is False and changes["previous_created"] == first["created"]
    assert changes["corpora_new"] == ["audiocaps"] and changes["corpora_gone"] == []
    rows = {(row["task"], row["corpus"], row["split"]): row for row in changes["rows"]}
    tts = rows[("tts", "libritts", "train")]
    assert tts["change"] == "changed"
    assert tts["hours_before"] == pytest.approx(19.5 / 3600) and tts["hours_after"] == pytest.approx(25.0 / 3600)
    assert (tts["samples_before"], tts["samples_after"]) == (3, 4)
    assert rows[("t2a", "audiocaps", "train")]["change"] == "added"
    assert ("se", "vctk", "train") not in rows and ("tts", "libritts", "test") not in rows, "unchanged rows are not listed"

    html = storage.path("reports", HTML_NAME).read_text()
    assert "New corpora: audiocaps" in html and '<table id="changes-table">' in html
    assert format_hours(25.0 / 3600) in html


def test_odd_corpus_names_are_escaped(tmp_path: Path) -> None:
    storage, plan = make_build(tmp_path)
    odd = '<b>x&y"\'</b>'
    write_shard_sets(storage, {("t2a", "train"): [[(odd, 4.0)]]})
    card = collect_data_card(storage, plan, DATASETS)
    html = render_html(card)
    assert odd not in html and "<b>" not in html
    assert "&lt;b&gt;x&amp;y&quot;&#x27;&lt;/b&gt;" in html
    licenses = {row.corpus: row for row in card.licenses}
    assert licenses[odd].access == "unknown", "a corpus without a recipe is listed, not dropped"


def test_charts_draw_bars_counts_ticks_and_series() -> None:
    histogram = histogram_svg([0.0, 1.0, 2.0, 3.0], [4, 0, 7], title="a <title>", x_label="seconds")
    assert histogram.count('class="bar"') == 2, "no bar for an empty bin"
    assert ">7</text>" in histogram and ">4</text>" in histogram
    assert "a &lt;title&gt;" in histogram and "<title>" not in histogram
    assert ">1.5</text>" in histogram and ">3</text>" in histogram, "x ticks at round values"
    bars = bar_chart_svg(["0", "1", "2"], [1, 5, 0], title="per pair", x_label="augmentations")
    assert bars.count('class="bar"') == 2
    with pytest.raises(ValueError):
        histogram_svg([0.0, 1.0], [1, 2], title="t", x_label="x")
    lines = line_chart_svg({"train": [(0, 2.0), (10, 1.0), (20, 0.5)], "valid": [(10, 1.5), (20, 0.9)]},
                           title="loss", x_label="step", y_label="loss", log_y=True)
    points = re.findall(r'<polyline class="series" points="([^"]+)"', lines)
    assert [len(series.split()) for series in points] == [3, 2]
    assert ">train</text>" in lines and ">valid</text>" in lines


@pytest.mark.prefect
def test_publish_in_a_flow_makes_a_markdown_artifact(prefect_harness, tmp_path: Path) -> None:
    from prefect import flow

    storage, plan = make_build(tmp_path)

    @flow
    def report_flow() -> str:
        return publish_data_card(storage, plan, DATASETS)

    html_url = report_flow()
    artifact = latest_artifact(ARTIFACT_KEY)
    assert artifact is not None and artifact["type"] == "markdown"
    assert html_url in artifact["data"]
    for task, _split in FIRST_BUILD:
        assert f"| {task} |" in artifact["data"]
