//! Photos on reports, safe by construction: uploads are sniffed, size-checked from the header,
//! decoded within limits off the async threads, re-encoded (no metadata survives) into a display
//! size and a thumbnail, and kept in a content-addressed store referenced from `PostGIS`.

pub mod fixtures;
pub mod handlers;
pub mod model;
pub mod process;
pub mod s3;
pub mod storage;
pub mod store;
pub mod sweep;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::config::{PhotoStoreSetting, Settings};
use crate::error::AppError;
use model::{MAX_UPLOAD_BYTES, PhotoKind, StoredPhoto};
use process::{ProcessError, Processed};
use storage::{ContentHash, LocalStore, PhotoStore};

/// Uploads read and processed at once. Each may buffer up to three 10 MB photos, so this bounds
/// the memory held by request bodies (8 × 30 MB) next to the decoders'.
const UPLOADS_AT_ONCE: usize = 8;
/// How long an upload waits for a slot before it gets 503 with `Retry-After`.
const UPLOAD_WAIT: Duration = Duration::from_secs(2);
/// Uploads one client address may have in flight at once: a few slow clients cannot hold every
/// slot (behind a reverse proxy, every client shares the proxy's address).
pub const UPLOADS_PER_CLIENT: usize = 2;

/// One admitted upload: its global slot and its client's, both given back when dropped.
pub struct UploadPermit {
    _global: OwnedSemaphorePermit,
    _client: Option<ClientSlot>,
}

type ClientCounts = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One of a client address's upload slots.
struct ClientSlot {
    counts: ClientCounts,
    ip: std::net::IpAddr,
}

impl ClientSlot {
    fn take(counts: &ClientCounts, ip: std::net::IpAddr) -> Result<Self, AppError> {
        let mut map = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= UPLOADS_PER_CLIENT {
            return Err(AppError::TooManyRequests(format!(
                "at most {UPLOADS_PER_CLIENT} uploads at once from one address; send the next when one finishes"
            )));
        }
        *n += 1;
        Ok(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/reports/{id}/photos",
            post(handlers::add)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
                .get(handlers::list),
        )
        .route("/api/v1/photos/{id}/{size}", get(handlers::serve))
}

/// The photo store and the bounds on concurrent work; one per process, in `AppState`.
pub struct Photos {
    pub storage: Arc<dyn PhotoStore>,
    uploads: Arc<Semaphore>,
    /// Uploads in flight per client address.
    per_client: ClientCounts,
    /// Decodes at once: one per core, since decoding is CPU-bound and a 60-megapixel decode
    /// holds up to 256 MiB.
    processing: Arc<Semaphore>,
}

impl Photos {
    /// An S3-compatible bucket (`CITYPIN_PHOTO_STORE=s3://…`), or a local store under
    /// `CITYPIN_PHOTO_DIR` (default `<data dir>/photos`).
    pub fn new(settings: &Settings) -> Result<Self, s3::S3SetupError> {
        let storage: Arc<dyn PhotoStore> = match &settings.photo_store {
            PhotoStoreSetting::S3(s3) => {
                tracing::info!(
                    endpoint = %s3.endpoint,
                    bucket = %s3.bucket,
                    prefix = %s3.prefix,
                    "photos are kept in an S3-compatible bucket"
                );
                Arc::new(s3::S3Store::new(s3)?)
            }
            PhotoStoreSetting::Local => {
                let root = settings
                    .photo_dir
                    .clone()
                    .unwrap_or_else(|| settings.data_dir.join("photos"));
                let local = LocalStore::new(root);
                let swept = local.sweep_temporaries(Duration::from_secs(3600));
                if swept > 0 {
                    tracing::info!(
                        files = swept,
                        "removed temporary photo files left by an earlier crash"
                    );
                }
                Arc::new(local)
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            storage,
            uploads: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)),
            per_client: Arc::default(),
            processing: Arc::new(Semaphore::new(cores)),
        })
    }

    /// A slot for one upload, held while its body is read and its photos processed and stored.
    /// A client address with [`UPLOADS_PER_CLIENT`] in flight gets 429 at once; otherwise this
    /// waits briefly, then answers 503 so a burst fails fast instead of piling up in memory.
    pub async fn admit(&self, client: Option<std::net::IpAddr>) -> Result<UploadPermit, AppError> {
        let slot = client
            .map(|ip| ClientSlot::take(&self.per_client, ip))
            .transpose()?;
        let global = tokio::time::timeout(UPLOAD_WAIT, self.uploads.clone().acquire_owned())
            .await
            .map_err(|_| AppError::Unavailable)?
            .map_err(|_| AppError::Unavailable)?;
        Ok(UploadPermit {
            _global: global,
            _client: slot,
        })
    }

    /// Runs the pipeline on each photo on a blocking thread, a bounded number at once.
    pub async fn process_all(&self, uploads: Vec<Bytes>) -> Result<Vec<Processed>, AppError> {
        let mut out = Vec::with_capacity(uploads.len());
        for (i, bytes) in uploads.into_iter().enumerate() {
            let permit = self
                .processing
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| AppError::Unavailable)?;
            // The permit moves into the closure: it is held until the decode ends, even when
            // the request that asked for it has gone.
            let result = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                process::process(&bytes)
            })
            .await
            .map_err(AppError::internal)?;
            out.push(result.map_err(|e| photo_error(i, e))?);
        }
        Ok(out)
    }

    /// Writes both sizes of each photo, after noting every file as a candidate for the orphan
    /// sweep (see [`sweep`]). Nothing is removed here, on failure or later: a file this request
    /// wrote may be the one a concurrent identical upload is about to reference, so only the
    /// sweep, after the grace period and a reference check, removes files.
    pub async fn store_all(
        &self,
        pool: &sqlx::PgPool,
        kind: PhotoKind,
        processed: Vec<Processed>,
    ) -> Result<Vec<StoredPhoto>, AppError> {
        let hashes: Vec<ContentHash> = processed
            .iter()
            .flat_map(|p| [&p.display.bytes, &p.thumb.bytes])
            .map(|b| ContentHash::of(b))
            .collect();
        if !hashes.is_empty() {
            store::note_candidates(pool, &hashes).await?;
        }
        let mut stored = Vec::with_capacity(processed.len());
        for p in processed {
            let display = self.storage.put(Bytes::from(p.display.bytes.clone())).await;
            let display = display.map_err(store_error)?;
            let thumb = self.storage.put(Bytes::from(p.thumb.bytes.clone())).await;
            let thumb = thumb.map_err(store_error)?;
            stored.push(StoredPhoto::new(kind, &p, display, thumb));
        }
        Ok(stored)
    }
}

/// A store that cannot be reached is 503 (the client retries with its idempotency key). The
/// error carries the detail to the request middleware's one log line; the body says what is
/// down, but not where: no endpoint or S3 message reaches the client.
pub fn store_error(e: std::io::Error) -> AppError {
    if storage::is_unavailable(&e) {
        AppError::PhotoStoreUnavailable(e.to_string())
    } else {
        AppError::internal(e)
    }
}

/// Maps a pipeline failure to the response naming the photo part at fault.
fn photo_error(index: usize, e: ProcessError) -> AppError {
    let field = format!("photo[{index}]");
    match e {
        ProcessError::UnsupportedFormat => {
            AppError::UnsupportedMediaType(format!("{field} {e}; send JPEG, PNG or WebP"))
        }
        ProcessError::TooLarge { .. } | ProcessError::Undecodable { .. } => {
            AppError::invalid(field, e.to_string())
        }
        ProcessError::Encode(_) => AppError::internal(e),
    }
}

/// Staff add photos to an existing report: the rows, a `photo` history event and an outbox
/// event in one transaction.
pub async fn attach(
    state: &AppState,
    report: Uuid,
    photos: &[StoredPhoto],
    note: Option<&str>,
    caller: &Caller,
) -> Result<(), AppError> {
    use crate::reports::store as reports;
    let actor = caller.actor();
    let mut tx = state.pool.begin().await?;
    reports::lock(&mut tx, report)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    store::insert(&mut tx, report, photos, actor).await?;
    let data = serde_json::json!({
        "photos": photos.iter().map(|p| p.id).collect::<Vec<_>>(),
        "kind": photos.first().map(|p| p.kind.as_str()),
    });
    reports::insert_event(
        &mut tx,
        report,
        "photo",
        None,
        None,
        note,
        actor,
        data.clone(),
    )
    .await?;
    reports::outbox(&mut tx, report, "report.photos_added", data).await?;
    tx.commit().await?;
    Ok(())
}
