"""Ground truth beside a PTU file: a NumPy ``.npz`` sidecar, one row per photon record of
the file (in file order, markers excluded) and, as a second table, the true charge-state
switches of every NC, so that dwell-time and change-point code can be checked against the
truth, not only g2.

Columns (``np.load(path)``; ``pandas.DataFrame({k: z[k] for k in RECORD_COLUMNS})``):

=====================  ===================================================================
``time_ps``            int64 absolute detection time of the record (T3: sync x period +
                       microtime bin x resolution)
``channel``            uint8 detector
``source``             uint8 :class:`simsps.Source` (exciton, biexciton, trion, charged
                       biexciton, dark count, background, prompt background, afterpulse)
``state``              uint8 :class:`simsps.State` of the NC at the photon's pulse (255:
                       not an emitter photon)
``emitter``            uint16 NC index (65535: not an emitter photon)
``emission_delay_ps``  float32 emission after the pulse, before jitter (NaN: none)
``arrival_ps``         int64 detection time with jitter, before the microtime bin
``switch_emitter``     int32 the switch table (the rows of one NC in time order): NC, ...
``switch_pulse``       int64 ... first laser pulse (CW: 1 ns clock tick) in the new state,
``switch_time_ps``     int64 ... its time (``switch_pulse`` x the clock period),
``switch_state``       uint8 ... the new state (0 neutral/bright, 1 charged/grey)
``initial_state``      uint8 per NC, the state at time 0
``bleach_time_s``      float64 per NC (inf: never bleached)
``clock_period_ps``    the period of ``switch_pulse``
=====================  ===================================================================

Written column by column into temporary files beside the target (bounded memory for any
duration), then zipped (stored, as ``np.savez``) into a temporary file renamed over the
target: an interrupted run leaves nothing.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from ..stream import PhotonStream
from ._atomic import Staging

__all__ = ["RECORD_COLUMNS", "SWITCH_COLUMNS", "TruthSidecar"]

RECORD_COLUMNS = {
    "time_ps": np.int64,
    "channel": np.uint8,
    "source": np.uint8,
    "state": np.uint8,
    "emitter": np.uint16,
    "emission_delay_ps": np.float32,
    "arrival_ps": np.int64,
}
SWITCH_COLUMNS = {
    "switch_emitter": np.int32,
    "switch_pulse": np.int64,
    "switch_time_ps": np.int64,
    "switch_state": np.uint8,
}


class TruthSidecar:
    """Streamed writer: :meth:`add` each chunk of the stream (with its truth), then
    :meth:`close` with the switch table; or :meth:`abort`."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix.lower() != ".npz":
            raise ValueError(f"--truth {self.path}: the ground-truth sidecar is a .npz file")
        if self.path.is_dir():
            raise ValueError(f"--truth {self.path} is a directory")
        if not self.path.parent.is_dir():
            raise ValueError(f"--truth {self.path}: no directory {self.path.parent}")
        self._stage = Staging(self.path)
        self._tmp = self._stage.create()
        self._files = {}
        self._n = dict.fromkeys(list(RECORD_COLUMNS) + list(SWITCH_COLUMNS), 0)
        try:
            self._dir = self._stage.aux_dir()
            for k in self._n:
                self._files[k] = open(self._dir / k, "wb")
        except BaseException:
            self.abort()
            raise
        self.bleach_time_s = np.empty(0)

    def _put(self, name: str, a) -> None:
        a = np.ascontiguousarray(a, dtype=(RECORD_COLUMNS | SWITCH_COLUMNS)[name])
        self._files[name].write(a.tobytes())
        self._n[name] += len(a)

    def add(self, chunk: PhotonStream) -> None:
        """The records of one time-ordered chunk (it must carry its truth)."""
        tr = chunk.truth
        if tr is None:
            raise ValueError("a ground-truth sidecar needs streams simulated with truth=True")
        self._put("time_ps", chunk.time_ps)
        self._put("channel", chunk.channel)
        for k in ("source", "state", "emitter", "emission_delay_ps", "arrival_ps"):
            self._put(k, getattr(tr, k))
        if len(tr.bleach_time_s):
            self.bleach_time_s = tr.bleach_time_s

    def add_switches(self, emitter, pulse, state, clock_period_ps: float) -> None:
        self._put("switch_emitter", emitter)
        self._put("switch_pulse", pulse)
        self._put("switch_time_ps", np.asarray(pulse, np.int64) * int(round(clock_period_ps)))
        self._put("switch_state", state)

    def close(self, *, initial_state, clock_period_ps: float, meta: dict | None = None) -> Path:
        try:
            for fh in self._files.values():
                fh.close()
            extra = {
                "initial_state": np.asarray(initial_state, np.uint8),
                "bleach_time_s": np.asarray(self.bleach_time_s, np.float64),
                "clock_period_ps": np.float64(clock_period_ps),
                "meta_json": np.asarray(json.dumps(meta or {}, default=str)),
            }
            with zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                for name, dt in (RECORD_COLUMNS | SWITCH_COLUMNS).items():
                    self._member(z, name, np.dtype(dt), self._n[name])
                for name, a in extra.items():
                    with z.open(f"{name}.npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, a, allow_pickle=False)
            return self._stage.commit()
        except BaseException:
            self.abort()
            raise

    def _member(self, z, name: str, dtype: np.dtype, n: int) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
        header["shape"] = (n,)
        with z.open(f"{name}.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_2_0(out, header)
            with open(self._dir / name, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._stage.abort()
