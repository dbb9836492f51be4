"""The immutable.hosts command line: the lab, fleet drift reports and adopt."""

__version__ = "0.2.0"
