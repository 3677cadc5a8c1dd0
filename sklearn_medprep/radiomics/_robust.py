"""RobustFeatureSelector: keep radiomic features that survive realistic perturbations.

In ``fit`` (training rows only) every row's image and mask are perturbed
``n_perturbations`` times with TorchIO (resampling to another voxel spacing, a
small rotation and translation, Gaussian noise) and a change of the mask contour
(erosion or dilation), the features are re-extracted with the
:class:`~sklearn_medprep.RadiomicsExtractor`, and each feature's reproducibility
over the ``1 + n_perturbations`` versions is scored by ICC(3,1)
(:func:`icc_3_1`). Features scoring at least ``threshold`` are kept. ``transform``
extracts the unperturbed features of new rows and returns the kept ones.
"""

import warnings
import zlib
from numbers import Integral, Real

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..exceptions import MedprepWarning, SubjectTableError
from ..io._read import to_sitk, to_torchio
from ..table._checks import check_fit_rows
from ..utils._docstrings import fill_doc
from ..utils._paths import absolute_cells
from ..utils._random import local_seed, seed_sequence
from ..utils._tags import subject_table_input_tags
from ._extractor import RadiomicsExtractor

__all__ = ["RobustFeatureSelector", "icc_3_1"]


def icc_3_1(ratings):
    """ICC(3,1): two-way mixed, consistency, single measurement (Shrout & Fleiss).

    With ``Y`` of ``n`` subjects (rows) by ``k`` conditions (columns), grand mean
    ``m``, subject means ``r_i`` and condition means ``c_j``::

        MS_R = k * sum_i (r_i - m)**2 / (n - 1)
        SS_E = sum_ij (Y_ij - r_i - c_j + m)**2
        MS_E = SS_E / ((n - 1) * (k - 1))
        ICC(3,1) = (MS_R - MS_E) / (MS_R + (k - 1) * MS_E)

    A systematic shift of one condition (``c_j``) does not lower it; only
    disagreement in the ranking of subjects does. It is NaN when the feature
    is constant (``MS_R + (k - 1) MS_E = 0``) or holds a NaN.

    Parameters
    ----------
    ratings : array-like of shape (n_subjects, n_conditions) or \
(n_subjects, n_conditions, n_features)
        Values; ``n_subjects >= 2``, ``n_conditions >= 2``.

    Returns
    -------
    float or ndarray of shape (n_features,)

    Examples
    --------
    Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.

    >>> from sklearn_medprep import icc_3_1
    >>> ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
    ...            [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> round(icc_3_1(ratings), 2)
    0.71
    """
    y = np.asarray(ratings, dtype=float)
    single = y.ndim == 2
    if single:
        y = y[:, :, np.newaxis]
    if y.ndim != 3:
        raise ValueError(
            "ratings must have shape (n_subjects, n_conditions[, n_features]), "
            f"got {tuple(int(s) for s in y.shape)}"
        )
    n, k = int(y.shape[0]), int(y.shape[1])
    if n < 2 or k < 2:
        raise ValueError(
            f"ICC(3,1) needs at least 2 subjects and 2 conditions, got {n} and {k}"
        )
    grand = y.mean(axis=(0, 1))
    rows = y.mean(axis=1)  # (n, p)
    cols = y.mean(axis=0)  # (k, p)
    ms_r = k * ((rows - grand) ** 2).sum(axis=0) / (n - 1)
    resid = y - rows[:, None, :] - cols[None, :, :] + grand
    ms_e = (resid**2).sum(axis=(0, 1)) / ((n - 1) * (k - 1))
    denominator = ms_r + (k - 1) * ms_e
    with np.errstate(invalid="ignore", divide="ignore"):
        icc = np.where(denominator > 0, (ms_r - ms_e) / denominator, np.nan)
    return float(icc[0]) if single else icc


def _row_seed(entropy, row, perturbation):
    """Seed of one (row, perturbation): depends on the row's index label, not on
    its position, so a row gets the same perturbations in every training fold
    (and the extractor's cache is hit).
    """
    key = zlib.crc32(repr(row).encode())
    sequence = np.random.SeedSequence(entropy, spawn_key=(key, perturbation))
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> 1


def _change_contour(mask, label, radius, grow):
    """Dilate (``grow``) or erode the ``label`` region by ``radius`` voxels."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(mask)
    roi = array == label
    structure = ndimage.generate_binary_structure(roi.ndim, 1)
    if grow:
        changed = ndimage.binary_dilation(roi, structure, iterations=radius)
        changed &= (array == 0) | roi  # never overwrite another label
    else:
        changed = ndimage.binary_erosion(roi, structure, iterations=radius)
        if 2 * changed.sum() < roi.sum():  # would destroy a small ROI: dilate
            return _change_contour(mask, label, radius, True)
    out = array.copy()
    out[roi & ~changed] = 0
    out[changed] = label
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(mask)
    return result


def _perturb_row(image_cell, mask_cell, label, spec, seed, row, image_column,
                 mask_column):
    """Return one perturbed (image, mask) pair as SimpleITK images."""
    import torchio as tio

    image = to_torchio(image_cell, row=row, column=image_column)
    mask = to_torchio(mask_cell, label=True, row=row, column=mask_column)
    rng = np.random.default_rng(seed)
    transforms = []
    if spec["resampling"] > 0:
        factor = rng.uniform(1 - spec["resampling"], 1 + spec["resampling"])
        transforms.append(
            tio.Resample(tuple(float(s) * factor for s in image.spacing))
        )
    if spec["rotation"] > 0 or spec["translation"] > 0:
        transforms.append(tio.RandomAffine(
            scales=0, degrees=spec["rotation"], translation=spec["translation"],
            default_pad_value="minimum",
        ))
    if spec["noise"] > 0:
        roi = image.data[mask.data == label]
        sd = float(roi.std()) if roi.numel() > 1 else 0.0
        transforms.append(tio.RandomNoise(std=(spec["noise"] * sd,) * 2))
    grow = bool(rng.integers(0, 2))
    subject = tio.Subject(image=image, mask=mask)
    with local_seed(seed):
        if transforms:
            subject = tio.Compose(transforms)(subject)
    out_image = to_sitk(subject["image"])
    out_mask = to_sitk(subject["mask"])
    if spec["contour"] > 0:
        out_mask = _change_contour(out_mask, label, spec["contour"], grow)
    return out_image, out_mask


#: Fewest subjects an ICC(3,1) of a kept feature may come from without a
#: warning: fewer cannot tell a reproducible feature from chance (reliability
#: studies aim for 30 or more heterogeneous subjects; Koo and Li, 2016).
MIN_ICC_SUBJECTS = 10


def _warn_few_subjects(icc, n_subjects, names, kept):
    """Warn when a kept feature's ICC comes from fewer than MIN_ICC_SUBJECTS."""
    few = kept & (n_subjects < MIN_ICC_SUBJECTS)
    if not few.any():
        return
    shown = ", ".join(
        f"{names[f]!r} ({int(n_subjects[f])})" for f in np.flatnonzero(few)[:5]
    )
    more = " ..." if few.sum() > 5 else ""
    warnings.warn(
        f"{int(few.sum())} feature(s) are kept on an ICC(3,1) from fewer than "
        f"{MIN_ICC_SUBJECTS} subjects (the minimum here; reliability studies "
        f"aim for 30 or more): {shown}{more} subjects. So few cannot tell a "
        "reproducible feature from chance: fit RobustFeatureSelector on at "
        f"least {MIN_ICC_SUBJECTS} subjects",
        MedprepWarning,
        stacklevel=4,
    )


def _icc_complete_rows(ratings, index):
    """ICC(3,1) per feature over the rows with a value in every version; warn
    with the rows left out (a row that failed under some perturbation with the
    extractor's ``on_error="nan"``).

    Returns ``(icc, n_subjects)``: the ICC of each feature and the number of
    rows it was computed from.
    """
    complete = ~np.isnan(ratings).any(axis=1)  # (n, p)
    n_subjects = complete.sum(axis=0)
    if complete.all():
        return icc_3_1(ratings), n_subjects
    icc = np.full(ratings.shape[2], np.nan)
    for f in range(ratings.shape[2]):
        rows = complete[:, f]
        if rows.sum() >= 2:
            icc[f] = icc_3_1(ratings[rows, :, f])
    left_out = [index[i] for i in np.flatnonzero(~complete.all(axis=1))]
    warnings.warn(
        f"{len(left_out)} training row(s) have NaN features in some version "
        f"(failed extraction); ICC(3,1) of those features uses the other rows: "
        f"{left_out[:5]}",
        MedprepWarning,
        stacklevel=4,
    )
    return icc, n_subjects


@fill_doc
class RobustFeatureSelector(TransformerMixin, BaseEstimator):
    """Radiomic features that are reproducible under realistic perturbations.

    In ``fit``, on the training rows only, each row's image and mask are
    perturbed ``n_perturbations`` times (TorchIO: resampling to a voxel spacing
    scaled by up to ``1 +- resampling``, a rotation up to ``rotation`` degrees
    and a translation up to ``translation`` mm, Gaussian noise of
    ``noise`` times the ROI's intensity SD; then the mask contour eroded or
    dilated by ``contour`` voxels), the features are re-extracted by
    ``extractor``, and each feature's reproducibility across the unperturbed and
    perturbed versions is scored with ICC(3,1) (:func:`icc_3_1`): subjects are
    the training rows, conditions the ``1 + n_perturbations`` versions. Features
    with ICC at least ``threshold`` are kept (0.75 is "good reliability" by Koo
    & Li, 2016). ``transform`` extracts the unperturbed features of the rows
    given and returns the kept ones followed by the extractor's passthrough
    columns.

    Parameters
    ----------
    extractor : RadiomicsExtractor or None, default=None
        The feature extraction (image and mask columns, label, settings,
        ``memory``). None means ``RadiomicsExtractor()``. It is cloned. With
        its ``memory`` set, the unperturbed and the perturbed extractions are
        cached (perturbations depend only on ``random_state`` and each row's
        index label, so refits on overlapping rows reuse them).
    n_perturbations : int, default=4
        Perturbed versions per training row (ICC conditions: this plus 1).
    rotation : float, default=5.0
        Maximum rotation in degrees about each axis (uniform in ``[-rotation,
        rotation]``).
    translation : float, default=1.0
        Maximum translation in mm along each axis.
    noise : float, default=0.1
        SD of the added Gaussian noise, as a fraction of the intensity SD inside
        the ROI.
    contour : int, default=1
        Radius in voxels of the erosion or dilation (drawn with equal
        probability) of the ROI; an erosion that would remove more than half of
        the ROI's voxels (a small ROI) dilates instead. 0 disables it.
    resampling : float, default=0.1
        Maximum relative change of the voxel spacing (isotropic factor uniform in
        ``[1 - resampling, 1 + resampling]``); linear interpolation for the image,
        nearest neighbour for the mask.
    threshold : float, default=0.75
        Minimum ICC(3,1) of a kept feature. A feature whose ICC is NaN (constant
        over the training rows) is dropped. Features kept on an ICC from fewer
        than ``MIN_ICC_SUBJECTS`` (10) subjects are warned of, naming each
        one's count: so few cannot tell reproducible features from chance.
        Rows with a NaN value in some version (a failed extraction with the
        extractor's ``on_error="nan"``) are left out of that feature's ICC,
        with a warning.
    %(n_jobs)s
        It parallelises the perturbations and, when not None, overrides the
        extractor's ``n_jobs``.
    %(random_state)s

    Attributes
    ----------
    extractor_ : RadiomicsExtractor
        The fitted clone of ``extractor``.
    icc_ : pandas.Series
        ICC(3,1) of every extracted feature (index: feature names).
    support_ : ndarray of bool
        Kept features, aligned with ``icc_``.
    selected_features_ : list of str
        The kept features, in extraction order.
    n_features_in_ : int
        Number of columns of the training table.
    feature_names_in_ : ndarray of str
        Columns of the training table.

    See Also
    --------
    RadiomicsExtractor : The extraction whose features are scored.
    icc_3_1 : The reproducibility score.

    Notes
    -----
    Randomness: one seed per (row index label, perturbation) is derived from
    ``random_state``; TorchIO draws run in a local generator context, so the
    caller's torch and numpy random states are untouched and results do not
    depend on ``n_jobs``. The score measures reproducibility of each feature
    under acquisition-like and segmentation-like variation on this cohort
    (the workflow of Zwanenburg et al., 2019); it says nothing about a
    feature's predictive value.

    Examples
    --------
    >>> from sklearn_medprep import RadiomicsExtractor, RobustFeatureSelector
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(10, 2, shape=(32, 34, 30), random_state=0)
    >>> extractor = RadiomicsExtractor(
    ...     settings={"featureClass": {"firstorder": ["Mean", "Median"]}},
    ...     passthrough=[])
    >>> selector = RobustFeatureSelector(extractor, n_perturbations=2,
    ...                                  random_state=0).fit(table)
    >>> selector.icc_.round(2).tolist()
    [0.89, 0.89]
    >>> selector.get_feature_names_out().tolist()
    ['original_firstorder_Mean', 'original_firstorder_Median']
    """

    _parameter_constraints = {
        "extractor": [RadiomicsExtractor, None],
        "n_perturbations": [Interval(Integral, 1, None, closed="left")],
        "rotation": [Interval(Real, 0, 180, closed="both")],
        "translation": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "contour": [Interval(Integral, 0, None, closed="left")],
        "resampling": [Interval(Real, 0, 1, closed="left")],
        "threshold": [Interval(Real, None, 1, closed="right")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        extractor=None,
        n_perturbations=4,
        rotation=5.0,
        translation=1.0,
        noise=0.1,
        contour=1,
        resampling=0.1,
        threshold=0.75,
        n_jobs=None,
        random_state=None,
    ):
        self.extractor = extractor
        self.n_perturbations = n_perturbations
        self.rotation = rotation
        self.translation = translation
        self.noise = noise
        self.contour = contour
        self.resampling = resampling
        self.threshold = threshold
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _spec(self):
        return {
            "rotation": float(self.rotation),
            "translation": float(self.translation),
            "noise": float(self.noise),
            "contour": int(self.contour),
            "resampling": float(self.resampling),
        }

    def _perturbed_tables(self, X, extractor):
        """The ``n_perturbations`` perturbed copies of ``X`` (one table each)."""
        entropy = seed_sequence(self.random_state).entropy
        labels = extractor._labels(X)
        images = absolute_cells(X[extractor.image])  # workers' cwd differ
        masks = absolute_cells(X[extractor.mask])
        spec = self._spec()
        tasks = [
            delayed(_perturb_row)(
                images[i], masks[i], labels[i], spec,
                _row_seed(entropy, row, j), row, extractor.image, extractor.mask,
            )
            for j in range(self.n_perturbations)
            for i, row in enumerate(X.index)
        ]
        results = Parallel(n_jobs=self.n_jobs)(tasks)
        tables = []
        for j in range(self.n_perturbations):
            block = results[j * len(X):(j + 1) * len(X)]
            table = X.copy()
            table[extractor.image] = pd.Series(
                [image for image, _ in block], index=X.index, dtype=object)
            table[extractor.mask] = pd.Series(
                [mask for _, mask in block], index=X.index, dtype=object)
            tables.append(table)
        return tables

    def _fit(self, X):
        check_fit_rows(X, estimator=self)
        extractor = RadiomicsExtractor() if self.extractor is None else self.extractor
        extractor = clone(extractor)
        if self.n_jobs is not None:
            extractor.set_params(n_jobs=self.n_jobs)
        original = extractor.fit_transform(X)
        X = extractor._check_table(X)
        if len(X) < 2:
            raise SubjectTableError(
                "RobustFeatureSelector needs at least 2 training rows (ICC "
                f"compares subjects), got {len(X)}"
            )
        names = list(extractor.feature_names_)
        diagnostics = [n for n in names if n.startswith("diagnostics_")]
        names = [n for n in names if n not in diagnostics]
        versions = [original[names].to_numpy(float)]
        for j, table in enumerate(self._perturbed_tables(X, extractor)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", MedprepWarning)
                try:
                    out = extractor.transform(table)
                except SubjectTableError as exc:  # say it is a perturbed version
                    raise type(exc)(
                        f"under perturbation {j} of RobustFeatureSelector: "
                        f"{exc.bare_message}",
                        row=exc.row, column=exc.column, file=exc.file,
                    ) from exc
            for warning in caught:
                warnings.warn(
                    f"under perturbation {j}: {warning.message}", MedprepWarning,
                    stacklevel=3,
                )
            versions.append(out[names].to_numpy(float))
        icc, n_subjects = _icc_complete_rows(np.stack(versions, axis=1), X.index)
        self.extractor_ = extractor
        self.n_features_in_ = extractor.n_features_in_
        self.feature_names_in_ = extractor.feature_names_in_
        self.icc_ = pd.Series(icc, index=names, name="icc_3_1")
        self.support_ = np.asarray(
            np.nan_to_num(icc, nan=-np.inf) >= self.threshold, dtype=bool
        )
        self.selected_features_ = [n for n, s in zip(names, self.support_) if s]
        _warn_few_subjects(icc, n_subjects, names, self.support_)
        if not self.selected_features_:
            warnings.warn(
                f"no feature reaches ICC(3,1) >= {float(self.threshold)} (highest "
                f"{float(np.nanmax(icc)) if np.isfinite(icc).any() else 'NaN'}); "
                "the output has no feature column",
                MedprepWarning,
                stacklevel=3,
            )
        return original

    def _select(self, features):
        return features[self.selected_features_ + self.extractor_.passthrough_]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Score every feature's reproducibility on the training rows; keep the
        reproducible ones.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (training rows).
        y : None
            Ignored.

        Returns
        -------
        self : RobustFeatureSelector
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit, then return the kept features of ``X`` (extracted once).

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : None
            Ignored.

        Returns
        -------
        pandas.DataFrame
            Kept features then passthrough columns, index of ``X``.
        """
        return self._select(self._fit(X))

    def transform(self, X):
        """Extract the unperturbed features of ``X`` and return the kept ones.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        Returns
        -------
        pandas.DataFrame
            Kept features then passthrough columns, index of ``X``.
        """
        check_is_fitted(self, "selected_features_")
        return self._select(self.extractor_.transform(X))

    def get_feature_names_out(self, input_features=None):
        """Kept features then passthrough names.

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "selected_features_")
        return np.asarray(
            [*self.selected_features_, *self.extractor_.passthrough_], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(
            tags.input_tags, image=True, string=True, allow_nan=True
        )
        tags.transformer_tags.preserves_dtype = []
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags
