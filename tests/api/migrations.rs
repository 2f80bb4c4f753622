//! A landed migration never changes: `migrations/checksums.txt` records each one's SHA-384 as
//! sqlx embeds it, and `scripts/check-migrations.sh` (run by `make lint`) holds the files to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::workspace;

/// `file name → SHA-384 hex` from the lock file.
fn recorded() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(workspace().join("migrations/checksums.txt"))
        .expect("migrations/checksums.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (sum, name) = l.split_once("  ").expect("sha384sum format");
            (name.to_owned(), sum.to_owned())
        })
        .collect()
}

#[test]
fn the_lock_file_holds_the_checksums_sqlx_embeds_for_every_migration() {
    let recorded = recorded();
    let embedded: Vec<_> = citypin::db::MIGRATOR.iter().collect();
    assert_eq!(recorded.len(), embedded.len(), "{recorded:?}");
    for m in embedded {
        let hex = m.checksum.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let listed = recorded
            .iter()
            .find(|(name, _)| name.starts_with(&format!("{:04}_", m.version)))
            .unwrap_or_else(|| panic!("migration {} is not in checksums.txt", m.version));
        assert_eq!(listed.1, &hex, "migration {}: {}", m.version, listed.0);
    }
}

fn check(dir: &Path) -> (bool, String) {
    let out = Command::new(workspace().join("scripts/check-migrations.sh"))
        .arg(dir)
        .output()
        .expect("run scripts/check-migrations.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a case does to a scratch copy of `migrations/`.
type Change = fn(&Path);

/// A scratch copy of `migrations/`.
fn copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("citypin-migrations-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for entry in std::fs::read_dir(workspace().join("migrations")).expect("migrations") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

#[test]
fn the_check_passes_the_committed_migrations_and_names_an_edited_removed_or_unlisted_one() {
    assert_eq!(
        check(&workspace().join("migrations")),
        (true, String::new())
    );
    let cases: [(&str, Change); 3] = [
        ("0004_dedup.sql changed after it landed", |d| {
            let path = d.join("0004_dedup.sql");
            let text = std::fs::read_to_string(&path).expect("read");
            std::fs::write(path, text + "-- a later fix\n").expect("edit");
        }),
        ("0006_areas.sql is in checksums.txt but missing", |d| {
            std::fs::remove_file(d.join("0006_areas.sql")).expect("remove");
        }),
        ("0099_next.sql is not in migrations/checksums.txt", |d| {
            std::fs::write(d.join("0099_next.sql"), "SELECT 1;\n").expect("add");
        }),
    ];
    let mut failures = Vec::new();
    for (expected, change) in cases {
        let dir = copy();
        change(&dir);
        let (ok, stderr) = check(&dir);
        if ok || !stderr.contains(expected) {
            failures.push(format!("{expected}: ok={ok}, stderr={stderr}"));
        }
        std::fs::remove_dir_all(dir).expect("clean up");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
