"""A recipe says which split each of its parts belongs to, the first split that lists it winning."""

from __future__ import annotations

from uniflow.corpora.recipe import Recipe


def recipe_with_splits(splits: dict[str, list[str]]) -> Recipe:
    """A valid recipe whose only interesting field is ``splits``."""
    return Recipe.model_validate(
        {
            "name": "split_test",
            "title": "split test",
            "homepage": "https://example.org",
            "license": "test",
            "source": {"kind": "manual", "reason": "-", "steps": ["-"], "parts": [{"name": "a", "filename": "a"}]},
            "tasks": ["tts"],
            "splits": splits,
        }
    )


def test_split_of_parts_maps_every_listed_part_in_splits_order() -> None:
    recipe = recipe_with_splits({"train": ["clean-100", "clean-360"], "valid": ["dev"], "test": ["test"]})
    split_of = recipe.split_of_parts()
    assert split_of == {"clean-100": "train", "clean-360": "train", "dev": "valid", "test": "test"}
    assert list(split_of) == ["clean-100", "clean-360", "dev", "test"]


def test_a_part_two_splits_list_keeps_the_first() -> None:
    # Like musdb18hq and wham_noise: one archive listed under several splits.
    recipe = recipe_with_splits({"test": ["shared", "eval"], "train": ["shared", "extra"]})
    assert recipe.split_of_parts() == {"shared": "test", "eval": "test", "extra": "train"}
    assert recipe.split_of("shared") == "test"
    assert recipe.split_of("shared", "train") == "test"


def test_split_of_a_part_no_split_lists_is_the_default() -> None:
    recipe = recipe_with_splits({"train": ["listed"]})
    assert recipe.split_of("listed") == "train"
    assert recipe.split_of("listed", "test") == "train"
    assert recipe.split_of("unlisted") is None
    assert recipe.split_of("unlisted", "test") == "test"


def test_a_recipe_without_splits_has_none() -> None:
    recipe = recipe_with_splits({})
    assert recipe.split_of_parts() == {}
    assert recipe.split_of("anything") is None
    assert recipe.split_of("anything", "train") == "train"
