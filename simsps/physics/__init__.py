"""Pure physics of one nanocrystal: excitation statistics, cascade yields, blinking, bleaching."""
