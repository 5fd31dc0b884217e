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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RecordType", "RECORD_TYPES", "BY_CODE", "WRITABLE"]

_BITS = {  # layout -> (sync bits, dtime bits, highest channel) of T3 records
    "picoharp": (16, 12, 3),
    "hydraharp": (10, 15, 62),
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
    RecordType(0x00010203, "PicoHarp 300", "T2", "picoharp", False),
    RecordType(0x00010204, "HydraHarp 400 v1", "T2", "hydraharp", False),
    RecordType(0x01010204, "HydraHarp 400 v2", "T2", "hydraharp", True),
    RecordType(0x00010205, "TimeHarp 260 N", "T2", "hydraharp", True),
    RecordType(0x00010206, "TimeHarp 260 P", "T2", "hydraharp", True),
    RecordType(0x00010207, "generic (MultiHarp, PicoHarp 330)", "T2", "hydraharp", True),
)
BY_CODE = {r.code: r for r in RECORD_TYPES}
WRITABLE = {r.writer: r for r in RECORD_TYPES if r.writer}
