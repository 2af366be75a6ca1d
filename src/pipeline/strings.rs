//! The string values of a raw JSON line, found without parsing it, 64 bytes at a time
//! (AVX-512 or AVX2 when the CPU has them, else a portable loop).
//!
//! In a JSON text without backslashes every `"` delimits a string, so the quotes pair up in
//! order: the prefix XOR of a block's quote mask marks the bytes inside strings, which tells
//! opening quotes from closing ones without visiting each quote. A string whose closing quote
//! is directly followed by `:` is a key; every other string is a value (a key followed by
//! whitespace is taken for a value too). Lines with a backslash are refused: an escape could
//! hide a quote or spell a value differently. In a line that is not JSON the spans mean
//! nothing, but they always lie inside the line; the prefilter relies on them only for valid
//! lines (see `pipeline::prefilter`).

/// Sets `out` to the string values of `line` in order, as `(start, end)` offsets of each
/// value's content between its quotes. Returns `false`, with `out` incomplete, when the line
/// has a backslash or is too long for 32-bit offsets.
#[inline]
pub fn values(line: &[u8], out: &mut Vec<(u32, u32)>) -> bool {
    out.clear();
    if u32::try_from(line.len()).is_err() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: the CPU supports AVX-512BW and PCLMULQDQ (checked just above).
            return unsafe { simd::values_avx512(line, out) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { simd::values_avx2(line, out) };
        }
    }
    portable_values(line, out)
}

/// Bit i set when an odd number of bits 0..=i of `x` are set.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The state carried from one 64-byte block to the next.
struct Carry {
    /// The previous block ended inside a string.
    in_string: bool,
    /// Offset of the last opening quote seen.
    last_open: usize,
}

impl Carry {
    fn new() -> Carry {
        Carry { in_string: false, last_open: 0 }
    }

    /// Feeds the block at `base`: its quote mask, the mask's [`prefix_xor`] and its colon mask
    /// (bit i: byte `base + i`), and whether the byte after the block is a colon. Offsets fit `u32` (checked by [`values`]).
    #[inline(always)]
    fn feed(&mut self, [quotes, odd, colons]: [u64; 3], colon_after: bool, base: usize, out: &mut Vec<(u32, u32)>) {
        let mut inside = odd;
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 == 1;
        let open = quotes & inside;
        let close = quotes & !inside;
        let before_colon = (colons >> 1) | (u64::from(colon_after) << 63);
        let mut value_ends = close & !before_colon;
        while value_ends != 0 {
            let i = value_ends.trailing_zeros();
            value_ends &= value_ends - 1;
            let opens_below = open & ((1u64 << i) - 1);
            let open_at =
                if opens_below != 0 { base + (63 - opens_below.leading_zeros()) as usize } else { self.last_open };
            let end = base + i as usize;
            // The opening quote is before `end` (a close is preceded by its open); `min` only
            // keeps the span well-formed whatever the bytes.
            out.push(((open_at + 1).min(end) as u32, end as u32));
        }
        if open != 0 {
            self.last_open = base + (63 - open.leading_zeros()) as usize;
        }
    }
}

/// Quote mask, colon mask and backslash presence of up to 64 bytes, one byte at a time.
#[inline(always)]
fn portable_block(block: &[u8]) -> (u64, u64, bool) {
    let (mut quotes, mut colons, mut backslash) = (0u64, 0u64, false);
    for (i, &b) in block.iter().enumerate() {
        quotes |= u64::from(b == b'"') << i;
        colons |= u64::from(b == b':') << i;
        backslash |= b == b'\\';
    }
    (quotes, colons, backslash)
}

/// The portable version of [`values`].
pub(crate) fn portable_values(line: &[u8], out: &mut Vec<(u32, u32)>) -> bool {
    out.clear();
    if u32::try_from(line.len()).is_err() {
        return false;
    }
    let mut carry = Carry::new();
    for (k, block) in line.chunks(64).enumerate() {
        let (quotes, colons, backslash) = portable_block(block);
        if backslash {
            return false;
        }
        let base = k * 64;
        carry.feed([quotes, prefix_xor(quotes), colons], line.get(base + 64) == Some(&b':'), base, out);
    }
    true
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_set1_epi8, _mm_clmulepi64_si128, _mm_cvtsi128_si64,
        _mm_set1_epi8, _mm_set_epi64x,
    };

    use super::Carry;

    /// Quote mask, its prefix XOR, colon mask, and backslash presence of the 64 bytes at `p`.
    ///
    /// # Safety
    /// The CPU supports AVX2, and `p` points to 64 readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(p: *const u8) -> ([u64; 3], bool) {
        let quote = _mm256_set1_epi8(b'"' as i8);
        let colon = _mm256_set1_epi8(b':' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        // SAFETY: 64 readable bytes at `p` (the caller's contract); unaligned loads.
        let (a, b) =
            unsafe { (_mm256_loadu_si256(p.cast::<__m256i>()), _mm256_loadu_si256(p.add(32).cast::<__m256i>())) };
        let mask = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32);
        let quotes = mask(_mm256_cmpeq_epi8(a, quote)) | mask(_mm256_cmpeq_epi8(b, quote)) << 32;
        let colons = mask(_mm256_cmpeq_epi8(a, colon)) | mask(_mm256_cmpeq_epi8(b, colon)) << 32;
        let bs = _mm256_or_si256(_mm256_cmpeq_epi8(a, backslash), _mm256_cmpeq_epi8(b, backslash));
        ([quotes, super::prefix_xor(quotes), colons], _mm256_movemask_epi8(bs) != 0)
    }

    /// [`block_avx2`] with AVX-512BW (one load and three compares into masks) and PCLMULQDQ
    /// (the prefix XOR is a carry-less multiplication by all ones).
    ///
    /// # Safety
    /// The CPU supports AVX-512BW and PCLMULQDQ, and `p` points to 64 readable bytes.
    #[inline]
    #[target_feature(enable = "avx512bw,pclmulqdq")]
    unsafe fn block_avx512(p: *const u8) -> ([u64; 3], bool) {
        // SAFETY: 64 readable bytes at `p` (the caller's contract); an unaligned load.
        let v = unsafe { _mm512_loadu_si512(p.cast()) };
        let quotes = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8));
        let colons = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b':' as i8));
        let backslashes = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\\' as i8));
        let odd = _mm_cvtsi128_si64(_mm_clmulepi64_si128(_mm_set_epi64x(0, quotes as i64), _mm_set1_epi8(-1), 0));
        ([quotes, odd as u64, colons], backslashes != 0)
    }

    /// [`super::values`] over 64-byte blocks classified by `$block`, compiled for `$feature`.
    macro_rules! values_with {
        ($name:ident, $feature:literal, $block:ident) => {
            /// [`super::values`] with the instructions of its target feature.
            ///
            /// # Safety
            /// The CPU supports the target feature.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(line: &[u8], out: &mut Vec<(u32, u32)>) -> bool {
                let mut carry = Carry::new();
                let mut base = 0;
                while base + 64 <= line.len() {
                    // SAFETY: the feature (the caller's contract); `base + 64 <= line.len()`.
                    let (masks, backslash) = unsafe { $block(line.as_ptr().add(base)) };
                    if backslash {
                        return false;
                    }
                    carry.feed(masks, line.get(base + 64) == Some(&b':'), base, out);
                    base += 64;
                }
                if base < line.len() {
                    // The tail, in a zeroed block (a zero byte is no quote, colon or backslash).
                    let mut tail = [0u8; 64];
                    tail[..line.len() - base].copy_from_slice(&line[base..]);
                    // SAFETY: the feature (the caller's contract); `tail` has 64 bytes.
                    let (masks, backslash) = unsafe { $block(tail.as_ptr()) };
                    if backslash {
                        return false;
                    }
                    carry.feed(masks, false, base, out);
                }
                true
            }
        };
    }

    values_with!(values_avx2, "avx2", block_avx2);
    values_with!(values_avx512, "avx512bw,pclmulqdq", block_avx512);

    #[cfg(test)]
    pub(super) fn avx2_if_supported(line: &[u8], out: &mut Vec<(u32, u32)>) -> Option<bool> {
        out.clear();
        // SAFETY: the CPU supports AVX2 (checked first).
        std::is_x86_feature_detected!("avx2").then(|| unsafe { values_avx2(line, out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values_of(line: &[u8]) -> Option<Vec<&[u8]>> {
        let mut out = Vec::new();
        values(line, &mut out).then(|| out.iter().map(|&(s, e)| &line[s as usize..e as usize]).collect())
    }

    /// One byte at a time: pair the quotes, keep the strings not followed by a colon.
    fn naive(line: &[u8]) -> Option<Vec<(u32, u32)>> {
        if line.contains(&b'\\') {
            return None;
        }
        let quotes: Vec<usize> = line.iter().enumerate().filter(|(_, &b)| b == b'"').map(|(i, _)| i).collect();
        Some(
            quotes
                .chunks_exact(2)
                .filter(|p| line.get(p[1] + 1) != Some(&b':'))
                .map(|p| (p[0] as u32 + 1, p[1] as u32))
                .collect(),
        )
    }

    #[test]
    fn finds_values_in_order_and_skips_keys() {
        let line = br#"{"a":"xy","b":[1,"",{"c":"d e"}],"k" :"v"}"#;
        let want: Vec<&[u8]> = vec![b"xy", b"", b"d e", b"k", b"v"];
        assert_eq!(values_of(line), Some(want));
        assert_eq!(values_of(br#"{"a":"\"x"}"#), None);
        assert_eq!(values_of(b""), Some(vec![]));
        assert_eq!(values_of(br#"{"unpaired"#), Some(vec![]));
    }

    #[test]
    fn values_across_block_boundaries() {
        for pad in 0..200 {
            let line = format!("{{\"{}\":\"{}\",\"k\":\"v\"}}", "p".repeat(pad), "q".repeat(pad % 70));
            let got = values_of(line.as_bytes()).expect("no backslash");
            assert_eq!(got, vec!["q".repeat(pad % 70).as_bytes(), b"v"], "pad {pad}");
        }
        let mut late = vec![b' '; 200];
        late[150] = b'\\';
        assert_eq!(values_of(&late), None);
    }

    proptest! {
        /// The SIMD scan, the portable one and a byte-at-a-time reference agree on any bytes.
        #[test]
        fn scans_agree(bytes in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b'"'), Just(b':'), Just(b'\\'), Just(b'a'), Just(0u8), any::<u8>()], 0..300)) {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let ok_fast = values(&bytes, &mut fast);
            let ok_slow = portable_values(&bytes, &mut slow);
            let want = naive(&bytes);
            prop_assert_eq!(ok_fast, want.is_some());
            prop_assert_eq!(ok_slow, want.is_some());
            if let Some(want) = &want {
                prop_assert_eq!(&fast, want);
                prop_assert_eq!(&slow, want);
            }
            // The AVX2 kernel too, where the best one is AVX-512.
            #[cfg(target_arch = "x86_64")]
            {
                let mut avx2 = Vec::new();
                if let Some(ok) = simd::avx2_if_supported(&bytes, &mut avx2) {
                    prop_assert_eq!(ok, want.is_some());
                    if let Some(want) = &want {
                        prop_assert_eq!(&avx2, want);
                    }
                }
            }
        }
    }
}
