//! The mobile-web map: serves the built front-end (`web-map/dist`), the map style (`tiles/`) and the offline basemap.

mod basemap;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the map's files live. citypin runs from the repository root, so the defaults are
/// relative to the working directory; `CITYPIN_WEB_ROOT` points elsewhere (e.g. a package's
/// share directory) and must hold `web-map/dist` and `tiles`. The basemap's boundaries are
/// third-party data, read from the shared data folder (`CITYPIN_SHARED_DATA`).
#[derive(Debug, Clone)]
pub struct WebMapDirs {
    /// `npm run build` output: `index.html` and `assets/`.
    pub dist: PathBuf,
    /// Map style, web-map settings (`web-map.json`) and other map assets.
    pub tiles: PathBuf,
    /// The shared data folder holding the district and neighbourhood boundaries.
    pub shared_data: PathBuf,
}

impl WebMapDirs {
    pub fn under(root: &Path, shared_data: &Path) -> Self {
        Self {
            dist: root.join("web-map").join("dist"),
            tiles: root.join("tiles"),
            shared_data: shared_data.to_path_buf(),
        }
    }

    pub fn from_env(shared_data: &Path) -> Self {
        let root =
            std::env::var_os("CITYPIN_WEB_ROOT").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self::under(&root, shared_data)
    }
}

/// Routes: `/` (the app), `/assets/*` (hashed, cached for a year), `/map-assets/*` (style and
/// settings, revalidated) and `/basemap/*.geojson`. Generic over the state so it merges into
/// the application router whatever its state type.
pub fn router<S>(shared_data: &Path) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router_with(&WebMapDirs::from_env(shared_data))
}

pub fn router_with<S>(dirs: &WebMapDirs) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Asset names carry a content hash, so they never change under the same URL.
    let immutable = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    // Everything else may change with a deployment: let browsers revalidate (ETag/Last-Modified).
    let revalidate = SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );

    // Listed one by one, so nothing else in the shared data folder is served.
    let mut boundaries = Router::new();
    for layer in &basemap::LAYERS {
        let served = Arc::new(basemap::Served::new(layer, &dirs.shared_data));
        boundaries = boundaries.route(
            &format!("/basemap/{}", layer.file),
            get(move |req: HeaderMap| async move { served.respond(&req).await }),
        );
    }

    let assets = Router::new()
        .nest_service("/assets", ServeDir::new(dirs.dist.join("assets")))
        .layer(immutable);

    Router::new()
        .route_service("/", ServeFile::new(dirs.dist.join("index.html")))
        .route_service("/index.html", ServeFile::new(dirs.dist.join("index.html")))
        .nest_service("/map-assets", ServeDir::new(&dirs.tiles))
        .merge(boundaries)
        .layer(revalidate)
        .merge(assets)
        // The bundle is ~1.6 MB raw and ~0.45 MB gzipped: compress even if the app does not.
        .layer(CompressionLayer::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn fixture() -> (PathBuf, WebMapDirs) {
        let root = std::env::temp_dir().join(format!("citypin-web-map-{}", uuid::Uuid::new_v4()));
        let dirs = WebMapDirs::under(&root, &root.join("shared"));
        let la311 = dirs.shared_data.join("la311");
        std::fs::create_dir_all(dirs.dist.join("assets")).expect("create dist");
        std::fs::create_dir_all(&dirs.tiles).expect("create tiles");
        std::fs::create_dir_all(&la311).expect("create shared data");
        std::fs::write(dirs.dist.join("index.html"), "<!doctype html>").expect("write index");
        std::fs::write(dirs.dist.join("assets/app-1234.js"), "export {}").expect("write asset");
        std::fs::write(dirs.tiles.join("style.json"), "{}").expect("write style");
        // The districts only: the neighbourhoods' source is missing.
        std::fs::write(la311.join("la-city-council-districts-2012.json"), "{}")
            .expect("write districts");
        std::fs::write(la311.join("secret.csv"), "x").expect("write other data");
        (root, dirs)
    }

    async fn get(app: &Router, uri: &str) -> axum::response::Response {
        app.clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    #[tokio::test]
    async fn serves_the_app_its_assets_style_and_basemap_but_nothing_else() {
        let (root, dirs) = fixture();
        let app: Router = router_with(&dirs);

        let index = get(&app, "/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");

        let asset = get(&app, "/assets/app-1234.js").await;
        assert_eq!(asset.status(), StatusCode::OK);
        assert!(
            asset.headers()[header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .contains("immutable")
        );

        assert_eq!(
            get(&app, "/map-assets/style.json").await.status(),
            StatusCode::OK
        );
        let basemap = get(&app, "/basemap/la-council-districts.geojson").await;
        assert_eq!(basemap.status(), StatusCode::OK);
        assert_eq!(
            basemap.headers()[header::CONTENT_TYPE],
            "application/geo+json"
        );
        assert_eq!(basemap.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = basemap.headers()[header::ETAG].clone();
        let again = app
            .clone()
            .oneshot(
                Request::get("/basemap/la-council-districts.geojson")
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let missing = get(&app, "/basemap/la-neighborhood-councils.geojson").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            missing.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );

        assert_eq!(
            get(&app, "/basemap/secret.csv").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&app, "/map-assets/../shared/la311/secret.csv")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        std::fs::remove_dir_all(root).expect("clean up");
    }
}
