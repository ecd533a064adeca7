//! End-to-end tests across the workspace's crates, against a real OTLP receiver on loopback
//! (`test-support`). The tests live in `tests/tests/`.
