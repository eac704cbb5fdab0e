"""The near-duplicate groups are the connected components of the verified pairs: scipy's
connected_components against a breadth-first search written here."""
import collections

import numpy as np

from dcgan_keras.data.dedup import match


def _bfs_components(n, pairs):
    """Components of >= 2 nodes, members ascending, ordered by their smallest member."""
    neighbours = collections.defaultdict(set)
    for a, b in pairs:
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    seen, groups = set(), []
    for start in range(n):
        if start in seen:
            continue
        seen.add(start)
        queue, members = collections.deque([start]), [start]
        while queue:
            for other in neighbours[queue.popleft()]:
                if other not in seen:
                    seen.add(other)
                    members.append(other)
                    queue.append(other)
        if len(members) > 1:
            groups.append(sorted(members))
    return groups


def test_components_of_random_graphs_equal_a_breadth_first_search():
    rng = np.random.default_rng(0)
    for n, m in [(1, 0), (7, 3), (200, 120), (1000, 700), (1000, 1500)]:
        pairs = rng.integers(0, n, (m, 2))  # self-loops and repeated edges included
        groups = match.components(n, pairs)
        assert [g.tolist() for g in groups] == _bfs_components(n, pairs), (n, m)
        assert all(g.dtype.kind == "i" for g in groups)


def test_components_of_nothing():
    assert match.components(0, np.zeros((0, 2), np.int64)) == []
    assert match.components(5, np.zeros((0, 2), np.int64)) == []
    assert [g.tolist() for g in match.components(4, [[3, 1], [1, 3], [2, 2]])] == [[1, 3]]
