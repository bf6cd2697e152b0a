"""Debian packages for the built-in images, fetched and checked by mux itself.

Theory: the images are built from one Debian suite (``MUX_IMAGE_SUITE``, default
``trixie``) whatever the host runs, so a recipe gives the same bytes on every host and no
apt, dpkg or root is needed. Trust follows Debian's own chain, and nothing is used or
cached before its link is checked:

1. ``dists/<suite>/InRelease`` is verified with ``gpgv`` against the archive keys shipped
   in ``guest_images/keys/``; only the signed text is read, and it must name the suite.
2. That text gives the size and SHA256 of ``main/binary-amd64/Packages.xz``.
3. Each stanza of that index gives the size and SHA256 of its ``.deb``.

Downloads land in a temporary file beside their cache entry and are renamed in only
after their check: a tampered or truncated file is refused with its name and never
cached. Caches, under :func:`cache_home` (``~/.cache/mux``): ``debian/<suite>/`` holds
the last verified ``InRelease`` and ``Packages.xz`` (checked again when read; a build
refreshes them after :data:`INDEX_MAX_AGE_S`) and ``resolved.json``, the look-ups already
made in that index (reading all of it takes about 1.5 s); ``debs/<sha256>.deb`` the
packages.

The mirror: ``MUX_DEBIAN_MIRROR``, else the Debian mirror the host's apt sources name,
else :data:`DEFAULT_MIRROR`.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mux.errors import ImageError
from mux.images.recipes import recipe_dir

SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "trixie"
DEFAULT_MIRROR = "https://deb.debian.org/debian"
INDEX = "main/binary-amd64/Packages.xz"
INDEX_MAX_AGE_S = 6 * 3600
APT_SOURCES = Path("/etc/apt")
GPGV_PACKAGES = ("gpgv (Debian, Ubuntu, Alpine: gpgv; Fedora: gnupg2; Arch: gnupg;"
                 " openSUSE: gpg2)")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """Where the packages come from, and why that mirror (said in errors)."""

    mirror: str
    suite: str
    mirror_from: str

    def url(self, path: str) -> str:
        return f"{self.mirror.rstrip('/')}/{path}"


@dataclass(frozen=True)
class Package:
    """One stanza of the index: enough to fetch and check the ``.deb``."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    depends: str = ""


def cache_home() -> Path:
    """``$MUX_CACHE_DIR`` (everything in one place), else ``$XDG_CACHE_HOME/mux``, else
    ``~/.cache/mux``."""
    if env := os.environ.get("MUX_CACHE_DIR"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mux"


def keyring() -> Path:
    return recipe_dir() / "keys" / "debian-archive-keyring.pgp"


def source(apt_dir: Path = APT_SOURCES) -> Source:
    """The suite and mirror to build from. Raises ImageError for an unknown suite."""
    suite = os.environ.get("MUX_IMAGE_SUITE") or DEFAULT_SUITE
    if suite not in SUITES:
        raise ImageError(f"MUX_IMAGE_SUITE={suite!r}: the built-in images are built from"
                         f" {' or '.join(SUITES)}")
    if mirror := os.environ.get("MUX_DEBIAN_MIRROR"):
        return Source(mirror, suite, "MUX_DEBIAN_MIRROR")
    if mirror := host_mirror(apt_dir):
        return Source(mirror, suite, f"the host's apt sources ({apt_dir})")
    return Source(DEFAULT_MIRROR, suite, "the default mirror")


def host_mirror(apt_dir: Path = APT_SOURCES) -> str | None:
    """The first Debian archive (not security) with ``main`` in the host's apt sources,
    one-line or deb822 format; None on a host without them."""
    for uri, components in _apt_entries(apt_dir):
        if "main" in components and "/debian" in uri and "security" not in uri:
            return uri
    return None


def _apt_entries(apt_dir: Path) -> Iterable[tuple[str, list[str]]]:
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        for line in _read(path).splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb":
                yield words[1], words[3:]
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", _read(path)):
            fields = _stanza(stanza)
            if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                for uri in fields.get("URIs", "").split():
                    yield uri, fields.get("Components", "main").split()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeError):
        return ""


def _stanza(text: str) -> dict[str, str]:
    """One deb822 paragraph: field -> value, continuation lines joined with newlines."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


# --- the index --------------------------------------------------------------------------


class Index:
    """A verified ``Packages.xz`` of one suite, read only when a look-up needs it."""

    def __init__(self, src: Source, directory: Path, release_sha256: str) -> None:
        self.source, self._directory, self.release_sha256 = src, directory, release_sha256
        self._packages: dict[str, Package] | None = None

    def resolve(self, kernel: str, names: Iterable[str]) -> dict[str, Package]:
        """``kernel`` (a metapackage such as ``linux-image-amd64`` is followed to the
        ABI package it depends on) and ``names``, in that order. Raises ImageError for a
        package the suite does not have."""
        names = list(names)
        query = " ".join([kernel, *names])
        memo = self._memo()
        if answer := memo.get(query):
            try:
                return {name: Package(name, str(f[0]), str(f[1]), str(f[2]), int(str(f[3])),
                                      str(f[4])) for name, f in answer.items()}
            except (IndexError, ValueError, TypeError, AttributeError):
                pass  # a damaged memo: look it up again

        kernel_package = self._lookup(kernel)
        target = _first_kernel_dependency(kernel_package)
        resolved = {p.name: p for p in [self._lookup(target) if target else kernel_package,
                                        *map(self._lookup, names)]}
        memo[query] = {n: [p.version, p.filename, p.sha256, p.size, p.depends]
                       for n, p in resolved.items()}
        _write_json(self._directory / "resolved.json",
                    {"release_sha256": self.release_sha256, "answers": memo})
        return resolved

    def _memo(self) -> dict[str, dict[str, list[object]]]:
        try:
            data = json.loads((self._directory / "resolved.json").read_text())
            if data.get("release_sha256") == self.release_sha256:
                return dict(data["answers"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return {}

    def _lookup(self, name: str) -> Package:
        if self._packages is None:
            self._packages = _parse_packages(self._directory / "Packages.xz")
        if name not in self._packages:
            raise ImageError(f"Debian {self.source.suite} ({self.source.mirror}) has no package"
                             f" {name!r} in {INDEX}")
        return self._packages[name]


def _first_kernel_dependency(package: Package) -> str | None:
    for alternatives in package.depends.split(","):
        name = alternatives.split("|")[0].split("(")[0].strip()
        if name.startswith("linux-image-") and name != package.name:
            return name
    return None


def _parse_packages(path: Path) -> dict[str, Package]:
    try:
        text = lzma.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    except (OSError, lzma.LZMAError) as exc:
        raise ImageError(f"{path}: unreadable package index: {exc}") from exc
    packages: dict[str, Package] = {}
    for stanza in text.split("\n\n"):
        f = _stanza(stanza)
        try:
            package = Package(f["Package"], f["Version"], f["Filename"], f["SHA256"],
                              int(f["Size"]), f.get("Depends", ""))
        except (KeyError, ValueError):
            continue
        packages.setdefault(package.name, package)
    return packages


def load_index(src: Source, *, online: bool, progress: Progress = print) -> Index:
    """The suite's verified index: the cached one, refreshed from the mirror first when
    ``online`` and older than :data:`INDEX_MAX_AGE_S` (a failed refresh falls back to the
    cached index, and says so). Raises ImageError when there is none to be had."""
    directory = cache_home() / "debian" / src.suite
    inrelease, packages = directory / "InRelease", directory / "Packages.xz"
    cached = inrelease.is_file() and packages.is_file()
    age = time.time() - inrelease.stat().st_mtime if cached else 0.0
    if online and (not cached or age > INDEX_MAX_AGE_S):
        try:
            return Index(src, directory, _refresh(src, directory, progress))
        except ImageError as exc:
            if not cached:
                raise
            progress(f"cannot refresh Debian {src.suite}'s index, using the one from"
                     f" {age / 3600:.0f} h ago: {exc}")
    if not cached:
        raise ImageError(f"no Debian {src.suite} package index in {directory} yet:"
                         " `mux images build` fetches it")
    release = verify_release(inrelease, src.suite)
    check_file(packages, *release.get(INDEX, (-1, "")), what=str(packages))
    return Index(src, directory, hashlib.sha256(inrelease.read_bytes()).hexdigest())


def _refresh(src: Source, directory: Path, progress: Progress) -> str:
    """Fetch and check InRelease and Packages.xz, then put both in place; the SHA256 of
    the InRelease."""
    directory.mkdir(parents=True, exist_ok=True)
    progress(f"fetching Debian {src.suite}'s index from {src.mirror} ({src.mirror_from})")
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=directory) as tmp:
        inrelease, packages = Path(tmp) / "InRelease", Path(tmp) / "Packages.xz"
        download(src.url(f"dists/{src.suite}/InRelease"), inrelease, progress)
        release = verify_release(inrelease, src.suite, src.url(f"dists/{src.suite}/InRelease"))
        if INDEX not in release:
            raise ImageError(f"{src.url(f'dists/{src.suite}/InRelease')} lists no {INDEX}")
        size, sha256 = release[INDEX]
        url = src.url(f"dists/{src.suite}/{INDEX}")
        download(url, packages, progress, size)
        check_file(packages, size, sha256, what=url)
        os.replace(packages, directory / "Packages.xz")
        os.replace(inrelease, directory / "InRelease")
    return hashlib.sha256((directory / "InRelease").read_bytes()).hexdigest()


def verify_release(inrelease: Path, suite: str, name: str | None = None) -> dict[str, tuple[int, str]]:
    """Check ``inrelease``'s signature with gpgv and the archive keys; the SHA256 list of
    its signed text (path -> (size, sha256)). Raises ImageError naming ``name`` (default:
    the file) for a bad or missing signature, another suite, or no gpgv."""
    name = name or str(inrelease)
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ImageError(f"checking Debian's signature on {name} needs gpgv, which is not"
                         f" installed: install {GPGV_PACKAGES}")
    with tempfile.TemporaryDirectory(prefix="mux-gpgv-") as home:
        signed = Path(home) / "Release"
        proc = subprocess.run(
            [gpgv, "--homedir", home, "--status-fd", "1", "--keyring", str(keyring()),
             "--output", str(signed), str(inrelease)],
            capture_output=True, text=True, check=False)
        status = proc.stdout.splitlines()
        good = [line for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
        bad = [line for line in status if line.startswith("[GNUPG:] BADSIG ")]
        if not good or bad or not signed.is_file():
            raise ImageError(f"{name}: not signed by the Debian archive keys in {keyring()}"
                             f" (gpgv: {proc.stderr.strip()[-600:] or 'no signature'})")
        fields = _stanza(signed.read_text(errors="replace"))
    if suite not in (fields.get("Codename"), fields.get("Suite")):
        raise ImageError(f"{name}: signed for {fields.get('Codename') or 'no suite'}, not {suite}")
    checksums: dict[str, tuple[int, str]] = {}
    for line in fields.get("SHA256", "").splitlines():
        words = line.split()
        if len(words) == 3 and words[1].isdigit():
            checksums[words[2]] = (int(words[1]), words[0].lower())
    return checksums


def check_file(path: Path, size: int, sha256: str, *, what: str) -> None:
    """Raises ImageError naming ``what`` unless ``path`` has that size and SHA256."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ImageError(f"{what}: {actual_size} bytes, but the signed index says {size}:"
                         " refused (tampered with, or a broken mirror)")
    if (actual := sha256_of(path)) != sha256:
        raise ImageError(f"{what}: SHA256 {actual} is not the signed index's"
                         f" {sha256}: refused (tampered with, or a broken mirror)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- packages -------------------------------------------------------------------------


def fetch_deb(src: Source, package: Package, progress: Progress = print) -> Path:
    """The checked ``.deb`` of ``package``, from the cache or the mirror. Raises
    ImageError (naming the URL) when it cannot be fetched or fails its check."""
    if not re.fullmatch(r"[0-9a-f]{64}", package.sha256):
        raise ImageError(f"{package.name}: the index gives no SHA256 for it")
    debs = cache_home() / "debs"
    final = debs / f"{package.sha256}.deb"
    if final.is_file():
        try:
            check_file(final, package.size, package.sha256, what=str(final))
            return final
        except ImageError:
            final.unlink(missing_ok=True)
    debs.mkdir(parents=True, exist_ok=True)
    url = src.url(package.filename)
    fd, partial = tempfile.mkstemp(prefix=f".{package.name}-", suffix=".partial", dir=debs)
    os.close(fd)
    try:
        progress(f"downloading {package.name} {package.version} ({package.size / 1e6:.1f} MB)")
        download(url, Path(partial), progress, package.size)
        check_file(Path(partial), package.size, package.sha256, what=url)
        os.replace(partial, final)
    finally:
        Path(partial).unlink(missing_ok=True)
    return final


def download(url: str, dest: Path, progress: Progress, size: int | None = None) -> None:
    """Write ``url`` to ``dest``, saying how far it got every quarter of a large file.
    Reads at most ``size`` bytes plus one, when given (a longer answer is refused by the
    caller's check). Raises ImageError naming the URL."""
    limit = size + 1 if size is not None else 64 << 20
    try:
        with urllib.request.urlopen(url, timeout=60) as answer, dest.open("wb") as out:
            total = size or int(answer.headers.get("Content-Length") or 0)
            done, next_report = 0, total // 4
            while chunk := answer.read(min(1 << 20, limit - done)):
                out.write(chunk)
                done += len(chunk)
                if total > 8 << 20 and done >= next_report > 0 and done < total:
                    progress(f"  {url.rsplit('/', 1)[-1]}: {done * 100 // total}%"
                             f" of {total / 1e6:.0f} MB")
                    next_report += total // 4
                if done >= limit:
                    break
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ImageError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from exc


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only a look-up memo: the next call reads the index again
