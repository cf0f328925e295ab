"""Corpus recipes (``datasets/<corpus>.yaml``) and the corpus plan (``datasets/plan.yaml``).

A recipe says where a corpus comes from and what it is: its source (an HTTP archive with a
checksum, a Hugging Face dataset, a list of YouTube ids, or a manual step for gated corpora),
its license, the tasks it feeds, its splits and the hours the paper reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, overload

from pydantic import Field, field_validator, model_validator

from uniflow.config import ConfigError, StrictModel, load_yaml

Task = Literal["tts", "svs", "t2a", "t2m", "se", "sr", "v2a", "vae"]
TASKS: tuple[str, ...] = ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")
Split = Literal["train", "valid", "test"]
SPLITS: tuple[str, ...] = ("train", "valid", "test")

# Files in datasets/ that configure the pipeline rather than describe a corpus.
NON_RECIPE_FILES = frozenset(
    {"plan", "instructions", "simulation", "simulation_demo", "features", "features_demo", "evaluation", "evaluation_demo"}
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_HEX = re.compile(r"^[0-9a-f]+$")


class Part(StrictModel):
    """One file of a source: an archive (extracted after download) or a plain file."""

    name: str = Field(description="Stable part name, e.g. 'train-clean-100'; names the extraction folder.")
    url: str | None = Field(default=None, description="Public URL; None for manual parts.")
    filename: str | None = Field(default=None, description="Local file name; defaults to the URL's last path segment.")
    sha256: str | None = None
    md5: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    extract: bool = Field(default=True, description="Extract as an archive (tar, tar.gz, tar.bz2, zip) after download.")

    @field_validator("name")
    @classmethod
    def _name_is_path_safe(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a non-empty name without '/' and not starting with '.'")
        return value

    @field_validator("sha256", "md5")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _HEX.match(value.lower()):
            raise ValueError("must be a hexadecimal digest")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _has_filename(self) -> Part:
        if self.filename is None and self.url is None:
            raise ValueError("a part without url needs a filename")
        return self

    @property
    def local_name(self) -> str:
        if self.filename:
            return self.filename
        assert self.url is not None
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class HttpSource(StrictModel):
    """Archives or files fetched over HTTP(S) with resumable, verified downloads."""

    kind: Literal["http"]
    parts: list[Part] = Field(min_length=1)
    # What to do when the host refuses access (401/403): e.g. request access, download in a
    # browser and place the file. Empty for sources that are open to everyone.
    access_steps: list[str] = Field(default_factory=list)


class HuggingFaceSource(StrictModel):
    """A dataset repository on the Hugging Face Hub, fetched with ``huggingface_hub``."""

    kind: Literal["huggingface"]
    repo_id: str
    revision: str = "main"
    allow_patterns: list[str] = Field(default_factory=lambda: ["*"])
    # Files matching these patterns are archives and are extracted after download.
    extract_patterns: list[str] = Field(default_factory=list)
    gated: bool = Field(default=False, description="Needs the user to accept terms on the Hub and an HF token.")
    access_steps: list[str] = Field(default_factory=list)


class YoutubeSource(StrictModel):
    """Clips of YouTube videos named by an id list, fetched with yt-dlp (the ``youtube`` extra)."""

    kind: Literal["youtube"]
    id_lists: list[Part] = Field(min_length=1, description="CSV files listing the clips (downloaded over HTTP).")
    id_column: str
    start_column: str | None = None
    end_column: str | None = None
    clip_seconds: float = Field(default=10.0, gt=0)
    keep_video: bool = Field(default=False, description="Keep the video stream (V2A); otherwise audio only.")
    url_template: str = "https://www.youtube.com/watch?v={id}"
    csv_header: bool = True
    column_names: list[str] = Field(default_factory=list, description="Column names for header-less CSVs.")
    note: str = ""


class ManualSource(StrictModel):
    """A gated corpus: the user obtains the files, uniflow verifies and extracts them."""

    kind: Literal["manual"]
    reason: str = Field(description="Why it cannot be downloaded automatically (approval, agreement...).")
    steps: list[str] = Field(min_length=1, description="Exactly what the user does, in order.")
    parts: list[Part] = Field(min_length=1, description="The files the user places in raw/<corpus>/downloads/.")


Source = Annotated[HttpSource | HuggingFaceSource | YoutubeSource | ManualSource, Field(discriminator="kind")]


class Recipe(StrictModel):
    """Everything uniflow knows about one corpus."""

    name: str = Field(description="Slug used as id namespace and folder name, e.g. 'libritts'.")
    title: str
    homepage: str
    license: str
    citation: str = ""
    description: str = ""
    source: Source
    reader: str | None = Field(default=None, description="Reader module in uniflow.corpora.readers; defaults to name.")
    tasks: list[Task] = Field(min_length=1)
    # split -> names of the parts (or corpus-defined subsets) that make it up.
    splits: dict[Split, list[str]] = Field(default_factory=dict)
    paper_hours: dict[Task, float] = Field(default_factory=dict, description="Hours the paper reports (Tables 4 and 6).")
    approx_size_gb: float | None = Field(default=None, ge=0)
    sample_rate: int | None = Field(default=None, gt=0, description="Native sample rate of the audio.")
    notes: str = ""
    has_audio: bool = Field(
        default=True, description="False for metadata-only corpora (e.g. captions) that another corpus's reader joins."
    )
    requires: list[str] = Field(
        default_factory=list, description="Corpora whose files this corpus's reader also reads (e.g. captions)."
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be lowercase letters, digits and '_' (it namespaces recording ids)")
        return value

    @property
    def reader_name(self) -> str:
        return self.reader or self.name

    @property
    def parts(self) -> list[Part]:
        """The parts that are fetched as files (archives, id lists)."""
        source = self.source
        if isinstance(source, (HttpSource, ManualSource)):
            return list(source.parts)
        if isinstance(source, YoutubeSource):
            return list(source.id_lists)
        return []

    def split_of_parts(self) -> dict[str, str]:
        """Part (or corpus-defined subset) name -> split, from ``splits``.

        A name two splits list keeps the first of them (in ``splits`` order); such recipes
        (one archive holding train and test) leave the split to their reader's own layout rules.
        """
        split_of: dict[str, str] = {}
        for split, names in self.splits.items():
            for name in names:
                split_of.setdefault(name, split)
        return split_of

    @overload
    def split_of(self, part: str) -> str | None: ...

    @overload
    def split_of(self, part: str, default: str) -> str: ...

    def split_of(self, part: str, default: str | None = None) -> str | None:
        """The split ``splits`` gives a part (the first that lists it), else ``default``."""
        return self.split_of_parts().get(part, default)


class TaskSource(StrictModel):
    """One corpus feeding a task, in a role (e.g. clean speech, noise or RIRs for SE)."""

    corpus: str
    role: Literal["target", "clean", "noise", "rir", "paired", "caption"] = "target"
    paper_hours: float | None = None
    # For clean speech: the noise corpora it is mixed with (Table 4: LibriTTS+WHAM!, LJSpeech+MUSAN).
    mix_with: list[str] = Field(default_factory=list)


class ClipRule(StrictModel):
    """How a task's samples are cut to length when shards are written (``uniflow.shards.samples``).

    ``random_crop``: longer than ``max_seconds`` -> a crop of ``max_seconds`` at an offset seeded by
    the sample key; ``drop_outside``: outside [min, max] -> skipped with its reason; ``keep``: whole.
    Every mode skips what is shorter than ``min_seconds``. ``splits`` lists where the rule applies
    (e.g. training crops only; evaluation keeps whole utterances).
    """

    mode: Literal["random_crop", "keep", "drop_outside"]
    max_seconds: float | None = Field(default=None, gt=0)
    min_seconds: float = Field(default=0.0, ge=0)
    splits: list[Split] = Field(default_factory=lambda: list(SPLITS))

    @model_validator(mode="after")
    def _bounds(self) -> ClipRule:
        if self.mode in ("random_crop", "drop_outside") and self.max_seconds is None:
            raise ValueError(f"mode {self.mode} needs max_seconds")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must not be below min_seconds")
        return self


class TaskPlan(StrictModel):
    sources: list[TaskSource] = Field(min_length=1)
    sampling_weight: int = Field(default=1, ge=1, description="Round-robin repeats per cycle (task-balanced sampling).")
    time_aligned: bool
    paper_hours: float | None = None
    evaluation: list[str] = Field(default_factory=list, description="Corpora the paper evaluates this task on.")
    clip: ClipRule | None = Field(default=None, description="Length rule applied when samples are built; None keeps all.")


# The domains of paper Table 6, which Table 7 reports reconstruction quality for.
VaeDomain = Literal["speech", "singing", "music", "general_audio"]
VAE_DOMAINS: tuple[str, ...] = ("speech", "singing", "music", "general_audio")


class Plan(StrictModel):
    """Which corpora feed which task (paper Table 4) and how tasks are balanced in training."""

    tasks: dict[Literal["tts", "svs", "t2a", "t2m", "se", "sr", "v2a"], TaskPlan]
    vae_corpora: dict[VaeDomain, list[str]] = Field(
        default_factory=dict, description="Corpora of paper Table 6 (VAE training), by domain."
    )
    paper_total_hours: float | None = None

    def vae_domain_of(self) -> dict[str, str]:
        """Corpus -> its Table 6 domain, for every VAE corpus."""
        return {corpus: domain for domain, corpora in self.vae_corpora.items() for corpus in corpora}


def load_recipe(path: str | Path) -> Recipe:
    """Load one recipe; its ``name`` must match the file name."""
    path = Path(path)
    recipe = load_yaml(path, Recipe)
    if recipe.name != path.stem:
        raise ConfigError(f"{path}: name: {recipe.name!r} must equal the file name {path.stem!r}")
    return recipe


def load_recipes(datasets_dir: str | Path = "datasets") -> dict[str, Recipe]:
    """All recipes of a datasets folder, keyed by name (the NON_RECIPE_FILES excluded)."""
    datasets_dir = Path(datasets_dir)
    if not datasets_dir.is_dir():
        raise ConfigError(f"{datasets_dir}: recipe folder not found")
    recipes: dict[str, Recipe] = {}
    for path in sorted(datasets_dir.glob("*.yaml")):
        if path.stem in NON_RECIPE_FILES:
            continue
        recipes[path.stem] = load_recipe(path)
    for recipe in recipes.values():
        unknown = [name for name in recipe.requires if name not in recipes]
        if unknown:
            raise ConfigError(f"{datasets_dir / recipe.name}.yaml: requires: no recipe named {', '.join(unknown)}")
    return recipes


def load_plan(path: str | Path, recipes: dict[str, Recipe]) -> Plan:
    """Load the plan and check every corpus it names (sources, evaluation, VAE) has a recipe."""
    plan = load_yaml(path, Plan)
    # (field path, corpus name) for every corpus the plan names, so an error points at the line to fix.
    named: list[tuple[str, str]] = []
    for task_name, task in plan.tasks.items():
        named += [(f"tasks.{task_name}.sources[{i}].corpus", source.corpus) for i, source in enumerate(task.sources)]
        named += [(f"tasks.{task_name}.evaluation[{i}]", corpus) for i, corpus in enumerate(task.evaluation)]
        named += [
            (f"tasks.{task_name}.sources[{i}].mix_with[{j}]", noise)
            for i, source in enumerate(task.sources)
            for j, noise in enumerate(source.mix_with)
        ]
    named += [
        (f"vae_corpora.{domain}[{i}]", corpus)
        for domain, corpora in plan.vae_corpora.items()
        for i, corpus in enumerate(corpora)
    ]
    unknown = [f"  {path}: {field}: {corpus!r} has no recipe" for field, corpus in named if corpus not in recipes]
    if unknown:
        raise ConfigError(f"{path}: names corpora without a recipe in datasets/\n" + "\n".join(unknown))
    return plan
