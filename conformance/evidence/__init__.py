"""The signed evidence bundle: writing it, verifying it, comparing two runs."""
