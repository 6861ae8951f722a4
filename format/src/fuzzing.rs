//! The metadata decoders on a section body of their own, for the fuzz targets: not an API.

use crate::Error;
use crate::meta::{self, CaptureHeader, ProcessInfo};
use crate::wire::Cursor;

/// A HEAD section's body, as the reader decodes it.
pub fn decode_header(body: &[u8]) -> Result<CaptureHeader, Error> {
    meta::decode_header(&mut Cursor::new(body, 0))
}

/// A PROC section's body, as the reader decodes it.
pub fn decode_processes(body: &[u8]) -> Result<Vec<ProcessInfo>, Error> {
    let mut out = Vec::new();
    meta::decode_processes(&mut Cursor::new(body, 0), &mut out)?;
    Ok(out)
}
