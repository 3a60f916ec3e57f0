//! rollgate's end-to-end tests live in `tests/e2e/`: one test binary, so that one local cluster
//! (started on first use) serves every test of the run. This library is empty on purpose.
