//! `download-all`: every proto file in one zip archive (deflate), in memory (files are at most
//! 1 MiB each and the registry holds one per app label).

use std::io::Write as _;

use crate::domain::error::InternalError;
use crate::domain::Error;

/// A zip of `(filename, text)` pairs, in the order given.
pub fn zip_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<u8>, Error> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, text) in files {
        zip.start_file(name, options).map_err(zip_error)?;
        zip.write_all(text.as_bytes()).map_err(Error::from)?;
    }
    Ok(zip.finish().map_err(zip_error)?.into_inner())
}

fn zip_error(e: zip::result::ZipError) -> Error {
    InternalError::Area { area: "protos", source: Box::new(e) }.into()
}
