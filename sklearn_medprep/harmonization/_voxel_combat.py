"""Voxel-wise ComBat of the images of a subject table, in bounded memory."""

import numbers
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ..exceptions import MedprepWarning, SubjectTableError, plain
from ..io._write import commit_all, discard_tagged
from ..table._checks import check_fit_rows, check_subject_table
from ..table._proxy import check_target_proxies
from ..utils._docstrings import fill_doc
from ..utils._paths import absolute_cells, absolute_folder, on_worker
from ..utils._tags import subject_table_input_tags
from . import _input as inputs
from . import _target as target
from . import _voxel_store as vs
from ._sites import BatchSites, estimate_new_site, resolve_unseen
from ._steps import ComBatFitSteps
from ._voxel_chunks import (
    ImageLayout,
    VoxelModel,
    harmonize_rows,
    output_files,
)
from ._voxel_fit import chunked_site_effects, learn_mask

__all__ = ["VoxelComBatHarmonizer"]


@fill_doc
class VoxelComBatHarmonizer(ComBatFitSteps, TransformerMixin, BaseEstimator):
    """Remove site effects from images voxel by voxel with ComBat, in bounded memory.

    Every voxel of a brain mask is a ComBat feature (neuroHarmonize's
    ``harmonizationLearn`` on flattened images and ``applyModelNIFTIs``): the
    same model, options and fitted core as
    :class:`~sklearn_medprep.ComBatHarmonizer`. The images are never held as
    one ``n_images x n_voxels`` array: ``fit`` copies the masked voxels once
    into a chunk-major scratch file and estimates each chunk of voxels on its
    own (in parallel with ``n_jobs``, or on a dask cluster), the empirical-Bayes
    priors, which pool all voxels of a site, are computed from the gathered
    per-site estimates; ``transform`` harmonizes a few images at a time. The
    fitted model is ``O(n_sites x n_voxels)`` and persists with joblib.

    Parameters
    ----------
    %(image)s
        Every image must lie on the mask's grid (size, spacing, origin,
        direction), as after registration to one template.
    mask : str, pathlib.Path, SimpleITK.Image, nibabel image or None, default=None
        Brain mask (non-zero voxels are harmonized). None learns it in ``fit``
        as neuroHarmonize's ``createMaskNIFTI`` does: the voxels whose mean
        over the training images is positive and at least ``mask_threshold``
        (``createMaskNIFTI`` of neuroHarmonize 2.5.2 counts its first image
        twice in that mean; this one does not).
    mask_threshold : float, default=0.0
        Threshold of the learned mask.
    %(site)s
        Read from the table unless ``sites=`` is routed to ``fit``/``transform``.
    covariates : list of str or None, default=None
        Columns whose effects are preserved (age, sex, ...); numeric columns as
        float64, others one-hot encoded (first level dropped). Overridden by a
        routed ``covariates=`` DataFrame.
    categorical : list of str or int, or None, default=None
        Covariates declared categorical whatever their dtype (numeric scanner
        codes), by name or position, as in :class:`ComBatHarmonizer`.
    smooth_terms : list of str or None, default=None
        Covariates modelled as smooth, non-linear terms (ComBat-GAM, as
        :class:`~sklearn_medprep.ComBatHarmonizer`: cubic B-splines with 10
        degrees of freedom, the penalty of each voxel chosen by 5-fold
        cross-validation with statsmodels). The knots are fitted once on the
        training rows; each chunk of voxels fits its voxels' GAMs (with
        ``n_jobs``): 56 penalized fits per voxel (11 penalties x 5 folds, then
        the chosen one), for small masks or many workers.
    smooth_term_bounds : tuple of (float or None, float or None) or None, \
default=None
        Boundary knots ``(min, max)`` of a single smooth term, so that the
        basis covers values outside the training range.
    interactions : list of (str, str) or str, or None, default=None
        Interaction terms between two linear covariates (``[("age", "sex")]``
        or ``["age:sex"]``), as in :class:`~sklearn_medprep.ComBatHarmonizer`.
    random_state : int, RandomState instance or None, default=None
        Seeds the cross-validated choice of the smoothing penalty (only used
        with ``smooth_terms``). Each chunk's draws are those the table
        estimator makes at the chunk's voxels, so the fit equals
        ``ComBatHarmonizer(random_state=...)`` on the flattened voxels,
        whatever ``chunk_size`` and ``n_jobs``. A ``RandomState`` instance is
        copied, not drawn from (``ComBatHarmonizer`` draws from it).
    eb : bool, default=True
        Empirical-Bayes shrinkage, priors pooled over the voxels of each site.
    parametric : bool, default=True
        Parametric or non-parametric empirical Bayes (the non-parametric one
        costs ``O(n_voxels^2)``: for small masks only).
    mean_only : bool, default=False
        Adjust only the location of each site.
    reference_site : str, int or None, default=None
        Site whose images are kept unchanged.
    protect_target : {"auto", "classes", "linear", "none"}, default="auto"
        Protect the target ``y`` passed to ``fit`` (a diagnosis, an age), as
        in :class:`~sklearn_medprep.ComBatHarmonizer`: in ``fit`` it enters the
        design (one-hot classes or a linear slope), so that its effect on the
        voxels is not removed with the site's; ``transform`` never reads it
        and gives every image the target's term at its training centre.
        ``"none"``, or ``fit`` without ``y``, protects nothing.
    unseen_site : {"error", "estimate", "passthrough"}, default="error"
        Rows of sites absent at ``fit``, as in
        :class:`~sklearn_medprep.ComBatHarmonizer` (``"estimate"`` needs at
        least 5 rows of the new site in the batch).
    fill_outside : float or None, default=None
        Value of the voxels outside the mask in the output; None keeps the
        input's (neuroHarmonize's ``applyModelNIFTIs`` writes 0).
    dtype : {"float32", "float64"}, default="float32"
        Pixel type of the harmonized images.
    output_dir : str, pathlib.Path or None, default=None
        Write the harmonized images there as ``<row label><output_suffix>``
        (input geometry) and return their paths; None returns in-memory
        :class:`SimpleITK.Image` objects. Characters of a label other than
        letters, digits, ``.``, ``_`` and ``-`` become ``_``; two labels
        giving one file name (also one differing only in case) are refused
        naming both, as is an output file that is one of the input images,
        before anything is written. Every file is written under a temporary
        name, read back and checked, and all are renamed once all were
        written: a full disk or a failure leaves an
        :class:`~sklearn_medprep.exceptions.OutputWriteError` naming the row
        and file, and none of the call's files (see :ref:`writing-files`).
    output_suffix : {".nii.gz", ".nii", ".nrrd", ".mha"}, default=".nii.gz"
        File format of the written images (``".nii"`` skips the compression,
        faster for large cohorts).
    chunk_size : int or None, default=None
        Voxels per chunk in ``fit``; None sizes chunks to 64 MiB of float64
        over all training subjects. Peak memory is about ``n_jobs`` chunks
        plus the model.
    scratch_dir : str, pathlib.Path or None, default=None
        Folder of the scratch file (the masked training voxels, float32 when
        the images are); the system's temporary folder by default. It must be
        shared with the workers of a distributed backend (a relative folder is
        resolved against the client's working directory; a folder a worker
        cannot reach is an error naming it and the worker). Relative image
        paths and ``output_dir`` are resolved the same way. Every write to it
        is checked: a full disk is an
        :class:`~sklearn_medprep.exceptions.OutputWriteError` naming the
        scratch file and the row.
    %(n_jobs)s

    Attributes
    ----------
    mask_ : SimpleITK.Image
        The mask used (uint8), on the images' grid.
    n_voxels_ : int
        Voxels in the mask (the ComBat features).
    sites_ : ndarray of shape (n_sites,)
    site_counts_ : ndarray of shape (n_sites,)
    covariates_ : list of str
    covariate_levels_ : dict
    spline_knots_ : list of ndarray
        Knots of the smooth terms.
    coef_ : ndarray of shape (n_sites + n_design, n_voxels)
    grand_mean_, var_pooled_ : ndarray of shape (n_voxels,)
    gamma_hat_, delta_hat_, gamma_star_, delta_star_ : ndarray of shape \
(n_sites, n_voxels)
    priors_ : dict of ndarray of shape (n_sites,)
    harmonized_ : ndarray of bool of shape (n_voxels,)
        False for voxels left unchanged (constant, or not estimable).
    eb_ : bool
    target_term_ : TargetTerm or None
        The protected target (kind, class levels, training centre).
    target_columns_ : ndarray of bool of shape (n_design,)
        The target's columns of the covariate design.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    sklearn_medprep.ComBatHarmonizer : ComBat of a feature table.
    sklearn_medprep.voxel_site_effect_maps : F-maps of site before/after.

    Examples
    --------
    >>> from sklearn_medprep import VoxelComBatHarmonizer
    >>> from sklearn_medprep.datasets import make_voxel_cohort
    >>> table, truth = make_voxel_cohort(n_subjects=12, n_sites=2, random_state=0)
    >>> combat = VoxelComBatHarmonizer(covariates=["age"]).fit(table)
    >>> combat.gamma_star_.shape == (2, int(truth.brain.sum()))
    True
    >>> out = combat.transform(table)
    >>> out["image"].iloc[0].GetSize(), out.index.equals(table.index)
    ((12, 14, 10), True)
    """

    _parameter_constraints = {
        "image": [str],
        "mask": "no_validation",
        "mask_threshold": [numbers.Real],
        "site": [str, numbers.Integral],
        "covariates": [list, tuple, None],
        "eb": ["boolean"],
        "parametric": ["boolean"],
        "mean_only": ["boolean"],
        "reference_site": [str, numbers.Integral, None],
        "unseen_site": [StrOptions({"error", "estimate", "passthrough"})],
        "fill_outside": [numbers.Real, None],
        "dtype": [StrOptions({"float32", "float64"})],
        "output_dir": [str, Path, None],
        "output_suffix": [StrOptions({".nii.gz", ".nii", ".nrrd", ".mha"})],
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "scratch_dir": [str, Path, None],
        "n_jobs": [numbers.Integral, None],
        "categorical": [list, tuple, None],
        "protect_target": [StrOptions({"auto", "classes", "linear", "none"})],
        "smooth_terms": [list, tuple, None],
        "smooth_term_bounds": [tuple, None],
        "interactions": [list, tuple, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        image="image",
        mask=None,
        mask_threshold=0.0,
        site="site",
        covariates=None,
        eb=True,
        parametric=True,
        mean_only=False,
        reference_site=None,
        unseen_site="error",
        fill_outside=None,
        dtype="float32",
        output_dir=None,
        output_suffix=".nii.gz",
        chunk_size=None,
        scratch_dir=None,
        n_jobs=None,
        categorical=None,
        protect_target="auto",
        smooth_terms=None,
        smooth_term_bounds=None,
        interactions=None,
        random_state=None,
    ):
        self.image = image
        self.mask = mask
        self.mask_threshold = mask_threshold
        self.site = site
        self.covariates = covariates
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only
        self.reference_site = reference_site
        self.unseen_site = unseen_site
        self.fill_outside = fill_outside
        self.dtype = dtype
        self.output_dir = output_dir
        self.output_suffix = output_suffix
        self.chunk_size = chunk_size
        self.scratch_dir = scratch_dir
        self.n_jobs = n_jobs
        self.categorical = categorical
        self.protect_target = protect_target
        self.smooth_terms = smooth_terms
        self.smooth_term_bounds = smooth_term_bounds
        self.interactions = interactions
        self.random_state = random_state

    # ------------------------------------------------------------------ input
    def _read_batch(self, X, y, sites, covariates, *, reset):
        """Read step: the rows' sites and covariates (a Batch without features).

        The images are read later, chunk by chunk (``fit``) or a few at a
        time (``transform``); ``feats`` and ``get`` are None.
        """
        table = check_subject_table(X, columns=[self.image], estimator=self)
        if reset:
            check_fit_rows(
                table, estimator=self, min_rows=2,
                why="ComBat needs the rows of at least 2 sites",
            )
        validate_data(self, table, skip_check_array=True, reset=reset)
        index = table.index
        n = table.shape[0]
        if sites is None and self.site not in table.columns:
            raise SubjectTableError(
                f"{type(self).__name__} needs the site of each row: X has no column "
                f"{self.site!r} and no sites= were passed.",
                column=self.site,
            )
        from_table = []
        site_values = inputs._read_sites(table, sites, self.site, n, index, from_table)
        cov = inputs._read_covariates(
            table, covariates, self.covariates, n, index, from_table, self.categorical
        )
        return inputs.Batch(
            table, None, None, site_values, cov, from_table, None, y=y
        )

    def __setstate__(self, state):
        # fitted before the shared fit steps: no smooth term, no spline knots
        if "sites_" in state:
            state.setdefault("spline_knots_", [])
        # pickled before smooth terms and interactions were parameters
        for name in ("smooth_terms", "smooth_term_bounds", "interactions"):
            state.setdefault(name, None)
        state.setdefault("random_state", None)
        super().__setstate__(state)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, sites=None, covariates=None):
        """Learn the voxel-wise site parameters from the training images.

        Parameters
        ----------
        X : pandas.DataFrame
            Subject table with the image column (and site/covariate columns).
        y : array-like of shape (n_samples,), default=None
            Training target, protected in the design (``protect_target``); a
            covariate equal to it up to relabelling is refused, and so is a
            pass-through column that is ``y`` in disguise
            (:func:`~sklearn_medprep.table.check_target_proxies`).
        sites : array-like of shape (n_samples,), default=None
            Site of each row (metadata routing).
        covariates : pandas.DataFrame, default=None
            Covariates of each row (metadata routing).

        Returns
        -------
        self : VoxelComBatHarmonizer
        """
        batch = self._read_batch(X, y, sites, covariates, reset=True)
        if batch.y is not None:  # as ComBatHarmonizer
            target.check_target_not_covariate(batch.cov, batch.y)
            # the pass-through columns: all but the image and the site and
            # covariates it reads (a covariate equal to y is refused above)
            consumed = {self.image, *batch.from_table}
            check_target_proxies(
                batch.table,
                batch.y,
                columns=[c for c in batch.table.columns if c not in consumed],
                estimator=type(self).__name__,
            )
        # ComBat's fit steps (ComBatFitSteps), the site effects chunk by chunk
        coding = self._fit_sites(batch)
        # the design (spline knots); the GAM coefficients are fitted per chunk
        batch, _ = self._build_design(batch.replace(feats=range(0)), coding)
        mask = learn_mask(self, batch.table)
        flat_index = np.flatnonzero(mask.array.reshape(-1))
        if flat_index.size == 0:
            raise ValueError("the mask is empty: no voxel to harmonize")
        p = flat_index.size
        stats = chunked_site_effects(self, batch, coding, mask.grid, flat_index)
        model = self._shrink(stats, eb=bool(self.eb) and p > 1)
        if not model.ok.all():
            warnings.warn(
                f"{int((~model.ok).sum())} of {p} voxel(s) are constant or "
                "cannot be estimated at every site and are left unharmonized",
                MedprepWarning,
                stacklevel=3,
            )
        empty = model.empty & model.ok
        if empty.any():
            per_site = {
                plain(self.sites_[i]): int(n)
                for i, n in enumerate(empty.sum(axis=1))
                if n
            }
            warnings.warn(
                f"{int(empty.any(axis=0).sum())} of {p} voxel(s) have no finite "
                f"value in the images of a site (voxels per site: {per_site}): "
                "each is harmonized at the other sites from their images alone, "
                "stays NaN at that site as it came in, and a new image of that "
                "site gets its value back unharmonized",
                MedprepWarning,
                stacklevel=3,
            )
        mask_image = sitk.GetImageFromArray(mask.array.astype(np.uint8))
        mask_image.CopyInformation(mask.template)
        self.mask_ = mask_image
        self.n_voxels_ = int(p)
        self.coef_ = model.coef
        self.grand_mean_ = model.grand_mean
        self.var_pooled_ = model.var_pooled
        self.gamma_hat_ = model.gamma_hat
        self.delta_hat_ = model.delta_hat
        self.gamma_star_ = model.gamma_star
        self.delta_star_ = model.delta_star
        self.priors_ = model.priors
        self.harmonized_ = model.ok
        return self

    # -------------------------------------------------------------- transform
    def _params(self):
        return {
            # zero where not estimated (voxels left unharmonized: identity)
            "coef_cov": np.nan_to_num(
                self.coef_[self.sites_.size :], nan=0.0, posinf=0.0, neginf=0.0
            ),
            "grand_mean": self.grand_mean_,
            "var_pooled": self.var_pooled_,
            "gamma_star": self.gamma_star_,
            "delta_star": self.delta_star_,
            "ok": self.harmonized_,
        }

    def _new_sites(self, table, site_values, design_cov, grid, flat_index):
        """Rows' sites; the ``unseen_site`` policy; new sites estimated."""
        index = table.index
        cells = absolute_cells(table[self.image])

        def estimate(rows):
            scratch = vs.scratch_folder(absolute_folder(self.scratch_dir))
            try:
                store = vs.VoxelStore(
                    scratch,
                    rows.size,
                    flat_index.size,
                    max(1, vs.CHUNK_BYTES // (8 * rows.size)),
                    "float64",
                )
                vs.fill_rows(
                    store,
                    0,
                    [cells[i] for i in rows],
                    [index[i] for i in rows],
                    self.image,
                    grid,
                    flat_index,
                )
                return estimate_new_site(
                    store.getter(),
                    flat_index.size,
                    design_cov[rows],
                    self._params(),
                    eb=self.eb_,
                    parametric=self.parametric,
                    mean_only=self.mean_only,
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

        return resolve_unseen(
            BatchSites.encode(self.sites_, site_values),
            self.unseen_site,
            site_values,
            index,
            self.site,
            self.sites_,
            estimate,
            protected=self.target_term_ is not None,
        )

    def transform(self, X, *, sites=None, covariates=None):
        """Harmonize the images of ``X`` with the fitted voxel-wise parameters.

        Each image is harmonized with its own site's parameters (except under
        ``unseen_site="estimate"`` for rows of new sites), a few images at a
        time. NaN voxels stay NaN.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows to harmonize, with the columns seen in ``fit``.
        sites : array-like of shape (n_samples,), default=None
            Site of each row (metadata routing).
        covariates : pandas.DataFrame, default=None
            Covariates of each row (metadata routing).

        Returns
        -------
        X_out : pandas.DataFrame
            A copy of ``X`` (same index, columns and order) whose image column
            holds the harmonized images (:class:`SimpleITK.Image` objects, or
            paths of files written to ``output_dir``).
        """
        check_is_fitted(self)
        batch = self._read_batch(X, None, sites, covariates, reset=False)
        table, site_values = batch.table, batch.site_values
        design_cov = self._transform_design(batch)
        grid = vs.grid_of(self.mask_)
        flat_index = np.flatnonzero(sitk.GetArrayViewFromImage(self.mask_).reshape(-1))
        batch_sites = self._new_sites(table, site_values, design_cov, grid, flat_index)
        cells = absolute_cells(table[self.image])  # workers' cwd differ
        files = None
        if self.output_dir is not None:
            files = output_files(absolute_folder(self.output_dir), table.index,
                                 cells, self.output_suffix)
        on_output = {"output_dir": absolute_folder(self.output_dir)}
        rows = table.index.tolist()
        n_grid = int(np.prod(grid[0]))
        batches = vs.voxel_batches(len(cells), n_grid)
        model = VoxelModel(self._params(), self._ref_level)
        layout = ImageLayout(
            self.image, grid, flat_index, self.fill_outside, np.dtype(self.dtype)
        )
        tag = uuid.uuid4().hex[:8]
        try:
            parts = Parallel(n_jobs=self.n_jobs)(
                delayed(on_worker)(
                    harmonize_rows,
                    on_output,
                    [cells[i] for i in b],
                    [rows[i] for i in b],
                    batch_sites.rows_slice(b.start, b.stop),
                    design_cov[b.start : b.stop],
                    model,
                    layout,
                    None if files is None else files[b.start : b.stop],
                    tag,
                )
                for b in batches
            )
            images = [image for part in parts for image in part]
            if files is not None:
                # every file was written and checked: now all renamed
                images = commit_all(images)
        except BaseException:
            if files is not None:
                # the batches that succeeded before one failed (their staged
                # files never came back from the workers)
                discard_tagged(files, tag, self.output_suffix)
            raise
        out = table.copy()
        out[self.image] = pd.Series(images, index=table.index, dtype=object)
        return out

    def fit_transform(self, X, y=None, *, sites=None, covariates=None):
        """Fit to ``X`` then harmonize it (the same as ``fit(X).transform(X)``).

        Parameters
        ----------
        X : pandas.DataFrame
            Training subject table.
        y : array-like of shape (n_samples,), default=None
            Training target, protected in ``fit``.
        sites : array-like, default=None
            Site of each row (metadata routing).
        covariates : pandas.DataFrame, default=None
            Covariates of each row (metadata routing).

        Returns
        -------
        X_out : pandas.DataFrame
            Harmonized training rows.
        """
        return self.fit(X, y, sites=sites, covariates=covariates).transform(
            X, sites=sites, covariates=covariates
        )

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: the input columns, unchanged.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against ``feature_names_in_``.

        Returns
        -------
        feature_names_out : ndarray of str
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(
            tags.input_tags, image=True, allow_nan=True, string=True, categorical=True
        )
        tags.requires_fit = True
        return tags
