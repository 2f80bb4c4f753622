//! The integration-test binary: the real server on 127.0.0.1:0 against a fresh `PostGIS`
//! database per test (`#[sqlx::test]`). Run through `make test`, which starts the cluster.

mod exports;
mod helpers;
mod outage;
mod reports;
