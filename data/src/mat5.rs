//! A streaming reader of MATLAB level-5 MAT-files (the format of SVHN's `*_32x32.mat`), for
//! numeric arrays, compressed (`miCOMPRESSED`, zlib) or not, little- or big-endian.
//!
//! Layout: a 128-byte header (text, subsystem offset, version 0x0100, endian indicator `IM` for
//! little-endian), then data elements `[u32 type, u32 nbytes, data, padding to 8 bytes]` (or the
//! 8-byte "small element" form when the high half of the first word is non-zero). An
//! `miCOMPRESSED` element holds one zlib stream that inflates to one complete element. An
//! `miMATRIX` holds, in order: array flags (class in the low byte), dimensions, name, real part.
//! Arrays are column-major. The data of each array is handed to the caller as a stream, so a
//! large array is never held twice in memory.

use std::io::{self, Read};
use std::path::Path;

use candle_core::{bail, Result};

/// MAT-file v5 data type `miINT8`.
pub const MI_INT8: u32 = 1;
/// `miUINT8`.
pub const MI_UINT8: u32 = 2;
/// `miINT16`.
pub const MI_INT16: u32 = 3;
/// `miUINT16`.
pub const MI_UINT16: u32 = 4;
/// `miINT32`.
pub const MI_INT32: u32 = 5;
/// `miUINT32`.
pub const MI_UINT32: u32 = 6;
/// `miSINGLE` (f32).
pub const MI_SINGLE: u32 = 7;
/// `miDOUBLE` (f64).
pub const MI_DOUBLE: u32 = 9;
/// `miINT64`.
pub const MI_INT64: u32 = 12;
/// `miUINT64`.
pub const MI_UINT64: u32 = 13;
/// `miMATRIX`: an array element.
pub const MI_MATRIX: u32 = 14;
/// `miCOMPRESSED`: a zlib-compressed element.
pub const MI_COMPRESSED: u32 = 15;

/// What the caller learns about an array before reading its data.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayHeader {
    /// The variable's name (`X`, `y`).
    pub name: String,
    /// MATLAB class (`mxUINT8` = 9, `mxDOUBLE` = 6, ...).
    pub class: u8,
    /// Dimensions, column-major (first varies fastest).
    pub dims: Vec<usize>,
    /// The `mi` type the real part is stored as.
    pub data_type: u32,
    /// Bytes of the real part's data.
    pub data_bytes: usize,
    /// The file's byte order (`MI` read as `IM` in its header).
    pub big_endian: bool,
}

impl ArrayHeader {
    /// The number of elements, the product of the dimensions.
    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Reads the whole real part as f64 (for small arrays such as labels).
    pub fn read_f64(&self, r: &mut dyn Read) -> Result<Vec<f64>> {
        let width = match self.data_type {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            t => bail!("array {:?}: unsupported data type {t}", self.name),
        };
        if self.data_bytes != width * self.elem_count() {
            bail!(
                "array {:?}: {} data bytes for {} elements of {width} bytes",
                self.name,
                self.data_bytes,
                self.elem_count()
            )
        }
        let mut buf = vec![0u8; self.data_bytes];
        r.read_exact(&mut buf).map_err(|e| io_err(&self.name, e))?;
        let be = self.big_endian;
        let v = buf
            .chunks_exact(width)
            .map(|b| {
                let mut a = [0u8; 8];
                a[..width].copy_from_slice(b);
                if be {
                    a[..width].reverse();
                }
                let u = u64::from_le_bytes(a);
                match self.data_type {
                    MI_INT8 => u as u8 as i8 as f64,
                    MI_UINT8 => u as u8 as f64,
                    MI_INT16 => u as u16 as i16 as f64,
                    MI_UINT16 => u as u16 as f64,
                    MI_INT32 => u as u32 as i32 as f64,
                    MI_UINT32 => u as u32 as f64,
                    MI_SINGLE => f32::from_bits(u as u32) as f64,
                    MI_DOUBLE => f64::from_bits(u),
                    MI_INT64 => u as i64 as f64,
                    _ => u as f64,
                }
            })
            .collect();
        Ok(v)
    }
}

fn io_err(what: &str, e: io::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what}: {e}"))
}

struct Tag {
    ty: u32,
    nbytes: usize,
    /// Small-element payload (at most 4 bytes), already read.
    small: Option<[u8; 4]>,
}

fn read_u32(r: &mut dyn Read, be: bool) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
}

fn read_tag(r: &mut dyn Read, be: bool) -> io::Result<Option<Tag>> {
    let mut first = [0u8; 4];
    match r.read(&mut first[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut first[1..])?,
    }
    let w = if be { u32::from_be_bytes(first) } else { u32::from_le_bytes(first) };
    if w >> 16 != 0 {
        let mut data = [0u8; 4];
        r.read_exact(&mut data)?;
        return Ok(Some(Tag { ty: w & 0xffff, nbytes: (w >> 16) as usize, small: Some(data) }));
    }
    let nbytes = read_u32(r, be)? as usize;
    Ok(Some(Tag { ty: w, nbytes, small: None }))
}

fn skip(r: &mut dyn Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated element"));
    }
    Ok(())
}

fn pad8(n: usize) -> usize {
    (8 - n % 8) % 8
}

/// Reads one sub-element fully (flags, dims, name).
fn read_small_or_full(r: &mut dyn Read, be: bool, what: &str) -> Result<(u32, Vec<u8>)> {
    let tag = read_tag(r, be)
        .map_err(|e| io_err(what, e))?
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: truncated array")))?;
    if let Some(small) = tag.small {
        return Ok((tag.ty, small[..tag.nbytes.min(4)].to_vec()));
    }
    if tag.nbytes > 1 << 20 {
        bail!("{what}: a {}-byte array header field is implausible (corrupt file?)", tag.nbytes)
    }
    let mut buf = vec![0u8; tag.nbytes];
    r.read_exact(&mut buf).map_err(|e| io_err(what, e))?;
    skip(r, pad8(tag.nbytes) as u64).map_err(|e| io_err(what, e))?;
    Ok((tag.ty, buf))
}

/// Parses an `miMATRIX` payload from `r` and hands its real part to `visit`.
fn read_matrix(
    r: &mut dyn Read,
    be: bool,
    what: &str,
    visit: &mut dyn FnMut(&ArrayHeader, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let (_, flags) = read_small_or_full(r, be, what)?;
    if flags.len() < 4 {
        bail!("{what}: malformed array flags")
    }
    let word = if be {
        u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]])
    } else {
        u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]])
    };
    let class = (word & 0xff) as u8;
    if !(6..=15).contains(&class) {
        return Ok(()); // cells, structs, chars, sparse: not numeric arrays, skipped
    }
    let (_, dims_raw) = read_small_or_full(r, be, what)?;
    let dims: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|b| {
            let v = if be {
                i32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]])
            };
            v.max(0) as usize
        })
        .collect();
    let (_, name) = read_small_or_full(r, be, what)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let tag = read_tag(r, be)
        .map_err(|e| io_err(what, e))?
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: array {name:?} has no data")))?;
    let header = ArrayHeader { name, class, dims, data_type: tag.ty, data_bytes: tag.nbytes, big_endian: be };
    match tag.small {
        Some(small) => visit(&header, &mut &small[..tag.nbytes.min(4)]),
        None => {
            let mut data = r.take(tag.nbytes as u64);
            visit(&header, &mut data)?;
            // Whatever the visitor left unread is skipped.
            io::copy(&mut data, &mut io::sink()).map_err(|e| io_err(what, e))?;
            Ok(())
        }
    }
}

/// Calls `visit` with the header and a stream of the data of every numeric array in `path`.
pub fn read_arrays(path: &Path, mut visit: impl FnMut(&ArrayHeader, &mut dyn Read) -> Result<()>) -> Result<()> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| io_err(&what, e))?;
    let mut r = io::BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 128];
    r.read_exact(&mut header)
        .map_err(|_| candle_core::Error::Msg(format!("{what}: shorter than the 128-byte MAT-file header")))?;
    let be = match &header[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => bail!("{what}: not a MATLAB 5 MAT-file (no IM/MI endian indicator at bytes 126-127; MATLAB 7.3 HDF5 files are not supported)"),
    };
    let mut found = false;
    while let Some(tag) = read_tag(&mut r, be).map_err(|e| io_err(&what, e))? {
        match tag.ty {
            MI_COMPRESSED => {
                let mut z = flate2::read::ZlibDecoder::new((&mut r).take(tag.nbytes as u64));
                let inner = read_tag(&mut z, be).map_err(|e| io_err(&what, e))?;
                match inner {
                    Some(t) if t.ty == MI_MATRIX => {
                        read_matrix(&mut z, be, &what, &mut visit)?;
                        found = true;
                    }
                    _ => {}
                }
                // Drain the rest of the compressed element (no padding after it).
                let mut rest = z.into_inner();
                io::copy(&mut rest, &mut io::sink()).map_err(|e| io_err(&what, e))?;
            }
            MI_MATRIX => {
                let mut body = (&mut r).take(tag.nbytes as u64);
                read_matrix(&mut body, be, &what, &mut visit)?;
                io::copy(&mut body, &mut io::sink()).map_err(|e| io_err(&what, e))?;
                skip(&mut r, pad8(tag.nbytes) as u64).map_err(|e| io_err(&what, e))?;
                found = true;
            }
            _ => {
                if tag.small.is_none() {
                    skip(&mut r, (tag.nbytes + pad8(tag.nbytes)) as u64).map_err(|e| io_err(&what, e))?;
                }
            }
        }
    }
    if !found {
        bail!("{what}: no arrays in this MAT-file")
    }
    Ok(())
}
