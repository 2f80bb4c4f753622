//! Application state, the one function that merges every capability's router (each
//! capability registers its own routes in its `router()`), the layer stack, and the server
//! loop with its connection limits.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sqlx::PgPool;
use tower_http::timeout::TimeoutLayer;

use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::ops::metrics::Metrics;
use crate::photos::Photos;
use crate::spatial_index::SpatialIndex;
use crate::tiles::cache::TileCache;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub catalogue: Arc<Catalogue>,
    pub spatial_index: Arc<SpatialIndex>,
    pub metrics: Arc<Metrics>,
    pub photos: Arc<Photos>,
    pub tile_cache: Arc<TileCache>,
    pub tile_pyramid: Arc<crate::tiles::pyramid::Pyramid>,
    /// Intakes admitted at once (see [`crate::intake::ADMITTED_PER_CONNECTION`]); one
    /// more is refused at once with 503 and `Retry-After` instead of queueing for the pool.
    pub intake_admission: Arc<tokio::sync::Semaphore>,
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalogue(#[from] crate::catalogue::CatalogueError),
    #[error("could not store the service catalogue: {0}")]
    StoreCatalogue(sqlx::Error),
    #[error(transparent)]
    PhotoStore(#[from] crate::photos::s3::S3SetupError),
    #[error("could not load the spatial index: {0}")]
    SpatialIndex(sqlx::Error),
}

impl AppState {
    /// Loads the catalogue, the live index and starts keeping the index coherent with other
    /// processes (see [`crate::spatial_index::sync`]).
    pub async fn start(pool: PgPool, settings: Settings) -> Result<Self, StartError> {
        let state = Self::open(pool, settings).await?;
        state.load_spatial_index().await?;
        state.spawn_background();
        Ok(state)
    }

    /// Stores the catalogue; the live index is empty and not loaded (`/health/ready` says so)
    /// until [`Self::load_spatial_index`].
    pub async fn open(pool: PgPool, settings: Settings) -> Result<Self, StartError> {
        let catalogue = Catalogue::load(settings.catalogue.as_deref())?;
        catalogue
            .upsert(&pool)
            .await
            .map_err(StartError::StoreCatalogue)?;
        let photos = Arc::new(Photos::new(&settings)?);
        let spatial_index = Arc::new(SpatialIndex::new());
        let tile_cache = Arc::new(TileCache::new(
            crate::tiles::cache::DEFAULT_MAX_BYTES,
            spatial_index.subscribe(),
        ));
        let tile_pyramid = Arc::new(crate::tiles::pyramid::Pyramid::new(spatial_index.clone()));
        let intake_admission = Arc::new(tokio::sync::Semaphore::new(
            settings.db_max_connections as usize * crate::intake::ADMITTED_PER_CONNECTION,
        ));
        Ok(Self {
            intake_admission,
            tile_pyramid,
            photos,
            pool,
            settings: Arc::new(settings),
            catalogue: Arc::new(catalogue),
            spatial_index,
            metrics: Arc::new(Metrics::default()),
            tile_cache,
        })
    }

    /// Bulk-loads the live index from `PostGIS`.
    pub async fn load_spatial_index(&self) -> Result<usize, StartError> {
        let started = std::time::Instant::now();
        let n = self
            .spatial_index
            .load(&self.pool, &self.catalogue)
            .await
            .map_err(StartError::SpatialIndex)?;
        self.tile_pyramid.warm();
        tracing::info!(
            incidents = n,
            duration_ms = started.elapsed().as_millis() as u64,
            "spatial index loaded"
        );
        Ok(n)
    }

    /// Starts the tasks that keep the live index coherent (LISTEN/NOTIFY, reconciliation,
    /// folding), the photo orphan sweep and the export snapshots; they stop when the pool is
    /// closed.
    pub fn spawn_background(&self) {
        crate::spatial_index::sync::spawn(
            self.spatial_index.clone(),
            self.pool.clone(),
            self.catalogue.clone(),
            self.settings.reconcile_every,
        );
        crate::tiles::pyramid::spawn_keeper(&self.tile_pyramid);
        crate::photos::sweep::spawn(
            self.pool.clone(),
            self.photos.storage.clone(),
            self.settings.photo_orphan_grace,
        );
        crate::exports::snapshots::spawn(
            self.pool.clone(),
            self.catalogue.clone(),
            crate::exports::snapshots::dir(&self.settings),
            self.settings.snapshot_interval,
        );
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(crate::ops::router())
        .merge(crate::intake::router())
        .merge(crate::reports::router())
        .merge(crate::dedup::router())
        .merge(crate::open311::router())
        .merge(crate::spatial_index::http::router())
        .merge(crate::web_map::router(&state.settings.shared_data))
        .merge(crate::photos::router())
        .merge(crate::tiles::router())
        .merge(crate::exports::router())
        .merge(crate::ogc::router())
        .fallback(|| async { crate::error::AppError::NotFound("route") });
    layers(routes, state)
}

/// The middleware every route runs under (request ids, tracing, panics, body limit, timeout);
/// public so a test can mount a route of its own under exactly the same stack.
pub fn layers(routes: Router<AppState>, state: AppState) -> Router {
    crate::ops::layers(routes, &state)
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.settings.request_timeout,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish within the deadline.
///
/// One task per connection, HTTP/1.1 with keep-alive. A request's headers must arrive within
/// `CITYPIN_HEADER_TIMEOUT_SECS`, counted from when the connection is ready for them, so a
/// client trickling its headers and an idle keep-alive connection are both closed after it.
/// At most `CITYPIN_MAX_CONNECTIONS` connections are open at once; one more is closed at
/// once (a load balancer or the client tries again) rather than queued. Each request carries
/// its peer address (`ConnectInfo`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let deadline = state.settings.shutdown_deadline;
    let header_timeout = state.settings.header_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(state.settings.max_connections));
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "connection closed: CITYPIN_MAX_CONNECTIONS are open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(peer = %peer, error = %e, "connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Finished connections are reaped as new ones come, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            deadline_s = deadline.as_secs(),
            "shutdown deadline passed; closing remaining connections"
        );
        connections.abort_all();
    }
    Ok(())
}
