"""Odoo 18 on demand: use an installed one, else build one in a cache and reuse it.

A build takes Odoo's source from ``ODOO_SRC`` (a git URL, a local git repository,
bare or not, or a plain source folder; default: the official repository) at
``ODOO_REF`` (branch, tag or commit; default ``18.0`` for a URL, ``HEAD`` for a
local repository), and makes ``<cache>/bjet_api_sync-odoo-<commit>-py<X.Y>/``
with the source, a virtual environment holding Odoo's ``requirements.txt`` and a
``.complete`` marker written last.  Work happens in a ``.partial-<pid>`` sibling
renamed at the end, so a half-built cache is never taken for a finished one.  The
addon's own requirements (its manifest's ``external_dependencies``) are added to a
cached build on every run when missing.

Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hutil import MODULE, REPO, HarnessError, run_quiet, say

DEFAULT_SRC = "https://github.com/odoo/odoo.git"
DEFAULT_URL_REF = "18.0"
# Odoo 18 supports these Python versions (its requirements.txt pins per version).
PYTHON_RANGE = ((3, 10), (3, 12))
# cbor2's pin in Odoo's requirements builds only with setuptools<70, and pip
# builds it in an isolated environment: a constraint file reaches in there.
# gevent 22 loads its plugins through that setuptools' pkg_resources, which
# cannot find zope.interface >= 7 or zope.event >= 5.1 (their metadata folders
# use normalized names): the gevent process would die at start.
PIP_CONSTRAINTS = "setuptools<70\nzope.interface<7\nzope.event<5.1\n"
# Beside requirements.txt: gevent needs zope.interface at run time; browser
# tours drive Chromium through websocket-client.
EXTRA_REQUIREMENTS = ("zope.interface", "websocket-client")
# The linters of `make lint` (and so of `make test`), pinned so that every machine
# lints alike; pylint-odoo at the pin of OCA's addons repository template for Odoo 18.
LINT_REQUIREMENTS = ("ruff==0.17.6", "pylint-odoo==9.1.3")
COMPLETE_MARKER = ".complete"
BUILD_INFO = "build.json"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
SCP_URL_RE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@host:owner/repo.git


# --------------------------------------------------------------------------
# Where Odoo's source comes from
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    kind: str  # "url", "git" (a local repository) or "folder"
    location: str
    ref: str  # branch, tag or commit; "" for a folder
    default: bool = False  # nobody set ODOO_SRC

    def describe(self) -> str:
        return f"{self.location}" + (f" at {self.ref}" if self.ref else "")


def is_url(value: str) -> bool:
    return "://" in value or bool(SCP_URL_RE.match(value))


def is_git_dir(path: Path) -> bool:
    """True for a work tree or a bare repository (but not a folder inside one)."""
    if not path.is_dir():
        return False
    proc = run_quiet(["git", "-C", str(path), "rev-parse", "--absolute-git-dir"])
    if proc.returncode != 0:
        return False
    git_dir = Path(proc.stdout.strip())
    return git_dir == path.resolve() or git_dir.parent == path.resolve()


def source_from(src: str | None, ref: str | None) -> Source:
    """Classify ODOO_SRC / ODOO_REF (None or empty when unset)."""
    if not src:
        return Source("url", DEFAULT_SRC, ref or DEFAULT_URL_REF, default=True)
    if is_url(src):
        return Source("url", src, ref or DEFAULT_URL_REF)
    path = Path(src).expanduser().resolve()
    if not path.is_dir():
        raise HarnessError(f"ODOO_SRC={src}: no such folder, and not a git URL")
    if shutil.which("git") and is_git_dir(path):
        return Source("git", str(path), ref or "HEAD")
    if not (path / "odoo" / "release.py").is_file():
        raise HarnessError(f"ODOO_SRC={src} is neither a git repository nor an Odoo source folder")
    if ref:
        raise HarnessError(f"ODOO_REF={ref} needs a git source, but ODOO_SRC={src} is a folder")
    return Source("folder", str(path), "")


def resolve_key(source: Source) -> str:
    """The commit (40 hex digits) the source points at; a content hash for a folder."""
    if source.kind == "folder":
        # No commit to name it by: the folder's identity and its Odoo version.
        digest = hashlib.sha1(source.location.encode())
        for name in ("odoo/release.py", "requirements.txt"):
            with contextlib.suppress(OSError):
                digest.update((Path(source.location) / name).read_bytes())
        return digest.hexdigest()
    if source.kind == "git":
        proc = run_quiet(
            [
                "git",
                "-C",
                source.location,
                "rev-parse",
                "--verify",
                "-q",
                f"{source.ref}^{{commit}}",
            ]
        )
        if proc.returncode != 0:
            raise HarnessError(f"ODOO_REF={source.ref} is not a commit of {source.location}")
        return proc.stdout.strip()
    if SHA_RE.match(source.ref):
        return source.ref
    # The peeled line of an annotated tag (x^{}) only shows when asked for.
    patterns = [source.ref, f"{source.ref}^{{}}"]
    try:
        proc = run_quiet(["git", "ls-remote", source.location, *patterns], timeout=60)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"cannot reach {source.location}: no answer within 60s") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise HarnessError(f"cannot reach {source.location}: {reason}")
    # Prefer the exact branch or tag, then a peeled tag (refs/tags/x^{}).
    refs = dict(line.split("\t")[::-1] for line in proc.stdout.splitlines() if "\t" in line)
    for name in (
        f"refs/heads/{source.ref}",
        f"refs/tags/{source.ref}^{{}}",
        f"refs/tags/{source.ref}",
        source.ref,
    ):
        if name in refs:
            return refs[name]
    raise HarnessError(f"{source.location} has no branch or tag {source.ref!r} (ODOO_REF)")


# --------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------


def cache_root(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or "~") / ".cache")
    return Path(base).expanduser().resolve()


def python_tag(version: tuple[int, int]) -> str:
    return f"py{version[0]}.{version[1]}"


def cache_name(key: str, version: tuple[int, int]) -> str:
    return f"{MODULE}-odoo-{key[:12]}-{python_tag(version)}"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and venv_python(path).exists()


def venv_python(build: Path) -> Path:
    return build / "venv" / "bin" / "python"


def newest_complete(root: Path, version: tuple[int, int]) -> Path | None:
    """The most recently finished build for this Python, for working offline."""
    builds = [
        path
        for path in root.glob(f"{MODULE}-odoo-*-{python_tag(version)}")
        if path.is_dir() and is_complete(path)
    ]
    return max(builds, key=lambda p: (p / COMPLETE_MARKER).stat().st_mtime, default=None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned(target: Path) -> list[Path]:
    """Delete half-built siblings of ``target`` whose builder is gone, and
    ``target`` itself when it has no marker (a crash right after the rename)."""
    removed = []
    for partial in target.parent.glob(f"{target.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    if target.exists() and not is_complete(target):
        shutil.rmtree(target, ignore_errors=True)
        removed.append(target)
    return removed


# --------------------------------------------------------------------------
# System packages (Debian / Ubuntu names)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemNeed:
    package: str
    present: Callable[[], bool]


def _which_any(*names: str) -> Callable[[], bool]:
    return lambda: any(shutil.which(name) for name in names)


def _file(path: str) -> Callable[[], bool]:
    return lambda: Path(path).exists()


def _postgres_installed() -> bool:
    return bool(shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


POSTGRES = SystemNeed("postgresql", _postgres_installed)
# The names Odoo's browser tests look for (odoo/tests/common.py).
CHROMIUM = SystemNeed("chromium", _which_any("chromium", "chromium-browser", "google-chrome"))
GIT = SystemNeed("git", _which_any("git"))
# What Odoo 18's requirements compile against: psycopg2 (pg_config, libpq),
# python-ldap (ldap.h, sasl.h), and a C compiler for both.
BUILD_NEEDS = (
    SystemNeed("gcc", _which_any("gcc", "cc")),
    SystemNeed("libpq-dev", _which_any("pg_config")),
    SystemNeed("libldap2-dev", _file("/usr/include/ldap.h")),
    SystemNeed("libsasl2-dev", _file("/usr/include/sasl/sasl.h")),
)


def missing_packages(needs: tuple[SystemNeed, ...] | list[SystemNeed]) -> list[str]:
    return sorted({need.package for need in needs if not need.present()})


def os_release(path: Path = Path("/etc/os-release")) -> set[str]:
    """The ID and ID_LIKE words of the running distribution."""
    words: set[str] = set()
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("ID", "ID_LIKE"):
                words.update(value.strip().strip('"').split())
    return words


def apt_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def can_apt(is_root: bool, distro: set[str]) -> bool:
    return is_root and bool({"debian", "ubuntu"} & distro) and bool(shutil.which("apt-get"))


def ensure_system_packages(needs: list[SystemNeed], why: str) -> None:
    packages = missing_packages(needs)
    if not packages:
        return
    line = shlex.join(apt_command(packages))
    if not can_apt(os.geteuid() == 0, os_release()):
        raise HarnessError(
            f"missing system packages for {why}: {' '.join(packages)}\n"
            f"install them (Debian/Ubuntu names; as root) and run the command again:\n"
            f"  apt-get update && {line}",
            2,
        )
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with step(f"installing system packages {' '.join(packages)} ({why})", retry=line):
        checked("apt-get update", ["apt-get", "update"], env=apt_env)
        checked(line, apt_command(packages), env=apt_env)


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


@contextlib.contextmanager
def step(what: str, *, retry: str) -> Iterator[None]:
    """One progress line per step, with its duration, or what failed and how to retry."""
    started = time.monotonic()
    try:
        yield
    except HarnessError as exc:
        raise HarnessError(
            f"{what}: failed after {time.monotonic() - started:.0f}s: {exc}\nretry with: {retry}",
            exc.exit_code,
        ) from None
    say(f"{what}: done in {time.monotonic() - started:.1f}s")


def checked(label: str, cmd: list[str], **kwargs) -> str:
    proc = run_quiet(cmd, **kwargs)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        raise HarnessError(f"`{label}` exited with {proc.returncode}:\n" + "\n".join(output[-25:]))
    return proc.stdout


def python_version(python: str) -> tuple[int, int]:
    out = checked(python, [python, "-c", "import sys; print(*sys.version_info[:2])"])
    major, minor = out.split()
    return int(major), int(minor)


def fetch_source(source: Source, key: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    if source.kind == "folder":
        shutil.rmtree(dest)
        shutil.copytree(source.location, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return
    if source.kind == "url":
        # Servers need not serve a commit by its id: fetch the ref and check
        # that it still points where resolve_key found it.
        checked("git init", ["git", "init", "-q", str(dest)])
        wanted = key if SHA_RE.match(source.ref) else source.ref
        fetch = ["git", "-C", str(dest), "fetch", "-q", "--depth", "1", source.location, wanted]
        checked(shlex.join(fetch), fetch, timeout=1800)
        checked("git checkout", ["git", "-C", str(dest), "checkout", "-q", "--detach", key])
        shutil.rmtree(dest / ".git")
        return
    # A local repository, bare or not: export the commit's tree, no history.
    archive = f"git -C {shlex.quote(source.location)} archive --format=tar {key}"
    extract = f"tar -x -C {shlex.quote(str(dest))}"
    checked(archive, ["bash", "-o", "pipefail", "-c", f"{archive} | {extract}"])


def site_packages(python: Path) -> Path:
    out = checked(
        str(python), [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    )
    return Path(out.strip())


def build(source: Source, key: str, base_python: str, target: Path) -> None:
    version = python_version(base_python)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    retry = "the same make command (a failed build is started over)"
    needs = [*BUILD_NEEDS] + ([GIT] if source.kind != "folder" else [])
    ensure_system_packages(needs, "building Odoo's Python requirements")
    say(f"building Odoo 18 from {source.describe()} ({key[:12]}) into {target}")
    try:
        with step(f"fetching the Odoo source {key[:12]}", retry=retry):
            fetch_source(source, key, partial / "src")
            release = (partial / "src" / "odoo" / "release.py").read_text()
            if "version_info = (18," not in release:
                raise HarnessError(f"{source.describe()} is not Odoo 18")
        with step(f"creating a Python {version[0]}.{version[1]} virtual environment", retry=retry):
            checked("venv", [base_python, "-m", "venv", str(partial / "venv")])
        python = str(venv_python(partial))
        constraints = partial / "constraints.txt"
        constraints.write_text(PIP_CONSTRAINTS)
        pip_env = {
            **os.environ,
            "PIP_CONSTRAINT": str(constraints),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        pip = [python, "-m", "pip", "install", "-q"]
        with step("installing Odoo's requirements.txt (several minutes)", retry=retry):
            checked("pip install setuptools wheel", [*pip, "setuptools", "wheel"], env=pip_env)
            requirements = ["-r", str(partial / "src" / "requirements.txt"), *EXTRA_REQUIREMENTS]
            checked(
                "pip install -r requirements.txt", [*pip, *requirements], env=pip_env, timeout=3600
            )
        try:
            partial.rename(target)
        except OSError:
            if is_complete(target):  # another build of the same commit won the race
                return
            raise
        # Written after the rename: the path must be the final one.  The
        # virtual environment itself only refers to its base interpreter.
        (site_packages(venv_python(target)) / "odoo_source.pth").write_text(f"{target / 'src'}\n")
        (target / "constraints.txt").write_text(PIP_CONSTRAINTS)
        info = {
            "source": source.location,
            "ref": source.ref,
            "commit": key,
            "python": f"{version[0]}.{version[1]}",
            "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        (target / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        (target / COMPLETE_MARKER).write_text("")
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# --------------------------------------------------------------------------
# The addon's own Python requirements
# --------------------------------------------------------------------------

# Which of the requirements (argv[1], JSON) the interpreter lacks, judged as
# Odoo judges a manifest's external_dependencies: installed distribution,
# version specifier, environment marker.
_REQUIREMENTS_PROBE = """
import importlib.metadata, json, sys
from packaging.requirements import Requirement
missing = []
for text in json.loads(sys.argv[1]):
    requirement = Requirement(text)
    if requirement.marker and not requirement.marker.evaluate():
        continue
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None or not requirement.specifier.contains(version):
        missing.append(text)
print(json.dumps(missing))
"""


def manifest_requirements(manifest: Path = REPO / "__manifest__.py") -> list[str]:
    """The Python packages the addon's manifest declares (external_dependencies)."""
    values = ast.literal_eval(manifest.read_text())
    return list(values.get("external_dependencies", {}).get("python", []))


def missing_requirements(python: str, requirements: list[str]) -> list[str]:
    out = checked(
        f"{python} (requirements probe)",
        [python, "-c", _REQUIREMENTS_PROBE, json.dumps(requirements)],
    )
    return json.loads(out.strip().splitlines()[-1])


def ensure_addon_requirements(odoo: OdooInstall) -> None:
    """What the manifest needs (see ensure_requirements)."""
    ensure_requirements(odoo, manifest_requirements(), "the addon's requirements")


def ensure_requirements(odoo: OdooInstall, requirements: list[str] | tuple[str, ...],
                        what: str) -> None:
    """Install the ``requirements`` that Odoo's interpreter lacks: into a cached build
    on every run (a build made before a requirement was added gets it too), else say
    the command to run."""
    missing = missing_requirements(odoo.python, list(requirements))
    if not missing:
        return
    line = shlex.join([odoo.python, "-m", "pip", "install", *missing])
    if not odoo.cached:
        raise HarnessError(
            f"{odoo.python} lacks Python packages ({what}): {' '.join(missing)}\n"
            f"install them and run the command again:\n  {line}",
            2,
        )
    constraints = odoo.bin_dir.parent.parent / "constraints.txt"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if constraints.is_file():
        pip_env["PIP_CONSTRAINT"] = str(constraints)
    with step(f"installing {what} {' '.join(missing)}", retry=line):
        checked(line, [odoo.python, "-m", "pip", "install", "-q", *missing], env=pip_env)


# --------------------------------------------------------------------------
# Finding Odoo
# --------------------------------------------------------------------------

_ODOO_PROBE = """
import json, os, sys, odoo.release
print(json.dumps({"major": odoo.release.version_info[0], "version": odoo.release.version,
                  "root": os.path.dirname(os.path.abspath(odoo.__file__))}))
"""


@dataclass
class OdooInstall:
    python: str  # the interpreter that runs Odoo
    entry_point: str  # odoo-bin (a source tree) or the packaged `odoo` script
    version: str
    addons_paths: list[str]  # Odoo's own addons directories
    origin: str  # for the progress line
    cached: bool = False  # a build of ours, whose environment we may add to

    @property
    def bin_dir(self) -> Path:
        return Path(self.python).parent


def probe(python: str) -> OdooInstall | str:
    """The Odoo 18 that ``python`` imports, or why there is none."""
    proc = run_quiet([python, "-c", _ODOO_PROBE])
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["it does not run"])[-1]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["major"] != 18:
        return f"it imports Odoo {info['version']}, this addon needs Odoo 18"
    root = Path(info["root"])
    # Restarts (limit_time_real, SIGHUP) re-execute sys.argv: Odoo must be
    # started by a script, not by `python -m odoo`.
    entry = next(
        (p for p in (root.parent / "odoo-bin", Path(python).parent / "odoo") if p.is_file()), None
    )
    if entry is None:
        return f"Odoo at {root} has no odoo-bin or odoo script to start it with"
    # Packaged Odoo (and the snapshot builds) keep every addon in odoo/addons; a
    # git checkout keeps only base there and the rest in <checkout>/addons.
    paths = [root / "addons"]
    if not (root / "addons" / "web").is_dir():
        paths.append(root.parent / "addons")
    if not any((path / "web").is_dir() for path in paths):
        return f"Odoo {info['version']} at {root} has no 'web' addon"
    return OdooInstall(python, str(entry), info["version"], [str(p) for p in paths], "")


def find_odoo() -> OdooInstall:
    """An installed Odoo 18 wins; else a cached build, made now if needed."""
    explicit = os.environ.get("ODOO_PYTHON")
    python = explicit or sys.executable
    found = probe(python)
    if isinstance(found, OdooInstall):
        found.origin = f"installed, run by {python}"
        return found
    say(f"{'ODOO_PYTHON=' if explicit else ''}{python} cannot import Odoo 18 ({found})")
    version = python_version(python)
    if not PYTHON_RANGE[0] <= version <= PYTHON_RANGE[1]:
        raise HarnessError(
            f"{python} is Python {version[0]}.{version[1]}; Odoo 18 needs 3.10 to 3.12: "
            "name one with ODOO_PYTHON=/path/to/python3.11",
            2,
        )
    return cached_build(python, version)


def cached_build(python: str, version: tuple[int, int]) -> OdooInstall:
    source = source_from(os.environ.get("ODOO_SRC"), os.environ.get("ODOO_REF"))
    root = cache_root()
    try:
        key = resolve_key(source)
    except HarnessError as exc:
        fallback = newest_complete(root, version) if source.default else None
        if fallback is None:
            raise HarnessError(
                f"{exc}\nset ODOO_SRC to a reachable git URL, a local git repository or an "
                "Odoo source folder",
                2,
            ) from None
        say(f"{exc}; working offline with the newest cached build {fallback}")
        return installed_from(fallback)
    target = root / cache_name(key, version)
    if not is_complete(target):
        root.mkdir(parents=True, exist_ok=True)
        for path in remove_abandoned(target):
            say(f"removed an unfinished build {path}")
        build(source, key, python, target)
    return installed_from(target)


def installed_from(build_dir: Path) -> OdooInstall:
    found = probe(str(venv_python(build_dir)))
    if not isinstance(found, OdooInstall):
        raise HarnessError(
            f"the cached build {build_dir} does not work ({found}): delete it and run again", 2
        )
    found.origin = f"cached build {build_dir}"
    found.cached = True
    return found
