"""The mirror's Hugging Face Hub emulation, driven by the real huggingface_hub through fetch_huggingface."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from uniflow.corpora.errors import ManualStepNeeded
from uniflow.corpora.huggingface import HuggingFaceAccessError, HuggingFaceError, fetch_huggingface
from uniflow.corpora.recipe import HuggingFaceSource, Recipe
from uniflow.mirror import hf_endpoint
from uniflow.mirror.build import INDEX_NAME, MirrorContext
from uniflow.mirror.serve import MirrorServer, serve_in_background

REPO = "uniflow-test/tiny-captions"
RECIPE = Recipe.model_validate(
    {
        "name": "tiny_captions",
        "title": "Tiny captions",
        "homepage": "http://127.0.0.1/",
        "license": "CC-BY-4.0",
        "tasks": ["t2a"],
        "source": {"kind": "huggingface", "repo_id": REPO},
    }
)
FILES: dict[str, bytes] = {
    "README.md": b"# tiny\n",
    "data/captions.json": json.dumps({"data": [{"id": "1", "caption": "a dog barks"}]}).encode(),
    "data/audio/clip.bin": bytes(range(256)) * 600,
}


def _clips_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("clips/one.txt", "first clip")
        archive.writestr("clips/two.txt", "second clip")
    return path


def publish(root: Path, files: dict[str, Path]) -> None:
    """A mirror holding one dataset repository, published through MirrorContext.add_hf_file."""
    index = {"files": {}, "corpora": {}}
    ctx = MirrorContext(RECIPE, root, root / "staging", np.random.default_rng(0), index)
    for path_in_repo, source in files.items():
        ctx.add_hf_file(REPO, path_in_repo, source)
    (root / INDEX_NAME).write_text(json.dumps(index))


@pytest.fixture
def repo_files(tmp_path: Path) -> dict[str, Path]:
    sources = tmp_path / "sources"
    files: dict[str, Path] = {}
    for path_in_repo, content in FILES.items():
        target = sources / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        files[path_in_repo] = target
    files["archives/clips.zip"] = _clips_zip(sources / "clips.zip")
    return files


@pytest.fixture
def server(tmp_path: Path, repo_files: dict[str, Path]) -> Iterator[MirrorServer]:
    root = tmp_path / "mirror"
    publish(root, repo_files)
    running = serve_in_background(root)
    yield running
    running.shutdown()


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(method, path) of every /hf request the mirror answers."""
    seen: list[tuple[str, str]] = []
    original = hf_endpoint.handle

    def recording(handler, path, hf_root, send_body):
        seen.append((handler.command, path))
        original(handler, path, hf_root, send_body)

    monkeypatch.setattr(hf_endpoint, "handle", recording)
    return seen


def source(**overrides) -> HuggingFaceSource:
    fields = {"kind": "huggingface", "repo_id": REPO, "allow_patterns": ["data/*", "archives/*"]}
    return HuggingFaceSource.model_validate(fields | overrides)


def test_fetch_downloads_allowed_files_and_extracts_archives(server: MirrorServer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    files = fetch_huggingface(
        source(extract_patterns=["archives/*.zip"]), corpus, endpoint=server.url + "/hf", progress=False
    )
    relative = sorted(path.relative_to(corpus / "hf").as_posix() for path in files)
    assert relative == ["archives/clips.zip", "data/audio/clip.bin", "data/captions.json"]
    for name, content in FILES.items():
        if name.startswith("data/"):
            assert (corpus / "hf" / name).read_bytes() == content
    assert not (corpus / "hf" / "README.md").exists(), "README.md is outside allow_patterns"
    assert (corpus / "parts" / "clips" / "clips" / "two.txt").read_text() == "second clip"
    marker = json.loads((corpus / "parts" / "clips.completed").read_text())
    assert marker["archive"] == "archives/clips.zip" and marker["members"] >= 2


def test_second_fetch_downloads_nothing(
    server: MirrorServer, tmp_path: Path, requests_seen: list[tuple[str, str]]
) -> None:
    corpus = tmp_path / "corpus"
    wanted = source(extract_patterns=["archives/*.zip"])
    fetch_huggingface(wanted, corpus, endpoint=server.url + "/hf", progress=False)
    assert any("/resolve/" in path for _, path in requests_seen)
    clip = corpus / "hf" / "data" / "audio" / "clip.bin"
    extracted = corpus / "parts" / "clips" / "clips" / "one.txt"
    before = (clip.stat().st_mtime_ns, extracted.stat().st_mtime_ns)
    requests_seen.clear()

    fetch_huggingface(wanted, corpus, endpoint=server.url + "/hf", progress=False)
    # Only the revision lookup: the tree listing is cached and every file is known at this commit.
    assert [path for _, path in requests_seen] == [f"/api/datasets/{REPO}/revision/main"]
    assert (clip.stat().st_mtime_ns, extracted.stat().st_mtime_ns) == before


def test_missing_repo_is_a_clear_error(server: MirrorServer, tmp_path: Path) -> None:
    with pytest.raises(HuggingFaceError, match="uniflow-test/no-such-repo.*not found"):
        fetch_huggingface(
            source(repo_id="uniflow-test/no-such-repo"), tmp_path / "c", endpoint=server.url + "/hf", progress=False
        )


def test_unknown_revision_is_a_clear_error(server: MirrorServer, tmp_path: Path) -> None:
    with pytest.raises(HuggingFaceError, match="no revision 'v9'"):
        fetch_huggingface(source(revision="v9"), tmp_path / "c", endpoint=server.url + "/hf", progress=False)


def test_resolve_answers_like_the_hub(server: MirrorServer, repo_files: dict[str, Path]) -> None:
    base = server.url + "/hf"
    info = httpx.get(f"{base}/api/datasets/{REPO}/revision/main").json()
    assert sorted(s["rfilename"] for s in info["siblings"]) == sorted(repo_files)
    assert httpx.get(f"{base}/api/datasets/{REPO}").json()["sha"] == info["sha"], "the commit is deterministic"

    content = FILES["data/audio/clip.bin"]
    url = f"{base}/datasets/{REPO}/resolve/main/data/audio/clip.bin"
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.headers["X-Repo-Commit"] == info["sha"]
    assert head.headers["ETag"].strip('"') == hashlib.sha256(content).hexdigest()
    assert int(head.headers["Content-Length"]) == len(content)
    assert not [name for name in head.headers if name.lower().startswith("x-xet")], "no Xet transfer offered"
    ranged = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == content[100:200]

    tree = httpx.get(f"{base}/api/datasets/{REPO}/tree/main/data", params={"recursive": "false"}).json()
    assert [(e["type"], e["path"]) for e in tree] == [("directory", "data/audio"), ("file", "data/captions.json")]

    missing = httpx.head(f"{base}/datasets/{REPO}/resolve/main/data/nope.json")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert httpx.get(f"{base}/api/datasets/{REPO}/revision/v9").headers["X-Error-Code"] == "RevisionNotFound"


def test_pinned_commit_resolves_to_the_mirror_version(server: MirrorServer, tmp_path: Path) -> None:
    pinned = "85a0c21e26fa7696a5a74ce54fada99a9b43c6de"
    files = fetch_huggingface(source(revision=pinned), tmp_path / "c", endpoint=server.url + "/hf", progress=False)
    assert len(files) == 3
    head = httpx.head(f"{server.url}/hf/datasets/{REPO}/resolve/{pinned}/data/captions.json")
    assert head.headers["X-Repo-Commit"] == pinned


class _GatedHub(BaseHTTPRequestHandler):
    """Answers every request as the Hub answers a gated repository to a user who has not accepted it."""

    def _refuse(self) -> None:
        body = b'{"error": "Access to dataset is restricted"}'
        self.send_response(403)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to dataset is restricted. You must be authenticated to access it.")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _refuse

    def log_message(self, *args) -> None:
        pass


def test_gated_repo_error_names_repo_and_access_steps(tmp_path: Path) -> None:
    hub = ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    try:
        gated = source(
            repo_id="owner/gated-set",
            gated=True,
            access_steps=["Accept the terms on the Hub.", "Run huggingface-cli login."],
        )
        with pytest.raises(HuggingFaceAccessError) as raised:
            fetch_huggingface(gated, tmp_path / "c", endpoint=f"http://127.0.0.1:{hub.server_port}", progress=False)
    finally:
        hub.shutdown()
    message = str(raised.value)
    assert "owner/gated-set" in message
    assert "1. Accept the terms on the Hub." in message and "2. Run huggingface-cli login." in message
    assert isinstance(raised.value, ManualStepNeeded), "acquisition reports a gated repo as a manual step, not a failure"


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP zip is needed to make and join split zips")
def test_split_zip_volumes_are_joined_before_extraction(tmp_path: Path, repo_files: dict[str, Path]) -> None:
    # Compressible text larger than the 64 KiB volumes, so members span volumes as in WavCaps.
    rng = np.random.default_rng(1)
    work = tmp_path / "split"
    (work / "sounds").mkdir(parents=True)
    texts = {f"sounds/s{i}.txt": "".join(rng.choice(list("abcdefgh "), 150_000)) for i in range(3)}
    for name, text in texts.items():
        (work / name).write_text(text)
    subprocess.run(["zip", "-q", "-r", "-s", "64k", "Big.zip", "sounds"], cwd=work, check=True)
    volumes = sorted(p.name for p in work.glob("Big.z*"))
    assert len(volumes) > 2, volumes
    files = {f"Zip_files/Big/{name}": work / name for name in volumes}
    root = tmp_path / "mirror-split"
    publish(root, files)
    running = serve_in_background(root)
    try:
        wanted = source(allow_patterns=["Zip_files/Big/*"], extract_patterns=["Zip_files/Big/Big.zip"])
        fetch_huggingface(wanted, tmp_path / "corpus", endpoint=running.url + "/hf", progress=False)
    finally:
        running.shutdown()
    for name, text in texts.items():
        assert (tmp_path / "corpus" / "parts" / "Big" / name).read_text() == text
    marker = json.loads((tmp_path / "corpus" / "parts" / "Big.completed").read_text())
    assert marker["volumes"] == [v for v in volumes if v != "Big.zip"]
    assert not list((tmp_path / "corpus" / "parts").glob(".*joined*")), "the joined copy is removed"
