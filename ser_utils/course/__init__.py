"""Course machinery: what the book needs around the SER library (chapter setup, the saved-code check, the runner)."""
