//! Reversing the BYTESHUFFLE and BITSHUFFLE filters (§3.4) with c-blosc2's semantics, written so
//! the compiler vectorizes them (fixed element sizes, fixed-size blocks) and without any `unsafe`.
//!
//! Both functions take the shuffled bytes and an output of the same length. A length mismatch is
//! an error, never a panic.

/// Bitshuffle works on blocks of this many bytes (`BSHUF_TARGET_BLOCK_SIZE_B`,
/// bitshuffle_filter.cc:48); each block is shuffled on its own.
pub const BITSHUFFLE_BLOCK_BYTES: usize = 8192;

/// Reverses blosc2's byte shuffle with element size `ts` (`blosc2_unshuffle`): with
/// `n = len / ts`, `dst[i * ts + j] = src[j * n + i]`, and the trailing `len % ts` bytes are
/// copied as they are.
pub fn byte_unshuffle(src: &[u8], dst: &mut [u8], ts: usize) -> Result<(), String> {
    if src.len() != dst.len() {
        return Err(format!("byte unshuffle: {} input bytes for {} output bytes", src.len(), dst.len()));
    }
    let n = src.len().checked_div(ts).unwrap_or(0);
    if ts <= 1 || n == 0 {
        dst.copy_from_slice(src);
        return Ok(());
    }
    let body = n * ts;
    let (src_body, src_tail) = src.split_at(body);
    let (dst_body, dst_tail) = dst.split_at_mut(body);
    byte_unshuffle_body(src_body, dst_body, n, ts);
    dst_tail.copy_from_slice(src_tail);
    Ok(())
}

/// Byte unshuffle of exactly `n` elements of `ts` bytes. The loops for 2, 4 and 8 bytes zip the
/// planes so that the compiler emits vector interleaves (about memory speed).
fn byte_unshuffle_body(src: &[u8], dst: &mut [u8], n: usize, ts: usize) {
    let mut planes = src.chunks_exact(n.max(1));
    let mut plane = || planes.next().unwrap_or(&[]);
    match ts {
        2 => {
            let (p0, p1) = (plane(), plane());
            for ((o, a), b) in dst.chunks_exact_mut(2).zip(p0).zip(p1) {
                o.copy_from_slice(&[*a, *b]);
            }
        }
        4 => {
            let (p0, p1, p2, p3) = (plane(), plane(), plane(), plane());
            for ((((o, a), b), c), d) in dst.chunks_exact_mut(4).zip(p0).zip(p1).zip(p2).zip(p3) {
                o.copy_from_slice(&[*a, *b, *c, *d]);
            }
        }
        8 => {
            let p: [&[u8]; 8] = std::array::from_fn(|_| plane());
            let it = dst.chunks_exact_mut(8).zip(p[0]).zip(p[1]).zip(p[2]).zip(p[3]);
            for ((((((((o, a), b), c), d), e), f), g), h) in it.zip(p[4]).zip(p[5]).zip(p[6]).zip(p[7]) {
                o.copy_from_slice(&[*a, *b, *c, *d, *e, *f, *g, *h]);
            }
        }
        _ => {
            for (j, plane) in src.chunks_exact(n.max(1)).enumerate() {
                for (v, e) in plane.iter().zip(dst.chunks_exact_mut(ts)) {
                    if let Some(d) = e.get_mut(j) {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// Reverses TileDB's bitshuffle of one part with element size `ts` (bitshuffle_filter.cc
/// `run_reverse`): a part whose length is not a multiple of both `ts` and 8 was copied as it
/// is; otherwise each [`BITSHUFFLE_BLOCK_BYTES`] block goes through `blosc2_bitunshuffle`, which
/// transposes the bits of the first `n8 = n - n % 8` of its `n` elements and copies the rest.
pub fn bit_unshuffle_part(src: &[u8], dst: &mut [u8], ts: usize) -> Result<(), String> {
    if src.len() != dst.len() {
        return Err(format!("bit unshuffle: {} input bytes for {} output bytes", src.len(), dst.len()));
    }
    if ts == 0 || !src.len().is_multiple_of(ts) || !src.len().is_multiple_of(8) {
        dst.copy_from_slice(src);
        return Ok(());
    }
    // Bit planes of one block, byte-shuffled, before the byte unshuffle.
    let mut planes = [0u8; BITSHUFFLE_BLOCK_BYTES];
    for (s, d) in src.chunks(BITSHUFFLE_BLOCK_BYTES).zip(dst.chunks_mut(BITSHUFFLE_BLOCK_BYTES)) {
        bit_unshuffle_block(s, d, ts, &mut planes);
    }
    Ok(())
}

/// `blosc2_bitunshuffle(ts, len)`, c-blosc2 format version 3 and later: the bits of the first
/// `n8` elements are transposed back into `ts` byte planes of `n8` bytes, which a byte unshuffle
/// then interleaves; the remaining bytes are copied.
fn bit_unshuffle_block(src: &[u8], dst: &mut [u8], ts: usize, planes: &mut [u8; BITSHUFFLE_BLOCK_BYTES]) {
    let n = src.len() / ts;
    let n8 = n - n % 8;
    let nb = n8 * ts;
    let (src_body, src_tail) = src.split_at(nb.min(src.len()));
    let (dst_body, dst_tail) = dst.split_at_mut(nb.min(dst.len()));
    dst_tail.copy_from_slice(src_tail);
    if n8 == 0 {
        return;
    }
    if ts == 1 {
        bits_to_byte_plane(src_body, dst_body);
        return;
    }
    let Some(planes) = planes.get_mut(..nb) else {
        return;
    };
    for (rows, plane) in src_body.chunks_exact(n8).zip(planes.chunks_exact_mut(n8)) {
        bits_to_byte_plane(rows, plane);
    }
    byte_unshuffle_body(planes, dst_body, n8, ts);
}

/// Transposes the 8x8 bit matrix held in `x` (row `r` = byte `r`, column `c` = bit `c`): bit
/// `8r + c` moves to bit `8c + r` (Hacker's Delight, `transpose8`).
#[inline(always)]
pub fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Transposes the 8x8 byte matrix held in `r` (row `i` = word `i`, column `k` = little-endian
/// byte `k`): afterwards byte `k` of word `i` is what byte `i` of word `k` was.
#[inline(always)]
fn transpose_bytes8(r: &mut [u64; 8]) {
    // 1-byte blocks inside 2x2 blocks, then 2-byte blocks, then 4-byte blocks.
    for (shift, mask, step) in
        [(8u32, 0x00FF_00FF_00FF_00FFu64, 1usize), (16, 0x0000_FFFF_0000_FFFF, 2), (32, 0x0000_0000_FFFF_FFFF, 4)]
    {
        for base in (0..8).step_by(2 * step) {
            for i in base..base + step {
                let (a, b) = (r[i], r[i + step]);
                r[i] = (a & mask) | ((b & mask) << shift);
                r[i + step] = ((a >> shift) & mask) | (b & !mask);
            }
        }
    }
}

/// One byte plane from its 8 bit rows: `rows` is 8 rows of `m = plane.len() / 8` bytes, row `b`
/// holding bit `b` of every element's byte, element `k` in bit `k % 8` of the row's byte `k / 8`.
/// 64 elements at a time: one little-endian word from each row, an 8x8 byte transpose to get
/// each 8 elements' bit matrix, and an 8x8 bit transpose of each.
fn bits_to_byte_plane(rows: &[u8], plane: &mut [u8]) {
    let m = plane.len() / 8;
    if m == 0 {
        return;
    }
    let mut it = rows.chunks_exact(m);
    let r: [&[u8]; 8] = std::array::from_fn(|_| it.next().unwrap_or(&[]));
    let groups = m / 8;
    let (main, rest) = plane.split_at_mut(groups * 64);
    for (g, out) in main.chunks_exact_mut(64).enumerate() {
        let mut w = [0u64; 8];
        for (wb, row) in w.iter_mut().zip(r.iter()) {
            let mut a = [0u8; 8];
            if let Some(s) = row.get(8 * g..8 * g + 8) {
                a.copy_from_slice(s);
            }
            *wb = u64::from_le_bytes(a);
        }
        transpose_bytes8(&mut w);
        for x in w.iter_mut() {
            *x = transpose8(*x);
        }
        for (x, o) in w.iter().zip(out.chunks_exact_mut(8)) {
            o.copy_from_slice(&x.to_le_bytes());
        }
    }
    for (q, o) in rest.chunks_exact_mut(8).enumerate() {
        let col = groups * 8 + q;
        let mut a = [0u8; 8];
        for (v, row) in a.iter_mut().zip(r.iter()) {
            *v = row.get(col).copied().unwrap_or(0);
        }
        o.copy_from_slice(&transpose8(u64::from_le_bytes(a)).to_le_bytes());
    }
}

/// Forward shuffles written bit by bit from the spec, for tests only.
#[cfg(test)]
pub(crate) mod forward {
    use super::BITSHUFFLE_BLOCK_BYTES;

    /// blosc2 byte shuffle: `out[j * n + i] = src[i * ts + j]`, tail copied.
    pub fn byte_shuffle(src: &[u8], ts: usize) -> Vec<u8> {
        let n = src.len() / ts;
        let mut out = src.to_vec();
        for i in 0..n {
            for j in 0..ts {
                out[j * n + i] = src[i * ts + j];
            }
        }
        out
    }

    fn bit_shuffle_block(blk: &[u8], ts: usize, out: &mut Vec<u8>) {
        let n = blk.len() / ts;
        let n8 = n - n % 8;
        let m = n8 / 8;
        let mut body = vec![0u8; n8 * ts];
        for j in 0..ts {
            for b in 0..8 {
                for k in 0..n8 {
                    let bit = (blk[k * ts + j] >> b) & 1;
                    body[(j * 8 + b) * m + k / 8] |= bit << (k % 8);
                }
            }
        }
        out.extend_from_slice(&body);
        out.extend_from_slice(&blk[n8 * ts..]);
    }

    /// TileDB's bitshuffle of one part (copied when not a multiple of `ts` and 8).
    pub fn bit_shuffle_part(part: &[u8], ts: usize) -> Vec<u8> {
        if !part.len().is_multiple_of(ts) || !part.len().is_multiple_of(8) {
            return part.to_vec();
        }
        let mut out = Vec::with_capacity(part.len());
        for blk in part.chunks(BITSHUFFLE_BLOCK_BYTES) {
            bit_shuffle_block(blk, ts, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::forward::*;
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn transpose8_matches_the_definition() {
        for seed in 1..50u64 {
            let x = u64::from_le_bytes(pseudo_random(8, seed).try_into().unwrap());
            let y = transpose8(x);
            for r in 0..8 {
                for c in 0..8 {
                    assert_eq!((x >> (8 * r + c)) & 1, (y >> (8 * c + r)) & 1);
                }
            }
            assert_eq!(transpose8(y), x);
        }
    }

    #[test]
    fn byte_transpose_matches_the_definition() {
        let mut w: [u64; 8] =
            std::array::from_fn(|i| u64::from_le_bytes(pseudo_random(8, i as u64 + 3).try_into().unwrap()));
        let before = w;
        transpose_bytes8(&mut w);
        for (i, wi) in w.iter().enumerate() {
            for (k, bk) in before.iter().enumerate() {
                assert_eq!(wi.to_le_bytes()[k], bk.to_le_bytes()[i]);
            }
        }
    }

    #[test]
    fn byte_unshuffle_inverts_the_shuffle_for_all_sizes_and_lengths() {
        for ts in [1usize, 2, 3, 4, 8, 16] {
            for len in [0usize, 1, 7, 8, 13, 26, 64, 100, 255, 1024, 1030, 4099] {
                let src = pseudo_random(len, (ts * 1000 + len) as u64);
                let shuf = byte_shuffle(&src, ts);
                let mut out = vec![0u8; len];
                byte_unshuffle(&shuf, &mut out, ts).unwrap();
                assert_eq!(out, src, "ts {ts} len {len}");
            }
        }
        let mut out = [0u8; 3];
        assert!(byte_unshuffle(&[1, 2], &mut out, 2).is_err());
    }

    #[test]
    fn bit_unshuffle_inverts_the_shuffle_for_all_sizes_and_lengths() {
        for ts in [1usize, 2, 4, 8, 3, 12] {
            // element counts around multiples of 8 and 64, block edges and odd parts
            for n in [0usize, 1, 5, 8, 10, 13, 63, 64, 65, 100, 511, 512, 1000, 2048, 2049, 4100] {
                let src = pseudo_random(n * ts, (ts * 7919 + n) as u64);
                let shuf = bit_shuffle_part(&src, ts);
                let mut out = vec![0u8; src.len()];
                bit_unshuffle_part(&shuf, &mut out, ts).unwrap();
                assert_eq!(out, src, "ts {ts} n {n}");
            }
        }
        // A part that is not a multiple of 8 bytes is copied as it is.
        let src = pseudo_random(12, 5);
        assert_eq!(bit_shuffle_part(&src, 4), src);
        let mut out = vec![0u8; 12];
        bit_unshuffle_part(&src, &mut out, 4).unwrap();
        assert_eq!(out, src);
    }

    #[test]
    fn bit_unshuffle_known_bits() {
        // 8 uint8 elements: element k = 1 << k, so bit plane b has only element b set.
        let src: Vec<u8> = (0..8).map(|k| 1u8 << k).collect();
        let shuf = bit_shuffle_part(&src, 1);
        assert_eq!(shuf, (0..8).map(|b| 1u8 << b).collect::<Vec<_>>());
        // 16 uint16 elements equal to 0x0100: plane 8 (byte 1, bit 0) is all ones.
        let src: Vec<u8> = (0..16).flat_map(|_| [0u8, 1u8]).collect();
        let shuf = bit_shuffle_part(&src, 2);
        let mut expect = vec![0u8; 32];
        expect[16] = 0xff;
        expect[17] = 0xff;
        assert_eq!(shuf, expect);
        let mut out = vec![0u8; 32];
        bit_unshuffle_part(&shuf, &mut out, 2).unwrap();
        assert_eq!(out, src);
    }
}
