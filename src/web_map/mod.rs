//! The mobile-web map: serves the built front-end (`web-map/dist`), the map style (`tiles/`) and the offline basemap.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the map's files live. citypin runs from the repository root, so the defaults are
/// relative to the working directory; `CITYPIN_WEB_ROOT` points elsewhere (e.g. a package's
/// share directory) and must hold `web-map/dist`, `tiles` and `data-samples`.
#[derive(Debug, Clone)]
pub struct WebMapDirs {
    /// `npm run build` output: `index.html` and `assets/`.
    pub dist: PathBuf,
    /// Map style, web-map settings (`web-map.json`) and other map assets.
    pub tiles: PathBuf,
    /// The simplified district and neighbourhood boundaries drawn as the offline basemap.
    pub basemap: PathBuf,
}

impl WebMapDirs {
    pub fn under(root: &Path) -> Self {
        Self {
            dist: root.join("web-map").join("dist"),
            tiles: root.join("tiles"),
            basemap: root.join("data-samples"),
        }
    }

    pub fn from_env() -> Self {
        let root =
            std::env::var_os("CITYPIN_WEB_ROOT").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self::under(&root)
    }
}

/// The offline basemap files; listed one by one so nothing else in `data-samples/` is served.
const BASEMAP_FILES: [&str; 2] = [
    "la-council-districts.geojson",
    "la-neighborhood-councils.geojson",
];

/// Routes: `/` (the app), `/assets/*` (hashed, cached for a year), `/map-assets/*` (style and
/// settings, revalidated) and `/basemap/*.geojson`. Generic over the state so it merges into
/// the application router whatever its state type.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router_with(&WebMapDirs::from_env())
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

    let mut basemap = Router::new();
    for file in BASEMAP_FILES {
        basemap = basemap.route_service(
            &format!("/basemap/{file}"),
            ServeFile::new(dirs.basemap.join(file)),
        );
    }

    let assets = Router::new()
        .nest_service("/assets", ServeDir::new(dirs.dist.join("assets")))
        .layer(immutable);

    Router::new()
        .route_service("/", ServeFile::new(dirs.dist.join("index.html")))
        .route_service("/index.html", ServeFile::new(dirs.dist.join("index.html")))
        .nest_service("/map-assets", ServeDir::new(&dirs.tiles))
        .merge(basemap)
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
        let dirs = WebMapDirs::under(&root);
        std::fs::create_dir_all(dirs.dist.join("assets")).expect("create dist");
        std::fs::create_dir_all(&dirs.tiles).expect("create tiles");
        std::fs::create_dir_all(&dirs.basemap).expect("create data-samples");
        std::fs::write(dirs.dist.join("index.html"), "<!doctype html>").expect("write index");
        std::fs::write(dirs.dist.join("assets/app-1234.js"), "export {}").expect("write asset");
        std::fs::write(dirs.tiles.join("style.json"), "{}").expect("write style");
        std::fs::write(dirs.basemap.join(BASEMAP_FILES[0]), "{}").expect("write basemap");
        std::fs::write(dirs.basemap.join("secret.csv"), "x").expect("write other sample");
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

        assert_eq!(
            get(&app, "/basemap/secret.csv").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&app, "/map-assets/../data-samples/secret.csv")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        std::fs::remove_dir_all(root).expect("clean up");
    }
}
