"""The vendored reference code is loaded by its tests, not collected as a module."""

collect_ignore = ["covbat_authors.py"]
