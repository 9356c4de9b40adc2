from odoo.tests import BaseCase, tagged

from ..core.claim import earliest_claimable, select_claimable

DUE, WAITING = True, False  # WAITING: pending and not due yet, or running

# (case, rows as (job_id, config_id, record_ids, is_due), wanted, seen, ids picked)
CASES = [
    ("empty queue", [], 10, set(), []),
    ("all due, distinct records",
     [(1, 1, [10], DUE), (2, 1, [11], DUE), (3, 1, [12], DUE)], 10, set(), [1, 2, 3]),
    ("an older waiting job of the record holds back a younger one",
     [(1, 1, [10], WAITING), (2, 1, [10], DUE), (3, 1, [11], DUE)], 10, set(), [3]),
    ("an older running job holds back, however far back",
     [(1, 1, [10], WAITING), (50, 1, [11], DUE), (90, 1, [10], DUE)], 10, set(), [50]),
    ("of two due jobs of a record only the older goes",
     [(1, 1, [10], DUE), (2, 1, [10], DUE)], 10, set(), [1]),
    ("a younger job never holds back an older one",
     [(1, 1, [10], DUE), (2, 1, [10], WAITING)], 10, set(), [1]),
    ("different configurations do not block each other",
     [(1, 1, [10], WAITING), (2, 2, [10], DUE)], 10, set(), [2]),
    ("paginated jobs overlapping on one record; a held-back job holds back in turn",
     [(1, 1, [10, 11, 12], WAITING), (2, 1, [12, 13], DUE), (3, 1, [13], DUE),
      (4, 1, [14, 15], DUE)], 10, set(), [4]),
    ("wanted caps the ids picked",
     [(1, 1, [10], DUE), (2, 1, [11], DUE), (3, 1, [12], DUE)], 2, set(), [1, 2]),
    ("wanted 0 picks nothing", [(1, 1, [10], DUE)], 0, set(), []),
    ("pairs seen in an earlier window hold back",
     [(5, 1, [10], DUE), (6, 1, [11], DUE)], 10, {(1, 10)}, [6]),
    ("pairs seen of another configuration do not",
     [(5, 1, [10], DUE), (6, 1, [11], DUE)], 10, {(2, 10)}, [5, 6]),
    ("rows are walked in id order, whatever their order",
     [(3, 1, [10], DUE), (2, 1, [11], DUE), (1, 1, [10], WAITING)], 10, set(), [2]),
]


@tagged("post_install", "-at_install")
class TestClaimSelection(BaseCase):
    def test_cases(self):
        for case, rows, wanted, seen, expected in CASES:
            with self.subTest(case):
                before = set(seen)
                picked, _pairs = select_claimable(rows, wanted, seen)
                self.assertEqual(picked, expected)
                self.assertEqual(seen, before, "seen is left unchanged")

    def test_pairs_of_every_row_are_returned(self):
        rows = [(1, 1, [10], WAITING), (2, 1, [10, 11], DUE), (3, 2, [10], DUE),
                (4, 1, [12], DUE)]
        picked, pairs = select_claimable(rows, 1, {(1, 99)})
        self.assertEqual(picked, [3])
        self.assertEqual(pairs, {(1, 10), (1, 11), (2, 10), (1, 12)},
                         "rows held back or past the cap count too; seen pairs are not repeated")

    def test_seen_pairs_carry_across_windows(self):
        first = [(1, 1, [10], DUE), (2, 1, [11], WAITING)]
        second = [(3, 1, [11], DUE), (4, 1, [10], DUE), (5, 1, [12], DUE)]
        picked, seen = select_claimable(first, 3, set())
        self.assertEqual(picked, [1])
        more, _pairs = select_claimable(second, 3 - len(picked), seen)
        self.assertEqual(more, [5])


PENDING, RUNNING = True, False

# (case, rows as (job_id, config_id, record_ids, is_pending, due at), earliest claimable due)
EARLIEST_CASES = [
    ("empty queue", [], None),
    ("running jobs only", [(1, 1, [10], RUNNING, 0)], None),
    ("the earliest of free jobs", [(1, 1, [10], PENDING, 50), (2, 1, [11], PENDING, 20)], 20),
    ("a job held back by an older one in a long backoff waits for that one",
     [(1, 1, [10], PENDING, 3600), (2, 1, [10], PENDING, 0)], 3600),
    ("a job held back by a running job is not waited for",
     [(1, 1, [10], RUNNING, 0), (2, 1, [10], PENDING, 0), (3, 1, [11], PENDING, 30)], 30),
    ("held back in turn, through an overlapping page",
     [(1, 1, [10, 11], RUNNING, 0), (2, 1, [11, 12], PENDING, 0), (3, 1, [12], PENDING, 5)],
     None),
    ("another configuration's job does not hold back",
     [(1, 1, [10], PENDING, 3600), (2, 2, [10], PENDING, 7)], 7),
    ("a younger job never holds back an older one",
     [(1, 1, [10], PENDING, 9), (2, 1, [10], PENDING, 1)], 9),
    ("rows are walked in id order, whatever their order",
     [(2, 1, [10], PENDING, 1), (1, 1, [10], PENDING, 9)], 9),
]


@tagged("post_install", "-at_install")
class TestEarliestClaimable(BaseCase):
    def test_cases(self):
        for case, rows, expected in EARLIEST_CASES:
            with self.subTest(case):
                self.assertEqual(earliest_claimable(rows), expected)
