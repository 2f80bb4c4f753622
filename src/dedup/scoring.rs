//! The dedup scoring function: pure, so it is tested without a database and timed in benches.
//!
//! A candidate already lies within the service's radius and window and is the same service or
//! in the same group. Its score is a weighted mean of four parts in [0, 1]: distance, age,
//! category relation and description similarity. When either description is empty the text
//! weight drops out and the mean is taken over the other three, so reports without text (all
//! of the Los Angeles sample) are judged on place, time and category alone.

use super::model::{Candidate, DedupParams, Reasons, Relation, Scored};

/// Scores one candidate; `None` when it lies outside the radius or window.
pub fn score(p: &DedupParams, new_description: &str, c: &Candidate<'_>) -> Option<Scored> {
    let inside = p.enabled()
        && c.distance_m.is_finite()
        && c.distance_m <= p.radius_m
        && c.age_hours >= 0.0
        && c.age_hours <= p.window_hours;
    if !inside {
        return None;
    }
    let distance = distance_part(c.distance_m / p.radius_m);
    let age = 1.0 - c.age_hours / p.window_hours;
    let category = match c.relation {
        Relation::SameService => 1.0,
        Relation::SameGroup => p.same_group,
    };
    let text = text_similarity(new_description, c.description);
    let (mut sum, mut weight) = (
        p.w_distance * distance + p.w_age * age + p.w_category * category,
        p.w_distance + p.w_age + p.w_category,
    );
    if let Some(t) = text {
        sum += p.w_text * t;
        weight += p.w_text;
    }
    let score = if weight > 0.0 { sum / weight } else { 0.0 };
    Some(Scored {
        id: c.id,
        score,
        reasons: Reasons {
            distance_m: c.distance_m,
            age_hours: c.age_hours,
            relation: c.relation,
            text_similarity: text,
            threshold: p.threshold,
        },
    })
}

/// The best candidate at or above the threshold, if any (ties go to the nearer, then the
/// older id, so the decision does not depend on the order candidates arrive in).
pub fn best<'a>(
    p: &DedupParams,
    new_description: &str,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> Option<Scored> {
    candidates
        .into_iter()
        .filter_map(|c| score(p, new_description, &c))
        .filter(|s| s.score >= p.threshold)
        .max_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then(b.reasons.distance_m.total_cmp(&a.reasons.distance_m))
                .then(b.id.cmp(&a.id))
        })
}

/// Distance part: full marks for the inner half of the radius, where phone GPS error makes
/// distances meaningless, then falling linearly to zero at the edge.
fn distance_part(fraction: f64) -> f64 {
    if fraction <= 0.5 {
        1.0
    } else {
        (2.0 * (1.0 - fraction)).clamp(0.0, 1.0)
    }
}

/// Dice similarity of the two texts' word sets (lower-cased, words of 3+ letters, a few
/// stop words and a plural `s` dropped). `None` when either text has no such word.
pub fn text_similarity(a: &str, b: &str) -> Option<f64> {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return None;
    }
    let common = wa.iter().filter(|w| wb.binary_search(w).is_ok()).count();
    Some(2.0 * common as f64 / (wa.len() + wb.len()) as f64)
}

const STOP_WORDS: &[&str] = &[
    "and", "are", "but", "for", "from", "has", "have", "here", "into", "near", "not", "off", "on",
    "our", "outside", "over", "the", "there", "this", "very", "was", "with", "again", "still",
];

fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::test_cases::cases;

    fn params() -> DedupParams {
        DedupParams {
            radius_m: 60.0,
            window_hours: 336.0,
            w_distance: DedupParams::DEFAULT_W_DISTANCE,
            w_age: DedupParams::DEFAULT_W_AGE,
            w_category: DedupParams::DEFAULT_W_CATEGORY,
            w_text: DedupParams::DEFAULT_W_TEXT,
            threshold: DedupParams::DEFAULT_THRESHOLD,
            suggest_threshold: DedupParams::DEFAULT_SUGGEST_THRESHOLD,
            same_group: DedupParams::DEFAULT_SAME_GROUP,
        }
    }

    fn cand(distance_m: f64, age_hours: f64, relation: Relation, text: &str) -> Candidate<'_> {
        Candidate {
            id: Uuid::now_v7(),
            distance_m,
            age_hours,
            relation,
            description: text,
        }
    }

    #[test]
    fn a_close_recent_report_of_the_same_service_is_a_duplicate() {
        let p = params();
        let s = score(&p, "", &cand(20.0, 2.0, Relation::SameService, "")).unwrap();
        assert!(s.score >= p.threshold, "{s:?}");
        assert_eq!(s.reasons.text_similarity, None);
    }

    fn is_not_a_candidate(distance_m: f64, age_hours: f64) {
        let c = cand(distance_m, age_hours, Relation::SameService, "");
        assert!(
            score(&params(), "", &c).is_none(),
            "{distance_m} m, {age_hours} h"
        );
    }

    cases! { is_not_a_candidate {
        a_report_past_the_radius_is_not_a_candidate: 61.0, 1.0;
        a_report_older_than_the_window_is_not_a_candidate: 1.0, 337.0;
        a_report_from_the_future_is_not_a_candidate: 1.0, -1.0;
    }}

    #[test]
    fn without_text_another_service_of_the_group_is_never_a_duplicate() {
        let p = params();
        let s = score(&p, "", &cand(0.0, 0.0, Relation::SameGroup, "")).unwrap();
        assert!(s.score < p.threshold, "{s:?}");
    }

    #[test]
    fn matching_text_can_link_another_service_of_the_group() {
        let p = DedupParams {
            same_group: 0.5,
            ..params()
        };
        let text = "old mattress and broken sofa dumped on the sidewalk";
        let s = score(
            &p,
            "broken sofa and mattress dumped on sidewalk",
            &cand(5.0, 1.0, Relation::SameGroup, text),
        )
        .unwrap();
        assert!(s.score >= p.threshold, "{s:?}");
    }

    #[test]
    fn unrelated_text_lowers_the_score() {
        let p = params();
        let same = score(
            &p,
            "streetlight out",
            &cand(40.0, 10.0, Relation::SameService, "streetlight out"),
        )
        .unwrap();
        let other = score(
            &p,
            "streetlight out",
            &cand(
                40.0,
                10.0,
                Relation::SameService,
                "pole knocked down by truck",
            ),
        )
        .unwrap();
        assert!(same.score > other.score);
    }

    #[test]
    fn the_score_falls_with_distance_and_age() {
        let p = params();
        let s = |d, a| {
            score(&p, "", &cand(d, a, Relation::SameService, ""))
                .unwrap()
                .score
        };
        assert!(s(10.0, 1.0) >= s(50.0, 1.0));
        assert!(s(50.0, 1.0) > s(59.0, 1.0));
        assert!(s(10.0, 1.0) > s(10.0, 300.0));
    }

    #[test]
    fn best_prefers_the_highest_score_then_the_nearest() {
        let p = params();
        let near = cand(5.0, 10.0, Relation::SameService, "");
        let far = cand(55.0, 10.0, Relation::SameService, "");
        let same_as_near = cand(5.0, 10.0, Relation::SameService, "");
        let b = best(&p, "", [far, near, same_as_near]).unwrap();
        assert_eq!(b.id, near.id.min(same_as_near.id));
        assert!(best(&p, "", [cand(1.0, 1.0, Relation::SameGroup, "")]).is_none());
    }

    #[test]
    fn text_similarity_ignores_case_plurals_and_stop_words() {
        assert_eq!(text_similarity("", "anything"), None);
        assert_eq!(text_similarity("a b", "anything"), None);
        let s = text_similarity("Potholes on the road", "pothole road").unwrap();
        assert!((s - 1.0).abs() < 1e-9, "{s}");
        assert_eq!(text_similarity("graffiti wall", "dead cat"), Some(0.0));
    }

    #[test]
    fn a_service_without_radius_never_dedups() {
        let p = DedupParams {
            radius_m: 0.0,
            ..params()
        };
        assert!(score(&p, "", &cand(0.0, 0.0, Relation::SameService, "")).is_none());
    }
}
