//! The pure image pipeline: sniff, check the declared size, decode within limits, orient,
//! re-encode. No I/O, no async: callers run it on a blocking thread.
//!
//! Re-encoding from pixels is what makes a photo safe: every metadata segment (EXIF with the
//! sender's GPS position, XMP, IPTC) and anything appended after the image data (HTML, ZIP) is
//! left behind, because only decoded pixels reach the encoder.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::geo::Position;

/// Widest or tallest source accepted, in pixels.
pub const MAX_SIDE: u32 = 10_000;
/// Most pixels accepted in a source.
pub const MAX_PIXELS: u64 = 60_000_000;
/// The display size fits in this square.
pub const DISPLAY_MAX: u32 = 2048;
/// The thumbnail fits in this square.
pub const THUMB_MAX: u32 = 320;
/// Most bytes the decoder may allocate: a 60-megapixel RGBA8 image fits, a 16-bit one does not.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Good enough for a crew to see a pothole; a 2048 px photo stays well under 1 MB.
const JPEG_QUALITY: u8 = 82;

/// The formats accepted, as found in the bytes (never the file name or declared type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    WebP,
}

impl SourceFormat {
    /// Reads the magic bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match image::guess_format(bytes).ok()? {
            ImageFormat::Jpeg => Some(Self::Jpeg),
            ImageFormat::Png => Some(Self::Png),
            ImageFormat::WebP => Some(Self::WebP),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::WebP => ImageFormat::WebP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
        }
    }
}

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// → 415.
    #[error("is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    /// → 422. Found from the header alone, before any pixel is decoded.
    #[error(
        "is {width} × {height} pixels; at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all are accepted"
    )]
    TooLarge { width: u32, height: u32 },
    /// → 422.
    #[error("could not be read as {format}: {reason}")]
    Undecodable {
        format: &'static str,
        reason: String,
    },
    /// → 500: encoding our own pixels should not fail.
    #[error("could not be re-encoded: {0}")]
    Encode(String),
}

/// One re-encoded JPEG.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// What a photo becomes: two re-encoded sizes and, if its EXIF had one, a position that may be
/// offered back to the citizen (never stored by this pipeline).
#[derive(Clone, Debug)]
pub struct Processed {
    pub source: SourceFormat,
    pub display: Encoded,
    pub thumb: Encoded,
    pub gps: Option<Position>,
}

/// The whole pipeline for one uploaded file.
pub fn process(bytes: &[u8]) -> Result<Processed, ProcessError> {
    let source = SourceFormat::sniff(bytes).ok_or(ProcessError::UnsupportedFormat)?;
    let undecodable = |e: image::ImageError| ProcessError::Undecodable {
        format: source.name(),
        reason: e.to_string(),
    };
    // The header alone: a 1 KB file may declare 100,000 × 100,000 pixels.
    let (width, height) = reader(bytes, source)
        .into_dimensions()
        .map_err(undecodable)?;
    check_dimensions(width, height)?;
    if source == SourceFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The decoder paints a cut JPEG's missing rows grey and calls it a picture.
        return Err(ProcessError::Undecodable {
            format: source.name(),
            reason: "the file is cut short (no end-of-image marker after its last scan)".into(),
        });
    }

    let mut reader = reader(bytes, source);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(ProcessError::TooLarge { width, height });
    }
    let exif = decoder.exif_metadata().ok().flatten();
    let orientation = exif
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let gps = exif.and_then(gps_position);
    let image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;

    // Shrink first, orient after: rotating the small image is cheaper, and the bounds are
    // square so the order does not change the result's size.
    let display = oriented_rgb(&shrink(&image, DISPLAY_MAX), orientation);
    drop(image);
    let thumb = shrink(&DynamicImage::ImageRgb8(display.clone()), THUMB_MAX).to_rgb8();
    Ok(Processed {
        source,
        display: encode(&display)?,
        thumb: encode(&thumb)?,
        gps,
    })
}

/// Whether a JPEG's last scan is followed by its end-of-image marker (`FF D9`). Inside a scan
/// an `FF` byte is always escaped (`FF 00`) or a restart marker (`FF D0`–`FF D7`), so an `FF D9`
/// after the last start-of-scan (`FF DA`) can only be the real end: a file cut anywhere in its
/// image data has none. Bytes after the marker (appended data) do not matter: only decoded
/// pixels are kept.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let end = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_scan, end), (Some(scan), Some(end)) if end > scan)
}

fn reader(bytes: &[u8], format: SourceFormat) -> ImageReader<Cursor<&[u8]>> {
    ImageReader::with_format(Cursor::new(bytes), format.image_format())
}

/// The size rule, applied to the declared dimensions before decoding.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), ProcessError> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
        return Err(ProcessError::TooLarge { width, height });
    }
    Ok(())
}

/// Fits the image in a `max` square; never enlarges.
fn shrink(image: &DynamicImage, max: u32) -> DynamicImage {
    if image.width() <= max && image.height() <= max {
        image.clone()
    } else {
        // An area average: fast, and good for large reductions.
        image.thumbnail(max, max)
    }
}

/// RGB with any transparency laid over white (JPEG has no alpha), then the EXIF orientation.
fn oriented_rgb(image: &DynamicImage, orientation: Orientation) -> RgbImage {
    let rgb = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [red, green, blue, alpha] = rgba.get_pixel(x, y).0;
            let over_white = |channel: u8| {
                let (channel, alpha) = (u16::from(channel), u16::from(alpha));
                ((channel * alpha + 255 * (255 - alpha)) / 255) as u8
            };
            image::Rgb([over_white(red), over_white(green), over_white(blue)])
        })
    } else {
        image.to_rgb8()
    };
    let mut oriented = DynamicImage::ImageRgb8(rgb);
    oriented.apply_orientation(orientation);
    oriented.into_rgb8()
}

fn encode(image: &RgbImage) -> Result<Encoded, ProcessError> {
    let mut bytes = Vec::with_capacity(image.as_raw().len() / 8);
    JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| ProcessError::Encode(e.to_string()))?;
    Ok(Encoded {
        bytes,
        width: image.width(),
        height: image.height(),
    })
}

/// The GPS position in an EXIF chunk (a TIFF structure, sometimes still behind `Exif\0\0`).
fn gps_position(chunk: Vec<u8>) -> Option<Position> {
    use exif::{In, Tag, Value};
    let tiff = match chunk.strip_prefix(b"Exif\0\0") {
        Some(rest) => rest.to_vec(),
        None => chunk,
    };
    // Common writers (Python's piexif among them) leave a non-zero "next IFD" offset after the
    // GPS directory, which the strict reader refuses; the fields read before it are sound.
    let exif = exif::Reader::new()
        .continue_on_error(true)
        .read_raw(tiff)
        .or_else(|e| e.distill_partial_result(|_| ()))
        .ok()?;
    let coordinate = |tag: Tag, reference: Tag, negative: u8| -> Option<f64> {
        let Value::Rational(parts) = &exif.get_field(tag, In::PRIMARY)?.value else {
            return None;
        };
        let [d, m, s] = parts.get(..3)? else {
            return None;
        };
        let value = d.to_f64() + m.to_f64() / 60.0 + s.to_f64() / 3600.0;
        let is_negative = match &exif.get_field(reference, In::PRIMARY)?.value {
            Value::Ascii(texts) => texts
                .first()
                .and_then(|t| t.first())
                .is_some_and(|c| c.eq_ignore_ascii_case(&negative)),
            _ => false,
        };
        Some(if is_negative { -value } else { value })
    };
    let lat = coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')?;
    let lon = coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W')?;
    // Position rejects NaN and infinities (a zero denominator) and out-of-range values.
    Position::new(lon, lat).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photos::fixtures;
    use crate::test_cases::cases;

    #[test]
    fn gps_is_read_when_the_writer_left_a_next_directory_offset_after_it() {
        let jpeg = fixtures::with_exif_gps_next_ifd_set(
            &fixtures::phone_photo(64, 48),
            (34.0522, -118.2437),
        );
        let p = process(&jpeg).unwrap();
        let gps = p.gps.expect("the GPS position");
        assert!((gps.lat() - 34.0522).abs() < 1e-4 && (gps.lon() + 118.2437).abs() < 1e-4);
    }

    #[test]
    fn a_jpeg_cut_to_a_tenth_of_its_bytes_is_undecodable() {
        let whole = fixtures::phone_photo(400, 300);
        let cut = &whole[..whole.len() / 10];
        assert!(matches!(
            process(cut),
            Err(ProcessError::Undecodable { format: "JPEG", .. })
        ));
    }

    #[test]
    fn a_jpeg_missing_only_its_end_marker_is_undecodable() {
        let whole = fixtures::phone_photo(400, 300);
        assert!(process(&whole).is_ok());
        assert!(process(&whole[..whole.len() - 2]).is_err());
    }

    #[test]
    fn a_jpeg_with_bytes_after_its_end_marker_is_read() {
        let mut whole = fixtures::phone_photo(400, 300);
        whole.extend_from_slice(b"PK\x03\x04 appended zip");
        assert!(process(&whole).is_ok());
    }

    fn is_not_an_image(bytes: &[u8]) {
        assert_eq!(process(bytes).unwrap_err(), ProcessError::UnsupportedFormat);
    }

    cases! { is_not_an_image {
        html_is_not_an_image: b"<!DOCTYPE html><html><body>hi</body></html>";
        svg_is_not_an_image: b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        pdf_is_not_an_image: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    }}

    #[test]
    fn a_png_declaring_a_huge_size_is_refused_from_its_header() {
        let png = fixtures::png_declaring(100_000, 100_000);
        assert!(png.len() <= 1024, "{}", png.len());
        assert_eq!(
            process(&png).unwrap_err(),
            ProcessError::TooLarge {
                width: 100_000,
                height: 100_000
            }
        );
    }

    #[test]
    fn a_jpeg_declaring_twenty_thousand_pixels_a_side_is_refused_from_its_header() {
        let jpeg = fixtures::jpeg_declaring(20_000, 20_000);
        assert_eq!(
            process(&jpeg).unwrap_err(),
            ProcessError::TooLarge {
                width: 20_000,
                height: 20_000
            }
        );
    }

    #[test]
    fn ten_thousand_by_six_thousand_pixels_are_accepted() {
        assert!(check_dimensions(10_000, 6_000).is_ok());
    }

    fn the_size_is_refused(width: u32, height: u32) {
        assert!(
            check_dimensions(width, height).is_err(),
            "{width} × {height}"
        );
    }

    cases! { the_size_is_refused {
        a_width_past_ten_thousand_pixels_is_refused: 10_001, 10;
        a_height_past_ten_thousand_pixels_is_refused: 10, 10_001;
        an_area_past_sixty_million_pixels_is_refused: 8_000, 8_000;
        a_side_of_zero_pixels_is_refused: 0, 10;
    }}

    #[test]
    fn large_photos_shrink_to_the_display_and_thumbnail_bounds() {
        let jpeg = fixtures::jpeg(3000, 1000, |x, _| [(x % 256) as u8, 0, 0]);
        let p = process(&jpeg).unwrap();
        assert_eq!((p.display.width, p.display.height), (2048, 683));
        assert_eq!((p.thumb.width, p.thumb.height), (320, 107));
        let small = process(&fixtures::jpeg(100, 50, |_, _| [9, 9, 9])).unwrap();
        assert_eq!((small.display.width, small.display.height), (100, 50));
    }

    #[test]
    fn exif_orientation_is_applied_and_gps_is_offered_but_not_kept() {
        // Left half red, right half blue; orientation 6 means "rotate 90° clockwise to view",
        // so the viewed image is tall with red on top.
        let jpeg = fixtures::jpeg(
            40,
            20,
            |x, _| if x < 20 { [255, 0, 0] } else { [0, 0, 255] },
        );
        let tagged = fixtures::with_exif(&jpeg, Some(6), Some((48.8584, 2.2945)));
        let p = process(&tagged).unwrap();
        assert_eq!((p.display.width, p.display.height), (20, 40));
        let shown = image::load_from_memory(&p.display.bytes).unwrap().to_rgb8();
        assert!(shown.get_pixel(10, 5).0[0] > 200 && shown.get_pixel(10, 5).0[2] < 60);
        assert!(shown.get_pixel(10, 35).0[2] > 200 && shown.get_pixel(10, 35).0[0] < 60);
        let gps = p.gps.unwrap();
        assert!((gps.lat() - 48.8584).abs() < 1e-4 && (gps.lon() - 2.2945).abs() < 1e-4);
        for bytes in [&p.display.bytes, &p.thumb.bytes] {
            // APP0 (JFIF) is the encoder's own; APP1 (EXIF, XMP) and APP13 (IPTC) must be gone.
            assert_eq!(fixtures::metadata_markers(bytes), vec![0xE0]);
            assert!(
                exif::Reader::new()
                    .read_from_container(&mut Cursor::new(bytes))
                    .is_err()
            );
        }
    }

    #[test]
    fn southern_and_western_references_make_negative_coordinates() {
        let jpeg = fixtures::with_exif(
            &fixtures::jpeg(8, 8, |_, _| [0, 0, 0]),
            None,
            Some((-33.8568, -70.6483)),
        );
        let gps = process(&jpeg).unwrap().gps.unwrap();
        assert!(gps.lat() < -33.0 && gps.lon() < -70.0);
    }

    #[test]
    fn transparency_is_laid_over_white() {
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            4,
            4,
            image::Rgba([0, 0, 0, 0]),
        ))
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
        let p = process(&png).unwrap();
        assert_eq!(p.source, SourceFormat::Png);
        let shown = image::load_from_memory(&p.display.bytes).unwrap().to_rgb8();
        assert!(shown.get_pixel(1, 1).0.iter().all(|c| *c > 240));
    }
}
