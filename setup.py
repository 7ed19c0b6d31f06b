"""Build script: the pure package always, the Rust ``_speedups`` module when it can.

``CREWAI_RUST_BUILD`` chooses: ``0`` never builds the extension (pure install),
``1`` requires it (the install fails if it cannot be built), unset tries and
falls back to the pure package. ``CREWAI_RUST_DEBUG=1`` builds the debug profile.
"""

import os
import shutil
import sys

from setuptools import setup
from setuptools_rust import Binding, RustExtension


def _rust_extensions() -> list:
    mode = os.environ.get("CREWAI_RUST_BUILD", "").strip()
    if mode not in ("", "0", "1"):
        sys.exit(f"CREWAI_RUST_BUILD={mode!r}: expected 0 (pure install), 1 (require the Rust build) or unset")
    if mode == "0":
        return []
    cargo = os.environ.get("CARGO", "cargo")
    if mode == "1" and shutil.which(cargo) is None:
        sys.exit(
            f"CREWAI_RUST_BUILD=1 requires the Rust build, but {cargo!r} was not found on PATH. "
            "Install Rust (https://rustup.rs) or unset CREWAI_RUST_BUILD for the pure-Python package."
        )
    return [
        RustExtension(
            "crewai_rust._speedups",
            path="rust/Cargo.toml",
            binding=Binding.PyO3,
            # setuptools-rust sets PYO3_BUILD_EXTENSION_MODULE (PyO3's deprecated
            # `extension-module` feature is not needed); --locked builds exactly the
            # committed Cargo.lock, so an sdist never resolves newer crates.
            cargo_manifest_args=["--locked"],
            optional=(mode != "1"),
            debug=os.environ.get("CREWAI_RUST_DEBUG", "") == "1",
        )
    ]


setup(rust_extensions=_rust_extensions(), zip_safe=False)
