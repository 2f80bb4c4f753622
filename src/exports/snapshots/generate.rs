//! Writing a generation of snapshots: claim the schedule row (`FOR UPDATE SKIP LOCKED`, so one
//! replica writes while the others skip), read the incidents once from `PostGIS`, encode each
//! format into a temporary file in the snapshot directory, flush it to disk, rename it over
//! the served name (atomic: a reader opens the old file or the new one, never a part), record
//! the generation, commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use super::super::model::{Fields, IncidentFeature, IncidentFilter};
use super::super::store as export_store;
use super::super::stream::{CHUNK_BYTES, EncodeError, Encoder, Format};
use super::{FORMATS, file_name, store};
use crate::catalogue::Catalogue;

/// Temporary files start so; any left by a replica that died while writing are removed by the
/// next generation (only the claim holder writes, so none is in use then).
const TEMP_PREFIX: &str = ".incidents.tmp-";
/// How often each replica asks whether a generation is due, at most.
const MAX_TICK: Duration = Duration::from_secs(60);

/// What one call of [`run_once`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This replica wrote generation `generation` with `features` incidents.
    Generated { generation: i64, features: u64 },
    /// The files are there and younger than the interval: nothing to do.
    Fresh,
    /// Another replica holds the claim (it is writing now).
    Busy,
}

/// Why a generation failed; the served files are the previous generation's, and the next
/// tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("export snapshot database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("export snapshot file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("export snapshot encoding: {0}")]
    Encode(#[from] EncodeError),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::File {
        path: path.to_owned(),
        source,
    }
}

/// Writes a generation into `dir` if one is due (the last is older than `interval`, or a
/// file is missing) and no other replica is writing one. Safe on every replica at once.
pub async fn run_once(
    pool: &PgPool,
    catalogue: &Catalogue,
    dir: &Path,
    interval: Duration,
) -> Result<Outcome, SnapshotError> {
    let mut tx = pool.begin().await?;
    let Some(claimed) = store::claim(&mut tx, interval).await? else {
        return Ok(Outcome::Busy);
    };
    let present = FORMATS.iter().all(|f| dir.join(file_name(*f)).is_file());
    if claimed.fresh && present {
        return Ok(Outcome::Fresh);
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(file_error(dir))?;
    remove_stale_temporaries(dir).await?;
    let features = write_generation(pool, catalogue, dir).await?;
    let generation = store::record(&mut tx, features).await?;
    tx.commit().await?;
    Ok(Outcome::Generated {
        generation,
        features,
    })
}

/// One format's file being written.
struct Output {
    format: Format,
    encoder: Encoder,
    file: tokio::io::BufWriter<tokio::fs::File>,
    temp: PathBuf,
}

/// Reads the public incidents once and writes every format; renames the files into place only
/// when all are written. Returns the number of incidents.
async fn write_generation(
    pool: &PgPool,
    catalogue: &Catalogue,
    dir: &Path,
) -> Result<u64, SnapshotError> {
    let fields = Fields::Public;
    let mut outputs = Vec::with_capacity(FORMATS.len());
    for format in FORMATS {
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}.{}",
            uuid::Uuid::new_v4(),
            format.extension()
        ));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(file_error(&temp))?;
        outputs.push(Output {
            format,
            encoder: Encoder::new(format, fields).map_err(EncodeError::from)?,
            file: tokio::io::BufWriter::with_capacity(CHUNK_BYTES, file),
            temp,
        });
    }
    let result = fill(pool, catalogue, fields, &mut outputs).await;
    let features = match result {
        Ok(n) => n,
        Err(e) => {
            for o in &outputs {
                let _ = tokio::fs::remove_file(&o.temp).await;
            }
            return Err(e);
        }
    };
    for o in outputs {
        let name = dir.join(file_name(o.format));
        tokio::fs::rename(&o.temp, &name)
            .await
            .map_err(file_error(&name))?;
    }
    // The renames are durable once the directory is.
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()))
        .await
        .map_err(|e| SnapshotError::File {
            path: dir.to_owned(),
            source: std::io::Error::other(e),
        })?
        .map_err(file_error(dir))?;
    Ok(features)
}

/// Streams the rows into every output and flushes each file to disk.
async fn fill(
    pool: &PgPool,
    catalogue: &Catalogue,
    fields: Fields,
    outputs: &mut [Output],
) -> Result<u64, SnapshotError> {
    // No hidden report, like the streamed export without a token.
    let filter = IncidentFilter::default();
    let mut q = export_store::export_query(&filter);
    let mut rows = export_store::stream(pool, &mut q);
    let mut features = 0_u64;
    while let Some(row) = rows.try_next().await? {
        let feature = IncidentFeature {
            row: &row,
            catalogue,
            fields,
        };
        for o in outputs.iter_mut() {
            o.encoder.push(&feature)?;
            if o.encoder.len() >= CHUNK_BYTES {
                let chunk = o.encoder.take()?;
                o.file
                    .write_all(&chunk)
                    .await
                    .map_err(file_error(&o.temp))?;
            }
        }
        features += 1;
    }
    for o in outputs.iter_mut() {
        o.encoder.finish();
        let chunk = o.encoder.take()?;
        o.file
            .write_all(&chunk)
            .await
            .map_err(file_error(&o.temp))?;
        o.file.flush().await.map_err(file_error(&o.temp))?;
        o.file
            .get_ref()
            .sync_all()
            .await
            .map_err(file_error(&o.temp))?;
    }
    Ok(features)
}

/// Removes temporary files a replica that died while writing left behind.
async fn remove_stale_temporaries(dir: &Path) -> Result<(), SnapshotError> {
    let mut entries = tokio::fs::read_dir(dir).await.map_err(file_error(dir))?;
    while let Some(entry) = entries.next_entry().await.map_err(file_error(dir))? {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            tokio::fs::remove_file(&path)
                .await
                .map_err(file_error(&path))?;
        }
    }
    Ok(())
}

/// Every replica asks every `min(interval, 60 s)` whether a generation is due, until the pool
/// is closed; the first time at once, so a new deployment has snapshots soon after start-up.
pub fn spawn(pool: PgPool, catalogue: Arc<Catalogue>, dir: PathBuf, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.min(MAX_TICK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = pool.close_event() => return,
            }
            let started = Instant::now();
            match run_once(&pool, &catalogue, &dir, interval).await {
                Ok(Outcome::Generated {
                    generation,
                    features,
                }) => tracing::info!(
                    generation,
                    features,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "export snapshots written"
                ),
                Ok(_) => {}
                Err(_) if pool.is_closed() => return,
                Err(e) => tracing::warn!(error = %e, "export snapshots not written; will retry"),
            }
        }
    });
}
