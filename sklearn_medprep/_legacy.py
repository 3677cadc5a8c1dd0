"""The 0.1.0 module paths, kept importable for one release (removed in 0.3).

Release 0.1.0 kept every module flat (``sklearn_medprep._combat``); 0.2 moved
them into concept subpackages (``sklearn_medprep.harmonization._combat``). A
pickle names the module of each class it holds, so a 0.1.0 pipeline pickle
looks for ``sklearn_medprep._combat.ComBatHarmonizer``. An import finder on
:data:`sys.meta_path` answers the old names with a thin alias module whose
attributes are looked up in the new modules, and warns (``FutureWarning``) once
per old name. Unpickled estimators are instances of the new classes.

The table below is the only place the old names live; ``tests/test_legacy.py``
checks that every public name of every 0.1.0 module is found through it.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

__all__ = ["LEGACY_MODULES", "install_legacy_paths"]

#: 0.1.0 module (under ``sklearn_medprep.``) -> the modules that now hold its
#: names, searched in order.
LEGACY_MODULES = {
    "_augment": ("images._augment",),
    "_cache": ("radiomics._cache",),
    "_cohort_findings": ("qc._cohort_findings",),
    "_cohort_plot": ("qc._cohort_plot",),
    "_cohort_report": ("qc._cohort_report",),
    "_combat": ("harmonization._combat",),
    "_combat_apply": ("harmonization._apply",),
    "_combat_blocks": ("harmonization._blocks",),
    "_combat_core": ("harmonization._core",),
    "_combat_design": ("harmonization._design",),
    "_combat_eb": ("harmonization._eb",),
    "_combat_gam": ("harmonization._gam",),
    "_combat_input": ("harmonization._input",),
    "_combat_interchange": ("harmonization._interchange",),
    "_combat_sites": ("harmonization._sites",),
    "_combat_target": ("harmonization._target",),
    "_covbat": ("harmonization._covbat",),
    "_deferred": ("images._deferred", "io._deferred_source"),
    "_docstrings": ("utils._docstrings",),
    "_ibsi": ("radiomics._ibsi", "radiomics._ibsi_phantom"),
    "_integrity": ("io._integrity",),
    "_io": ("io._read", "io._deferred_source"),
    "_optional": ("utils._optional",),
    "_patch_net": ("nets._patch_net",),
    "_patch_segmenter": ("nets._patch_segmenter",),
    "_patches": ("nets._patches",),
    "_qc": ("qc._site_effects", "qc._site_predictability", "qc._plot"),
    "_qc_plot": ("qc._plot",),
    "_radiomics": ("radiomics._extractor", "radiomics._rows"),
    "_radiomics_backend": ("radiomics._backend", "radiomics._pyradiomics"),
    "_radiomics_crop": ("radiomics._crop",),
    "_radiomics_features": ("radiomics._features",),
    "_radiomics_log": ("radiomics._log",),
    "_radiomics_settings": ("radiomics._settings",),
    "_radiomics_worker": ("radiomics._worker", "radiomics._backend"),
    "_random": ("utils._random",),
    "_robust": ("radiomics._robust",),
    "_skorch": ("nets._collate",),
    "_subject": ("images._subject", "images._walk", "images._base"),
    "_table": (
        "table._checks", "table._validate", "table._manifest", "io._read",
    ),
    "_tags": ("utils._tags",),
    "_tensor": ("nets._tensorizer",),
    "_torchio": ("images._preprocessor", "images._trainable"),
    "_voxel_chunks": ("harmonization._voxel_chunks",),
    "_voxel_combat": ("harmonization._voxel_combat",),
    "_voxel_qc": ("qc._voxel",),
    "_voxel_store": ("harmonization._voxel_store",),
}

_PACKAGE = __name__.rpartition(".")[0]


def _alias_module(old, targets):
    module = types.ModuleType(old, f"Deprecated alias of {', '.join(targets)}.")
    modules = [importlib.import_module(target) for target in targets]

    def __getattr__(name):
        for target in modules:
            try:
                return getattr(target, name)
            except AttributeError:
                pass
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    module.__getattr__ = __getattr__
    module.__all__ = sorted({n for m in modules for n in getattr(m, "__all__", ())})
    return module


class _LegacyLoader(importlib.abc.Loader):
    def __init__(self, targets):
        self.targets = targets

    def create_module(self, spec):
        return _alias_module(spec.name, self.targets)

    def exec_module(self, module):
        warnings.warn(
            f"{module.__name__} is the 0.1.0 path of {', '.join(self.targets)}; "
            "it will be removed in 0.3. Import public names from sklearn_medprep "
            "(or its subpackages), and re-pickle fitted estimators.",
            FutureWarning,
            stacklevel=2,
        )


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE or name not in LEGACY_MODULES:
            return None
        targets = tuple(f"{_PACKAGE}.{t}" for t in LEGACY_MODULES[name])
        return importlib.machinery.ModuleSpec(fullname, _LegacyLoader(targets))


def install_legacy_paths():
    """Put the finder of the 0.1.0 module paths on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        sys.meta_path.append(_LegacyFinder())
