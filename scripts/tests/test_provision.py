"""Source resolution, cache naming and reuse, system packages: plain Python,
real git repositories in temporary folders, no Odoo."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import provision
from hutil import HarnessError
from provision import Source, SystemNeed

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


class FakeOdooRepo(unittest.TestCase):
    """A git repository shaped like Odoo's source, with two commits, a branch
    ``18.0`` at the first, an annotated tag at the second, and a bare clone."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.repo = self.tmp / "odoo"
        (self.repo / "odoo").mkdir(parents=True)
        git(self.tmp, "init", "-q", "-b", "main", str(self.repo))
        self.write_release("18, 0, 0")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-q", "-m", "first")
        self.first = git(self.repo, "rev-parse", "HEAD")
        git(self.repo, "branch", "18.0")
        self.write_release("18, 0, 1")
        git(self.repo, "commit", "-q", "-am", "second")
        self.second = git(self.repo, "rev-parse", "HEAD")
        git(self.repo, "tag", "-a", "v18.1", "-m", "tag")
        self.bare = self.tmp / "bare.git"
        git(self.tmp, "clone", "-q", "--bare", str(self.repo), str(self.bare))

    def write_release(self, version: str) -> None:
        (self.repo / "odoo" / "release.py").write_text(
            f"version_info = ({version}, 'final', 0, '')\n"
        )
        (self.repo / "requirements.txt").write_text("requests\n")


class TestSourceFrom(FakeOdooRepo):
    def test_table(self):
        plain = self.tmp / "plain"
        (plain / "odoo").mkdir(parents=True)
        (plain / "odoo" / "release.py").write_text("version_info = (18, 0)\n")
        cases = [
            # (ODOO_SRC, ODOO_REF) -> (kind, location, ref, default)
            ((None, None), ("url", provision.DEFAULT_SRC, "18.0", True)),
            (("", ""), ("url", provision.DEFAULT_SRC, "18.0", True)),
            ((None, "saas-18.1"), ("url", provision.DEFAULT_SRC, "saas-18.1", True)),
            (
                ("https://example.com/o.git", None),
                ("url", "https://example.com/o.git", "18.0", False),
            ),
            (("git@example.com:o/o.git", "v1"), ("url", "git@example.com:o/o.git", "v1", False)),
            ((str(self.repo), None), ("git", str(self.repo.resolve()), "HEAD", False)),
            ((str(self.bare), "18.0"), ("git", str(self.bare.resolve()), "18.0", False)),
            ((str(plain), None), ("folder", str(plain.resolve()), "", False)),
        ]
        for (src, ref), expected in cases:
            with self.subTest(src=src, ref=ref):
                source = provision.source_from(src, ref)
                self.assertEqual(
                    (source.kind, source.location, source.ref, source.default), expected
                )

    def test_refused(self):
        inside = self.repo / "odoo"  # a folder inside a work tree is not a repository
        cases = [
            ((str(self.tmp / "missing"), None), "no such folder"),
            ((str(inside), None), "neither a git repository nor an Odoo source folder"),
            ((str(self.tmp), None), "neither a git repository nor an Odoo source folder"),
        ]
        for (src, ref), message in cases:
            with self.subTest(src=src), self.assertRaisesRegex(HarnessError, message):
                provision.source_from(src, ref)
        plain = self.tmp / "plain"
        (plain / "odoo").mkdir(parents=True)
        (plain / "odoo" / "release.py").write_text("")
        with self.assertRaisesRegex(HarnessError, "needs a git source"):
            provision.source_from(str(plain), "18.0")


class TestResolveKey(FakeOdooRepo):
    def test_git_refs(self):
        url = f"file://{self.repo}"
        cases = [
            (Source("git", str(self.repo), "HEAD"), self.second),
            (Source("git", str(self.repo), "18.0"), self.first),
            (Source("git", str(self.repo), "v18.1"), self.second),  # annotated tag: its commit
            (Source("git", str(self.repo), self.first[:10]), self.first),
            (Source("git", str(self.bare), "HEAD"), self.second),
            (Source("url", url, "18.0"), self.first),
            (Source("url", url, "main"), self.second),
            (Source("url", url, "v18.1"), self.second),
            (Source("url", url, self.first), self.first),  # a full commit id needs no network
        ]
        for source, expected in cases:
            with self.subTest(source=source):
                self.assertEqual(provision.resolve_key(source), expected)

    def test_unknown_refs(self):
        cases = [
            (Source("git", str(self.repo), "nope"), "not a commit"),
            (Source("url", f"file://{self.repo}", "nope"), "no branch or tag 'nope'"),
            (Source("url", f"file://{self.tmp}/missing", "18.0"), "cannot reach"),
        ]
        for source, message in cases:
            with self.subTest(source=source), self.assertRaisesRegex(HarnessError, message):
                provision.resolve_key(source)

    def test_folder_key_follows_the_content(self):
        source = Source("folder", str(self.repo), "")
        key = provision.resolve_key(source)
        self.assertRegex(key, r"^[0-9a-f]{40}$")
        self.assertEqual(provision.resolve_key(source), key)
        self.write_release("18, 0, 2")
        self.assertNotEqual(provision.resolve_key(source), key)


class TestFetchSource(FakeOdooRepo):
    def release_in(self, dest: Path) -> str:
        return (dest / "odoo" / "release.py").read_text()

    def test_each_kind_exports_the_commit_without_history(self):
        cases = [
            (Source("git", str(self.bare), "18.0"), self.first, "18, 0, 0"),
            (Source("git", str(self.repo), "HEAD"), self.second, "18, 0, 1"),
            (Source("url", f"file://{self.repo}", "18.0"), self.first, "18, 0, 0"),
            (Source("url", f"file://{self.repo}", "v18.1"), self.second, "18, 0, 1"),
            (Source("folder", str(self.repo), ""), "folder", "18, 0, 1"),
        ]
        for index, (source, key, version) in enumerate(cases):
            with self.subTest(source=source):
                dest = self.tmp / f"out{index}"
                provision.fetch_source(source, key, dest)
                self.assertIn(version, self.release_in(dest))
                self.assertFalse((dest / ".git").exists())

    def test_a_ref_that_moved_fails(self):
        source = Source("url", f"file://{self.repo}", "18.0")
        with self.assertRaisesRegex(HarnessError, "checkout"):
            provision.fetch_source(source, self.second, self.tmp / "out")


class TestCache(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.root = Path(tmp.name)

    def make_build(self, name: str, *, complete: bool, mtime: float | None = None) -> Path:
        path = self.root / name
        (path / "venv" / "bin").mkdir(parents=True)
        (path / "venv" / "bin" / "python").write_text("")
        if complete:
            marker = path / provision.COMPLETE_MARKER
            marker.write_text("")
            if mtime:
                os.utime(marker, (mtime, mtime))
        return path

    def test_cache_root(self):
        cases = [
            ({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, Path("/x/cache")),
            ({"XDG_CACHE_HOME": "", "HOME": "/home/u"}, Path("/home/u/.cache")),
            ({"HOME": "/home/u"}, Path("/home/u/.cache")),
        ]
        for environ, expected in cases:
            with self.subTest(environ=environ):
                self.assertEqual(provision.cache_root(environ), expected)

    def test_cache_name(self):
        self.assertEqual(
            provision.cache_name("0123456789abcdef" * 2 + "01234567", (3, 11)),
            "bjet_api_sync-odoo-0123456789ab-py3.11",
        )

    def test_only_a_marked_build_is_complete(self):
        done = self.make_build("done", complete=True)
        half = self.make_build("half", complete=False)
        self.assertTrue(provision.is_complete(done))
        self.assertFalse(provision.is_complete(half))
        (done / "venv" / "bin" / "python").unlink()
        self.assertFalse(provision.is_complete(done))

    def test_remove_abandoned(self):
        target = self.root / "bjet_api_sync-odoo-aaaaaaaaaaaa-py3.11"
        dead = subprocess.Popen(["true"])
        dead.wait()
        abandoned = self.make_build(f"{target.name}.partial-{dead.pid}", complete=False)
        running = self.make_build(f"{target.name}.partial-{os.getpid()}", complete=False)
        other = self.make_build("bjet_api_sync-odoo-bbbbbbbbbbbb-py3.11.partial-1", complete=False)
        self.make_build(target.name, complete=False)  # renamed, but the marker never came
        removed = provision.remove_abandoned(target)
        self.assertEqual(set(removed), {abandoned, target})
        self.assertTrue(running.exists())
        self.assertTrue(other.exists())
        done = self.make_build(target.name, complete=True)
        self.assertEqual(provision.remove_abandoned(target), [])
        self.assertTrue(done.exists())

    def test_newest_complete(self):
        self.make_build("bjet_api_sync-odoo-aaaaaaaaaaaa-py3.11", complete=True, mtime=1000)
        newest = self.make_build(
            "bjet_api_sync-odoo-bbbbbbbbbbbb-py3.11", complete=True, mtime=2000
        )
        self.make_build("bjet_api_sync-odoo-cccccccccccc-py3.11", complete=False)
        self.make_build("bjet_api_sync-odoo-dddddddddddd-py3.12", complete=True, mtime=3000)
        self.assertEqual(provision.newest_complete(self.root, (3, 11)), newest)
        self.assertIsNone(provision.newest_complete(self.root, (3, 10)))

    def test_offline_default_source_reuses_the_newest_build(self):
        newest = self.make_build("bjet_api_sync-odoo-bbbbbbbbbbbb-py3.11", complete=True)
        unreachable = HarnessError("cannot reach https://github.com/odoo/odoo.git")
        cases = [({}, newest), ({"ODOO_SRC": "https://example.com/odoo.git"}, None)]
        for environ, expected in cases:
            with self.subTest(environ=environ), contextlib.ExitStack() as stack:
                # Whatever the machine running the tests has set.
                kept = {k: v for k, v in os.environ.items() if k not in ("ODOO_SRC", "ODOO_REF")}
                stack.enter_context(mock.patch.dict(os.environ, {**kept, **environ}, clear=True))
                stack.enter_context(mock.patch.object(provision, "cache_root", lambda: self.root))
                stack.enter_context(
                    mock.patch.object(provision, "resolve_key", side_effect=unreachable)
                )
                installed = stack.enter_context(mock.patch.object(provision, "installed_from"))
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
                if expected is None:
                    with self.assertRaisesRegex(HarnessError, "cannot reach"):
                        provision.cached_build("python3", (3, 11))
                else:
                    provision.cached_build("python3", (3, 11))
                    installed.assert_called_once_with(expected)


class TestSystemPackages(unittest.TestCase):
    def test_missing_packages(self):
        needs = [
            SystemNeed("b-pkg", lambda: False),
            SystemNeed("a-pkg", lambda: False),
            SystemNeed("a-pkg", lambda: False),
            SystemNeed("there", lambda: True),
        ]
        self.assertEqual(provision.missing_packages(needs), ["a-pkg", "b-pkg"])

    def test_os_release(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n')
        self.addCleanup(os.unlink, handle.name)
        self.assertEqual(provision.os_release(Path(handle.name)), {"ubuntu", "debian"})
        self.assertEqual(provision.os_release(Path(handle.name + ".missing")), set())

    def test_can_apt(self):
        with mock.patch.object(provision.shutil, "which", return_value="/usr/bin/apt-get"):
            cases = [
                (True, {"debian"}, True),
                (True, {"ubuntu", "debian"}, True),
                (False, {"debian"}, False),
                (True, {"fedora"}, False),
                (True, set(), False),
            ]
            for is_root, distro, expected in cases:
                with self.subTest(is_root=is_root, distro=distro):
                    self.assertEqual(provision.can_apt(is_root, distro), expected)

    def test_without_apt_the_exact_line_is_printed(self):
        needs = [SystemNeed("libldap2-dev", lambda: False), SystemNeed("gcc", lambda: False)]
        with mock.patch.object(provision, "can_apt", return_value=False):
            with self.assertRaises(HarnessError) as caught:
                provision.ensure_system_packages(needs, "building")
        self.assertIn(
            "apt-get update && apt-get install -y --no-install-recommends gcc libldap2-dev",
            str(caught.exception),
        )
        self.assertEqual(caught.exception.exit_code, 2)

    def test_nothing_missing_runs_nothing(self):
        with mock.patch.object(provision, "checked") as checked:
            provision.ensure_system_packages([SystemNeed("x", lambda: True)], "running")
        checked.assert_not_called()


class TestAddonRequirements(unittest.TestCase):
    def test_the_manifest_pins_the_sql_parser(self):
        self.assertIn("pglast==7.22", provision.manifest_requirements())

    def test_missing_requirements_are_judged_as_odoo_does(self):
        try:
            import packaging  # noqa: F401 - what the probe imports, as Odoo does
        except ImportError:
            self.skipTest("this interpreter has no packaging; Odoo's always has")
        requirements = [
            "packaging",  # installed, any version
            "packaging==0.0.1",  # installed, another version
            "bj-surely-not-installed==1.0",
            "bj-surely-not-installed; python_version < '3'",  # marker: not here
        ]
        self.assertEqual(
            provision.missing_requirements(sys.executable, requirements),
            ["packaging==0.0.1", "bj-surely-not-installed==1.0"],
        )

    def odoo(self, cached):
        build = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, build)
        (build / "venv" / "bin").mkdir(parents=True)
        (build / "constraints.txt").write_text(provision.PIP_CONSTRAINTS)
        python = str(build / "venv" / "bin" / "python")
        return provision.OdooInstall(python, "odoo-bin", "18.0", [], "test", cached=cached)

    def test_a_cached_build_gets_what_it_lacks_without_a_rebuild(self):
        odoo = self.odoo(cached=True)
        with (
            mock.patch.object(provision, "missing_requirements", return_value=["pglast==7.22"]),
            mock.patch.object(provision, "checked") as checked,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            provision.ensure_addon_requirements(odoo)
        (_label, command), kwargs = checked.call_args
        self.assertEqual(command, [odoo.python, "-m", "pip", "install", "-q", "pglast==7.22"])
        self.assertEqual(kwargs["env"]["PIP_CONSTRAINT"],
                         str(Path(odoo.python).parent.parent.parent / "constraints.txt"))

    def test_an_installed_odoo_is_told_the_command(self):
        odoo = self.odoo(cached=False)
        with (
            mock.patch.object(provision, "missing_requirements", return_value=["pglast==7.22"]),
            mock.patch.object(provision, "checked") as checked,
            self.assertRaises(HarnessError) as caught,
        ):
            provision.ensure_addon_requirements(odoo)
        checked.assert_not_called()
        self.assertIn(f"{odoo.python} -m pip install pglast==7.22", str(caught.exception))
        self.assertEqual(caught.exception.exit_code, 2)

    def test_the_linters_are_pinned_exactly(self):
        # Every machine lints alike: one version of each linter, installed like the
        # addon's own requirements.
        for requirement in provision.LINT_REQUIREMENTS:
            with self.subTest(requirement=requirement):
                self.assertRegex(requirement, r"^[a-z][a-z-]*==\d+(\.\d+)+$")

    def test_nothing_missing_installs_nothing(self):
        with (
            mock.patch.object(provision, "missing_requirements", return_value=[]),
            mock.patch.object(provision, "checked") as checked,
        ):
            provision.ensure_addon_requirements(self.odoo(cached=True))
        checked.assert_not_called()


class TestStep(unittest.TestCase):
    def test_success_prints_one_timed_line(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), provision.step("doing it", retry="make test"):
            pass
        self.assertRegex(out.getvalue(), r"^\[harness\] doing it: done in \d+\.\ds\n$")

    def test_failure_says_what_and_how_to_retry(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(HarnessError) as caught:
            with provision.step("doing it", retry="make test"):
                provision.checked("false", ["false"])
        message = str(caught.exception)
        self.assertRegex(message, r"^doing it: failed after \d+s: `false` exited with 1")
        self.assertTrue(message.endswith("retry with: make test"))
        self.assertEqual(out.getvalue(), "")


if __name__ == "__main__":
    unittest.main()
