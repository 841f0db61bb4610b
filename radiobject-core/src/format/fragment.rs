//! Which fragments a read sees (§2) and each fragment's footer and tile offsets (§5).

use std::collections::BTreeSet;

use super::bytes::Reader;
use super::schema::{Schema, decode_generic_tile, read_int};
use super::{FormatError, MAX_FORMAT_VERSION};

/// A committed fragment a read at some timestamp sees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FragmentRef {
    /// First timestamp (ms since the epoch).
    pub t1: u64,
    /// Last timestamp.
    pub t2: u64,
    /// Folder name under `__fragments/`.
    pub name: String,
}

/// `__<t1>_<t2>_<uuid>[_<version>][.ext]` → (t1, t2, version).
pub fn parse_timestamped_name(name: &str) -> Option<(u64, u64, Option<u32>)> {
    let base = name.split('.').next()?;
    let mut parts = base.strip_prefix("__")?.split('_');
    let t1 = parts.next()?.parse().ok()?;
    let t2 = parts.next()?.parse().ok()?;
    let _uuid = parts.next()?;
    let v = match parts.next() {
        Some(v) => Some(v.parse().ok()?),
        None => None,
    };
    Some((t1, t2, v))
}

/// What `__commits/` says, before choosing by timestamp: committed fragment names and the
/// consolidation (`.vac`) files with the fragments they supersede.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commits {
    /// Names of committed fragments.
    pub committed: BTreeSet<String>,
    /// `(t1, t2, superseded fragment names)` of each `.vac` file.
    pub vacuum: Vec<(u64, u64, Vec<String>)>,
}

impl Commits {
    /// Builds the commit set from the listing of `__commits/` and a reader of its small text files
    /// (`.ign`, `.con`, `.vac`). Deletes and updates are [`FormatError::Unsupported`].
    pub fn from_listing(
        entries: &[String],
        mut read: impl FnMut(&str) -> Result<Vec<u8>, FormatError>,
    ) -> Result<Commits, FormatError> {
        let mut ignore = BTreeSet::new();
        for e in entries.iter().filter(|e| e.ends_with(".ign")) {
            let body = read(e)?;
            ignore.extend(String::from_utf8_lossy(&body).lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
        let mut out = Commits::default();
        for e in entries {
            if e.ends_with(".del") || e.ends_with(".upd") {
                return Err(FormatError::unsupported("delete or update commits"));
            }
            if let Some(n) = e.strip_suffix(".wrt") {
                out.committed.insert(n.to_owned());
            } else if e.ends_with(".con") {
                let body = read(e)?;
                // Commit consolidation may also hold delete/update records (with binary bodies).
                if body.windows(5).any(|w| w == b".del\n" || w == b".upd\n") {
                    return Err(FormatError::unsupported("delete or update commits"));
                }
                for line in String::from_utf8_lossy(&body).lines() {
                    if !line.is_empty() && !ignore.contains(line) && line.ends_with(".wrt") {
                        let name = line.rsplit('/').next().unwrap_or(line);
                        out.committed.insert(name.trim_end_matches(".wrt").to_owned());
                    }
                }
            } else if e.ends_with(".vac") {
                let (t1, t2, _) =
                    parse_timestamped_name(e).ok_or_else(|| FormatError::corrupt(format!("vacuum file name {e}")))?;
                let body = read(e)?;
                let names = String::from_utf8_lossy(&body)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.trim_end_matches('/').rsplit('/').next().unwrap_or(l).to_owned())
                    .collect();
                out.vacuum.push((t1, t2, names));
            }
        }
        Ok(out)
    }

    /// The fragments a read over `[t_start, t_end]` sees, oldest first (dense arrays: a
    /// fragment counts only if its whole timestamp range lies inside, §2.5).
    pub fn select(&self, t_start: u64, t_end: u64) -> Result<Vec<FragmentRef>, FormatError> {
        let inside = |t1: u64, t2: u64| t_start <= t1 && t2 <= t_end;
        let vacuumed: BTreeSet<&str> = self
            .vacuum
            .iter()
            .filter(|(t1, t2, _)| inside(*t1, *t2))
            .flat_map(|(_, _, names)| names.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for name in &self.committed {
            if vacuumed.contains(name.as_str()) {
                continue;
            }
            let (t1, t2, v) =
                parse_timestamped_name(name).ok_or_else(|| FormatError::corrupt(format!("fragment name {name}")))?;
            match v {
                Some(v) if (12..=MAX_FORMAT_VERSION).contains(&v) => {}
                v => return Err(FormatError::unsupported(format!("fragment {name} of format version {v:?}"))),
            }
            if inside(t1, t2) {
                out.push(FragmentRef { t1, t2, name: name.clone() });
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What a fragment's footer says, for one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Footer format version.
    pub version: u32,
    /// Schema file name under `__schema/`.
    pub schema_name: String,
    /// Non-empty domain, inclusive per dimension.
    pub ned: Vec<(i64, i64)>,
    /// Bytes of each fixed data file (`a<i>.tdb`, then coords and dims).
    pub file_sizes: Vec<u64>,
    /// Offset, in the metadata file, of each entry's tile-offsets generic tile.
    pub gt_tile_offsets: Vec<u64>,
}

/// The footer's version and schema name (which the rest of it needs to be parsed), and a reader
/// of the footer positioned after them.
fn footer_head(tail: &[u8]) -> Result<(u32, String, Reader<'_>), FormatError> {
    let n = tail.len();
    if n < 8 {
        return Err(FormatError::corrupt("fragment metadata shorter than its footer size"));
    }
    let size = u64::from_le_bytes(tail[n - 8..].try_into().map_err(|_| FormatError::corrupt("footer size"))?);
    let start = (n as u64 - 8)
        .checked_sub(size)
        .ok_or_else(|| FormatError::corrupt(format!("footer of {size} bytes does not fit the {n} bytes read")))?;
    let mut r = Reader::new(&tail[start as usize..n - 8], "fragment footer");
    let version = r.u32()?;
    if !(16..=MAX_FORMAT_VERSION).contains(&version) {
        return Err(FormatError::unsupported(format!("fragment footer version {version}")));
    }
    let len = r.len_u64(1)?;
    let schema_name = String::from_utf8_lossy(r.take(len)?).into_owned();
    Ok((version, schema_name, r))
}

/// The name of the schema (under `__schema/`) the footer at the end of `tail` was written with.
pub fn footer_schema_name(tail: &[u8]) -> Result<String, FormatError> {
    footer_head(tail).map(|(_, name, _)| name)
}

/// Parses the footer at the end of `tail` (the last bytes of `__fragment_metadata.tdb`, which
/// must hold the whole footer and its trailing size). `schema_of` maps the schema name it holds
/// to the parsed schema.
pub fn parse_footer<'s>(
    tail: &[u8],
    schema_of: impl FnOnce(&str) -> Result<&'s Schema, FormatError>,
) -> Result<(Footer, &'s Schema), FormatError> {
    let (version, schema_name, mut r) = footer_head(tail)?;
    let schema = schema_of(&schema_name)?;
    if r.u8()? != 1 {
        return Err(FormatError::unsupported("sparse fragment"));
    }
    if r.u8()? != 0 {
        return Err(FormatError::unsupported("fragment with a null non-empty domain"));
    }
    let mut ned = Vec::with_capacity(schema.dims.len());
    for d in &schema.dims {
        ned.push((read_int(&mut r, d.dtype)?, read_int(&mut r, d.dtype)?));
    }
    let _sparse_tile_num = r.u64()?;
    let _last_tile_cell_num = r.u64()?;
    let has_timestamps = r.u8()? as usize;
    let has_delete_meta = r.u8()? as usize;
    if has_timestamps != 0 || has_delete_meta != 0 {
        return Err(FormatError::unsupported("fragment with timestamps or delete metadata"));
    }
    let num = schema.attrs.len() + 1 + schema.dims.len() + has_timestamps + 2 * has_delete_meta;
    let u64s = |r: &mut Reader<'_>, k: usize| -> Result<Vec<u64>, FormatError> { (0..k).map(|_| r.u64()).collect() };
    let file_sizes = u64s(&mut r, num)?;
    let _var_sizes = u64s(&mut r, num)?;
    let _validity_sizes = u64s(&mut r, num)?;
    let _rtree = r.u64()?;
    let gt_tile_offsets = u64s(&mut r, num)?;
    r.skip(8 * (7 * num + 2))?;
    if r.remaining() != 0 {
        return Err(FormatError::corrupt(format!("fragment footer has {} unexpected trailing bytes", r.remaining())));
    }
    for (d, &(lo, hi)) in schema.dims.iter().zip(&ned) {
        if lo > hi || lo < d.lo || hi > d.hi {
            return Err(FormatError::corrupt(format!("non-empty domain [{lo}, {hi}] outside dimension {}", d.name)));
        }
    }
    Ok((Footer { version, schema_name, ned, file_sizes, gt_tile_offsets }, schema))
}

/// Parses the tile offsets of entry `idx` from the metadata file bytes `meta`, where `meta`
/// starts at file offset `meta_start`. Returns `n` offsets.
pub fn parse_tile_offsets(meta: &[u8], meta_start: u64, footer: &Footer, idx: usize) -> Result<Vec<u64>, FormatError> {
    let off = footer.gt_tile_offsets.get(idx).copied().ok_or_else(|| FormatError::corrupt("attribute index"))?;
    let rel =
        off.checked_sub(meta_start).ok_or_else(|| FormatError::corrupt("tile offsets lie before the bytes read"))?;
    let (payload, _) = decode_generic_tile(meta, usize::try_from(rel).map_err(|_| FormatError::corrupt("offset"))?)?;
    let mut r = Reader::new(&payload, "tile offsets");
    let n = r.len_u64(8)?;
    let offsets: Vec<u64> = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
    if r.remaining() != 0 {
        return Err(FormatError::corrupt("tile offsets block has trailing bytes"));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_commit_selection_follow_the_dense_rules() {
        assert_eq!(parse_timestamped_name("__10_20_abcd_22.wrt"), Some((10, 20, Some(22))));
        assert_eq!(parse_timestamped_name("__10_20_abcd"), Some((10, 20, None)));
        assert_eq!(parse_timestamped_name("nope"), None);
        let entries: Vec<String> =
            ["__1_1_a_22.wrt", "__2_2_b_22.wrt", "__3_3_c_22.wrt", "__1_2_d_22.wrt", "__1_2_e_22.vac"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let c = Commits::from_listing(&entries, |name| {
            assert_eq!(name, "__1_2_e_22.vac");
            Ok(b"file:///x/__fragments/__1_1_a_22\nfile:///x/__fragments/__2_2_b_22\n".to_vec())
        })
        .unwrap();
        let names = |v: Vec<FragmentRef>| v.into_iter().map(|f| f.name).collect::<Vec<_>>();
        // Everything visible: the consolidated fragment replaces its inputs.
        assert_eq!(names(c.select(0, 10).unwrap()), vec!["__1_2_d_22", "__3_3_c_22"]);
        // Opened at 1: the .vac (1..2) does not count, the consolidated fragment neither.
        assert_eq!(names(c.select(0, 1).unwrap()), vec!["__1_1_a_22"]);
        let del = vec!["__5_5_x_22.del".to_string()];
        assert!(matches!(Commits::from_listing(&del, |_| Ok(vec![])), Err(FormatError::Unsupported(_))));
        let old = vec!["__5_5_x_11.wrt".to_string()];
        assert!(matches!(
            Commits::from_listing(&old, |_| Ok(vec![])).unwrap().select(0, 9),
            Err(FormatError::Unsupported(_))
        ));
    }
}
