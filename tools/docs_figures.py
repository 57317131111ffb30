"""Draw the figures of the documentation site into docs/figures/ (run by `make docs`).

Each figure comes from the package's own plotting functions on the bundled data, so the
pages show what the code draws today. Usage: python tools/docs_figures.py [outdir]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import bayesfmm as bf  # noqa: E402
from bayesfmm import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def save(ax, path: Path) -> None:
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=80)
    plt.close(ax.figure)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = bf.datasets.load("stamp")
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp)
    save(plotting.plot_mixture_density(res), out / "stamp_density.png")
    save(plotting.plot_class_posterior(res), out / "stamp_posterior.png")

    bio = bf.datasets.load("bioChemists")
    counts = bf.FMM("art ~ fem + ment", family="poisson", k=2).fit(bio)
    save(plotting.plot_rootogram(counts, bio, max_count=12), out / "rootogram.png")
    save(plotting.plot_coefficients(counts), out / "coefficients.png")

    npreg = bf.datasets.load("NPreg")
    reg = bf.FMM("yn ~ x", k=2).fit(npreg)
    save(plotting.plot_fitted_lines(reg, npreg), out / "fitted_lines.png")
    save(plotting.plot_predictive_density(reg, npreg), out / "predictive_density.png")

    faithful = bf.datasets.load("faithful")
    both = bf.FMM([bf.Component("eruptions ~ 1"), bf.Component("waiting ~ 1")], k=2).fit(faithful)
    save(plotting.plot_class_profiles(both, standardize=True), out / "profiles.png")

    # the ML parts of examples/identifiability.py (seconds); its figures go to examples/output/
    subprocess.run([sys.executable, str(ROOT / "examples" / "identifiability.py"), "--ml-only"], check=True,
                   stdout=subprocess.DEVNULL)
    for name in ("identifiability_collapse.png", "identifiability_profile.png"):
        shutil.copy(ROOT / "examples" / "output" / name, out / name)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "figures")
