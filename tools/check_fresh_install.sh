#!/usr/bin/env sh
# `pip install .` into a fresh virtual environment (only the declared dependencies), then
# fit a model and draw a plot with it, from outside the checkout. Usage:
#   tools/check_fresh_install.sh [python]      (default: the newest Python >= 3.12 found)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-$("$root/tools/find-python")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q "$root"
cd "$work"
MPLBACKEND=Agg "$work/venv/bin/python" - <<'PY'
import bayesfmm as bf

res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
assert abs(res.llf - 1518.8483) < 1e-3, res.llf
model = bf.from_stata("fmm 2: poisson Faults")
print(model, round(model.fit(bf.datasets.load("fabricfault")).llf, 3))
bf.plotting.plot_mixture_density(res)
print("fresh install OK: bayesfmm", bf.__version__, "llf", round(res.llf, 4))
PY
