"""
A tiny 3D CNN with skorch, TorchIO augmentation and site-aware grid search
==========================================================================

Deep-learning models fit in a scikit-learn pipeline too, through skorch. The
pipeline here is

1. :class:`~sklearn_medprep.TorchIOPreprocessor`: resample every site's volume
   to the same 1.5 mm grid, crop or pad to a fixed shape, z-normalize;
2. :class:`~sklearn_medprep.ImageTensorizer`: stack the images into a
   ``(n, 1, W, H, D)`` float32 array;
3. a :class:`skorch.NeuralNetClassifier` wrapping a tiny 3D CNN.

Augmentation belongs to training batches only, and should be fresh every
epoch. :class:`~sklearn_medprep.TorchIOCollate`, given as skorch's
``iterator_train__collate_fn``, does exactly that: skorch uses it for training
batches and never for validation or prediction (unlike ``dataset=``, which
skorch also uses to predict). The learning rate is tuned by
:class:`~sklearn.model_selection.GridSearchCV` with
:class:`~sklearn_medprep.model_selection.SiteStratifiedKFold`, and the fitted
pipeline is saved with joblib and reloaded. Everything is tiny (16^3 voxels,
3 epochs) so that it runs in seconds on a CPU: the point is the mechanics, not
the scores. A network this small, trained this briefly on a dozen volumes
whose lesions span a few voxels, does not beat the majority class; compare the
printed accuracies with that baseline before believing any CNN result.
"""

# %%
import os
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch
import torchio as tio
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from skorch import NeuralNetClassifier
from torch import nn

from sklearn_medprep import ImageTensorizer, TorchIOCollate, TorchIOPreprocessor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.model_selection import SiteStratifiedKFold

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)  # the network's initial weights

# %%
# A three-site cohort of small volumes
# ------------------------------------
# The sites have different voxel spacings, hence different grid shapes: the
# preprocessing resamples them to one grid.
n_subjects, side, n_splits, max_epochs = (18, 16, 2, 3) if SMALL else (30, 16, 3, 4)
table = make_multisite_cohort(
    n_subjects,
    3,
    shape=(24, 26, 22),
    path=OUT / "cohort",
    random_state=0,
    label_effect=2.0,
)
y = table["y"].to_numpy()
batch_size = 4
majority = np.bincount(y).max() / len(y)
print(
    f"{len(table)} subjects, classes {np.bincount(y).tolist()}, "
    f"majority-class accuracy {majority:.3f}"
)


# %%
# The network
# -----------
class TinyCNN(nn.Module):
    """Two 3D convolutions, global average pooling, a linear head."""

    def __init__(self, n_filters=4, n_classes=2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(1, n_filters, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(n_filters, 2 * n_filters, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * n_filters, n_classes)

    def forward(self, X):
        return self.head(self.features(X))


# %%
# The pipeline
# ------------
# The augmentation runs on the tensors of each training batch: random flips,
# a small rotation and noise, drawn anew every epoch from seeds derived from
# ``random_state`` (so a cloned net replays the same draws).
augmentation = tio.Compose(
    [
        tio.RandomFlip(axes=(0,)),
        tio.RandomAffine(scales=0, degrees=10, translation=0),
        tio.RandomNoise(std=(0, 0.1)),
    ]
)
collate = TorchIOCollate(augmentation, random_state=0)
pipe = Pipeline(
    [
        (
            "preprocess",
            TorchIOPreprocessor(
                [tio.Resample(1.5), tio.CropOrPad((side,) * 3), tio.ZNormalization()]
            ),
        ),
        ("tensor", ImageTensorizer()),
        (
            "net",
            NeuralNetClassifier(
                TinyCNN,
                criterion=nn.CrossEntropyLoss,
                optimizer=torch.optim.Adam,
                max_epochs=max_epochs,
                batch_size=batch_size,
                train_split=None,
                iterator_train__shuffle=True,
                iterator_train__collate_fn=collate,
                verbose=0,
            ),
        ),
    ]
)

# %%
# Grid search over the learning rate, folds stratified by site
# ------------------------------------------------------------
cv = SiteStratifiedKFold(n_splits=n_splits, site="site", shuffle=True, random_state=0)
search = GridSearchCV(pipe, {"net__lr": [0.003, 0.03]}, cv=cv)
start = time.perf_counter()
search.fit(table, y)
print(
    f"grid search (2 learning rates x {n_splits} folds + refit) in "
    f"{time.perf_counter() - start:.1f} s"
)
for lr, score in zip(
    search.cv_results_["param_net__lr"], search.cv_results_["mean_test_score"]
):
    print(f"lr={lr}: cross-validated accuracy {score:.3f}")
print(f"best lr: {search.best_params_['net__lr']}")
best = search.best_estimator_
fitted_collate = best["net"].iterator_train__collate_fn
print(
    "training batches augmented by the refitted net: "
    f"{fitted_collate.n_batches} "
    f"({max_epochs} epochs x {int(np.ceil(len(table) / batch_size))} batches)"
)

# %%
# Prediction never augments, and a saved model predicts the same
# --------------------------------------------------------------
# Unpickling needs the ``TinyCNN`` class importable, as for any pickled
# PyTorch module: in a project, define it in a module, not in a script.
proba = best.predict_proba(table)
n_batches = fitted_collate.n_batches
print(
    "predict_proba twice identical: "
    f"{np.array_equal(proba, best.predict_proba(table))}; "
    f"batches augmented meanwhile: {fitted_collate.n_batches - n_batches}"
)
model_file = OUT / "cnn_pipeline.joblib"
joblib.dump(best, model_file)
loaded = joblib.load(model_file)
identical = np.array_equal(loaded.predict_proba(table), proba)
print(
    f"saved to {model_file.name} ({model_file.stat().st_size / 1024:.0f} KiB); "
    f"reloaded predict_proba identical: {identical}"
)
print(f"training accuracy of the best model: {(proba.argmax(1) == y).mean():.3f}")

# %%
# Figure: training loss of the refitted net
# -----------------------------------------
# Every epoch sees freshly augmented batches.
import matplotlib.pyplot as plt

history = best["net"].history
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(history[:, "epoch"], history[:, "train_loss"], marker="o")
ax.set_xlabel("epoch")
ax.set_xticks(history[:, "epoch"])
ax.set_ylabel("training loss (cross-entropy)")
ax.set_title(f"TinyCNN, lr={search.best_params_['net__lr']}, augmented batches")
