"""The library's own estimator checks over every public estimator.

These replace the scikit-learn common checks that cannot apply to estimators of
the subject table (see ``EXPECTED_FAILED_CHECKS``): index and row order kept, row
alignment, input untouched, clone and pickle round trips, n_jobs invariance.
"""

import pytest
import torchio as tio

from sklearn_medprep import (
    ComBatHarmonizer,
    ImageTensorizer,
    PatchNeuralNetClassifier,
    PatchNeuralNetSegmenter,
    RadiomicsExtractor,
    TorchIOAugmenter,
    TorchIOPreprocessor,
)
from sklearn_medprep.datasets import make_multisite_cohort, make_multisite_features
from sklearn_medprep.utils import all_estimators
from sklearn_medprep.utils.estimator_checks import subject_table_checks


def _cohort(n_sites=2, shape=(14, 16, 12)):
    return make_multisite_cohort(8, n_sites, shape=shape, random_state=0)


def _patch_module(n_out, head=False):
    import torch

    if head:
        return torch.nn.Sequential(
            torch.nn.Conv3d(1, n_out, 3), torch.nn.AdaptiveAvgPool3d(1),
            torch.nn.Flatten(),
        )
    return torch.nn.Conv3d(1, n_out, 3, padding=1)


def _features():
    return make_multisite_features(40, 6, 3, random_state=0)


_SETTINGS = {
    "setting": {"binCount": 16},
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": [], "glcm": ["Contrast", "Correlation"]},
}

CASES = {
    "ComBatHarmonizer": lambda: (
        ComBatHarmonizer(site="site", covariates=["age", "sex"]),
        _features(),
    ),
    "ImageTensorizer": lambda: (ImageTensorizer(), _cohort(n_sites=1)),
    "PatchNeuralNetClassifier": lambda: (
        PatchNeuralNetClassifier(
            _patch_module(2, head=True), patch_size=6, samples_per_volume=2,
            queue_length=8, max_epochs=1, train_split=None, verbose=0,
            random_state=0,
        ),
        _cohort(shape=(10, 11, 12)),
    ),
    "PatchNeuralNetSegmenter": lambda: (
        PatchNeuralNetSegmenter(
            _patch_module(3), patch_size=6, patch_overlap=2, samples_per_volume=2,
            queue_length=8, max_epochs=1, train_split=None, verbose=0,
            random_state=0,
        ),
        _cohort(shape=(10, 11, 12)),
    ),
    "RadiomicsExtractor": lambda: (
        RadiomicsExtractor(settings=_SETTINGS),
        _cohort(shape=(24, 26, 22)),  # lesions of a few dozen voxels
    ),
    "TorchIOAugmenter": lambda: (
        TorchIOAugmenter(
            tio.Compose([tio.RandomFlip(axes=(0,)), tio.RandomNoise(std=0.1)]),
            random_state=0,
        ),
        _cohort(),
    ),
    "TorchIOPreprocessor": lambda: (
        TorchIOPreprocessor(
            tio.Compose(
                [
                    tio.ToCanonical(),
                    tio.Resample(2.0),
                    tio.HistogramStandardization({}),
                ]
            )
        ),
        _cohort(),
    ),
}


def _split(table):
    if isinstance(table, tuple):
        table = table[0]
    return table.drop(columns="y"), table["y"]


def test_every_public_estimator_has_a_case():
    names = {name for name, _ in all_estimators()}
    missing = {n for n in names if n not in CASES and "KFold" not in n}
    missing -= {"LeaveOneSiteOut"}
    assert not missing, f"add these estimators to CASES: {sorted(missing)}"


@pytest.mark.parametrize("check", subject_table_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(CASES))
def test_subject_table_checks(name, check):
    estimator, table = CASES[name]()
    X, y = _split(table)
    check(estimator, X, y)
