"""The one compiled piece of bayesfmm: ``bayesfmm._vecmath``, glibc's vectorised exp, log
and log1p (libmvec on AVX2) for the logsumexp over classes and the binary families' softplus.
Everything else is in pyproject.toml. The extension is optional: without a C compiler
(or Python's headers) pip prints a warning and the package runs on numpy's functions
(bayesfmm.ops.VECTOR_EXP is then False)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bayesfmm._vecmath",
            ["bayesfmm/_vecmath.c"],
            libraries=["m"],  # glibc's libm linker script brings in libmvec as needed
            optional=True,
        )
    ]
)
