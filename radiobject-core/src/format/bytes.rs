//! A bounds-checked little-endian reader over bytes read from storage. Every read that runs past
//! the end is a [`FormatError::Corrupt`], never a panic.

use super::FormatError;

/// Reads little-endian values from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the structure in error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Corrupt(format!(
                "{}: needs {n} bytes at offset {}, {} left",
                self.what,
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, FormatError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A little-endian `f64`.
    pub fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A `u64` length that must fit in the bytes left (so it can size an allocation).
    pub fn len_u64(&mut self, unit: usize) -> Result<usize, FormatError> {
        let n = self.u64()?;
        self.check_len(n, unit)
    }

    /// A `u32` length that must fit in the bytes left.
    pub fn len_u32(&mut self, unit: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as u64;
        self.check_len(n, unit)
    }

    fn check_len(&self, n: u64, unit: usize) -> Result<usize, FormatError> {
        match n.checked_mul(unit.max(1) as u64) {
            Some(b) if b <= self.remaining() as u64 => Ok(n as usize),
            _ => Err(FormatError::Corrupt(format!(
                "{}: length {n} at offset {} exceeds the {} bytes left",
                self.what,
                self.pos,
                self.remaining()
            ))),
        }
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), FormatError> {
        self.take(n).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_refuses_overruns() {
        let b = [1u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut r = Reader::new(&b, "test");
        assert_eq!(r.u32().unwrap(), 1);
        assert_eq!(r.u64().unwrap(), 2);
        assert!(matches!(r.u32(), Err(FormatError::Corrupt(_))));
        assert_eq!(r.u8().unwrap(), 9);
        let huge = u64::MAX.to_le_bytes();
        assert!(Reader::new(&huge, "t").len_u64(8).is_err());
    }
}
