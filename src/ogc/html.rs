//! A plain server-side HTML rendering of the OGC pages for people browsing: the links, a
//! table of the features' properties, and the JSON itself. Every value is escaped.

use std::fmt::Write;

use serde_json::Value;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

/// Renders a JSON page: its links (those of type JSON, GeoJSON or HTML), a features table
/// when it has features (or is one), and the JSON.
pub fn render(title: &str, doc: &Value) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", escape(title));
    if let Some(d) = doc["description"].as_str() {
        let _ = write!(body, "<p>{}</p>", escape(d));
    }
    if let Some(links) = doc["links"].as_array() {
        body.push_str("<ul class=\"links\">");
        for l in links {
            let href = l["href"].as_str().unwrap_or("");
            let _ = write!(
                body,
                "<li><a href=\"{}\">{}</a> <small>{} · {}</small></li>",
                escape(href),
                escape(l["title"].as_str().unwrap_or(href)),
                escape(l["rel"].as_str().unwrap_or("")),
                escape(l["type"].as_str().unwrap_or("")),
            );
        }
        body.push_str("</ul>");
    }
    let features: Vec<&Value> = match doc["type"].as_str() {
        Some("FeatureCollection") => doc["features"].as_array().map(|f| f.iter().collect()),
        Some("Feature") => Some(vec![doc]),
        _ => None,
    }
    .unwrap_or_default();
    if let Some(first) = features.first().and_then(|f| f["properties"].as_object()) {
        let columns: Vec<&String> = first.keys().collect();
        body.push_str("<table><thead><tr><th>id</th>");
        for c in &columns {
            let _ = write!(body, "<th>{}</th>", escape(c));
        }
        body.push_str("</tr></thead><tbody>");
        for f in &features {
            let _ = write!(body, "<tr><td>{}</td>", cell(&f["id"]));
            for c in &columns {
                let _ = write!(body, "<td>{}</td>", cell(&f["properties"][c.as_str()]));
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
    }
    if features.is_empty() {
        let pretty = serde_json::to_string_pretty(doc).unwrap_or_default();
        let _ = write!(body, "<pre>{}</pre>", escape(&pretty));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} – citypin OGC API</title><style>body{{font-family:system-ui,sans-serif;margin:1rem 2rem}}\
         table{{border-collapse:collapse;font-size:.85rem}}td,th{{border:1px solid #ccc;padding:.2rem .4rem;text-align:left}}\
         pre{{background:#f5f5f5;padding:1rem;overflow:auto}}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_values_are_escaped() {
        let doc = serde_json::json!({"type": "FeatureCollection", "links": [], "features": [
            {"type": "Feature", "id": "1", "geometry": null,
             "properties": {"description": "<script>alert('x')</script>"}}]});
        let html = render("Items", &doc);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    }
}
