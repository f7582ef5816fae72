"""kernels/native: our C sources built once per machine, loaded with ctypes, or a clear None."""

from __future__ import annotations

import ctypes

import pytest

from beamhub.kernels import native
from beamhub.kernels.tomo import _gridrec_cpu


def test_a_failed_build_warns_naming_the_kernels_and_loads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("BEAMHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    if not native.has_avx2():
        pytest.skip("no AVX2 here: load() answers None before trying a compiler")
    with pytest.warns(RuntimeWarning, match="gridrec's C loops unavailable: false could not build _gridrec.c"):
        assert native.load(_gridrec_cpu.SOURCE, {}, what="gridrec's C loops") is None
    assert list(tmp_path.iterdir()) == []  # no half-written library


def test_a_build_is_cached_by_source_and_cpu(tmp_path, monkeypatch):
    cc = native.compiler()
    if cc is None or not native.has_avx2():
        pytest.skip("no C compiler with AVX2 here")
    monkeypatch.setenv("BEAMHUB_CACHE_DIR", str(tmp_path))
    lib = native.load(_gridrec_cpu.SOURCE, {"gridrec_taps": ([], ctypes.c_int)}, what="gridrec's C loops")
    assert lib is not None and lib.gridrec_taps() == _gridrec_cpu.ROW_BLOCK
    (built,) = list(tmp_path.glob("gridrec_*.so"))
    mtime = built.stat().st_mtime_ns
    assert native.build(_gridrec_cpu.SOURCE, cc, tmp_path) == built  # the second call compiles nothing
    assert built.stat().st_mtime_ns == mtime
