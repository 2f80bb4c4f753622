//! Reading a multipart upload within its bounds: text fields and photo bytes, counted as they
//! arrive, so a photo past 10 MB, a fourth photo or too much text is refused (413) at that
//! point without reading the rest. Intake and the staff photo upload both read through it.

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};

use super::model::{MAX_FIELD_BYTES, MAX_PHOTO_BYTES, MAX_PHOTOS_PER_REQUEST};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::app::AppState;
use crate::config::Settings;
use crate::error::AppError;

/// A multipart body read in full within the bounds: text fields and photo bytes.
pub struct Upload {
    pub fields: Vec<(String, String)>,
    pub photos: Vec<Bytes>,
}

impl Upload {
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.fields.iter().position(|(n, _)| n == name)?;
        Some(self.fields.remove(i).1)
    }
}

/// Whether the request carries `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    crate::error::has_content_type(headers, "multipart/form-data")
}

/// Reads the parts as they arrive, counting bytes: a photo past 10 MB, a fourth photo or too
/// much text is refused (413) at that point, without reading the rest of the body.
pub async fn read_upload(
    req: Request,
    state: &AppState,
    allowed: &[&str],
) -> Result<Upload, AppError> {
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::bad_request(format!("could not read the multipart body: {e}")))?;
    let mut upload = Upload {
        fields: Vec::new(),
        photos: Vec::new(),
    };
    let mut text_bytes = 0;
    let mut pace = Pace::new(&state.settings);
    while let Some(mut field) = pace
        .wait(multipart.next_field())
        .await?
        .map_err(|e| multipart_error(&e))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "photo" {
            if upload.photos.len() == MAX_PHOTOS_PER_REQUEST {
                return Err(AppError::PayloadTooLarge(format!(
                    "at most {MAX_PHOTOS_PER_REQUEST} photos per request"
                )));
            }
            let mut bytes = BytesMut::new();
            while let Some(chunk) = pace
                .wait(field.chunk())
                .await?
                .map_err(|e| multipart_error(&e))?
            {
                pace.count(chunk.len())?;
                if bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
                    return Err(AppError::PayloadTooLarge(format!(
                        "photo[{}] is larger than {} MB",
                        upload.photos.len(),
                        MAX_PHOTO_BYTES / (1024 * 1024)
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            upload.photos.push(bytes.freeze());
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            return Err(AppError::bad_field(
                name,
                format!(
                    "is not a field of this form; expected photo or one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        if upload.fields.iter().any(|(n, _)| *n == name) {
            return Err(AppError::bad_field(name, "is given more than once"));
        }
        let mut value = Vec::new();
        while let Some(chunk) = pace
            .wait(field.chunk())
            .await?
            .map_err(|e| multipart_error(&e))?
        {
            pace.count(chunk.len())?;
            text_bytes += chunk.len();
            if text_bytes > MAX_FIELD_BYTES {
                return Err(AppError::PayloadTooLarge(format!(
                    "the text fields are larger than {} KiB together",
                    MAX_FIELD_BYTES / 1024
                )));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| AppError::bad_field(name.clone(), "must be UTF-8 text"))?;
        upload.fields.push((name, value));
    }
    Ok(upload)
}

/// The slowest an upload may arrive, so a few clients trickling bytes cannot hold the upload
/// slots: never silent for longer than `CITYPIN_UPLOAD_IDLE_SECS`, and, once that long has
/// passed, at least `CITYPIN_UPLOAD_MIN_BYTES_PER_SEC` on average since the start. Past
/// either, 408 and the slot is freed.
struct Pace {
    started: Instant,
    bytes: u64,
    idle: Duration,
    min_rate: u64,
}

impl Pace {
    fn new(settings: &Settings) -> Self {
        Self {
            started: Instant::now(),
            bytes: 0,
            idle: settings.upload_idle,
            min_rate: settings.upload_min_bytes_per_sec,
        }
    }

    async fn wait<T>(&self, next: impl Future<Output = T>) -> Result<T, AppError> {
        tokio::time::timeout(self.idle, next).await.map_err(|_| {
            AppError::RequestTimeout(format!(
                "no upload data for {} s; send the photos in one go",
                self.idle.as_secs()
            ))
        })
    }

    fn count(&mut self, n: usize) -> Result<(), AppError> {
        self.bytes += n as u64;
        let elapsed = self.started.elapsed();
        if let Some(after_grace) = elapsed.checked_sub(self.idle) {
            let owed = after_grace.as_secs_f64() * self.min_rate as f64;
            if (self.bytes as f64) < owed {
                return Err(AppError::RequestTimeout(format!(
                    "the upload arrives at under {} bytes a second",
                    self.min_rate
                )));
            }
        }
        Ok(())
    }
}

fn multipart_error(e: &MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge("the request body is too large".into())
    } else {
        AppError::bad_request(format!(
            "could not read the multipart body: {}",
            e.body_text()
        ))
    }
}
