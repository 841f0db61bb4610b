//! Tests of the filter pipeline: golden bytes from the recipe, round trips through a forward
//! model of libtiledb's writer, corruption, and fixtures written by libtiledb itself
//! (`tests/fixtures/filters`, made by `make.py` there).

use super::*;
use crate::format::shuffle::forward::{bit_shuffle_part, byte_shuffle};
use std::io::Write;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// Random values of `size` bytes that compress somewhat (a random walk), so compressors and
/// delta codecs see realistic input.
fn walk(n: usize, size: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = 0u64;
    let mut out = Vec::with_capacity(n * size);
    for _ in 0..n {
        v = v.wrapping_add(rng.next() % 7).wrapping_sub(3);
        out.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    out
}

/// Little-endian bytes of a serialized filter: type, option length, options.
fn ser_filter(ftype: u8, opts: &[u8]) -> Vec<u8> {
    let mut b = vec![ftype];
    b.extend_from_slice(&(opts.len() as u32).to_le_bytes());
    b.extend_from_slice(opts);
    b
}

fn compression_opts(compressor: u8, level: i32, reinterpret: Option<u8>) -> Vec<u8> {
    let mut o = vec![compressor];
    o.extend_from_slice(&level.to_le_bytes());
    o.extend(reinterpret);
    o
}

/// A filter the forward model applies, with its serialized form.
#[derive(Debug, Clone, Copy)]
enum F {
    None,
    Gzip,
    Zstd,
    Lz4,
    Delta(u8),
    DoubleDelta(u8),
    Byteshuffle,
    Bitshuffle,
    PositiveDelta(u32),
    Md5,
    Sha256,
}

impl F {
    fn serialize(self) -> Vec<u8> {
        match self {
            F::None => ser_filter(0, &[]),
            F::Gzip => ser_filter(1, &compression_opts(1, 6, None)),
            F::Zstd => ser_filter(2, &compression_opts(2, 3, None)),
            F::Lz4 => ser_filter(3, &compression_opts(3, 1, None)),
            F::DoubleDelta(r) => ser_filter(6, &compression_opts(6, -1, Some(r))),
            F::Delta(r) => ser_filter(19, &compression_opts(8, -1, Some(r))),
            F::Byteshuffle => ser_filter(9, &[]),
            F::Bitshuffle => ser_filter(8, &[]),
            F::PositiveDelta(w) => ser_filter(10, &w.to_le_bytes()),
            F::Md5 => ser_filter(12, &[]),
            F::Sha256 => ser_filter(13, &[]),
        }
    }
}

fn ser_pipeline(max_chunk: u32, filters: &[F]) -> Vec<u8> {
    let mut b = max_chunk.to_le_bytes().to_vec();
    b.extend_from_slice(&(filters.len() as u32).to_le_bytes());
    for f in filters {
        b.extend(f.serialize());
    }
    b
}

fn pipeline(filters: &[F]) -> Pipeline {
    let bytes = ser_pipeline(65536, filters);
    let mut r = Reader::new(&bytes, "test pipeline");
    let p = Pipeline::parse(&mut r).unwrap();
    assert_eq!(r.remaining(), 0);
    p
}

/// `(size, signed)` of the integer types the tests use.
fn int_of(t: CellType) -> (usize, bool) {
    (datatype_size(t).unwrap(), t.is_signed_int() || t == CellType::CHAR)
}

fn value_at(b: &[u8], size: usize, signed: bool) -> i128 {
    let u = le_u64(b);
    if signed {
        let shift = 64 - 8 * size as u32;
        (((u << shift) as i64) >> shift) as i128
    } else {
        u as i128
    }
}

/// Forward DELTA (delta_compressor.cc `compress`).
fn delta_encode(part: &[u8], size: usize) -> Vec<u8> {
    let n = part.len() / size;
    let mut out = (n as u64).to_le_bytes().to_vec();
    let mut prev = 0u64;
    for (k, v) in part.chunks_exact(size).enumerate() {
        let v = le_u64(v);
        let d = if k == 0 { v } else { v.wrapping_sub(prev) };
        out.extend_from_slice(&d.to_le_bytes()[..size]);
        prev = v;
    }
    out
}

/// Forward DOUBLE_DELTA (dd_compressor.cc `compress`, `compute_bitsize`, `write_double_delta`).
fn double_delta_encode(part: &[u8], size: usize, signed: bool) -> Vec<u8> {
    let vals: Vec<i128> = part.chunks_exact(size).map(|v| value_at(v, size, signed)).collect();
    let n = vals.len();
    let bitsize = if n <= 2 {
        0
    } else {
        let mut max = (vals[1] - vals[0]).unsigned_abs();
        for i in 2..n {
            let dd = (vals[i] - vals[i - 1]) - (vals[i - 1] - vals[i - 2]);
            max = max.max(dd.unsigned_abs());
        }
        let mut b = 0u32;
        loop {
            b += 1;
            max >>= 1;
            if max == 0 {
                break;
            }
        }
        b as usize
    };
    let mut out = vec![bitsize as u8];
    out.extend_from_slice(&(n as u64).to_le_bytes());
    if bitsize >= size * 8 - 1 {
        out.extend_from_slice(part);
        return out;
    }
    out.extend_from_slice(&part[..n.min(2) * size]);
    let mut bits: Vec<bool> = Vec::new();
    for i in 2..n {
        let dd = (vals[i] - vals[i - 1]) - (vals[i - 1] - vals[i - 2]);
        bits.push(dd < 0);
        let mag = dd.unsigned_abs();
        for b in (0..bitsize).rev() {
            bits.push((mag >> b) & 1 == 1);
        }
    }
    for word_bits in bits.chunks(64) {
        let mut w = 0u64;
        for (k, b) in word_bits.iter().enumerate() {
            if *b {
                w |= 1 << (63 - k);
            }
        }
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

fn zlib_encode(part: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(part).unwrap();
    e.finish().unwrap()
}

/// The metadata and data buffers of a chunk between two filters (`FilterBuffer`s: the number
/// of buffers decides the number of parts the next filter writes).
#[derive(Clone, Default)]
struct Stage {
    md: Vec<Vec<u8>>,
    data: Vec<Vec<u8>>,
}

fn le_size(n: usize) -> [u8; 4] {
    (n as u32).to_le_bytes()
}

/// One filter forward, on the type `t` it sees (the `run_forward` of each filter).
fn forward(f: F, t: CellType, s: Stage) -> Stage {
    let compress = |codec: Codec, value_t: CellType, s: Stage| {
        let mut header = le_size(s.md.len()).to_vec();
        header.extend_from_slice(&le_size(s.data.len()));
        let mut data = Vec::new();
        for part in s.md.iter().chain(s.data.iter()) {
            let c = match codec {
                Codec::Zstd => zstd::bulk::compress(part, 3).unwrap(),
                Codec::Lz4 => lz4_flex::block::compress(part),
                Codec::Gzip => zlib_encode(part),
                Codec::Delta => delta_encode(part, datatype_size(value_t).unwrap()),
                Codec::DoubleDelta => {
                    let (size, signed) = int_of(value_t);
                    double_delta_encode(part, size, signed)
                }
            };
            header.extend_from_slice(&le_size(part.len()));
            header.extend_from_slice(&le_size(c.len()));
            data.extend(c);
        }
        Stage { md: vec![header], data: vec![data] }
    };
    let with_header = |header: Vec<u8>, md: Vec<Vec<u8>>| {
        let mut v = vec![header];
        v.extend(md);
        v
    };
    match f {
        F::None => s,
        F::Gzip => compress(Codec::Gzip, t, s),
        F::Zstd => compress(Codec::Zstd, t, s),
        F::Lz4 => compress(Codec::Lz4, t, s),
        F::Delta(r) => compress(Codec::Delta, if r == 17 { t } else { CellType(r) }, s),
        F::DoubleDelta(r) => compress(Codec::DoubleDelta, if r == 17 { t } else { CellType(r) }, s),
        F::Byteshuffle => {
            let ts = datatype_size(t).unwrap();
            let mut header = le_size(s.data.len()).to_vec();
            let mut data = Vec::new();
            for p in &s.data {
                header.extend_from_slice(&le_size(p.len()));
                data.extend(byte_shuffle(p, ts));
            }
            Stage { md: with_header(header, s.md), data: vec![data] }
        }
        F::Bitshuffle => {
            let ts = datatype_size(t).unwrap();
            let mut parts = Vec::new();
            for p in &s.data {
                let first = p.len() - p.len() % 8;
                if first == p.len() {
                    parts.push(&p[..]);
                } else {
                    parts.push(&p[..first]);
                    parts.push(&p[first..]);
                }
            }
            let mut header = le_size(parts.len()).to_vec();
            let mut data = Vec::new();
            for p in parts {
                header.extend_from_slice(&le_size(p.len()));
                data.extend(bit_shuffle_part(p, ts));
            }
            Stage { md: with_header(header, s.md), data: vec![data] }
        }
        F::PositiveDelta(max_window) => {
            let Some(size) = positive_delta_size(t) else {
                return s;
            };
            let mut windows = Vec::new();
            let mut data = Vec::new();
            for p in &s.data {
                let ws = (p.len().min(max_window as usize)) / size * size;
                for w in p.chunks(ws) {
                    let base = le_u64(&w[..size]);
                    windows.push((base, w.len()));
                    let mut prev = base;
                    for v in w.chunks_exact(size) {
                        let v = le_u64(v);
                        data.extend_from_slice(&v.wrapping_sub(prev).to_le_bytes()[..size]);
                        prev = v;
                    }
                }
            }
            let mut header = le_size(windows.len()).to_vec();
            for (base, len) in windows {
                header.extend_from_slice(&base.to_le_bytes()[..size]);
                header.extend_from_slice(&le_size(len));
            }
            Stage { md: with_header(header, s.md), data: vec![data] }
        }
        F::Md5 | F::Sha256 => {
            let digest = |b: &[u8]| -> Vec<u8> {
                if matches!(f, F::Md5) {
                    <md5::Md5 as md5::Digest>::digest(b).to_vec()
                } else {
                    <sha2::Sha256 as sha2::Digest>::digest(b).to_vec()
                }
            };
            let mut header = le_size(s.md.len()).to_vec();
            header.extend_from_slice(&le_size(s.data.len()));
            for p in s.md.iter().chain(s.data.iter()) {
                header.extend_from_slice(&(p.len() as u64).to_le_bytes());
                header.extend(digest(p));
            }
            Stage { md: with_header(header, s.md), data: s.data }
        }
    }
}

/// Filters a tile the way libtiledb writes it: chunks of `chunk` bytes (the last may be
/// shorter), each through every filter, then `u64 n` and per chunk `orig, filtered, md_len`,
/// metadata, data.
fn filter_tile(filters: &[F], cell: CellType, tile: &[u8], chunk: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = if tile.is_empty() { vec![] } else { tile.chunks(chunk).collect() };
    let mut out = (chunks.len() as u64).to_le_bytes().to_vec();
    for c in chunks {
        let mut s = Stage { md: vec![], data: vec![c.to_vec()] };
        let mut t = cell;
        for f in filters {
            s = forward(*f, t, s);
            t = match f {
                F::Delta(r) | F::DoubleDelta(r) if *r != 17 => CellType(*r),
                _ => t,
            };
        }
        let md: Vec<u8> = s.md.concat();
        let data: Vec<u8> = s.data.concat();
        out.extend_from_slice(&le_size(c.len()));
        out.extend_from_slice(&le_size(data.len()));
        out.extend_from_slice(&le_size(md.len()));
        out.extend(md);
        out.extend(data);
    }
    out
}

/// `WriterTile::compute_chunk_size`: 64 KiB, at most the tile, rounded down to whole cells.
fn chunk_size(tile_len: usize, cell: usize) -> usize {
    (65536.min(tile_len) / cell * cell).max(cell)
}

fn unfilter(p: &Pipeline, tile: &[u8], cell: CellType, len: usize) -> Result<Vec<u8>, FormatError> {
    let mut out = vec![0xA5u8; len];
    p.unfilter_tile(tile, cell, &mut out, true).map(|_| out)
}

/// Filters `data` with `filters` and checks that it decodes back, with and without verifying
/// checksums, and that the stored tile is consumed exactly.
fn round_trip(filters: &[F], cell: CellType, data: &[u8], chunk: usize) {
    let p = pipeline(filters);
    let tile = filter_tile(filters, cell, data, chunk);
    let got = unfilter(&p, &tile, cell, data.len())
        .unwrap_or_else(|e| panic!("{filters:?} on type {} ({} bytes): {e}", cell.0, data.len()));
    assert!(got == data, "{filters:?} on type {} ({} bytes) decoded differently", cell.0, data.len());
    let mut out = vec![0u8; data.len()];
    p.unfilter_tile(&tile, cell, &mut out, false).unwrap();
    assert!(out == data);
}

const INT8: CellType = CellType(5);
const UINT8: CellType = CellType(6);
const INT16: CellType = CellType(7);
const UINT16: CellType = CellType(8);
const INT32: CellType = CellType(0);
const UINT32: CellType = CellType(9);
const INT64: CellType = CellType(1);
const UINT64: CellType = CellType(10);
const FLOAT32: CellType = CellType(2);
const FLOAT64: CellType = CellType(3);
const ANY: u8 = 17;

const ALL_TYPES: [CellType; 10] = [INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64, FLOAT32, FLOAT64];

fn is_corrupt<T: std::fmt::Debug>(r: Result<T, FormatError>) -> String {
    match r {
        Err(FormatError::Corrupt(m)) => m,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn is_unsupported<T: std::fmt::Debug>(r: Result<T, FormatError>) -> String {
    match r {
        Err(FormatError::Unsupported(m)) => m,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Golden bytes from the recipe
// ---------------------------------------------------------------------------------------------

#[test]
fn parses_the_generic_tile_pipeline_example() {
    // §3.1: a generic tile header, then its pipeline: max_chunk 65536, GZIP level 1.
    let bytes = hex("16000000 8600000000000000 0401000000000000 04 0100000000000000 00 12000000
                     00000100 01000000 01 05000000 01 01000000");
    let mut r = Reader::new(&bytes, "generic tile");
    assert_eq!(r.u32().unwrap(), 22);
    r.skip(8 + 8 + 1 + 8 + 1).unwrap();
    let psize = r.u32().unwrap() as usize;
    let start = r.position();
    let p = Pipeline::parse(&mut r).unwrap();
    assert_eq!(r.position() - start, psize);
    assert_eq!(r.remaining(), 0);
    assert_eq!(p.max_chunk_size, 65536);
    assert_eq!(p.filters(), &[Filter::Compression { codec: Codec::Gzip, level: 1, reinterpret: CellType::ANY }]);
    assert_eq!(p.filter_names(), vec!["gzip"]);
    assert!(!p.is_empty());
}

#[test]
fn parses_the_schema_pipelines_of_the_appendix() {
    // Coordinates: zstd level -1; attribute "voxels": zstd level 3.
    let coords = hex("00000100 01000000 02 05000000 02 ffffffff");
    let p = Pipeline::parse(&mut Reader::new(&coords, "p")).unwrap();
    assert_eq!(p.filters(), &[Filter::Compression { codec: Codec::Zstd, level: -1, reinterpret: CellType::ANY }]);
    let voxels = hex("00000100 01000000 02 05000000 02 03000000");
    let p = Pipeline::parse(&mut Reader::new(&voxels, "p")).unwrap();
    assert_eq!(p.filters()[0].name(), "zstd");
    // A pipeline with no filters.
    let empty = hex("00000100 00000000");
    let p = Pipeline::parse(&mut Reader::new(&empty, "p")).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.filter_names(), Vec::<&str>::new());
}

#[test]
fn decodes_the_appendix_zstd_tile_layout() {
    // a0.tdb of f32_64cube_zstd_row: 16 chunks of 65536 bytes, each with the 16-byte zstd
    // metadata `0 md parts, 1 data part (65536 -> 20)` and a 20-byte zstd frame.
    let golden = hex("10 00 00 00 00 00 00 00
                      00 00 01 00  14 00 00 00  10 00 00 00
                      00 00 00 00  01 00 00 00  00 00 01 00  14 00 00 00
                      28 b5 2f fd 60 00 ff 55");
    let mut r = Reader::new(&golden, "golden");
    assert_eq!(r.u64().unwrap(), 16);
    let (orig, filtered, md_len) = (r.u32().unwrap(), r.u32().unwrap(), r.u32().unwrap());
    assert_eq!((orig, filtered, md_len), (65536, 20, 16));
    let md = r.take(16).unwrap();
    let parts = CompressedParts::parse(md, 20).unwrap();
    assert_eq!((parts.n_md, parts.md_total, parts.data_total), (0, 0, 65536));
    assert!(CompressedParts::parse(md, 21).is_err());

    // The same layout, built with a real zstd frame of 65536 zero bytes (what the phantom's
    // empty corner holds), decodes to 1 MiB of zeros.
    let frame = zstd::bulk::compress(&[0u8; 65536], -1).unwrap();
    assert_eq!(&frame[..7], &golden[36..43], "zstd frame header with a 2-byte content size");
    let mut tile = 16u64.to_le_bytes().to_vec();
    for _ in 0..16 {
        tile.extend_from_slice(&65536u32.to_le_bytes());
        tile.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        tile.extend_from_slice(&16u32.to_le_bytes());
        tile.extend_from_slice(&hex("00000000 01000000 00000100"));
        tile.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        tile.extend_from_slice(&frame);
    }
    let p = Pipeline::parse(&mut Reader::new(&hex("00000100 01000000 02 05000000 02 ffffffff"), "p")).unwrap();
    let mut out = vec![1u8; 1 << 20];
    p.unfilter_tile(&tile, FLOAT32, &mut out, true).unwrap();
    assert!(out.iter().all(|b| *b == 0));
}

#[test]
fn checksum_metadata_sizes_match_the_recipe() {
    // §3.4: zstd alone 16 B of chunk metadata, byteshuffle + zstd 24 B, md5 + zstd + sha256 112 B.
    let data = walk(1000, 4, &mut Rng::new(1));
    let md_len = |filters: &[F]| {
        let tile = filter_tile(filters, FLOAT32, &data, 4000);
        u32::from_le_bytes(tile[16..20].try_into().unwrap())
    };
    assert_eq!(md_len(&[F::Zstd]), 16);
    assert_eq!(md_len(&[F::Byteshuffle, F::Zstd]), 24);
    assert_eq!(md_len(&[F::Md5, F::Zstd, F::Sha256]), 112);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn parses_every_supported_filter_with_its_options() {
    let filters = [
        F::None,
        F::Gzip,
        F::Zstd,
        F::Lz4,
        F::DoubleDelta(ANY),
        F::Delta(9),
        F::Bitshuffle,
        F::Byteshuffle,
        F::PositiveDelta(1024),
        F::Md5,
        F::Sha256,
    ];
    let p = pipeline(&filters);
    assert_eq!(
        p.filter_names(),
        vec![
            "none",
            "gzip",
            "zstd",
            "lz4",
            "double_delta",
            "delta",
            "bitshuffle",
            "byteshuffle",
            "positive_delta",
            "md5",
            "sha256"
        ]
    );
    assert_eq!(p.filters()[5], Filter::Compression { codec: Codec::Delta, level: -1, reinterpret: CellType(9) });
    assert_eq!(p.filters()[8], Filter::PositiveDelta { max_window: 1024 });
    // A delta filter with a reinterpret type changes what later filters see.
    assert_eq!(p.filters()[5].output_type(FLOAT32), CellType(9));
    assert_eq!(p.filters()[4].output_type(INT16), INT16);
    assert_eq!(p.filters()[2].output_type(INT16), INT16);
}

#[test]
fn options_longer_than_known_are_skipped_and_older_delta_options_have_no_reinterpret() {
    // ZSTD with 3 extra option bytes, then BYTESHUFFLE with 2: lengths are honoured.
    let mut b = hex("00000100 03000000");
    b.extend(ser_filter(2, &[2, 3, 0, 0, 0, 0xAA, 0xBB, 0xCC]));
    b.extend(ser_filter(9, &[1, 2]));
    // DOUBLE_DELTA as written before format 20: 5 option bytes, no reinterpret type.
    b.extend(ser_filter(6, &compression_opts(6, 0, None)));
    b.extend([0xEE, 0xFF]); // what follows the pipeline
    let mut r = Reader::new(&b, "p");
    let p = Pipeline::parse(&mut r).unwrap();
    assert_eq!(r.remaining(), 2);
    assert_eq!(p.filter_names(), vec!["zstd", "byteshuffle", "double_delta"]);
    assert_eq!(p.filters()[2], Filter::Compression { codec: Codec::DoubleDelta, level: 0, reinterpret: CellType::ANY });
}

#[test]
fn compressor_byte_decides_the_codec_and_none_passes_through() {
    // A GZIP-typed filter whose compressor byte is NONE is a no-op (libtiledb semantics).
    let mut b = hex("00000100 01000000");
    b.extend(ser_filter(1, &compression_opts(0, 0, None)));
    let p = Pipeline::parse(&mut Reader::new(&b, "p")).unwrap();
    assert_eq!(p.filters(), &[Filter::None]);
    let data = walk(100, 4, &mut Rng::new(3));
    let tile = filter_tile(&[F::None], FLOAT32, &data, 400);
    assert_eq!(unfilter(&p, &tile, FLOAT32, 400).unwrap(), data);
}

#[test]
fn unsupported_filters_are_refused_by_name_after_consuming_the_pipeline() {
    let cases: [(u8, Vec<u8>, &str); 9] = [
        (4, compression_opts(4, -1, None), "RLE"),
        (5, compression_opts(5, 9, None), "BZIP2"),
        (7, 256u32.to_le_bytes().to_vec(), "BIT_WIDTH_REDUCTION"),
        (11, vec![], "AES_256_GCM"),
        (14, compression_opts(7, -1, None), "DICTIONARY"),
        (15, vec![0; 24], "SCALE_FLOAT"),
        (16, vec![], "XOR"),
        (18, vec![0; 12], "WEBP"),
        (99, vec![1, 2, 3], "unknown filter type 99"),
    ];
    for (ftype, opts, name) in cases {
        let mut b = hex("00000100 02000000");
        b.extend(ser_filter(ftype, &opts));
        b.extend(F::Zstd.serialize());
        b.extend([0x42]);
        let mut r = Reader::new(&b, "p");
        let why = is_unsupported(Pipeline::parse(&mut r));
        assert!(why.contains(name), "{why} should name {name}");
        assert_eq!(r.remaining(), 1, "{name}: the reader must stand after the pipeline");
    }
    // Compression filters with a compressor this reader lacks.
    for (comp, name) in [(4u8, "RLE"), (5, "BZIP2"), (7, "DICTIONARY"), (200, "unknown compressor")] {
        let mut b = hex("00000100 01000000");
        b.extend(ser_filter(2, &compression_opts(comp, 1, None)));
        assert!(is_unsupported(Pipeline::parse(&mut Reader::new(&b, "p"))).contains(name));
    }
    // A delta filter reinterpreting as float or as an unknown type.
    for r in [2u8, 3, 77] {
        let b = ser_pipeline(65536, &[F::Delta(r)]);
        is_unsupported(Pipeline::parse(&mut Reader::new(&b, "p")));
    }
}

#[test]
fn truncated_or_oversized_pipelines_are_corrupt() {
    let full = ser_pipeline(65536, &[F::Byteshuffle, F::DoubleDelta(ANY), F::Zstd]);
    for cut in 0..full.len() {
        let r = Pipeline::parse(&mut Reader::new(&full[..cut], "p"));
        is_corrupt(r);
    }
    // A filter count far beyond the bytes present, and an option length past the end.
    is_corrupt(Pipeline::parse(&mut Reader::new(&hex("00000100 ffffffff 02"), "p")));
    is_corrupt(Pipeline::parse(&mut Reader::new(&hex("00000100 01000000 02 ffffffff 02"), "p")));
    // ZSTD with options too short for its compressor and level.
    let mut b = hex("00000100 01000000");
    b.extend(ser_filter(2, &[2, 1]));
    assert!(is_corrupt(Pipeline::parse(&mut Reader::new(&b, "p"))).contains("zstd"));
}

#[test]
fn filters_that_cannot_apply_to_the_cell_type_are_unsupported() {
    let data = vec![0u8; 64];
    for f in [F::Delta(ANY), F::DoubleDelta(ANY)] {
        let p = pipeline(&[f, F::Zstd]);
        let tile = filter_tile(&[F::Zstd], FLOAT32, &data, 64);
        let why = is_unsupported(unfilter(&p, &tile, FLOAT32, 64));
        assert!(why.contains("float"), "{why}");
    }
    let p = pipeline(&[F::Byteshuffle]);
    is_unsupported(unfilter(&p, &[0; 8], CellType(99), 0));
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn compressors_round_trip_every_type_and_odd_sizes() {
    let mut rng = Rng::new(7);
    for t in ALL_TYPES {
        let size = datatype_size(t).unwrap();
        for n in [1usize, 2, 3, 13, 100, 1001] {
            let data = walk(n, size, &mut rng);
            for f in [F::Zstd, F::Lz4, F::Gzip, F::None] {
                round_trip(&[f], t, &data, chunk_size(data.len(), size));
            }
        }
    }
}

#[test]
fn incompressible_data_round_trips() {
    let mut rng = Rng::new(8);
    let data = rng.bytes(70_000);
    for f in [F::Zstd, F::Lz4, F::Gzip] {
        round_trip(&[f], UINT8, &data, 65536);
    }
}

#[test]
fn multi_chunk_tiles_round_trip_in_parallel_and_sequentially() {
    let mut rng = Rng::new(9);
    // 1 MiB float32 = 16 chunks; (240, 240, 1) float32 = 3 x 64 KiB + 33 KiB; odd float64 tile.
    for (n, t) in [(262_144usize, FLOAT32), (57_600, FLOAT32), (10_007, FLOAT64), (45_901, UINT8)] {
        let size = datatype_size(t).unwrap();
        let data = walk(n, size, &mut rng);
        let chunk = chunk_size(data.len(), size);
        round_trip(&[F::Zstd], t, &data, chunk);
        round_trip(&[F::Byteshuffle, F::Lz4], t, &data, chunk);
        // On a one-thread pool too.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| round_trip(&[F::Bitshuffle, F::Zstd], t, &data, chunk));
    }
    // Chunking switched off: one chunk for the whole tile.
    let data = walk(100_000, 4, &mut rng);
    round_trip(&[F::Zstd], INT32, &data, data.len());
}

#[test]
fn shuffles_round_trip_every_element_size_and_odd_counts() {
    let mut rng = Rng::new(10);
    for t in ALL_TYPES {
        let size = datatype_size(t).unwrap();
        // 13 elements, 2x5 int32, odd float64 counts, a bitshuffle block boundary, 64 KiB chunks
        for n in [1usize, 7, 10, 13, 63, 561, 2049, 8192 / size + 3, 20_000] {
            let data = rng.bytes(n * size);
            let chunk = chunk_size(data.len(), size);
            round_trip(&[F::Byteshuffle], t, &data, chunk);
            round_trip(&[F::Bitshuffle], t, &data, chunk);
            round_trip(&[F::Byteshuffle, F::Zstd], t, &data, chunk);
            round_trip(&[F::Bitshuffle, F::Lz4], t, &data, chunk);
        }
    }
}

#[test]
fn bitshuffle_part_split_with_a_short_tail_round_trips() {
    // int16 x 13 = 26 bytes: parts of 24 and 2 bytes; uint8 x 13: parts of 8 and 5 bytes.
    let mut rng = Rng::new(11);
    for (t, n) in [(INT16, 13usize), (UINT8, 13), (INT16, 45), (INT64, 3)] {
        let data = rng.bytes(n * datatype_size(t).unwrap());
        let tile = filter_tile(&[F::Bitshuffle], t, &data, data.len());
        round_trip(&[F::Bitshuffle], t, &data, data.len());
        let md_len = u32::from_le_bytes(tile[16..20].try_into().unwrap());
        let parts = if data.len().is_multiple_of(8) { 1 } else { 2 };
        assert_eq!(md_len, 4 + 4 * parts);
    }
}

#[test]
fn delta_round_trips_with_and_without_reinterpret() {
    let mut rng = Rng::new(12);
    for t in [INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64] {
        let size = datatype_size(t).unwrap();
        for n in [1usize, 2, 13, 1000, 20_000] {
            let data = rng.bytes(n * size);
            round_trip(&[F::Delta(ANY)], t, &data, chunk_size(data.len(), size));
            round_trip(&[F::Delta(ANY), F::Zstd], t, &data, chunk_size(data.len(), size));
        }
    }
    // float32 data read as int32 by the delta filter, then byteshuffled as int32 ... and as
    // uint16, where the byteshuffle must use 2-byte elements.
    let data = walk(3001, 4, &mut rng);
    round_trip(&[F::Delta(0), F::Byteshuffle, F::Zstd], FLOAT32, &data, chunk_size(data.len(), 4));
    round_trip(&[F::Delta(8), F::Byteshuffle, F::Lz4], FLOAT32, &data, chunk_size(data.len(), 4));
    round_trip(&[F::Delta(6), F::Bitshuffle], FLOAT64, &walk(999, 8, &mut rng), 7992);
    // A reinterpret that changes the shuffle's element size really matters: with the wrong
    // element size the tile would not decode to the data.
    let stream = delta_encode(&data, 2);
    assert_ne!(byte_shuffle(&stream, 2), byte_shuffle(&stream, 4));
    let p = pipeline(&[F::Delta(8), F::Byteshuffle]);
    let tile = filter_tile(&[F::Delta(8), F::Byteshuffle], FLOAT32, &data, 12004);
    assert_eq!(unfilter(&p, &tile, FLOAT32, data.len()).unwrap(), data);
}

#[test]
fn double_delta_round_trips_packed_and_raw() {
    let mut rng = Rng::new(13);
    for t in [INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64] {
        let (size, _) = int_of(t);
        for n in [1usize, 2, 3, 13, 64, 65, 1000, 10_000] {
            // Smooth data takes the bit-packed path, random data the raw one.
            let smooth: Vec<u8> = (0..n)
                .flat_map(|i| {
                    let v = (i as u64 * 3 + (rng.next() % 5)) & if size == 8 { u64::MAX >> 2 } else { u64::MAX };
                    v.to_le_bytes()[..size].to_vec()
                })
                .collect();
            let random = if size == 8 {
                // keep int64 deltas in range of libtiledb's checked arithmetic
                (0..n).flat_map(|_| ((rng.next() >> 3) as i64 - (1 << 59)).to_le_bytes()).collect()
            } else {
                rng.bytes(n * size)
            };
            for data in [smooth, random] {
                let chunk = chunk_size(data.len(), size);
                round_trip(&[F::DoubleDelta(ANY)], t, &data, chunk);
                round_trip(&[F::DoubleDelta(ANY), F::Lz4], t, &data, chunk);
            }
        }
    }
    // Both paths are really taken.
    let smooth: Vec<u8> = (0..100i32).flat_map(|i| (i * 5).to_le_bytes()).collect();
    let tile = filter_tile(&[F::DoubleDelta(ANY)], INT32, &smooth, 400);
    let bitsize = tile[8 + 12 + 16];
    assert!(bitsize < 31, "packed path, bitsize {bitsize}");
    assert!(tile.len() < 200);
    let random = Rng::new(5).bytes(400);
    let tile = filter_tile(&[F::DoubleDelta(ANY)], INT32, &random, 400);
    assert!(tile[8 + 12 + 16] >= 31, "raw path");
    // Records spanning word boundaries: 7-bit records (bitsize 6) over 64-bit words.
    let data: Vec<u8> = (0..500i64).flat_map(|i| (i * i % 61).to_le_bytes()).collect();
    round_trip(&[F::DoubleDelta(ANY)], INT64, &data, data.len());
    // Float data reinterpreted as int32.
    round_trip(&[F::DoubleDelta(0), F::Zstd], FLOAT32, &walk(777, 4, &mut rng), 3108);
}

#[test]
fn positive_delta_round_trips_and_passes_floats_through() {
    let mut rng = Rng::new(14);
    for t in [INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64] {
        let size = datatype_size(t).unwrap();
        for n in [1usize, 5, 13, 300, 5000] {
            // non-decreasing values
            let mut v = 0u64;
            let data: Vec<u8> = (0..n)
                .flat_map(|_| {
                    v += rng.next() % 3;
                    v.to_le_bytes()[..size].to_vec()
                })
                .collect();
            for window in [8u32, 64, 1000, 65536] {
                round_trip(&[F::PositiveDelta(window)], t, &data, chunk_size(data.len(), size));
                round_trip(&[F::PositiveDelta(window), F::Zstd], t, &data, chunk_size(data.len(), size));
            }
        }
    }
    // Floats pass through untouched (no metadata).
    let data = walk(100, 4, &mut rng);
    let tile = filter_tile(&[F::PositiveDelta(64)], FLOAT32, &data, 400);
    assert_eq!(&tile[20..], &data[..]);
    round_trip(&[F::PositiveDelta(64), F::Lz4], FLOAT64, &walk(100, 8, &mut rng), 800);
    // Tiny windows make metadata larger than the data.
    let data: Vec<u8> = (0..=255u8).collect();
    round_trip(&[F::PositiveDelta(1), F::Zstd], UINT8, &data, 256);
}

#[test]
fn checksums_round_trip_in_every_position() {
    let mut rng = Rng::new(15);
    let data = walk(30_000, 4, &mut rng);
    let chunk = chunk_size(data.len(), 4);
    for filters in [
        &[F::Md5][..],
        &[F::Sha256],
        &[F::Md5, F::Zstd, F::Sha256],
        &[F::Byteshuffle, F::Md5, F::Zstd],
        &[F::Bitshuffle, F::Sha256, F::Lz4, F::Md5],
        &[F::Delta(ANY), F::Byteshuffle, F::Sha256, F::Gzip],
        &[F::PositiveDelta(128), F::Md5, F::Zstd, F::Sha256],
    ] {
        round_trip(filters, UINT32, &data, chunk);
    }
}

#[test]
fn long_pipelines_round_trip() {
    let mut rng = Rng::new(16);
    let data = walk(50_000, 2, &mut rng);
    let chunk = chunk_size(data.len(), 2);
    round_trip(
        &[F::None, F::PositiveDelta(4096), F::DoubleDelta(ANY), F::Bitshuffle, F::Md5, F::Zstd, F::Gzip, F::Sha256],
        INT16,
        &data,
        chunk,
    );
    round_trip(&[F::Zstd, F::Zstd], INT16, &data, chunk);
    round_trip(&[F::Lz4, F::Byteshuffle, F::Zstd], INT16, &data, chunk);
}

#[test]
fn empty_pipelines_copy_chunks() {
    let data = walk(40_000, 4, &mut Rng::new(17));
    round_trip(&[], FLOAT32, &data, 65536);
    round_trip(&[], FLOAT32, &data, data.len());
    // An empty tile.
    let p = pipeline(&[F::Zstd]);
    assert_eq!(unfilter(&p, &0u64.to_le_bytes(), FLOAT32, 0).unwrap(), Vec::<u8>::new());
}

// ---------------------------------------------------------------------------------------------
// Corruption: always Corrupt, never a panic
// ---------------------------------------------------------------------------------------------

/// Every truncation, and every single-byte flip at a sample of positions, of a tile: must be
/// an error or (for flips inside compressed data without checksums) some output, never a panic.
fn mangle_all(filters: &[F], cell: CellType, data: &[u8], chunk: usize) {
    let p = pipeline(filters);
    let tile = filter_tile(filters, cell, data, chunk);
    for cut in 0..tile.len() {
        let m = is_corrupt(unfilter(&p, &tile[..cut], cell, data.len()));
        assert!(!m.is_empty());
    }
    let mut longer = tile.clone();
    longer.push(0);
    assert!(is_corrupt(unfilter(&p, &longer, cell, data.len())).contains("left after"));
    let step = (tile.len() / 400).max(1);
    for pos in (0..tile.len()).step_by(step) {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut bad = tile.clone();
            bad[pos] ^= x;
            match unfilter(&p, &bad, cell, data.len()) {
                Ok(out) => assert!(pos >= 8, "chunk count flip at {pos} decoded to {} bytes", out.len()),
                Err(FormatError::Corrupt(_)) => {}
                Err(e) => panic!("flip at {pos}: {e:?}"),
            }
        }
    }
}

#[test]
fn truncated_and_flipped_tiles_never_panic() {
    let mut rng = Rng::new(18);
    let data = walk(3000, 4, &mut rng);
    for filters in [
        &[F::Zstd][..],
        &[F::Lz4],
        &[F::Gzip],
        &[F::Byteshuffle, F::Zstd],
        &[F::Bitshuffle, F::Lz4],
        &[F::Delta(ANY), F::Zstd],
        &[F::DoubleDelta(ANY)],
        &[F::PositiveDelta(256)],
        &[F::Md5, F::Zstd, F::Sha256],
        &[],
    ] {
        mangle_all(filters, INT32, &data, 4000);
    }
}

#[test]
fn flipped_bytes_in_checksummed_tiles_are_corrupt() {
    let data = walk(5000, 4, &mut Rng::new(19));
    for filters in [&[F::Md5][..], &[F::Sha256], &[F::Md5, F::Zstd, F::Sha256], &[F::Byteshuffle, F::Sha256]] {
        let p = pipeline(filters);
        let tile = filter_tile(filters, FLOAT32, &data, 8000);
        for pos in (8..tile.len()).step_by(37) {
            let mut bad = tile.clone();
            bad[pos] ^= 0x10;
            let m = is_corrupt(unfilter(&p, &bad, FLOAT32, data.len()));
            assert!(m.contains("chunk") || m.contains("filtered tile"), "{m}");
        }
        // The data checksum names the filter; without verification the flip goes unnoticed.
        let last = tile.len() - 1;
        let mut bad = tile.clone();
        bad[last] ^= 1;
        if filters.len() == 1 {
            let m = is_corrupt(unfilter(&p, &bad, FLOAT32, data.len()));
            assert!(m.contains("checksum mismatch") && m.contains(filters[0].name()), "{m}");
            let mut out = vec![0u8; data.len()];
            p.unfilter_tile(&bad, FLOAT32, &mut out, false).unwrap();
            assert_ne!(out, data);
        }
    }
}

impl F {
    fn name(self) -> &'static str {
        match self {
            F::Md5 => "md5",
            F::Sha256 => "sha256",
            _ => "other",
        }
    }
}

#[test]
fn wrong_chunk_counts_and_sizes_are_corrupt() {
    let data = walk(40_000, 4, &mut Rng::new(20));
    let p = pipeline(&[F::Zstd]);
    let tile = filter_tile(&[F::Zstd], FLOAT32, &data, 65536);
    assert_eq!(u64::from_le_bytes(tile[..8].try_into().unwrap()), 3);
    for n in [0u64, 1, 2, 4, 1 << 40, u64::MAX] {
        let mut bad = tile.clone();
        bad[..8].copy_from_slice(&n.to_le_bytes());
        is_corrupt(unfilter(&p, &bad, FLOAT32, data.len()));
    }
    // Output of the wrong size.
    assert!(is_corrupt(unfilter(&p, &tile, FLOAT32, data.len() - 4)).contains("ends past"));
    assert!(is_corrupt(unfilter(&p, &tile, FLOAT32, data.len() + 4)).contains("unfilter to"));
    // Oversized lengths in the chunk header and the compression metadata.
    for off in [8usize, 12, 16, 20, 24, 28, 32] {
        for v in [u32::MAX, 0x8000_0000, 65537] {
            let mut bad = tile.clone();
            bad[off..off + 4].copy_from_slice(&v.to_le_bytes());
            is_corrupt(unfilter(&p, &bad, FLOAT32, data.len()));
        }
    }
}

#[test]
fn oversized_metadata_claims_are_refused_before_allocating() {
    // A chunk of 16 bytes whose zstd metadata claims a 4 GiB metadata part: refused by size.
    let mut md = hex("01000000 01000000");
    md.extend_from_slice(&u32::MAX.to_le_bytes());
    md.extend_from_slice(&1u32.to_le_bytes());
    md.extend_from_slice(&16u32.to_le_bytes());
    md.extend_from_slice(&1u32.to_le_bytes());
    let mut tile = 1u64.to_le_bytes().to_vec();
    tile.extend_from_slice(&16u32.to_le_bytes());
    tile.extend_from_slice(&2u32.to_le_bytes());
    tile.extend_from_slice(&(md.len() as u32).to_le_bytes());
    tile.extend(md);
    tile.extend([0, 0]);
    // As an intermediate stage (zstd after byteshuffle) and as the only filter.
    for filters in [&[F::Byteshuffle, F::Zstd][..], &[F::Zstd]] {
        let m = is_corrupt(unfilter(&pipeline(filters), &tile, FLOAT32, 16));
        assert!(m.contains("too large"), "{m}");
    }
    // Shuffle and checksum part tables that run past the data.
    for (f, md) in [
        (F::Byteshuffle, hex("01000000 ffffffff")),
        (F::Bitshuffle, hex("ffffff0f")),
        (F::PositiveDelta(64), hex("01000000 00000000 ffffffff")),
        (F::Md5, hex("00000000 01000000 ffffffffffffffff 00000000000000000000000000000000")),
        (F::Sha256, hex("ffffffff ffffffff")),
    ] {
        let mut tile = 1u64.to_le_bytes().to_vec();
        tile.extend_from_slice(&16u32.to_le_bytes());
        tile.extend_from_slice(&16u32.to_le_bytes());
        tile.extend_from_slice(&(md.len() as u32).to_le_bytes());
        tile.extend(md);
        tile.extend([7u8; 16]);
        is_corrupt(unfilter(&pipeline(&[f]), &tile, INT32, 16));
    }
}

#[test]
fn metadata_left_over_or_missing_is_corrupt() {
    let data = walk(100, 4, &mut Rng::new(21));
    // Byteshuffle metadata followed by stray bytes (md_len grown, data shifted into it).
    let p = pipeline(&[F::Byteshuffle]);
    let tile = filter_tile(&[F::Byteshuffle], INT32, &data, 400);
    let mut bad = tile[..20].to_vec();
    bad[16..20].copy_from_slice(&12u32.to_le_bytes());
    bad.extend_from_slice(&tile[20..28]);
    bad.extend([0, 0, 0, 0]);
    bad.extend_from_slice(&tile[28..]);
    assert!(is_corrupt(unfilter(&p, &bad, INT32, 400)).contains("metadata bytes left"));
    // Metadata on a chunk of an empty pipeline.
    let mut tile = 1u64.to_le_bytes().to_vec();
    tile.extend_from_slice(&4u32.to_le_bytes());
    tile.extend_from_slice(&4u32.to_le_bytes());
    tile.extend_from_slice(&1u32.to_le_bytes());
    tile.extend([9, 1, 2, 3, 4]);
    is_corrupt(unfilter(&pipeline(&[]), &tile, INT32, 4));
    // A delta stream that claims more values than it holds; a double delta with a short body.
    for f in [F::Delta(ANY), F::DoubleDelta(ANY)] {
        let tile = filter_tile(&[f], INT32, &data, 400);
        let mut bad = tile.clone();
        let at = 20 + 16 + if matches!(f, F::Delta(_)) { 0 } else { 1 };
        bad[at..at + 8].copy_from_slice(&101u64.to_le_bytes());
        is_corrupt(unfilter(&pipeline(&[f]), &bad, INT32, 400));
    }
}

#[test]
fn garbage_tiles_never_panic() {
    let mut rng = Rng::new(22);
    let pipelines = [
        pipeline(&[F::Zstd]),
        pipeline(&[F::Byteshuffle, F::Lz4]),
        pipeline(&[F::DoubleDelta(ANY), F::Gzip]),
        pipeline(&[F::PositiveDelta(64), F::Md5, F::Bitshuffle]),
    ];
    for round in 0..3000u32 {
        let len = (rng.next() % 200) as usize;
        let mut tile = rng.bytes(len);
        // Plausible headers half of the time.
        if len >= 20 && round.is_multiple_of(2) {
            tile[..8].copy_from_slice(&1u64.to_le_bytes());
            tile[8..12].copy_from_slice(&64u32.to_le_bytes());
            let rest = (len - 20) as u32;
            let md = (rng.next() as u32) % (rest + 1);
            tile[12..16].copy_from_slice(&(rest - md).to_le_bytes());
            tile[16..20].copy_from_slice(&md.to_le_bytes());
        }
        for p in &pipelines {
            let mut out = vec![0u8; 64];
            let _ = p.unfilter_tile(&tile, INT32, &mut out, round.is_multiple_of(3));
        }
    }
}

#[test]
fn randomly_mutated_tiles_never_panic() {
    // Valid tiles of many pipelines with 1 to 4 random bytes overwritten (debug builds also
    // catch arithmetic overflow here).
    let mut rng = Rng::new(24);
    let smooth: Vec<u8> = (0..600i32).flat_map(|i| (i * 3 + (i % 7)).to_le_bytes()).collect();
    for filters in [
        &[F::Zstd][..],
        &[F::Gzip],
        &[F::Lz4],
        &[F::Byteshuffle, F::Lz4],
        &[F::Bitshuffle, F::Zstd],
        &[F::Delta(ANY), F::Lz4],
        &[F::Delta(7)],
        &[F::DoubleDelta(ANY)],
        &[F::DoubleDelta(1), F::Byteshuffle],
        &[F::PositiveDelta(64), F::Md5],
        &[F::Md5, F::Zstd, F::Sha256],
    ] {
        let p = pipeline(filters);
        let tile = filter_tile(filters, INT32, &smooth, 1200);
        for _ in 0..400 {
            let mut bad = tile.clone();
            for _ in 0..1 + rng.next() % 4 {
                let pos = (rng.next() % bad.len() as u64) as usize;
                bad[pos] = match rng.next() % 4 {
                    0 => 0,
                    1 => 0xFF,
                    _ => rng.next() as u8,
                };
            }
            let mut out = vec![0u8; smooth.len()];
            match p.unfilter_tile(&bad, INT32, &mut out, rng.next().is_multiple_of(2)) {
                Ok(()) | Err(FormatError::Corrupt(_)) => {}
                Err(e) => panic!("{filters:?}: {e:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures written by libtiledb 2.30 (tests/fixtures/filters/make.py)
// ---------------------------------------------------------------------------------------------

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/filters")
}

#[test]
fn libtiledb_fixtures_decode_bit_for_bit() {
    let dir = fixture_dir();
    let manifest = std::fs::read_to_string(dir.join("cases.txt")).expect("fixture manifest");
    let mut n = 0;
    for line in manifest.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        // name dtype expected_filters
        let mut f = line.split_whitespace();
        let name = f.next().unwrap();
        let dtype: u8 = f.next().unwrap().parse().unwrap();
        let names: Vec<&str> = f.next().unwrap().split('+').filter(|s| *s != "-").collect();
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
        let pbytes = read("pipeline");
        let mut r = Reader::new(&pbytes, "fixture pipeline");
        let p = Pipeline::parse(&mut r).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.remaining(), 0, "{name}");
        assert_eq!(p.filter_names(), names, "{name}");
        let tile = read("tile");
        let mut expected = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&read("expected.zlib")[..]), &mut expected)
            .unwrap();
        let got = unfilter(&p, &tile, CellType(dtype), expected.len()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == expected, "{name}: decoded bytes differ");
        n += 1;
    }
    assert!(n >= 20, "only {n} fixtures");
}

#[test]
fn libtiledb_fixture_generic_tile_decodes() {
    // The array schema generic tile of one fixture: header, GZIP pipeline, chunked tile.
    let dir = fixture_dir();
    let gt = std::fs::read(dir.join("schema.gt")).unwrap();
    let expected = std::fs::read(dir.join("schema.payload")).unwrap();
    let mut r = Reader::new(&gt, "generic tile");
    assert_eq!(r.u32().unwrap(), 22);
    let persisted = r.u64().unwrap() as usize;
    let tile_size = r.u64().unwrap() as usize;
    assert_eq!(r.u8().unwrap(), 4);
    r.skip(8).unwrap();
    assert_eq!(r.u8().unwrap(), 0);
    let psize = r.u32().unwrap() as usize;
    let start = r.position();
    let p = Pipeline::parse(&mut r).unwrap();
    assert_eq!(r.position() - start, psize);
    assert_eq!(p.filters(), &[Filter::Compression { codec: Codec::Gzip, level: 1, reinterpret: CellType::ANY }]);
    let data = r.take(persisted).unwrap();
    assert_eq!(r.remaining(), 0);
    let mut out = vec![0u8; tile_size];
    p.unfilter_tile(data, CellType::CHAR, &mut out, true).unwrap();
    assert_eq!(out, expected);
}

// ---------------------------------------------------------------------------------------------
// Speed (release): cargo test -p radiobject-core --release --lib filter::tests::speed -- --ignored --nocapture
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore]
fn speed() {
    use std::time::Instant;
    let mut rng = Rng::new(23);
    let n = 262_144;
    // smooth float32 data, as in an MR volume
    let data: Vec<u8> =
        (0..n).flat_map(|i| ((i as f32 * 0.01).sin() * 1000.0 + (rng.next() % 16) as f32).to_le_bytes()).collect();
    let best = |f: &mut dyn FnMut()| {
        let mut b = f64::MAX;
        for _ in 0..30 {
            let t = Instant::now();
            f();
            b = b.min(t.elapsed().as_secs_f64());
        }
        b * 1e3
    };
    let mut out = vec![0u8; data.len()];
    for (label, filters) in [
        ("zstd", &[F::Zstd][..]),
        ("lz4", &[F::Lz4]),
        ("byteshuffle+zstd", &[F::Byteshuffle, F::Zstd]),
        ("bitshuffle+lz4", &[F::Bitshuffle, F::Lz4]),
    ] {
        let p = pipeline(filters);
        let tile = filter_tile(filters, FLOAT32, &data, 65536);
        let par = best(&mut || p.unfilter_tile(&tile, FLOAT32, &mut out, true).unwrap());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let seq = pool.install(|| best(&mut || p.unfilter_tile(&tile, FLOAT32, &mut out, true).unwrap()));
        assert!(out == data);
        // raw zstd on the same chunks, for comparison
        let frames: Vec<Vec<u8>> = data.chunks(65536).map(|c| zstd::bulk::compress(c, 3).unwrap()).collect();
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let raw = best(&mut || {
            for (f, o) in frames.iter().zip(out.chunks_mut(65536)) {
                d.decompress_to_buffer(f, o).unwrap();
            }
        });
        println!(
            "1 MiB float32 tile, 16 chunks, {label:18}: {par:.3} ms on {} threads, {seq:.3} ms on 1 (raw zstd, 1 thread: {raw:.3} ms)",
            rayon::current_num_threads()
        );
    }
    let shuffled = byte_shuffle(&data, 4);
    let t = best(&mut || shuffle::byte_unshuffle(&shuffled, &mut out, 4).unwrap());
    assert!(out == data);
    println!("byteshuffle unshuffle 1 MiB float32: {t:.3} ms ({:.1} GB/s)", 1.048576 / t);
    let shuffled = bit_shuffle_part(&data, 4);
    let t = best(&mut || shuffle::bit_unshuffle_part(&shuffled, &mut out, 4).unwrap());
    assert!(out == data);
    println!("bitshuffle unshuffle 1 MiB float32: {t:.3} ms ({:.1} GB/s)", 1.048576 / t);
    for ts in [1usize, 2, 8] {
        let shuffled = bit_shuffle_part(&data, ts);
        let t = best(&mut || shuffle::bit_unshuffle_part(&shuffled, &mut out, ts).unwrap());
        assert!(out == data);
        println!("bitshuffle unshuffle 1 MiB, {ts}-byte elements: {t:.3} ms");
        let shuffled = byte_shuffle(&data, ts);
        let t = best(&mut || shuffle::byte_unshuffle(&shuffled, &mut out, ts).unwrap());
        assert!(out == data);
        println!("byteshuffle unshuffle 1 MiB, {ts}-byte elements: {t:.3} ms");
    }
}
