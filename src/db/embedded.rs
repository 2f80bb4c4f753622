//! The embedded default: a private `PostgreSQL` + `PostGIS` cluster in citypin's data directory,
//! reached over a Unix socket only, started and stopped by citypin itself.
//!
//! `PostgreSQL` refuses to run as root, so when citypin runs as root the cluster runs as the
//! `postgres` system user (created by Debian's postgresql package) through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::postgres::PgConnectOptions;

/// The database citypin keeps its data in, inside the private cluster.
pub const DATABASE: &str = "citypin";
const PORT: u16 = 5432;

/// A private cluster. A server this value started stops when the value is dropped (a test that
/// fails half-way leaves no cluster running), unless told to [`keep_running`](Self::keep_running);
/// a server it found already running is left alone.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    /// Running as root, the server runs as the `postgres` user through this `runuser`.
    runuser: Option<PathBuf>,
    /// Whether this process started the server (and so should stop it).
    started_here: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for {0}/initdb); install postgresql-15 and postgresql-15-postgis-3, or set DATABASE_URL"
    )]
    NoBinaries(String),
    #[error("{step} failed: {detail}")]
    Step { step: String, detail: String },
}

impl EmbeddedPostgres {
    /// Prepares (but does not start) a cluster under `data_dir`.
    pub fn new(data_dir: &Path, pg_bin: Option<&Path>) -> Result<Self, EmbeddedError> {
        let bin = match pg_bin {
            Some(b) => b.to_path_buf(),
            None => newest_pg_bin().ok_or_else(|| {
                EmbeddedError::NoBinaries("/usr/lib/postgresql/<version>/bin".into())
            })?,
        };
        if !bin.join("initdb").exists() {
            return Err(EmbeddedError::NoBinaries(bin.display().to_string()));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| step("create the data directory", e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| step("resolve the data directory", e))?;
        let run_as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        // `runuser` lives in /usr/sbin, which a non-login shell's PATH may lack: look there too,
        // and fail now rather than report a cluster as stopped because nothing could ask it.
        let runuser = if run_as_postgres {
            Some(find_program("runuser", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"]).ok_or_else(
                || EmbeddedError::Step {
                    step: "find runuser".into(),
                    detail: "running as root, the cluster runs as the postgres user through runuser (util-linux), which is neither on PATH nor in /usr/sbin".into(),
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            pgdata: data_dir.join("pgdata"),
            socket_dir: data_dir.join("run"),
            bin,
            runuser,
            started_here: false,
        })
    }

    /// Initialises the cluster if needed, starts it unless it already runs, and makes sure the
    /// `citypin` database exists with `PostGIS`.
    pub fn start(&mut self) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.socket_dir)
            .map_err(|e| step("create the socket directory", e))?;
        if self.runuser.is_some() {
            self.run(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(self.pgdata.parent().unwrap_or(&self.pgdata)),
            )?;
        }
        if let Some(runuser) = &self.runuser {
            let reachable = Command::new(runuser)
                .args(["-u", "postgres", "--", "test", "-x"])
                .arg(&self.socket_dir)
                .status()
                .is_ok_and(|s| s.success());
            if !reachable {
                return Err(EmbeddedError::Step {
                    step: "check the data directory".into(),
                    detail: format!(
                        "the postgres user cannot reach {}; set CITYPIN_DATA_DIR to a directory it can reach (e.g. under /var/lib or /tmp), or set DATABASE_URL",
                        self.socket_dir.display()
                    ),
                });
            }
        }
        if !self.pgdata.join("PG_VERSION").exists() {
            let mut cmd = self.pg_command("initdb");
            cmd.arg("-D").arg(&self.pgdata).args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-A",
                "trust",
            ]);
            self.run("initdb", &mut cmd)?;
        }
        if self.is_running()? {
            tracing::info!(pgdata = %self.pgdata.display(), "embedded PostgreSQL already running");
        } else {
            let opts = format!(
                "-c listen_addresses='' -c unix_socket_directories='{}' -p {PORT} -c max_connections=200 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on",
                self.socket_dir.display()
            );
            let mut cmd = self.pg_command("pg_ctl");
            cmd.arg("-D")
                .arg(&self.pgdata)
                .args(["-w", "-t", "60", "-l"])
                .arg(self.pgdata.join("server.log"))
                .args(["-o", &opts, "start"]);
            self.run("pg_ctl start", &mut cmd)?;
            self.started_here = true;
        }
        self.ensure_database()
    }

    fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
        )?;
        if exists.trim() != "1" {
            // PostGIS in template1 makes every later database (tests' too) start with it.
            self.psql("template1", "CREATE EXTENSION IF NOT EXISTS postgis")?;
            self.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        }
        Ok(())
    }

    fn psql(&self, db: &str, sql: &str) -> Result<String, EmbeddedError> {
        let mut cmd = self.pg_command("psql");
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-h",
        ])
        .arg(&self.socket_dir)
        .args(["-p", &PORT.to_string(), "-d", db, "-c", sql]);
        self.run(&format!("psql {sql:?}"), &mut cmd)
    }

    /// Whether the server runs; an error when `pg_ctl status` cannot say (it could not be
    /// started, or answered something other than running / not running).
    pub fn is_running(&self) -> Result<bool, EmbeddedError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D").arg(&self.pgdata).arg("status");
        pg_ctl_status(&mut cmd)
    }

    /// Stops the server if this process started it (fast shutdown: sessions end, data is safe).
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
        if !self.started_here {
            return Ok(());
        }
        self.stop_always()
    }

    /// Leaves the server running after this value is dropped (`citypin postgres start`: the
    /// cluster outlives the command that started it).
    pub fn keep_running(&mut self) {
        self.started_here = false;
    }

    /// Stops the server whoever started it.
    pub fn stop_always(&mut self) -> Result<(), EmbeddedError> {
        if self.is_running()? {
            let mut cmd = self.pg_command("pg_ctl");
            cmd.arg("-D")
                .arg(&self.pgdata)
                .args(["-w", "-m", "fast", "stop"]);
            self.run("pg_ctl stop", &mut cmd)?;
        }
        self.started_here = false;
        Ok(())
    }

    /// Connection options for the `citypin` database over the Unix socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username("postgres")
            .database(DATABASE)
    }

    /// The same, as a URL other tools (and `DATABASE_URL`) understand.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{PORT}/{DATABASE}?host={}",
            self.socket_dir.display()
        )
    }

    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.runuser {
            Some(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Result<String, EmbeddedError> {
        let out = cmd.output().map_err(|e| step(what, e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(EmbeddedError::Step {
                step: what.to_owned(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    if what.starts_with("pg_ctl") {
                        format!(" (see {})", self.pgdata.join("server.log").display())
                    } else {
                        String::new()
                    }
                ),
            })
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop the embedded PostgreSQL");
        }
    }
}

/// `pg_ctl status`'s answer: exit 0 is running, 3 is not running (4: no data directory yet,
/// so not running either); anything else, or a command that cannot be run at all, is an
/// error, never "stopped".
fn pg_ctl_status(cmd: &mut Command) -> Result<bool, EmbeddedError> {
    let out = cmd.output().map_err(|e| step("pg_ctl status", e))?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(3 | 4) => Ok(false),
        _ => Err(step(
            "pg_ctl status",
            format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}

/// `name` on `PATH`, else in one of `fallback`.
fn find_program(name: &str, fallback: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallback.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn step(what: &str, e: impl std::fmt::Display) -> EmbeddedError {
    EmbeddedError::Step {
        step: what.to_owned(),
        detail: e.to_string(),
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` that has `initdb`.
fn newest_pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

#[cfg(test)]
mod status_tests {
    use super::*;

    fn exit(code: u8) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", &format!("echo said {code} >&2; exit {code}")]);
        c
    }

    #[test]
    fn a_status_command_that_cannot_run_is_an_error_not_stopped() {
        let mut missing = Command::new("/nonexistent/runuser");
        assert!(pg_ctl_status(&mut missing).is_err());
    }

    #[test]
    fn exit_zero_is_running() {
        assert!(pg_ctl_status(&mut exit(0)).is_ok_and(|running| running));
    }

    #[test]
    fn exit_three_and_four_are_not_running() {
        assert!(pg_ctl_status(&mut exit(3)).is_ok_and(|running| !running));
        assert!(pg_ctl_status(&mut exit(4)).is_ok_and(|running| !running));
    }

    #[test]
    fn any_other_exit_is_an_error_carrying_what_was_said() {
        let err = pg_ctl_status(&mut exit(1)).unwrap_err();
        assert!(err.to_string().contains("said 1"), "{err}");
    }

    #[test]
    fn a_program_off_path_is_found_in_a_fallback_directory() {
        assert_eq!(
            find_program("sh", &["/bin"]).map(|p| p.is_file()),
            Some(true)
        );
        assert_eq!(find_program("no-such-program-here", &["/bin"]), None);
    }
}
