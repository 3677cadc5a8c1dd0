"""
Previewing 2D chest X-ray augmentation
======================================

Before training on augmented data, look at it. This example augments synthetic
chest X-rays (PNG files from
:func:`~sklearn_medprep.datasets.make_xray_cohort`, cardiomegaly vs normal)
with :class:`~sklearn_medprep.TorchIOAugmenter`: a random affine transform
(rotation, scaling, translation in the image plane), a smooth bias field, a
gamma change and noise. Each row of the subject table becomes a
:class:`torchio.Subject` whose heart mask is a ``LabelMap``, so the spatial
transforms move the mask with the image while the intensity transforms leave
it alone: the figure draws the heart contour on every copy.

``fit_resample`` (imbalanced-learn's sampler contract) returns the original rows
followed by ``n_augmentations`` augmented copies of each, with ``y`` and the
metadata columns copied; the same ``random_state`` gives the same copies.
"""

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import TorchIOAugmenter, load_image
from sklearn_medprep.datasets import make_xray_cohort

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Synthetic chest X-rays from two hospitals
# -----------------------------------------
n_subjects, shape = (6, (96, 84)) if SMALL else (12, (160, 140))
table = make_xray_cohort(n_subjects, 2, shape=shape, path=OUT / "xray", random_state=0)
print(table.drop(columns=["image", "mask"]).head(4))

# %%
# The augmentation
# ----------------
# TorchIO sees a 2D image as a volume of depth 1 (shape ``(1, W, H, 1)``), so
# the rotation is about the third axis and the third scale and translation are
# kept at identity.
augmentation = tio.Compose(
    [
        tio.RandomAffine(
            scales=(0.9, 1.1, 0.9, 1.1, 1, 1),
            degrees=(0, 0, 0, 0, -12, 12),
            translation=(-6, 6, -6, 6, 0, 0),
        ),
        tio.RandomBiasField(coefficients=0.4, order=2),
        tio.RandomGamma(log_gamma=(-0.3, 0.3)),
        tio.RandomNoise(std=(0, 6)),
    ]
)
n_augmentations = 3
augmenter = TorchIOAugmenter(
    augmentation, n_augmentations=n_augmentations, random_state=0
)
X_res, y_res = augmenter.fit_resample(table, table["y"])
print(
    f"fit_resample: {len(table)} rows -> {len(X_res)} rows "
    f"({len(table)} originals + {n_augmentations} x {len(table)} augmented); "
    f"class counts {np.bincount(table['y']).tolist()} -> "
    f"{np.bincount(y_res).tolist()}"
)
print("new rows:", list(X_res.index[len(table) : len(table) + 3]), "...")

# the same seed gives the same copies
again, _ = augmenter.fit_resample(table, table["y"])
first_aug = X_res.index[len(table)]
same = np.array_equal(
    X_res.loc[first_aug, "image"].data.numpy(), again.loc[first_aug, "image"].data
)
print(f"same random_state, same augmented images: {same}")


# %%
# The preview grid
# ----------------
# Each row of the figure is a subject: the original, then its augmented copies,
# with the heart mask's contour (red) drawn from the augmented mask.
def as_array(cell):
    return sitk.GetArrayFromImage(load_image(cell)).astype(float)


shown = table.index[: 3 if SMALL else 4]
fig, axes = plt.subplots(
    len(shown),
    n_augmentations + 1,
    figsize=(2.2 * (n_augmentations + 1), 2.4 * len(shown)),
    squeeze=False,
)
heart_area = []
for i, subject in enumerate(shown):
    copies = [subject] + [f"{subject}|aug{k}" for k in range(1, n_augmentations + 1)]
    for j, row in enumerate(copies):
        image = as_array(X_res.loc[row, "image"])
        heart = as_array(X_res.loc[row, "mask"]) > 0.5
        if j == 0:
            original_area = heart.sum()
        else:
            heart_area.append(heart.sum() / original_area)
        ax = axes[i, j]
        ax.imshow(image, cmap="gray")
        ax.contour(heart, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(
            f"{subject} y={table.loc[subject, 'y']}" if j == 0 else f"augmented {j}",
            fontsize=8,
        )
        ax.axis("off")
fig.tight_layout()
figure = OUT / "xray_augmentation_preview.png"
fig.savefig(figure, dpi=100)
print(
    "heart mask area of the augmented copies / original: "
    f"{min(heart_area):.2f} to {max(heart_area):.2f} (scaling moves it, the "
    "intensity transforms do not)"
)
print(f"figure saved: {figure}")
