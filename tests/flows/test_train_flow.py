"""The training flow launches `accelerate launch`, publishes checkpoints and metrics, and fails with the training."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))  # training_setup, feature_sets

from training_setup import feature_storage  # noqa: E402

from support import DATASETS, PROJECT, latest_artifact, make_storage, write_profile  # noqa: E402

pytestmark = pytest.mark.prefect


def test_flow_trains_in_a_subprocess_and_publishes_checkpoints_and_metrics(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train import train_flow

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the launched process: tiny model, busy 2-core machine
    feature_storage(tmp_path)
    profile = write_profile(tmp_path, None)
    outcome = train_flow(model_size="tiny", steps=2, profile=profile, run_name="flow-run", datasets_dir=str(DATASETS))
    assert outcome["step"] == 2 and outcome["run_name"] == "flow-run"
    (checkpoint,) = outcome["checkpoints"]
    assert checkpoint["step"] == 2 and checkpoint["samples"] == 2 and checkpoint["mean valid loss"] > 0
    assert set(checkpoint) >= {f"valid {task}" for task in ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")}
    assert (Path(checkpoint["path"]) / "model" / "model.safetensors").is_file()
    table = latest_artifact("train-checkpoints-flow-run")
    assert table["type"] == "table" and "step-2" in str(table["data"])
    metrics = latest_artifact("train-metrics-flow-run")
    assert metrics["type"] == "markdown" and "Exit code: 0" in metrics["data"] and "## Training loss" in metrics["data"]
    assert "data:image/svg+xml;base64," in metrics["data"]
    curves = (Path(outcome["run_dir"]) / "curves.svg").read_text()
    assert curves.startswith("<svg") and 'class="series"' in curves and ">train<" in curves
    image = latest_artifact("train-curves-flow-run")
    assert image["type"] == "image" and image["data"].startswith("data:image/svg+xml;base64,")


def test_flow_run_fails_before_launch_without_data(prefect_harness, tmp_path: Path) -> None:
    from flows.train import train_flow

    make_storage(tmp_path)  # no feature shards: the plan check refuses to launch
    profile = write_profile(tmp_path, None)
    state = train_flow(
        model_size="tiny", steps=2, profile=profile, run_name="no-data", datasets_dir=str(DATASETS), return_state=True
    )
    assert state.is_failed() and "no train feature shards for any task" in str(state.message)


def test_flow_run_fails_when_the_launched_training_fails(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train import train_flow

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    feature_storage(tmp_path)
    profile = write_profile(tmp_path, None)
    config = tmp_path / "broken.yaml"  # passes the plan check, then cannot load the model it starts from
    config.write_text(f"model: tiny\ninit_from: {tmp_path / 'missing'}\ntrackers: []\ndata: {{batch_size: 4, workers: 0}}\n")
    state = train_flow(
        config_path=str(config), steps=2, profile=profile, run_name="broken", datasets_dir=str(DATASETS), return_state=True
    )
    assert state.is_failed() and "exit code 1" in str(state.message)
    assert "Exit code: 1" in latest_artifact("train-metrics-broken")["data"]


def test_deployments_validate_against_prefects_schema_and_their_flows() -> None:
    """flows/prefect.yaml as `prefect deploy` reads it: every entrypoint loads and takes the parameters given."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.flows import load_flow_from_entrypoint

    document = PrefectYamlModel.model_validate(yaml.safe_load((PROJECT / "flows" / "prefect.yaml").read_text()))
    names = [deployment.name for deployment in document.deployments]
    assert names[:5] == ["rebuild-1-acquire", "rebuild-2-align", "rebuild-3-simulate", "rebuild-4-shard", "rebuild-5-features"]
    for deployment in document.deployments:
        loaded = load_flow_from_entrypoint(str(PROJECT / deployment.entrypoint))
        loaded.validate_parameters(deployment.parameters)
        assert deployment.work_pool.name in ("cpu-pool", "gpu-pool")
    retrain = next(deployment for deployment in document.deployments if deployment.name == "retrain-weekly")
    assert retrain.schedules[0].cron == "0 22 * * 0"
    assert {"model_size", "steps", "profile"} <= set(retrain.parameters)
    assert (PROJECT / retrain.parameters["accelerate_config"]).is_file()
    assert (PROJECT / retrain.parameters["evaluation_config"]).is_file()
    assert {"rebuild-full", "evaluate"} <= set(names)


def test_accelerate_configs_load_as_accelerate_reads_them() -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    configs = {path.stem: ClusterConfig.from_yaml_file(str(path)) for path in (PROJECT / "configs" / "accelerate").glob("*.yaml")}
    assert set(configs) == {"1gpu", "8gpu", "8gpu_fsdp", "multinode", "cpu_2proc"}
    assert [configs[name].num_processes for name in ("1gpu", "8gpu", "multinode", "cpu_2proc")] == [1, 8, 16, 2]
    assert configs["8gpu_fsdp"].distributed_type == "FSDP" and configs["multinode"].num_machines == 2
    assert all(configs[name].mixed_precision == "bf16" for name in ("1gpu", "8gpu", "8gpu_fsdp", "multinode"))
