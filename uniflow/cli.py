"""The ``uniflow`` command line: each data stage runs its Prefect flow.

Prefect is configured (embedded server, project-local state) before anything imports it, so this
module imports flows lazily inside the commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from uniflow.config import ConfigError
from uniflow.orchestration import configure_prefect

app = typer.Typer(help="Rebuild the UniFlow-Audio corpus and train the model.", no_args_is_help=True, add_completion=False)
mirror_app = typer.Typer(help="The mini mirror: a small copy of every corpus served on 127.0.0.1.", no_args_is_help=True)
app.add_typer(mirror_app, name="mirror")
console = Console()

ProfileOption = Annotated[str, typer.Option("--profile", "-p", help="Storage profile YAML (roles -> URLs).", envvar="UNIFLOW_PROFILE")]
DatasetsOption = Annotated[str, typer.Option("--datasets", help="Folder of corpus recipes.")]
CorporaArgument = Annotated[list[str] | None, typer.Argument(help="Corpus names (default: every recipe).", show_default=False)]
RunnerOption = Annotated[str, typer.Option(help="Task runner: processes (local), dask or ray.")]
RunnerWorkersOption = Annotated[int | None, typer.Option("--workers", help="Worker processes (default: all cores).")]
AddressOption = Annotated[str | None, typer.Option("--address", "--dask-address",
                                                  help="Dask scheduler or Ray cluster address; none starts a local cluster.")]

# Exit codes: 0 all done, 1 something failed, 3 a gated corpus waits for a manual step.
EXIT_FAILED, EXIT_MANUAL = 1, 3
DEMO_PROFILE = "storage_config/demo.yaml"


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(EXIT_FAILED)


def _run_acquire(corpora: list[str] | None, profile: str, datasets: str, download: bool, manifests: bool, workers: int) -> dict[str, Any]:
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.acquire import acquire_flow

    try:
        return acquire_flow(corpora=corpora or None, profile=profile, datasets_dir=datasets, download=download,
                            manifests=manifests, num_workers=workers, progress=sys.stderr.isatty())
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        raise


def _report(outcome: dict[str, Any]) -> int:
    """Print what the acquisition did and return the exit code."""
    if outcome["manifests"]:
        table = Table(title="Manifests (measured)")
        for column in ("corpus", "split", "recordings", "hours", "quarantined"):
            table.add_column(column, justify="left" if column in ("corpus", "split") else "right")
        for summary in outcome["manifests"]:
            for split, count in summary["recordings"].items():
                table.add_row(summary["corpus"], split, str(count), f"{summary['hours'][split]:.4f}", str(summary["quarantined"]))
        console.print(table)
    for part in outcome["parts"]:
        if part["status"] == "failed":
            console.print(f"[red]failed[/red] {part['corpus']}/{part['part']}: {part['message']}")
    shown: set[str] = set()
    for part in outcome["parts"]:
        if part["status"] == "manual" and part["corpus"] not in shown:
            shown.add(part["corpus"])
            console.print(f"[yellow]manual step needed[/yellow]\n{part['message']}\n")
    if outcome["failed"]:
        return EXIT_FAILED
    return EXIT_MANUAL if outcome["manual"] else 0


@app.command()
def recipes(datasets: DatasetsOption = "datasets") -> None:
    """List the corpus recipes: source, access, tasks, the paper's hours and license."""
    from uniflow.corpora.recipe import load_recipes

    try:
        loaded = load_recipes(datasets)
    except ConfigError as exc:
        _fail(str(exc))
    table = Table(title=f"{len(loaded)} corpus recipes ({datasets}/)")
    for column in ("name", "source", "tasks", "paper hours", "size GB", "license"):
        table.add_column(column)
    for name, recipe in loaded.items():
        kind = recipe.source.kind + (" (gated)" if getattr(recipe.source, "gated", False) else "")
        hours = ", ".join(f"{task} {value:g}" for task, value in recipe.paper_hours.items())
        size = f"{recipe.approx_size_gb:g}" if recipe.approx_size_gb is not None else "-"
        table.add_row(name, kind, ",".join(recipe.tasks), hours or "-", size, recipe.license)
    console.print(table)


@app.command()
def download(corpora: CorporaArgument = None, profile: ProfileOption = "storage_config/local.yaml", datasets: DatasetsOption = "datasets") -> None:
    """Download, verify and extract corpora; gated corpora print the steps to take."""
    raise typer.Exit(_report(_run_acquire(corpora, profile, datasets, download=True, manifests=False, workers=1)))


@app.command()
def prepare(
    corpora: CorporaArgument = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    workers: Annotated[int, typer.Option(help="Processes probing audio per corpus.")] = 1,
) -> None:
    """Write manifests (JSONL.gz per corpus and split) from already acquired corpora."""
    raise typer.Exit(_report(_run_acquire(corpora, profile, datasets, download=False, manifests=True, workers=workers)))


@app.command()
def acquire(
    corpora: CorporaArgument = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    workers: Annotated[int, typer.Option(help="Processes probing audio per corpus.")] = 1,
) -> None:
    """Download and extract corpora, then write their manifests (the acquisition flow)."""
    raise typer.Exit(_report(_run_acquire(corpora, profile, datasets, download=True, manifests=True, workers=workers)))


def _run_align(corpora: list[str] | None, profile: str, datasets: str, aligner: str, chunk_size: int,
               mfa_settings_json: str | None, scores: bool, runner: str = "processes", workers: int | None = None,
               address: str | None = None) -> dict[str, Any]:
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.align import run_alignment

    try:
        return run_alignment(runner, workers, address, tts_corpora=corpora or None, svs_corpora=None if scores else [],
                             profile=profile, datasets_dir=datasets, aligner=aligner, chunk_size=chunk_size,
                             mfa_settings_json=mfa_settings_json)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise


def _report_alignment(outcome: dict[str, Any]) -> None:
    table = Table(title=f"Alignment ({outcome['aligner']}) and singing scores")
    for column in ("corpus", "split", "done", "failed", "hours"):
        table.add_column(column, justify="left" if column in ("corpus", "split") else "right")
    for summary in outcome["alignments"]:
        table.add_row(summary["corpus"], summary["split"], str(summary["aligned"]), str(summary["failed"]),
                      f"{summary['hours_aligned']:.4f}")
    for summary in outcome["scores"]:
        table.add_row(f"{summary['corpus']} (score)", summary["split"], str(summary["scores"]), str(summary["quarantined"]),
                      f"{summary['hours']:.4f}")
    console.print(table)
    if outcome["missing"]:
        console.print(f"[yellow]no manifests yet for {', '.join(outcome['missing'])}: run `uniflow acquire` first[/yellow]")


@app.command()
def align(
    corpora: CorporaArgument = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    aligner: Annotated[str, typer.Option(help="auto (MFA when installed, else pocketsphinx), mfa or pocketsphinx.")] = "auto",
    chunk_size: Annotated[int, typer.Option(help="Utterances per chunk (one task and one `mfa align` call each).")] = 200,
    mfa_config: Annotated[Path | None, typer.Option(help="YAML with MFA settings (binary, models, jobs, beams).")] = None,
    scores: Annotated[bool, typer.Option(help="Also convert the SVS corpora's singing scores.")] = True,
    runner: RunnerOption = "processes",
    workers: RunnerWorkersOption = None,
    address: AddressOption = None,
) -> None:
    """Align TTS corpora to phone frame counts (resumable chunks) and convert SVS scores."""
    from uniflow.align.mfa import MfaSettings
    from uniflow.config import load_yaml

    try:
        settings = load_yaml(mfa_config, MfaSettings).model_dump_json() if mfa_config else None
    except ConfigError as exc:
        _fail(str(exc))
    _report_alignment(_run_align(corpora, profile, datasets, aligner, chunk_size, settings, scores, runner, workers, address))


def _run_simulate(tasks: list[str] | None, profile: str, datasets: str, runner: str, workers: int | None,
                  address: str | None, config: str | None = None) -> dict[str, Any]:
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.simulate import run_simulation

    try:
        return run_simulation(runner, workers, address, tasks=tasks, profile=profile, datasets_dir=datasets, config_path=config)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise


def _report_simulation(outcome: dict[str, Any]) -> None:
    table = Table(title="Simulated pairs")
    for column in ("task", "split", "pairs", "hours", "quarantined"):
        table.add_column(column, justify="left" if column in ("task", "split") else "right")
    for summary in outcome["summaries"]:
        table.add_row(summary["task"], summary["split"], str(summary["pairs"]), f"{summary['hours']:.4f}", str(summary["quarantined"]))
    console.print(table)


@app.command()
def simulate(
    task: Annotated[list[str] | None, typer.Option("--task", help="se and/or sr (default both).")] = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    runner: RunnerOption = "processes",
    workers: RunnerWorkersOption = None,
    address: AddressOption = None,
    config: Annotated[str | None, typer.Option(help="Simulation settings (default <datasets>/simulation.yaml).")] = None,
) -> None:
    """Simulate SE (URGENT-style noisy speech) and SR (low-pass) pairs: parameters first, then batches."""
    _report_simulation(_run_simulate(task, profile, datasets, runner, workers, address, config))


@app.command()
def replay(
    key: Annotated[str, typer.Argument(help="The pair's key, e.g. se/libritts/<utterance>/r0.")],
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    out: Annotated[Path | None, typer.Option(help="Write <key>.input.wav and <key>.target.wav here.")] = None,
    config: Annotated[str | None, typer.Option(help="Simulation settings (default <datasets>/simulation.yaml).")] = None,
) -> None:
    """Re-render one simulated pair from its stored parameters and check it is bit-exact."""
    import soundfile as sf

    from uniflow.simulate.stage import OUTPUT_RATE, load_simulation_config
    from uniflow.simulate.stage import replay as replay_pair
    from uniflow.storage import Storage

    try:
        result = replay_pair(Storage.from_file(profile), key, load_simulation_config(config or f"{datasets}/simulation.yaml"))
    except (KeyError, ConfigError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    verdict = "[green]bit-exact[/green]" if result.identical else "[red]differs from the stored pair (or it is not rendered yet)[/red]"
    console.print(f"{key}: {result.task}/{result.split} batch {result.batch}: {verdict}")
    if out:
        stem = out / key.replace("/", "__")
        stem.parent.mkdir(parents=True, exist_ok=True)
        sf.write(f"{stem}.input.wav", result.input, OUTPUT_RATE)
        sf.write(f"{stem}.target.wav", result.target, OUTPUT_RATE)
        console.print(f"wrote {stem}.input.wav and {stem}.target.wav")
    raise typer.Exit(0 if result.identical else EXIT_FAILED)


shards_app = typer.Typer(help="WebDataset shards: write, validate.", no_args_is_help=True)
app.add_typer(shards_app, name="shards")


@shards_app.command("write")
def shards_write(
    task: Annotated[list[str] | None, typer.Option("--task", help="Tasks (default: all seven).")] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Splits (default: train, valid, test).")] = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    max_samples: Annotated[int, typer.Option(help="Samples per shard at most.")] = 1000,
    max_bytes: Annotated[int, typer.Option(help="Bytes per shard, about.")] = 1_000_000_000,
    runner: RunnerOption = "processes",
    workers: RunnerWorkersOption = None,
    address: AddressOption = None,
) -> None:
    """Pack every task's split into shards (only missing or stale ones) and update the ledgers."""
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.shard import run_sharding

    try:
        outcome = run_sharding(runner, workers, address, tasks=task, splits=split, profile=profile, datasets_dir=datasets,
                               max_samples=max_samples, max_bytes=max_bytes)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    table = Table(title="Shards")
    for column in ("task", "split", "shards", "written", "samples", "skipped"):
        table.add_column(column)
    for row in outcome["sets"]:
        skipped = ", ".join(f"{reason}: {n}" for reason, n in row["skipped"].items()) or "-"
        table.add_row(row["task"], row["split"], str(row["shards"]), str(row["written"]), str(row["samples"]), skipped)
    console.print(table)
    console.print(f"corpus table: {outcome['report']}")


@shards_app.command("validate")
def shards_validate(
    task: Annotated[list[str] | None, typer.Option("--task", help="Tasks (default: all seven).")] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Splits (default: train, valid, test).")] = None,
    profile: ProfileOption = "storage_config/local.yaml",
) -> None:
    """Re-read every shard: checksums, counts, required files, decodable audio. Non-zero exit on any fault."""
    from uniflow.corpora.recipe import SPLITS, TASKS
    from uniflow.shards.ledger import ShardSet, read_ledger
    from uniflow.shards.samples import required_files
    from uniflow.shards.validate import validate_shard_set
    from uniflow.storage import Storage

    storage = Storage.from_file(profile)
    faults = 0
    for name in task or list(TASKS):
        for part in split or list(SPLITS):
            shard_set = ShardSet(storage, "shards", name, part)
            if not read_ledger(shard_set) and not shard_set.tar_sizes():
                continue
            report = validate_shard_set(storage, "shards", name, part, required_files(name))
            console.print(f"{name}/{part}: {report.summary()}")
            for fault in report.faults:
                console.print(f"  [red]{fault}[/red]")
            faults += len(report.faults)
    raise typer.Exit(EXIT_FAILED if faults else 0)


@app.command()
def features(
    task: Annotated[list[str] | None, typer.Option("--task", help="Tasks (default: every task with shards).")] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Splits (default: train, valid, test).")] = None,
    profile: ProfileOption = "storage_config/local.yaml",
    encoders: Annotated[str, typer.Option(help="Frozen encoders file (models, paths, dtypes).")] = "datasets/features.yaml",
    instructions: Annotated[str, typer.Option(help="Task instructions to embed ('' to skip).")] = "datasets/instructions.yaml",
    device: Annotated[str, typer.Option(help="auto (cuda when present), cpu, cuda or cuda:N.")] = "auto",
    vae_dtype: Annotated[str, typer.Option(help="VAE dtype: fp32, bf16 or fp16 (half is checked against fp32).")] = "fp32",
    batch_frames: Annotated[int | None, typer.Option(help="Padded latent frames per VAE forward pass.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes on CPU (default: all cores; one per GPU on CUDA).")] = None,
    verify: Annotated[str, typer.Option(help="How reused feature shards are checked: size or sha256.")] = "size",
) -> None:
    """Write a feature shard (VAE latents, T5, CLIP, speaker) per audio shard; only those whose cache key changed."""
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.features import run_features

    if verify not in ("size", "sha256"):
        _fail(f"--verify must be size or sha256, not {verify!r}")
    try:
        outcome = run_features(tasks=task, splits=split, profile=profile, encoders_path=encoders,
                               instructions_path=instructions or None, device=device, vae_dtype=vae_dtype,
                               batch_frames=batch_frames, workers=workers, verify=verify)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    _report_features(outcome)


def _report_features(outcome: dict[str, Any]) -> None:
    table = Table(title=f"Feature shards ({outcome['device']}, {outcome['workers']} worker(s))")
    for column in ("task", "split", "shards", "computed", "reused", "failed", "skipped samples", "hours"):
        table.add_column(column)
    for row in outcome["sets"]:
        skipped = ", ".join(f"{reason}: {n}" for reason, n in row["skipped"].items()) or "-"
        table.add_row(row["task"], row["split"], str(row["shards"]), str(row["computed"]), str(row["reused"]),
                      str(row["failed"]), skipped, f"{row['hours']:.4f}")
    console.print(table)
    if "instructions" in outcome:
        state = "written" if outcome["instructions"]["written"] else "unchanged"
        console.print(f"instruction embeddings ({state}): {outcome['instructions']['url']}")


@app.command()
def report(
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    html: Annotated[bool, typer.Option("--html/--no-html", help="Also write the HTML data card (data_card.html, .json).")] = True,
) -> None:
    """Sum the shard ledgers into the corpus table (hours per task, corpus, split vs the paper's Table 4)."""
    from uniflow.corpora.recipe import load_plan, load_recipes
    from uniflow.shards.report import corpus_table_markdown, publish_report
    from uniflow.storage import Storage

    storage = Storage.from_file(profile)
    plan = load_plan(f"{datasets}/plan.yaml", load_recipes(datasets))
    rows = publish_report(storage, plan)
    console.print(corpus_table_markdown(rows))
    console.print(f"written: {storage.url('reports', 'corpus.md')}")
    if html:
        from uniflow.reporting.data_card import publish_data_card

        console.print(f"data card: {publish_data_card(storage, plan, datasets, rows)}")


@app.command("plan")
def plan_launch(
    world_size: Annotated[int, typer.Option(help="Training processes (GPUs) in the launch.")],
    workers: Annotated[int, typer.Option(help="DataLoader workers per process.")],
    task: Annotated[list[str] | None, typer.Option("--task", help="Tasks to check (default: all seven).")] = None,
    split: Annotated[str, typer.Option(help="Shard split to check.")] = "train",
    profile: ProfileOption = "storage_config/local.yaml",
) -> None:
    """Before a launch: does every rank and worker get shards? Says what to change when not."""
    from uniflow.corpora.recipe import TASKS
    from uniflow.shards.ledger import ShardSet, read_ledger
    from uniflow.shards.plan_check import check_plan
    from uniflow.storage import Storage

    storage = Storage.from_file(profile)
    failed = False
    for name in task or list(TASKS):
        ledger = read_ledger(ShardSet(storage, "shards", name, split))
        if not ledger:
            console.print(f"[yellow]{name}/{split}: no shards yet[/yellow]")
            continue
        report = check_plan(len(ledger), world_size, workers, [record.samples for record in ledger])
        console.print(f"[bold]{name}/{split}[/bold]: {report.text()}")
        failed |= not report.ok
    raise typer.Exit(EXIT_FAILED if failed else 0)


@app.command()
def doctor(mfa_config: Annotated[Path | None, typer.Option(help="YAML with MFA settings.")] = None) -> None:
    """Check the external tools uniflow uses and say how to install what is missing."""
    from uniflow.align.mfa import MfaSettings, check_mfa
    from uniflow.config import load_yaml
    from uniflow.doctor import check_environment

    settings = load_yaml(mfa_config, MfaSettings) if mfa_config else MfaSettings()
    checks = check_environment() + check_mfa(settings)
    table = Table(title="uniflow doctor")
    for column in ("check", "status", "detail", "how to fix"):
        table.add_column(column)
    for check in checks:
        status = "[green]ok[/green]" if check.ok else "[red]missing[/red]"
        table.add_row(check.name, status, check.detail, "" if check.ok else check.fix)
    console.print(table)
    required_missing = [check for check in checks if not check.ok and not check.name.startswith("mfa")]
    raise typer.Exit(EXIT_FAILED if required_missing else 0)


@mirror_app.command("build")
def mirror_build(
    out: Annotated[Path, typer.Option(help="Mirror folder.")] = Path("data/mirror"),
    only: Annotated[list[str] | None, typer.Option(help="Build only these corpora.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild corpora already in the mirror.")] = False,
    datasets: DatasetsOption = "datasets",
) -> None:
    """Write a small archive for every recipe, in the corpus's real layout and formats."""
    from uniflow.corpora.recipe import load_recipes
    from uniflow.mirror.build import build_mirror

    index = build_mirror(load_recipes(datasets), out, only=only, force=force)
    total = sum(entry["size"] for entry in index["files"].values())
    console.print(f"mirror at {out}: {len(index['corpora'])} corpora, {len(index['files'])} files, {total / 1e6:.1f} MB")


@mirror_app.command("serve")
def mirror_serve(
    root: Annotated[Path, typer.Option("--dir", help="Mirror folder.")] = Path("data/mirror"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
) -> None:
    """Serve the mirror on 127.0.0.1 until interrupted."""
    from uniflow.mirror.serve import make_server

    try:
        server = make_server(root, port)
    except FileNotFoundError as exc:
        _fail(str(exc))
    console.print(f"serving {root} at {server.url}  (profile: UNIFLOW_MIRROR_URL={server.url} with storage_config/demo.yaml)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()


@app.command()
def dashboard(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4200) -> None:
    """Start a Prefect server (UI and API) on 127.0.0.1 and print its URL."""
    os.environ.pop("PREFECT_API_URL", None)
    configure_prefect()
    prefect = shutil.which("prefect") or str(Path(sys.executable).with_name("prefect"))
    url = f"http://127.0.0.1:{port}"
    console.print(f"Prefect dashboard: {url}")
    console.print(f"To send flow runs there, in another shell: export PREFECT_API_URL={url}/api")
    try:
        subprocess.run([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], check=True)
    except KeyboardInterrupt:
        pass
    except subprocess.CalledProcessError as exc:
        _fail(f"prefect server exited with status {exc.returncode}")


@app.command()
def demo(
    mirror_dir: Annotated[Path, typer.Option(help="Where the mini mirror is built.")] = Path("data/mirror"),
    datasets: DatasetsOption = "datasets",
) -> None:
    """The main job on the embedded default: the rebuild flow on the demo profile (mini mirror -> acquisition
    -> alignment -> simulation -> shards -> tiny VAE -> feature shards, and the HTML data card), a short training
    of the tiny UniFlow-Audio with generated validation items, and its evaluation in the layout of Table 1."""
    console.print(f"[dim]{configure_prefect()}[/dim]")
    console.rule("rebuild flow, demo profile: mirror -> acquire -> align -> simulate -> shard -> VAE -> features")
    from flows.rebuild import rebuild_flow

    outcome = rebuild_flow(profile="demo", datasets_dir=datasets, mirror_dir=str(mirror_dir))
    code = _report_rebuild(outcome)
    console.rule(f"backbone training (tiny config, {DEMO_TRAIN_STEPS} steps) and generated validation items")
    vae_dir = Path(outcome["vae"]["checkpoint"]) / "vae"
    trained = _demo_train(datasets, vae_dir)
    _report_training(trained)
    console.rule("evaluation on the test split (the paper's metrics, Table 1 layout)")
    _demo_evaluate(trained.checkpoint, vae_dir, datasets)
    raise typer.Exit(code)


DEMO_TRAIN_STEPS = 40


def _demo_train(datasets: str, vae_dir: Path) -> Any:
    """A short run of the tiny UniFlow-Audio on the demo's feature shards; its checkpoint holds validation
    losses per task and validation items generated and decoded to 24 kHz by the demo VAE."""
    from uniflow.storage import Storage
    from uniflow.train.trainer import resolve_train_config, train

    config = resolve_train_config("tiny", datasets).model_copy(
        update={"steps": DEMO_TRAIN_STEPS, "checkpoint_every": DEMO_TRAIN_STEPS, "generate_items": 7,
                "vae_dir": str(vae_dir),
                # the demo's tiny T5 and CLIP (uniflow.features.text/video save_tiny_*) are 32 wide
                "tiny_feature_dims": {"text": 32, "video": 32, "instruction": 32}})
    return train(config, Storage.from_file(DEMO_PROFILE), "demo", resume=True)


def _demo_evaluate(checkpoint: Path, vae_dir: Path, datasets: str) -> None:
    """Evaluate the demo checkpoint with ``evaluation_demo.yaml`` (tiny FD and CLAP backbones, saved here)."""
    from flows.evaluate import evaluate_flow, prepare_demo_backbones
    from uniflow.storage import Storage

    prepare_demo_backbones(Storage.from_file(DEMO_PROFILE).path("checkpoints").parent / "models" / "eval")
    outcome = evaluate_flow(checkpoint=str(checkpoint), vae_dir=str(vae_dir), profile=DEMO_PROFILE,
                            config_path=f"{datasets}/evaluation_demo.yaml", name="demo")
    print(Path(outcome["directory"], "evaluation.md").read_text())
    console.print(f"evaluation: {outcome['directory']}/evaluation.md (metric cards in evaluation.json, audio beside)")


def _report_training(result: Any) -> None:
    table = Table(title=f"UniFlow-Audio (tiny) at step {result.step}: validation flow loss per task (sigma 0.5)")
    table.add_column("task")
    table.add_column("loss", justify="right")
    for task, loss in sorted(result.validation.items()):
        table.add_row(task, f"{loss:.4f}")
    console.print(table)
    if result.checkpoint is not None:
        samples = sorted((result.checkpoint / "samples").glob("*.wav"))
        console.print(f"checkpoint: {result.checkpoint}; generated audio: {', '.join(p.name for p in samples) or 'none'}")


def _report_rebuild(outcome: dict[str, Any]) -> int:
    """Print every stage's table; the exit code is the acquisition's (3 when a gated corpus waits)."""
    from uniflow.storage import Storage

    code = _report(outcome["acquire"]) if "acquire" in outcome else 0
    if "align" in outcome:
        _report_alignment(outcome["align"])
    if "simulate" in outcome:
        _report_simulation(outcome["simulate"])
    if "shard" in outcome:
        from uniflow.shards.report import corpus_table_markdown

        console.print(corpus_table_markdown([row for row in outcome["shard"]["table"] if row.get("level") != "corpus"]))
    if outcome.get("vae") and outcome["vae"]["evaluation"]:
        _print_vae_evaluation(outcome["vae"]["evaluation"], f"demo VAE at step {outcome['vae']['step']} (held-out clips)")
    if "features" in outcome:
        _report_features(outcome["features"])
    if "data_card" in outcome:
        console.print(f"data card (HTML): {outcome['data_card']}")
    report_path = Storage.from_file(outcome["storage_profile"]).path("reports") / "rebuild.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(outcome, indent=1, default=str))
    console.print(f"full report: {report_path}")
    return code


@app.command()
def status(
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of markdown tables.")] = False,
) -> None:
    """Per stage and task: done, partial, missing or failed, with counts and hours, read from the outputs.

    Exit status 0 when everything is done, 1 when a stage failed, 2 when something is missing or partial."""
    from uniflow.corpora.recipe import load_plan, load_recipes
    from uniflow.status import status as build_status
    from uniflow.storage import Storage

    try:
        report = build_status(Storage.from_file(profile), load_plan(f"{datasets}/plan.yaml", load_recipes(datasets)), datasets)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise
    print(json.dumps(report.to_json(), indent=1) if as_json else report.markdown())
    raise typer.Exit(report.exit_code())


@app.command()
def rebuild(
    profile: Annotated[str, typer.Option("--profile", help="demo (the mini mirror) or full (the real sources).")] = "full",
    storage: Annotated[str | None, typer.Option("--storage", help="Storage profile (default: the profile's own).")] = None,
    datasets: DatasetsOption = "datasets",
    stage: Annotated[list[str] | None, typer.Option("--stage", help="Only these stages (acquire, align, simulate, shard, features).")] = None,
    mirror_dir: Annotated[Path, typer.Option(help="Where the mini mirror is built (demo).")] = Path("data/mirror"),
    demo_vae_steps: Annotated[int | None, typer.Option(help="Tiny-VAE steps before the demo's features (default: the profile's).")] = None,
    runner: Annotated[str, typer.Option(help="Task runner of alignment, simulation and sharding: processes, dask or ray.")] = "processes",
    address: AddressOption = None,
) -> None:
    """All data stages in order as one Prefect flow; each resumes from what its outputs already hold."""
    from uniflow.orchestration import RUNNERS

    if profile not in ("demo", "full"):
        _fail(f"--profile must be demo or full, not {profile!r}")
    if runner not in RUNNERS:
        _fail(f"--runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.rebuild import rebuild_flow

    try:
        outcome = rebuild_flow(profile=profile, storage_profile=storage, datasets_dir=datasets, mirror_dir=str(mirror_dir),
                               stages=stage or None, demo_vae_steps=demo_vae_steps, runner=runner, runner_address=address)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise
    raise typer.Exit(_report_rebuild(outcome))


vae_app = typer.Typer(help="The waveform VAE: train it on the Table 6 corpora, evaluate it per domain.", no_args_is_help=True)
app.add_typer(vae_app, name="vae")
VaeConfigOption = Annotated[Path | None, typer.Option("--config", help="VAE training YAML (fields left out take the paper's values).")]
VaePresetOption = Annotated[str | None, typer.Option("--preset", help="tiny (minutes on a CPU) or paper (default).")]


def _vae_config(config: Path | None, preset: str | None, datasets: str) -> Any:
    from uniflow.train.vae import VaeTrainConfig, load_vae_train_config

    if config is not None and preset is not None:
        _fail("give --config or --preset, not both")
    try:
        loaded = load_vae_train_config(config) if config is not None else VaeTrainConfig.preset(preset or "paper")
    except ConfigError as exc:
        _fail(str(exc))
        raise
    data = loaded.data.model_copy(update={"datasets": datasets, "plan": f"{datasets}/plan.yaml"})
    return loaded.model_copy(update={"data": data})


def _print_vae_evaluation(results: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    for column in ("domain", "clips", "MSE", "SNR (dB)"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    for domain, row in results.items():
        table.add_row(domain, str(row["clips"]), f"{row['mse']:.3e}", f"{row['snr_db']:.2f}")
    console.print(table)


@vae_app.command("train")
def vae_train(
    config: VaeConfigOption = None,
    preset: VaePresetOption = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    steps: Annotated[int | None, typer.Option(help="Total steps to reach (overrides the config).")] = None,
    run_name: Annotated[str, typer.Option("--run-name", help="Checkpoints go to <checkpoints>/vae/<run name>/.")] = "default",
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this VAE directory (config.json + model.safetensors).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its latest checkpoint.")] = False,
) -> None:
    """Train the VAE (Accelerate: run under `accelerate launch` for several processes or GPUs)."""
    from uniflow.storage import Storage
    from uniflow.train.vae import train_vae

    settings = _vae_config(config, preset, datasets)
    if steps is not None:
        settings = settings.model_copy(update={"steps": steps})
    try:
        result = train_vae(settings, Storage.from_file(profile), run_name, init_from=init_from, resume=resume,
                           progress=sys.stderr.isatty())
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise
    if result.initial_evaluation:
        _print_vae_evaluation(result.initial_evaluation, "held-out reconstruction at step 0")
    if result.final_evaluation:
        _print_vae_evaluation(result.final_evaluation, f"held-out reconstruction at step {result.step}")
    console.print(f"step {result.step}; checkpoint: {result.checkpoint}")


@vae_app.command("evaluate")
def vae_evaluate(
    vae: Annotated[Path, typer.Option("--vae", help="VAE directory (config.json + model.safetensors).")],
    config: VaeConfigOption = None,
    preset: VaePresetOption = None,
    profile: ProfileOption = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    out: Annotated[Path | None, typer.Option(help="Where evaluation.json/.md go (default: the VAE directory).")] = None,
) -> None:
    """MSE and SNR (dB) of the VAE's reconstructions of held-out clips, per domain (paper Table 7)."""
    from uniflow.model.pretrained import PretrainedLoadError
    from uniflow.storage import Storage
    from uniflow.train.vae import evaluate_pretrained

    settings = _vae_config(config, preset, datasets)
    try:
        results = evaluate_pretrained(Storage.from_file(profile), vae, settings, out)
    except (ConfigError, PretrainedLoadError, FileNotFoundError) as exc:
        _fail(str(exc))
        raise
    _print_vae_evaluation(results, f"held-out reconstruction of {vae}")
    console.print(f"written: {(out or vae) / 'evaluation.json'}")


def _train_settings(config: str, datasets: str, steps: int | None, vae: Path | None) -> Any:
    """A preset name (tasks and weights from <datasets>/plan.yaml) or a training YAML, with the overrides."""
    from uniflow.train.trainer import resolve_train_config

    try:
        settings = resolve_train_config(config, datasets)
    except (ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
        raise
    updates: dict[str, Any] = {}
    if steps is not None:
        updates["steps"] = steps
    if vae is not None:
        updates["vae_dir"] = str(vae)
    return settings.model_copy(update=updates)


@app.command("train")
def train_command(
    config: Annotated[str, typer.Option("--config", help="tiny, small, medium or large (paper setup), or a training YAML.")] = "small",
    profile: Annotated[str, typer.Option("--profile", "--storage", "-p", help="Storage profile YAML (roles -> URLs).", envvar="UNIFLOW_PROFILE")] = "storage_config/local.yaml",
    datasets: DatasetsOption = "datasets",
    steps: Annotated[int | None, typer.Option(help="Total optimizer steps to reach (overrides the config).")] = None,
    run_name: Annotated[str, typer.Option("--run-name", help="Checkpoints go to <checkpoints>/uniflow/<run name>/.")] = "default",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its latest checkpoint.")] = False,
    vae: Annotated[Path | None, typer.Option("--vae", help="VAE directory: samples at checkpoints are decoded to audio.")] = None,
    num_processes: Annotated[int, typer.Option("--num-processes", help="Re-launch through `accelerate launch` with N local processes.")] = 1,
    accelerate_config: Annotated[Path | None, typer.Option("--accelerate-config", help="Re-launch with this Accelerate config (configs/accelerate/).")] = None,
) -> None:
    """Train UniFlow-Audio on the feature shards (one process here, or re-launched on several with Accelerate)."""
    from uniflow.storage import Storage
    from uniflow.train.data import DataPlanError, require_data_plan
    from uniflow.train.trainer import NonFiniteLossError, accelerate_command, launch_world_size, train

    settings = _train_settings(config, datasets, steps, vae)
    if num_processes > 1 or accelerate_config is not None:
        # A rank without data is caught here, before any process starts (train() checks again in each rank).
        try:
            require_data_plan(Storage.from_file(profile), settings.data, launch_world_size(num_processes, accelerate_config))
        except (DataPlanError, FileNotFoundError) as exc:
            _fail(str(exc))
        inner = ["--config", config, "--profile", profile, "--datasets", datasets, "--run-name", run_name]
        inner += ["--steps", str(settings.steps)] + (["--resume"] if resume else []) + (["--vae", str(vae)] if vae else [])
        command = accelerate_command(inner, num_processes=num_processes, accelerate_config=accelerate_config)
        console.print(f"[dim]{' '.join(command)}[/dim]")
        raise typer.Exit(subprocess.run(command, check=False).returncode)
    try:
        result = train(settings, Storage.from_file(profile), run_name, resume=resume, progress=sys.stderr.isatty())
    except (ConfigError, DataPlanError, NonFiniteLossError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise
    from accelerate.state import PartialState

    if not PartialState().is_main_process:
        return
    table = Table(title=f"validation loss at step {result.step}")
    for column in ("task", "loss"):
        table.add_column(column)
    for task, value in result.validation.items():
        table.add_row(task, f"{value:.4f}")
    console.print(table)
    console.print(f"step {result.step}; {result.nonfinite_steps} non-finite step(s) skipped; checkpoint: {result.checkpoint}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A training run folder (its latest checkpoint), a step-N checkpoint or a model directory.")],
    vae: Annotated[Path | None, typer.Option(help="VAE directory (default: the one the run trained with).")] = None,
    profile: ProfileOption = "storage_config/local.yaml",
    config: Annotated[Path, typer.Option(help="Evaluation YAML: split, inference settings, metric backbones.")] = Path("datasets/evaluation.yaml"),
    name: Annotated[str | None, typer.Option(help="Output folder under <reports>/evaluation/ (default: <run>-step-N).")] = None,
    max_items: Annotated[int | None, typer.Option(help="At most this many test items per task.")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", help="Only these tasks (default: the config's).")] = None,
) -> None:
    """The paper's objective metrics on the test split, printed in the layout of Table 1 with the inference
    settings beside it; every score's metric card (backbone checksums, settings) goes to evaluation.json."""
    console.print(f"[dim]{configure_prefect()}[/dim]")
    from flows.evaluate import evaluate_flow

    try:
        outcome = evaluate_flow(checkpoint=str(checkpoint), vae_dir=str(vae) if vae else None, profile=profile,
                                config_path=str(config), name=name, max_items=max_items, tasks=task or None)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise
    print(Path(outcome["directory"], "evaluation.md").read_text())
    console.print(f"written: {outcome['directory']}/evaluation.md and evaluation.json")


@app.command()
def generate(
    task: Annotated[str, typer.Option(help="tts, svs, t2a, t2m, se, sr or v2a.")],
    model: Annotated[Path, typer.Option(help="UniFlow-Audio directory (config.json, model.safetensors, svs_vocab.json).")],
    vae: Annotated[Path, typer.Option(help="VAE directory (config.json + model.safetensors).")],
    out: Annotated[Path, typer.Option(help="Output audio file (.flac or .wav, 24 kHz).")],
    encoders: Annotated[str, typer.Option(help="Frozen encoders file (T5, CLIP, speaker model paths).")] = "datasets/features.yaml",
    text: Annotated[str | None, typer.Option(help="TTS: the sentence to speak.")] = None,
    speaker_audio: Annotated[Path | None, typer.Option("--speaker-audio", help="TTS: reference recording of the voice.")] = None,
    score: Annotated[Path | None, typer.Option(help="SVS: score JSON (phones, midi, note_seconds, slur, singer).")] = None,
    caption: Annotated[str | None, typer.Option(help="T2A/T2M: the description.")] = None,
    audio: Annotated[Path | None, typer.Option(help="SE/SR: the input recording.")] = None,
    video: Annotated[Path | None, typer.Option(help="V2A: the input video.")] = None,
    instruction: Annotated[str | None, typer.Option(help="Instruction text (default: the task's instruction at --instruction-index).")] = None,
    instruction_index: Annotated[int, typer.Option("--instruction-index", help="Which of the task's 10 instructions (0-based).")] = 0,
    instructions_table: Annotated[Path | None, typer.Option("--instructions-table", help="Precomputed t5_embeddings.safetensors.")] = None,
    instructions: Annotated[str, typer.Option(help="Instruction texts, embedded live when no table is given.")] = "datasets/instructions.yaml",
    steps: Annotated[int, typer.Option(help="Euler steps.")] = 25,
    cfg: Annotated[float, typer.Option(help="Guidance scale (SE and SR always use none).")] = 5.0,
    sway: Annotated[float, typer.Option(help="Sway sampling coefficient (0: uniform steps).")] = -1.0,
    seed: Annotated[int, typer.Option(help="Seed of the starting noise.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Generate 24 kHz audio for one input of a task (text, score, caption, audio or video)."""
    from uniflow.features.config import load_encoders_config
    from uniflow.features.frozen import FrozenEncoderError
    from uniflow.infer.generate import GenerationError, Generator, generate_to_file
    from uniflow.model.pretrained import PretrainedLoadError

    try:
        generator = Generator(model, vae, load_encoders_config(encoders), device, instructions_table, instructions)
        path, result = generate_to_file(
            generator, task, out, instruction=instruction, instruction_index=instruction_index, steps=steps,
            guidance_scale=cfg, sway_coefficient=sway, seed=seed, text=text, speaker_audio=speaker_audio,
            score=score, caption=caption, audio=audio, video=video,
        )  # fmt: skip
    except (ConfigError, GenerationError, PretrainedLoadError, FrozenEncoderError, FileNotFoundError) as exc:
        _fail(str(exc))
        raise
    console.print(f"{task}: {result.seconds:.2f} s ({result.latent_frames} latent frames) -> {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
