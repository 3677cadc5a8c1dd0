"""Fixtures of the augmentation tests (TorchIOAugmenter, TorchIOAugmentSampler)."""

import pytest
from counting_transform import Counting

from sklearn_medprep.datasets import make_multisite_cohort


@pytest.fixture
def counter():
    """``Counting.calls``, reset: how many subjects a Counting transform saw."""
    Counting.calls[0] = 0
    return Counting.calls


@pytest.fixture(scope="module")
def table():
    """A small two-site cohort of in-memory images of shape (7, 8, 9)."""
    return make_multisite_cohort(6, 2, shape=(7, 8, 9), random_state=2)
