//! The spool: a durable on-disk queue of everything the agent sends to the
//! server (fault events, inventory, topology), so nothing detected is lost
//! while the server is unreachable or the agent restarts.
//!
//! # On disk
//!
//! A directory of append-only *segment* files named by a 20-digit number
//! (`00000000000000000001.seg`) and one `ack` file. A segment is a sequence
//! of framed records:
//!
//! ```text
//! u32 LE length of (kind + payload) | u32 LE CRC32 of (kind + payload) | u8 kind | payload
//! ```
//!
//! The payload is the JSON of one `AgentMessage`. `ack` holds the position
//! (segment, byte offset) of the first record the server has not yet
//! acknowledged, with its own CRC; it is replaced atomically (temporary file,
//! fsync, rename, fsync of the directory). Segments wholly before the ack
//! position are deleted.
//!
//! # Durability
//!
//! [`Spool::append`] writes a batch of records with one `write` and one
//! `fdatasync`, not one per record. A record is durable once `append`
//! returns. After a crash (kill -9, power loss) [`Spool::open`] scans the
//! unacknowledged records, and a torn or corrupt record (short, or failing
//! its CRC) is cut off together with everything after it in that segment,
//! with a log line; only records that were never fsynced can be there.
//!
//! # Size bound
//!
//! The segment files never exceed `max_bytes` together. When an append
//! would cross it, the spool is *compacted*: the unacknowledged records are
//! copied to a new segment, leaving out the oldest records until they fill at
//! most three quarters of `max_bytes`. Inventory and topology records go
//! first (a later report supersedes them anyway), oldest first; only if
//! faults alone are still too many are the oldest faults dropped, with an
//! error line naming how many. While a compaction runs, the disk briefly
//! holds both the old segments and the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{sync_dir, write_atomic};

#[cfg(test)]
mod tests;

/// Bytes of a record's frame before its kind byte: length and CRC.
const HEADER: u64 = 8;
/// Records larger than this are refused on append and treated as corruption
/// when read.
pub const MAX_RECORD: u32 = 16 * 1024 * 1024;
const ACK_FILE: &str = "ack";
const SEGMENT_SUFFIX: &str = ".seg";

/// What a record holds; decides what the size policy drops first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A fault event: dropped only when nothing else is left.
    Fault,
    /// An inventory report (superseded by the next one).
    Inventory,
    /// A topology report (superseded by the next one).
    Topology,
}

impl RecordKind {
    fn byte(self) -> u8 {
        match self {
            RecordKind::Fault => 1,
            RecordKind::Inventory => 2,
            RecordKind::Topology => 3,
        }
    }

    fn from_byte(byte: u8) -> Self {
        match byte {
            1 => RecordKind::Fault,
            2 => RecordKind::Inventory,
            // Unknown kinds are treated as droppable reports.
            _ => RecordKind::Topology,
        }
    }
}

/// Settings of a spool.
#[derive(Debug, Clone, Copy)]
pub struct SpoolOptions {
    /// Upper bound of all segment files together.
    pub max_bytes: u64,
    /// A new segment is started once the current one reaches this size.
    pub segment_bytes: u64,
}

impl SpoolOptions {
    /// `max_bytes` with segments of an eighth of it (at most 4 MiB, at
    /// least 4 KiB).
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(4096, 4 * 1024 * 1024),
        }
    }
}

/// A position in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    seg: u64,
    off: u64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    num: u64,
    size: u64,
}

/// One record read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it holds.
    pub kind: RecordKind,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

/// Records read by [`Spool::peek`], with what [`Spool::ack`] needs to drop
/// them once the server has them.
#[derive(Debug)]
pub struct Peeked {
    /// Oldest first.
    pub records: Vec<Record>,
    token: AckToken,
}

impl Peeked {
    /// What to pass to [`Spool::ack`] after the first `n` records were
    /// acknowledged.
    pub fn ack_first(&self, n: usize) -> AckToken {
        let n = n.min(self.records.len());
        AckToken {
            generation: self.token.generation,
            end: if n == 0 {
                self.token.start
            } else {
                self.token.ends[n - 1]
            },
            start: self.token.start,
            ends: Vec::new(),
            count: n as u64,
        }
    }
}

/// Identifies records to acknowledge; stale after a compaction.
#[derive(Debug, Clone)]
pub struct AckToken {
    generation: u64,
    start: Pos,
    end: Pos,
    ends: Vec<Pos>,
    count: u64,
}

/// What an append had to drop to stay within `max_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Inventory and topology records dropped.
    pub reports: u64,
    /// Fault events dropped.
    pub faults: u64,
}

/// The durable queue; see the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    segments: Vec<Segment>,
    ack: Pos,
    writer: File,
    records: u64,
    generation: u64,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, cutting off torn or
    /// corrupt records left by a crash.
    pub fn open(dir: &Path, options: SpoolOptions) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut nums = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(num) = name
                .strip_suffix(SEGMENT_SUFFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                nums.push(num);
            } else if name.contains(".tmp") {
                // An atomic write interrupted by a crash.
                let _ = fs::remove_file(entry.path());
            }
        }
        nums.sort_unstable();
        let ack = read_ack(&dir.join(ACK_FILE));
        let mut ack = match ack {
            Some(ack) => ack,
            None => Pos {
                seg: nums.first().copied().unwrap_or(1),
                off: 0,
            },
        };
        let mut segments = Vec::new();
        for num in nums {
            let path = segment_path(dir, num);
            if num < ack.seg {
                fs::remove_file(&path)?;
                continue;
            }
            segments.push(Segment {
                num,
                size: fs::metadata(&path)?.len(),
            });
        }
        if segments.first().is_some_and(|s| s.num > ack.seg) || segments.is_empty() {
            // The acknowledged segment is gone (fully acknowledged and
            // deleted): start at the next one.
            ack = Pos {
                seg: segments.first().map_or(ack.seg.max(1), |s| s.num),
                off: 0,
            };
        }
        let mut records = 0;
        for segment in &mut segments {
            let from = if segment.num == ack.seg {
                ack.off.min(segment.size)
            } else {
                0
            };
            let path = segment_path(dir, segment.num);
            let scan = scan(&path, from, |_, _| {})?;
            records += scan.records;
            if scan.valid_end < segment.size {
                tracing::warn!(
                    segment = %path.display(),
                    offset = scan.valid_end,
                    bytes = segment.size - scan.valid_end,
                    "spool: cut off a torn or corrupt record (and anything after it) left by a crash"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(scan.valid_end)?;
                file.sync_all()?;
                segment.size = scan.valid_end;
            }
        }
        if ack.off > segments.first().map_or(0, |s| s.size) {
            ack.off = segments.first().map_or(0, |s| s.size);
        }
        if segments.is_empty() {
            File::create(segment_path(dir, ack.seg))?;
            sync_dir(dir)?;
            segments.push(Segment {
                num: ack.seg,
                size: 0,
            });
        }
        let last = segments.last().map_or(ack.seg, |s| s.num);
        let writer = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, last))?;
        let spool = Spool {
            dir: dir.to_owned(),
            options,
            segments,
            ack,
            writer,
            records,
            generation: 0,
        };
        spool.write_ack()?;
        Ok(spool)
    }

    /// Unacknowledged records.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether every record has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes of all segment files (what `max_bytes` bounds).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Appends records durably: one write and one fsync for the batch. If
    /// the spool would exceed `max_bytes`, it is compacted first (see the
    /// module documentation); what that dropped is returned.
    pub fn append(&mut self, records: &[(RecordKind, &[u8])]) -> io::Result<Dropped> {
        if records.is_empty() {
            return Ok(Dropped::default());
        }
        let mut buf = Vec::new();
        for (kind, payload) in records {
            let len = u32::try_from(payload.len() + 1)
                .ok()
                .filter(|len| *len <= MAX_RECORD)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("spool record of {} bytes is too large", payload.len()),
                    )
                })?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&[kind.byte()]);
            crc.update(payload);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc.finalize().to_le_bytes());
            buf.push(kind.byte());
            buf.extend_from_slice(payload);
        }
        let need = buf.len() as u64;
        if need > self.options.max_bytes / 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{need} bytes of records do not fit a spool of {} bytes",
                    self.options.max_bytes
                ),
            ));
        }
        let mut dropped = Dropped::default();
        if self.disk_bytes() + need > self.options.max_bytes {
            dropped = self.compact(need)?;
        }
        if self.active().size >= self.options.segment_bytes {
            self.roll()?;
        }
        let before = self.active().size;
        let written = self
            .writer
            .write_all(&buf)
            .and_then(|()| self.writer.sync_data());
        if let Err(err) = written {
            // Leave no half-written batch behind for the next append.
            let _ = self.writer.set_len(before);
            return Err(err);
        }
        if let Some(active) = self.segments.last_mut() {
            active.size += need;
        }
        self.records += records.len() as u64;
        Ok(dropped)
    }

    /// Reads up to `max_records` unacknowledged records, oldest first,
    /// stopping before `max_bytes` of payload (but always at least one).
    pub fn peek(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Peeked> {
        let mut records = Vec::new();
        let mut ends = Vec::new();
        let mut total = 0usize;
        let mut pos = self.ack;
        'segments: for segment in self.segments.clone() {
            if segment.num < pos.seg {
                continue;
            }
            let from = if segment.num == pos.seg { pos.off } else { 0 };
            if from >= segment.size {
                continue;
            }
            let mut file = BufReader::new(File::open(segment_path(&self.dir, segment.num))?);
            file.seek(SeekFrom::Start(from))?;
            let mut off = from;
            while off < segment.size && records.len() < max_records {
                let Some((kind, payload)) = read_record(&mut file)? else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "spool segment {} is corrupt at offset {off}",
                            segment_path(&self.dir, segment.num).display()
                        ),
                    ));
                };
                if !records.is_empty() && total + payload.len() > max_bytes {
                    break 'segments;
                }
                off += HEADER + 1 + payload.len() as u64;
                total += payload.len();
                records.push(Record { kind, payload });
                pos = Pos {
                    seg: segment.num,
                    off,
                };
                ends.push(pos);
            }
            if records.len() >= max_records {
                break;
            }
        }
        Ok(Peeked {
            token: AckToken {
                generation: self.generation,
                start: self.ack,
                end: pos,
                count: records.len() as u64,
                ends,
            },
            records,
        })
    }

    /// Drops the records of `token` (the server has them, or never will).
    /// Returns `false`, doing nothing, if a compaction happened since the
    /// peek (the records will be read and sent again; the server dedups).
    pub fn ack(&mut self, token: &AckToken) -> io::Result<bool> {
        if token.generation != self.generation || token.start != self.ack {
            return Ok(false);
        }
        if token.count == 0 {
            return Ok(true);
        }
        self.ack = token.end;
        self.records = self.records.saturating_sub(token.count);
        // Move past segments read to their end.
        while let [first, next, ..] = self.segments[..] {
            if self.ack.seg == first.num && self.ack.off >= first.size {
                self.ack = Pos {
                    seg: next.num,
                    off: 0,
                };
                continue;
            }
            break;
        }
        if self.records == 0 && self.active().size >= self.options.segment_bytes {
            self.roll()?;
            self.ack = Pos {
                seg: self.active().num,
                off: 0,
            };
        }
        self.write_ack()?;
        self.delete_before_ack()?;
        Ok(true)
    }

    fn active(&self) -> Segment {
        // `open` guarantees at least one segment.
        self.segments
            .last()
            .copied()
            .unwrap_or(Segment { num: 1, size: 0 })
    }

    /// Starts a new segment for appends.
    fn roll(&mut self) -> io::Result<()> {
        let num = self.active().num + 1;
        let path = segment_path(&self.dir, num);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        self.writer = file;
        self.segments.push(Segment { num, size: 0 });
        Ok(())
    }

    fn write_ack(&self) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(20);
        bytes.extend_from_slice(&self.ack.seg.to_le_bytes());
        bytes.extend_from_slice(&self.ack.off.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        write_atomic(&self.dir.join(ACK_FILE), &bytes, None)
    }

    fn delete_before_ack(&mut self) -> io::Result<()> {
        let mut deleted = false;
        while self.segments.len() > 1 && self.segments[0].num < self.ack.seg {
            let segment = self.segments.remove(0);
            fs::remove_file(segment_path(&self.dir, segment.num))?;
            deleted = true;
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Rewrites the unacknowledged records into a new segment, leaving out
    /// the oldest ones (reports first, then faults) until they fill at most
    /// three quarters of `max_bytes` minus `need`.
    fn compact(&mut self, need: u64) -> io::Result<Dropped> {
        // Pass 1: the kind and size of every live record.
        let mut live: Vec<(RecordKind, u64)> = Vec::new();
        for segment in &self.segments {
            let from = if segment.num == self.ack.seg {
                self.ack.off
            } else {
                0
            };
            scan(&segment_path(&self.dir, segment.num), from, |kind, size| {
                live.push((kind, size))
            })?;
        }
        let target = (self.options.max_bytes / 4 * 3).saturating_sub(need);
        let mut total: u64 = live.iter().map(|(_, size)| size).sum();
        let mut keep = vec![true; live.len()];
        let mut dropped = Dropped::default();
        for pass_faults in [false, true] {
            for (i, (kind, size)) in live.iter().enumerate() {
                if total <= target {
                    break;
                }
                if (*kind == RecordKind::Fault) == pass_faults && keep[i] {
                    keep[i] = false;
                    total -= size;
                    if pass_faults {
                        dropped.faults += 1;
                    } else {
                        dropped.reports += 1;
                    }
                }
            }
        }
        // Pass 2: copy the survivors to a new segment.
        let num = self.active().num + 1;
        let path = segment_path(&self.dir, num);
        let mut out = io::BufWriter::new(
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)?,
        );
        let mut index = 0usize;
        let mut kept = 0u64;
        for segment in &self.segments {
            let from = if segment.num == self.ack.seg {
                self.ack.off
            } else {
                0
            };
            let mut file = BufReader::new(File::open(segment_path(&self.dir, segment.num))?);
            file.seek(SeekFrom::Start(from))?;
            let mut off = from;
            while off < segment.size {
                let Some((kind, payload)) = read_record(&mut file)? else {
                    break;
                };
                off += HEADER + 1 + payload.len() as u64;
                if keep.get(index).copied().unwrap_or(true) {
                    write_frame(&mut out, kind, &payload)?;
                    kept += 1;
                }
                index += 1;
            }
        }
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        drop(file);
        sync_dir(&self.dir)?;
        // The new segment becomes the only one once the ack points at it.
        self.ack = Pos { seg: num, off: 0 };
        self.write_ack()?;
        for segment in std::mem::take(&mut self.segments) {
            fs::remove_file(segment_path(&self.dir, segment.num))?;
        }
        sync_dir(&self.dir)?;
        self.segments = vec![Segment { num, size }];
        self.writer = OpenOptions::new().append(true).open(&path)?;
        self.records = kept;
        self.generation += 1;
        if dropped.reports > 0 {
            tracing::warn!(
                dropped = dropped.reports,
                max_bytes = self.options.max_bytes,
                "spool full: dropped the oldest inventory/topology reports"
            );
        }
        if dropped.faults > 0 {
            tracing::error!(
                dropped = dropped.faults,
                max_bytes = self.options.max_bytes,
                "spool full of fault events: dropped the {} oldest fault events; they will never reach the server",
                dropped.faults
            );
        }
        Ok(dropped)
    }
}

fn segment_path(dir: &Path, num: u64) -> PathBuf {
    dir.join(format!("{num:020}{SEGMENT_SUFFIX}"))
}

fn read_ack(path: &Path) -> Option<Pos> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::error!(file = %path.display(), error = %err, "spool: cannot read the ack file; resending everything");
            return None;
        }
    };
    let parsed = (bytes.len() == 20)
        .then(|| {
            let seg = u64::from_le_bytes(bytes[0..8].try_into().ok()?);
            let off = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
            let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
            (crc32fast::hash(&bytes[..16]) == crc).then_some(Pos { seg, off })
        })
        .flatten();
    if parsed.is_none() {
        tracing::error!(file = %path.display(), "spool: the ack file is corrupt; resending everything (the server dedups)");
    }
    parsed
}

fn write_frame(out: &mut impl Write, kind: RecordKind, payload: &[u8]) -> io::Result<()> {
    let len = (payload.len() + 1) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind.byte()]);
    crc.update(payload);
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    out.write_all(&[kind.byte()])?;
    out.write_all(payload)
}

/// Reads one record; `None` at a clean end, a short record or a bad CRC.
fn read_record(file: &mut impl Read) -> io::Result<Option<(RecordKind, Vec<u8>)>> {
    let mut header = [0u8; HEADER as usize];
    if !read_full(file, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    if !read_full(file, &mut body)? {
        return Ok(None);
    }
    if crc32fast::hash(&body) != crc {
        return Ok(None);
    }
    let kind = RecordKind::from_byte(body[0]);
    body.remove(0);
    Ok(Some((kind, body)))
}

/// Fills `buf`; `false` if the file ends first.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}

struct Scan {
    records: u64,
    valid_end: u64,
}

/// Walks the valid records of a segment from `from`, calling `each` with
/// every record's kind and framed size; stops at the first invalid one.
fn scan(path: &Path, from: u64, mut each: impl FnMut(RecordKind, u64)) -> io::Result<Scan> {
    let mut file = BufReader::new(File::open(path)?);
    file.seek(SeekFrom::Start(from))?;
    let mut scan = Scan {
        records: 0,
        valid_end: from,
    };
    while let Some((kind, payload)) = read_record(&mut file)? {
        let size = HEADER + 1 + payload.len() as u64;
        each(kind, size);
        scan.records += 1;
        scan.valid_end += size;
    }
    Ok(scan)
}
