"""Write the worked-example notebooks from the text below (run it after editing a cell).

    python notebooks/make_examples.py          # rewrites tomography, phasing and spi_emc .ipynb

Keeping the notebooks as code here means a change reviews as a plain diff and
the notebooks never carry stale outputs; ``tests/notebooks`` executes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


TOMOGRAPHY = [
    md("""
# Tomography: from a raw scan to a 3-D volume you can turn

A parallel-beam tomography scan records the X-ray transmission of a sample at many
rotation angles. This notebook walks through the standard pipeline on a **simulated
scan with a known answer** (the 3-D Shepp-Logan phantom), so that every step can be
checked against the truth:

1. look at the raw projections and a sinogram,
2. **normalize** by the flat (open beam) and dark (no beam) fields, take **−log**,
3. remove the **stripes** that miscalibrated detector columns leave (rings in the slice),
4. find the **rotation centre**,
5. **reconstruct** with gridrec,
6. look at the result in the **VolumeViewer**.

`beamhub.kernels.tomo` uses tomopy's names and array layout: projections are
`(angles, rows, columns)`, angles in radians, reconstructions `(rows, N, N)` in
attenuation per pixel (1/pixel). Runs in well under a minute on two cores.

Every function and option is described in [docs/tomo.md](docs/tomo.md), and the viewer
in [docs/view.md](docs/view.md) — the `docs` folder beside this notebook.
"""),
    code("""
import numpy as np
import matplotlib.pyplot as plt

from beamhub.kernels import sim, tomo
from beamhub.kernels.view import VolumeViewer
"""),
    md("""
## 1. A simulated scan

`simulate_scan` projects the phantom exactly (line integrals through ellipsoids, not a
re-projection of voxels), adds Poisson noise, a dark offset and a few miscalibrated
detector columns, and puts the rotation axis 3 pixels off the detector middle — all
the things a real scan does to you. It returns the raw counts and the ground truth.
"""),
    code("""
scan = sim.simulate_scan(n=128, rows=32, n_angles=180, center_offset=3.0,
                         stripe_columns=3, seed=0)
print("projections", scan.tomo.shape, scan.tomo.dtype,
      "| flats", scan.flat.shape, "| darks", scan.dark.shape)
print("true rotation centre:", scan.center, "(detector middle is", (128 - 1) / 2, ")")
"""),
    md("""
A projection is what the detector saw at one angle; a **sinogram** is one detector row
over all angles — each point of the sample traces a sine wave in it, hence the name.
"""),
    code("""
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
a.imshow(scan.tomo[0], cmap="gray", aspect="auto")
a.set(title="raw projection at 0° (counts)", xlabel="column", ylabel="row")
b.imshow(scan.tomo[:, 16], cmap="gray", aspect="auto",
         extent=[0, 128, np.degrees(scan.theta[-1]), 0])
b.set(title="sinogram of row 16 (counts)", xlabel="column", ylabel="angle (°)")
plt.tight_layout()
"""),
    md("""
## 2. Normalize and take −log

The detector counts `I = I₀ · exp(−∫μ dl)` plus a dark offset. Dividing by the open
beam (after removing the dark current from both) gives the transmission; its negative
logarithm is the line integral of the attenuation that reconstruction inverts.
"""),
    code("""
proj = tomo.minus_log(tomo.normalize(scan.tomo, scan.flat, scan.dark))
err = np.abs(proj - scan.line_integrals).mean() / scan.line_integrals.mean()
print(f"line integrals recovered to {100 * err:.1f} % (the rest is photon noise)")
"""),
    md("""
## 3. Remove stripes

A detector column with a slightly wrong gain draws a vertical stripe in the sinogram
and a ring in the slice. Vo's sorting-based filter removes it without touching the
sample's own structure.
"""),
    code("""
proj = tomo.remove_stripe(proj, method="sorting")
print("columns the simulator miscalibrated:", scan.stripe_columns)
"""),
    md("""
## 4. Find the rotation centre

A wrong centre smears every point into an arc. Vo's Fourier method compares the
sinogram with its mirror image and finds the shift that makes them agree — no
reconstruction needed, sub-pixel precise.
"""),
    code("""
center = tomo.find_center_vo(proj, theta=scan.theta)
print(f"found {center:.2f}, true {scan.center:.2f}")
"""),
    md("""
## 5. Reconstruct

`gridrec` is filtered backprojection done in Fourier space: fast, and the default of
tomopy. `circ_mask` blanks the corners the scan never saw.
"""),
    code("""
rec = tomo.recon(proj, scan.theta, center=center, algorithm="gridrec", filter_name="shepp")
rec = tomo.circ_mask(rec, axis=0)
inside = tomo.circ_mask(np.ones_like(scan.phantom), axis=0) > 0
rms = np.sqrt(np.mean((rec - scan.phantom)[inside] ** 2)) / scan.phantom[inside].max()
print("reconstruction", rec.shape, rec.dtype, f"| RMS error {100 * rms:.1f} % of the peak")

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, img, title in zip(axes, (scan.phantom[16], rec[16]), ("truth", "gridrec")):
    ax.imshow(img, cmap="gray", vmin=0, vmax=scan.phantom.max())
    ax.set_title(f"{title}, row 16 (1/pixel)")
    ax.axis("off")
"""),
    md("""
## 6. Look at it

`VolumeViewer` shows three orthogonal slices at full resolution (the red lines mark
where the other two cut), a colour map, the contrast as a percentile range, a linear
or log scale, and a 3-D view drawn with WebGL (k3d): drag to turn, scroll to zoom.
Move the **threshold** to peel the isosurface, or switch to **volume** rendering.
Large volumes are block-averaged for the 3-D view only; slices stay full resolution.
It accepts numpy and cupy arrays alike.
"""),
    code("""
viewer = VolumeViewer(rec, cmap="gray", percentiles=(0.5, 99.8), unit="1/pixel",
                      level=0.6 * float(rec.max()))
viewer
"""),
    md("""
The viewer is also scriptable — handy to make a figure of a chosen slice:
"""),
    code("""
viewer.set_index(z=10)
print(viewer.index, "display range", viewer.limits)
plt.imshow(viewer.slice_data("z"), cmap="gray"); plt.title("slice z = 10 (1/pixel)"); plt.axis("off");
"""),
    md("""
## On real data

Read a Data Exchange file (`/exchange/data`, `data_white`, `data_dark`, `theta`) with
`beamhub.kernels.io.dxchange.read_dx(path, rows=(a, b))` and run the same cells. For a
whole scan as a batch job, `beamhub tomo --help` runs this pipeline from the command line
(and `beamhub submit` sends it to the cluster). See [docs/tomo.md](docs/tomo.md) for every option.
"""),
]


PHASING = [
    md("""
# Coherent diffraction imaging: phase retrieval, step by step

A coherent X-ray beam scattered by an isolated object gives a diffraction pattern: the
squared modulus of the object's Fourier transform. The phases are lost — yet if the
pattern is sampled finely enough (**oversampling**: the object fills less than half of
the box in each direction), iterative algorithms recover them by bouncing between two
constraints: *agree with the measured moduli* in Fourier space and *be zero outside a
support* (and, here, real and positive) in real space.

This notebook simulates a 3-D object and its noisy diffraction pattern, phases it with
HIO then ER from several random starts, checks the answer against the truth, and looks
at it in 3-D. About a minute on two cores.

The reference: [docs/phasing.md](docs/phasing.md) (algorithms, options, the job file) and
[docs/view.md](docs/view.md) (the viewer and the monitor), in the `docs` folder beside
this notebook.
"""),
    code("""
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import display

from beamhub.kernels.sim import random_object, simulate_cdi
from beamhub.kernels.phasing import Step, phase, aligned_error
from beamhub.kernels.view import Monitor, VolumeViewer
"""),
    md("""
## 1. The object and its diffraction volume

A smooth random object 16 voxels across, in a box oversampled 3× (48³). The pattern
gets Poisson noise (10⁹ photons in all) and a beamstop that hides the centre — those
voxels are *unknown* (−1, Dragonfly's convention) and phasing leaves them free.
"""),
    code("""
obj = random_object((16, 16, 16), seed=1)
data = simulate_cdi(obj, oversampling=3, photons=1e9, beamstop=1.5, seed=2)
print("intensity", data.intensity.shape, "| unknown voxels:", int(data.mask.sum()))
"""),
    md("""
Diffraction intensities span many decades: look at them on a **log** scale. (Slices
only here: an isosurface of a diffraction volume says little.)
"""),
    code("""
VolumeViewer(np.where(data.mask, 0, data.intensity), scale="log", cmap="magma", unit="photons",
             render=None)
"""),
    md("""
## 2. Phase retrieval

Each **start** begins from random phases and runs the **steps** in order:

* **HIO** (hybrid input–output, Fienup 1982) with feedback β = 0.9 explores: it does
  not settle in the first local minimum;
* **ER** (error reduction) then polishes: it only ever lowers the error.

The support is a ball of 18 voxels (a little larger than the object). With no good guess,
pass `shrinkwrap=ShrinkWrap()` to let the support tighten around the object as it
appears. Starts are ranked by their Fourier error; the best are aligned (shift, twin,
global phase) and averaged.

A **Monitor** watches the run: every 10 iterations `phase` calls it with the current
iterate and the Fourier error, and it redraws in place — the central slices of the
iterate and the error of each random start as its own curve, so the starts compare at a
glance. During HIO the iterate is noisy outside the support (HIO keeps pushing there);
after the switch to ER the object stands alone.
"""),
    code("""
monitor = Monitor(title="phase retrieval", plots=["fourier_error"])
display(monitor)
result = phase(data.intensity, mask=data.mask, support=18,
               algorithms=[Step("hio", 400, 0.9), Step("er", 100)],
               n_starts=3, n_best=2, seed=0, callback=monitor, callback_every=10)
monitor.refresh()
print("Fourier error of each start:", np.round(result.scores, 4))
print("real-space error of the best vs the truth:",
      f"{aligned_error(result.images[0], data.object):.3f}")
"""),
    md("""
## 3. Did it converge?

The Fourier error per iteration shows HIO's exploration and ER's descent. HIO's error
stays high on purpose: its iterate is pushed *past* the constraints (that is how it
escapes local minima), so it is never itself a solution; the first ER projections land it
on one and the error falls by two orders of magnitude. A start that stays higher than the
others found a worse minimum — which is why we run several. The **PRTF**
(phase retrieval transfer function) measures how reproducibly the phases came back at
each resolution: near 1 means every start agreed; where it drops below 1/e is the usual
resolution estimate.
"""),
    code("""
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for k, errs in enumerate(result.errors):
    a.semilogy(errs, label=f"start {result.starts[k]}")
a.axvline(400, color="gray", ls=":")
a.set(xlabel="iteration", ylabel="Fourier error (relative)", title="HIO (400) then ER (100)")
a.legend()
b.plot(result.prtf_radius, result.prtf)
b.axhline(1 / np.e, color="gray", ls=":")
b.set(xlabel="Fourier shell (pixels)", ylabel="PRTF (0 to 1)", ylim=(0, 1.05), title="PRTF")
plt.tight_layout()
"""),
    md("""
## 4. Look at the result

The recovered image is complex; the viewer shows its modulus. The isosurface threshold
is in data units — move it to see the object's denser core.
"""),
    code("""
best = np.abs(result.images[0])
VolumeViewer(best, cmap="viridis", level=0.4 * float(best.max()))
"""),
    md("""
## As a batch job

`beamhub phase CONFIG.json` runs the same from a JSON job file (the format of the
seed jobs: `data`, `support_size`, `algo` as a list of `{name, number_of_iterations,
beta_init, beta_final}`, `number_of_outputs_images`, `out_file` …) and writes HDF5;
see [docs/phasing.md](docs/phasing.md).
"""),
]


SPI_EMC = [
    md("""
# Single-particle imaging: EMC, a live monitor, phasing, and a 3-D look

In single-particle imaging (SPI) an X-ray free-electron laser hits copies of the same
particle one at a time, each in an **unknown orientation**, and each frame holds only a
few hundred photons. **EMC** (Expand–Maximize–Compress, Loh & Elser 2009; Dragonfly,
Ayyer et al. 2016) recovers the 3-D intensity anyway:

* **Expand** — cut the current 3-D model into the slice every orientation would show;
* **Maximize** — score every frame against every slice with the Poisson likelihood and
  turn the scores into orientation probabilities;
* **Compress** — put every frame's photons back into 3-D, weighted by those probabilities.

This notebook simulates a small data set in Dragonfly's file formats, runs EMC while
a **live monitor** draws the model and the per-iteration figures, phases the result,
and shows the particle in 3-D. About a minute on two cores.

The reference: [docs/emc.md](docs/emc.md) (the configuration, the files, the options),
[docs/phasing.md](docs/phasing.md) and [docs/view.md](docs/view.md), in the `docs` folder
beside this notebook.
"""),
    code("""
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
from IPython.display import display

from beamhub.kernels.sim import simulate_spi, write_spi
from beamhub.kernels.emc import EMC, EMCConfig, load_problem, run
from beamhub.kernels.phasing import Step, phase
from beamhub.kernels.view import Monitor, VolumeViewer
"""),
    md("""
## 1. Simulate frames — in Dragonfly's formats

600 frames on a 25×25-pixel detector with a beamstop, ~300 photons each, from random
orientations of a random particle 8 voxels across. `write_spi` writes what Dragonfly
would read: a `config.ini`, a detector file, a sparse-photon `.emc` file — plus the
truth. The config asks for **deterministic annealing**: β (how sharply the likelihood
picks orientations) starts low at 0.2 and doubles every 3 iterations, so early
iterations average over many orientations and later ones commit.
"""),
    code("""
sim = simulate_spi(num_data=600, detsize=25, detd=50, stoprad=1.5, mean_count=300,
                   diameter=8.0, rng=1)
folder = Path(tempfile.mkdtemp(prefix="spi-"))
config_path = write_spi(folder, sim, num_div=3, beta="0.2", beta_schedule=(2.0, 3))
print("model size", sim.intensity.shape, "| written to", folder)
print(config_path.read_text())
"""),
    md("""
One frame is mostly empty pixels: no single frame shows the particle, only the
statistics of many do.
"""),
    code("""
frames_dense = sim.photons.to_dense()           # (frames, pixels): fine for 600 small frames
counts = frames_dense.sum(axis=1)
print(f"photons per frame: mean {counts.mean():.0f}, min {counts.min()}, max {counts.max()}"
      f" — on {frames_dense.shape[1]} pixels")
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.8))
a.imshow(frames_dense[0].reshape(25, 25), cmap="gray_r"); a.set_title("frame 0 (photons)"); a.axis("off")
b.imshow(np.log1p(frames_dense.sum(axis=0)).reshape(25, 25), cmap="magma")
b.set_title("all frames summed, log(1 + photons)"); b.axis("off");
"""),
    md("""
## 2. EMC with a live monitor

`load_problem` reads the files a config names (the same `config.ini` runs unchanged
with `beamhub emc config.ini`, or with Dragonfly). `num_div = 3` samples rotation space
with 10·(5·3³+3) = 1380 orientations, about 20° apart — coarse, but quick; real
reconstructions refine to higher `num_div` as the model sharpens.

`Monitor()` is a callable `monitor(iteration, model, figures)`: pass it as `callback`
and it redraws, in place, the central slices of the current model (log scale) and a plot
per figure, titled with its unit — the RMS change of the model (photons per voxel; falls
as it converges), the mutual information between frames and orientations (nats; rises as
orientations become certain), the log-likelihood, β, and the seconds each iteration took.
"""),
    code("""
cfg = EMCConfig.from_file(config_path)
detector, frames, quats, weights, start, scale = load_problem(cfg)
settings = dataclasses.replace(cfg.settings(), seed=0)   # a reproducible random start
emc = EMC(detector, frames, quats, weights, settings, model=start, scale=scale)
print(f"{frames.num_data} frames, {len(quats)} orientations, model {emc.model.shape}")

monitor = Monitor(title="EMC", scale="log", cmap="magma", min_interval=1.0, model_unit="photons/voxel",
                  plots=["rms_change", "info_rate", "likelihood", "beta", "time"])
display(monitor)
history = run(emc, 14, callback=monitor)
monitor.refresh()  # draw the last iteration too
"""),
    md("""
## 3. Check against the truth

EMC is free to return the particle in any overall orientation. Each frame's most likely
orientation, compared with the true one the simulator kept, gives that global rotation;
turning the true intensity by it lets us correlate the two **shell by shell** in
resolution. The fraction of frames placed near their true orientation says how well the
orientations themselves were found (within 25°, a little more than the sampling step at `num_div = 3`,
counting the Friedel twin that such flat diffraction can hardly tell apart).
"""),
    code("""
from beamhub.kernels.emc.truth import (global_rotation, orientation_errors, rotate_volume,
                                       shell_correlation)

best = quats[history[-1].per_frame["orientations"]]
g = global_rotation(best, sim.quaternions)
truth = rotate_volume(sim.intensity, g)
radii, corr = shell_correlation(emc.model, truth, num_shells=8, max_fraction=0.7,
                                valid=emc.inter_weight > 0)
near = np.mean(orientation_errors(best, sim.quaternions, g, twin=True) < 25)
print(f"{100 * near:.0f} % of frames within 25° of their true orientation")
plt.plot(radii, corr, marker="o"); plt.ylim(0, 1.02)
plt.xlabel("shell outer radius (voxels)"); plt.ylabel("correlation with truth");
"""),
    md("""
## 4. Phase the merged intensity

The merged intensity is a 3-D diffraction volume, so the phasing of `phasing.ipynb`
applies directly. The simulated particle is 8 voxels across: a support ball a little
larger than that.
"""),
    code("""
intensity = np.where(emc.model > 0, emc.model, -1.0)   # unknown where EMC had no data
result = phase(intensity, support=10, algorithms=[Step("hio", 200, 0.9), Step("er", 50)],
               n_starts=2, seed=0)
density = np.abs(result.images[0])
print("Fourier error of the best start:", np.round(result.scores[0], 3))
"""),
    md("""
## 5. Look at the particle

The phased image sits centred in a box three times its size (the oversampling): crop
the middle before looking. Turn it, peel it with the threshold, and compare with the
true density below — up to the orientation EMC chose and, possibly, the twin
(the object turned inside out: both have the same diffraction).
"""),
    code("""
c = density.shape[0] // 2
particle = density[c - 8:c + 8, c - 8:c + 8, c - 8:c + 8]
VolumeViewer(particle, cmap="viridis", percentiles=(0, 100), level=0.3 * float(particle.max()))
"""),
    code("""
c = sim.density.shape[0] // 2
VolumeViewer(sim.density[c - 8:c + 8, c - 8:c + 8, c - 8:c + 8], cmap="viridis",
             percentiles=(0, 100), render=None)
"""),
    md("""
## At scale

On real data run `beamhub emc config.ini` (also under `mpiexec -n N`, or as a cluster
job with `beamhub submit`): every iteration writes Dragonfly's `output_NNN.h5` and a
checkpoint, so a stopped run resumes. A notebook can watch a run the same way by
passing a `Monitor` as the callback. Every option: [docs/emc.md](docs/emc.md).
"""),
]


def write(name: str, cells) -> Path:
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    stem = name.removesuffix(".ipynb").replace("_", "-")
    for i, cell in enumerate(nb.cells):  # stable ids: re-running the script changes nothing
        cell.id = f"{stem}-{i:02d}"
    path = HERE / name
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main() -> int:
    for name, cells in (("tomography.ipynb", TOMOGRAPHY), ("phasing.ipynb", PHASING), ("spi_emc.ipynb", SPI_EMC)):
        print("wrote", write(name, cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
