"""VolumeViewer speed on a 256³ volume, beside plain matplotlib drawing the same slice.

    python benchmarks/view.py [--size 256] [--repeat 20]

Prints, for one volume of ``size``³ float32:

* the time to build the viewer (percentile sample, three slices, and the
  block-averaged 64³ copy for the k3d 3-D view), with and without the 3-D view;
* the time for one slice update (a slider move: take the slice, scale, colour,
  crosshairs, PNG for the three panels), median over ``repeat`` moves;
* the same slice drawn by matplotlib: ``imshow`` into a new figure and saved as
  PNG (what ``%matplotlib inline`` sends), and ``set_data`` + redraw of an
  existing figure (what an ipympl figure does on update) — as ratios.

Kernel-side work only: the browser's decoding and painting is not measured.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after matplotlib.use() above
import numpy as np  # noqa: E402 - after matplotlib.use() above

from beamhub.kernels.view import VolumeViewer  # noqa: E402 - after matplotlib.use() above


def phantom(n: int) -> np.ndarray:
    """Nested balls with noise, (n, n, n) float32."""
    z, y, x = np.ogrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j, -1 : 1 : n * 1j]
    r2 = x * x + y * y + z * z
    vol = (r2 < 0.8).astype(np.float32) + (((x - 0.3) ** 2 + y * y + z * z) < 0.05)
    vol += np.random.default_rng(0).normal(0, 0.05, vol.shape).astype(np.float32)
    return vol


def timed(fn, repeat: int) -> float:
    times = []
    for k in range(repeat):
        tic = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="volume edge, voxels (default 256)")
    parser.add_argument("--repeat", type=int, default=20, help="slice moves to time (default 20)")
    args = parser.parse_args()
    n, repeat = args.size, args.repeat
    vol = phantom(n)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"volume {n}³ float32 ({vol.nbytes / 2**20:.0f} MiB) on {platform.machine()}, {cores} cores")

    build_3d = timed(lambda k: VolumeViewer(vol, cmap="gray"), 3)
    build_2d = timed(lambda k: VolumeViewer(vol, cmap="gray", render=None), 3)
    viewer = VolumeViewer(vol, cmap="gray", render=None)
    positions = np.linspace(10, n - 10, repeat + 1).astype(int)
    update = timed(lambda k: setattr(viewer.sliders[0], "value", int(positions[k + 1])), repeat)
    plain = VolumeViewer(vol, cmap="gray", render=None, crosshair=False)
    update_plain = timed(lambda k: setattr(plain.sliders[0], "value", int(positions[k + 1])), repeat)
    png = viewer.images[0].value

    vmin, vmax = viewer.limits

    def inline(k):
        fig, ax = plt.subplots(figsize=(n / 100, n / 100), dpi=100)
        ax.imshow(vol[positions[k + 1]], cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_axis_off()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(n / 100, n / 100), dpi=100)
    image = ax.imshow(vol[n // 2], cmap="gray", vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    fig.canvas.draw()

    def redraw(k):
        image.set_data(vol[positions[k + 1]])
        fig.canvas.draw()

    mpl_inline = timed(inline, repeat)
    mpl_redraw = timed(redraw, repeat)
    plt.close(fig)

    rows = [
        ("build viewer, slices + k3d 3-D view", build_3d, None, None),
        ("build viewer, slices only", build_2d, None, None),
        ("slice update (slider move, 3 panels with crosshair)", update, mpl_inline, "imshow+savefig PNG"),
        ("slice update (slider move, 1 panel, no crosshair)", update_plain, mpl_inline, "imshow+savefig PNG"),
        ("slice update (slider move, 1 panel, no crosshair)", update_plain, mpl_redraw, "set_data+draw (ipympl-like)"),
    ]
    print(f"{'what':55s} {'ours ms':>9s} {'reference':>28s} {'ref ms':>8s} {'ref/ours':>9s}")
    for what, ours, ref, name in rows:
        if ref is None:
            print(f"{what:55s} {1e3 * ours:9.1f}")
        else:
            print(f"{what:55s} {1e3 * ours:9.1f} {name:>28s} {1e3 * ref:8.1f} {ref / ours:8.2f}x")
    print(f"slice PNG {len(png) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
