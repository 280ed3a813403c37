//! The demo clinic imports each twin pump's whole event log (CLINIC-072): from entry 0 —
//! the implant's set-up: catheter record, first fill, program, start and priming — to the
//! pump's chain head, verified again here with thecal-pump's own chain walk, and shown in
//! the implant's timeline.
#![allow(missing_docs)]

mod common;

use chrono::{TimeZone, Utc};
use common::{Backend, fresh};
use thecal_clinic::domain::pumplog::parse_hash;
use thecal_clinic::storage::Kind;
use thecal_pump::core::BolusKind;
use thecal_pump::event::Event;
use thecal_pump::log::{LogEntry, verify};
use thecal_rx::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_imports_each_twin_pumps_whole_log_from_its_set_up_clinic_072() {
    let db = fresh(Backend::Sqlite).await.expect("sqlite");
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    thecal_clinic::demo::seed(db.store.clone(), now)
        .await
        .expect("demo");
    let implants = db.store.list(Kind::Implant, None, 100).await.unwrap();
    let mut with_log = 0;
    for imp in &implants {
        let rows = db
            .store
            .events(imp.id, 0, i64::from(u32::MAX))
            .await
            .unwrap();
        if rows.is_empty() {
            continue;
        }
        with_log += 1;
        let entries: Vec<LogEntry> = rows
            .iter()
            .map(|r| LogEntry {
                seq: u32::try_from(r.seq).unwrap(),
                at: Instant::from_ms(u64::try_from(r.at_ms).unwrap()),
                event: serde_json::from_str(&r.event).unwrap(),
                hash: parse_hash("hash", &r.hash).unwrap(),
            })
            .collect();
        // The whole chain from its genesis: entry 0 on, no gap, every hash thecal-pump's.
        assert_eq!(
            verify(entries.iter(), None),
            Ok(entries.len()),
            "implant {}",
            imp.id
        );
        // The set-up comes first, in the order the clinic did it at the implant: the
        // catheter record, the first fill, the program, then the priming.
        let first = |want: fn(&Event) -> bool| {
            entries
                .iter()
                .position(|e| want(&e.event))
                .unwrap_or_else(|| panic!("implant {}: an entry is missing", imp.id))
        };
        let catheter = first(|e| matches!(e, Event::CatheterSet { .. }));
        let fill = first(|e| matches!(e, Event::Refill { .. }));
        let program = first(|e| matches!(e, Event::ProgramChanged { .. }));
        let priming = entries
            .iter()
            .position(|e| {
                matches!(
                    e.event,
                    Event::BolusStarted {
                        kind: BolusKind::Priming,
                        ..
                    }
                )
            })
            .unwrap_or_else(|| panic!("implant {}: no priming in the log", imp.id));
        assert!(
            catheter < fill && fill < program && program < priming,
            "implant {}: set-up order {catheter} {fill} {program} {priming}",
            imp.id
        );
        assert!(
            catheter < 3,
            "implant {}: the log starts with the set-up",
            imp.id
        );
        assert!(
            entries[priming..].iter().any(|e| matches!(
                e.event,
                Event::BolusEnded {
                    kind: BolusKind::Priming,
                    ..
                }
            )),
            "implant {}: the priming never ended in the log",
            imp.id
        );
        // The set-up is in the implant's timeline, stamped on the implant's day.
        let timeline: Vec<(i64, Option<String>)> = rows
            .iter()
            .map(|r| (r.seq, r.at_utc.clone()))
            .take(priming + 1)
            .collect();
        let implanted = timeline[0].1.clone().expect("a wall-clock time");
        assert_eq!(timeline[priming].1.as_deref(), Some(implanted.as_str()));
    }
    assert_eq!(with_log, 4, "the four twin pumps (Ada, Ben, Dan, Eve)");
}
