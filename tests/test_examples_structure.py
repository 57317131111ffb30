"""examples/flexmix_structure.py runs end to end and writes its four figures (about 10 s).

The fitted numbers themselves are checked against flexmix's published values in
test_flexmix_structure.py; this test checks the example: it imports the script, runs
``main(output=tmp_path)`` and checks that each figure is a non-empty PNG file of the size
the figure asks for, and that the printed comparison table names every model.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # tests never need a display

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flexmix_structure.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load_example():
    spec = importlib.util.spec_from_file_location("flexmix_structure_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG file"
    return struct.unpack(">II", head[16:24])


def test_flexmix_structure_example_writes_figures(tmp_path, capsys):
    example = _load_example()
    paths = example.main(output=tmp_path)
    out = capsys.readouterr().out

    expected = {
        "betablocker": ("flexmix_betablocker.png", (7.0, 4.8)),
        "fabricfault": ("flexmix_fabricfault.png", (12.0, 4.8)),
        "patent": ("flexmix_patent.png", (12.0, 4.8)),
        "NregFix": ("flexmix_nregfix.png", (12.0, 4.8)),
    }
    assert set(paths) == set(expected)
    for name, (filename, (width_in, height_in)) in expected.items():
        path = paths[name]
        assert path == tmp_path / filename
        assert path.stat().st_size > 10_000, f"{filename} is (nearly) empty"
        assert _png_size(path) == (round(width_in * 110), round(height_in * 110))  # dpi 110
        assert f"wrote {path}" in out

    # the comparison table lists every model with flexmix's published log likelihood
    for model, llf in [("betablocker", "-159.3605"), ("fabricfault", "-86.3312"),
                       ("fabricfault, [1]Intercept = 0", "-88.9900"), ("patent", "-197.6753")]:
        assert any(line.startswith(model) and llf in line for line in out.splitlines()), model
    assert out.count("Finite mixture model") == 5


def test_example_default_output_is_next_to_the_script():
    example = _load_example()
    assert example.OUTPUT == EXAMPLE.parent / "output"
