"""Course machinery: what the book needs around the SER library.

Chapter setup (:mod:`.chapter`), one model's results inside a chapter
(:mod:`.display`), the cross-run comparison and README writer
(:mod:`.comparison`), the book runner (:mod:`.runner`) and the saved-code
check (:mod:`.literate`). See ARCHITECTURE.md.
"""
