"""Central table for the common estimator tests (imbalanced-learn/nilearn style).

``INIT_PARAMS`` gives small constructor arguments per estimator for
:func:`sklearn.utils.estimator_checks.parametrize_with_checks`.
``EXPECTED_FAILED_CHECKS`` is the one table of scikit-learn checks that an
estimator is known to fail, each with the reason and the domain check (in
``sklearn_medprep.utils.estimator_checks`` or the estimator's own tests) that
replaces it.

Each estimator module's author adds the entries for that estimator here, and only
here.
"""

__all__ = ["INIT_PARAMS", "EXPECTED_FAILED_CHECKS", "expected_failed_checks"]

# Reasons shared by the image estimators: scikit-learn's checks feed anonymous
# numeric arrays, while these read named image columns of a subject table.
_IMAGE_TABLE = (
    "reads named image columns of a subject table, not a numeric array; replaced "
    "by check_subject_table_* in sklearn_medprep.utils.estimator_checks"
)

def _tio():
    import torchio

    return torchio


def _torch():
    import torch

    return torch


INIT_PARAMS = {
    # "EstimatorName": dict(param=value, ...),
    # TorchIO estimators (sklearn_medprep/_torchio.py, _augment.py, _tensor.py)
    "TorchIOPreprocessor": dict(transforms=_tio().ToCanonical()),
    "TorchIOAugmenter": dict(transforms=_tio().RandomFlip(), random_state=0),
    # patch-based skorch nets (sklearn_medprep/_patch_net.py)
    "PatchNeuralNetClassifier": dict(
        module=_torch().nn.Sequential(
            _torch().nn.Conv3d(1, 2, 1),
            _torch().nn.Flatten(),
            _torch().nn.LazyLinear(2),
        ),
        patch_size=2,
        max_epochs=1,
        verbose=0,
        random_state=0,
    ),
    "PatchNeuralNetSegmenter": dict(
        module=_torch().nn.Conv3d(1, 2, 1),
        patch_size=2,
        max_epochs=1,
        verbose=0,
        random_state=0,
    ),
}

# ComBatHarmonizer refuses to harmonize rows whose site it does not know, and
# scikit-learn's checks fit plain arrays with no site column and no routed sites=.
_COMBAT_NO_SITE = (
    "sklearn's check fits a plain array without sites; ComBatHarmonizer refuses to "
    "harmonize without the site of each row (DataFrame site column or routed "
    "sites=); replaced on a multi-site table by tests/test_combat.py::"
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
    "tests/test_radiomics.py::test_output_matches_pyradiomics_index_order_and_"
    "passthrough and tests/test_radiomics_fidelity.py"
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


# Patch-based skorch nets (sklearn_medprep/_patch_net.py): they read image
# columns of a subject table (sklearn's checks pass numeric arrays), and they are
# skorch nets, which set history_/initialized_/virtual_params_ in __init__ and
# refuse to set a torch module outside initialize().
_PATCH_TESTS = "tests/test_patches.py"
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


EXPECTED_FAILED_CHECKS = {
    # "EstimatorName": {"check_name": "reason (and the domain check replacing it)"},
    "ComBatHarmonizer": _COMBAT_CHECKS,
    "TorchIOPreprocessor": _torchio_checks("tests/test_torchio_preprocessor.py"),
    "TorchIOAugmenter": _torchio_checks("tests/test_augmenter.py"),
    "ImageTensorizer": _torchio_checks("tests/test_tensorizer_skorch.py"),
    "RadiomicsExtractor": _RADIOMICS_CHECKS,
    "PatchNeuralNetClassifier": _patch_checks("PatchNeuralNetClassifier"),
    "PatchNeuralNetSegmenter": _patch_checks("PatchNeuralNetSegmenter"),
}


def expected_failed_checks(estimator):
    """Return the expected failures of ``estimator`` for ``parametrize_with_checks``.

    Parameters
    ----------
    estimator : BaseEstimator
        Instance under test.

    Returns
    -------
    dict
        ``{check_name: reason}``.
    """
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
