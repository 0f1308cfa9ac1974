//! kill -9 of a process in the middle of appending to the spool: every
//! record whose append returned (was fsynced) is there after reopening.
//!
//! The test binary runs itself as the writer: `child_writer` does nothing
//! unless `SPOOL_CHILD_DIR` is set, in which case it appends batches
//! forever and prints the number of records fsynced after each append.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outpost_agent::spool::{RecordKind, Spool, SpoolOptions};

const OPTIONS: SpoolOptions = SpoolOptions {
    max_bytes: 256 * 1024 * 1024,
    segment_bytes: 256 * 1024,
};

#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("SPOOL_CHILD_DIR") else {
        return;
    };
    let mut spool = Spool::open(std::path::Path::new(&dir), OPTIONS).expect("open");
    let mut n: u64 = spool.len();
    loop {
        // Batches of 50 records of ~1 KiB: writes big enough to be torn.
        let payloads: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                let mut p = format!("record-{:08}", n + i).into_bytes();
                p.resize(1000, b'x');
                p
            })
            .collect();
        let records: Vec<(RecordKind, &[u8])> = payloads
            .iter()
            .map(|p| (RecordKind::Fault, &p[..]))
            .collect();
        spool.append(&records).expect("append");
        n += 50;
        println!("synced {n}");
    }
}

#[test]
fn kill_9_mid_append_loses_no_fsynced_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env("SPOOL_CHILD_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut synced = 0u64;
        let started = Instant::now();
        // Let it write a while (a different amount each round), then kill.
        while started.elapsed() < Duration::from_millis(300 + round * 200) {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) = line.strip_prefix("synced ") {
                        synced = n.parse().expect("count");
                    }
                }
                _ => break,
            }
        }
        child.kill().expect("kill -9"); // SIGKILL on Unix
        child.wait().expect("reap");
        // Lines printed after our last read may report more; the spool must
        // hold at least everything reported.
        assert!(synced > 0, "the writer wrote nothing");

        let mut spool = Spool::open(dir.path(), OPTIONS).expect("reopen");
        assert!(
            spool.len() >= synced,
            "round {round}: {} < {synced}",
            spool.len()
        );
        let peeked = spool.peek(usize::MAX, usize::MAX).expect("peek");
        for (i, record) in peeked.records.iter().enumerate() {
            let expected = format!("record-{i:08}");
            assert!(
                record.payload.starts_with(expected.as_bytes()),
                "round {round}: record {i} is {:?}",
                String::from_utf8_lossy(&record.payload[..20])
            );
        }
    }
}
