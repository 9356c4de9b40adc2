"""Where the kept cluster (`make run`, KEEP_DB=1) lives: in the checkout when the
server's user reaches it, else in that user's home, linked from the checkout.
As root the clusters run as ``postgres``: those tests start a real one."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import unittest
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

from harness import PgCluster, cluster_owner, kept_cluster_root
from hutil import HarnessError

AS_ROOT = os.geteuid() == 0


def postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


class KeptClusterCase(unittest.TestCase):
    def make_dir(self, mode: int) -> Path:
        path = Path(tempfile.mkdtemp(prefix="bjet_harness_test_"))
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        path.chmod(mode)
        return path

    def kept_root(self, run_dir: Path, owner: pwd.struct_passwd | None) -> Path:
        with redirect_stdout(StringIO()):
            root = kept_cluster_root(run_dir, owner)
        if root != run_dir / "pg":
            self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        return root


class TestKeptClusterAsUser(KeptClusterCase):
    def test_the_cluster_stays_in_the_checkout(self):
        run_dir = self.make_dir(0o700) / "checkout" / ".run"
        self.assertEqual(self.kept_root(run_dir, None), run_dir / "pg")
        self.assertFalse((run_dir / "pg").is_symlink())


@unittest.skipUnless(AS_ROOT and postgres_user(), "needs root and a postgres system user")
class TestKeptClusterAsRoot(KeptClusterCase):
    def setUp(self):
        self.owner = cluster_owner()

    def test_a_checkout_the_server_user_reaches_keeps_its_cluster(self):
        run_dir = self.make_dir(0o755) / ".run"
        self.assertEqual(self.kept_root(run_dir, self.owner), run_dir / "pg")
        self.assertFalse((run_dir / "pg").is_symlink())

    def test_a_private_home_starts_and_keeps_its_cluster(self):
        """The issue's case: root's checkout in a home of mode 700."""
        run_dir = self.make_dir(0o700) / "project" / ".run"
        (run_dir / "pg").mkdir(parents=True)  # an earlier harness's leftover, empty
        root = self.kept_root(run_dir, self.owner)
        self.assertEqual((run_dir / "pg").resolve(), root, "the checkout links to it")
        self.assertEqual(root.parent, Path(self.owner.pw_dir).resolve())
        self.assertTrue(root.name.startswith("bjet_pgdata_"))

        def start_and_stop() -> int:
            cluster = PgCluster(root, throwaway=False)
            try:
                with redirect_stdout(StringIO()):
                    server = cluster.start(fast=True)
                self.assertTrue(cluster.started)
                self.assertTrue(Path(server.env["PGHOST"]).is_dir())
                return (root / "data" / "PG_VERSION").stat().st_ino
            finally:
                cluster.stop()

        first = start_and_stop()
        # A later run finds the same cluster through the link, not a new one.
        self.assertEqual(self.kept_root(run_dir, self.owner), root)
        self.assertEqual(start_and_stop(), first)

    def test_a_link_whose_cluster_is_gone_gets_a_new_one(self):
        run_dir = self.make_dir(0o700) / ".run"
        run_dir.mkdir()
        gone = self.make_dir(0o700) / "gone"
        (run_dir / "pg").symlink_to(gone)
        root = self.kept_root(run_dir, self.owner)
        self.assertTrue(root.is_dir())
        self.assertNotEqual(root, gone)
        self.assertEqual((run_dir / "pg").resolve(), root)

    def test_a_server_user_without_a_home_is_told(self):
        run_dir = self.make_dir(0o700) / ".run"
        homeless = pwd.struct_passwd((*self.owner[:5], "/nonexistent/bjet", *self.owner[6:]))
        with self.assertRaisesRegex(HarnessError, "cannot reach .* no home directory"):
            self.kept_root(run_dir, homeless)
        self.assertFalse((run_dir / "pg").exists())
