//! Parser tests: one or more per command, per SEARCH key, literals, errors.
