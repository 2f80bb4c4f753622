//! The public view of a report: what anyone may read.

use super::model::{ParentRef, ReportView};
use crate::app::AppState;
use crate::domain::Report;

/// The public view of a report.
pub fn view(state: &AppState, r: &Report) -> ReportView {
    let (service_name, group) = state.catalogue.get(&r.service_code).map_or_else(
        || (r.service_code.clone(), "Other".to_owned()),
        |s| (s.service_name.clone(), s.group.clone()),
    );
    ReportView {
        id: r.id,
        reference: r.reference.clone(),
        service_code: r.service_code.clone(),
        service_name,
        group,
        status: r.status(),
        open311_status: r.status().open311().to_owned(),
        status_notes: r.status_notes.clone(),
        description: r.description.clone(),
        address: r.address.clone(),
        lat: r.lat,
        lon: r.lon,
        channel: r.channel.clone(),
        requested_at: r.requested_at,
        updated_at: r.updated_at,
        closed_at: r.closed_at,
        supporters: r.supporters,
        duplicate_of: r
            .duplicate_of
            .zip(r.duplicate_of_reference.clone())
            .map(|(id, reference)| ParentRef { id, reference }),
        tracking_url: format!("{}/#/track/{}", state.settings.public_url, r.reference),
    }
}
