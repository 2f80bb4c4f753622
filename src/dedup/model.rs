//! Dedup domain types: the tuned parameters of one service, what is known of a candidate, and
//! the verdict with its reasons (kept in the history, so every decision can be explained).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalogue::Service;

/// How one service's duplicates are judged. Radius and window come from the catalogue's
/// `dedup` block; weights and threshold may be set there too and otherwise take these defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DedupParams {
    /// Candidates lie within this distance, in metres. 0 turns dedup off for the service.
    pub radius_m: f64,
    /// Candidates were reported at most this long ago, in hours. 0 turns dedup off.
    pub window_hours: f64,
    pub w_distance: f64,
    pub w_age: f64,
    pub w_category: f64,
    pub w_text: f64,
    /// A candidate scoring at least this is a duplicate.
    pub threshold: f64,
    /// The `similar` endpoint suggests candidates scoring at least this (below `threshold`:
    /// the citizen decides, so a looser bar is fine).
    pub suggest_threshold: f64,
    /// Category score of a different service in the same group (same service scores 1).
    pub same_group: f64,
}

impl DedupParams {
    pub const DEFAULT_W_DISTANCE: f64 = 0.40;
    pub const DEFAULT_W_AGE: f64 = 0.10;
    pub const DEFAULT_W_CATEGORY: f64 = 0.35;
    pub const DEFAULT_W_TEXT: f64 = 0.15;
    pub const DEFAULT_THRESHOLD: f64 = 0.60;
    pub const DEFAULT_SUGGEST_THRESHOLD: f64 = 0.45;
    pub const DEFAULT_SAME_GROUP: f64 = 0.0;

    /// The parameters of a catalogue service; unknown or non-numeric keys keep the defaults.
    pub fn of(service: &Service) -> Self {
        let p = &service.dedup.params;
        let num = |k: &str, d: f64| {
            p.get(k)
                .and_then(serde_json::Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(d)
        };
        Self {
            radius_m: service.dedup.radius_m.max(0.0),
            window_hours: f64::from(service.dedup.window_hours.max(0)),
            w_distance: num("w_distance", Self::DEFAULT_W_DISTANCE),
            w_age: num("w_age", Self::DEFAULT_W_AGE),
            w_category: num("w_category", Self::DEFAULT_W_CATEGORY),
            w_text: num("w_text", Self::DEFAULT_W_TEXT),
            threshold: num("threshold", Self::DEFAULT_THRESHOLD),
            suggest_threshold: num("suggest_threshold", Self::DEFAULT_SUGGEST_THRESHOLD),
            same_group: num("same_group", Self::DEFAULT_SAME_GROUP).min(1.0),
        }
    }

    /// Dedup is off for services with no radius or no window (e.g. general feedback).
    pub fn enabled(&self) -> bool {
        self.radius_m > 0.0 && self.window_hours > 0.0
    }
}

/// How a candidate's category relates to the new report's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    SameService,
    SameGroup,
}

/// What the scoring function needs to know of one candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate<'a> {
    pub id: Uuid,
    pub distance_m: f64,
    /// Hours between the candidate's report and the new one (never negative for a candidate).
    pub age_hours: f64,
    pub relation: Relation,
    pub description: &'a str,
}

/// One candidate's score, with the parts that made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    pub id: Uuid,
    pub score: f64,
    pub reasons: Reasons,
}

/// Why a candidate scored what it did: recorded in both reports' history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reasons {
    pub distance_m: f64,
    pub age_hours: f64,
    pub relation: Relation,
    /// Description similarity in [0, 1]; absent when either text is empty, and then the
    /// other weights carry the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_similarity: Option<f64>,
    pub threshold: f64,
}

impl Scored {
    /// The history event's `data`: the score and its reasons, rounded for people.
    pub fn to_json(&self, parent: Uuid) -> serde_json::Value {
        let r = &self.reasons;
        let mut v = serde_json::json!({
            "parent": parent,
            "score": round3(self.score),
            "threshold": r.threshold,
            "distance_m": (r.distance_m * 10.0).round() / 10.0,
            "age_hours": (r.age_hours * 10.0).round() / 10.0,
            "relation": r.relation,
        });
        if let Some(t) = r.text_similarity {
            v["text_similarity"] = serde_json::json!(round3(t));
        }
        v
    }
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The body of `POST /api/v1/reports/{id}/merge`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The parent: an id or a reference.
    pub into: String,
    pub note: Option<String>,
}

/// The optional body of `POST /api/v1/reports/{id}/unmerge`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmergeBody {
    pub note: Option<String>,
}

/// The optional body of `POST /api/v1/reports/{id}/supporters`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportBody {
    pub contact: Option<crate::domain::ContactBody>,
}

/// The query of `GET /api/v1/reports/similar`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarParams {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub service_code: Option<String>,
    pub description: Option<String>,
    pub limit: Option<usize>,
}
