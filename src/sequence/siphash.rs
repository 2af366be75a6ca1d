//! SipHash (Aumasson and Bernstein, 2012) with a caller-given 128-bit key, for
//! [`super::key::Fingerprinter`]: std's `RandomState` cannot be given a key, and two
//! `RandomState`s made on one thread share half of theirs (see `Fingerprinter`). SipHash-1-3,
//! the variant std's hash maps use, is what the fingerprints use; SipHash-2-4 is here to check
//! this code against the reference test vectors. Pure, allocation-free, no `unsafe`.

use std::hash::Hasher;

/// SipHash-c-d with `C` compression and `D` finalisation rounds, fed through [`Hasher`].
#[derive(Clone, Debug)]
pub(crate) struct SipHasher<const C: usize, const D: usize> {
    v: [u64; 4],
    /// Bytes not yet compressed (fewer than 8), little-endian in the low bytes.
    tail: u64,
    ntail: usize,
    /// Total bytes written (only its low 8 bits are used, as the algorithm says).
    length: usize,
}

/// The variant the fingerprints use.
pub(crate) type SipHasher13 = SipHasher<1, 3>;

impl<const C: usize, const D: usize> SipHasher<C, D> {
    /// A hasher keyed with `k0` (first 8 key bytes, little-endian) and `k1` (last 8).
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        SipHasher {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    /// Writes the low `size` bytes of `x` (`size` <= 8), little-endian.
    #[inline]
    fn short_write(&mut self, x: u64, size: usize) {
        self.length = self.length.wrapping_add(size);
        let room = 8 - self.ntail;
        self.tail |= x << (8 * self.ntail);
        if size < room {
            self.ntail += size;
            return;
        }
        let m = self.tail;
        self.compress(m);
        self.ntail = size - room;
        self.tail = if room < 8 { x >> (8 * room) } else { 0 };
    }

    #[inline]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..C {
            Self::round(&mut self.v);
        }
        self.v[0] ^= m;
    }
}

impl<const C: usize, const D: usize> Hasher for SipHasher<C, D> {
    fn write(&mut self, bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len());
        let mut rest = bytes;
        if self.ntail > 0 {
            // Complete the pending word (std's `Hash` impls write a few bytes at a time).
            let fill = (8 - self.ntail).min(rest.len());
            self.tail |= load_le(&rest[..fill]) << (8 * self.ntail);
            self.ntail += fill;
            rest = &rest[fill..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            self.compress(load_le(w));
        }
        self.tail = load_le(words.remainder());
        self.ntail = words.remainder().len();
    }

    // Integers (lengths, enum tags, string terminators) without going through a byte slice;
    // the same as `write(&x.to_le_bytes())`.
    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.short_write(u64::from(x), 1);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.short_write(u64::from(x), 4);
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.short_write(x, 8);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.short_write(x as u64, std::mem::size_of::<usize>());
    }

    #[inline]
    fn write_isize(&mut self, x: isize) {
        self.short_write(x as usize as u64, std::mem::size_of::<usize>());
    }

    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let m = ((s.length as u64 & 0xff) << 56) | s.tail;
        s.compress(m);
        s.v[2] ^= 0xff;
        for _ in 0..D {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

/// Up to 8 bytes as a little-endian word (missing high bytes are 0), by at most two
/// overlapping loads instead of a variable-length copy.
#[inline]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    let word = |lo: &[u8]| -> u64 {
        let mut w = [0u8; 8];
        w[..lo.len()].copy_from_slice(lo);
        u64::from_le_bytes(w)
    };
    match n {
        8 => word(b),
        4..=7 => word(&b[..4]) | (word(&b[n - 4..]) << (8 * (n - 4))),
        2 | 3 => word(&b[..2]) | (word(&b[n - 2..]) << (8 * (n - 2))),
        1 => u64::from(b[0]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

    fn sip<const C: usize, const D: usize>(k: (u64, u64), msg: &[u8]) -> u64 {
        let mut h = SipHasher::<C, D>::new(k.0, k.1);
        h.write(msg);
        h.finish()
    }

    #[test]
    fn siphash_2_4_gives_the_reference_vectors() {
        // The reference implementation's vectors: key 00..0f, message 00..(n-1).
        let msg: Vec<u8> = (0..64).collect();
        for (n, want) in [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (2, 0x0d6c_8009_d9a9_4f5a),
            (3, 0x8567_6696_d7fb_7e2d),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
            (63, 0x958a_324c_eb06_4572),
        ] {
            assert_eq!(sip::<2, 4>((K0, K1), &msg[..n]), want, "{n} bytes");
        }
    }

    #[test]
    fn chunked_writes_hash_like_one_write_and_match_std_siphash_2_4() {
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [0, 1, 7, 8, 9, 63, 200] {
            let whole = sip::<1, 3>((1, 2), &msg[..n]);
            for step in [1, 3, 8, 13] {
                let mut h = SipHasher13::new(1, 2);
                msg[..n].chunks(step).for_each(|c| h.write(c));
                assert_eq!(h.finish(), whole, "{n} bytes in steps of {step}");
            }
            #[allow(deprecated)] // SipHasher is documented as SipHash-2-4: a second reference.
            let mut std24 = std::hash::SipHasher::new_with_keys(K0, K1);
            std24.write(&msg[..n]);
            assert_eq!(sip::<2, 4>((K0, K1), &msg[..n]), std24.finish());
        }
    }

    #[test]
    fn integer_writes_hash_like_their_little_endian_bytes() {
        for lead in 0..9 {
            let mut a = SipHasher13::new(5, 6);
            let mut b = SipHasher13::new(5, 6);
            a.write(&[9; 8][..lead]);
            b.write(&[9; 8][..lead]);
            a.write_u8(0xff);
            b.write(&[0xff]);
            a.write_u32(0x0102_0304);
            b.write(&0x0102_0304u32.to_le_bytes());
            a.write_usize(77);
            b.write(&77usize.to_le_bytes());
            a.write_isize(-3);
            b.write(&(-3isize).to_le_bytes());
            a.write_u64(u64::MAX - 1);
            b.write(&(u64::MAX - 1).to_le_bytes());
            assert_eq!(a.finish(), b.finish(), "after {lead} bytes");
        }
    }

    #[test]
    fn siphash_1_3_matches_std_default_hasher() {
        // std's DefaultHasher is SipHash-1-3 under the zero key (an implementation detail of std
        // that its hash maps rely on; if std ever changes it, this cross-check goes, the 2-4
        // vectors above still cover the shared code).
        let msg: Vec<u8> = (0..64).collect();
        for n in 0..64 {
            let mut d = std::hash::DefaultHasher::new();
            d.write(&msg[..n]);
            assert_eq!(sip::<1, 3>((0, 0), &msg[..n]), d.finish(), "{n} bytes");
        }
    }
}
