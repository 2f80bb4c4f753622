//! XML rendering of Open311 responses: the spec's XML is the source and its JSON a mapping of
//! it (the Spark convention), so XML is written from the same serialized value as JSON — a
//! list becomes a container element holding one element per item, `null` an empty element.

use std::fmt::Write;

use serde_json::Value;

/// Field order in the spec's examples; fields not listed follow in name order.
const ORDER: &[&str] = &[
    "service_request_id",
    "token",
    "variable",
    "code",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "changeset",
    "contact",
    "key_service",
    "endpoints",
    "specification",
    "url",
    "type",
    "formats",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "metadata",
    "keywords",
    "group",
    "attributes",
    "values",
    "key",
    "name",
    "agency_responsible",
    "service_notice",
    "account_id",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
    "extended_attributes",
    "notes",
    "detailed_status",
    "channel",
    "supporters",
    "duplicate",
    "parent_service_request_id",
    "duplicate_of",
    "closed_datetime",
    "value",
    "datetime",
    "summary",
    "kind",
    "from_status",
    "to_status",
    "role",
];

/// The element name of one item of a list element.
pub fn item_name(list: &str) -> &str {
    match list {
        "service_requests" => "request",
        "services" => "service",
        "attributes" => "attribute",
        "values" => "value",
        "errors" => "error",
        "endpoints" => "endpoint",
        "formats" => "format",
        "notes" => "note",
        other => other.strip_suffix('s').unwrap_or("item"),
    }
}

/// Renders `value` as a UTF-8 XML document whose root element is `root`.
pub fn render(root: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    element(&mut out, root, value);
    out.push('\n');
    out
}

fn element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<{name}>{b}</{name}>");
        }
        Value::Number(n) => {
            let _ = write!(out, "<{name}>{n}</{name}>");
        }
        Value::String(s) => {
            let _ = write!(out, "<{name}>");
            text(out, s);
            let _ = write!(out, "</{name}>");
        }
        Value::Array(items) => {
            let _ = write!(out, "<{name}>");
            let item = item_name(name);
            for v in items {
                element(out, item, v);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Object(fields) => {
            let _ = write!(out, "<{name}>");
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort_by_key(|k| {
                (
                    ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX),
                    k.as_str(),
                )
            });
            for k in keys {
                element(out, k, &fields[k]);
            }
            let _ = write!(out, "</{name}>");
        }
    }
}

/// Escapes markup characters and drops the few characters XML 1.0 cannot carry at all
/// (control characters other than tab and line breaks), which imported text may hold.
fn text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_become_containers_of_singular_elements() {
        let xml = render(
            "service_requests",
            &json!([{"service_request_id": "CP-1", "status": "open", "lat": 34.5,
                     "notes": [{"role": "crew"}], "media_url": null}]),
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<service_requests><request>\
             <service_request_id>CP-1</service_request_id><status>open</status><lat>34.5</lat>\
             <media_url/><notes><note><role>crew</role></note></notes></request></service_requests>\n"
        );
    }

    #[test]
    fn text_is_escaped_and_forbidden_characters_dropped() {
        let xml = render(
            "errors",
            &json!([{"code": 400, "description": "a<b & \"c\"\u{1}"}]),
        );
        assert!(
            xml.contains("<description>a&lt;b &amp; &quot;c&quot;</description>"),
            "{xml}"
        );
        assert!(xml.contains("<error><code>400</code>"), "{xml}");
    }
}
