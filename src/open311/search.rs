//! `GET requests`: by id straight from `PostGIS`; with `lat`/`long`/`radius` or `bbox` the live
//! spatial index picks the ids (every filter is on the incident it holds) and `PostGIS` supplies
//! the full rows of that page only; otherwise (or with `source=postgis`) one `PostGIS` query.

use std::collections::HashMap;

use uuid::Uuid;

use super::query::{Area, RequestsQuery};
use crate::app::AppState;
use crate::domain::Report;
use crate::domain::Source;
use crate::reports::store::{self, ListFilter};
use crate::spatial_index::Filter;

/// One page of requests, and whether the list goes on past it.
pub struct Page {
    pub reports: Vec<Report>,
    pub has_next: bool,
}

/// The requests a query asks for, newest first (ties by id, descending), one page of them.
pub async fn find(state: &AppState, q: &RequestsQuery) -> Result<Vec<Report>, sqlx::Error> {
    Ok(find_page(state, q).await?.reports)
}

/// [`find`], telling whether a next page holds more.
pub async fn find_page(state: &AppState, q: &RequestsQuery) -> Result<Page, sqlx::Error> {
    if !q.ids.is_empty() {
        // The spec: service_request_id overrides every other argument.
        let f = ListFilter {
            references: q.lookup_keys(),
            limit: i64::from(super::query::MAX_PAGE_SIZE),
            ..ListFilter::default()
        };
        return Ok(Page {
            reports: store::list(&state.pool, &f).await?,
            has_next: false,
        });
    }
    match (q.area, q.source) {
        (Some(area), Source::Index) => from_spatial_index(state, q, area).await,
        _ => postgis_page(state, q).await,
    }
}

/// The same question answered by `PostGIS` alone (also the reference the index path is
/// tested against).
pub async fn from_postgis(state: &AppState, q: &RequestsQuery) -> Result<Vec<Report>, sqlx::Error> {
    Ok(postgis_page(state, q).await?.reports)
}

/// One row past the page tells whether there is a next one.
async fn postgis_page(state: &AppState, q: &RequestsQuery) -> Result<Page, sqlx::Error> {
    let mut f = ListFilter {
        references: Vec::new(),
        service_codes: q.service_codes.clone(),
        statuses: q.statuses.clone(),
        start: q.start,
        end: q.end,
        updated_after: q.updated_after,
        bbox: None,
        near: None,
        limit: q.limit() + 1,
        offset: q.offset(),
    };
    match q.area {
        Some(Area::Box(b)) => f.bbox = Some(b),
        Some(Area::Circle { center, radius_m }) => {
            f.near = Some((center.lon(), center.lat(), radius_m));
        }
        None => {}
    }
    let mut reports = store::list(&state.pool, &f).await?;
    let has_next = reports.len() > q.page_size as usize;
    reports.truncate(q.page_size as usize);
    Ok(Page { reports, has_next })
}

async fn from_spatial_index(
    state: &AppState,
    q: &RequestsQuery,
    area: Area,
) -> Result<Page, sqlx::Error> {
    // Status and service are tested on the index's compact records; the times on their
    // microseconds. Only (requested_at, id) is kept per hit: the list is ordered by time.
    let filter = Filter {
        statuses: q.statuses.clone(),
        service_codes: q.service_codes.clone(),
    };
    let (start, end, updated_after) = (
        q.start.map(|t| t.timestamp_micros()),
        q.end.map(|t| t.timestamp_micros()),
        q.updated_after.map(|t| t.timestamp_micros()),
    );
    let keep = |requested: i64, updated: i64| {
        start.is_none_or(|t| requested >= t)
            && end.is_none_or(|t| requested <= t)
            && updated_after.is_none_or(|t| updated > t)
    };
    let mut hits: Vec<(i64, Uuid)> = match area {
        Area::Circle { center, radius_m } => state
            .spatial_index
            .times_within(center, radius_m, &filter, keep),
        Area::Box(b) => state.spatial_index.times_in_bbox(&b, &filter, keep),
    };
    // The order PostGIS uses for the same list, so pages line up whichever path answers.
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.dedup();
    let offset = usize::try_from(q.offset()).unwrap_or(usize::MAX);
    let has_next = hits.len().saturating_sub(offset) > q.page_size as usize;
    let page: Vec<Uuid> = hits
        .into_iter()
        .skip(offset)
        .take(q.page_size as usize)
        .map(|(_, id)| id)
        .collect();
    let position: HashMap<Uuid, usize> = page.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut rows = store::fetch_many(&state.pool, &page).await?;
    rows.sort_by_key(|r| position.get(&r.id).copied().unwrap_or(usize::MAX));
    Ok(Page {
        reports: rows,
        has_next,
    })
}
