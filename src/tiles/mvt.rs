//! Mapbox Vector Tile 2.1 messages (`vector_tile.proto`) as prost structs, and a layer builder
//! that interns keys and values and writes zig-zag delta geometry commands.

use std::collections::HashMap;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// Every layer citypin writes uses this grid: 4096 units across a tile.
pub const EXTENT: u32 = 4096;

/// `Tile` of `vector_tile.proto` (MVT 2.1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tile {
    #[prost(message, repeated, tag = "3")]
    pub layers: Vec<Layer>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Layer {
    #[prost(uint32, required, tag = "15")]
    pub version: u32,
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub features: Vec<Feature>,
    #[prost(string, repeated, tag = "3")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub values: Vec<Value>,
    #[prost(uint32, optional, tag = "5")]
    pub extent: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    #[prost(uint64, optional, tag = "1")]
    pub id: Option<u64>,
    #[prost(uint32, repeated, packed = "true", tag = "2")]
    pub tags: Vec<u32>,
    #[prost(enumeration = "GeomType", optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(uint32, repeated, packed = "true", tag = "4")]
    pub geometry: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub float_value: Option<f32>,
    #[prost(double, optional, tag = "3")]
    pub double_value: Option<f64>,
    #[prost(int64, optional, tag = "4")]
    pub int_value: Option<i64>,
    #[prost(uint64, optional, tag = "5")]
    pub uint_value: Option<u64>,
    #[prost(sint64, optional, tag = "6")]
    pub sint_value: Option<i64>,
    #[prost(bool, optional, tag = "7")]
    pub bool_value: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GeomType {
    Unknown = 0,
    Point = 1,
    Linestring = 2,
    Polygon = 3,
}

/// A property value as citypin writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Prop<'a> {
    Str(&'a str),
    /// A string no other feature shares (an id): stored without looking it up.
    Unique(&'a str),
    UInt(u64),
    Double(f64),
}

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

fn command(id: u32, count: u32) -> u32 {
    (id & 0x7) | (count << 3)
}

/// Zig-zag encoding of a signed parameter, as the spec's geometry commands want it.
pub fn zigzag(n: i64) -> u32 {
    ((n << 1) ^ (n >> 63)) as u32
}

/// Builds one layer straight into its wire bytes (with prost's encoding helpers): each
/// feature and each new value is encoded as it is added, so a point costs no allocation.
/// Keys and values are interned, so a repeated value costs one index.
pub struct LayerBuilder {
    name: String,
    keys: Vec<String>,
    /// Encoded `Layer.features` fields (key 2, length, `Feature`), back to back.
    features: Vec<u8>,
    n_features: usize,
    /// Encoded `Layer.values` fields (key 4, length, `Value`), back to back.
    values: Vec<u8>,
    n_values: u32,
    // One map per value type, so looking a value up never allocates.
    strings: HashMap<String, u32>,
    uints: HashMap<u64, u32>,
    doubles: HashMap<u64, u32>,
    /// Scratch for one feature's tags, reused.
    tags: Vec<u32>,
}

impl LayerBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            keys: Vec::new(),
            features: Vec::new(),
            n_features: 0,
            values: Vec::new(),
            n_values: 0,
            strings: HashMap::new(),
            uints: HashMap::new(),
            doubles: HashMap::new(),
            tags: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n_features == 0
    }

    /// Reserves room for about `n` features of about `bytes` bytes each (features and values).
    pub fn reserve(&mut self, n: usize, bytes: usize) {
        self.features.reserve(n * bytes / 2);
        self.values.reserve(n * bytes / 2);
    }

    /// The index of key `k`, added if new. Layers have a handful of keys: a scan beats a hash.
    pub fn key(&mut self, k: &str) -> u32 {
        if let Some(i) = self.keys.iter().position(|have| have == k) {
            return i as u32;
        }
        self.keys.push(k.to_owned());
        (self.keys.len() - 1) as u32
    }

    /// The index of value `v`, added if new (a [`Prop::Unique`] is always new).
    pub fn value(&mut self, v: &Prop<'_>) -> u32 {
        let next = self.n_values;
        let (i, is_new) = match v {
            Prop::Str(s) => intern(&mut self.strings, *s, next),
            Prop::Unique(_) => (next, true),
            Prop::UInt(u) => intern(&mut self.uints, u, next),
            Prop::Double(d) => intern(&mut self.doubles, &d.to_bits(), next),
        };
        if is_new {
            self.push_value(v);
        }
        i
    }

    /// Encodes a new `Value` message as a `Layer.values` field.
    fn push_value(&mut self, v: &Prop<'_>) {
        let buf = &mut self.values;
        match v {
            Prop::Str(s) | Prop::Unique(s) => {
                let inner = key_len(1) + encoded_len_varint(s.len() as u64) + s.len();
                encode_key(4, WireType::LengthDelimited, buf);
                encode_varint(inner as u64, buf);
                encode_str(1, s, buf);
            }
            Prop::UInt(u) => {
                encode_key(4, WireType::LengthDelimited, buf);
                encode_varint(prost::encoding::uint64::encoded_len(5, u) as u64, buf);
                prost::encoding::uint64::encode(5, u, buf);
            }
            Prop::Double(d) => {
                encode_key(4, WireType::LengthDelimited, buf);
                encode_varint(prost::encoding::double::encoded_len(3, d) as u64, buf);
                prost::encoding::double::encode(3, d, buf);
            }
        }
        self.n_values += 1;
    }

    fn tags(&mut self, props: &[(&str, Prop<'_>)]) -> Vec<u32> {
        let mut tags = std::mem::take(&mut self.tags);
        tags.clear();
        for (k, v) in props {
            let ki = self.key(k);
            let vi = self.value(v);
            tags.push(ki);
            tags.push(vi);
        }
        tags
    }

    /// Adds a point at tile coordinates `(x, y)`.
    pub fn point(&mut self, id: Option<u64>, xy: (i64, i64), props: &[(&str, Prop<'_>)]) {
        let tags = self.tags(props);
        self.point_tagged(id, xy, &tags);
        self.tags = tags;
    }

    /// Adds a point whose tags (key index, value index pairs from [`Self::key`] and
    /// [`Self::value`]) the caller has looked up already.
    pub fn point_tagged(&mut self, id: Option<u64>, xy: (i64, i64), tags: &[u32]) {
        let geometry = [command(MOVE_TO, 1), zigzag(xy.0), zigzag(xy.1)];
        self.push_feature(id, tags, GeomType::Point, &geometry);
    }

    /// Encodes a `Feature` message as a `Layer.features` field.
    fn push_feature(&mut self, id: Option<u64>, tags: &[u32], kind: GeomType, geometry: &[u32]) {
        use prost::encoding::{int32, uint32, uint64};
        let kind = kind as i32;
        let len = id.map_or(0, |id| uint64::encoded_len(1, &id))
            + uint32::encoded_len_packed(2, tags)
            + int32::encoded_len(3, &kind)
            + uint32::encoded_len_packed(4, geometry);
        let buf = &mut self.features;
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        if let Some(id) = id {
            uint64::encode(1, &id, buf);
        }
        uint32::encode_packed(2, tags, buf);
        int32::encode(3, &kind, buf);
        uint32::encode_packed(4, geometry, buf);
        self.n_features += 1;
    }

    /// Adds a polygon with one ring (open: the first vertex is not repeated). The ring is
    /// turned so its area is positive in tile coordinates (clockwise on screen), as the spec
    /// requires of an exterior ring; consecutive repeated vertices are dropped.
    pub fn polygon(&mut self, id: Option<u64>, ring: &[(i64, i64)], props: &[(&str, Prop<'_>)]) {
        let mut ring: Vec<(i64, i64)> = ring.to_vec();
        ring.dedup();
        while ring.len() > 1 && ring.first() == ring.last() {
            ring.pop();
        }
        if ring.len() < 3 {
            return;
        }
        let area = signed_area(&ring);
        if area == 0 {
            return;
        }
        if area < 0 {
            ring.reverse();
        }
        let tags = self.tags(props);
        let mut geometry = Vec::with_capacity(ring.len() * 2 + 3);
        let (mut cx, mut cy) = (0i64, 0i64);
        geometry.push(command(MOVE_TO, 1));
        geometry.push(zigzag(ring[0].0 - cx));
        geometry.push(zigzag(ring[0].1 - cy));
        (cx, cy) = ring[0];
        geometry.push(command(LINE_TO, (ring.len() - 1) as u32));
        for &(x, y) in &ring[1..] {
            geometry.push(zigzag(x - cx));
            geometry.push(zigzag(y - cy));
            (cx, cy) = (x, y);
        }
        geometry.push(command(CLOSE_PATH, 1));
        self.push_feature(id, &tags, GeomType::Polygon, &geometry);
        self.tags = tags;
    }

    /// The encoded length of the `Layer` message.
    fn encoded_len(&self) -> usize {
        use prost::encoding::uint32;
        str_len(1, &self.name)
            + self.features.len()
            + self.keys.iter().map(|k| str_len(3, k)).sum::<usize>()
            + self.values.len()
            + uint32::encoded_len(5, &EXTENT)
            + uint32::encoded_len(15, &2)
    }

    /// Appends the layer as a `Tile.layers` field.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        use prost::encoding::uint32;
        encode_key(3, WireType::LengthDelimited, buf);
        encode_varint(self.encoded_len() as u64, buf);
        encode_str(1, &self.name, buf);
        buf.extend_from_slice(&self.features);
        for k in &self.keys {
            encode_str(3, k, buf);
        }
        buf.extend_from_slice(&self.values);
        uint32::encode(5, &EXTENT, buf);
        uint32::encode(15, &2, buf);
    }
}

/// The encoded length of a string field.
fn str_len(tag: u32, s: &str) -> usize {
    key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

/// Encodes a string field from a `&str` (prost's `string::encode` wants a `String`).
fn encode_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.extend_from_slice(s.as_bytes());
}

/// The index of `key` in `map`, adding it as `next` if absent; looking up never allocates.
fn intern<K, Q>(map: &mut HashMap<K, u32>, key: &Q, next: u32) -> (u32, bool)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ToOwned<Owned = K> + std::hash::Hash + Eq + ?Sized,
{
    if let Some(&i) = map.get(key) {
        (i, false)
    } else {
        map.insert(key.to_owned(), next);
        (next, true)
    }
}

/// Twice the ring's signed area by the surveyor's formula, in tile coordinates (y down):
/// positive means clockwise on screen.
pub fn signed_area(ring: &[(i64, i64)]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (x0, y0) = ring[i];
            let (x1, y1) = ring[(i + 1) % n];
            x0 * y1 - x1 * y0
        })
        .sum()
}

/// Encodes the non-empty layers of a tile.
pub fn encode(layers: Vec<LayerBuilder>) -> Vec<u8> {
    let layers: Vec<LayerBuilder> = layers.into_iter().filter(|l| !l.is_empty()).collect();
    let len = layers
        .iter()
        .map(|l| {
            let n = l.encoded_len();
            key_len(3) + encoded_len_varint(n as u64) + n
        })
        .sum();
    let mut buf = Vec::with_capacity(len);
    for l in &layers {
        l.encode_into(&mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn unzigzag(v: u32) -> i64 {
        i64::from(v >> 1) ^ -i64::from(v & 1)
    }

    /// Decodes one feature's geometry back to absolute rings/points, checking the command
    /// stream as the spec describes it (MoveTo/LineTo/ClosePath with zig-zag deltas).
    fn decode_geometry(g: &[u32]) -> Vec<Vec<(i64, i64)>> {
        let (mut x, mut y) = (0i64, 0i64);
        let mut parts: Vec<Vec<(i64, i64)>> = Vec::new();
        let mut i = 0;
        while i < g.len() {
            let (id, count) = (g[i] & 7, g[i] >> 3);
            i += 1;
            match id {
                MOVE_TO | LINE_TO => {
                    if id == MOVE_TO {
                        parts.push(Vec::new());
                    }
                    for _ in 0..count {
                        x += unzigzag(g[i]);
                        y += unzigzag(g[i + 1]);
                        i += 2;
                        parts.last_mut().expect("MoveTo first").push((x, y));
                    }
                }
                CLOSE_PATH => assert_eq!(count, 1, "ClosePath takes count 1"),
                other => panic!("unknown command {other}"),
            }
        }
        parts
    }

    #[test]
    fn zigzag_matches_the_spec_table() {
        assert_eq!(
            [0, -1, 1, -2, 2, 2_147_483_647, -2_147_483_648].map(zigzag),
            [0, 1, 2, 3, 4, 4_294_967_294, 4_294_967_295]
        );
    }

    #[test]
    fn the_byte_builder_writes_what_prost_writes_for_the_same_tile() {
        let mut points = LayerBuilder::new("incidents");
        for n in 0..300u64 {
            let id = format!("id-{n}");
            points.point(
                Some(n),
                (n as i64 * 13 - 200, 4096 - n as i64),
                &[
                    ("id", Prop::Unique(&id)),
                    (
                        "status",
                        Prop::Str(if n % 3 == 0 { "new" } else { "fixed" }),
                    ),
                    ("age_days", Prop::UInt(n % 7)),
                    ("score", Prop::Double(n as f64 / 4.0)),
                ],
            );
        }
        let mut polys = LayerBuilder::new("hotspots");
        polys.polygon(
            None,
            &[(0, 0), (100, 0), (50, 80)],
            &[("h3", Prop::Str("x"))],
        );
        let bytes = encode(vec![points, polys]);
        let tile = Tile::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(tile.layers[0].features.len(), 300);
        assert_eq!(tile.layers[0].values.len(), 300 + 2 + 7 + 300);
        // prost writes fields in tag order, as the builder does: byte for byte the same.
        assert_eq!(tile.encode_to_vec(), bytes);
    }

    #[test]
    fn encoded_tile_follows_the_must_rules() {
        let mut points = LayerBuilder::new("incidents");
        points.point(
            None,
            (10, 20),
            &[("status", Prop::Str("new")), ("n", Prop::UInt(3))],
        );
        points.point(
            None,
            (4096, 0),
            &[("status", Prop::Str("new")), ("n", Prop::UInt(4))],
        );
        let mut polys = LayerBuilder::new("hotspots");
        // Counter-clockwise on screen: the builder must turn it round.
        polys.polygon(
            Some(7),
            &[(0, 0), (0, 100), (100, 100), (100, 0)],
            &[("score", Prop::Double(1.5))],
        );
        let bytes = encode(vec![points, polys, LayerBuilder::new("empty")]);
        let tile = Tile::decode(bytes.as_slice()).expect("decodes");
        let names: Vec<&str> = tile.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["incidents", "hotspots"],
            "empty layers are left out"
        );
        for layer in &tile.layers {
            assert_eq!(layer.version, 2);
            assert_eq!(layer.extent, Some(EXTENT));
            for f in &layer.features {
                assert_eq!(f.tags.len() % 2, 0);
                for pair in f.tags.chunks(2) {
                    assert!((pair[0] as usize) < layer.keys.len());
                    assert!((pair[1] as usize) < layer.values.len());
                }
            }
        }
        assert_eq!(tile.layers[0].keys, ["status", "n"]);
        assert_eq!(tile.layers[0].values.len(), 3, "\"new\" is stored once");
        let pts: Vec<_> = tile.layers[0]
            .features
            .iter()
            .map(|f| decode_geometry(&f.geometry))
            .collect();
        assert_eq!(pts, [vec![vec![(10, 20)]], vec![vec![(4096, 0)]]]);
        let poly = &tile.layers[1].features[0];
        assert_eq!(poly.r#type, Some(GeomType::Polygon as i32));
        let rings = decode_geometry(&poly.geometry);
        assert_eq!(rings.len(), 1);
        assert!(
            signed_area(&rings[0]) > 0,
            "exterior ring is clockwise on screen"
        );
        assert_eq!(*poly.geometry.last().expect("ends"), command(CLOSE_PATH, 1));
    }
}
