"""Elementwise rules: traced into graphs (:mod:`.graph`), run with torch's ops (:mod:`.run`),
printed as C++ (:mod:`.cpp`), held by :class:`.rule.Rule` for the optimizer classes."""
