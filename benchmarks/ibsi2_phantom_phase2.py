"""IBSI-2 phase 2: RadiomicsExtractor's "IBSI2" image type on the CT phantom.

Filters the CT radiomics phantom with every phase-2 configuration that
sklearn_medprep.filters covers (processing of configurations.json: 2D as
acquired, 3D resampled to 1 mm; resegmented to [-1000, 400] HU), extracts the
18 intensity statistics of each response map inside the ROI and compares them
with IBSI-2's consensus values. Prints the number within tolerance and every
miss; with ``--write`` writes docs/user_guide/ibsi2_phase2_table.rst.inc
(tests/radiomics/test_radiomics_ibsi2_phantom.py checks its 2D rows against a
fresh run). ``--quick`` runs the 2D configurations only.

Usage: python benchmarks/ibsi2_phantom_phase2.py [--write] [--quick]
"""

import argparse
import json
import os
import time
from pathlib import Path

from sklearn_medprep.radiomics._ibsi2_phantom import (
    ibsi2_phase2_rst,
    ibsi2_phase2_table,
)

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
FOLDER = SHARED / "ibsi2"
TABLE = ROOT / "docs" / "user_guide" / "ibsi2_phase2_table.rst.inc"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the docs table")
    parser.add_argument("--quick", action="store_true",
                        help="the 2D (A) configurations only")
    args = parser.parse_args()
    if not FOLDER.is_dir():
        print(f"{FOLDER} absent: skipping")
        return
    ids = None
    if args.quick:
        spec = json.loads((FOLDER / "configurations.json").read_text())
        ids = [i for i, c in spec["phase_2"]["configurations"].items()
               if c["variant"] == "A"]
    start = time.process_time()
    table = ibsi2_phase2_table(FOLDER, ids)
    covered = table[table["covered"]]
    tested = covered[covered["passed"].notna()]
    print(f"IBSI-2 phase 2, CT phantom: {int(tested['passed'].astype(bool).sum())} "
          f"of {len(tested)} statistics within tolerance over "
          f"{covered['configuration'].nunique()} configurations covered "
          f"(CPU {time.process_time() - start:.1f} s)")
    missing = sorted(set(table.loc[~table["covered"], "configuration"]))
    print(f"not covered (filter family not in filter_image): {missing or 'none'}")
    for row in tested[~tested["passed"].astype(bool)].itertuples():
        print(f"  miss {row.configuration} {row.feature}: {row.value:.6g} vs "
              f"{row.reference:.6g} +- {row.tolerance:.6g}")
    if args.write:
        if args.quick:
            parser.error("--write needs the full run (no --quick)")
        TABLE.write_text(ibsi2_phase2_rst(table))
        print(f"wrote {TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
