"""The one compiled module, the branch and bound's level loop (why: its source's header).

Everything else about the package is in pyproject.toml. -ffp-contract=off keeps its
arithmetic the numpy formulas' to the bit: no fused multiply-adds.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "costscaler.core._kernels",
            sources=["operator/costscaler/core/_kernels.c"],
            extra_compile_args=["-O2", "-ffp-contract=off"],
        )
    ]
)
