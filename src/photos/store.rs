//! All SQL of the photos capability.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model::{PhotoKind, PhotoView, Size, StoredPhoto};
use super::storage::ContentHash;
use crate::domain::Actor;

/// References `photos` from `report`, inside the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    report: Uuid,
    photos: &[StoredPhoto],
    actor: Actor<'_>,
) -> Result<(), sqlx::Error> {
    for p in photos {
        sqlx::query!(
            "INSERT INTO photos (id, report_id, kind, media_type, display_sha256, display_width,
                 display_height, thumb_sha256, thumb_width, thumb_height, added_by_role,
                 added_by_token)
             VALUES ($1, $2, $3, 'image/jpeg', $4, $5, $6, $7, $8, $9, $10, $11)",
            p.id,
            report,
            p.kind.as_str(),
            p.display.hex(),
            p.display_size.0 as i32,
            p.display_size.1 as i32,
            p.thumb.hex(),
            p.thumb_size.0 as i32,
            p.thumb_size.1 as i32,
            actor.role,
            actor.token,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The file behind one size of a photo, if the photo exists and its report is not hidden.
pub async fn find_visible(
    pool: &PgPool,
    id: Uuid,
    size: Size,
) -> Result<Option<(ContentHash, String)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT CASE WHEN $2 = 'thumb' THEN p.thumb_sha256 ELSE p.display_sha256 END AS "hash!",
             p.media_type
         FROM photos p JOIN reports r ON r.id = p.report_id
         WHERE p.id = $1 AND NOT r.hidden"#,
        id,
        size.as_str()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| ContentHash::parse(&r.hash).map(|h| (h, r.media_type))))
}

/// The photos of a report, oldest first.
pub async fn list(pool: &PgPool, report: Uuid) -> Result<Vec<PhotoView>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, kind, display_width, display_height FROM photos
         WHERE report_id = $1 ORDER BY created_at, id",
        report
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let kind = PhotoKind::parse(&r.kind).unwrap_or(PhotoKind::Other);
            PhotoView::new(
                r.id,
                kind,
                (r.display_width as u32, r.display_height as u32),
            )
        })
        .collect())
}

/// Whether any row still points at the file `hash` (as either size).
pub async fn is_referenced(pool: &PgPool, hash: ContentHash) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM photos WHERE display_sha256 = $1 OR thumb_sha256 = $1)
             AS "referenced!""#,
        hash.hex()
    )
    .fetch_one(pool)
    .await
}
