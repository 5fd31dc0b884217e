"""The PTU record types, one row each (after phconvert's ``_ptu_rec_type``): code, hardware,
T2 or T3, the bit layout of its 32-bit records, how an overflow record counts wraps, and
the name simsps writes it under. The reader, the writer and ``simsps info`` read this table
and nothing else.

Bit layouts (PicoQuant's PicoQuant-Time-Tagged-File-Format-Demos, apx_tttrrecords):

``picoharp`` T3
    channel 4 bits (1-4; 0xF special) | dtime 12 | nsync 16; overflow: special with dtime 0,
    one wrap of 2^16 syncs each.
``hydraharp`` T3
    special 1 | channel 6 (0x3F with special: overflow) | dtime 15 | nsync 10; version 1
    overflows are one wrap of 2^10 each, later versions carry the number of wraps in nsync
    (0 read as 1).
``picoharp`` T2
    channel 4 bits (0-4, 0 the sync input used as a detector; 0xF special) | time tag 28,
    in units of the global resolution (4 ps); special with low 4 bits 0: overflow of
    210698240 units, else a marker (bits = the low 4 bits).
``hydraharp`` T2
    special 1 | channel 6 | time tag 25 (units of the global resolution, 1 ps on a
    HydraHarp 400); special with channel 0x3F: overflow (version 1: 33552000 units; later
    versions 2^25 units times the count in the tag, 0 read as 1); special with channel 0:
    an event of the sync input (not a photon: simsps keeps it as a marker with bits 0);
    special with channel 1-15: a marker (bits = the channel).
Markers in T3: PicoHarp special with dtime != 0 (bits = dtime), HydraHarp special with
channel 1-15 (bits = the channel), placed at their sync.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RecordType", "RECORD_TYPES", "BY_CODE", "WRITABLE"]

_BITS = {  # layout -> (sync bits, dtime bits, highest channel) of T3 records
    "picoharp": (16, 12, 3),
    "hydraharp": (10, 15, 62),
}
_T2 = {  # layout -> (time tag bits, highest channel, tag unit simsps writes, ps) of T2
    "picoharp": (28, 4, 4.0),
    "hydraharp": (25, 62, 1.0),
}


@dataclass(frozen=True)
class RecordType:
    code: int  # TTResultFormat_TTTRRecType
    family: str  # instrument and record version, as shown ("HydraHarp 400 v2")
    mode: str  # "T2" (absolute time tags) or "T3" (sync + microtime)
    layout: str  # bit layout family: "picoharp" or "hydraharp"
    overflow_counts: bool  # an overflow record carries its number of wraps (else one)
    writer: str | None = None  # the format name simsps writes it under
    hw_type: str | None = None  # the HW_Type tag simsps writes (default: the family)

    @property
    def name(self) -> str:
        return f"{self.family} {self.mode}"

    @property
    def hardware(self) -> str:
        return self.hw_type or self.family

    @property
    def sync_bits(self) -> int:
        return _BITS[self.layout][0]

    @property
    def dtime_bits(self) -> int:
        return _BITS[self.layout][1]

    @property
    def max_channel(self) -> int:
        return _BITS[self.layout][2]

    @property
    def wrap(self) -> int:
        """Syncs per overflow (T3)."""
        return 1 << self.sync_bits

    @property
    def n_bins(self) -> int:
        """Microtime bins a record can hold (T3)."""
        return 1 << self.dtime_bits

    @property
    def tag_bits(self) -> int:
        """Bits of a T2 record's time tag."""
        return _T2[self.layout][0]

    @property
    def t2_wrap(self) -> int:
        """Time-tag units one T2 overflow adds (per counted wrap)."""
        if self.layout == "picoharp":
            return 210698240
        return (1 << 25) if self.overflow_counts else 33552000

    @property
    def t2_max_channel(self) -> int:
        return _T2[self.layout][1]

    @property
    def t2_unit_ps(self) -> float:
        """The time-tag unit simsps writes this T2 type with (the instrument's)."""
        return _T2[self.layout][2]


RECORD_TYPES = (
    RecordType(0x00010303, "PicoHarp 300", "T3", "picoharp", False, writer="picoharp-t3"),
    RecordType(0x00010304, "HydraHarp 400 v1", "T3", "hydraharp", False),
    RecordType(
        0x01010304,
        "HydraHarp 400 v2",
        "T3",
        "hydraharp",
        True,
        writer="hydraharp-t3",
        hw_type="HydraHarp 400",
    ),
    RecordType(0x00010305, "TimeHarp 260 N", "T3", "hydraharp", True),
    RecordType(0x00010306, "TimeHarp 260 P", "T3", "hydraharp", True),
    RecordType(0x00010307, "generic (MultiHarp, PicoHarp 330)", "T3", "hydraharp", True),
    RecordType(0x00010203, "PicoHarp 300", "T2", "picoharp", False, writer="picoharp-t2"),
    RecordType(0x00010204, "HydraHarp 400 v1", "T2", "hydraharp", False),
    RecordType(
        0x01010204,
        "HydraHarp 400 v2",
        "T2",
        "hydraharp",
        True,
        writer="hydraharp-t2",
        hw_type="HydraHarp 400",
    ),
    RecordType(0x00010205, "TimeHarp 260 N", "T2", "hydraharp", True),
    RecordType(0x00010206, "TimeHarp 260 P", "T2", "hydraharp", True),
    RecordType(0x00010207, "generic (MultiHarp, PicoHarp 330)", "T2", "hydraharp", True),
)
BY_CODE = {r.code: r for r in RECORD_TYPES}
WRITABLE = {r.writer: r for r in RECORD_TYPES if r.writer}
