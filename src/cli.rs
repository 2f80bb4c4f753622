//! The command line: `serve` (the default), `import FILE`, `generate`, `token create`, `postgres start|stop`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::{self, AppState};
use crate::auth::{self, Role};
use crate::config::Settings;
use crate::db::{Database, EmbeddedPostgres};
use crate::import;

const USAGE: &str = "usage:
  citypin [serve]                                  run the service
  citypin import FILE                              load GeoReport CSV, GeoJSON or GeoJSON-Seq (idempotent)
  citypin generate --count N [--seed S] [--from FILE] --out FILE.csv
                                                   synthetic incidents resampled from FILE (default
                                                   the LA 311 sample in CITYPIN_SHARED_DATA), for benchmarks
  citypin token create --role ROLE --name NAME     print a new API token
        roles: open311-client, agent, crew, analyst, admin
  citypin postgres start|stop|url                  manage the embedded PostGIS cluster in CITYPIN_DATA_DIR

settings (environment):
  DATABASE_URL                 an existing PostgreSQL+PostGIS server (default: the embedded cluster)
";

/// A command line that cannot be understood; names the part at fault.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum UsageError {
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{0} is required")]
    Required(&'static str),
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("{flag} must be a whole number, not {value:?}")]
    NotANumber { flag: String, value: String },
}

/// Why a command failed once understood.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error(transparent)]
    Catalogue(#[from] crate::catalogue::CatalogueError),
    #[error(transparent)]
    Import(#[from] import::ImportError),
    #[error(transparent)]
    Areas(#[from] crate::ogc::areas::AreasError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: Box<dyn std::error::Error>,
    },
    #[error("the service stopped: {0}")]
    Serve(std::io::Error),
}

enum Command {
    Serve,
    Import(PathBuf),
    TokenCreate {
        role: Role,
        name: String,
    },
    Postgres(String),
    Generate {
        count: u64,
        seed: u64,
        /// `None`: the LA 311 sample in the shared data folder.
        from: Option<PathBuf>,
        out: PathBuf,
    },
}

fn parse(args: &[String]) -> Result<Command, UsageError> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => Ok(Command::Serve),
        ["import", file] => Ok(Command::Import(PathBuf::from(file))),
        ["token", "create", rest @ ..] => {
            let mut role = None;
            let mut name = None;
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let value = it
                    .next()
                    .ok_or_else(|| UsageError::MissingValue((*flag).to_owned()))?;
                match *flag {
                    "--role" => {
                        role = Some(
                            Role::parse(value)
                                .ok_or_else(|| UsageError::UnknownRole((*value).to_owned()))?,
                        );
                    }
                    "--name" => name = Some((*value).to_owned()),
                    other => return Err(UsageError::UnknownOption(other.to_owned())),
                }
            }
            Ok(Command::TokenCreate {
                role: role.ok_or(UsageError::Required("--role"))?,
                name: name
                    .filter(|n| !n.trim().is_empty())
                    .ok_or(UsageError::Required("--name"))?,
            })
        }
        ["generate", rest @ ..] => parse_generate(rest),
        ["postgres", action @ ("start" | "stop" | "url")] => {
            Ok(Command::Postgres((*action).to_owned()))
        }
        other => Err(UsageError::UnknownCommand(other.join(" "))),
    }
}

fn parse_generate(rest: &[&str]) -> Result<Command, UsageError> {
    let (mut count, mut seed, mut from, mut out) = (None, 42, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| UsageError::MissingValue((*flag).to_owned()))?;
        let number = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| UsageError::NotANumber {
                    flag: (*flag).to_owned(),
                    value: v.to_owned(),
                })
        };
        match *flag {
            "--count" => count = Some(number(value)?),
            "--seed" => seed = number(value)?,
            "--from" => from = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            other => return Err(UsageError::UnknownOption(other.to_owned())),
        }
    }
    Ok(Command::Generate {
        count: count.ok_or(UsageError::Required("--count"))?,
        seed,
        from,
        out: out.ok_or(UsageError::Required("--out"))?,
    })
}

/// `citypin generate`: needs no database, so it runs before one is opened.
fn generate(
    settings: &Settings,
    count: u64,
    seed: u64,
    from: Option<&Path>,
    out: &Path,
) -> ExitCode {
    let sample = settings
        .shared_data
        .join(crate::config::shared_data::LA311_CSV);
    let from = from.unwrap_or(&sample);
    let result = (|| -> Result<(), RunError> {
        let c = crate::catalogue::Catalogue::load(settings.catalogue.as_deref())?;
        let g = import::generate::Generator::from_file(from, &c, seed)?;
        let file = std::fs::File::create(out).map_err(|source| RunError::Create {
            path: out.display().to_string(),
            source,
        })?;
        import::generate::write_csv(g, count, std::io::BufWriter::new(file)).map_err(|source| {
            RunError::Write {
                path: out.display().to_string(),
                source,
            }
        })
    })();
    match result {
        Ok(()) => {
            println!("wrote {count} incidents (seed {seed}) to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("citypin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}{}", Settings::help());
        return ExitCode::SUCCESS;
    }
    let command = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("citypin: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("citypin: {e}");
            return ExitCode::from(2);
        }
    };
    crate::ops::init_tracing(settings.log_json);
    match &command {
        Command::Postgres(action) => return postgres(&settings, action),
        Command::Generate {
            count,
            seed,
            from,
            out,
        } => return generate(&settings, *count, *seed, from.as_deref(), out),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("citypin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("citypin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), RunError> {
    let db = Database::open(&settings).await?;
    let result = match command {
        Command::Serve => serve(&db, settings).await,
        Command::Import(path) => {
            let catalogue = crate::catalogue::Catalogue::load(settings.catalogue.as_deref())?;
            catalogue.upsert(&db.pool).await?;
            let started = std::time::Instant::now();
            import::import_file(&db.pool, &catalogue, &path, None)
                .await
                .map(|s| println!("{s}took {:.2} s", started.elapsed().as_secs_f64()))
                .map_err(RunError::from)
        }
        Command::TokenCreate { role, name } => auth::create_token(&db.pool, role, &name)
            .await
            .map(|secret| println!("{secret}"))
            .map_err(RunError::from),
        Command::Postgres(_) | Command::Generate { .. } => Ok(()),
    };
    db.close().await;
    result
}

async fn serve(db: &Database, settings: Settings) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| RunError::Listen {
            address: settings.listen,
            source,
        })?;
    let sample = settings.sample.clone();
    let areas = settings.areas.clone();
    let state = AppState::open(db.pool.clone(), settings).await?;
    if let Some(areas) = areas {
        let n = crate::ogc::areas::load_file(&state.pool, &areas).await?;
        tracing::info!(areas = n, "areas loaded");
    }
    if let Some(sample) = sample {
        load_sample(&state, &sample).await?;
    }
    // Serve at once (live, not ready) while the index loads; a load failure stops the service.
    let loading = state.clone();
    let failure = std::sync::Arc::new(std::sync::Mutex::new(None::<app::StartError>));
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let failed = failure.clone();
    tokio::spawn(async move {
        match loading.load_spatial_index().await {
            Ok(_) => loading.spawn_background(),
            Err(e) => {
                *failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                let _ = failed_tx.send(());
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            () = crate::ops::shutdown_signal() => {}
            Ok(()) = failed_rx => {}
        }
    };
    let address = listener.local_addr().map_err(RunError::Serve)?;
    tracing::info!(address = %address, "citypin serving");
    app::serve(listener, state, shutdown)
        .await
        .map_err(RunError::Serve)?;
    match failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Loads the sample city, shifted so its newest report is from now, if there are no reports.
async fn load_sample(state: &AppState, path: &std::path::Path) -> Result<(), RunError> {
    let count = crate::reports::store::count(&state.pool).await?;
    if count > 0 {
        return Ok(());
    }
    let rows = import::read_rows(path)?;
    let shift = import::shift_to_now(&rows);
    let summary = import::import_rows(&state.pool, &state.catalogue, rows, Some(shift)).await?;
    tracing::info!(
        inserted = summary.inserted,
        rejected = summary.rejected,
        shift_days = shift.num_days(),
        "sample city loaded"
    );
    Ok(())
}

fn postgres(settings: &Settings, action: &str) -> ExitCode {
    let result =
        EmbeddedPostgres::new(&settings.data_dir, settings.pg_bin.as_deref()).and_then(|mut pg| {
            match action {
                "start" => pg.start().map(|()| {
                    pg.keep_running();
                    pg.url()
                }),
                "stop" => pg.stop_always().map(|()| String::new()),
                _ => Ok(pg.url()),
            }
        });
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("citypin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_line_parses_the_documented_commands() {
        assert!(matches!(parse(&args("")), Ok(Command::Serve)));
        assert!(matches!(
            parse(&args("import a.csv")),
            Ok(Command::Import(_))
        ));
        assert!(matches!(
            parse(&args("token create --role crew --name north")),
            Ok(Command::TokenCreate {
                role: Role::Crew,
                ..
            })
        ));
        assert!(parse(&args("token create --role king --name x")).is_err());
        assert!(parse(&args("token create --role crew")).is_err());
        assert!(matches!(
            parse(&args("generate --count 1_000 --seed 7 --out x.csv")),
            Ok(Command::Generate {
                count: 1000,
                seed: 7,
                ..
            })
        ));
        assert!(parse(&args("generate --out x.csv")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
    }
}
