"""ActionVOS-format data: I/O, synthetic generator, ActiSeg-NL noise."""
