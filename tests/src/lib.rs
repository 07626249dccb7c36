//! End-to-end tests for kxdp on real network namespaces (see `tests/tests/`).
