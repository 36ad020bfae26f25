//! `Pod`: element types a device may read and write as raw bytes.

/// A plain-data type: any bit pattern is a valid value, no padding, no pointers.
///
/// # Safety
///
/// Implement only for types where every byte pattern of `size_of::<Self>()` bytes is a
/// valid value and which contain no padding, references or interior mutability: a device
/// writes raw bytes into them.
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: primitive integers and floats accept every bit pattern and have no padding.
        unsafe impl Pod for $t {}
    )*};
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of plain data is plain data: elements are laid out without padding.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
