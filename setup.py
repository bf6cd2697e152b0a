"""The one thing pyproject.toml cannot say: the guest image recipes live at the top
level in ``guest_images/`` and ship inside the package as ``mux.guest_images`` (with
``packages.find`` setuptools ignores a ``package-dir`` entry outside the found tree)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mux", "mux.*"]), "mux.guest_images"],
    package_dir={"mux.guest_images": "guest_images"},
)
