"""bf.from_stata / bf.to_stata (bayesfmm/stata.py): Stata ``fmm`` syntax <-> FMM.

Oracles: the Python model each page pairs with its Stata line (written here by hand from
the page); the round trip ``from_stata(to_stata(m)) == m`` for every Stata line printed in
README.md and docs/ (found by scanning the pages, so a line added later is checked too);
``eval(repr(m))`` gives ``m`` back; refusals name the unsupported thing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bayesfmm as bf
from bayesfmm import FMM, Component

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CUT = re.compile(r'`|\s{3,}|\s\||"')


def stata_lines() -> list[tuple[str, str]]:
    """(page, command) for every Stata ``fmm`` line printed on the pages, with the ``stset``
    line that precedes a ``streg`` model."""
    found = []
    for page in PAGES:
        text = page.read_text()
        # an inline code span may wrap over two lines: join it
        text = re.sub(r"`[^`\n]*\n[^`\n]*`", lambda m: m.group(0).replace("\n", " "), text)
        lines = text.splitlines()
        for i, line in enumerate(lines):
            for match in re.finditer(r"\bfmm\b(?=[^:`|]{0,60}:)", line):
                command = _CUT.split(line[match.start():])[0].strip()
                if "..." in command or "#:" in command or command.count("(") != command.count(")"):
                    continue
                if "streg" in command:
                    before = " ".join(lines[max(0, i - 3): i + 1])
                    stset = re.search(r"stset \w+, failure\(\w+\)", before)
                    command = f"{stset.group(0)}\n{command}" if stset else command
                found.append((page.name, command))
    return found


# lines a page prints to show a refusal (docs/stata.md)
REFUSED_ON_PURPOSE = {"fmm 2, constraints(1): regress y x"}
FOUND = stata_lines()
LINES = [(page, command) for page, command in FOUND if command not in REFUSED_ON_PURPOSE]


def test_the_scan_finds_the_lines_of_the_pages():
    commands = {c for _, c in LINES}
    assert len(LINES) >= 20, LINES
    assert "fmm 3: regress thickness" in commands
    assert "fmm 2: mlogit insure age male, baseoutcome(1)" in commands
    assert "stset t, failure(died)\nfmm: (pointmass died) (streg x, distribution(weibull))" in commands
    assert "fmm: (pointmass art) (poisson art fem mar kid5 phd ment)" in commands


def test_the_lines_shown_as_refusals_are_refused():
    shown = [command for _, command in FOUND if command in REFUSED_ON_PURPOSE]
    assert shown
    for command in shown:
        with pytest.raises(bf.SpecificationError):
            bf.from_stata(command)


@pytest.mark.parametrize(("page", "command"), LINES, ids=[f"{p}:{c[:40]}" for p, c in LINES])
def test_every_stata_line_of_the_docs_round_trips(page, command):
    model, fit = bf.from_stata(command, fit_options=True)
    again, fit_again = bf.from_stata(bf.to_stata(model), fit_options=True)
    assert again == model
    assert eval(repr(model), {"FMM": FMM, "Component": Component}) == model
    assert isinstance(fit, dict)


# The Python model each page pairs with its Stata line (docs/families.md, getting-started.md,
# README.md, docs/stata.md).
PAIRS = [
    ("fmm 3: regress thickness", FMM("thickness ~ 1", family="gaussian", k=3)),
    ("fmm 3: glm thickness, family(lognormal)", FMM("thickness ~ 1", family="lognormal", k=3)),
    ("fmm 2: glm cost x1 x2, family(gamma) link(log)", FMM("cost ~ x1 + x2", family="gamma", k=2)),
    ("fmm 2: betareg share x1, link(probit)", FMM("share ~ x1", family="betareg", link="probit", k=2)),
    ("fmm 2: ologit rating x1 x2", FMM("rating ~ x1 + x2", family="ologit", k=2)),
    ("fmm 2: mlogit insure age male, baseoutcome(1)", FMM("insure ~ age + male", family="mlogit", baseoutcome=1, k=2)),
    ("fmm 2: tobit y x, ll(0)", FMM("y ~ x", family="tobit", ll=0, k=2)),
    ("fmm 2: intreg lo hi x", FMM([Component("lo ~ x", family="intreg", upper="hi")], k=2)),
    ("fmm 2: truncreg y x, ll(0)", FMM("y ~ x", family="truncreg", ll=0, k=2)),
    (
        "fmm: (pointmass art) (tpoisson art x, lcprob(z))",
        FMM([Component("art ~ 1", family="pointmass"), Component("art ~ x", family="tpoisson", lcprob="~ z")]),
    ),
    (
        "stset t, failure(died)\nfmm: (pointmass died, lbvalue(0)) (streg x, distribution(weibull))",
        FMM([Component("died ~ 1", family="pointmass", value=0),
             Component("t ~ x", family="streg", distribution="weibull", failure="died")]),
    ),
    (
        "fmm: (pointmass art) (poisson art fem mar kid5 phd ment)",
        FMM([Component("art ~ 1", family="pointmass"), Component("art ~ fem + mar + kid5 + phd + ment", family="poisson")]),
    ),
    ("fmm 3, lcprob(z): regress y x", FMM("y ~ x", family="gaussian", k=3, lcprob="~ z")),
    ("fmm 2, lcinvariant(coef) lcbase(2): poisson y x1 x2", FMM("y ~ x1 + x2", family="poisson", k=2, lcinvariant="coef", lcbase=2)),
    ("fmm 2 [fweight=w]: poisson y x", FMM("y ~ x", family="poisson", k=2, weights="w")),
    ("fmm 2 [pw=w]: regress y x", FMM("y ~ x", k=2, weights="w", weight_type="pweight")),
    ("fmm 2: poisson y x, exposure(t)", FMM("y ~ x", family="poisson", k=2, exposure="t")),
    ("fmm 2: regress y i.g c.x#c.z, noconstant", FMM("y ~ C(g) + x:z - 1", k=2)),
    ("fmm 2: nbreg y x, dispersion(constant)", FMM("y ~ x", family="nbinomial", dispersion="constant", k=2)),
    ("fmm 2: (regress y1) (poisson y2)", FMM([Component("y1 ~ 1"), Component("y2 ~ 1", family="poisson")], k=2)),
    ("fmm 2: glm y x, family(binomial 10) link(probit)", FMM("y ~ x", family="binomial", trials=10, link="probit", k=2)),
    ("fmm 2: logit y x", FMM("y ~ x", family="logit", k=2)),
    ("fmm 2: ivregress y x (w = z1 z2)", FMM("y ~ x + (w ~ z1 + z2)", family="ivregress", k=2)),
    ("fmm 2: ivregress y x (w1 w2 = z1 z2 z3), noconstant",
     FMM("y ~ x - 1", family="ivregress", endogenous=("w1", "w2"), instruments=("z1", "z2", "z3"), k=2)),
    (
        "fmm, lcprob(z): (regress y x) (regress y)",
        FMM([Component("y ~ x"), Component("y ~ 1")], lcprob="~ z"),
    ),
]


@pytest.mark.parametrize(("command", "expected"), PAIRS, ids=[c[:40] for c, _ in PAIRS])
def test_from_stata_gives_the_model_the_docs_pair_it_with(command, expected):
    model = bf.from_stata(command)
    assert model == expected
    assert bf.from_stata(bf.to_stata(expected)) == expected


def test_abbreviations_and_fit_options():
    model, fit = bf.from_stata(
        "fmm 3, lcinv(cons) vce(cluster id) startv(randompr, draws(20) seed(1)) emopts(iter(5) tol(1e-5)) nolog: "
        "regress y x, nocons",
        fit_options=True,
    )
    assert model == FMM("y ~ x - 1", k=3, lcinvariant="cons")
    assert fit == {"vce": "cluster", "cluster": "id", "startvalues": "randompr", "draws": 20, "seed": 1,
                   "emopts": {"iterate": 5, "tolerance": 1e-5}, "log": False}


def test_fit_options_from_the_line_fit_the_stamp_data():
    model, fit = bf.from_stata("fmm 2, vce(robust): regress thickness", fit_options=True)
    res = model.fit(bf.datasets.load("stamp"), **fit)
    assert res.vce == "robust"
    assert res.k == 2


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("fmm 2, vce(robust): regress y x", "vce"),
        ("fmm 2, constraints(1 2): regress y x", "constraints"),
        ("fmm 2, level(90): regress y x", "level"),
        ("fmm 2, frobnicate: regress y x", "frobnicate"),
        ("fmm 2 if x > 0: regress y x", "'if'"),
        ("fmm 2 in 1/10: regress y x", "'in'"),
        ("fmm 2 [aweight=w]: regress y x", "'aweight'"),
        ("fmm 2: ivregress y x", "ivregress"),
        ("fmm 2: regress y x (w = z)", "ivregress syntax"),
        ("fmm 2: glm y x, family(igaussian)", "igaussian"),
        ("fmm 2: poisson y x, link(identity)", "link"),
        ("fmm 2: glm y x, family(poisson) link(identity)", "link(identity)"),
        ("fmm 2: regress y L.x", "L.x"),
        ("fmm 2: regress y x*", "x*"),
        ("fmm 2: regress y x, vce(robust)", "vce"),
        ("fmm: (pointmass y) (streg x)", "stset"),
        ("fmm: regress y x", "number of classes"),
        ("fmm 2 regress y x", "colon"),
        ("regress y x", "fmm"),
    ],
)
def test_refusals_name_what_is_not_supported(command, named):
    with pytest.raises(bf.SpecificationError, match=re.escape(named)):
        bf.from_stata(command)


@pytest.mark.parametrize(
    "model",
    [
        FMM("y ~ np.log(x)", k=2),
        FMM("y ~ x", k=2, group="g"),
        FMM("y ~ x", k=2, constraints="[1]x = [2]x"),
    ],
)
def test_to_stata_refuses_what_fmm_cannot_write(model):
    with pytest.raises(bf.SpecificationError):
        bf.to_stata(model)


def test_repr_pastes_back():
    models = [
        FMM("thickness ~ 1", family="gaussian", k=3),
        FMM("y ~ x", family="poisson", k=2, lcprob="~ z", equal=["x"], group="g", constraints=["[1]x = 1"]),
        FMM([Component("art ~ 1", family="pointmass", value=0), Component("art ~ x", family="poisson", offset="o")]),
        FMM("y ~ x", family="streg", k=2, failure="d", nested={"x": [(1, 2)]}),
    ]
    for model in models:
        assert eval(repr(model), {"FMM": FMM, "Component": Component}) == model
    assert repr(models[0]) == "FMM('thickness ~ 1', family='gaussian', k=3)"
