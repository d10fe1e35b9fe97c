//! A minimal PNG writer (8-bit RGB, no interlacing) for shownet's figures: the image
//! rows, each prefixed with filter type 0, in one zlib stream (flate2) in one IDAT
//! chunk, CRCs by crc32fast.

use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::Write;

/// The PNG file of a `width` x `height` image given as RGB triples, row by row.
pub fn encode_rgb(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(
        rgb.len(),
        width * height * 3,
        "RGB buffer of the wrong size"
    );
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    for row in rgb.chunks(width * 3).take(height) {
        // Writing into a Vec cannot fail.
        z.write_all(&[0]).unwrap();
        z.write_all(row).unwrap();
    }
    if height == 0 {
        z.write_all(&[]).unwrap();
    }
    let idat = z.finish().unwrap();
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// One chunk: length, type, data, CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_crc_and_layout() {
        let png = encode_rgb(2, 1, &[255, 0, 0, 0, 0, 255]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR length 13, then the type.
        assert_eq!(&png[8..16], b"\0\0\0\x0dIHDR");
        // The IEND chunk is always the same 12 bytes.
        assert_eq!(&png[png.len() - 12..], b"\0\0\0\0IEND\xae\x42\x60\x82");
    }
}
