"""The one walker over TorchIO transform trees, and the helpers built on it."""

import pytest
import torchio as tio

from sklearn_medprep.images._walk import (
    as_transform,
    find_random_transforms,
    flatten,
    walk,
)


def _tree():
    canonical, flip, noise, clamp = (
        tio.ToCanonical(), tio.RandomFlip(), tio.RandomNoise(), tio.Clamp(0, 1)
    )
    one_of = tio.OneOf({flip: 0.5, noise: 0.5})
    inner = tio.Compose([one_of, clamp])
    return tio.Compose([canonical, inner]), (canonical, inner, one_of, flip, noise,
                                             clamp)


def test_walk_visits_every_part_parents_first_in_order():
    tree, (canonical, inner, one_of, flip, noise, clamp) = _tree()
    assert [id(p) for p in walk(tree)] == [
        id(p) for p in (tree, canonical, inner, one_of, flip, noise, clamp)
    ]
    # without branches: the parts applied to every subject, OneOf not entered
    assert [id(p) for p in walk(tree, branches=False)] == [
        id(p) for p in (tree, canonical, inner, one_of, clamp)
    ]
    assert list(walk(clamp)) == [clamp]


def test_flatten_dissolves_nested_compose_only():
    tree, (canonical, _, one_of, _, _, clamp) = _tree()
    assert [id(p) for p in flatten(tree)] == [id(canonical), id(one_of), id(clamp)]
    assert flatten(clamp) == [clamp]


def test_random_parts_found_at_any_depth():
    tree, _ = _tree()
    found = find_random_transforms(tree)
    assert found == [
        "OneOf (random transform)",
        "RandomFlip (random transform)",
        "RandomNoise (random transform)",
    ]
    deep = tio.Compose([tio.Compose([tio.Compose([tio.Clamp(0, 1, p=0.5)])])])
    assert find_random_transforms(deep) == ["Clamp (applied with p=0.5)"]
    assert find_random_transforms(tio.Compose([tio.ToCanonical()])) == []


def test_as_transform_copies_and_composes_lists():
    clamp = tio.Clamp(0, 1)
    out = as_transform([clamp, tio.ToCanonical()])
    assert isinstance(out, tio.Compose) and out.transforms[0] is not clamp
    with pytest.raises(TypeError, match="augmentation must be a torchio"):
        as_transform(len, "augmentation")
