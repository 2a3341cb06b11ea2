//! A length-prefixed header at the start of a stream: 4 bytes big-endian
//! length, then that many bytes (tether sends JSON).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Headers are small; anything larger is refused rather than allocated.
pub const MAX_HEADER: usize = 1 << 20;

pub async fn write_header<W: AsyncWrite + Unpin>(w: &mut W, header: &[u8]) -> io::Result<()> {
    if header.len() > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a stream header of {} bytes exceeds {MAX_HEADER}",
                header.len()
            ),
        ));
    }
    w.write_all(&(header.len() as u32).to_be_bytes()).await?;
    w.write_all(header).await?;
    w.flush().await
}

pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a stream header of {len} bytes exceeds {MAX_HEADER}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}
