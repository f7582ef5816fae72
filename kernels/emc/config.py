"""Dragonfly's config.ini, read with Dragonfly's own rules and meanings.

Parser (not configparser): ``[section]`` lines; a key is the first token cut at
spaces or ``=``; lines starting with ``#`` are skipped; the value is the next
token(s); keys are case-sensitive.  Relative paths are relative to the config's
folder; ``make_data:::out_photons_file`` style values point at another section's
key.  Every problem is reported as one :class:`~beamhub.errors.UsageError` naming
the key.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from beamhub.errors import UsageError
from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.emc.iteration import EMCSettings
from beamhub.kernels.emc.photons import Frames
from beamhub.kernels.emc.quaternions import quaternion_sampling
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.io.atomic import InputFormatError

__all__ = ["parse_ini", "EMCConfig", "load_problem", "SUPPORTED_KEYS", "REFUSED_KEYS"]

#: [emc] keys beamhub honours (Dragonfly's meanings) plus its own additions.
SUPPORTED_KEYS = {
    "in_photons_file",
    "in_photons_list",
    "in_detector_file",
    "num_div",
    "in_quat_file",
    "output_folder",
    "log_file",
    "need_scaling",
    "update_scale",
    "scale_file",
    "beta",
    "beta_factor",
    "beta_schedule",
    "alpha",
    "recon_type",
    "size",
    "start_model_file",
    "fixed_seed",
    "num_modes",
    "num_nonrot_modes",
    "blacklist_file",
    "selection",
    "save_prob",
    "friedel_sym",
    "axial_sym",
    # beamhub additions (Dragonfly ignores neither: remove them before running Dragonfly)
    "chunk_size",
    "seed",
}
#: Dragonfly keys beamhub does not implement; refused unless at their default value.
REFUSED_KEYS = {
    "in_detector_list": None,
    "point_group": None,
    "probs_file": None,
    "radius": None,
    "radius_schedule": None,
    "oversampling": None,
    "gaussian_sigma": None,
    "background_file": None,
    "background_list": None,
    "bgscale_file": None,
    "beta_range_deg": None,
    "num_rot": None,
}


def parse_ini(path: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """Sections -> keys -> value tokens, with Dragonfly's tokenising rules.

    Returns
    -------
    dict
        ``{section: {key: [token, ...]}}``; later duplicates override earlier ones.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line[1 : line.find("]")] if "]" in line else line[1:]
            sections.setdefault(current, {})
            continue
        if not line.strip() or line[0] in " \t":
            continue  # Dragonfly does not recognise indented keys
        tokens = line.replace("=", " ").split(" ")
        tokens = [t for t in tokens if t]
        if not tokens or tokens[0].startswith("#") or current is None:
            continue
        sections[current][tokens[0]] = [t.strip() for t in tokens[1:]]
    return sections


@dataclass
class EMCConfig:
    """The ``[emc]`` section resolved: paths absolute, values typed, defaults Dragonfly's.

    Attributes mirror the keys (see docs/emc.md); ``photons_files`` is a list of paths.
    """

    path: Path
    photons_files: list[Path]
    detector_file: Path
    num_div: int | None = None
    quat_file: Path | None = None
    output_folder: Path | None = None
    log_file: Path | None = None
    need_scaling: bool = False
    update_scale: bool = True
    scale_file: Path | None = None
    beta: float | None = None
    beta_factor: float = 1.0
    beta_jump: float = 1.0
    beta_period: int = 100
    alpha: float = 0.0
    size: int | None = None
    start_model_file: Path | None = None
    fixed_seed: bool = False
    blacklist_file: Path | None = None
    selection: str | None = None
    friedel: bool = True
    chunk_size: int = 256
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> EMCConfig:
        """Read and check ``path``; raises UsageError naming the first bad key."""
        path = Path(path).resolve()
        if not path.is_file():
            raise UsageError(f"config file {str(path)!r} does not exist")
        ini = parse_ini(path)
        if "emc" not in ini:
            raise UsageError(f"{path}: no [emc] section")
        emc = ini["emc"]
        base = path.parent

        def where(key):
            return f"{path.name} [emc] {key}"

        for key in emc:
            if key in REFUSED_KEYS:
                raise UsageError(f"{where(key)}: Dragonfly option not implemented by beamhub emc; remove it to run")
            if key not in SUPPORTED_KEYS:
                close = difflib.get_close_matches(key, sorted(SUPPORTED_KEYS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(f"{where(key)}: unknown key{hint}")

        def one(key, default=None):
            vals = emc.get(key)
            if not vals:
                if key in emc:
                    raise UsageError(f"{where(key)}: no value given")
                return default
            return vals[0]

        def number(key, kind, default, low=None, high=None):
            raw = one(key)
            if raw is None:
                return default
            try:
                val = kind(raw)
            except ValueError:
                raise UsageError(f"{where(key)}: {raw!r} is not a{'n integer' if kind is int else ' number'}") from None
            if (low is not None and val < low) or (high is not None and val > high):
                rng = f"at least {low}" if high is None else f"between {low} and {high}"
                raise UsageError(f"{where(key)}: {raw} must be {rng}")
            return val

        def flag(key, default):
            raw = one(key)
            if raw is None:
                return default
            if raw not in ("0", "1"):
                raise UsageError(f"{where(key)}: {raw!r} must be 0 or 1")
            return raw == "1"

        def file_path(key, must_exist=True, section="emc", value=None):
            raw = value if value is not None else one(key)
            if raw is None:
                return None
            if ":::" in raw:
                sec, _, ref = raw.partition(":::")
                target = ini.get(sec, {}).get(ref)
                if not target:
                    raise UsageError(f"{where(key)}: refers to [{sec}] {ref}, which the config lacks")
                raw = target[0]
            p = Path(raw) if os.path.isabs(raw) else (base / raw)
            if must_exist and not p.exists():
                raise UsageError(f"{where(key)}: {str(p)!r} does not exist")
            return p

        # photons
        if "in_photons_file" in emc and "in_photons_list" in emc:
            raise UsageError(f"{where('in_photons_list')}: give in_photons_file or in_photons_list, not both")
        if "in_photons_file" in emc:
            photons = [file_path("in_photons_file")]
        elif "in_photons_list" in emc:
            lst = file_path("in_photons_list")
            photons = []
            for line in lst.read_text().splitlines():
                words = line.split()
                if not words:
                    continue
                if len(words) > 1:
                    raise UsageError(
                        f"{where('in_photons_list')}: {lst.name}: dense HDF5 entries "
                        f"({line.strip()!r}) are not supported; list sparse photon files"
                    )
                pp = Path(words[0]) if os.path.isabs(words[0]) else lst.parent / words[0]
                if not pp.exists():
                    raise UsageError(f"{where('in_photons_list')}: {str(pp)!r} does not exist")
                photons.append(pp)
            if not photons:
                raise UsageError(f"{where('in_photons_list')}: {lst} lists no files")
        else:
            raise UsageError(f"{path.name} [emc]: in_photons_file (or in_photons_list) is required")
        if "in_detector_file" not in emc:
            raise UsageError(f"{path.name} [emc]: in_detector_file is required")
        detector = file_path("in_detector_file")

        # orientations
        if "num_div" in emc and "in_quat_file" in emc:
            raise UsageError(f"{where('in_quat_file')}: give num_div or in_quat_file, not both")
        num_div = None
        if "num_div" in emc:
            if len(emc["num_div"]) > 1:
                raise UsageError(
                    f"{where('num_div')}: two values (refinement of a coarse run) are not supported; give one"
                )
            num_div = number("num_div", int, None, 1, 40)
        quat = file_path("in_quat_file")
        if num_div is None and quat is None:
            raise UsageError(f"{path.name} [emc]: num_div or in_quat_file is required")

        recon = one("recon_type", "3d")
        if recon != "3d":
            raise UsageError(f"{where('recon_type')}: {recon!r} is not supported (only 3d)")
        if number("num_modes", int, 1, 1) != 1:
            raise UsageError(f"{where('num_modes')}: only 1 mode is supported")
        if number("num_nonrot_modes", int, 0, 0) != 0:
            raise UsageError(f"{where('num_nonrot_modes')}: non-rotating modes are not supported")
        if flag("save_prob", False):
            raise UsageError(f"{where('save_prob')}: storing probabilities is not supported; set 0")
        if number("axial_sym", int, 1, 1) != 1:
            raise UsageError(f"{where('axial_sym')}: axial symmetrisation is not supported; set 1")

        beta_raw = one("beta", "auto")
        beta = None if beta_raw == "auto" else number("beta", float, None, 0.0)
        if beta is not None and beta <= 0:
            raise UsageError(f"{where('beta')}: must be positive or auto")
        jump, period = 1.0, 100
        if "beta_schedule" in emc:
            vals = emc["beta_schedule"]
            if len(vals) < 2:
                raise UsageError(f"{where('beta_schedule')}: needs two values, 'jump period'")
            try:
                jump, period = float(vals[0]), int(float(vals[1]))
            except ValueError:
                raise UsageError(f"{where('beta_schedule')}: {' '.join(vals[:2])!r} is not 'jump period'") from None
            if jump <= 0 or period < 1:
                raise UsageError(f"{where('beta_schedule')}: jump must be > 0 and period ≥ 1")
        selection = one("selection")
        if selection not in (None, "odd_only", "even_only"):
            raise UsageError(f"{where('selection')}: {selection!r} must be odd_only or even_only")
        out = file_path("output_folder", must_exist=False) or base / "data"
        if not out.is_dir():
            raise UsageError(
                f"{where('output_folder')}: folder {str(out)!r} does not exist "
                "(Dragonfly needs it to exist too: mkdir it)"
            )
        seed = one("seed")
        return cls(
            path=path,
            photons_files=photons,
            detector_file=detector,
            num_div=num_div,
            quat_file=quat,
            output_folder=out,
            log_file=file_path("log_file", must_exist=False) or base / "EMC.log",
            need_scaling=flag("need_scaling", False),
            update_scale=flag("update_scale", True),
            scale_file=file_path("scale_file"),
            beta=beta,
            beta_factor=number("beta_factor", float, 1.0, 0.0),
            beta_jump=jump,
            beta_period=period,
            alpha=number("alpha", float, 0.0, 0.0, 1.0),
            size=number("size", int, None, 3),
            start_model_file=file_path("start_model_file"),
            fixed_seed=flag("fixed_seed", False),
            blacklist_file=file_path("blacklist_file"),
            selection=selection,
            friedel=flag("friedel_sym", True),
            chunk_size=number("chunk_size", int, 256, 1),
            seed=None if seed is None else number("seed", int, None, 0),
        )

    def settings(self):
        """The :class:`~beamhub.kernels.emc.iteration.EMCSettings` this config asks for."""
        return EMCSettings(
            beta=self.beta,
            beta_factor=self.beta_factor,
            beta_jump=self.beta_jump,
            beta_period=self.beta_period,
            need_scaling=self.need_scaling,
            update_scale=self.update_scale,
            alpha=self.alpha,
            friedel=self.friedel,
            chunk_size=self.chunk_size,
            fixed_seed=self.fixed_seed,
            seed=self.seed,
        )


def load_problem(cfg: EMCConfig):
    """Read every input a config names and check they fit together.

    Returns
    -------
    detector : Detector
    frames : Frames
        All non-blacklisted (selected) frames.
    quats, weights : ndarray, shapes (nr, 4), (nr,)
    model : ndarray (s, s, s) or None
        Start model if ``start_model_file`` is set.
    scale : ndarray (num_data,) or None
        Starting scale factors if ``scale_file`` is set.

    Raises
    ------
    UsageError
        With the file and the problem, for unreadable or mismatched inputs.
    """
    try:
        det_file = dio.read_detector(cfg.detector_file)
        detector = Detector.from_file(det_file, cfg.size)
        mats, total = [], 0
        for pf in cfg.photons_files:
            ph = dio.read_photons(pf)
            if ph.num_pix != det_file.num_pix:
                raise InputFormatError(
                    f"{str(pf)!r} has num_pix = {ph.num_pix} but the detector {str(cfg.detector_file)!r} "
                    f"has {det_file.num_pix} pixels: photons and detector do not belong together"
                )
            mats.append(Frames.from_photons(ph, detector).counts)
            total += ph.num_data
        counts = sp.vstack(mats).tocsr() if len(mats) > 1 else mats[0]
        keep = np.ones(total, dtype=bool)
        if cfg.blacklist_file is not None:
            bl = np.array(cfg.blacklist_file.read_text().split(), dtype=np.int64)
            if bl.size != total:
                raise InputFormatError(f"{str(cfg.blacklist_file)!r}: {bl.size} entries for {total} frames")
            keep &= bl == 0
        if cfg.selection is not None:
            kept = np.flatnonzero(keep)
            drop = kept[1::2] if cfg.selection == "even_only" else kept[0::2]
            keep[drop] = False
        index = np.flatnonzero(keep)
        frames = Frames.from_matrix(counts[index], detector.good, index)
        if cfg.quat_file is not None:
            quats, weights = dio.read_quaternions(cfg.quat_file)
        else:
            quats, weights = quaternion_sampling(cfg.num_div)
        model = dio.read_intens(cfg.start_model_file, detector.size) if cfg.start_model_file else None
        scale = dio.read_scale_file(cfg.scale_file, total)[index] if cfg.scale_file else None
    except InputFormatError as exc:
        raise UsageError(str(exc)) from None
    if frames.num_data == 0:
        raise UsageError(f"{cfg.path.name}: no frames to reconstruct (all blacklisted?)")
    return detector, frames, quats, weights, model, scale
