//! The integration-test binary: the real server on 127.0.0.1:0 against a fresh `PostGIS`
//! database per test (`#[sqlx::test]`). Run through `make test`, which starts the cluster.

mod admission;
mod bad_rows;
mod connections;
mod dedup;
mod embedded_postgres;
mod exports;
mod faults;
mod helpers;
mod migrations;
mod open311;
mod ops;
mod outage;
mod photos;
mod photos_s3;
mod process;
mod reports;
mod snapshots;
mod spatial_index;
mod tiles;
