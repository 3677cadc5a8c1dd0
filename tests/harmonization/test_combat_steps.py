"""ComBat's named steps: a variant overrides one step, for both estimators.

A subject column (longitudinal ComBat) is read by overriding the read step
alone; an empirical-Bayes variant overrides the shrink step alone and changes
ComBatHarmonizer and VoxelComBatHarmonizer alike.
"""

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import ComBatHarmonizer, VoxelComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features, make_voxel_cohort
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.harmonization import _input as inputs


class _SubjectComBat(ComBatHarmonizer):
    """A longitudinal-ComBat-like variant: one overridden step reads ``subject``."""

    def __init__(self, site="site", covariates=None, subject="subject"):
        super().__init__(site=site, covariates=covariates)
        self.subject = subject

    def _read_batch(self, X, y, sites, covariates, *, reset):
        spec = dataclasses.replace(
            self._table_spec(reset=reset), extra_columns=(self.subject,)
        )
        batch = inputs.read_table(self, X, sites, covariates, spec)
        self.batches_read.append(batch)
        return batch


@pytest.fixture
def table():
    df = make_multisite_features(n_subjects=60, n_features=4, random_state=0)
    df = df.drop(columns="y")
    # numeric subject ids: a numeric column that must not be harmonized
    df.insert(0, "subject", np.arange(len(df)) % 20 + 1000)
    return df


def test_subject_column_read_by_the_overridden_step(table):
    est = _SubjectComBat(covariates=["age", "sex"])
    est.batches_read = []
    out = est.fit_transform(table)
    fit_batch, transform_batch = est.batches_read
    for batch in (fit_batch, transform_batch):
        assert isinstance(batch, inputs.Batch)
        np.testing.assert_array_equal(
            batch.extra["subject"], table["subject"].to_numpy()
        )
        assert "subject" in batch.from_table
        assert "subject" not in list(batch.feats)
    # consumed like the site: not a feature, dropped from the output, and
    # the features harmonized exactly as plain ComBat without the column
    assert list(est.features_) == ["f000", "f001", "f002", "f003"]
    plain = ComBatHarmonizer(covariates=["age", "sex"])
    expected = plain.fit_transform(table.drop(columns="subject"))
    assert list(out.columns) == list(expected.columns)
    np.testing.assert_array_equal(out.to_numpy(), expected.to_numpy())
    # plain ComBat takes the subject ids for a feature: the step made the difference
    assert "subject" in ComBatHarmonizer(covariates=["age", "sex"]).fit(
        table
    ).features_


def test_subject_column_missing_is_named(table):
    est = _SubjectComBat(covariates=["age", "sex"])
    est.batches_read = []
    with pytest.raises(SubjectTableError, match="subject"):
        est.fit(table.drop(columns="subject"))


def test_batch_is_a_frozen_record(table):
    y = np.arange(len(table)) % 2
    batch = ComBatHarmonizer(covariates=["age"])._read_batch(
        table, y, None, None, reset=True
    )
    assert batch.y is y  # the target travels with the rows to the design step
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.design_cov = np.zeros((len(table), 0))
    filled = batch.replace(design_cov=np.zeros((len(table), 0)))
    assert filled.design_cov.shape == (len(table), 0) and batch.design_cov is None
    assert filled.extra == {}


class _NoShrink:
    """A variant of the empirical-Bayes step: never shrink."""

    def _shrink(self, stats, *, eb):
        return super()._shrink(stats, eb=False)


class _TableNoShrink(_NoShrink, ComBatHarmonizer):
    pass


class _VoxelNoShrink(_NoShrink, VoxelComBatHarmonizer):
    pass


def test_one_overridden_step_changes_table_and_voxel_combat(table):
    names = ("gamma_star_", "delta_star_", "gamma_hat_", "coef_", "var_pooled_")
    X = table.drop(columns="subject")
    variant = _TableNoShrink(covariates=["age", "sex"]).fit(X)
    reference = ComBatHarmonizer(covariates=["age", "sex"], eb=False).fit(X)
    shrunk = ComBatHarmonizer(covariates=["age", "sex"]).fit(X)
    for name in names:
        np.testing.assert_array_equal(getattr(variant, name), getattr(reference, name))
    assert not np.array_equal(variant.gamma_star_, shrunk.gamma_star_)

    cohort, _ = make_voxel_cohort(n_subjects=12, n_sites=2, random_state=0)
    voxel = _VoxelNoShrink(covariates=["age"], chunk_size=97).fit(cohort)
    voxel_ref = VoxelComBatHarmonizer(covariates=["age"], eb=False, chunk_size=97)
    voxel_ref.fit(cohort)
    voxel_shrunk = VoxelComBatHarmonizer(covariates=["age"]).fit(cohort)
    for name in names:
        np.testing.assert_array_equal(getattr(voxel, name), getattr(voxel_ref, name))
    assert not np.array_equal(voxel.gamma_star_, voxel_shrunk.gamma_star_)
    assert voxel.eb_ is False and voxel_shrunk.eb_ is True


def test_voxel_fit_runs_combat_site_effects_step_per_chunk(monkeypatch):
    cohort, _ = make_voxel_cohort(n_subjects=12, n_sites=2, random_state=0)
    calls = []
    original = VoxelComBatHarmonizer._estimate_site_effects

    def spy(self, batch, coding, coef):
        calls.append(batch.n_features)
        return original(self, batch, coding, coef)

    monkeypatch.setattr(VoxelComBatHarmonizer, "_estimate_site_effects", spy)
    est = VoxelComBatHarmonizer(covariates=["age"], chunk_size=97).fit(cohort)
    assert sum(calls) == est.n_voxels_
    assert calls[:-1] == [97] * (len(calls) - 1) and len(calls) > 1


def test_voxel_model_pickled_before_the_shared_steps_transforms(tmp_path):
    cohort, _ = make_voxel_cohort(n_subjects=12, n_sites=2, random_state=0)
    est = VoxelComBatHarmonizer(covariates=["age"], dtype="float64").fit(cohort)
    expected = est.transform(cohort)
    state = est.__getstate__()
    del state["spline_knots_"]  # not set by the fit of 0.1.0
    old = VoxelComBatHarmonizer.__new__(VoxelComBatHarmonizer)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    out = old.transform(cohort)
    for a, b in zip(out["image"], expected["image"]):
        np.testing.assert_array_equal(_array(a), _array(b))


def _array(image):
    return sitk.GetArrayFromImage(image)


def test_table_spec_defaults_read_like_the_estimator(table):
    X = table.drop(columns="subject")
    est = ComBatHarmonizer(covariates=["age", "sex"])
    spec = est._table_spec(reset=True)
    assert spec.extra_columns == () and spec.site == "site"
    batch = inputs.read_table(est, X, None, None, spec)
    assert list(batch.feats) == ["f000", "f001", "f002", "f003"]
    np.testing.assert_array_equal(batch.site_values, X["site"].to_numpy())
    pd.testing.assert_frame_equal(batch.cov, X[["age", "sex"]])
