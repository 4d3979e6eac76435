"""Executable pages: each code block of a guide becomes a test (parse, evaluate, report)."""
