//! Status changes: one transaction each (the change, its history event and outbox event); the
//! live index hears of it after commit.

use uuid::Uuid;

use super::store;
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{Report, Status};
use crate::error::AppError;

/// Changes a report's status (staff only), recording who, when, from, to and the note.
pub async fn change_status(
    state: &AppState,
    id: Uuid,
    to: Status,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Report, AppError> {
    let mut tx = state.pool.begin().await?;
    let current = store::lock(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    if to == Status::Duplicate {
        return Err(AppError::invalid(
            "status",
            "use POST /api/v1/reports/{id}/merge to mark a duplicate, so it is linked to its parent",
        ));
    }
    if let (Status::Duplicate, Some(parent)) = (current.status(), &current.duplicate_of_reference) {
        // Changing it by hand would detach it and leave the parent's supporters raised by the
        // link: the counts would drift from what the links say.
        return Err(AppError::Conflict(format!(
            "{} is a duplicate of {parent}; unmerge it first (POST /api/v1/reports/{{id}}/unmerge), then change its status",
            current.reference
        )));
    }
    let from = current.status();
    let actor = caller.actor();
    store::set_status(&mut tx, id, to, note, None).await?;
    store::insert_event(
        &mut tx,
        id,
        "status",
        Some(from),
        Some(to),
        note,
        actor,
        serde_json::json!({}),
    )
    .await?;
    store::outbox(
        &mut tx,
        id,
        "report.status_changed",
        serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
    )
    .await?;
    let report = store::fetch(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    tx.commit().await?;
    state
        .spatial_index
        .apply_committed(&report, &state.catalogue);
    Ok(report)
}
