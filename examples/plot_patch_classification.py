"""
Patch-based training on volumes far larger than the patch
=========================================================

Real scans (256^3 MR, 512x512x300 CT) do not fit a 3D CNN whole, nor a cohort
of them in memory. TorchIO's answer is patch-based training: a
:class:`torchio.Queue` draws patches from a few subjects at a time, augmented on
the fly, and at inference a :class:`torchio.GridSampler` cuts each volume into
patches whose outputs are put back together.
:class:`~sklearn_medprep.PatchNeuralNetClassifier` is a skorch net that does
this from a subject table of image paths, so it tunes with
:class:`~sklearn.model_selection.GridSearchCV`, splits by site and persists with
joblib like any scikit-learn model.

The cohort is synthetic (:func:`~sklearn_medprep.datasets.make_texture_cohort`):
class 1 volumes carry faint stripes everywhere under noise, so a patch holds
the class, but a patch is 1/64 of a volume. Each subject's probability is the
mean of its grid patches' probabilities. In small mode (the test suite) all is
tiny, 24^3 volumes and 8^3 patches; the full run takes 96^3 volumes.
"""

# %%
import os
import tempfile
import time
from pathlib import Path

import joblib
import matplotlib
import numpy as np
import torch
import torchio as tio
from sklearn.model_selection import GridSearchCV, train_test_split
from torch import nn

from sklearn_medprep import PatchNeuralNetClassifier
from sklearn_medprep.datasets import make_texture_cohort
from sklearn_medprep.model_selection import SiteStratifiedKFold

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)

# %%
# A cohort of NIfTI files; the table holds their paths
# -----------------------------------------------------
n_subjects, side, patch, epochs = (18, 24, 8, 6) if SMALL else (48, 96, 24, 10)
table = make_texture_cohort(
    n_subjects, shape=(side,) * 3, path=OUT / "cohort", random_state=0
)
train, test = train_test_split(
    table, test_size=1 / 3, stratify=table["y"], random_state=0
)
majority = np.bincount(test["y"]).max() / len(test)
print(
    f"{len(train)} training and {len(test)} held-out subjects, volumes {side}^3, "
    f"patches {patch}^3 ({(side // patch) ** 3} per volume on the grid)"
)

# %%
# The net
# -------
# ``preprocessing`` runs on every subject when the queue (or the grid) reads it;
# ``augmentation`` only on training subjects, fresh every epoch. The queue holds
# at most ``queue_length`` patches: that, not the cohort, bounds memory.
module = nn.Sequential(
    nn.Conv3d(1, 4, 3),
    nn.ReLU(),
    nn.Conv3d(4, 4, 3),
    nn.ReLU(),
    nn.AdaptiveAvgPool3d(1),
    nn.Flatten(),
    nn.Linear(4, 2),
)
net = PatchNeuralNetClassifier(
    module,
    patch_size=patch,
    samples_per_volume=24,
    queue_length=48,
    preprocessing=tio.ZNormalization(),
    augmentation=tio.RandomFlip(axes=(1, 2)),  # stripes run along axis 0
    optimizer=torch.optim.Adam,
    max_epochs=epochs,
    batch_size=8,
    train_split=None,
    verbose=0,
    random_state=0,
)

# %%
# Grid search over the learning rate, folds stratified by site
# ------------------------------------------------------------
cv = SiteStratifiedKFold(n_splits=2, site="site", shuffle=True, random_state=0)
search = GridSearchCV(net, {"lr": [0.01, 0.03]}, cv=cv)
start = time.perf_counter()
search.fit(train, train["y"])
print(f"grid search (2 learning rates x 2 folds + refit) in "
      f"{time.perf_counter() - start:.1f} s")
for lr, score in zip(
    search.cv_results_["param_lr"], search.cv_results_["mean_test_score"]
):
    print(f"lr={lr}: cross-validated accuracy {score:.3f}")
best = search.best_estimator_

# %%
# Held-out subjects: one prediction per volume
# --------------------------------------------
proba = best.predict_proba(test)
accuracy = (best.predict(test) == test["y"].to_numpy()).mean()
print(f"held-out accuracy {accuracy:.3f} (majority class {majority:.3f})")

# %%
# Left: the training loss of the refitted net, epoch by epoch (patches drawn
# afresh every epoch). Right: each held-out subject's probability of class 1,
# the mean over its grid patches, by true class.
history = best.history
fig, (ax_loss, ax_proba) = plt.subplots(1, 2, figsize=(10, 4))
ax_loss.plot(history[:, "epoch"], history[:, "train_loss"], marker="o")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training loss (cross-entropy, patches)")
ax_loss.set_title("Training on patches (refit on all training subjects)")
ax_loss.xaxis.get_major_locator().set_params(integer=True)
truth = test["y"].to_numpy()
for label, colour in ((0, "tab:blue"), (1, "tab:orange")):
    ax_proba.scatter(
        np.full((truth == label).sum(), label), proba[truth == label, 1],
        color=colour, label=f"true class {label}", s=40, alpha=0.8,
    )
ax_proba.axhline(0.5, color="grey", linestyle="--", linewidth=1)
ax_proba.set_xticks([0, 1], ["class 0", "class 1"])
ax_proba.set_xlim(-0.6, 1.6)
ax_proba.set_ylim(0, 1)
ax_proba.set_ylabel("P(class 1), mean of grid patches")
ax_proba.set_title(f"Held-out subjects (accuracy {accuracy:.2f})")
ax_proba.legend(loc="center right")
fig.tight_layout()
fig.savefig(OUT / "patch_classification.png", dpi=100)

# %%
# Saved, reloaded, the same predictions
# -------------------------------------
model_file = OUT / "patch_classifier.joblib"
joblib.dump(best, model_file)
loaded = joblib.load(model_file)
print(
    "reloaded predict_proba identical: "
    f"{np.array_equal(loaded.predict_proba(test), proba)}"
)
