"""Draw docs/figures/tomo_geometry.png: the parallel-beam convention of ``beamhub.kernels.tomo``.

Left: a slice as ``recon`` returns it (``imshow``, row 0 at the top) with the
x and y axes, the rotation axis, the rays and the detector at one angle.
Right: the projections at 0 and 90 degrees made by ``sim.project_phantom``,
beside the sums of the slice that tomopy's convention says they equal.

    .venv/bin/python docs/figures/tomo_geometry.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after matplotlib.use() above
import numpy as np  # noqa: E402 - after matplotlib.use() above

from beamhub.kernels import sim  # noqa: E402 - after matplotlib.use() above

OUT = Path(__file__).with_suffix(".png")
N = 128
THETA = np.deg2rad(30.0)


def main() -> None:
    img = sim.shepp_logan_3d(N, 1, z_range=(0.0, 0.0))[0]
    c = (N - 1) / 2  # image middle = axis, in index units
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1.1, 1]})

    ax.imshow(img, cmap="gray", extent=(-0.5, N - 0.5, N - 0.5, -0.5))
    ax.set(xlabel="column j", ylabel="row i", title="slice rec[r] (as imshow shows it)")
    # x right, y up, from the axis
    ax.annotate("", xy=(c + 40, c), xytext=(c, c), arrowprops=dict(arrowstyle="->", color="y", lw=2))
    ax.annotate("", xy=(c, c - 40), xytext=(c, c), arrowprops=dict(arrowstyle="->", color="y", lw=2))
    ax.text(c + 42, c + 4, "x", color="y", fontsize=13)
    ax.text(c + 3, c - 42, "y", color="y", fontsize=13)
    ax.plot([c], [c], "o", color="orange")
    ax.text(c + 3, c + 9, "axis (center)", color="orange", fontsize=9)
    # detector direction (cos t, sin t) in (x, y up) = (cos t, -sin t) in (column, row)
    d = np.array([np.cos(THETA), -np.sin(THETA)])
    ray = np.array([-np.sin(THETA), -np.cos(THETA)])  # along the rays, perpendicular to d
    for s in np.linspace(-45, 45, 7):
        p0 = np.array([c, c]) + s * d - 70 * ray
        p1 = np.array([c, c]) + s * d + 50 * ray
        ax.plot([p0[0], p1[0]], [p0[1], p1[1]], color="c", lw=0.6, alpha=0.8)
    det0 = np.array([c, c]) + 50 * ray
    ax.plot(*zip(det0 - 50 * d, det0 + 50 * d), color="m", lw=3)
    ax.annotate("", xy=det0 + 50 * d, xytext=det0 + 25 * d, arrowprops=dict(arrowstyle="->", color="m", lw=2))
    ax.text(2, 6, "detector (column k grows along the arrow)", color="m", fontsize=9, va="top", backgroundcolor="k")
    ax.text(2, N - 4, "ray: x cos θ + y sin θ = k − center\n(here θ = 30°)", color="w", fontsize=9)
    ax.set_xlim(-0.5, N - 0.5)
    ax.set_ylim(N - 0.5, -0.5)

    theta = np.array([0.0, np.pi / 2])
    proj = sim.project_phantom(theta, N, 1, c, z_range=(0.0, 0.0))[:, 0]
    k = np.arange(N)
    bx.plot(k, proj[0], "b", lw=2, label="θ = 0: projection")
    bx.plot(k, img.sum(axis=0), "k--", lw=1, label="rec.sum(axis=0)  (down the columns)")
    bx.plot(k, proj[1] + 60, "r", lw=2, label="θ = 90°: projection (+60)")
    bx.plot(k, img.sum(axis=1)[::-1] + 60, "k:", lw=1.5, label="rec.sum(axis=1)[::-1]  (row N-1-k)")
    bx.set(xlabel="detector column k", ylabel="line integral", title="tomo[θ, r, k] from sim.project_phantom")
    bx.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
