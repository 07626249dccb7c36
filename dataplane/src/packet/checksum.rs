//! Internet checksums (RFC 1071) and incremental updates (RFC 1624).
//!
//! Hand-written rather than taken from etherparse's `checksum` module: the
//! pipeline needs an unfolded running sum it can carry across pieces (a
//! template sum plus a length, a pseudo-header plus a message) and RFC 1624's
//! incremental update, which etherparse does not offer. Pure arithmetic, no
//! allocation, never panics.

/// One's-complement sum of `data` added to `initial` (not folded, not inverted).
///
/// `data` is read as big-endian 16-bit words; an odd last byte is padded with
/// a zero byte, as RFC 1071 says. To sum a message in pieces, chain the calls
/// (`sum(b, sum(a, 0))`) with every piece but the last of even length.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // Summing big-endian 32-bit words and folding later gives the same
    // one's-complement sum as 16-bit words (2^16 ≡ 1 mod 0xffff), with half
    // the additions. A u64 accumulator cannot overflow for any slice that fits
    // in memory (2^32 words of at most 2^32 - 1).
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        acc += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let rest = words.remainder();
    match *rest {
        [a] => acc += u64::from(u16::from_be_bytes([a, 0])),
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => {
            acc += u64::from(u16::from_be_bytes([a, b]));
            acc += u64::from(u16::from_be_bytes([c, 0]));
        }
        _ => {}
    }
    fold64(acc)
}

/// [`sum`] of an IPv4 header, checksum field included: unrolled for the
/// usual 20 bytes (no options), the general loop otherwise.
#[inline(always)]
pub fn ipv4_header_sum(header: &[u8]) -> u32 {
    match header.first_chunk::<20>() {
        Some(h) if header.len() == 20 => {
            let word =
                |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
            fold64(word(0) + word(4) + word(8) + word(12) + word(16))
        }
        _ => sum(header, 0),
    }
}

/// Fold a 64-bit one's-complement accumulator to 32 bits (end-around carry).
#[inline]
fn fold64(mut acc: u64) -> u32 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    // Two folds leave at most 32 bits: the first gives < 2^33, the second
    // < 2^32 + 2, whose carry the second fold already absorbed.
    acc as u32
}

/// Fold a 32-bit sum to 16 bits and invert it: the checksum to write.
#[inline]
pub fn finish(sum: u32) -> u16 {
    let mut s = (sum & 0xffff) + (sum >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The IPv4 header checksum of `header` (whose checksum field is taken as zero).
///
/// `header` is the whole header, options included (IHL × 4 bytes). A slice
/// shorter than 12 bytes has no checksum field and is summed as it is.
#[inline]
pub fn ipv4_header(header: &[u8]) -> u16 {
    match (header.get(..10), header.get(12..)) {
        (Some(before), Some(after)) => finish(sum(after, sum(before, 0))),
        _ => finish(sum(header, 0)),
    }
}

/// RFC 1624 incremental update: the new checksum after a 16-bit word of the
/// covered data changed from `old` to `new`.
///
/// Uses RFC 1624's equation 3, `HC' = ~(~HC + ~m + m')`, which (unlike
/// RFC 1141's) never produces the negative zero a full recomputation cannot.
#[inline]
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    finish(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook algorithm, one 16-bit word at a time, for comparison.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A well-known example header (Wikipedia's "IPv4 header checksum").
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&header), 0xb861);
        // Summing the header with its checksum in place gives zero.
        assert_eq!(finish(sum(&header, 0)), 0);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(finish(sum(&[0x12], 0)), !0x1200);
        assert_eq!(finish(sum(&[0x12, 0x34, 0x56], 0)), !(0x1234u16 + 0x5600));
        assert_eq!(finish(sum(&[], 0)), 0xffff);
    }

    #[test]
    fn short_header_does_not_panic() {
        assert_eq!(ipv4_header(&[0x45, 0x00]), reference(&[0x45, 0x00]));
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(finish(sum(&data, 0)), reference(&data));
        }

        #[test]
        fn chained_sums_match_whole(
            a in proptest::collection::vec(any::<u8>(), 0..50),
            b in proptest::collection::vec(any::<u8>(), 0..50),
        ) {
            let mut a = a;
            if a.len() % 2 == 1 {
                a.pop();
            }
            let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
            prop_assert_eq!(finish(sum(&b, sum(&a, 0))), finish(sum(&whole, 0)));
        }

        #[test]
        fn update16_matches_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 4..64),
            word in 0usize..32,
            new in any::<u16>(),
        ) {
            // Keep the data non-zero: an all-zero message is the one case where
            // a full computation gives 0xffff and eq. 3 gives 0x0000, and no
            // real header is all zeros.
            data[0] |= 0x40;
            let words = data.len() / 2;
            // Never the first word, so the message stays non-zero.
            let i = (1 + word % (words - 1)) * 2;
            let before = reference(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update16(before, old, new), reference(&data));
        }
    }
}
