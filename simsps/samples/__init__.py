"""Samples beyond one NC: populations on a substrate, spectrometer frames, widefield
photostability movies."""
