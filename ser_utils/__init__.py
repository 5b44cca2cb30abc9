"""ser_utils: support package for ser-book."""
