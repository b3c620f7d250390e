//! Gathering a body's chunks into one [`Bytes`], without a copy when it arrives in one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Gathers the body's chunks. A body that arrives in one chunk (the usual case for a
/// webhook) is kept as that chunk, without a copy; later chunks go into one buffer sized
/// from the declared length.
#[derive(Default)]
pub(crate) struct Collector {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    len: usize,
    hint: usize,
}

impl Collector {
    pub(crate) fn with_hint(hint: usize) -> Self {
        Self {
            hint,
            ..Self::default()
        }
    }

    /// Adds a chunk; false if the body is now over `limit`.
    pub(crate) fn push(&mut self, mut data: impl Buf, limit: usize) -> bool {
        let n = data.remaining();
        if n == 0 {
            return true;
        }
        match self.len.checked_add(n) {
            Some(len) if len <= limit => self.len = len,
            _ => return false,
        }
        if let Some(buf) = &mut self.rest {
            buf.put(data);
        } else if let Some(first) = self.first.take() {
            let mut buf = BytesMut::with_capacity(self.hint.max(self.len));
            buf.extend_from_slice(&first);
            buf.put(data);
            self.rest = Some(buf);
        } else {
            self.first = Some(data.copy_to_bytes(n));
        }
        true
    }

    pub(crate) fn take(&mut self) -> Bytes {
        match (self.rest.take(), self.first.take()) {
            (Some(buf), _) => buf.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Collector;
    use bytes::Bytes;

    #[test]
    fn one_chunk_is_kept_without_copy() {
        let chunk = Bytes::from_static(b"hello");
        let mut c = Collector::with_hint(5);
        assert!(c.push(chunk.clone(), 5));
        let out = c.take();
        assert_eq!(out, chunk);
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn chunks_are_joined_in_order_and_capped() {
        let mut c = Collector::with_hint(0);
        assert!(c.push(Bytes::from_static(b"ab"), 6));
        assert!(c.push(Bytes::from_static(b""), 6));
        assert!(c.push(Bytes::from_static(b"cd"), 6));
        assert!(c.push(Bytes::from_static(b"ef"), 6));
        assert!(!c.push(Bytes::from_static(b"g"), 6));
        assert_eq!(c.take(), Bytes::from_static(b"abcdef"));
    }

    #[test]
    fn empty_body_is_empty() {
        assert!(Collector::default().take().is_empty());
    }
}
