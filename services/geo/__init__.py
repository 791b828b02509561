"""The geo service: the tract layer over HTTP (point -> tract, radius, outlines)."""
