use super::*;

fn opts(max_bytes: u64, segment_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        max_bytes,
        segment_bytes,
    }
}

fn payloads(peeked: &Peeked) -> Vec<String> {
    peeked
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn append_peek_ack_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("open");
    assert!(spool.is_empty());
    spool
        .append(&[(RecordKind::Fault, b"a"), (RecordKind::Inventory, b"bb")])
        .expect("append");
    spool
        .append(&[(RecordKind::Topology, b"ccc")])
        .expect("append");
    assert_eq!(spool.len(), 3);

    let peeked = spool.peek(2, 1 << 20).expect("peek");
    assert_eq!(payloads(&peeked), ["a", "bb"]);
    assert_eq!(peeked.records[0].kind, RecordKind::Fault);
    assert!(spool.ack(&peeked.ack_first(1)).expect("ack"));
    assert_eq!(spool.len(), 2);
    // A second ack with the same (now stale) token does nothing.
    assert!(!spool.ack(&peeked.ack_first(2)).expect("stale ack"));
    drop(spool);

    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(spool.len(), 2);
    let peeked = spool.peek(10, 1 << 20).expect("peek");
    assert_eq!(payloads(&peeked), ["bb", "ccc"]);
    assert!(spool.ack(&peeked.ack_first(2)).expect("ack"));
    assert!(spool.is_empty());
    assert!(spool.peek(10, 1 << 20).expect("peek").records.is_empty());
}

#[test]
fn peek_respects_byte_limit_but_returns_at_least_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("open");
    let big = vec![b'x'; 1000];
    spool
        .append(&[
            (RecordKind::Inventory, &big[..]),
            (RecordKind::Fault, b"f1"),
            (RecordKind::Fault, b"f2"),
        ])
        .expect("append");
    assert_eq!(spool.peek(10, 10).expect("peek").records.len(), 1);
    assert_eq!(spool.peek(10, 1002).expect("peek").records.len(), 2);
}

#[test]
fn segments_roll_and_are_deleted_when_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 100)).expect("open");
    for i in 0..20 {
        let payload = format!("record-{i:02}-{}", "p".repeat(40));
        spool
            .append(&[(RecordKind::Fault, payload.as_bytes())])
            .expect("append");
    }
    assert!(segment_files(dir.path()).len() >= 5);
    let mut seen = Vec::new();
    loop {
        let peeked = spool.peek(3, 1 << 20).expect("peek");
        if peeked.records.is_empty() {
            break;
        }
        seen.extend(payloads(&peeked));
        assert!(spool
            .ack(&peeked.ack_first(peeked.records.len()))
            .expect("ack"));
    }
    assert_eq!(seen.len(), 20);
    assert!(seen[7].starts_with("record-07"));
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment"
    );
    assert!(spool.disk_bytes() < 100);
    drop(spool);
    let spool = Spool::open(dir.path(), opts(1 << 20, 100)).expect("reopen");
    assert!(spool.is_empty());
}

#[test]
fn torn_tail_is_cut_off_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("open");
    spool
        .append(&[
            (RecordKind::Fault, b"first"),
            (RecordKind::Fault, b"second"),
        ])
        .expect("append");
    spool
        .append(&[(RecordKind::Fault, b"third-record")])
        .expect("append");
    drop(spool);
    // A crash in the middle of writing the third record.
    let file = segment_files(dir.path()).pop().expect("segment");
    let len = fs::metadata(&file).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 5)
        .expect("truncate");

    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(spool.len(), 2);
    assert_eq!(
        payloads(&spool.peek(10, 1 << 20).expect("peek")),
        ["first", "second"]
    );
    // New appends go after the cut, and read back fine.
    spool
        .append(&[(RecordKind::Fault, b"fourth")])
        .expect("append");
    drop(spool);
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(
        payloads(&spool.peek(10, 1 << 20).expect("peek")),
        ["first", "second", "fourth"]
    );
}

#[test]
fn corrupt_record_fails_crc_and_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("open");
    spool
        .append(&[
            (RecordKind::Fault, b"good"),
            (RecordKind::Fault, b"flipped"),
        ])
        .expect("append");
    drop(spool);
    let file = segment_files(dir.path()).pop().expect("segment");
    let mut bytes = fs::read(&file).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    fs::write(&file, &bytes).expect("write");

    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(payloads(&spool.peek(10, 1 << 20).expect("peek")), ["good"]);
    // Garbage after the valid records (a torn length field) too.
    drop(spool);
    let mut f = OpenOptions::new().append(true).open(&file).expect("open");
    f.write_all(&[0xff, 0xff]).expect("write");
    drop(f);
    let spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(spool.len(), 1);
    assert_eq!(spool.disk_bytes(), HEADER + 1 + 4);
}

#[test]
fn corrupt_ack_file_resends_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("open");
    spool
        .append(&[(RecordKind::Fault, b"a"), (RecordKind::Fault, b"b")])
        .expect("append");
    let peeked = spool.peek(1, 1 << 20).expect("peek");
    spool.ack(&peeked.ack_first(1)).expect("ack");
    drop(spool);
    fs::write(dir.path().join(ACK_FILE), b"garbage").expect("write");
    let spool = Spool::open(dir.path(), opts(1 << 20, 1 << 16)).expect("reopen");
    assert_eq!(spool.len(), 2, "at-least-once: both come back");
}

fn record(kind: RecordKind, i: usize) -> (RecordKind, Vec<u8>) {
    let tag = match kind {
        RecordKind::Fault => "fault",
        RecordKind::Inventory => "inv",
        RecordKind::Topology => "topo",
    };
    // Every record is exactly 100 bytes framed.
    let mut payload = format!("{tag}-{i:04}").into_bytes();
    payload.resize(100 - (HEADER as usize + 1), b'.');
    (kind, payload)
}

fn append_one(spool: &mut Spool, (kind, payload): &(RecordKind, Vec<u8>)) -> Dropped {
    spool.append(&[(*kind, &payload[..])]).expect("append")
}

#[test]
fn full_spool_drops_oldest_reports_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for 20 records of 100 bytes.
    let mut spool = Spool::open(dir.path(), opts(2000, 500)).expect("open");
    let mut total = Dropped::default();
    for i in 0..20 {
        let kind = if i % 2 == 0 {
            RecordKind::Fault
        } else {
            RecordKind::Inventory
        };
        let d = append_one(&mut spool, &record(kind, i));
        total.reports += d.reports;
        total.faults += d.faults;
    }
    assert_eq!(total, Dropped::default(), "20 records fit");
    let d = append_one(&mut spool, &record(RecordKind::Fault, 20));
    // Down to 1500 - 100 bytes: 14 survivors, 6 reports dropped, no fault.
    assert_eq!(
        d,
        Dropped {
            reports: 6,
            faults: 0
        }
    );
    assert!(spool.disk_bytes() <= 2000);
    let all = payloads(&spool.peek(100, 1 << 20).expect("peek"));
    assert_eq!(all.len(), 15);
    let faults = all.iter().filter(|p| p.starts_with("fault")).count();
    assert_eq!(faults, 11, "every fault kept");
    // The reports kept are the newest ones, in order.
    let reports: Vec<&String> = all.iter().filter(|p| p.starts_with("inv")).collect();
    assert!(reports[0].starts_with("inv-0013"), "{reports:?}");
    let numbers: Vec<&str> = all.iter().map(|p| &p[p.find('-').unwrap_or(0)..]).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "order kept: {all:?}"
    );
    drop(spool);
    let spool = Spool::open(dir.path(), opts(2000, 500)).expect("reopen");
    assert_eq!(spool.len(), 15);
}

#[test]
fn full_spool_of_faults_drops_oldest_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(2000, 500)).expect("open");
    for i in 0..20 {
        append_one(&mut spool, &record(RecordKind::Fault, i));
    }
    let d = append_one(&mut spool, &record(RecordKind::Fault, 20));
    assert_eq!(
        d,
        Dropped {
            reports: 0,
            faults: 6
        }
    );
    let all = payloads(&spool.peek(100, 1 << 20).expect("peek"));
    assert!(all[0].starts_with("fault-0006"), "{all:?}");
    assert!(all.last().expect("last").starts_with("fault-0020"));
    assert!(spool.disk_bytes() <= 2000);
}

#[test]
fn compaction_invalidates_outstanding_peeks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(2000, 500)).expect("open");
    for i in 0..20 {
        append_one(&mut spool, &record(RecordKind::Inventory, i));
    }
    let peeked = spool.peek(5, 1 << 20).expect("peek");
    append_one(&mut spool, &record(RecordKind::Fault, 99));
    assert!(!spool.ack(&peeked.ack_first(5)).expect("ack"));
    let all = payloads(&spool.peek(100, 1 << 20).expect("peek"));
    assert!(all.last().expect("last").starts_with("fault-0099"));
}

#[test]
fn acknowledged_prefix_is_reclaimed_without_dropping() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One big segment, so acknowledged records stay on disk until compaction.
    let mut spool = Spool::open(dir.path(), opts(2000, 1 << 20)).expect("open");
    for i in 0..19 {
        append_one(&mut spool, &record(RecordKind::Fault, i));
    }
    let peeked = spool.peek(15, 1 << 20).expect("peek");
    spool.ack(&peeked.ack_first(15)).expect("ack");
    for i in 19..25 {
        let d = append_one(&mut spool, &record(RecordKind::Fault, i));
        assert_eq!(d, Dropped::default());
    }
    assert_eq!(spool.len(), 10);
    assert!(spool.disk_bytes() <= 2000);
}

#[test]
fn oversize_records_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), opts(2000, 500)).expect("open");
    let big = vec![0u8; 1500];
    assert!(spool.append(&[(RecordKind::Fault, &big[..])]).is_err());
    assert!(spool.is_empty());
}
