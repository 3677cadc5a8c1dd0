"""IBSI-1 digital phantom: RadiomicsExtractor(settings="ibsi") against the consensus.

Prints the number of the 102 mapped features within tolerance and every miss;
with ``--write`` writes docs/user_guide/ibsi_phantom_table.rst.inc (the table of the
docs page, kept true by tests/radiomics/test_ibsi.py).

Usage: python benchmarks/ibsi_phantom.py [--write] [--quick]
"""

import argparse
import os
from pathlib import Path

from sklearn_medprep.radiomics._ibsi_phantom import phantom_table, phantom_table_rst

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
PHANTOM = SHARED / "ibsi"
TABLE = ROOT / "docs" / "user_guide" / "ibsi_phantom_table.rst.inc"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the docs table")
    parser.add_argument("--quick", action="store_true", help="same run (it is small)")
    args = parser.parse_args()
    if not PHANTOM.is_dir():
        print(f"{PHANTOM} absent: skipping")
        return
    table = phantom_table(PHANTOM)
    computed = int(table["pyradiomics"].notna().sum())
    print(f"IBSI-1 phantom, settings='ibsi': {int(table['passed'].sum())} of "
          f"{len(table)} features within tolerance; PyRadiomics computes {computed} "
          f"of them (its own definitions, same settings: "
          f"{int(table['pyradiomics_passed'].sum())} of {computed})")
    for name, row in table[~table["passed"]].iterrows():
        print(f"  miss {name} ({row['ibsi']}): {row['value']:.6g} vs "
              f"{row['reference']:.6g} +- {row['tolerance']:.6g}")
    if args.write:
        TABLE.write_text(phantom_table_rst(table))
        print(f"wrote {TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
