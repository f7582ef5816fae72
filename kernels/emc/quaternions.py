"""Orientation sampling of SO(3) by refining the 600-cell (Dragonfly's ``num_div`` scheme).

The 120 vertices of the 600-cell are unit quaternions spread evenly over the
3-sphere.  Refinement level ``n`` adds the points that split each of its 720
edges, 1200 triangles and 600 tetrahedra into ``n`` parts; projected onto the
sphere and keeping one of each ``±q`` pair this gives ``10 (5 n³ + n)``
orientations.  Every point carries a weight, its share of the rotation group's
volume (the Jacobian of the projection from the flat cell onto the sphere),
used as the prior ``log w_r`` in the likelihood.

Coordinates are held exactly as ``(a + τ b) / (2 n)`` with integer ``a, b``
(τ the golden ratio) so the choice of one point of each ``±`` pair is exact:
a point is kept when the first non-zero number of ``a0, b0, a1, b1, ...`` is
positive, as Dragonfly does.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = ["num_rotations", "quaternion_sampling", "rotation_matrices"]

TAU = (1.0 + 5.0**0.5) / 2.0


def num_rotations(num_div: int) -> int:
    """Number of orientations ``10 (5 n³ + n)`` of refinement level ``num_div`` (n ≥ 1)."""
    n = int(num_div)
    return 10 * (5 * n**3 + n)


@functools.lru_cache(maxsize=1)
def _cell_600():
    """Vertices (exact, shape (120, 4, 2) as (a, b) in units of 1/2), edges, faces, cells."""
    verts = []
    for i in range(4):  # (±1, 0, 0, 0) and permutations: a = ±2
        for s in (1, -1):
            v = [[0, 0] for _ in range(4)]
            v[i][0] = 2 * s
            verts.append(v)
    for signs in itertools.product((1, -1), repeat=4):  # (±1/2, ±1/2, ±1/2, ±1/2)
        verts.append([[s, 0] for s in signs])
    # even permutations of (±τ, ±1, ±1/τ, 0) / 2, with 1/τ = τ - 1
    base = ([0, 1], [1, 0], [-1, 1], [0, 0])
    even = [
        p
        for p in itertools.permutations(range(4))
        if sum(1 for i in range(4) for j in range(i + 1, 4) if p[i] > p[j]) % 2 == 0
    ]
    for perm in even:
        for signs in itertools.product((1, -1), repeat=3):
            vals = [[s * base[k][0], s * base[k][1]] for k, s in zip(range(3), signs)]
            vals.append([0, 0])
            v = [None] * 4
            for k in range(4):
                v[perm[k]] = vals[k]
            verts.append(v)
    exact = np.array(verts, dtype=np.int64)  # (120, 4, 2)
    pos = (exact[..., 0] + TAU * exact[..., 1]) / 2.0
    assert pos.shape == (120, 4) and np.allclose(np.linalg.norm(pos, axis=1), 1.0)
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
    adj = np.abs(dist - 1.0 / TAU) < 1e-6
    edges = [(i, j) for i in range(120) for j in range(i + 1, 120) if adj[i, j]]
    faces = [(i, j, k) for i, j in edges for k in range(j + 1, 120) if adj[i, k] and adj[j, k]]
    cells = [(i, j, k, m) for i, j, k in faces for m in range(k + 1, 120) if adj[i, m] and adj[j, m] and adj[k, m]]
    assert (len(edges), len(faces), len(cells)) == (720, 1200, 600)
    return exact, pos, edges, faces, cells


def _compositions(n: int, parts: int):
    """All tuples of ``parts`` positive integers summing to ``n`` (barycentric interior points)."""
    if parts == 1:
        return [(n,)] if n >= 1 else []
    out = []
    for first in range(1, n - parts + 2):
        out += [(first,) + rest for rest in _compositions(n - first, parts - 1)]
    return out


def quaternion_sampling(num_div: int) -> tuple[np.ndarray, np.ndarray]:
    """Quaternions and weights of the 600-cell refined ``num_div`` times.

    Parameters
    ----------
    num_div : int
        Refinement level n ≥ 1 (Dragonfly's ``num_div``).

    Returns
    -------
    quats : ndarray, shape (10(5n³+n), 4), float64
        Unit quaternions ``(q0, q1, q2, q3)``, q0 the scalar part, one of each ± pair;
        600-cell vertices first, then edge, face and cell points.
    weights : ndarray, shape (10(5n³+n),), float64
        SO(3) volume share of each orientation; sums to 1.

    Examples
    --------
    >>> q, w = quaternion_sampling(4)
    >>> q.shape, round(w.sum(), 12)
    ((3240, 4), 1.0)
    """
    n = int(num_div)
    if n < 1:
        raise ValueError(f"num_div must be at least 1, not {num_div}")
    exact, pos, edges, faces, cells = _cell_600()
    # One containing cell per simplex, for the weight's cell-normal direction.
    cell_sum = {}
    for cell in cells:
        c = pos[list(cell)].sum(axis=0)
        for r in (1, 2, 3, 4):
            for sub in itertools.combinations(cell, r):
                cell_sum.setdefault(sub, c)
    groups = [([(i,) for i in range(120)], 5.0 / 6.0), (edges, 35.0 / 36.0), (faces, 1.0), (cells, 1.0)]
    ex_all, w_all = [], []
    for simplices, factor in groups:
        k = len(simplices[0])
        bary = np.array(_compositions(n, k), dtype=np.int64).reshape(-1, k)
        if bary.size == 0:
            continue
        idx = np.array(simplices, dtype=np.int64)  # (S, k)
        # exact coordinates in units of 1/(2n): sum_j bary_j * vertex_j
        ex = np.einsum("pk,skcz->spcz", bary, exact[idx]).reshape(-1, 4, 2)
        csum = np.array([cell_sum[tuple(s)] for s in simplices])  # (S, 4)
        csum = np.repeat(csum, len(bary), axis=0)
        v = (ex[..., 0] + TAU * ex[..., 1]) / (2.0 * n)
        norm = np.linalg.norm(v, axis=1)
        w = factor * np.einsum("ij,ij->i", v, csum) / (norm**4 * np.linalg.norm(csum, axis=1))
        ex_all.append(ex)
        w_all.append(w)
    ex = np.concatenate(ex_all)
    w = np.concatenate(w_all)
    seq = ex.reshape(len(ex), 8)  # a0, b0, a1, b1, ...
    nz = seq != 0
    first = seq[np.arange(len(seq)), nz.argmax(axis=1)]
    keep = first > 0
    v = ex[keep, :, 0] + TAU * ex[keep, :, 1]
    quats = v / np.linalg.norm(v, axis=1, keepdims=True)
    weights = w[keep] / w[keep].sum()
    assert len(quats) == num_rotations(n)
    return quats, weights


def rotation_matrices(quats: np.ndarray) -> np.ndarray:
    """Matrices ``M`` with model position ``v = M @ q_pixel + center``, as Dragonfly applies them.

    Parameters
    ----------
    quats : ndarray, shape (N, 4)
        Unit quaternions ``(q0, q1, q2, q3)``, scalar first.

    Returns
    -------
    ndarray, shape (N, 3, 3), float64
        The transpose (inverse) of the usual scalar-first rotation matrix of each quaternion.
    """
    q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
    q0, q1, q2, q3 = q.T
    m = np.empty((len(q), 3, 3))
    m[:, 0, 0] = 1 - 2 * (q2 * q2 + q3 * q3)
    m[:, 0, 1] = 2 * (q1 * q2 + q0 * q3)
    m[:, 0, 2] = 2 * (q1 * q3 - q0 * q2)
    m[:, 1, 0] = 2 * (q1 * q2 - q0 * q3)
    m[:, 1, 1] = 1 - 2 * (q1 * q1 + q3 * q3)
    m[:, 1, 2] = 2 * (q0 * q1 + q2 * q3)
    m[:, 2, 0] = 2 * (q0 * q2 + q1 * q3)
    m[:, 2, 1] = 2 * (q2 * q3 - q0 * q1)
    m[:, 2, 2] = 1 - 2 * (q1 * q1 + q2 * q2)
    return m
