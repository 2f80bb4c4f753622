//! Photo domain types: sizes, kinds, the upload bounds, and what the API shows of a photo.

use serde::Serialize;
use uuid::Uuid;

use super::process::Processed;
use super::storage::ContentHash;

/// Photos accepted in one request.
pub const MAX_PHOTOS_PER_REQUEST: usize = 3;
/// Bytes accepted for one photo part.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Bytes accepted for all the text fields of a multipart request together.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// The body limit of the photo routes: three photos, the fields, and the multipart framing.
pub const MAX_UPLOAD_BYTES: usize =
    MAX_PHOTOS_PER_REQUEST * MAX_PHOTO_BYTES + MAX_FIELD_BYTES + 64 * 1024;

/// The two sizes served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Display,
    Thumb,
}

impl Size {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "display" => Some(Self::Display),
            "thumb" => Some(Self::Thumb),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Display => "display",
            Self::Thumb => "thumb",
        }
    }
}

/// Why a photo was taken: with the report, or by staff before or after the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoKind {
    Report,
    Before,
    After,
    Other,
}

impl PhotoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Before => "before",
            Self::After => "after",
            Self::Other => "other",
        }
    }

    /// The kinds staff may give a photo they add (`report` is for photos sent with a report).
    pub fn parse_staff(s: &str) -> Option<Self> {
        match s {
            "before" => Some(Self::Before),
            "after" => Some(Self::After),
            "other" => Some(Self::Other),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s == "report" {
            Some(Self::Report)
        } else {
            Self::parse_staff(s)
        }
    }
}

/// A processed photo whose files are in the store, ready to be referenced by a row.
#[derive(Clone, Debug)]
pub struct StoredPhoto {
    pub id: Uuid,
    pub kind: PhotoKind,
    pub display: ContentHash,
    pub display_size: (u32, u32),
    pub thumb: ContentHash,
    pub thumb_size: (u32, u32),
}

impl StoredPhoto {
    pub fn new(kind: PhotoKind, p: &Processed, display: ContentHash, thumb: ContentHash) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            display,
            display_size: (p.display.width, p.display.height),
            thumb,
            thumb_size: (p.thumb.width, p.thumb.height),
        }
    }

    pub fn view(&self) -> PhotoView {
        PhotoView::new(self.id, self.kind, self.display_size)
    }
}

/// A photo as the API shows it: links, never file names or hashes.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PhotoView {
    pub id: Uuid,
    pub kind: PhotoKind,
    pub width: u32,
    pub height: u32,
    pub display_url: String,
    pub thumb_url: String,
}

impl PhotoView {
    pub fn new(id: Uuid, kind: PhotoKind, (width, height): (u32, u32)) -> Self {
        Self {
            id,
            kind,
            width,
            height,
            display_url: format!("/api/v1/photos/{id}/display"),
            thumb_url: format!("/api/v1/photos/{id}/thumb"),
        }
    }
}

/// The GPS position found in an uploaded photo, offered back to the citizen's form. It is
/// never stored: the citizen accepts it by sending it as the report's `lat`/`lon` (or
/// `use_photo_location=true`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LocationSuggestion {
    pub lat: f64,
    pub lon: f64,
    /// Which photo of the request (0-based) it came from.
    pub photo: usize,
    pub source: &'static str,
}

impl LocationSuggestion {
    /// The first photo that has a position.
    pub fn first(processed: &[Processed]) -> Option<Self> {
        processed.iter().enumerate().find_map(|(i, p)| {
            p.gps.map(|g| Self {
                lat: g.lat(),
                lon: g.lon(),
                photo: i,
                source: "exif",
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_kinds_parse_their_names() {
        assert_eq!(Size::parse("thumb"), Some(Size::Thumb));
        assert_eq!(PhotoKind::parse_staff("after"), Some(PhotoKind::After));
        assert_eq!(PhotoKind::parse("report"), Some(PhotoKind::Report));
    }

    #[test]
    fn the_original_is_not_a_served_size() {
        assert_eq!(Size::parse("original"), None);
    }

    #[test]
    fn a_report_photo_is_not_a_staff_kind() {
        assert_eq!(PhotoKind::parse_staff("report"), None);
    }
}
