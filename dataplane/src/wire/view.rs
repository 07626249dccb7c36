//! What every header view is made of: the [`view!`] macro that declares
//! one, the [`Error`] its `new_checked` returns, and the reads and writes
//! of header fields (byte ranges) that never panic, whatever the buffer.

/// A header field: the byte range it takes, from the header's first byte.
pub(super) type Field = core::ops::Range<usize>;

/// The part every view shares: the struct, `new_unchecked`, `new_checked`
/// (which calls the view's own `check_len`), `into_inner` and `AsRef`.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap `buffer` without checking it: for a buffer whose length
            /// the caller has proved. Never panics either way: a short
            /// buffer reads as zeros.
            #[inline(always)]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wrap `buffer` after [`Self::check_len`]: every field of the
            /// header is then in the buffer.
            #[inline(always)]
            pub fn new_checked(buffer: T) -> Result<Self, $crate::wire::Error> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// The buffer back.
            #[inline(always)]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }

        impl<T: AsRef<[u8]>> AsRef<[u8]> for $name<T> {
            #[inline(always)]
            fn as_ref(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }
    };
}
pub(super) use view;

/// Why `new_checked` refused a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header, or than the header length
    /// one of its fields gives.
    #[error("buffer shorter than the header")]
    Truncated,
    /// A header length field is smaller than the fixed header it belongs to.
    #[error("header length field smaller than the fixed header")]
    BadHeaderLength,
}

/// The byte at `at`, or 0 past the buffer.
#[inline(always)]
pub(super) fn read_u8(data: &[u8], at: usize) -> u8 {
    match data.get(at) {
        Some(byte) => *byte,
        None => 0,
    }
}

/// The bytes of `field`, or zeros when it is not (wholly) in the buffer.
#[inline(always)]
pub(super) fn read_array<const N: usize>(data: &[u8], field: Field) -> [u8; N] {
    match data.get(field).and_then(|b| <[u8; N]>::try_from(b).ok()) {
        Some(bytes) => bytes,
        None => [0; N],
    }
}

/// `field` as a big-endian u16 (0 when it is not in the buffer).
#[inline(always)]
pub(super) fn read_u16(data: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(read_array(data, field))
}

/// `field` as a big-endian u32 (0 when it is not in the buffer).
#[inline(always)]
pub(super) fn read_u32(data: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(read_array(data, field))
}

/// Write the byte at `at`, when it is in the buffer.
#[inline(always)]
pub(super) fn write_u8(data: &mut [u8], at: usize, value: u8) {
    if let Some(byte) = data.get_mut(at) {
        *byte = value;
    }
}

/// Write `field`, when it is (wholly) in the buffer.
#[inline(always)]
pub(super) fn write_array<const N: usize>(data: &mut [u8], field: Field, value: [u8; N]) {
    if let Some(bytes) = data
        .get_mut(field)
        .and_then(|b| <&mut [u8; N]>::try_from(b).ok())
    {
        *bytes = value;
    }
}

/// Write `field` as a big-endian u16.
#[inline(always)]
pub(super) fn write_u16(data: &mut [u8], field: Field, value: u16) {
    write_array(data, field, value.to_be_bytes());
}

/// Write `field` as a big-endian u32.
#[inline(always)]
pub(super) fn write_u32(data: &mut [u8], field: Field, value: u32) {
    write_array(data, field, value.to_be_bytes());
}

/// `data[from..to]`, cut to the buffer (empty when `from` is past it or
/// past `to`).
#[inline(always)]
pub(super) fn slice(data: &[u8], from: usize, to: usize) -> &[u8] {
    let to = to.min(data.len());
    data.get(from..to).unwrap_or_default()
}

/// `data[from..to]`, cut to the buffer, mutable.
#[inline(always)]
pub(super) fn slice_mut(data: &mut [u8], from: usize, to: usize) -> &mut [u8] {
    let to = to.min(data.len());
    data.get_mut(from..to).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_never_panic_past_the_buffer() {
        let mut short = [0x12u8, 0x34, 0x56];
        assert_eq!(read_u16(&short, 0..2), 0x1234);
        assert_eq!(read_u16(&short, 2..4), 0);
        assert_eq!(read_u32(&short, 0..4), 0);
        assert_eq!(read_u8(&short, 9), 0);
        write_u16(&mut short, 2..4, 0xffff);
        write_u8(&mut short, 3, 1);
        assert_eq!(short, [0x12, 0x34, 0x56]);
        assert_eq!(slice(&short, 1, 9), &[0x34, 0x56]);
        assert_eq!(slice(&short, 4, 9), &[] as &[u8]);
        assert_eq!(slice(&short, 2, 1), &[] as &[u8]);
    }
}
