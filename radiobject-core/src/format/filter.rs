//! Filter pipelines (§3.2) and reversing them on filtered tiles (§3.3, §3.4).
//!
//! A filtered tile is a list of independent chunks. Each chunk goes back through the pipeline
//! from the last filter to the first: every filter takes its own header from the front of the
//! chunk's metadata and hands the rest (or, for compressors, the decompressed metadata of the
//! filters before it) to the previous one. The first filter writes straight into the caller's
//! output, so a pipeline of one compressor decompresses each chunk in place with no copy.
//!
//! Every length read from storage is checked against the bytes at hand or the chunk's size
//! before it slices or sizes an allocation; anything that disagrees is
//! [`FormatError::Corrupt`] naming the chunk and the filter.

use std::cell::RefCell;

use rayon::prelude::*;

use super::bytes::Reader;
use super::shuffle;
use super::{CellType, FormatError};

/// A compressor of a compression filter (the `Compressor` byte of its options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A zlib stream (compressor 1).
    Gzip,
    /// A zstd frame (compressor 2).
    Zstd,
    /// A raw LZ4 block (compressor 3).
    Lz4,
    /// TileDB's double-delta encoding (compressor 6).
    DoubleDelta,
    /// TileDB's delta encoding (compressor 8).
    Delta,
}

impl Codec {
    /// Lower-case name, as in libtiledb's filter names.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::DoubleDelta => "double_delta",
            Codec::Delta => "delta",
        }
    }

    /// Whether the codec works on typed values (and so honours a reinterpret type).
    fn is_delta(self) -> bool {
        matches!(self, Codec::Delta | Codec::DoubleDelta)
    }
}

/// One filter of a pipeline, as far as reversing it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `NONE` (0), or a compression filter whose compressor is `NONE`: data passes unchanged.
    None,
    /// A compression filter: GZIP (1), ZSTD (2), LZ4 (3), DOUBLE_DELTA (6) or DELTA (19). As in
    /// libtiledb the codec is the compressor byte of the options.
    Compression {
        /// The compressor.
        codec: Codec,
        /// Compression level (unused when decoding).
        level: i32,
        /// Type the delta codecs read the data as; [`CellType::ANY`] for the filter's input type.
        reinterpret: CellType,
    },
    /// BITSHUFFLE (8).
    Bitshuffle,
    /// BYTESHUFFLE (9).
    Byteshuffle,
    /// POSITIVE_DELTA (10).
    PositiveDelta {
        /// Window size in bytes (unused when decoding).
        max_window: u32,
    },
    /// CHECKSUM_MD5 (12).
    Md5,
    /// CHECKSUM_SHA256 (13).
    Sha256,
}

impl Filter {
    /// Lower-case name, as in libtiledb's filter names.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::Compression { codec, .. } => codec.name(),
            Filter::Bitshuffle => "bitshuffle",
            Filter::Byteshuffle => "byteshuffle",
            Filter::PositiveDelta { .. } => "positive_delta",
            Filter::Md5 => "md5",
            Filter::Sha256 => "sha256",
        }
    }

    /// The type the next filter sees when this one gets `input` (`Filter::output_datatype`):
    /// only the delta codecs with a reinterpret type change it (compression_filter.cc:729).
    pub fn output_type(&self, input: CellType) -> CellType {
        match *self {
            Filter::Compression { codec, reinterpret, .. } if codec.is_delta() && reinterpret != CellType::ANY => {
                reinterpret
            }
            _ => input,
        }
    }

    /// Parses one filter from its type and option bytes (filter_create.cc:100).
    fn parse(ftype: u8, opts: &[u8]) -> Result<Filter, FormatError> {
        let name = match filter_type_name(ftype) {
            Ok(n) => n,
            Err(unsupported) => return Err(FormatError::unsupported(unsupported)),
        };
        let bad = |e: FormatError| match e {
            FormatError::Corrupt(m) => FormatError::corrupt(format!("filter {name}: {m}")),
            other => other,
        };
        let mut o = Reader::new(opts, "filter options");
        Ok(match ftype {
            0 => Filter::None,
            1 | 2 | 3 | 6 | 19 => {
                let compressor = o.u8().map_err(bad)?;
                let level = o.i32().map_err(bad)?;
                // Format >= 19 (DELTA) / >= 20 (DOUBLE_DELTA) add the reinterpret type; older
                // pipelines have 5 option bytes.
                let reinterpret = if matches!(ftype, 6 | 19) && o.remaining() > 0 {
                    CellType(o.u8().map_err(bad)?)
                } else {
                    CellType::ANY
                };
                let codec = match compressor {
                    0 => return Ok(Filter::None),
                    1 => Codec::Gzip,
                    2 => Codec::Zstd,
                    3 => Codec::Lz4,
                    6 => Codec::DoubleDelta,
                    8 => Codec::Delta,
                    4 => return Err(FormatError::unsupported(format!("filter {name} with compressor RLE"))),
                    5 => return Err(FormatError::unsupported(format!("filter {name} with compressor BZIP2"))),
                    7 => {
                        return Err(FormatError::unsupported(format!("filter {name} with compressor DICTIONARY")));
                    }
                    c => return Err(FormatError::unsupported(format!("filter {name} with unknown compressor {c}"))),
                };
                if codec.is_delta() && reinterpret != CellType::ANY {
                    delta_value_size(reinterpret)
                        .map_err(|why| FormatError::unsupported(format!("filter {name}: reinterpret type: {why}")))?;
                }
                Filter::Compression { codec, level, reinterpret }
            }
            8 => Filter::Bitshuffle,
            9 => Filter::Byteshuffle,
            10 => Filter::PositiveDelta { max_window: o.u32().map_err(bad)? },
            12 => Filter::Md5,
            13 => Filter::Sha256,
            _ => return Err(FormatError::unsupported(format!("filter {name}"))),
        })
    }
}

/// The name of a filter type this reader reverses, or the reason it does not.
fn filter_type_name(ftype: u8) -> Result<&'static str, String> {
    Ok(match ftype {
        0 => "none",
        1 => "gzip",
        2 => "zstd",
        3 => "lz4",
        6 => "double_delta",
        8 => "bitshuffle",
        9 => "byteshuffle",
        10 => "positive_delta",
        12 => "md5",
        13 => "sha256",
        19 => "delta",
        4 => return Err("filter RLE".into()),
        5 => return Err("filter BZIP2".into()),
        7 => return Err("filter BIT_WIDTH_REDUCTION".into()),
        11 => return Err("filter AES_256_GCM".into()),
        14 => return Err("filter DICTIONARY".into()),
        15 => return Err("filter SCALE_FLOAT".into()),
        16 => return Err("filter XOR".into()),
        18 => return Err("filter WEBP".into()),
        t => return Err(format!("unknown filter type {t}")),
    })
}

/// `datatype_size` (enums/datatype.h) for every datatype code libtiledb 2.30 knows.
fn datatype_size(t: CellType) -> Option<usize> {
    Some(match t.0 {
        4 | 5 | 6 | 11 | 12 | 17 | 40..=43 => 1,
        7 | 8 | 13 | 15 => 2,
        0 | 2 | 9 | 14 | 16 => 4,
        1 | 3 | 10 | 18..=39 => 8,
        _ => return None,
    })
}

/// Value size the delta codecs use for `t` (delta_compressor.cc / dd_compressor.cc `decompress`
/// switch: strings and `ANY` are bytes, floats are refused).
fn delta_value_size(t: CellType) -> Result<usize, String> {
    if t.is_float() {
        return Err(format!("float datatype {}", t.0));
    }
    datatype_size(t).ok_or_else(|| format!("unknown datatype {}", t.0))
}

/// Value size positive delta decodes `t` with, or `None` where it passes data through
/// (positive_delta_filter.cc `run_reverse`: floats, `CHAR`, strings and `ANY`). Date and time
/// types are decoded as `int64`, which is what format versions >= 20 wrote.
fn positive_delta_size(t: CellType) -> Option<usize> {
    match t.0 {
        5 | 6 | 40..=43 => Some(1),
        7 | 8 => Some(2),
        0 | 9 => Some(4),
        1 | 10 | 18..=39 => Some(8),
        _ => None,
    }
}

/// One parsed filter pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// `max_chunk_size` as stored (0 = the writer did not chunk tiles).
    pub max_chunk_size: u32,
    filters: Vec<Filter>,
}

/// A hash checked by a checksum filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Md5,
    Sha256,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha256 => 32,
        }
    }

    fn matches(self, bytes: &[u8], digest: &[u8]) -> bool {
        match self {
            Hash::Md5 => <md5::Md5 as md5::Digest>::digest(bytes).as_slice() == digest,
            Hash::Sha256 => <sha2::Sha256 as sha2::Digest>::digest(bytes).as_slice() == digest,
        }
    }
}

/// A filter resolved against its input type: what reversing it does to a chunk.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Data and metadata pass unchanged.
    Pass(&'static str),
    /// Compression filter; `value` is the delta codecs' value size.
    Decompress {
        codec: Codec,
        value: usize,
    },
    Byteshuffle {
        ts: usize,
    },
    Bitshuffle {
        ts: usize,
    },
    PositiveDelta {
        value: usize,
    },
    Checksum(Hash),
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Pass(n) => n,
            Step::Decompress { codec, .. } => codec.name(),
            Step::Byteshuffle { .. } => "byteshuffle",
            Step::Bitshuffle { .. } => "bitshuffle",
            Step::PositiveDelta { .. } => "positive_delta",
            Step::Checksum(Hash::Md5) => "md5",
            Step::Checksum(Hash::Sha256) => "sha256",
        }
    }
}

/// One chunk of a filtered tile, as stored.
struct Chunk<'a> {
    metadata: &'a [u8],
    data: &'a [u8],
}

impl Pipeline {
    /// Parses a serialized pipeline at the reader's position (filter_pipeline.cc:544): `u32
    /// max_chunk_size`, `u32` filter count, then per filter `u8` type, `u32` option length and
    /// the options, of which exactly the stated length is skipped.
    ///
    /// A filter this reader cannot reverse is [`FormatError::Unsupported`] naming it; the reader
    /// has then still consumed the whole pipeline, so the caller can go on parsing what follows.
    /// Bytes that do not parse are [`FormatError::Corrupt`].
    pub fn parse(r: &mut Reader<'_>) -> Result<Pipeline, FormatError> {
        let max_chunk_size = r.u32()?;
        // Every filter takes at least 5 bytes, which bounds the count by the bytes left.
        let n = r.len_u32(5)?;
        let mut filters = Vec::with_capacity(n);
        let mut unsupported = None;
        for i in 0..n {
            let ftype = r.u8()?;
            let olen = r.len_u32(1).map_err(|e| at_filter(e, i))?;
            let opts = r.take(olen)?;
            match Filter::parse(ftype, opts) {
                Ok(f) => filters.push(f),
                Err(FormatError::Unsupported(why)) => {
                    unsupported.get_or_insert(why);
                }
                Err(e) => return Err(at_filter(e, i)),
            }
        }
        match unsupported {
            Some(why) => Err(FormatError::Unsupported(why)),
            None => Ok(Pipeline { max_chunk_size, filters }),
        }
    }

    /// A pipeline of these filters (first filter first, as the writer applies them).
    pub fn new(max_chunk_size: u32, filters: Vec<Filter>) -> Pipeline {
        Pipeline { max_chunk_size, filters }
    }

    /// Whether the pipeline has no filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters, first (applied first when writing) to last.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// The filters' names, first to last (e.g. `["byteshuffle", "zstd"]`).
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(Filter::name).collect()
    }

    /// Resolves every filter against the type it sees, the attribute type changed by the
    /// filters before it (§3.2, `FilterPipeline::deserialize`).
    fn steps(&self, cell: CellType) -> Result<Vec<Step>, FormatError> {
        let mut t = cell;
        let mut steps = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            let sized = |what: &str| {
                datatype_size(t)
                    .ok_or_else(|| FormatError::unsupported(format!("filter {what} on unknown datatype {}", t.0)))
            };
            steps.push(match *f {
                Filter::None => Step::Pass("none"),
                Filter::Compression { codec, reinterpret, .. } => {
                    let value = if codec.is_delta() {
                        let vt = if reinterpret == CellType::ANY { t } else { reinterpret };
                        delta_value_size(vt)
                            .map_err(|why| FormatError::unsupported(format!("filter {}: {why}", codec.name())))?
                    } else {
                        1
                    };
                    Step::Decompress { codec, value }
                }
                Filter::Byteshuffle => Step::Byteshuffle { ts: sized("byteshuffle")? },
                Filter::Bitshuffle => Step::Bitshuffle { ts: sized("bitshuffle")? },
                Filter::PositiveDelta { .. } => match positive_delta_size(t) {
                    Some(value) => Step::PositiveDelta { value },
                    None => Step::Pass("positive_delta"),
                },
                Filter::Md5 => Step::Checksum(Hash::Md5),
                Filter::Sha256 => Step::Checksum(Hash::Sha256),
            });
            t = f.output_type(t);
        }
        Ok(steps)
    }

    /// Reverses the pipeline on one filtered tile: `data` is the tile as stored (the `u64` chunk
    /// count, then each chunk's header, metadata and data, consumed exactly), `out` receives the
    /// unfiltered tile and must have exactly its size. `cell` is the attribute's type (the input
    /// type of the first filter). Chunks decode in parallel on the current rayon pool when there
    /// are several. Checksum filters are verified when `verify_checksums`.
    ///
    /// Filters that cannot apply to `cell` (a delta codec on floats, a shuffle of an unknown
    /// type) are [`FormatError::Unsupported`]; anything wrong with the bytes is
    /// [`FormatError::Corrupt`] naming the chunk and the filter.
    pub fn unfilter_tile(
        &self,
        data: &[u8],
        cell: CellType,
        out: &mut [u8],
        verify_checksums: bool,
    ) -> Result<(), FormatError> {
        let steps = self.steps(cell)?;
        let chunks = parse_chunks(data, out.len())?;
        let n = chunks.len();
        let mut jobs = Vec::with_capacity(n);
        let mut rest: &mut [u8] = out;
        for (i, (orig, chunk)) in chunks.into_iter().enumerate() {
            if orig > rest.len() {
                return Err(FormatError::corrupt("filtered tile: chunk sizes exceed the tile"));
            }
            let (head, tail) = rest.split_at_mut(orig);
            rest = tail;
            jobs.push((i, chunk, head));
        }
        let run = |(i, chunk, dst): (usize, Chunk<'_>, &mut [u8])| {
            decode_chunk(&steps, chunk, dst, verify_checksums)
                .map_err(|e| FormatError::Corrupt(format!("filtered tile chunk {i} of {n}: {e}")))
        };
        if jobs.len() <= 1 || !crate::sync::on_pool() {
            jobs.into_iter().try_for_each(run)
        } else {
            jobs.into_par_iter().try_for_each(run)
        }
    }
}

fn at_filter(e: FormatError, i: usize) -> FormatError {
    match e {
        FormatError::Corrupt(m) => FormatError::Corrupt(format!("filter pipeline, filter {i}: {m}")),
        other => other,
    }
}

/// Splits a filtered tile into its chunks (§3.3) and checks that they tile `expected` bytes and
/// use up `data` exactly. Returns each chunk's unfiltered size with its bytes.
fn parse_chunks(data: &[u8], expected: usize) -> Result<Vec<(usize, Chunk<'_>)>, FormatError> {
    let mut r = Reader::new(data, "filtered tile");
    // Each chunk has a 12-byte header, which bounds the count by the bytes left.
    let n = r.len_u64(12)?;
    let mut chunks = Vec::with_capacity(n);
    let mut total: usize = 0;
    for i in 0..n {
        let at = |e: FormatError| match e {
            FormatError::Corrupt(m) => FormatError::Corrupt(format!("chunk {i} of {n}: {m}")),
            other => other,
        };
        let orig = r.u32().map_err(at)? as usize;
        let filtered = r.u32().map_err(at)? as usize;
        let md_len = r.u32().map_err(at)? as usize;
        let metadata = r.take(md_len).map_err(at)?;
        let data = r.take(filtered).map_err(at)?;
        total = total.checked_add(orig).filter(|t| *t <= expected).ok_or_else(|| {
            FormatError::corrupt(format!(
                "filtered tile: chunk {i} of {n} ends past the {expected} bytes of the unfiltered tile"
            ))
        })?;
        chunks.push((orig, Chunk { metadata, data }));
    }
    if r.remaining() != 0 {
        return Err(FormatError::corrupt(format!("filtered tile: {} bytes left after its {n} chunks", r.remaining())));
    }
    if total != expected {
        return Err(FormatError::corrupt(format!(
            "filtered tile: {n} chunks unfilter to {total} bytes, the tile has {expected}"
        )));
    }
    Ok(chunks)
}

/// Thread-local scratch buffers for intermediate filter stages, so a multi-filter pipeline does
/// not allocate (or zero) a buffer per chunk.
mod scratch {
    use std::cell::RefCell;

    /// Buffers kept per thread, and the largest kept.
    const KEEP: usize = 4;
    const KEEP_BYTES: usize = 8 << 20;

    thread_local! {
        static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer of `len` bytes with unspecified contents.
    pub(super) struct Buf {
        v: Vec<u8>,
        len: usize,
    }

    impl Buf {
        pub(super) fn take(len: usize) -> Buf {
            let mut v =
                POOL.try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop())).ok().flatten().unwrap_or_default();
            if v.len() < len {
                v.resize(len, 0);
            }
            Buf { v, len }
        }

        pub(super) fn bytes(&self) -> &[u8] {
            self.v.get(..self.len).unwrap_or(&[])
        }

        pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
            self.v.get_mut(..self.len).unwrap_or(&mut [])
        }
    }

    impl Drop for Buf {
        fn drop(&mut self) {
            let v = std::mem::take(&mut self.v);
            if v.capacity() <= KEEP_BYTES {
                let _ = POOL.try_with(|p| {
                    if let Ok(mut p) = p.try_borrow_mut()
                        && p.len() < KEEP
                    {
                        p.push(v);
                    }
                });
            }
        }
    }
}

use scratch::Buf;

/// A stage's data: the chunk's stored bytes or an earlier stage's output.
enum Data<'a> {
    Stored(&'a [u8]),
    Owned(Buf),
}

impl Data<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Stored(b) => b,
            Data::Owned(b) => b.bytes(),
        }
    }
}

/// A stage's metadata: the chunk's stored metadata or what a compressor decompressed, read
/// from `pos` on.
enum Meta<'a> {
    Stored(&'a [u8]),
    Owned(Vec<u8>),
}

impl Meta<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Meta::Stored(b) => b,
            Meta::Owned(v) => v,
        }
    }
}

/// Largest intermediate buffer (data or metadata of a stage) a chunk of `orig` bytes may need.
/// Compressors and delta codecs grow data by a few bytes at most, but the metadata of a
/// positive-delta filter with a tiny window can be several times the data; this only guards
/// allocations against lengths that no writer produces.
fn stage_cap(orig: usize) -> usize {
    orig.saturating_mul(8).saturating_add(64 << 10)
}

/// Reverses the pipeline on one chunk into `out` (exactly the chunk's unfiltered size).
fn decode_chunk(steps: &[Step], chunk: Chunk<'_>, out: &mut [u8], verify: bool) -> Result<(), String> {
    let cap = stage_cap(out.len());
    let mut md = Meta::Stored(chunk.metadata);
    let mut md_pos = 0usize;
    let mut data = Data::Stored(chunk.data);
    for (i, step) in steps.iter().enumerate().rev() {
        let last = i == 0;
        let cur_md = md.bytes().get(md_pos..).unwrap_or(&[]);
        let ctx = |e: String| format!("filter {i} ({}): {e}", step.name());
        match *step {
            Step::Pass(_) => {}
            Step::Checksum(hash) => {
                md_pos += reverse_checksum(hash, cur_md, data.bytes(), verify).map_err(ctx)?;
            }
            Step::Decompress { codec, value } => {
                let parts = CompressedParts::parse(cur_md, data.bytes().len()).map_err(ctx)?;
                if parts.md_total > cap || (!last && parts.data_total > cap) {
                    return Err(ctx(format!(
                        "parts of {} metadata and {} data bytes are too large for a chunk of {} bytes",
                        parts.md_total,
                        parts.data_total,
                        out.len()
                    )));
                }
                let mut new_md = vec![0u8; parts.md_total];
                let new_data = if last {
                    if parts.data_total != out.len() {
                        return Err(ctx(format!(
                            "decompresses to {} bytes, the chunk has {}",
                            parts.data_total,
                            out.len()
                        )));
                    }
                    parts.decompress(codec, value, data.bytes(), &mut new_md, out).map_err(ctx)?;
                    None
                } else {
                    let mut buf = Buf::take(parts.data_total);
                    parts.decompress(codec, value, data.bytes(), &mut new_md, buf.bytes_mut()).map_err(ctx)?;
                    Some(buf)
                };
                md = Meta::Owned(new_md);
                md_pos = 0;
                if let Some(buf) = new_data {
                    data = Data::Owned(buf);
                }
                continue;
            }
            Step::Byteshuffle { ts } | Step::Bitshuffle { ts } => {
                let bit = matches!(step, Step::Bitshuffle { .. });
                let src = data.bytes();
                let mut buf = None;
                let dst = stage_output(last, out, src.len(), &mut buf).map_err(ctx)?;
                md_pos += reverse_shuffle(bit, ts, cur_md, src, dst).map_err(ctx)?;
                if let Some(buf) = buf {
                    data = Data::Owned(buf);
                }
                continue;
            }
            Step::PositiveDelta { value } => {
                let src = data.bytes();
                let mut buf = None;
                let dst = stage_output(last, out, src.len(), &mut buf).map_err(ctx)?;
                md_pos += reverse_positive_delta(value, cur_md, src, dst).map_err(ctx)?;
                if let Some(buf) = buf {
                    data = Data::Owned(buf);
                }
                continue;
            }
        }
        // Data passed through unchanged.
        if last {
            copy_exact(data.bytes(), out).map_err(ctx)?;
        }
    }
    if steps.is_empty() {
        copy_exact(data.bytes(), out)?;
    }
    let left = md.bytes().len().saturating_sub(md_pos);
    if left != 0 {
        return Err(format!("{left} metadata bytes left after the first filter"));
    }
    Ok(())
}

/// Where a same-size stage writes: `out` for the first filter, a scratch buffer otherwise.
fn stage_output<'o>(
    last: bool,
    out: &'o mut [u8],
    len: usize,
    buf: &'o mut Option<Buf>,
) -> Result<&'o mut [u8], String> {
    if last {
        if len != out.len() {
            return Err(format!("{len} bytes for a chunk of {}", out.len()));
        }
        Ok(out)
    } else {
        Ok(buf.insert(Buf::take(len)).bytes_mut())
    }
}

fn copy_exact(src: &[u8], out: &mut [u8]) -> Result<(), String> {
    if src.len() != out.len() {
        return Err(format!("{} bytes for a chunk of {}", src.len(), out.len()));
    }
    out.copy_from_slice(src);
    Ok(())
}

/// A `u32` from metadata, with the filter's wording on a short read.
fn md_u32(r: &mut Reader<'_>) -> Result<usize, String> {
    r.u32().map(|v| v as usize).map_err(|e| e.to_string())
}

/// The header a compression filter puts in front of the chunk metadata (compression_filter.cc
/// `run_forward`): `u32 n_md_parts, u32 n_data_parts`, then `(u32 orig, u32 compressed)` per
/// part, metadata parts first. It must be all of the metadata, and the compressed sizes must
/// add up to the data.
struct CompressedParts<'m> {
    n_md: usize,
    sizes: &'m [u8],
    md_total: usize,
    data_total: usize,
}

impl<'m> CompressedParts<'m> {
    fn parse(md: &'m [u8], data_len: usize) -> Result<CompressedParts<'m>, String> {
        let mut r = Reader::new(md, "compression metadata");
        let n_md = md_u32(&mut r)?;
        let n_data = md_u32(&mut r)?;
        let sizes_len =
            n_md.checked_add(n_data).and_then(|n| n.checked_mul(8)).filter(|b| *b == r.remaining()).ok_or_else(
                || {
                    format!(
                        "{n_md} metadata and {n_data} data parts need {} header bytes, there are {}",
                        (n_md as u64 + n_data as u64) * 8 + 8,
                        md.len()
                    )
                },
            )?;
        let sizes = r.take(sizes_len).map_err(|e| e.to_string())?;
        let (mut md_total, mut data_total, mut comp_total) = (0usize, 0usize, 0usize);
        for (k, pair) in sizes.chunks_exact(8).enumerate() {
            let (orig, comp) = part_sizes(pair);
            let sum = if k < n_md { &mut md_total } else { &mut data_total };
            *sum = sum.checked_add(orig).ok_or("part sizes overflow")?;
            comp_total = comp_total.checked_add(comp).ok_or("part sizes overflow")?;
        }
        if comp_total != data_len {
            return Err(format!("compressed parts add up to {comp_total} bytes, the data has {data_len}"));
        }
        Ok(CompressedParts { n_md, sizes, md_total, data_total })
    }

    /// Decompresses the metadata parts into `md_out` and the data parts into `data_out`, both
    /// exactly the parts' total size.
    fn decompress(
        &self,
        codec: Codec,
        value: usize,
        src: &[u8],
        md_out: &mut [u8],
        data_out: &mut [u8],
    ) -> Result<(), String> {
        let (mut s, mut m, mut d) = (0usize, 0usize, 0usize);
        for (k, pair) in self.sizes.chunks_exact(8).enumerate() {
            let (orig, comp) = part_sizes(pair);
            let s_end = s.checked_add(comp).filter(|e| *e <= src.len()).ok_or("compressed part past the data")?;
            let input = src.get(s..s_end).ok_or("compressed part past the data")?;
            s = s_end;
            let (what, pos, out) =
                if k < self.n_md { ("metadata", &mut m, &mut *md_out) } else { ("data", &mut d, &mut *data_out) };
            let start = *pos;
            let end = start.checked_add(orig).filter(|e| *e <= out.len()).ok_or("decompressed part past its output")?;
            *pos = end;
            let dst = out.get_mut(start..end).ok_or("decompressed part past its output")?;
            decompress_part(codec, value, input, dst).map_err(|e| {
                let idx = if k < self.n_md { k } else { k - self.n_md };
                format!("{what} part {idx} ({comp} -> {orig} bytes): {e}")
            })?;
        }
        Ok(())
    }
}

fn part_sizes(pair: &[u8]) -> (usize, usize) {
    let mut a = [0u8; 4];
    let mut b = [0u8; 4];
    if let (Some(x), Some(y)) = (pair.get(..4), pair.get(4..8)) {
        a.copy_from_slice(x);
        b.copy_from_slice(y);
    }
    (u32::from_le_bytes(a) as usize, u32::from_le_bytes(b) as usize)
}

thread_local! {
    /// One zstd decompression context per thread, reused across chunks.
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompresses one part into `dst`, which it must fill exactly.
fn decompress_part(codec: Codec, value: usize, src: &[u8], dst: &mut [u8]) -> Result<(), String> {
    let n = match codec {
        Codec::Zstd => zstd_decompress(src, dst)?,
        Codec::Lz4 => lz4_flex::block::decompress_into(src, dst).map_err(|e| format!("lz4: {e}"))?,
        Codec::Gzip => zlib_decompress(src, dst)?,
        Codec::Delta => return delta_decode(src, dst, value),
        Codec::DoubleDelta => return double_delta_decode(src, dst, value),
    };
    if n != dst.len() {
        return Err(format!("decompressed to {n} bytes, expected {}", dst.len()));
    }
    Ok(())
}

fn zstd_decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let fresh = || zstd::bulk::Decompressor::new().map_err(|e| format!("zstd context: {e}"));
    let run = |d: &mut zstd::bulk::Decompressor<'static>, dst: &mut [u8]| {
        d.decompress_to_buffer(src, dst).map_err(|e| format!("zstd: {e}"))
    };
    match ZSTD_DCTX.try_with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return None;
        };
        let d = match slot.as_mut() {
            Some(d) => d,
            None => match fresh() {
                Ok(d) => slot.insert(d),
                Err(e) => return Some(Err(e)),
            },
        };
        Some(run(d, dst))
    }) {
        Ok(Some(r)) => r,
        // No thread-local context available (thread teardown or re-entry): use a fresh one.
        _ => run(&mut fresh()?, dst),
    }
}

/// A zlib stream (gzip_compressor.cc: `inflateInit` + `inflate(Z_FINISH)`), which must end
/// exactly at the end of `src` and fill `dst`.
fn zlib_decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let mut z = flate2::Decompress::new(true);
    let status = z.decompress(src, dst, flate2::FlushDecompress::Finish).map_err(|e| format!("zlib: {e}"))?;
    if status != flate2::Status::StreamEnd {
        return Err(format!(
            "zlib stream does not end within {} bytes of input and {} of output",
            src.len(),
            dst.len()
        ));
    }
    if z.total_in() != src.len() as u64 {
        return Err(format!("zlib stream ends after {} of {} bytes", z.total_in(), src.len()));
    }
    usize::try_from(z.total_out()).map_err(|e| e.to_string())
}

/// Little-endian value of `bytes` (at most 8), zero-extended.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = bytes.len().min(8);
    if let (Some(d), Some(s)) = (a.get_mut(..n), bytes.get(..n)) {
        d.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Writes the low `dst.len()` bytes of `v`, little-endian.
fn put_le(dst: &mut [u8], v: u64) {
    let b = v.to_le_bytes();
    let n = dst.len().min(8);
    if let (Some(d), Some(s)) = (dst.get_mut(..n), b.get(..n)) {
        d.copy_from_slice(s);
    }
}

/// Running wrapping sum of `value`-byte little-endian integers, starting from `start`:
/// `dst[k] = start + src[0] + ... + src[k]` in the value's width.
fn prefix_sum(src: &[u8], dst: &mut [u8], value: usize, start: u64) {
    macro_rules! run {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            let mut acc = start as $t;
            for (s, d) in src.chunks_exact(N).zip(dst.chunks_exact_mut(N)) {
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                acc = acc.wrapping_add(<$t>::from_le_bytes(a));
                d.copy_from_slice(&acc.to_le_bytes());
            }
        }};
    }
    match value {
        1 => run!(u8),
        2 => run!(u16),
        4 => run!(u32),
        _ => run!(u64),
    }
}

/// DELTA (delta_compressor.cc:252): `u64 n`, the first value, then `n - 1` deltas, each in the
/// value's width; values are the wrapping prefix sums.
fn delta_decode(src: &[u8], dst: &mut [u8], value: usize) -> Result<(), String> {
    let mut r = Reader::new(src, "delta stream");
    let n = r.u64().map_err(|e| e.to_string())?;
    let bytes = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(value))
        .ok_or_else(|| format!("delta: {n} values overflow"))?;
    if n == 0 || bytes != dst.len() || r.remaining() != bytes {
        return Err(format!(
            "delta: {n} values of {value} bytes in {} stored bytes for {} output bytes",
            r.remaining(),
            dst.len()
        ));
    }
    prefix_sum(src.get(8..).unwrap_or(&[]), dst, value, 0);
    Ok(())
}

/// DOUBLE_DELTA (dd_compressor.cc:315): `u8 bitsize, u64 n`. When `bitsize >= 8 * value - 1`
/// the values follow verbatim. Otherwise the first one or two values follow, then for each
/// further value a record of one sign bit and `bitsize` magnitude bits, packed from the most
/// significant bit down in little-endian `u64` words; `v[i] = dd + 2 v[i-1] - v[i-2]`.
fn double_delta_decode(src: &[u8], dst: &mut [u8], value: usize) -> Result<(), String> {
    let mut r = Reader::new(src, "double delta stream");
    let bitsize = r.u8().map_err(|e| e.to_string())? as usize;
    let n = r.u64().map_err(|e| e.to_string())?;
    let bytes = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(value))
        .ok_or_else(|| format!("double delta: {n} values overflow"))?;
    if n == 0 || bytes != dst.len() {
        return Err(format!("double delta: {n} values of {value} bytes for {} output bytes", dst.len()));
    }
    let body = src.get(9..).unwrap_or(&[]);
    if bitsize >= value * 8 - 1 {
        if body.len() != dst.len() {
            return Err(format!("double delta: {} stored bytes for {} raw output bytes", body.len(), dst.len()));
        }
        dst.copy_from_slice(body);
        return Ok(());
    }
    let n = dst.len() / value;
    let heads = n.min(2) * value;
    let records = n.saturating_sub(2);
    let rec = bitsize + 1;
    let words = records.checked_mul(rec).map(|bits| bits.div_ceil(64)).ok_or("double delta: record bits overflow")?;
    let expect = words.checked_mul(8).and_then(|w| w.checked_add(heads));
    if expect != Some(body.len()) {
        return Err(format!(
            "double delta: {n} values with {bitsize}-bit deltas need {} bytes, there are {}",
            expect.map_or_else(|| "too many".to_string(), |e| e.saturating_add(9).to_string()),
            src.len()
        ));
    }
    let (head, packed) = body.split_at(heads);
    let (dst_head, dst_rest) = dst.split_at_mut(heads);
    dst_head.copy_from_slice(head);
    if records == 0 {
        return Ok(());
    }
    let mut v2 = le_u64(head.get(..value).unwrap_or(&[]));
    let mut v1 = le_u64(head.get(value..2 * value).unwrap_or(&[]));
    let word = |k: usize| le_u64(packed.get(8 * k..8 * k + 8).unwrap_or(&[]));
    let mag_mask = (1u64 << bitsize) - 1;
    let mut pos = 0usize;
    for d in dst_rest.chunks_exact_mut(value) {
        let (w, off) = (pos / 64, (pos % 64) as u32);
        let pair = ((word(w) as u128) << 64) | word(w + 1) as u128;
        let bits = ((pair << off) >> (128 - rec)) as u64;
        pos += rec;
        let mag = bits & mag_mask;
        let dd = if bits >> bitsize != 0 { mag.wrapping_neg() } else { mag };
        let v = dd.wrapping_add(v1.wrapping_mul(2)).wrapping_sub(v2);
        put_le(d, v);
        v2 = v1;
        v1 = v;
    }
    Ok(())
}

/// BYTESHUFFLE / BITSHUFFLE: `u32 n_parts, u32 part_len[n]`; each part unshuffled on its own.
/// Returns the metadata bytes used.
fn reverse_shuffle(bit: bool, ts: usize, md: &[u8], src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let mut r = Reader::new(md, "shuffle metadata");
    let n = r.len_u32(4).map_err(|e| e.to_string())?;
    let lens = r.take(4 * n).map_err(|e| e.to_string())?;
    let mut pos = 0usize;
    for (k, l) in lens.chunks_exact(4).enumerate() {
        let len = le_u64(l) as usize;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= src.len())
            .ok_or_else(|| format!("part {k} of {len} bytes runs past the {} data bytes", src.len()))?;
        let (Some(s), Some(d)) = (src.get(pos..end), dst.get_mut(pos..end)) else {
            return Err(format!("part {k} runs past the output"));
        };
        if bit {
            shuffle::bit_unshuffle_part(s, d, ts)?;
        } else {
            shuffle::byte_unshuffle(s, d, ts)?;
        }
        pos = end;
    }
    if pos != src.len() {
        return Err(format!("{n} parts cover {pos} of {} data bytes", src.len()));
    }
    Ok(r.position())
}

/// POSITIVE_DELTA (positive_delta_filter.cc:326): `u32 n_windows`, then per window the base
/// value and `u32 nbytes`. A window whose size is not a multiple of the value size was stored
/// raw; otherwise it holds deltas and `v = base + running sum`. Returns the metadata bytes used.
fn reverse_positive_delta(value: usize, md: &[u8], src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let mut r = Reader::new(md, "positive delta metadata");
    let n = r.len_u32(value + 4).map_err(|e| e.to_string())?;
    let mut pos = 0usize;
    for k in 0..n {
        let base = le_u64(r.take(value).map_err(|e| e.to_string())?);
        let len = md_u32(&mut r)?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= src.len())
            .ok_or_else(|| format!("window {k} of {len} bytes runs past the {} data bytes", src.len()))?;
        let (Some(s), Some(d)) = (src.get(pos..end), dst.get_mut(pos..end)) else {
            return Err(format!("window {k} runs past the output"));
        };
        if len % value != 0 {
            d.copy_from_slice(s);
        } else {
            prefix_sum(s, d, value, base);
        }
        pos = end;
    }
    if pos != src.len() {
        return Err(format!("{n} windows cover {pos} of {} data bytes", src.len()));
    }
    Ok(r.position())
}

/// MD5 / SHA256 (checksum_md5_filter.cc:96): `u32 n_md, u32 n_data`, then `(u64 nbytes,
/// digest)` per metadata part and per data part. The metadata parts cover the rest of the
/// metadata and the data parts the data, in order. Returns the metadata bytes used.
fn reverse_checksum(hash: Hash, md: &[u8], data: &[u8], verify: bool) -> Result<usize, String> {
    let entry = 8 + hash.len();
    let mut r = Reader::new(md, "checksum metadata");
    let n_md = md_u32(&mut r)?;
    let n_data = md_u32(&mut r)?;
    let table =
        n_md.checked_add(n_data).and_then(|n| n.checked_mul(entry)).filter(|b| *b <= r.remaining()).ok_or_else(
            || format!("{n_md} metadata and {n_data} data checksums do not fit in {} metadata bytes", md.len()),
        )?;
    let entries = r.take(table).map_err(|e| e.to_string())?;
    let rest = md.get(r.position()..).unwrap_or(&[]);
    let (md_entries, data_entries) = entries.split_at(n_md * entry);
    for (what, entries, covered) in [("metadata", md_entries, rest), ("data", data_entries, data)] {
        let mut pos = 0usize;
        for (k, e) in entries.chunks_exact(entry).enumerate() {
            let len = usize::try_from(le_u64(e.get(..8).unwrap_or(&[]))).unwrap_or(usize::MAX);
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= covered.len())
                .ok_or_else(|| format!("{what} part {k} of {len} bytes runs past {} bytes", covered.len()))?;
            if verify {
                let part = covered.get(pos..end).unwrap_or(&[]);
                if !hash.matches(part, e.get(8..).unwrap_or(&[])) {
                    return Err(format!("{what} part {k}: checksum mismatch"));
                }
            }
            pos = end;
        }
        if pos != covered.len() {
            return Err(format!("{what} checksums cover {pos} of {} bytes", covered.len()));
        }
    }
    Ok(r.position())
}

#[cfg(test)]
mod tests;
