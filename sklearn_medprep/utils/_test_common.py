"""Central tables for the common estimator tests (imbalanced-learn/nilearn style).

``TEST_CASES`` is the one table of small test instances: per public estimator,
its constructor arguments and the small table it is tested on. It feeds
scikit-learn's :func:`~sklearn.utils.estimator_checks.parametrize_with_checks`
(tests/test_common.py), the library's own subject-table checks
(tests/utils/test_estimator_checks.py) and the "``__init__`` stores its arguments
unchanged" test.
``EXPECTED_FAILED_CHECKS`` is the one table of checks that an estimator is
known to fail: scikit-learn checks, each with the reason and the domain check
(in ``sklearn_medprep.utils.estimator_checks`` or the estimator's own tests)
that replaces it, and the library's own ``check_subject_table_*`` checks not
passed yet, each with the reason and the fix (strict expected failures in
tests/utils/test_estimator_checks.py).

Each estimator module's author adds the entries for that estimator here, and only
here.
"""

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "TEST_CASES",
    "expected_failed_checks",
    "init_params",
    "make_test_case",
]

# Reasons shared by the image estimators: scikit-learn's checks feed anonymous
# numeric arrays, while these read named image columns of a subject table.
_IMAGE_TABLE = (
    "reads named image columns of a subject table, not a numeric array; replaced "
    "by check_subject_table_* in sklearn_medprep.utils.estimator_checks"
)


def _cohort(n_sites=2, shape=(14, 16, 12), n_subjects=8):
    from ..datasets import make_multisite_cohort

    return make_multisite_cohort(n_subjects, n_sites, shape=shape, random_state=0)


def _features():
    from ..datasets import make_multisite_features

    return make_multisite_features(40, 6, 3, random_state=0)


def _longitudinal_features():
    # two visits per subject (rows sorted by site: one subject travels)
    table = _features()
    return table.assign(subject=[f"p{i // 2:02d}" for i in range(len(table))])


def _one_site_cohort():
    return _cohort(n_sites=1)


def _lesion_cohort():
    return _cohort(shape=(24, 26, 22))  # lesions of a few dozen voxels


def _small_settings():
    return {
        "setting": {"binCount": 16},
        "imageType": {"Original": {}},
        "featureClass": {"firstorder": [], "glcm": ["Contrast", "Correlation"]},
    }


def _radiomics():
    from ..radiomics import _extractor as _radiomics

    return _radiomics


def _voxel_cohort():
    from ..datasets import make_voxel_cohort

    table, _ = make_voxel_cohort(12, 2, shape=(7, 8, 9), random_state=0)
    return table.assign(y=(table["age"] > table["age"].median()).astype(int))


def _patch_module(n_out, head=False):
    import torch

    if head:
        return torch.nn.Sequential(
            torch.nn.Conv3d(1, n_out, 3), torch.nn.AdaptiveAvgPool3d(1),
            torch.nn.Flatten(),
        )
    return torch.nn.Conv3d(1, n_out, 3, padding=1)


def _tio():
    import torchio

    return torchio


# "EstimatorName": (constructor arguments, table it is tested on), both
# functions: TorchIO objects (and torch) are built only when a test asks, and
# every call returns fresh objects. Give at least one non-default argument, so
# that test_init_stores_params_unchanged checks something.
TEST_CASES = {
    "ComBatHarmonizer": (
        lambda: dict(site="site", covariates=["age", "sex"]),
        _features,
    ),
    "ImageTensorizer": (lambda: dict(image="image", dtype="float64"),
                        _one_site_cohort),
    "RadiomicsExtractor": (lambda: dict(settings=_small_settings()), _lesion_cohort),
    "RobustFeatureSelector": (
        lambda: dict(
            extractor=_radiomics().RadiomicsExtractor(settings=_small_settings()),
            n_perturbations=1,
            random_state=0,
        ),
        # 10 subjects: an ICC from fewer is warned of (MIN_ICC_SUBJECTS)
        lambda: _cohort(shape=(32, 34, 30), n_subjects=10),
    ),
    "CorrelationSelector": (
        lambda: dict(threshold=0.5, method="spearman"),
        # numeric features only (site and sex are labels)
        lambda: _features().drop(columns=["site", "sex"]),
    ),
    "CovBatHarmonizer": (
        lambda: dict(site="site", covariates=["age", "sex"], n_components=2),
        _features,
    ),
    "QuantileComBatHarmonizer": (
        lambda: dict(site="site", covariates=["age", "sex"]),
        _features,
    ),
    "LongitudinalComBatHarmonizer": (
        lambda: dict(covariates=["age", "sex"]),
        _longitudinal_features,
    ),
    "VoxelComBatHarmonizer": (
        lambda: dict(site="site", covariates=["age"], chunk_size=97),
        _voxel_cohort,
    ),
    "PatchNeuralNetClassifier": (
        lambda: dict(
            module=_patch_module(2, head=True), patch_size=6, samples_per_volume=2,
            queue_length=8, max_epochs=1, train_split=None, verbose=0,
            random_state=0,
        ),
        lambda: _cohort(shape=(10, 11, 12)),
    ),
    "PatchNeuralNetSegmenter": (
        lambda: dict(
            module=_patch_module(3), patch_size=6, patch_overlap=2,
            samples_per_volume=2, queue_length=8, max_epochs=1, train_split=None,
            verbose=0, random_state=0,
        ),
        lambda: _cohort(shape=(10, 11, 12)),
    ),
    "TorchIOAugmenter": (
        lambda: dict(
            transforms=_tio().Compose(
                [_tio().RandomFlip(axes=(0,)), _tio().RandomNoise(std=0.1)]
            ),
            random_state=0,
        ),
        _cohort,
    ),
    "TorchIOAugmentSampler": (
        lambda: dict(
            transforms=_tio().Compose(
                [_tio().RandomFlip(axes=(0,)), _tio().RandomNoise(std=0.1)]
            ),
            n_augmentations=2,
            random_state=0,
        ),
        _cohort,
    ),
    "TorchIOPreprocessor": (
        lambda: dict(
            transforms=_tio().Compose(
                [
                    _tio().ToCanonical(),
                    _tio().Resample(2.0),
                    _tio().HistogramStandardization({}),
                ]
            )
        ),
        _cohort,
    ),
}


def init_params(name):
    """Return fresh constructor arguments of the test instance of ``name``.

    Parameters
    ----------
    name : str
        Estimator class name (a key of ``TEST_CASES``).

    Returns
    -------
    dict
    """
    return TEST_CASES[name][0]()


def make_test_case(name):
    """Return ``(estimator, table)``: the test instance of ``name`` and its data.

    Parameters
    ----------
    name : str
        Estimator class name (a key of ``TEST_CASES``).

    Returns
    -------
    estimator : BaseEstimator
    table : pandas.DataFrame
        A small subject table (with a ``y`` column) the estimator accepts.
    """
    from .discovery import all_estimators

    params, data = TEST_CASES[name]
    return dict(all_estimators())[name](**params()), data()


# ComBatHarmonizer refuses to harmonize rows whose site it does not know, and
# scikit-learn's checks fit plain arrays with no site column and no routed sites=.
_COMBAT_NO_SITE = (
    "sklearn's check fits a plain array without sites; ComBatHarmonizer refuses to "
    "harmonize without the site of each row (DataFrame site column or routed "
    "sites=); replaced on a multi-site table by tests/harmonization/test_combat.py::"
)
_COMBAT_CONTRACT = _COMBAT_NO_SITE + "test_sklearn_contract_on_tables"
_COMBAT_CHECKS = {
    name: _COMBAT_CONTRACT
    for name in [
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ]
}
_COMBAT_CHECKS.update(
    check_methods_subset_invariance=_COMBAT_NO_SITE
    + "test_transform_subsets_and_single_rows",
    check_fit2d_1sample=_COMBAT_NO_SITE + "test_guard_site_with_one_subject",
    check_fit2d_1feature=_COMBAT_NO_SITE + "test_single_feature_bypasses_eb",
)

# RadiomicsExtractor (sklearn_medprep/_radiomics.py): it reads image and mask
# columns of a subject table; scikit-learn's checks pass numeric arrays.
_RADIOMICS_TABLE = (
    _IMAGE_TABLE + "; RadiomicsExtractor's own contract tests are "
    "tests/radiomics/test_radiomics.py::test_output_matches_pyradiomics_index_order_and_"
    "passthrough and tests/radiomics/test_radiomics_fidelity.py"
)
_RADIOMICS_CHECKS = {check: _RADIOMICS_TABLE for check in (
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_estimators_pickle(readonly_memmap=True)",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_general(readonly_memmap=True)",
)}
_RADIOMICS_CHECKS.update({
    "check_estimators_pickle": _RADIOMICS_TABLE + "; persistence: tests/"
    "test_radiomics_cache_parallel.py::test_pipeline_survives_joblib_dump_load_in_"
    "new_process",
    "check_methods_sample_order_invariance": _RADIOMICS_TABLE + "; row order: "
    "test_output_matches_pyradiomics_index_order_and_passthrough (reversed rows)",
    "check_methods_subset_invariance": _RADIOMICS_TABLE + "; rows are extracted "
    "independently: test_n_jobs_gives_identical_results_and_errors",
})

# VoxelComBatHarmonizer (sklearn_medprep/_voxel_combat.py): it reads an image
# column (and the site) of a subject table; scikit-learn's checks pass arrays.
_VOXEL_TABLE = (
    _IMAGE_TABLE + "; VoxelComBatHarmonizer's own contract tests are in "
    "tests/harmonization/test_voxel_combat.py: "
    "test_output_dir_writes_images_with_input_geometry "
    "(index, columns, pass-through), test_persistence_and_model_size (pickling), "
    "test_n_jobs_and_chunks_do_not_change_the_model, test_chunked_fit_equals_"
    "feature_table_combat"
)
_VOXEL_CHECKS = {
    check: _VOXEL_TABLE
    for check in [
        *_RADIOMICS_CHECKS,
        "check_estimators_nan_inf",
        "check_transformer_preserve_dtypes",
    ]
}

# TorchIO estimators: every data check feeds an anonymous numeric array, where
# they read image cells (paths or in-memory images) of named columns.
_TORCHIO_DOMAIN = {
    "check_estimators_pickle": "check_subject_table_pickle",
    "check_methods_sample_order_invariance": "check_subject_table_row_alignment",
    "check_methods_subset_invariance": "check_subject_table_row_alignment",
    "check_transformer_general": "check_subject_table_index_preserved",
    "check_transformer_data_not_an_array": "check_subject_table_index_preserved",
    "check_fit_idempotent": "check_subject_table_index_preserved",
    "check_pipeline_consistency": "check_subject_table_index_preserved",
    "check_estimators_overwrite_params": "check_subject_table_clone",
    "check_dont_overwrite_parameters": "check_subject_table_clone",
    "check_dict_unchanged": "check_subject_table_clone",
    "check_fit_check_is_fitted": "check_subject_table_clone",
    "check_estimators_fit_returns_self": "check_subject_table_clone",
    "check_readonly_memmap_input": "check_subject_table_n_jobs_invariance",
}
_TORCHIO_TABLE_ONLY = [
    "check_complex_data",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_nan_inf",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_score_takes_y",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
]


def _torchio_checks(own_tests):
    table = {
        name: f"{_IMAGE_TABLE} ({domain}; and {own_tests})"
        for name, domain in _TORCHIO_DOMAIN.items()
    }
    table.update(
        {name: f"{_IMAGE_TABLE} (and {own_tests})" for name in _TORCHIO_TABLE_ONLY}
    )
    return table


# TorchIOAugmentSampler (sklearn_medprep/images/_augment_sampler.py): a sampler
# of subject tables (fit_resample only, no transform/predict for the library's
# checks to compare): every data check feeds a numeric array where it reads image
# columns; its own tests check the sampler contract on tables.
_SAMPLER_TESTS = "tests/images/test_augment_sampler.py"
_SAMPLER_DOMAIN = {
    "check_estimators_pickle": "test_pickle_input_and_params_unchanged",
    "check_estimators_pickle(readonly_memmap=True)": "test_pickle_input_and_params_"
    "unchanged",
    "check_estimators_overwrite_params": "test_pickle_input_and_params_unchanged",
    "check_dont_overwrite_parameters": "test_pickle_input_and_params_unchanged",
    "check_dict_unchanged": "test_pickle_input_and_params_unchanged",
    "check_fit_idempotent": "test_seeded_reproducible_and_caller_rng_untouched",
    "check_fit_check_is_fitted": "test_the_sampler_role_only",
    "check_estimators_fit_returns_self": "test_the_sampler_role_only",
    "check_n_features_in_after_fitting": "test_the_sampler_role_only",
    "check_pipeline_consistency": "test_imblearn_pipeline_enlarges_the_training_"
    "fold_only, test_grid_search_over_site_folds_and_clone",
    "check_methods_sample_order_invariance": "test_same_rows_as_the_deprecated_"
    "as_sampler (row k of every copy is drawn from its own seed)",
    "check_methods_subset_invariance": "test_same_rows_as_the_deprecated_as_sampler",
    "check_readonly_memmap_input": "test_pickle_input_and_params_unchanged",
    "check_estimators_empty_data_messages": "test_clear_errors",
}
_SAMPLER_CHECKS = {
    name: f"{_IMAGE_TABLE} ({_SAMPLER_TESTS}::{_SAMPLER_DOMAIN[name]})"
    if name in _SAMPLER_DOMAIN
    else f"{_IMAGE_TABLE} (and {_SAMPLER_TESTS})"
    for name in [
        *_SAMPLER_DOMAIN,
        *_TORCHIO_TABLE_ONLY,
    ]
}

# RobustFeatureSelector (sklearn_medprep/_robust.py): it extracts radiomic
# features of image and mask columns (through RadiomicsExtractor), perturbed.
_ROBUST_TABLE = (
    _IMAGE_TABLE + "; RobustFeatureSelector's own contract tests are "
    "tests/radiomics/test_robust.py::test_drops_fine_bin_texture_keeps_stable_features "
    "(output rows, index, names), ::test_cross_validate_fits_on_training_rows_only "
    "and ::test_reproducible_and_caller_rng_untouched"
)
_ROBUST_CHECKS = {check: _ROBUST_TABLE for check in _RADIOMICS_CHECKS}

# Patch-based skorch nets (sklearn_medprep/_patch_net.py): they read image
# columns of a subject table (sklearn's checks pass numeric arrays), and they are
# skorch nets, which set history_/initialized_/virtual_params_ in __init__ and
# refuse to set a torch module outside initialize().
_PATCH_TESTS = "tests/nets/test_patches.py"
_PATCH_DOMAIN = {
    "check_estimators_pickle": "test_pipeline_grid_search_site_folds_and_joblib_"
    "in_a_new_process, test_clone_get_params_and_pickle_keep_the_augmentation",
    "check_estimators_pickle(readonly_memmap=True)": "test_clone_get_params_and_"
    "pickle_keep_the_augmentation",
    "check_methods_sample_order_invariance": "test_predictions_do_not_depend_on_"
    "the_other_rows",
    "check_methods_subset_invariance": "test_predictions_do_not_depend_on_the_"
    "other_rows",
    "check_fit_idempotent": "test_same_random_state_same_net_and_caller_rng_"
    "untouched (refit replays the same draws)",
    "check_estimators_overwrite_params": "test_same_random_state_same_net_and_"
    "caller_rng_untouched (augmentation left unmodified)",
    "check_dont_overwrite_parameters": "check_subject_table_clone",
    "check_dict_unchanged": "check_subject_table_does_not_modify_input",
    "check_estimators_fit_returns_self": "check_subject_table_clone",
    "check_fit_check_is_fitted": "check_subject_table_clone",
    "check_pipeline_consistency": "test_pipeline_grid_search_site_folds_and_joblib_"
    "in_a_new_process",
    "check_readonly_memmap_input": "check_subject_table_index_preserved",
    "check_n_features_in_after_fitting": "test_clear_errors_for_bad_inputs "
    "(columns seen in fit)",
    "check_estimators_empty_data_messages": "test_clear_errors_for_bad_inputs",
    "check_fit_score_takes_y": "test_pipeline_grid_search_site_folds_and_joblib_"
    "in_a_new_process (GridSearchCV scores)",
}
_PATCH_TABLE_ONLY = [
    "check_complex_data",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_nan_inf",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_n_features_in",
    "check_positive_only_tag_during_fit",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifiers_one_label_sample_weights",
    "check_classifiers_train",
    "check_classifiers_train(readonly_memmap=True)",
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)",
    "check_estimators_partial_fit_n_features",
    "check_supervised_y_2d",
]
_SKORCH_INIT = (
    "skorch's NeuralNet sets history_, initialized_ and virtual_params_ in "
    "__init__ and refuses to set a torch module outside initialize(); clone, "
    "get_params and set_params are tested by " + _PATCH_TESTS
    + "::test_clone_get_params_and_pickle_keep_the_augmentation"
)


def _patch_checks(estimator):
    table = {
        name: f"{_IMAGE_TABLE} ({_PATCH_TESTS}::{domain})"
        for name, domain in _PATCH_DOMAIN.items()
    }
    table.update(
        {
            name: f"{_IMAGE_TABLE} (training and prediction on tables: "
            f"{_PATCH_TESTS})"
            for name in _PATCH_TABLE_ONLY
        }
    )
    table["check_no_attributes_set_in_init"] = _SKORCH_INIT
    table["check_set_params"] = _SKORCH_INIT
    if estimator == "PatchNeuralNetSegmenter":  # no classifier checks run
        return {
            k: v
            for k, v in table.items()
            if "classifier" not in k
            and k
            not in ("check_estimators_partial_fit_n_features", "check_supervised_y_2d")
        }
    # the classifier validates y first: complex or sparse X fail as sklearn wants
    del table["check_complex_data"], table["check_estimator_sparse_tag"]
    return table


# LongitudinalComBatHarmonizer (harmonization/_longitudinal.py): it reads the
# subject and site columns of a DataFrame (a plain array is refused by name);
# scikit-learn's checks pass anonymous arrays. Every check_subject_table_* check
# passes on its test table (two visits per subject).
_LONG_TESTS = "tests/harmonization/test_longitudinal.py"
_LONG_TABLE = (
    "sklearn's check passes a plain array; LongitudinalComBatHarmonizer reads "
    "the subject and site columns of a DataFrame and refuses an array by name"
)
_LONG_DOMAIN = {
    "check_estimators_pickle": "check_subject_table_pickle",
    "check_estimators_pickle(readonly_memmap=True)": "check_subject_table_pickle",
    "check_methods_sample_order_invariance": "check_subject_table_row_alignment",
    "check_methods_subset_invariance": "check_subject_table_one_row_transform",
    "check_transformer_general": "check_subject_table_index_preserved and "
    f"{_LONG_TESTS}::test_new_visits_known_and_unknown_subjects",
    "check_transformer_general(readonly_memmap=True)": "check_subject_table_"
    "index_preserved",
    "check_transformer_data_not_an_array": "check_subject_table_index_preserved",
    "check_fit_idempotent": f"{_LONG_TESTS}::test_new_visits_known_and_unknown_"
    "subjects (transform equals fit_transform)",
    "check_pipeline_consistency": f"{_LONG_TESTS}::test_in_a_pipeline_with_"
    "subject_group_folds",
    "check_estimators_overwrite_params": "check_subject_table_clone",
    "check_dont_overwrite_parameters": "check_subject_table_clone",
    "check_dict_unchanged": "check_subject_table_does_not_modify_input",
    "check_fit_check_is_fitted": "check_subject_table_clone",
    "check_estimators_fit_returns_self": "check_subject_table_clone",
    "check_readonly_memmap_input": "check_subject_table_pickle",
    "check_estimators_empty_data_messages": "check_subject_table_empty_fit",
    "check_fit2d_1sample": "check_subject_table_one_row_fit",
    "check_estimators_nan_inf": f"{_LONG_TESTS}::test_clear_errors (NaN cell "
    "named by row and column)",
}
_LONG_CHECKS = {
    name: f"{_LONG_TABLE} (replaced by {domain})"
    for name, domain in _LONG_DOMAIN.items()
}
_LONG_CHECKS.update({
    name: f"{_LONG_TABLE} (tables: {_LONG_TESTS})"
    for name in [
        "check_fit_score_takes_y",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_complex_data",
        "check_dtype_object",
        "check_estimator_sparse_tag",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_f_contiguous_array_estimator",
        "check_transformer_preserve_dtypes",
        "check_fit2d_1feature",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ]
})

# The library's own checks (check_subject_table_* in
# sklearn_medprep.utils.estimator_checks: empty and one-row tables, row alignment,
# pickling...) that an estimator does not pass yet, {"Name": {"check": "reason"}}.
# Every public estimator passes them all today. They are strict expected failures
# in tests/utils/test_estimator_checks.py: once fixed, the test fails (XPASS)
# until the entry is removed here.
_OWN_CHECKS = {}

EXPECTED_FAILED_CHECKS = {
    # "EstimatorName": {"check_name": "reason (and the domain check replacing it)"},
    "ComBatHarmonizer": _COMBAT_CHECKS,
    # the same input contract as its parent ComBatHarmonizer (site required);
    # it refuses NaN cells (allow_nan=False), named by row and column
    "CovBatHarmonizer": {
        **_COMBAT_CHECKS,
        "check_estimators_nan_inf": (
            "sklearn's check fits a plain array without sites, which "
            "CovBatHarmonizer refuses first; its NaN refusal (row and column "
            "named) is tested on a multi-site table by tests/harmonization/"
            "test_combat_faults.py::test_refused_by_name"
        ),
    },
    # the same input contract as its parent ComBatHarmonizer (site required),
    # its table contract redone with site-constant features in its own tests
    "QuantileComBatHarmonizer": {
        name: reason.replace(
            "test_combat.py::test_sklearn_contract_on_tables",
            "test_quantile_combat.py::test_sklearn_contract_on_tables",
        ).replace(
            "test_combat.py::test_transform_subsets_and_single_rows",
            "test_quantile_combat.py::test_transform_subsets_and_single_rows",
        )
        for name, reason in _COMBAT_CHECKS.items()
    },
    "TorchIOPreprocessor": _torchio_checks(
        "tests/images/test_torchio_preprocessor.py"
    ),
    "TorchIOAugmenter": _torchio_checks("tests/images/test_augmenter.py"),
    "TorchIOAugmentSampler": _SAMPLER_CHECKS,
    "ImageTensorizer": _torchio_checks("tests/nets/test_tensorizer_skorch.py"),
    "RadiomicsExtractor": _RADIOMICS_CHECKS,
    "RobustFeatureSelector": _ROBUST_CHECKS,
    "PatchNeuralNetClassifier": _patch_checks("PatchNeuralNetClassifier"),
    "PatchNeuralNetSegmenter": _patch_checks("PatchNeuralNetSegmenter"),
    "VoxelComBatHarmonizer": _VOXEL_CHECKS,
    "LongitudinalComBatHarmonizer": _LONG_CHECKS,
}
# the library's own checks, in the same table (names check_subject_table_*)
EXPECTED_FAILED_CHECKS = {
    name: {**table, **_OWN_CHECKS.get(name, {})}
    for name, table in EXPECTED_FAILED_CHECKS.items()
}


def expected_failed_checks(estimator):
    """Return the expected failures of ``estimator`` for ``parametrize_with_checks``.

    The library's own ``check_subject_table_*`` entries are left out (they are
    not scikit-learn checks).

    Parameters
    ----------
    estimator : BaseEstimator
        Instance under test.

    Returns
    -------
    dict
        ``{check_name: reason}``.
    """
    return {
        check: reason
        for check, reason in EXPECTED_FAILED_CHECKS.get(
            type(estimator).__name__, {}
        ).items()
        if not check.startswith("check_subject_table_")
    }
