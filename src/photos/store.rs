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

/// Notes files about to be written as candidates for the orphan sweep, or restarts their grace
/// period (migration 0014). Called before the write: a sweep holding one of these rows makes
/// this wait until it has removed the file and committed, so the write that follows puts the
/// file back. Sorted and deduplicated, so two uploads of the same files lock them in the same
/// order (no deadlock) and a display equal to its thumbnail is one row.
pub async fn note_candidates(pool: &PgPool, hashes: &[ContentHash]) -> Result<(), sqlx::Error> {
    let mut hex: Vec<String> = hashes.iter().map(ContentHash::hex).collect();
    hex.sort_unstable();
    hex.dedup();
    sqlx::query!(
        "INSERT INTO photo_orphans (sha256, noted_at)
         SELECT h, now() FROM unnest($1::text[]) AS h ORDER BY h
         ON CONFLICT (sha256) DO UPDATE SET noted_at = excluded.noted_at",
        &hex
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Claims up to `limit` candidates noted at least `grace_secs` ago (by the database's clock,
/// the same for every replica), skipping those another sweep or an upload holds. The rows stay
/// locked until the caller's transaction ends.
pub async fn claim_candidates(
    conn: &mut PgConnection,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT sha256 FROM photo_orphans
         WHERE noted_at <= now() - make_interval(secs => $1)
         ORDER BY noted_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
        grace_secs,
        limit
    )
    .fetch_all(&mut *conn)
    .await
}

/// Which of `hashes` a committed `photos` row references (as either size).
pub async fn referenced_among(
    conn: &mut PgConnection,
    hashes: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT h AS "sha256!" FROM unnest($1::text[]) AS h
         WHERE EXISTS (SELECT 1 FROM photos WHERE display_sha256 = h OR thumb_sha256 = h)"#,
        hashes
    )
    .fetch_all(&mut *conn)
    .await
}

/// Drops candidates the sweep has settled (file removed, or still referenced).
pub async fn drop_candidates(
    conn: &mut PgConnection,
    hashes: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM photo_orphans WHERE sha256 = ANY($1)", hashes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
