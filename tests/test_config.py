"""Typed YAML configuration: errors name the file, the field and what was expected."""

from pathlib import Path

import pytest

from uniflow.config import ConfigError, load_yaml
from uniflow.corpora.recipe import Recipe, load_recipe


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "name: broken\ntitle: x\nhomepage: y\nlicense: z\ntasks: [tts]\n")
    with pytest.raises(ConfigError) as error:
        load_yaml(path, Recipe)
    assert str(path) in str(error.value)
    assert "source: Field required" in str(error.value)


def test_wrong_type_and_unknown_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "odd.yaml",
        "name: odd\ntitle: x\nhomepage: y\nlicense: z\ntasks: [tts, karaoke]\ntypo_field: 1\n"
        "source: {kind: http, parts: [{name: a, url: 'http://h/a.tar', size_bytes: -3}]}\n",
    )
    message = str(pytest.raises(ConfigError, load_yaml, path, Recipe).value)
    assert "tasks[1]" in message and "karaoke" in message
    assert "typo_field: Extra inputs are not permitted" in message
    assert "source.http.parts[0].size_bytes" in message


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: a\n  title: [unclosed\n")
    message = str(pytest.raises(ConfigError, load_yaml, path, Recipe).value)
    assert str(path) in message and "line" in message


def test_recipe_name_must_match_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "right.yaml",
        "name: wrong\ntitle: x\nhomepage: y\nlicense: z\ntasks: [tts]\n"
        "source: {kind: http, parts: [{name: a, url: 'http://h/a.tar'}]}\n",
    )
    message = str(pytest.raises(ConfigError, load_recipe, path).value)
    assert "'wrong' must equal the file name 'right'" in message


def test_missing_file(tmp_path: Path) -> None:
    message = str(pytest.raises(ConfigError, load_yaml, tmp_path / "nope.yaml", Recipe).value)
    assert "nope.yaml: file not found" in message
