//! Serving a snapshot file: whole or one byte range, with its validators, and conditional
//! requests by the one rule in `ops::conditional`. The length, `ETag` and `Last-Modified` come
//! from the opened file itself, so they always describe the bytes sent, even when a new
//! generation is renamed into place meanwhile.

use std::os::unix::fs::MetadataExt;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::super::stream::Format;
use super::{dir, file_name};
use crate::app::AppState;
use crate::error::AppError;
use crate::ops::conditional::{self, Precondition, Validators};
use crate::ops::range::{self, RangeAnswer};

/// Bytes read from the file per chunk of the body.
const READ_CHUNK: usize = 64 * 1024;

pub async fn geojson(state: State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    snapshot(state, &headers, Format::GeoJson).await
}

pub async fn geojson_seq(state: State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    snapshot(state, &headers, Format::GeoJsonSeq).await
}

pub async fn csv(state: State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    snapshot(state, &headers, Format::Csv).await
}

/// A strong tag from the file's identity: files are never changed in place (each generation
/// is a new file renamed over the old), so inode, modification time and length name one
/// content, as nginx's and Apache's file tags do.
fn etag(meta: &std::fs::Metadata) -> String {
    let nanos = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    format!("\"{:x}-{nanos:x}-{:x}\"", meta.ino(), meta.len())
}

async fn snapshot(
    State(state): State<AppState>,
    headers: &HeaderMap,
    format: Format,
) -> Result<Response, AppError> {
    if state.settings.snapshot_interval.is_zero() {
        return Err(AppError::NotFound("snapshot"));
    }
    let path = dir(&state.settings).join(file_name(format));
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::NotFound("snapshot"));
        }
        Err(e) => return Err(AppError::internal(format!("{}: {e}", path.display()))),
    };
    let meta = file.metadata().await.map_err(AppError::internal)?;
    let len = meta.len();
    let tag = etag(&meta);
    let validators = Validators {
        etag: &tag,
        last_modified: meta.modified().map_err(AppError::internal)?,
    };
    let mut res_headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            res_headers.insert(name, v);
        }
    };
    set(header::ETAG, &tag);
    set(header::LAST_MODIFIED, &validators.last_modified_header());
    // The same bytes for everyone (public fields only): caches may keep them, but ask again.
    set(header::CACHE_CONTROL, "public, no-cache");
    set(header::ACCEPT_RANGES, "bytes");
    match conditional::evaluate(headers, &validators) {
        Precondition::NotModified => {
            return Ok((StatusCode::NOT_MODIFIED, res_headers).into_response());
        }
        Precondition::Failed => {
            return Ok((StatusCode::PRECONDITION_FAILED, res_headers).into_response());
        }
        Precondition::Proceed => {}
    }
    set(header::CONTENT_TYPE, format.content_type());
    set(
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{}\"", file_name(format)),
    );
    let wanted = if conditional::range_applies(headers, &validators) {
        range::answer(headers, len)
    } else {
        RangeAnswer::Full
    };
    let (status, start, count) = match wanted {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Part(r) => {
            set(
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{len}", r.start(), r.end()),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                *r.start(),
                r.end() - r.start() + 1,
            )
        }
        RangeAnswer::Unsatisfiable => {
            set(header::CONTENT_RANGE, &format!("bytes */{len}"));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, res_headers).into_response());
        }
    };
    set(header::CONTENT_LENGTH, &count.to_string());
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(AppError::internal)?;
    }
    Ok((status, res_headers, file_body(file, count)).into_response())
}

/// `count` bytes of `file` from its current position, a chunk at a time. The file is never
/// changed in place (a new generation is renamed over it), so the open file holds `count` bytes.
fn file_body(file: tokio::fs::File, count: u64) -> Body {
    Body::from_stream(ReaderStream::with_capacity(file.take(count), READ_CHUNK))
}
