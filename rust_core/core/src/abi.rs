//! ABI words: fixed-size `abi.encode` of static types, written straight into a stack buffer.

/// Builds `abi.encode(...)` of `N` static words.
pub(crate) struct Words<const B: usize> {
    buf: [u8; B],
    at: usize,
}

impl<const B: usize> Words<B> {
    pub(crate) fn new() -> Self {
        Self { buf: [0u8; B], at: 0 }
    }

    /// A `bytes32` (or any 32 bytes already in word form).
    pub(crate) fn bytes32(mut self, word: &[u8; 32]) -> Self {
        self.buf[self.at..self.at + 32].copy_from_slice(word);
        self.at += 32;
        self
    }

    /// A `uintN` for N <= 64, right-aligned.
    pub(crate) fn uint(mut self, value: u64) -> Self {
        self.buf[self.at + 24..self.at + 32].copy_from_slice(&value.to_be_bytes());
        self.at += 32;
        self
    }

    /// An `address`, right-aligned.
    pub(crate) fn address(mut self, addr: &[u8; 20]) -> Self {
        self.buf[self.at + 12..self.at + 32].copy_from_slice(addr);
        self.at += 32;
        self
    }

    pub(crate) fn finish(self) -> [u8; B] {
        debug_assert_eq!(self.at, B, "ABI buffer not filled exactly");
        self.buf
    }
}
