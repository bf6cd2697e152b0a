"""The one thing pyproject.toml cannot say: the guest image recipes live at the top
level in ``guest_images/`` and ship inside the package as ``mux.guest_images`` (with
``packages.find`` setuptools ignores a ``package-dir`` entry outside the found tree).
Data directories (``mux/data``, each recipe's) are listed as namespace packages, so
setuptools ships their files (package-data ``"*"`` in pyproject.toml) without a warning
per directory."""

from setuptools import find_namespace_packages, setup

NOT_PACKAGES = ["*__pycache__"]
MUX = find_namespace_packages(include=["mux", "mux.*"], exclude=NOT_PACKAGES)
RECIPES = [f"mux.guest_images.{name}"
           for name in find_namespace_packages(where="guest_images", exclude=NOT_PACKAGES)]

setup(
    packages=[*MUX, "mux.guest_images", *RECIPES],
    package_dir={"mux.guest_images": "guest_images"},
)
