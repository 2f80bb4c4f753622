//! One error type at the HTTP boundary, rendered as RFC 9457 problem+json, and the
//! project's own extractors so a malformed body, query or path gets the same shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed (syntax, missing header, unreadable body).
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 422: well-formed, but fields hold values that cannot be accepted.
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// 401: no credentials where some are required, or unknown ones.
    #[error("authentication required")]
    Unauthorized,
    /// 403: the caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: nothing of that kind with that id.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 408: the body arrived too slowly (an upload below the minimum rate, or silent too long).
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: the body is larger than accepted.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body's media type is not one this endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: this client already has as many requests of this kind in flight as it may; try
    /// again shortly (`Retry-After`).
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: the database is unreachable or saturated; try again shortly.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// 503: the photo store (an S3-compatible server) cannot be reached; try again shortly. The
    /// detail (which store, what failed) is logged once, by the request middleware, never sent.
    #[error("the photo store cannot be reached: {0}")]
    PhotoStoreUnavailable(String),
    /// 500: a bug or an unexpected failure. The body never carries the detail.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::bad_fields(vec![FieldError::new(field, message)])
    }

    /// 400 naming every field at fault, so a client fixes a query in one round.
    pub fn bad_fields(errors: Vec<FieldError>) -> Self {
        Self::BadRequest {
            detail: errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            errors,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::PhotoStoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field errors this error carries (empty for most kinds).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::BadRequest { errors, .. } | Self::Invalid(errors) => errors,
            _ => &[],
        }
    }

    /// The public, human-readable detail: never internal text for a 5xx.
    pub fn public_detail(&self) -> String {
        match self {
            Self::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            Self::PhotoStoreUnavailable(_) => {
                "the photo store cannot be reached; nothing was stored, try again shortly"
                    .to_owned()
            }
            Self::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
}

/// Marker put in a response's extensions so the logging middleware can log the error once.
#[derive(Clone, Debug)]
pub struct LoggedError(pub String);

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.public_detail(),
            errors: self.field_errors(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (status, bytes).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(
            self,
            Self::Unavailable | Self::PhotoStoreUnavailable(_) | Self::TooManyRequests(_)
        ) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status.is_server_error() {
            res.extensions_mut().insert(LoggedError(self.to_string()));
        }
        res
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable
            }
            sqlx::Error::Database(db) => match db.constraint() {
                Some("reports_location_valid") => Self::Invalid(vec![
                    FieldError::new("lat", "must be a finite latitude in [-90, 90]"),
                    FieldError::new("lon", "must be a finite longitude in [-180, 180]"),
                ]),
                Some("reports_service_code_fkey") => {
                    Self::invalid("service_code", "is not a known service code")
                }
                _ if db.code().as_deref() == Some("57P01") => Self::Unavailable,
                _ => Self::Internal(e.to_string()),
            },
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// JSON body extractor: checks the media type and names the field at fault on error.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers(), "application/json")?;
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads the whole body, mapping the body-limit rejection to 413.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<bytes::Bytes, AppError> {
    bytes::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge("the request body is too large".into())
            } else {
                AppError::bad_request(format!("could not read the body: {rejection}"))
            }
        })
}

/// Reads the whole body up to `max` bytes, whatever the route's own limit: 413 past it.
pub async fn body_bytes_max(req: Request, max: usize) -> Result<bytes::Bytes, AppError> {
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| AppError::PayloadTooLarge("the request body is too large".into()))
}

/// The one rule for JSON bodies: `Content-Type` is `application/json` or a structured
/// syntax suffix type `application/<subtype>+json` (RFC 6839, e.g. `application/merge-patch+json`),
/// parameters such as `charset` and the case aside.
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| {
            t == "application/json"
                || t.strip_prefix("application/")
                    .is_some_and(|sub| sub.len() > "+json".len() && sub.ends_with("+json"))
        })
}

/// 415 unless the body is JSON by [`is_json`]; `expected` lists what the endpoint takes.
pub fn require_json(headers: &axum::http::HeaderMap, expected: &str) -> Result<(), AppError> {
    if is_json(headers) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType(format!(
            "expected Content-Type: {expected}"
        )))
    }
}

/// True when the request's `Content-Type` is `mime` (parameters such as `charset` and the
/// case of the type aside).
pub fn has_content_type(headers: &axum::http::HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(mime))
}

/// Deserializes JSON, naming the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." {
            unknown_field(&inner.to_string())
        } else {
            path
        };
        let message = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            AppError::bad_field("body", format!("malformed JSON: {message}"))
        } else {
            AppError::bad_field(field, message)
        }
    })
}

/// serde reports an unknown field at the parent's path; pull the field's own name out.
fn unknown_field(message: &str) -> String {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map_or_else(|| "body".to_owned(), ToOwned::to_owned)
}

fn strip_position(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned()
}

/// Query-string extractor with problem+json errors naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = without_empty_params(parts.uri.query().unwrap_or_default());
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = if path == "." {
                    unknown_field(&message)
                } else {
                    path
                };
                AppError::bad_field(field, message)
            })
    }
}

/// Drops empty parameters: the Open311 rule that an empty optional argument acts as absent
/// is a good rule for every query string.
pub fn without_empty_params(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect::<Vec<_>>()
        .join("&")
}

/// Path extractor with problem+json errors.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| AppError::bad_field("path", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_store_outage_is_a_503_whose_detail_is_logged_not_sent() {
        let res = AppError::PhotoStoreUnavailable("http://minio:9000: connection refused".into())
            .into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let LoggedError(logged) = res.extensions().get::<LoggedError>().expect("logged");
        assert!(logged.contains("connection refused"), "{logged}");
        let detail = AppError::PhotoStoreUnavailable("http://minio:9000".into()).public_detail();
        assert!(!detail.contains("minio"), "{detail}");
    }
}
