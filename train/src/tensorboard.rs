//! TensorBoard event files, written and read without TensorFlow: `tb/events.out.tfevents.*` in a
//! run directory, which `tensorboard --logdir runs` shows.
//!
//! A file is a sequence of records, each `length (u64 LE) | masked CRC-32C of the length (u32 LE)
//! | data | masked CRC-32C of the data`, where the mask is `((crc >> 15) | (crc << 17)) +
//! 0xa282ead8` and the data is one `tensorflow.Event` protobuf message. The first event carries
//! `file_version = "brain.Event:2"`; the others a `Summary` of scalars (`simple_value`) or of a
//! text tensor (the text plugin's `DT_STRING` scalar). The few protobuf fields needed are encoded
//! here by hand, field numbers from `tensorflow/core/util/event.proto` and
//! `tensorflow/core/framework/summary.proto`.
//!
//! A resumed run rewrites its file without the events after its checkpoint's step
//! ([`EventWriter::open`]) and appends from there: no step appears twice.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

const MASK_DELTA: u32 = 0xa282_ead8;
const FILE_VERSION: &str = "brain.Event:2";
/// TensorFlow's `DT_STRING`.
const DT_STRING: u64 = 7;

/// TensorBoard's masked CRC-32C of `data`.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// What a summary value holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f32),
    Text(String),
}

/// One event as this module writes and reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    /// `Some` for the file's first event.
    pub file_version: Option<String>,
    /// Tagged values of its summary.
    pub values: Vec<(String, Value)>,
}

impl Event {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![];
        put_tag(&mut out, 1, 1);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        put_tag(&mut out, 2, 0);
        put_varint(&mut out, self.step as u64);
        if let Some(v) = &self.file_version {
            put_bytes(&mut out, 3, v.as_bytes());
        }
        if !self.values.is_empty() {
            let mut summary = vec![];
            for (tag, value) in &self.values {
                put_bytes(&mut summary, 1, &encode_value(tag, value));
            }
            put_bytes(&mut out, 5, &summary);
        }
        out
    }

    fn decode(data: &[u8]) -> Result<Self> {
        let mut e = Event { wall_time: 0.0, step: 0, file_version: None, values: vec![] };
        for field in Fields(data) {
            match field? {
                (1, Wire::Fixed64(v)) => e.wall_time = f64::from_bits(v),
                (2, Wire::Varint(v)) => e.step = v as i64,
                (3, Wire::Bytes(b)) => e.file_version = Some(String::from_utf8_lossy(b).into_owned()),
                (5, Wire::Bytes(b)) => {
                    for f in Fields(b) {
                        if let (1, Wire::Bytes(v)) = f? {
                            e.values.push(decode_value(v)?);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(e)
    }
}

/// A `Summary.Value`: tag (1), and `simple_value` (2) or the text plugin's metadata (9) and tensor (8).
fn encode_value(tag: &str, value: &Value) -> Vec<u8> {
    let mut out = vec![];
    put_bytes(&mut out, 1, tag.as_bytes());
    match value {
        Value::Scalar(v) => {
            put_tag(&mut out, 2, 5);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Text(text) => {
            let mut plugin = vec![];
            put_bytes(&mut plugin, 1, b"text");
            let mut metadata = vec![];
            put_bytes(&mut metadata, 1, &plugin);
            put_bytes(&mut out, 9, &metadata);
            let mut tensor = vec![];
            put_tag(&mut tensor, 1, 0);
            put_varint(&mut tensor, DT_STRING);
            put_bytes(&mut tensor, 2, &[]);
            put_bytes(&mut tensor, 8, text.as_bytes());
            put_bytes(&mut out, 8, &tensor);
        }
    }
    out
}

fn decode_value(data: &[u8]) -> Result<(String, Value)> {
    let (mut tag, mut value) = (String::new(), None);
    for field in Fields(data) {
        match field? {
            (1, Wire::Bytes(b)) => tag = String::from_utf8_lossy(b).into_owned(),
            (2, Wire::Fixed32(v)) => value = Some(Value::Scalar(f32::from_bits(v))),
            (8, Wire::Bytes(t)) => {
                for f in Fields(t) {
                    if let (8, Wire::Bytes(s)) = f? {
                        value = Some(Value::Text(String::from_utf8_lossy(s).into_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    Ok((tag.clone(), value.with_context(|| format!("summary value {tag:?} is neither a scalar nor text"))?))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf field's payload.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one protobuf message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.0.split_first() else { bail!("truncated varint") };
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            bail!("truncated field: {n} bytes wanted, {} left", self.0.len())
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut field = || -> Result<(u32, Wire<'a>)> {
            let key = self.varint()?;
            let number = (key >> 3) as u32;
            let data: &'a [u8] = self.0;
            let mut rest = Fields(data);
            let wire = match key & 7 {
                0 => Wire::Varint(rest.varint()?),
                1 => Wire::Fixed64(u64::from_le_bytes(rest.bytes(8)?.try_into()?)),
                2 => {
                    let n = rest.varint()? as usize;
                    if rest.0.len() < n {
                        bail!("truncated field {number}")
                    }
                    let (bytes, tail) = rest.0.split_at(n);
                    rest.0 = tail;
                    Wire::Bytes(bytes)
                }
                5 => Wire::Fixed32(u32::from_le_bytes(rest.bytes(4)?.try_into()?)),
                w => bail!("unsupported wire type {w} in field {number}"),
            };
            self.0 = rest.0;
            Ok((number, wire))
        };
        let out = field();
        if out.is_err() {
            self.0 = &[];
        }
        Some(out)
    }
}

/// One record of an event file: the framing around `data`.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Every event of the event file at `path`, each record's checksums verified. A last record cut
/// short (a process killed while writing it) ends the list.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut events = vec![];
    let mut at = 0;
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?);
        if masked_crc(len_bytes) != crc {
            bail!("{}: bad length checksum at byte {at}", path.display())
        }
        let len = u64::from_le_bytes(len_bytes.try_into()?) as usize;
        let Some(end) = (at + 12).checked_add(len).filter(|e| e + 4 <= bytes.len()) else { break };
        let data = &bytes[at + 12..end];
        if masked_crc(data) != u32::from_le_bytes(bytes[end..end + 4].try_into()?) {
            bail!("{}: bad data checksum in the record at byte {at}", path.display())
        }
        events.push(Event::decode(data).with_context(|| format!("{}: record at byte {at}", path.display()))?);
        at = end + 4;
    }
    Ok(events)
}

/// Appends events to a run's event file.
pub struct EventWriter {
    path: PathBuf,
    file: fs::File,
}

impl EventWriter {
    /// The event file in `dir` (created with its `file_version` event if there is none), keeping
    /// only the events up to `step`: a resumed run drops what came after its checkpoint.
    pub fn open(dir: &Path, step: u64) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = match existing(dir)? {
            Some(path) => {
                let kept: Vec<u8> = read_events(&path)?
                    .iter()
                    .filter(|e| e.file_version.is_some() || e.step <= step as i64)
                    .flat_map(|e| record(&e.encode()))
                    .collect();
                let tmp = path.with_extension("tmp");
                fs::write(&tmp, kept).with_context(|| format!("writing {}", tmp.display()))?;
                fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
                path
            }
            None => {
                let (now, host) = (now(), hostname());
                let path = dir.join(format!("events.out.tfevents.{}.{host}", now as u64));
                let first = Event { wall_time: now, step: 0, file_version: Some(FILE_VERSION.into()), values: vec![] };
                fs::write(&path, record(&first.encode())).with_context(|| format!("writing {}", path.display()))?;
                path
            }
        };
        let file =
            fs::OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path, file })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event of `values` at `step` (not yet flushed to the disk).
    pub fn write(&mut self, step: u64, values: Vec<(String, Value)>) -> Result<()> {
        let event = Event { wall_time: now(), step: step as i64, file_version: None, values };
        self.file.write_all(&record(&event.encode())).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Writes the scalars `(tag, value)` at `step`, one event.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
        self.write(step, scalars.iter().map(|(t, v)| (t.to_string(), Value::Scalar(*v as f32))).collect())
    }

    /// Writes `text` (markdown) under `tag` at `step`.
    pub fn text(&mut self, step: u64, tag: &str, text: &str) -> Result<()> {
        self.write(step, vec![(tag.to_string(), Value::Text(text.to_string()))])
    }

    /// Flushes what was written to the disk.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// The event file already in `dir` (the first by name, if several).
fn existing(dir: &Path) -> Result<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events.out.tfevents.")))
        .filter(|p| p.extension().is_none_or(|e| e != "tmp"))
        .collect();
    files.sort();
    Ok(files.into_iter().next())
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn hostname() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let name = name.unwrap_or_else(|| "localhost".into());
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TensorBoard's own test vector (tensorboard's `data/server/masked_crc.rs`).
    #[test]
    fn masked_crc_matches_tensorboard() {
        assert_eq!(masked_crc(b"\x1a\x11CRC test, one two"), 0x5794d08a);
    }

    #[test]
    fn events_round_trip_and_resume_drops_later_steps() {
        let dir = std::env::temp_dir().join(format!("alig-tb-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut w = EventWriter::open(&dir, 0).unwrap();
        w.text(0, "config", "| a | b |").unwrap();
        for step in 1..=4 {
            w.scalars(step, &[("train/loss", 1.0 / step as f64), ("train/lr", 0.1)]).unwrap();
        }
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(events[1].values, [("config".to_string(), Value::Text("| a | b |".into()))]);
        assert_eq!(events[3].step, 2);
        assert_eq!(events[3].values[0], ("train/loss".to_string(), Value::Scalar(0.5)));
        // Resuming after step 2 keeps steps 0..=2 and appends after them.
        let mut w = EventWriter::open(&dir, 2).unwrap();
        assert_eq!(w.path(), path);
        w.scalars(3, &[("train/loss", 9.0)]).unwrap();
        drop(w);
        let steps: Vec<i64> = read_events(&path).unwrap().iter().map(|e| e.step).collect();
        assert_eq!(steps, [0, 0, 1, 2, 3]);
        // A cut-off last record is not an event; a corrupted one is an error naming the file.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 4);
        let mut corrupted = bytes.clone();
        corrupted[bytes.len() - 6] ^= 0xff;
        fs::write(&path, &corrupted).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains("events.out.tfevents"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
