//! Image builders for tests and benches: real JPEG/PNG bytes made on the fly (no binary
//! fixtures), including hostile ones (a header declaring a huge size, EXIF with GPS, XMP and
//! IPTC segments), and a reader of a JPEG's metadata markers to check what was stripped.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, RgbImage};

/// A JPEG of the given size whose pixels come from `pixel(x, y)`.
pub fn jpeg(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&image)
        .expect("encoding an in-memory JPEG");
    out
}

/// A photo-like JPEG (gradients plus noise, so it compresses like a phone photo: a 12-megapixel
/// one is a few megabytes).
pub fn phone_photo(width: u32, height: u32) -> Vec<u8> {
    jpeg(width, height, |x, y| {
        // A cheap hash as noise: deterministic, no RNG needed.
        let n = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)).wrapping_mul(83_492_791);
        let noise = (n >> 24) as u8 / 4;
        [
            ((x * 255 / width.max(1)) as u8).saturating_add(noise),
            ((y * 255 / height.max(1)) as u8).saturating_add(noise),
            (((x + y) / 7 % 256) as u8).saturating_add(noise),
        ]
    })
}

/// Inserts a segment (`marker` is the second byte, e.g. `0xE1` for APP1) right after SOI.
pub fn with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).expect("segment under 64 KiB");
    let mut out = Vec::with_capacity(jpeg.len() + payload.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Adds an EXIF APP1 segment with an orientation tag and/or a GPS position `(lat, lon)`.
pub fn with_exif(jpeg: &[u8], orientation: Option<u16>, gps: Option<(f64, f64)>) -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value};
    let dms = |v: f64| {
        let v = v.abs();
        let d = v.trunc();
        let m = ((v - d) * 60.0).trunc();
        let s = ((v - d) * 60.0 - m) * 60.0;
        Value::Rational(vec![
            Rational::from((d as u32, 1)),
            Rational::from((m as u32, 1)),
            Rational::from(((s * 10_000.0).round() as u32, 10_000)),
        ])
    };
    let field = |tag, value| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    };
    let mut fields = vec![field(
        Tag::Make,
        Value::Ascii(vec![b"Phone maker".to_vec()]),
    )];
    if let Some(o) = orientation {
        fields.push(field(Tag::Orientation, Value::Short(vec![o])));
    }
    if let Some((lat, lon)) = gps {
        let r =
            |neg: bool, n: &[u8], p: &[u8]| Value::Ascii(vec![if neg { n } else { p }.to_vec()]);
        fields.push(field(Tag::GPSLatitudeRef, r(lat < 0.0, b"S", b"N")));
        fields.push(field(Tag::GPSLatitude, dms(lat)));
        fields.push(field(Tag::GPSLongitudeRef, r(lon < 0.0, b"W", b"E")));
        fields.push(field(Tag::GPSLongitude, dms(lon)));
    }
    let mut writer = exif::experimental::Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("writing EXIF");
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff.into_inner());
    with_segment(jpeg, 0xE1, &payload)
}

/// [`with_exif`] with the GPS directory's "next IFD" offset set, as Python's piexif writes it
/// (the specification wants 0 there; readers that insist on it see no GPS at all).
pub fn with_exif_gps_next_ifd_set(jpeg: &[u8], gps: (f64, f64)) -> Vec<u8> {
    let mut out = with_exif(jpeg, None, Some(gps));
    // The APP1 segment follows SOI: FF D8 FF E1 <len:2> "Exif\0\0" <TIFF>.
    let tiff = 2 + 2 + 2 + 6;
    let big_endian = &out[tiff..tiff + 2] == b"MM";
    let u16_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1]];
        if big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let ifd0 = tiff + u32_at(&out, tiff + 4) as usize;
    let entries = u16_at(&out, ifd0) as usize;
    let gps_ifd = (0..entries)
        .map(|i| ifd0 + 2 + 12 * i)
        .find(|&e| u16_at(&out, e) == 0x8825)
        .map(|e| tiff + u32_at(&out, e + 8) as usize)
        .expect("a GPS directory");
    let next = gps_ifd + 2 + 12 * u16_at(&out, gps_ifd) as usize;
    let eight = if big_endian {
        8u32.to_be_bytes()
    } else {
        8u32.to_le_bytes()
    };
    out[next..next + 4].copy_from_slice(&eight);
    out
}

/// Adds an XMP packet (APP1) and an IPTC block (APP13), as photo editors write them.
pub fn with_xmp_and_iptc(jpeg: &[u8]) -> Vec<u8> {
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(
        br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="48,51.5N"/></rdf:RDF></x:xmpmeta>"#,
    );
    let mut iptc = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x0b".to_vec();
    iptc.extend_from_slice(b"\x1c\x02\x5a\0\x05Paris");
    with_segment(&with_segment(jpeg, 0xED, &iptc), 0xE1, &xmp)
}

/// A small JPEG whose frame header (SOF0) declares `width` × `height`: a real JPEG header,
/// with far fewer pixels behind it than it claims.
pub fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(16, 16, |_, _| [128, 128, 128]);
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), then height and width, big-endian.
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// A PNG of about 1 KB whose header (IHDR, with a correct CRC) declares `width` × `height`.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::new(1, 1))
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("encoding an in-memory PNG");
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height, then the CRC over
    // "IHDR" and its 13 data bytes.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    // Pad towards 1 KB with a private ancillary chunk, before IEND.
    let iend = bytes.len() - 12;
    let data = vec![0u8; 900];
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    chunk.extend_from_slice(b"paDd");
    chunk.extend_from_slice(&data);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk[4..]);
    chunk.extend_from_slice(&crc.sum().to_be_bytes());
    bytes.splice(iend..iend, chunk);
    bytes
}

/// The `APPn` markers (second byte, `0xE0..=0xEF`) and COM segments found before the image data.
pub fn metadata_markers(jpeg: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            break; // start of scan: entropy-coded data follows
        }
        if (0xE0..=0xEF).contains(&marker) || marker == 0xFE {
            found.push(marker);
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        i += 2 + len;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_fixtures_carry_what_they_claim() {
        let tagged = with_xmp_and_iptc(&with_exif(
            &jpeg(8, 8, |_, _| [0, 0, 0]),
            Some(6),
            Some((1.0, 2.0)),
        ));
        let markers = metadata_markers(&tagged);
        assert!(
            markers.contains(&0xE1) && markers.contains(&0xED),
            "{markers:?}"
        );
        let exif = exif::Reader::new()
            .read_from_container(&mut Cursor::new(&tagged))
            .unwrap();
        assert!(
            exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
                .is_some()
        );
        let reader = image::ImageReader::new(Cursor::new(jpeg_declaring(20_000, 20_000)))
            .with_guessed_format()
            .unwrap();
        assert_eq!(reader.into_dimensions().unwrap(), (20_000, 20_000));
    }
}
