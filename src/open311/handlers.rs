//! Thin Open311 handlers: the format comes from the path's extension, errors leave as the
//! spec's error list in that format, and the work is done by `query`, `form`, `search` and intake.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::form::{RequestForm, attribute_defs, parse_request};
use super::format::Format;
use super::query::{RequestsQuery, next_page_query};
use super::response::{
    Discovery, Endpoint, ErrorOut, PostedOut, RequestOut, ServiceDefinition, ServiceOut, TokenOut,
    service_notice,
};
use super::{search, xml};
use crate::app::AppState;
use crate::auth::{self, Caller, Role};
use crate::domain::Report;
use crate::domain::ReportKey;
use crate::domain::Source;
use crate::error::{AppError, FieldError, LoggedError, body_bytes};
use crate::intake::{self, Outcome};
use crate::ops::forwarded::PublicBase;
use crate::reports::store;

/// The resource a path names: its last segment without the extension, and the format the
/// extension asks for (XML, the spec's required format, when it names none we know).
pub struct Resource {
    pub name: Option<String>,
    pub format: Format,
}

impl<S: Send + Sync> FromRequestParts<S> for Resource {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let last = parts.uri.path().rsplit('/').next().unwrap_or_default();
        Ok(match Format::split(last) {
            Some((stem, format)) => Resource {
                name: super::form::percent_decode(stem).filter(|s| !s.trim().is_empty()),
                format,
            },
            None => Resource {
                name: None,
                format: Format::Xml,
            },
        })
    }
}

/// An Open311 error list with its HTTP status, rendered in the requested format.
#[derive(Debug)]
pub struct Failure {
    format: Format,
    status: StatusCode,
    descriptions: Vec<String>,
    internal: Option<String>,
}

impl Failure {
    pub fn new(format: Format, status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            format,
            status,
            descriptions: vec![description.into()],
            internal: None,
        }
    }

    pub fn fields(format: Format, status: StatusCode, errors: &[FieldError]) -> Self {
        Self {
            format,
            status,
            descriptions: errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            internal: None,
        }
    }

    /// Maps the native error kinds onto the statuses Open311 clients expect.
    pub fn from_app(format: Format, e: &AppError) -> Self {
        let status = match e {
            AppError::BadRequest { .. }
            | AppError::Invalid(_)
            | AppError::UnsupportedMediaType(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized | AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            other => other.status(),
        };
        let mut f = if e.field_errors().is_empty() {
            Self::new(format, status, e.public_detail())
        } else {
            Self::fields(format, status, e.field_errors())
        };
        if let AppError::Internal(detail) = e {
            f.internal = Some(detail.clone());
        }
        f
    }

    /// A database failure: 503 when it is unreachable, an opaque 500 otherwise.
    pub fn db(format: Format, e: sqlx::Error) -> Self {
        Self::from_app(format, &AppError::from(e))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let list: Vec<ErrorOut> = self
            .descriptions
            .into_iter()
            .map(|description| ErrorOut { code, description })
            .collect();
        let mut res = render(self.format, self.status, "errors", &list);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(detail) = self.internal {
            res.extensions_mut().insert(LoggedError(detail));
        }
        res
    }
}

/// Serializes `body` as JSON, or as XML under the `root` element.
fn render<T: Serialize>(format: Format, status: StatusCode, root: &str, body: &T) -> Response {
    let bytes = match format {
        Format::Json => serde_json::to_vec(body).map_err(|e| e.to_string()),
        Format::Xml => serde_json::to_value(body)
            .map(|v| xml::render(root, &v).into_bytes())
            .map_err(|e| e.to_string()),
    };
    match bytes {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            res
        }
        Err(e) => {
            let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            res.extensions_mut().insert(LoggedError(e));
            res
        }
    }
}

/// Paths that take no arguments but the spec's `jurisdiction_id` (one city is served, so
/// any value is accepted) and an `api_key` some clients always send.
fn plain_query(format: Format, query: Option<&str>) -> Result<(), Failure> {
    let unknown: Vec<FieldError> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, v)| !v.is_empty() && k != "jurisdiction_id" && k != "api_key")
        .map(|(k, _)| FieldError::new(k, "is not a known parameter"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Failure::fields(format, StatusCode::BAD_REQUEST, &unknown))
    }
}

/// `GET /open311/discovery.{json,xml}`.
pub async fn discovery(
    PublicBase(base): PublicBase,
    res: Resource,
    RawQuery(q): RawQuery,
) -> Result<Response, Failure> {
    plain_query(res.format, q.as_deref())?;
    let changeset = "2026-11-22T00:00:00Z".to_owned();
    let body = Discovery {
        changeset: changeset.clone(),
        contact: "Ask the city's 311 office for help with this API.".into(),
        key_service: "POST requests needs an api_key: the city issues one with `citypin token create --role open311-client --name CLIENT`.".into(),
        endpoints: vec![Endpoint {
            specification: "http://wiki.open311.org/GeoReport_v2",
            url: format!("{base}/open311/v2"),
            changeset,
            kind: "production",
            formats: vec!["text/xml", "application/json"],
        }],
    };
    Ok(render(res.format, StatusCode::OK, "discovery", &body))
}

/// `GET /open311/v2/services.{json,xml}`.
pub async fn services(
    State(state): State<AppState>,
    res: Resource,
    RawQuery(q): RawQuery,
) -> Result<Response, Failure> {
    plain_query(res.format, q.as_deref())?;
    let list: Vec<ServiceOut> = state
        .catalogue
        .all()
        .iter()
        .map(|s| ServiceOut::from(s.as_ref()))
        .collect();
    Ok(render(res.format, StatusCode::OK, "services", &list))
}

/// `GET /open311/v2/services/{code}.{json,xml}`.
pub async fn service_definition(
    State(state): State<AppState>,
    res: Resource,
    RawQuery(q): RawQuery,
) -> Result<Response, Failure> {
    plain_query(res.format, q.as_deref())?;
    let service = res
        .name
        .as_deref()
        .and_then(|code| state.catalogue.get(code))
        .ok_or_else(|| Failure::new(res.format, StatusCode::NOT_FOUND, "service_code not found"))?;
    let body = ServiceDefinition {
        service_code: service.service_code.clone(),
        attributes: attribute_defs(service),
    };
    Ok(render(
        res.format,
        StatusCode::OK,
        "service_definition",
        &body,
    ))
}

/// `GET /open311/v2/requests.{json,xml}`: every spec filter plus the area, paging and
/// `extensions` additions.
pub async fn list_requests(
    State(state): State<AppState>,
    PublicBase(base): PublicBase,
    uri: Uri,
    res: Resource,
    caller: Result<Caller, AppError>,
    RawQuery(q): RawQuery,
) -> Result<Response, Failure> {
    let format = res.format;
    let query = RequestsQuery::parse(q.as_deref().unwrap_or_default(), chrono::Utc::now(), |c| {
        state.catalogue.get(c).is_some()
    })
    .map_err(|e| Failure::fields(format, StatusCode::BAD_REQUEST, &e))?;
    if query.source == Source::Postgis {
        // A bad token matters only where a token is needed.
        caller
            .and_then(|c| c.require_source(query.source, "query requests from PostGIS"))
            .map_err(|e| Failure::from_app(format, &e))?;
    }
    let page = search::find_page(&state, &query)
        .await
        .map_err(|e| Failure::db(format, e))?;
    let mut res = requests_response(&state, format, &page.reports, query.extensions).await?;
    if page.has_next {
        // The body must stay the spec's plain list, so a cut list says so in a header.
        let next = next_page_query(q.as_deref().unwrap_or_default(), query.page + 1);
        let link = format!("<{base}{}?{next}>; rel=\"next\"", uri.path());
        if let Ok(v) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}

/// `GET /open311/v2/requests/{id}.{json,xml}`: a one-element list; the id is the reference
/// (typed loosely) or an imported id. `extensions=true` works here too.
pub async fn show_request(
    State(state): State<AppState>,
    res: Resource,
    RawQuery(q): RawQuery,
) -> Result<Response, Failure> {
    let format = res.format;
    let report = find(&state, &res).await?;
    requests_response(&state, format, &[report], extensions_only(q.as_deref())).await
}

/// The id in the path overrides every other argument, as `service_request_id` does in a list
/// query: only `extensions=true` is read, anything else is ignored.
fn extensions_only(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "extensions" && v.trim() == "true")
}

async fn find(state: &AppState, res: &Resource) -> Result<Report, Failure> {
    let not_found = || {
        Failure::new(
            res.format,
            StatusCode::NOT_FOUND,
            "service_request_id not found",
        )
    };
    let Some(key) = res.name.as_deref().and_then(|k| ReportKey::parse(k).ok()) else {
        return Err(not_found());
    };
    store::find(&state.pool, &key)
        .await
        .map_err(|e| Failure::db(res.format, e))?
        .filter(|r| !r.hidden)
        .ok_or_else(not_found)
}

async fn requests_response(
    state: &AppState,
    format: Format,
    reports: &[Report],
    extensions: bool,
) -> Result<Response, Failure> {
    let notes = if extensions {
        let ids: Vec<uuid::Uuid> = reports.iter().map(|r| r.id).collect();
        store::histories(&state.pool, &ids)
            .await
            .map_err(|e| Failure::db(format, e))?
    } else {
        std::collections::HashMap::new()
    };
    let list: Vec<RequestOut> = reports
        .iter()
        .map(|r| {
            RequestOut::new(
                r,
                state.catalogue.get(&r.service_code).map(AsRef::as_ref),
                notes.get(&r.id).map(Vec::as_slice),
                extensions,
            )
        })
        .collect();
    Ok(render(format, StatusCode::OK, "service_requests", &list))
}

/// `GET /open311/v2/tokens/{token}.{json,xml}`. Every request gets its id at once, so no
/// token is ever handed out; a client that asks with an id gets it back.
pub async fn token(State(state): State<AppState>, res: Resource) -> Result<Response, Failure> {
    let report = find(&state, &res).await?;
    let body = [TokenOut {
        service_request_id: report.reference.clone(),
        token: res.name.clone().unwrap_or_default(),
    }];
    Ok(render(
        res.format,
        StatusCode::OK,
        "service_requests",
        &body,
    ))
}

/// `POST /open311/v2/requests.{json,xml}`: a form-encoded request from a client holding an
/// `api_key` (a token of role open311-client, agent or admin).
pub async fn create_request(
    State(state): State<AppState>,
    res: Resource,
    req: Request,
) -> Result<Response, Failure> {
    let format = res.format;
    let bad = |e: FieldError| Failure::fields(format, StatusCode::BAD_REQUEST, &[e]);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(bad(FieldError::new(
            "Content-Type",
            "must be application/x-www-form-urlencoded",
        )));
    }
    let body = body_bytes(req, &state)
        .await
        .map_err(|e| Failure::from_app(format, &e))?;
    let form = RequestForm::decode(&body).map_err(bad)?;

    let forbidden = |m: &str| Failure::new(format, StatusCode::FORBIDDEN, m);
    let key = form
        .api_key
        .as_deref()
        .ok_or_else(|| forbidden("api_key is required to submit a service request"))?;
    let holder = auth::lookup(&state.pool, key)
        .await
        .map_err(|e| Failure::from_app(format, &e))?
        .filter(|t| matches!(t.role, Role::Open311Client | Role::Agent | Role::Admin))
        .ok_or_else(|| forbidden("invalid api_key"))?;

    let code = form
        .service_code
        .as_deref()
        .ok_or_else(|| bad(FieldError::new("service_code", "is required")))?;
    let service = state
        .catalogue
        .get(code)
        .ok_or_else(|| {
            Failure::new(
                format,
                StatusCode::NOT_FOUND,
                format!("service_code {code:?} not found"),
            )
        })?
        .clone();
    let parsed = parse_request(form, &service)
        .map_err(|e| Failure::fields(format, StatusCode::BAD_REQUEST, &e))?;
    let caller = Caller {
        token: Some(holder),
    };
    let outcome = intake::submit(&state, parsed.report, &caller, None, &[])
        .await
        .map_err(|e| Failure::from_app(format, &e))?;
    let Outcome::Created(report) = outcome else {
        // Only a submission with an idempotency key can be a replay.
        return Err(Failure::from_app(
            format,
            &AppError::internal("unexpected replay"),
        ));
    };
    let body = [PostedOut {
        service_notice: Some(service_notice(&report, &service)),
        service_request_id: report.reference.clone(),
        account_id: parsed.account_id,
    }];
    // 200, as the published GeoReport v2 Swagger documents for this call (the native API
    // answers 201).
    Ok(render(format, StatusCode::OK, "service_requests", &body))
}

/// Any other path under `/open311`: the spec's 404, in the format the path asks for.
pub async fn not_found(res: Resource) -> Failure {
    Failure::new(
        res.format,
        StatusCode::NOT_FOUND,
        "resource not found: see /open311/discovery.xml",
    )
}

/// A method the path does not take: the spec's error list with 405, in the format the path
/// asks for.
pub async fn method_not_allowed(res: Resource, method: Method) -> Failure {
    Failure::new(
        res.format,
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on this resource"),
    )
}
