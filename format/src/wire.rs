//! A length-checked reader for the bincode 2.0.1 encodings the format uses.
//!
//! Metadata sections (header, process table, loss records, index) use bincode's *standard*
//! configuration: little-endian, variable-length integers. Block payloads use the standard
//! configuration *with fixed-int encoding*: every integer is a plain little-endian value of its
//! width, so columns can be read in place. Both are spelled out in `FORMAT.md`.
//!
//! The `bincode` crate writes these bytes; this module reads them, because a trace file is
//! untrusted input: every length is checked against the bytes that are actually left before
//! anything is allocated, and every error carries the file offset.

use crate::Error;

/// First byte values of a bincode varint that announce a wider integer to follow.
const VARINT_U16: u8 = 251;
const VARINT_U32: u8 = 252;
const VARINT_U64: u8 = 253;

/// Appends `v` as a bincode standard-config varint.
#[cfg(test)]
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut bytes = [0u8; 9];
    let mut len = 0;
    put_varint_at(&mut bytes, &mut len, v);
    out.extend_from_slice(&bytes[..len]);
}

/// Writes `v` as a bincode standard-config varint at `out[*at..]`, which must have room for
/// it (at most 9 bytes), and advances `at`. For hot loops that size their buffer up front.
#[inline(always)]
pub fn put_varint_at(out: &mut [u8], at: &mut usize, v: u64) {
    let i = *at;
    if v < VARINT_U16 as u64 {
        out[i] = v as u8;
        *at = i + 1;
    } else if v <= u16::MAX as u64 {
        out[i] = VARINT_U16;
        out[i + 1..i + 3].copy_from_slice(&(v as u16).to_le_bytes());
        *at = i + 3;
    } else if v <= u32::MAX as u64 {
        out[i] = VARINT_U32;
        out[i + 1..i + 5].copy_from_slice(&(v as u32).to_le_bytes());
        *at = i + 5;
    } else {
        out[i] = VARINT_U64;
        out[i + 1..i + 9].copy_from_slice(&v.to_le_bytes());
        *at = i + 9;
    }
}

/// bincode's zigzag mapping of a signed integer onto an unsigned one.
#[cfg(test)]
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads consecutive little-endian fields out of a fixed-size record whose length the caller
/// has already checked (a `&[u8; N]`); reading past its end is a bug, not bad input.
pub struct Le<'a>(pub &'a [u8]);

impl Le<'_> {
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .expect("record shorter than its layout");
        self.0 = rest;
        *head
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    pub fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.array())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// A cursor over a byte slice that sits at `base` in the file.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    /// `base` is the file offset of `buf[0]`, used in error messages.
    pub fn new(buf: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor { buf, pos: 0, base }
    }

    /// File offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if self.remaining() < n {
            return Err(Error::truncated(
                self.offset(),
                format!("{n} bytes of {what}, {} left", self.remaining()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    pub fn bool(&mut self, what: &str) -> Result<bool, Error> {
        let at = self.offset();
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Error::malformed(
                at,
                format!("{what} as a bool (0 or 1), found {b}"),
            )),
        }
    }

    pub fn u16_le(&mut self, what: &str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32_le(&mut self, what: &str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64_le(&mut self, what: &str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A standard-config varint of an integer `width` bytes wide that must fit in `max`. A
    /// marker announcing more bytes than `width` is refused (FORMAT.md §1), as bincode does.
    fn varint_max(&mut self, width: usize, max: u64, what: &str) -> Result<u64, Error> {
        let at = self.offset();
        let first = self.u8(what)?;
        let announced = match first {
            VARINT_U16 => 2,
            VARINT_U32 => 4,
            VARINT_U64 => 8,
            _ => 0,
        };
        if announced > width {
            return Err(Error::malformed(
                at,
                format!(
                    "{what} as a varint of a {width}-byte integer, found marker {first} announcing {announced} bytes"
                ),
            ));
        }
        let v = match first {
            b if b < VARINT_U16 => b as u64,
            VARINT_U16 => self.u16_le(what)? as u64,
            VARINT_U32 => self.u32_le(what)? as u64,
            VARINT_U64 => self.u64_le(what)?,
            b => {
                return Err(Error::malformed(
                    at,
                    format!("{what} as a varint (first byte 0-253), found {b}"),
                ));
            }
        };
        if v > max {
            return Err(Error::malformed(
                at,
                format!("{what} at most {max}, found {v}"),
            ));
        }
        Ok(v)
    }

    pub fn varint_u64(&mut self, what: &str) -> Result<u64, Error> {
        self.varint_max(8, u64::MAX, what)
    }

    pub fn varint_u32(&mut self, what: &str) -> Result<u32, Error> {
        Ok(self.varint_max(4, u32::MAX as u64, what)? as u32)
    }

    pub fn varint_i64(&mut self, what: &str) -> Result<i64, Error> {
        Ok(unzigzag(self.varint_u64(what)?))
    }

    /// Zigzag over the `u32` width: a marker announcing 8 bytes is refused like for a `u32`.
    pub fn varint_i32(&mut self, what: &str) -> Result<i32, Error> {
        let at = self.offset();
        let v = unzigzag(self.varint_max(4, u32::MAX as u64, what)?);
        i32::try_from(v).map_err(|_| Error::malformed(at, format!("{what} within i32, found {v}")))
    }

    /// A sequence length (varint), checked so that `len` elements of at least
    /// `min_element_size` bytes each fit in what is left. This is what keeps a corrupted length
    /// from sizing an allocation.
    pub fn seq_len(&mut self, min_element_size: usize, what: &str) -> Result<usize, Error> {
        let at = self.offset();
        let len = self.varint_u64(what)?;
        let room = (self.remaining() / min_element_size.max(1)) as u64;
        if len > room {
            return Err(Error::malformed(
                at,
                format!(
                    "a length of {what} that fits in the {} bytes left, found {len}",
                    self.remaining()
                ),
            ));
        }
        Ok(len as usize)
    }

    /// A byte sequence: varint length, then the bytes.
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], Error> {
        let len = self.seq_len(1, what)?;
        self.take(len, what)
    }

    /// Text that is not UTF-8 is decoded lossily (U+FFFD), never refused (FORMAT.md §1): a
    /// name the kernel handed over in another encoding must not cost the whole section.
    pub fn string(&mut self, what: &str) -> Result<String, Error> {
        let b = self.bytes(what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    pub fn string_vec(&mut self, what: &str) -> Result<Vec<String>, Error> {
        let n = self.seq_len(1, what)?;
        (0..n).map(|_| self.string(what)).collect()
    }

    pub fn string_pairs(&mut self, what: &str) -> Result<Vec<(String, String)>, Error> {
        let n = self.seq_len(2, what)?;
        (0..n)
            .map(|_| Ok((self.string(what)?, self.string(what)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn standard() -> impl bincode::config::Config {
        bincode::config::standard()
    }

    proptest! {
        #[test]
        fn varints_match_bincode(v: u64, s: i64) {
            let mut ours = Vec::new();
            put_varint(&mut ours, v);
            prop_assert_eq!(&ours, &bincode::encode_to_vec(v, standard()).unwrap());
            prop_assert_eq!(Cursor::new(&ours, 0).varint_u64("v").unwrap(), v);

            let mut ours = Vec::new();
            put_varint(&mut ours, zigzag(s));
            prop_assert_eq!(&ours, &bincode::encode_to_vec(s, standard()).unwrap());
            prop_assert_eq!(Cursor::new(&ours, 0).varint_i64("s").unwrap(), s);
        }

        #[test]
        fn strings_and_pairs_match_bincode(v: Vec<(String, String)>) {
            let bytes = bincode::encode_to_vec(&v, standard()).unwrap();
            let mut c = Cursor::new(&bytes, 0);
            prop_assert_eq!(c.string_pairs("pairs").unwrap(), v);
            prop_assert!(c.is_empty());
        }
    }

    #[test]
    fn a_length_larger_than_the_input_is_refused_before_allocating() {
        let mut b = Vec::new();
        put_varint(&mut b, u64::MAX / 2);
        let err = Cursor::new(&b, 100).string_vec("command line").unwrap_err();
        assert_eq!(
            err.to_string(),
            "at offset 100: expected a length of command line that fits in the 0 bytes left, found 9223372036854775807"
        );
    }

    #[test]
    fn narrow_targets_refuse_wide_values() {
        let b = bincode::encode_to_vec(u64::from(u32::MAX) + 1, standard()).unwrap();
        assert!(Cursor::new(&b, 0).varint_u32("cpu count").is_err());
        let b = bincode::encode_to_vec(i64::from(i32::MIN) - 1, standard()).unwrap();
        assert!(Cursor::new(&b, 0).varint_i32("fd").is_err());
    }

    #[test]
    fn a_marker_wider_than_the_type_is_refused_even_for_a_small_value() {
        let b = [253, 5, 0, 0, 0, 0, 0, 0, 0];
        let err = Cursor::new(&b, 40).varint_u32("cpu count").unwrap_err();
        assert_eq!(
            err.to_string(),
            "at offset 40: expected cpu count as a varint of a 4-byte integer, found marker 253 announcing 8 bytes"
        );
        assert!(Cursor::new(&b, 0).varint_i32("fd").is_err());
        assert_eq!(Cursor::new(&b, 0).varint_u64("ts").unwrap(), 5);
        assert_eq!(
            Cursor::new(&[252, 5, 0, 0, 0], 0).varint_u32("n").unwrap(),
            5
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_decoded_lossily() {
        let b = [3, b'a', 0xff, b'b'];
        assert_eq!(Cursor::new(&b, 0).string("comm").unwrap(), "a\u{fffd}b");
    }
}
