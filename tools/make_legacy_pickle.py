"""Write the pickle of fitted 0.1.0 estimators that tests/test_legacy.py loads.

Run once per release with that release's code, *before* a change of module paths,
on each supported stack (a pandas pickle loads only under the pandas major version
that wrote it):

    .venv/bin/python tools/make_legacy_pickle.py tests/data/fitted_0.1.0_pandas3.pkl
    .venv-numpy1/bin/python tools/make_legacy_pickle.py \
        tests/data/fitted_0.1.0_pandas2.pkl

Each estimator is fitted on small seeded synthetic data; the pickle also holds
the inputs and the outputs the estimators gave then, so that the test checks
that the loaded estimators still *compute* the same thing, not only that the
pickle loads. The pickle holds the estimators' module paths of the release that
wrote it (``sklearn_medprep.harmonization._combat.ComBatHarmonizer`` in 0.1.0).
"""

import pickle
import sys
import warnings

import numpy as np
import torchio as tio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_medprep as smp
from sklearn_medprep.datasets import make_multisite_cohort, make_multisite_features


def main(out):
    warnings.simplefilter("ignore")
    feats = make_multisite_features(60, 6, 3, random_state=0)
    X, y = feats.drop(columns=["y", "sex"]), feats["y"]
    combat = make_pipeline(
        smp.ComBatHarmonizer(site="site", covariates=["age"]),
        StandardScaler(),
        LogisticRegression(),
    ).fit(X, y)
    covbat = smp.CovBatHarmonizer(site="site", covariates=["age"]).fit(X)
    images = make_multisite_cohort(6, 2, shape=(20, 22, 18), random_state=0)
    radiomics = smp.RadiomicsExtractor(
        settings={"featureClass": {"firstorder": ["Mean", "Energy"]}},
        passthrough=["site", "age"],
    ).fit(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preprocess = smp.TorchIOPreprocessor(
            [tio.CropOrPad((8, 8, 8)), tio.HistogramStandardization({})]
        ).fit(images)
    prep_out = preprocess.transform(images)
    state = {
        "version": smp.__version__,
        "X": X,
        "y": y,
        "images": images,
        "estimators": {
            "combat_pipeline": combat,
            "covbat": covbat,
            "radiomics": radiomics,
            "preprocess": preprocess,
        },
        "expected": {
            "combat_pipeline": combat.predict_proba(X),
            "covbat": covbat.transform(X).to_numpy(),
            "radiomics": radiomics.transform(images).drop(
                columns=["site", "age"]).to_numpy(dtype=float),
            "preprocess": np.stack(
                [prep_out["image"].iloc[i].data.numpy() for i in range(len(prep_out))]
            ),
        },
    }
    with open(out, "wb") as f:
        pickle.dump(state, f, protocol=4)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1])
